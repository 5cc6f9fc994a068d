//! Core metadata (`METADATA`, the email-header format of the core metadata spec): the fields
//! resolution needs.

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::Requirement;

/// What resolution reads from a distribution's metadata.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub name: String,
    pub version: Version,
    pub requires_dist: Vec<Requirement>,
    pub requires_python: Option<VersionSpecifiers>,
}

/// Parses `METADATA` text. Header lines end at the first empty line; continuation lines
/// (starting with whitespace) belong to the field before.
pub fn parse(text: &str) -> Result<Metadata, String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        // Only a truly empty line ends the headers. A line of spaces is a folded continuation:
        // hatchling writes a multi-line `License` that way, and stopping there would drop
        // every `Requires-Dist` after it without a word.
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };

    let name = get("name").ok_or("no `Name` field")?.to_string();
    let version = get("version").ok_or("no `Version` field")?;
    let version = Version::from_str(version).map_err(|e| format!("`Version`: {e}"))?;
    let requires_python = match get("requires-python") {
        Some(s) if !s.is_empty() => {
            Some(VersionSpecifiers::from_str(s).map_err(|e| format!("`Requires-Python`: {e}"))?)
        }
        _ => None,
    };
    let mut requires_dist = Vec::new();
    for (_, value) in fields.iter().filter(|(k, _)| k == "requires-dist") {
        let req =
            Requirement::from_str(value).map_err(|e| format!("`Requires-Dist: {value}`: {e}"))?;
        requires_dist.push(req);
    }
    Ok(Metadata {
        name,
        version,
        requires_dist,
        requires_python,
    })
}

/// Reads `{name}-{version}.dist-info/METADATA` out of a wheel on disk.
pub fn read_from_wheel(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    // The binary distribution format puts exactly one `.dist-info` folder at the root.
    let name = zip
        .file_names()
        .find(|n| {
            let mut parts = n.split('/');
            matches!(
                (parts.next(), parts.next(), parts.next()),
                (Some(dir), Some("METADATA"), None) if dir.ends_with(".dist-info")
            )
        })
        .map(str::to_string)
        .ok_or("the wheel has no `.dist-info/METADATA`")?;
    let mut entry = zip.by_name(&name).map_err(|e| e.to_string())?;
    let mut text = String::new();
    // Metadata is small; a bound keeps a hostile archive from filling memory.
    (&mut entry)
        .take(16 * 1024 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_stops_at_body() {
        let text = "Metadata-Version: 2.1\nName: Foo\nVersion: 1.0\n\
            Requires-Python: >=3.8\nRequires-Dist: bar>=1\nRequires-Dist: baz; extra == 'x'\n\
            Summary: a\n  continued\n\nRequires-Dist: not-a-header\n";
        let m = parse(text).unwrap();
        assert_eq!(m.name, "Foo");
        assert_eq!(m.version.to_string(), "1.0");
        assert_eq!(m.requires_dist.len(), 2);
        assert!(m.requires_python.is_some());
        assert!(parse("Name: x\n").is_err());

        let folded = "Name: a\nVersion: 1\nLicense: BSD\n        \n        Clause 1\n\
            Requires-Dist: b\n\nbody\n";
        assert_eq!(parse(folded).unwrap().requires_dist.len(), 1);
        assert!(parse("Name: x\nVersion: 1\nRequires-Dist: ???\n").is_err());
    }
}
