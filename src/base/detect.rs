//! Detecting the Python interpreter and the C library in a base image's layers, by reading the
//! layer tarballs (nothing in the image runs).

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use flate2::read::GzDecoder;

use crate::lock::BlobLock;
use crate::platform::Platform;
use crate::spec::Libc;

/// What was found in a base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detected {
    pub python_version: Option<String>,
    pub interpreter: Option<String>,
    pub libc: Option<Libc>,
}

/// What a path in the merged file system is, as far as detection cares.
#[derive(Debug, Clone)]
enum Node {
    File,
    Link,
}

/// Facts gathered while streaming; later layers override earlier ones.
#[derive(Default)]
struct Scan {
    nodes: BTreeMap<String, Node>,
    /// Versions of dpkg packages (`libc6`, `python3.X`) from `var/lib/dpkg/status`.
    dpkg: BTreeMap<String, String>,
    /// Versions from Alpine's `lib/apk/db/installed`.
    apk: BTreeMap<String, String>,
    /// Highest `GLIBC_2.N` symbol version seen in a `libc.so.6`.
    glibc_symbols: Option<(u16, u16)>,
}

/// Streams the layers (in order) and reports what they hold for `platform`.
pub fn detect(
    layer_paths: &[PathBuf],
    layers: &[BlobLock],
    platform: Platform,
    config_env: &[String],
) -> Result<Detected, String> {
    let mut scan = Scan::default();
    for (path, blob) in layer_paths.iter().zip(layers) {
        scan_layer(&mut scan, path, blob, platform)
            .map_err(|e| format!("reading layer `{}`: {e}", blob.digest))?;
    }
    Ok(conclude(&scan, platform, config_env))
}

fn scan_layer(
    scan: &mut Scan,
    path: &PathBuf,
    blob: &BlobLock,
    platform: Platform,
) -> std::io::Result<()> {
    let file = BufReader::new(std::fs::File::open(path)?);
    let reader: Box<dyn Read> =
        if blob.media_type.ends_with("gzip") || blob.media_type.ends_with(".gz") {
            Box::new(GzDecoder::new(file))
        } else if blob.media_type.ends_with("zstd") {
            return Err(std::io::Error::other("zstd layers are not supported yet"));
        } else {
            Box::new(file)
        };
    let libc_paths = [
        format!("lib/{}/libc.so.6", platform.multiarch()),
        format!("usr/lib/{}/libc.so.6", platform.multiarch()),
        "lib64/libc.so.6".to_string(),
        "usr/lib64/libc.so.6".to_string(),
    ];

    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let name = name.trim_end_matches('/').to_string();

        // OCI whiteouts: `.wh..wh..opq` empties a folder, `.wh.NAME` deletes NAME.
        let (dir, base) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
        if base == ".wh..wh..opq" {
            let prefix = format!("{dir}/");
            scan.nodes.retain(|k, _| !k.starts_with(&prefix));
            continue;
        }
        if let Some(gone) = base.strip_prefix(".wh.") {
            let gone = if dir.is_empty() {
                gone.to_string()
            } else {
                format!("{dir}/{gone}")
            };
            let prefix = format!("{gone}/");
            scan.nodes
                .retain(|k, _| *k != gone && !k.starts_with(&prefix));
            continue;
        }

        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            scan.nodes.insert(name, Node::Link);
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        scan.nodes.insert(name.clone(), Node::File);

        if name == "var/lib/dpkg/status" {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            scan.dpkg = parse_control(&text, "Package: ", "Version: ");
        } else if name == "lib/apk/db/installed" {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            scan.apk = parse_control(&text, "P:", "V:");
        } else if libc_paths.contains(&name) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            scan.glibc_symbols = max_glibc_symbol(&bytes).max(scan.glibc_symbols);
        }
    }
    Ok(())
}

/// Reads `Package`/`Version` pairs from a dpkg status or apk database.
fn parse_control(text: &str, name_key: &str, version_key: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::trim)
        };
        if let (Some(name), Some(version)) = (field(name_key), field(version_key)) {
            out.insert(name.to_string(), version.to_string());
        }
    }
    out
}

/// The highest `GLIBC_2.N` version tag in a libc binary: the version it implements.
fn max_glibc_symbol(bytes: &[u8]) -> Option<(u16, u16)> {
    let needle = b"GLIBC_2.";
    let mut best: Option<(u16, u16)> = None;
    let mut i = 0;
    while let Some(pos) = find(&bytes[i..], needle) {
        let start = i + pos + needle.len();
        let digits: Vec<u8> = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        // `GLIBC_2.2.5` style minor-minor versions are older than any two-part one that follows.
        if let Ok(minor) = String::from_utf8_lossy(&digits).parse::<u16>() {
            best = best.max(Some((2, minor)));
        }
        i = start;
    }
    best
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `2.36-9+deb12u4` → (2, 36); `1.2.4-r2` → (1, 2).
fn major_minor(version: &str) -> Option<(u16, u16)> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `3.11.2-6+deb12u6` → `3.11.2`.
fn upstream_version(version: &str) -> String {
    let v = version.split(['-', '+', '~']).next().unwrap_or(version);
    v.split(':').next_back().unwrap_or(v).to_string()
}

fn conclude(scan: &Scan, platform: Platform, config_env: &[String]) -> Detected {
    let mut out = Detected::default();

    // Python: prefer `/usr/local` (how the official Python images install it), then `/usr`.
    'found: for prefix in ["usr/local", "usr"] {
        for minor in (6..=20).rev() {
            let bin = format!("{prefix}/bin/python3.{minor}");
            let stdlib = format!("{prefix}/lib/python3.{minor}/os.py");
            if scan.nodes.contains_key(&bin) && scan.nodes.contains_key(&stdlib) {
                out.interpreter = Some(format!("/{bin}"));
                let from_env = config_env
                    .iter()
                    .find_map(|e| e.strip_prefix("PYTHON_VERSION="))
                    .filter(|v| v.starts_with(&format!("3.{minor}.")));
                let from_dpkg = scan
                    .dpkg
                    .get(&format!("python3.{minor}"))
                    .map(|v| upstream_version(v));
                out.python_version = Some(
                    from_env
                        .map(str::to_string)
                        .or(from_dpkg)
                        .unwrap_or_else(|| format!("3.{minor}.0")),
                );
                break 'found;
            }
        }
    }

    // C library: musl's loader names the machine; glibc from dpkg or the library itself.
    let musl_loader = format!("lib/ld-musl-{}.so.1", platform.machine());
    if scan.nodes.contains_key(&musl_loader) {
        let (major, minor) = scan
            .apk
            .get("musl")
            .and_then(|v| major_minor(v))
            .unwrap_or((1, 2));
        out.libc = Some(Libc::Musl { major, minor });
    } else if let Some((major, minor)) = scan
        .dpkg
        .get("libc6")
        .and_then(|v| major_minor(v))
        .or(scan.glibc_symbols)
    {
        out.libc = Some(Libc::Glibc { major, minor });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_symbol_scan_finds_highest() {
        let bytes = b"\0GLIBC_2.2.5\0GLIBC_2.17\0GLIBC_2.36\0GLIBC_2.4\0GLIBC_PRIVATE\0";
        assert_eq!(max_glibc_symbol(bytes), Some((2, 36)));
    }

    #[test]
    fn versions_from_package_databases() {
        assert_eq!(major_minor("2.36-9+deb12u4"), Some((2, 36)));
        assert_eq!(major_minor("1.2.4-r2"), Some((1, 2)));
        assert_eq!(upstream_version("3.11.2-6+deb12u6"), "3.11.2");
        let db = parse_control(
            "Package: libc6\nStatus: ok\nVersion: 2.36-9\n\nPackage: x\n",
            "Package: ",
            "Version: ",
        );
        assert_eq!(db.get("libc6").map(String::as_str), Some("2.36-9"));
    }
}
