//! A stand-in for the official `python:3.11-slim-bookworm` image as a local OCI layout: one
//! small layer per platform with what envbuild's base detection reads (the interpreter under
//! `/usr/local`, its standard library, Debian's package database naming `libc6`) and a config
//! with `PYTHON_VERSION`, as the official image has.

#![allow(dead_code)]

use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The Python version the stand-in claims, like the official image's `PYTHON_VERSION`.
pub const PYTHON_VERSION: &str = "3.11.10";

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let hex = hex::encode(Sha256::digest(bytes));
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len() as u64)
}

fn layer() -> Vec<u8> {
    let status = "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u8\n\n";
    let files: [(&str, &[u8], u32); 3] = [
        ("usr/local/bin/python3.11", b"\x7fELF stand-in", 0o755),
        ("usr/local/lib/python3.11/os.py", b"# os\n", 0o644),
        ("var/lib/dpkg/status", status.as_bytes(), 0o644),
    ];
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        tar.append_data(&mut h, name, data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn manifest(layout: &Path, arch: &str) -> Value {
    let layer = layer();
    let (ldig, lsize) = put_blob(layout, &layer);
    let mut gz = flate2::read::GzDecoder::new(layer.as_slice());
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut gz, &mut raw).unwrap();
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&raw)));
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": [
                "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
                format!("PYTHON_VERSION={PYTHON_VERSION}"),
            ],
            "Cmd": ["python3"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let (cdig, csize) = put_blob(layout, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": cdig,
            "size": csize,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": ldig,
            "size": lsize,
        }],
    });
    let (mdig, msize) = put_blob(layout, manifest.to_string().as_bytes());
    json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": mdig,
        "size": msize,
        "platform": {"architecture": arch, "os": "linux"},
    })
}

/// Writes the stand-in for the given architectures (`amd64`, `arm64`) as an OCI layout at
/// `layout`, tagged `3.11-slim-bookworm`; returns the spec's base reference for it.
pub fn python_slim(layout: &Path, arches: &[&str]) -> String {
    let manifests: Vec<Value> = arches.iter().map(|a| manifest(layout, a)).collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let (idig, isize) = put_blob(layout, index.to_string().as_bytes());
    let top = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": idig,
            "size": isize,
            "annotations": {"org.opencontainers.image.ref.name": "3.11-slim-bookworm"},
        }],
    });
    std::fs::write(layout.join("index.json"), top.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    format!("oci:{}:3.11-slim-bookworm", layout.display())
}
