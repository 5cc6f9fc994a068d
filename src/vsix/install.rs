//! Installing a VSIX without VS Code: its `extension/` folder becomes layer entries, and the
//! extensions directory gets the `extensions.json` index that VS Code's server keeps.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::{Value, json};
use zip::CompressionMethod;
use zip::ZipArchive;

use super::VsixError;
use crate::layer::{Entry, EntryKind, Source};
use crate::lock::{ExtensionArtifact, ExtensionLock};

/// Members read whole (`package.json`, the manifest) are refused past this size.
const MAX_METADATA_BYTES: u64 = 16 * 1024 * 1024;

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;

/// What a VSIX says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VsixIdentity {
    pub publisher: String,
    pub name: String,
    pub version: String,
    /// `TargetPlatform` of the manifest's `Identity`; `None` for a universal VSIX.
    pub target_platform: Option<String>,
}

impl VsixIdentity {
    /// `publisher.name`, lower case.
    pub fn id(&self) -> String {
        format!("{}.{}", self.publisher, self.name).to_ascii_lowercase()
    }
}

/// Reads `extension/package.json` and `extension.vsixmanifest` of a VSIX.
pub(crate) fn read_identity(vsix: &Path) -> Result<VsixIdentity, VsixError> {
    let mut zip = open(vsix)?;
    let package = read_member(&mut zip, vsix, "extension/package.json")?
        .ok_or_else(|| bad_vsix(vsix, "it has no `extension/package.json`"))?;
    let package: Value = serde_json::from_slice(&package)
        .map_err(|e| bad_vsix(vsix, &format!("`extension/package.json`: {e}")))?;
    let field = |key: &str| {
        package
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad_vsix(vsix, &format!("`extension/package.json` has no `{key}`")))
    };
    let (publisher, name, version) = (field("publisher")?, field("name")?, field("version")?);

    // vsce writes `<Identity ... TargetPlatform="linux-x64"/>` for platform-specific builds.
    let manifest = read_member(&mut zip, vsix, "extension.vsixmanifest")?
        .ok_or_else(|| bad_vsix(vsix, "it has no `extension.vsixmanifest`"))?;
    let manifest = String::from_utf8_lossy(&manifest);
    let target_platform = regex::Regex::new(r#"<Identity\b[^>]*\bTargetPlatform="([^"]*)""#)
        .ok()
        .and_then(|re| re.captures(&manifest).map(|c| c[1].to_string()))
        .filter(|t| !t.is_empty() && t != "universal");
    Ok(VsixIdentity {
        publisher,
        name,
        version,
        target_platform,
    })
}

/// The folder VS Code gives an extension: `<id>-<version>[-<targetPlatform>]`.
pub fn folder_name(ext: &ExtensionLock, artifact: &ExtensionArtifact) -> String {
    let mut name = format!("{}-{}", ext.id.to_ascii_lowercase(), ext.version);
    if !matches!(
        artifact.target_platform.as_str(),
        "universal" | "undefined" | ""
    ) {
        name.push('-');
        name.push_str(&artifact.target_platform);
    }
    name
}

/// Entries unpacking the VSIX's `extension/` folder into its folder under `extensions_dir`.
pub fn extension_entries(
    ext: &ExtensionLock,
    artifact: &ExtensionArtifact,
    vsix: &Path,
    extensions_dir: &str,
) -> Result<Vec<Entry>, VsixError> {
    let root = under(extensions_dir, &folder_name(ext, artifact));
    let mut zip = open(vsix)?;
    let unsafe_entry = |entry: &str, reason: &str| VsixError::UnsafeEntry {
        id: ext.id.clone(),
        path: vsix.to_path_buf(),
        entry: entry.to_string(),
        reason: reason.to_string(),
    };

    // The zip reader keeps one member per name, so a repeated name is only visible in the
    // central directory itself; which copy an unpacker takes differs between tools.
    let listed = central_directory_names(vsix, zip.central_directory_start())?;
    if listed.len() != zip.len() {
        let mut seen = BTreeSet::new();
        let twice = listed.iter().find(|n| !seen.insert(n.as_str()));
        let name = twice.map(String::as_str).unwrap_or("?");
        return Err(unsafe_entry(name, "it appears twice in the archive"));
    }

    let mut dirs = BTreeSet::new();
    let mut files = Vec::new();
    let mut names = BTreeSet::new();
    for index in 0..zip.len() {
        let member = zip
            .by_index_raw(index)
            .map_err(|e| bad_vsix(vsix, &e.to_string()))?;
        let name = member.name().to_string();
        // Every member is checked, also those outside `extension/`: an archive that carries
        // one escaping path is not trusted for the rest.
        if let Some(reason) = unsafe_name(&name) {
            return Err(unsafe_entry(&name, reason));
        }
        let mode = member.unix_mode().unwrap_or(0);
        if mode & S_IFMT == S_IFLNK {
            return Err(unsafe_entry(&name, "it is a symbolic link"));
        }
        let Some(rel) = name.strip_prefix("extension/") else {
            continue;
        };
        let is_dir = member.is_dir();
        let rel = rel.trim_end_matches('/').to_string();
        if rel.is_empty() {
            continue;
        }
        if is_dir {
            dirs.insert(rel);
            continue;
        }
        if !names.insert(rel.clone()) {
            return Err(unsafe_entry(&name, "it appears twice in the archive"));
        }
        if member.encrypted()
            || !matches!(
                member.compression(),
                CompressionMethod::Stored | CompressionMethod::Deflated
            )
        {
            return Err(bad_vsix(
                vsix,
                &format!(
                    "`{name}` is encrypted or compressed \
                with a method other than deflate"
                ),
            ));
        }
        let exec = mode & 0o111 != 0;
        files.push((rel, index, member.size(), exec));
    }

    // Parent folders are entries of their own, and a file may not also be a folder.
    for (rel, ..) in &files {
        let mut parent = rel.as_str();
        while let Some((p, _)) = parent.rsplit_once('/') {
            dirs.insert(p.to_string());
            parent = p;
        }
    }
    if let Some(clash) = dirs.iter().find(|d| names.contains(*d)) {
        return Err(unsafe_entry(
            &format!("extension/{clash}"),
            "it is both a file and a folder",
        ));
    }

    let mut entries = vec![Entry::dir(root.clone())];
    entries.extend(dirs.iter().map(|d| Entry::dir(format!("{root}/{d}"))));
    for (rel, index, size, exec) in files {
        entries.push(Entry {
            path: format!("{root}/{rel}"),
            mode: if exec { 0o755 } else { 0o644 },
            kind: EntryKind::File {
                size,
                source: Source::Zip {
                    archive: vsix.to_path_buf(),
                    index,
                    sha256: None,
                },
            },
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// Why a member name is unsafe to unpack, if it is.
fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.starts_with('/') {
        return Some("it is an absolute path");
    }
    if name.contains('\\') || name.contains('\0') {
        return Some("it holds a backslash or NUL");
    }
    if name.len() >= 2 && name.as_bytes()[1] == b':' {
        return Some("it is an absolute path");
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    for part in trimmed.split('/') {
        match part {
            ".." => return Some("it leaves the archive's folder with `..`"),
            "." | "" => return Some("it has an empty or `.` path component"),
            _ => {}
        }
    }
    None
}

/// `extensions.json` as VS Code's server writes it, for the extensions installed in a layer.
pub fn extensions_json(
    installed: &[(&ExtensionLock, &ExtensionArtifact)],
    extensions_dir: &str,
    timestamp_ms: i64,
) -> Entry {
    let dir = extensions_dir.trim_matches('/');
    let mut items: Vec<(String, Value)> = installed
        .iter()
        .map(|(ext, artifact)| {
            let folder = folder_name(ext, artifact);
            (
                folder.clone(),
                record(ext, artifact, dir, &folder, timestamp_ms),
            )
        })
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.dedup_by(|a, b| a.0 == b.0);
    let array = Value::Array(items.into_iter().map(|(_, v)| v).collect());
    let bytes = serde_json::to_vec(&array).unwrap_or_default();
    Entry::bytes(under(dir, "extensions.json"), 0o644, bytes)
}

/// `rel` under an image folder, as an entry path (no leading `/`, also when `dir` is `/`).
pub(crate) fn under(dir: &str, rel: &str) -> String {
    match dir.trim_matches('/') {
        "" => rel.to_string(),
        dir => format!("{dir}/{rel}"),
    }
}

fn record(
    ext: &ExtensionLock,
    artifact: &ExtensionArtifact,
    dir: &str,
    folder: &str,
    timestamp_ms: i64,
) -> Value {
    // The lock does not record whether an artifact came from a gallery; local files are
    // the only ones known to be plain VSIX installs.
    let source = if artifact.url.starts_with("file:") {
        "vsix"
    } else {
        "gallery"
    };
    json!({
        "identifier": { "id": ext.id.to_ascii_lowercase() },
        "version": ext.version,
        "location": { "$mid": 1, "path": format!("/{}", under(dir, folder)), "scheme": "file" },
        "relativeLocation": folder,
        "metadata": {
            "installedTimestamp": timestamp_ms,
            // The lock pins every version and the image folder is not the user's to change:
            // a pinned extension is never auto-updated by the IDE.
            "pinned": true,
            "source": source,
            "targetPlatform": artifact.target_platform,
            "isApplicationScoped": false,
            "isMachineScoped": false,
            "isBuiltin": false,
            "isPreReleaseVersion": false,
            "hasPreReleaseVersion": false,
            "preRelease": false,
            "updated": false,
        },
    })
}

/// Member names as the central directory lists them (APPNOTE 4.3.12), duplicates kept.
fn central_directory_names(vsix: &Path, start: u64) -> Result<Vec<String>, VsixError> {
    let io_err = |source| VsixError::Io {
        path: vsix.to_path_buf(),
        source,
    };
    let mut file = BufReader::new(File::open(vsix).map_err(io_err)?);
    file.seek(SeekFrom::Start(start)).map_err(io_err)?;
    let mut names = Vec::new();
    loop {
        let mut header = [0u8; 46];
        match file.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io_err(e)),
        }
        if header[..4] != [0x50, 0x4b, 0x01, 0x02] {
            break;
        }
        let len = |at: usize| u64::from(u16::from_le_bytes([header[at], header[at + 1]]));
        let mut name = vec![0u8; len(28) as usize];
        file.read_exact(&mut name).map_err(io_err)?;
        let skip = len(30) + len(32);
        file.seek_relative(skip as i64).map_err(io_err)?;
        names.push(String::from_utf8_lossy(&name).into_owned());
    }
    Ok(names)
}

fn open(vsix: &Path) -> Result<ZipArchive<BufReader<File>>, VsixError> {
    let file = File::open(vsix).map_err(|source| VsixError::Io {
        path: vsix.to_path_buf(),
        source,
    })?;
    ZipArchive::new(BufReader::new(file)).map_err(|e| bad_vsix(vsix, &e.to_string()))
}

fn read_member(
    zip: &mut ZipArchive<BufReader<File>>,
    vsix: &Path,
    name: &str,
) -> Result<Option<Vec<u8>>, VsixError> {
    let Some(index) = zip.index_for_name(name) else {
        return Ok(None);
    };
    let member = zip
        .by_index(index)
        .map_err(|e| bad_vsix(vsix, &format!("`{name}`: {e}")))?;
    if member.size() > MAX_METADATA_BYTES {
        return Err(bad_vsix(vsix, &format!("`{name}` is too large")));
    }
    let mut data = Vec::new();
    member
        .take(MAX_METADATA_BYTES)
        .read_to_end(&mut data)
        .map_err(|e| bad_vsix(vsix, &format!("`{name}`: {e}")))?;
    Ok(Some(data))
}

fn bad_vsix(vsix: &Path, message: &str) -> VsixError {
    VsixError::BadVsix {
        path: vsix.to_path_buf(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_are_unsafe() {
        for name in [
            "/etc/passwd",
            "extension/../../x",
            "C:/x",
            "a\\b",
            "a//b",
            "./a",
        ] {
            assert!(unsafe_name(name).is_some(), "{name}");
        }
        for name in [
            "extension/",
            "extension/a/b.js",
            "[Content_Types].xml",
            "a..b",
        ] {
            assert!(unsafe_name(name).is_none(), "{name}");
        }
    }
}
