//! Software bill of materials: a CycloneDX 1.5 JSON document made from the lock.
//!
//! Everything in it comes from the lock, so the same lock gives the same bytes: the timestamp
//! is the lock's source date epoch and the serial number is derived from the content.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::lock::Lock;
use crate::platform::Platform;

/// Media type of a CycloneDX JSON document, as used for the OCI artifact.
pub const MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// Errors met while writing an SBOM.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error("Failed to write SBOM `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The file name of one target's SBOM on one platform: `<target>-<os>-<arch>.cdx.json`.
pub fn file_name(target: &str, platform: Platform) -> String {
    format!("{target}-{}.cdx.json", platform.as_str().replace('/', "-"))
}

/// Writes the SBOM of one target on one platform to `path`, atomically.
pub fn write(lock: &Lock, target: &str, platform: Platform, path: &Path) -> Result<(), SbomError> {
    crate::fsutil::write_atomic(path, cyclonedx(lock, target, platform).as_bytes()).map_err(
        |source| SbomError::Write {
            path: path.to_path_buf(),
            source,
        },
    )
}

/// The SBOM of one target on one platform, as pretty JSON with a trailing newline.
pub fn cyclonedx(lock: &Lock, target: &str, platform: Platform) -> String {
    let mut components = Vec::new();
    let mut dependencies = Vec::new();

    if let Some(base) = lock.base_for(platform)
        && let Some(digest) = &base.manifest_digest
    {
        components.push(json!({
            "type": "container",
            "bom-ref": "base-image",
            "name": lock.base.reference,
            "version": digest,
            "hashes": [{"alg": "SHA-256", "content": digest.trim_start_matches("sha256:")}],
            "properties": [
                {"name": "envbuild:python-version", "value": base.python_version},
                {"name": "envbuild:libc", "value": base.libc},
            ],
        }));
    }

    for p in lock.packages_in(target) {
        let Some(wheel) = p.wheel_for(platform) else {
            continue;
        };
        let purl = format!("pkg:pypi/{}@{}", p.name, p.version);
        components.push(json!({
            "type": "library",
            "bom-ref": purl,
            "name": p.name,
            "version": p.version,
            "purl": format!("{purl}?file_name={}", wheel.file),
            "hashes": [{"alg": "SHA-256", "content": wheel.sha256}],
            "externalReferences": [{"type": "distribution", "url": wheel.url}],
        }));
        let deps: Vec<String> = p
            .dependencies
            .iter()
            .filter_map(|d| lock.packages.iter().find(|q| &q.name == d))
            .filter(|q| q.wheel_for(platform).is_some())
            .map(|q| format!("pkg:pypi/{}@{}", q.name, q.version))
            .collect();
        dependencies.push(json!({"ref": purl, "dependsOn": deps}));
    }

    for e in lock.extensions_in(target) {
        let Some(artifact) = e.artifact_for(platform) else {
            continue;
        };
        let (publisher, name) = e.id.split_once('.').unwrap_or(("", e.id.as_str()));
        // purl has no type for VS Code extensions; `generic` with a namespace is the fallback
        // the purl spec gives for such ecosystems.
        let purl = format!("pkg:generic/{publisher}/{name}@{}", e.version);
        components.push(json!({
            "type": "application",
            "bom-ref": purl,
            "group": publisher,
            "name": name,
            "version": e.version,
            "purl": purl,
            "hashes": [{"alg": "SHA-256", "content": artifact.sha256}],
            "externalReferences": [{"type": "distribution", "url": artifact.url}],
            "properties": [{
                "name": "envbuild:vscode-target-platform",
                "value": artifact.target_platform,
            }],
        }));
    }

    let timestamp = jiff::Timestamp::from_second(lock.source_date_epoch)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{
                "type": "application",
                "name": "envbuild",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "container",
                "bom-ref": format!("envbuild-target-{target}"),
                "name": target,
                "properties": [{"name": "envbuild:platform", "value": platform.as_str()}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    let serial = serial_number(&doc);
    doc["serialNumber"] = Value::String(serial);
    format!(
        "{}\n",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    )
}

/// A UUID (version 5 layout) derived from the document, so rebuilding gives the same one.
fn serial_number(doc: &Value) -> String {
    let hash = Sha256::digest(doc.to_string().as_bytes());
    let mut b: [u8; 16] = hash[..16].try_into().unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_number_is_a_uuid() {
        let s = serial_number(&json!({"a": 1}));
        let re = regex::Regex::new(
            "^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        )
        .unwrap();
        assert!(re.is_match(&s), "{s}");
        assert_ne!(s, serial_number(&json!({"a": 2})));
    }
}
