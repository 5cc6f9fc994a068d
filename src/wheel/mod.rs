//! Installing wheels into a venv inside the image without running Python or pip, following the
//! binary distribution format (PEP 427, now "Binary distribution format" in the packaging
//! specifications) and the recording of installed projects (PEP 376, PEP 627).
//!
//! A wheel becomes a list of layer entries. Members copied unchanged stream from the archive at
//! layer-writing time with the sha256 its `RECORD` promises, so a `RECORD` that lies fails the
//! layer; only small files that must change (scripts, the new `RECORD`) are held in memory.

mod record;
mod scripts;
mod venv;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::layer::{Entry, EntryKind, Source};

pub use venv::venv_entries;

/// Scripts larger than this are not read to rewrite their shebang (none real comes close).
const MAX_SCRIPT: u64 = 16 * 1024 * 1024;

/// Errors met while reading a wheel.
#[derive(Debug, thiserror::Error)]
pub enum WheelError {
    #[error("Failed to read wheel `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Wheel `{wheel}` is not a valid zip archive: {message}")]
    Zip { wheel: String, message: String },
    #[error("Wheel `{wheel}` is invalid: {message}")]
    Invalid { wheel: String, message: String },
    #[error(
        "Wheel `{wheel}` has an unsafe member `{member}`: {reason}\nhint: the wheel may be \
         malicious or broken; do not install it"
    )]
    Unsafe {
        wheel: String,
        member: String,
        reason: String,
    },
    #[error("Wheel `{wheel}`: member `{member}` {problem}")]
    Record {
        wheel: String,
        member: String,
        problem: String,
    },
}

/// Where and for which interpreter wheels are installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallTarget {
    /// Absolute venv path in the image, e.g. `/opt/venv`.
    pub venv: String,
    /// Full Python version, e.g. `3.11.2`.
    pub python_version: String,
    /// The base's interpreter, e.g. `/usr/bin/python3.11`.
    pub interpreter: String,
}

impl InstallTarget {
    /// `python3.11`: the folder name under `lib/`.
    pub fn python_xy(&self) -> String {
        let mut parts = self.python_version.split('.');
        let major = parts.next().unwrap_or("3");
        let minor = parts.next().unwrap_or("0");
        format!("python{major}.{minor}")
    }

    /// `opt/venv/lib/python3.11/site-packages`: where packages go, as an entry path.
    pub fn site_packages(&self) -> String {
        format!(
            "{}/lib/{}/site-packages",
            self.venv.trim_matches('/'),
            self.python_xy()
        )
    }

    /// The venv's interpreter, for shebangs.
    pub fn python(&self) -> String {
        format!("{}/bin/python", self.venv.trim_end_matches('/'))
    }
}

/// What installing one wheel gives.
#[derive(Debug, Clone)]
pub struct Installed {
    pub entries: Vec<Entry>,
    /// Distribution name as the wheel spells it.
    pub name: String,
    pub version: String,
    /// Sum of the installed files' sizes.
    pub installed_size: u64,
}

/// A file to install and where its bytes come from.
struct Planned {
    /// Entry path (relative to the image root).
    path: String,
    mode: u32,
    size: u64,
    source: Source,
    /// The RECORD hash (urlsafe base64 sha256) of the installed bytes.
    hash: String,
}

/// The entries one wheel installs into `target`.
pub fn install_entries(
    wheel: &Path,
    file_name: &str,
    target: &InstallTarget,
    requested: bool,
) -> Result<Installed, WheelError> {
    let invalid = |message: String| WheelError::Invalid {
        wheel: file_name.to_string(),
        message,
    };
    let file = File::open(wheel).map_err(|source| WheelError::Io {
        path: wheel.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| WheelError::Zip {
        wheel: file_name.to_string(),
        message: e.to_string(),
    })?;

    // 1. The `.dist-info` folder: `{distribution}-{version}.dist-info`, named by the file name.
    let (dist, version) = dist_and_version(file_name).ok_or_else(|| {
        invalid("its file name is not `{distribution}-{version}-…-{tags}.whl`".into())
    })?;
    let names: Vec<String> = (0..zip.len())
        .map(|i| zip.name_for_index(i).unwrap_or_default().to_string())
        .collect();
    let dist_info = find_dist_info(&names, &dist, &version)
        .ok_or_else(|| invalid(format!("it has no `{dist}-{version}.dist-info/` folder")))?;
    let data_dir = format!("{}.data/", dist_info.trim_end_matches(".dist-info"));

    // 2. `WHEEL`: an installer must refuse a major Wheel-Version it does not know.
    let wheel_meta = read_small(&mut zip, &format!("{dist_info}/WHEEL"), file_name)?;
    check_wheel_version(&wheel_meta).map_err(invalid)?;

    // 3. `RECORD`: every file must be listed with a hash (sha256 or stronger; never md5/sha1).
    let record_text = read_small(&mut zip, &format!("{dist_info}/RECORD"), file_name)?;
    let record = record::parse(&record_text).map_err(|m| invalid(format!("RECORD: {m}")))?;

    // 4. Map each member to its place: the root to site-packages (purelib and platlib are one
    //    folder in a venv), `.data/{purelib,platlib,scripts,headers,data}` to theirs.
    let site = target.site_packages();
    let venv = target.venv.trim_matches('/').to_string();
    let mut planned: Vec<Planned> = Vec::new();
    for (index, name) in names.iter().enumerate() {
        if name.ends_with('/') {
            continue;
        }
        check_member_name(name).map_err(|reason| WheelError::Unsafe {
            wheel: file_name.to_string(),
            member: name.clone(),
            reason,
        })?;
        let (size, unix_mode) = {
            let m = zip.by_index_raw(index).map_err(|e| WheelError::Zip {
                wheel: file_name.to_string(),
                message: e.to_string(),
            })?;
            (m.size(), m.unix_mode())
        };
        if unix_mode.is_some_and(|m| m & 0o170000 == 0o120000) {
            return Err(WheelError::Unsafe {
                wheel: file_name.to_string(),
                member: name.clone(),
                reason: "it is a symbolic link, which wheels cannot hold".into(),
            });
        }
        let is_record = *name == format!("{dist_info}/RECORD");
        let is_signature = *name == format!("{dist_info}/RECORD.jws")
            || *name == format!("{dist_info}/RECORD.p7s");
        if is_record || is_signature {
            continue;
        }
        let record_err = |problem: String| WheelError::Record {
            wheel: file_name.to_string(),
            member: name.clone(),
            problem,
        };
        let row = record
            .get(name)
            .ok_or_else(|| record_err("is not listed in RECORD".into()))?;
        let Some((alg, value)) = &row.hash else {
            return Err(record_err("has no hash in RECORD".into()));
        };
        if alg != "sha256" {
            return Err(record_err(format!(
                "is hashed with `{alg}` in RECORD; only sha256 is accepted"
            )));
        }
        let digest = record::decode_sha256(value)
            .ok_or_else(|| record_err(format!("has a malformed sha256 `{value}` in RECORD")))?;
        if row.size.is_some_and(|s| s != size) {
            return Err(record_err(format!(
                "is {size} bytes but RECORD says {}",
                row.size.unwrap_or(0)
            )));
        }
        let exec = unix_mode.is_some_and(|m| m & 0o111 != 0);
        let mode = if exec { 0o755 } else { 0o644 };

        let (dest, is_script) = match name.strip_prefix(&data_dir) {
            None => (format!("{site}/{name}"), false),
            Some(rest) => {
                let (scheme, sub) = rest.split_once('/').ok_or_else(|| WheelError::Unsafe {
                    wheel: file_name.to_string(),
                    member: name.clone(),
                    reason: "it is directly in the `.data` folder, outside any scheme".into(),
                })?;
                let dest = match scheme {
                    "purelib" | "platlib" => format!("{site}/{sub}"),
                    "scripts" => format!("{venv}/bin/{sub}"),
                    "headers" => format!(
                        "{venv}/include/site/{}/{}/{sub}",
                        target.python_xy(),
                        project_name(&dist)
                    ),
                    "data" => format!("{venv}/{sub}"),
                    other => {
                        return Err(WheelError::Unsafe {
                            wheel: file_name.to_string(),
                            member: name.clone(),
                            reason: format!("`{other}` is not a scheme of the wheel format"),
                        });
                    }
                };
                (dest, scheme == "scripts")
            }
        };

        // 5. Scripts starting with `#!python` get the venv's interpreter (and the exec bit).
        if is_script && size <= MAX_SCRIPT {
            let content = read_member(&mut zip, index, file_name)?;
            if Sha256::digest(&content).as_slice() != digest {
                return Err(record_err("does not match its RECORD hash".into()));
            }
            if let Some(new) = scripts::rewrite_shebang(&content, &target.python()) {
                planned.push(bytes_file(dest, 0o755, new));
                continue;
            }
            planned.push(bytes_file(dest, 0o755, content));
            continue;
        }
        planned.push(Planned {
            path: dest,
            mode,
            size,
            source: Source::Zip {
                archive: wheel.to_path_buf(),
                index,
                sha256: Some(digest),
            },
            hash: value.trim_end_matches('=').to_string(),
        });
    }
    for path in record.keys() {
        let listed_only = !names.iter().any(|n| n == path);
        if listed_only {
            return Err(WheelError::Record {
                wheel: file_name.to_string(),
                member: path.clone(),
                problem: "is listed in RECORD but not in the archive".into(),
            });
        }
    }

    // 6. Entry points become launchers in `bin/`.
    let ep_name = format!("{dist_info}/entry_points.txt");
    if names.contains(&ep_name) {
        let text = read_small(&mut zip, &ep_name, file_name)?;
        let eps = scripts::parse_entry_points(&text)
            .map_err(|m| invalid(format!("entry_points.txt: {m}")))?;
        for ep in eps {
            let body = scripts::launcher(&ep, &target.python());
            planned.push(bytes_file(
                format!("{venv}/bin/{}", ep.name),
                0o755,
                body.into_bytes(),
            ));
        }
    }

    // 7. The installer's own files in `.dist-info`: INSTALLER, REQUESTED (PEP 376).
    let dist_info_dest = format!("{site}/{dist_info}");
    planned.push(bytes_file(
        format!("{dist_info_dest}/INSTALLER"),
        0o644,
        b"envbuild\n".to_vec(),
    ));
    if requested {
        planned.push(bytes_file(
            format!("{dist_info_dest}/REQUESTED"),
            0o644,
            Vec::new(),
        ));
    }

    // 8. Two members landing on one path would make the result depend on order: refuse.
    planned.sort_by(|a, b| a.path.cmp(&b.path));
    for pair in planned.windows(2) {
        if pair[0].path == pair[1].path {
            return Err(WheelError::Unsafe {
                wheel: file_name.to_string(),
                member: pair[0].path.clone(),
                reason: "two members of the wheel install to this path".into(),
            });
        }
    }

    // 9. The new RECORD, with every installed path relative to site-packages.
    let mut rows = BTreeMap::new();
    for p in &planned {
        rows.insert(relative_to(&site, &p.path), Some((p.hash.clone(), p.size)));
    }
    let record_dest = format!("{dist_info_dest}/RECORD");
    rows.insert(relative_to(&site, &record_dest), None);
    planned.push(bytes_file(
        record_dest,
        0o644,
        record::write(&rows).into_bytes(),
    ));

    let installed_size = planned.iter().map(|p| p.size).sum();
    let entries = planned
        .into_iter()
        .map(|p| Entry {
            path: p.path,
            mode: p.mode,
            kind: EntryKind::File {
                size: p.size,
                source: p.source,
            },
        })
        .collect();
    Ok(Installed {
        entries,
        name: dist,
        version,
        installed_size,
    })
}

fn bytes_file(path: String, mode: u32, data: Vec<u8>) -> Planned {
    let hash = record::encode_sha256(&Sha256::digest(&data));
    Planned {
        path,
        mode,
        size: data.len() as u64,
        source: Source::Bytes(Arc::from(data)),
        hash,
    }
}

/// `{distribution}-{version}` from a wheel file name (both already escaped with `_`).
fn dist_and_version(file_name: &str) -> Option<(String, String)> {
    let stem = file_name.strip_suffix(".whl")?;
    let mut parts = stem.split('-');
    let dist = parts.next()?.to_string();
    let version = parts.next()?.to_string();
    (parts.count() >= 3).then_some((dist, version))
}

/// The `.dist-info` folder, compared by normalized name since tools spell case differently.
fn find_dist_info(names: &[String], dist: &str, version: &str) -> Option<String> {
    let wanted = format!("{}-{version}.dist-info", normalize(dist));
    let mut found: Vec<&str> = names
        .iter()
        .filter_map(|n| n.split_once('/').map(|(top, _)| top))
        .filter(|top| top.ends_with(".dist-info"))
        .filter(|top| {
            let (d, v) = top
                .trim_end_matches(".dist-info")
                .rsplit_once('-')
                .unwrap_or((top, ""));
            format!("{}-{v}.dist-info", normalize(d)) == wanted
        })
        .collect();
    found.sort();
    found.dedup();
    match found.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace(['-', '.'], "_")
}

/// The project's normalized name (PEP 503: lower case, runs of `-`, `_` and `.` as one `-`),
/// which names its headers folder. The file name's `_` escape (`data_demo` for `data-demo`) is
/// no project name: uv uses the normalized name, pip the requirement as written, which for the
/// lock's requirements is the normalized name too.
fn project_name(dist: &str) -> String {
    let mut out = String::with_capacity(dist.len());
    for part in dist.split(['-', '_', '.']).filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&part.to_ascii_lowercase());
    }
    out
}

fn check_wheel_version(text: &str) -> Result<(), String> {
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("Wheel-Version:"))
        .map(str::trim)
        .ok_or("WHEEL has no `Wheel-Version`")?;
    match version.split('.').next() {
        Some("1") => Ok(()),
        _ => Err(format!(
            "Wheel-Version `{version}` is not supported (only 1.x)"
        )),
    }
}

/// Member names must stay inside the wheel: no absolute paths, `..`, backslashes or NULs.
fn check_member_name(name: &str) -> Result<(), String> {
    if name.starts_with('/') || name.starts_with('\\') {
        return Err("it is an absolute path".into());
    }
    if name.contains('\\') {
        return Err("it contains a backslash".into());
    }
    if name.contains('\0') {
        return Err("it contains a NUL byte".into());
    }
    if name.split('/').any(|p| p == ".." || p == ".") {
        return Err("it has a `.` or `..` component".into());
    }
    if name.len() > 1 && name.as_bytes()[1] == b':' {
        return Err("it is a drive-letter path".into());
    }
    Ok(())
}

/// `to` relative to the folder `from` (both entry paths), with `..` as pip writes RECORD.
fn relative_to(from: &str, to: &str) -> String {
    let a: Vec<&str> = from.split('/').collect();
    let b: Vec<&str> = to.split('/').collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<&str> = vec![".."; a.len() - common];
    parts.extend(&b[common..]);
    parts.join("/")
}

fn read_small(
    zip: &mut zip::ZipArchive<BufReader<File>>,
    name: &str,
    wheel: &str,
) -> Result<String, WheelError> {
    let index = zip
        .index_for_name(name)
        .ok_or_else(|| WheelError::Invalid {
            wheel: wheel.to_string(),
            message: format!("it has no `{name}`"),
        })?;
    let bytes = read_member(zip, index, wheel)?;
    String::from_utf8(bytes).map_err(|_| WheelError::Invalid {
        wheel: wheel.to_string(),
        message: format!("`{name}` is not UTF-8"),
    })
}

fn read_member(
    zip: &mut zip::ZipArchive<BufReader<File>>,
    index: usize,
    wheel: &str,
) -> Result<Vec<u8>, WheelError> {
    let zip_err = |e: String| WheelError::Zip {
        wheel: wheel.to_string(),
        message: e,
    };
    let member = zip.by_index(index).map_err(|e| zip_err(e.to_string()))?;
    if member.size() > MAX_SCRIPT {
        return Err(zip_err(format!("`{}` is too large to read", member.name())));
    }
    let mut out = Vec::with_capacity(member.size() as usize);
    member
        .take(MAX_SCRIPT)
        .read_to_end(&mut out)
        .map_err(|e| zip_err(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_like_pip() {
        let site = "opt/venv/lib/python3.11/site-packages";
        assert_eq!(relative_to(site, "opt/venv/bin/x"), "../../../bin/x");
        assert_eq!(relative_to(site, &format!("{site}/six.py")), "six.py");
        assert_eq!(
            relative_to(site, "opt/venv/share/jupyter/a.json"),
            "../../../share/jupyter/a.json"
        );
    }

    #[test]
    fn member_names() {
        assert!(check_member_name("a/b.py").is_ok());
        for bad in ["/etc/passwd", "a/../../x", "a\\b", "C:/x", "./a"] {
            assert!(check_member_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_go_under_the_normalized_project_name() {
        assert_eq!(project_name("data_demo"), "data-demo");
        assert_eq!(project_name("Zope.Interface"), "zope-interface");
        assert_eq!(project_name("a__b"), "a-b");
    }

    #[test]
    fn dist_info_lookup() {
        let names = vec!["MarkupSafe-2.1.5.dist-info/RECORD".to_string()];
        assert_eq!(
            find_dist_info(&names, "MarkupSafe", "2.1.5").as_deref(),
            Some("MarkupSafe-2.1.5.dist-info")
        );
        assert_eq!(
            dist_and_version("six-1.16.0-py2.py3-none-any.whl")
                .unwrap()
                .1,
            "1.16.0"
        );
    }
}
