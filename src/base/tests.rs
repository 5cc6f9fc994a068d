//! Base resolution against OCI layouts made here, one and two platforms.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::*;

fn put_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let hex = hex::encode(Sha256::digest(bytes));
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len() as u64)
}

fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        tar.append_data(&mut h, name, *data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn image(layout: &Path, arch: &str, files: &[(&str, &[u8])]) -> serde_json::Value {
    let (ldig, lsize) = put_blob(layout, &layer(files));
    let config = json!({"architecture": arch, "os": "linux", "config": {"Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:00"]}});
    let (cdig, csize) = put_blob(layout, config.to_string().as_bytes());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ldig, "size": lsize}]});
    let (mdig, msize) = put_blob(layout, manifest.to_string().as_bytes());
    json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig, "size": msize,
        "platform": {"architecture": arch, "os": "linux"}})
}

fn debian_files(libc: &'static str) -> Vec<(&'static str, &'static [u8])> {
    let status: &'static str = Box::leak(
        format!(
            "Package: libc6\nVersion: {libc}\n\nPackage: python3.11\nVersion: 3.11.2-6+deb12u6\n"
        )
        .into_boxed_str(),
    );
    vec![
        ("usr/bin/python3.11", b"\x7fELF"),
        ("usr/lib/python3.11/os.py", b"# os"),
        ("var/lib/dpkg/status", status.as_bytes()),
    ]
}

#[test]
fn multi_platform_layout_resolves_and_detects() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("base");
    let amd = image(&layout, "amd64", &debian_files("2.36-9+deb12u4"));
    let arm = image(&layout, "arm64", &debian_files("2.36-9+deb12u4"));
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [amd, arm]});
    let (idig, isize) = put_blob(&layout, index.to_string().as_bytes());
    let top = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": idig, "size": isize, "annotations": {"org.opencontainers.image.ref.name": "bookworm"}}]});
    std::fs::write(layout.join("index.json"), top.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();

    let cache = Cache::new(Some(dir.path().join("cache")));
    let reference = "oci:base:bookworm";
    let base = BaseRef::parse(reference, dir.path());
    let platforms = [Platform::LinuxAmd64, Platform::LinuxArm64];
    let lock = lock_base(
        reference,
        &base,
        &platforms,
        &Overrides::default(),
        &cache,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(lock.index_digest.as_deref(), Some(idig.as_str()));
    assert_eq!(lock.platforms.len(), 2);
    let p = &lock.platforms[1];
    assert_eq!(p.platform, Platform::LinuxArm64);
    assert_eq!(p.python_version, "3.11.2");
    assert_eq!(p.interpreter, "/usr/bin/python3.11");
    assert_eq!(p.libc, "glibc 2.36");
    assert_ne!(
        lock.platforms[0].manifest_digest,
        lock.platforms[1].manifest_digest
    );

    // A platform the base lacks is named, with what it has.
    let err = lock_base(
        reference,
        &base,
        &[Platform::LinuxS390x],
        &Overrides::default(),
        &cache,
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64, linux/arm64"),
        "{err}"
    );

    // A missing tag is named.
    let bad = BaseRef::parse("oci:base:nope", dir.path());
    let err = lock_base(
        "oci:base:nope",
        &bad,
        &platforms,
        &Overrides::default(),
        &cache,
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no tag `nope`"), "{err}");
}

#[test]
fn base_without_python_asks_for_override() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("base");
    let desc = image(&layout, "amd64", &[("etc/hostname", b"x")]);
    std::fs::write(
        layout.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [desc]}).to_string(),
    )
    .unwrap();
    let cache = Cache::new(Some(dir.path().join("cache")));
    let base = BaseRef::parse("oci:base", dir.path());
    let err = lock_base(
        "oci:base",
        &base,
        &[Platform::LinuxAmd64],
        &Overrides::default(),
        &cache,
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("Could not detect a Python interpreter"),
        "{err}"
    );
    assert!(err.contains("hint: set `version`"), "{err}");

    let overrides = Overrides {
        python_version: Some("3.12".into()),
        interpreter: Some("/usr/bin/python3".into()),
        libc: Some(Libc::Musl { major: 1, minor: 2 }),
    };
    let ok = lock_base(
        "oci:base",
        &base,
        &[Platform::LinuxAmd64],
        &overrides,
        &cache,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(ok.platforms[0].python_version, "3.12.0");
}

#[test]
fn scratch_needs_all_three_facts() {
    let cache = Cache::new(Some(tempfile::tempdir().unwrap().path().to_path_buf()));
    let err = lock_base(
        "scratch",
        &BaseRef::Scratch,
        &[Platform::LinuxAmd64],
        &Overrides::default(),
        &cache,
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("scratch"), "{err}");
    let _ = std::io::sink().write(b"");
}

#[test]
fn layout_reference_parsing() {
    let d = Path::new("/spec");
    assert_eq!(
        BaseRef::parse("oci:out/base:v1", d),
        BaseRef::Layout {
            path: "/spec/out/base".into(),
            tag: Some("v1".into())
        }
    );
    assert_eq!(
        BaseRef::parse("oci:/abs/base", d),
        BaseRef::Layout {
            path: "/abs/base".into(),
            tag: None
        }
    );
    assert_eq!(
        BaseRef::parse("localhost:5000/x:1", d),
        BaseRef::Registry("localhost:5000/x:1".into())
    );
}
