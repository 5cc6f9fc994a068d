//! OCI layouts and load archives, checked by `skopeo` and `umoci` as independent readers.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use envbuild::image::{
    ConfigSpec, Descriptor, ImageError, Layout, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST, config_json, index_json, manifest_json, write_archive,
};
use envbuild::layer::{Entry, LayerInfo, LayerOptions, write_layer};
use envbuild::platform::Platform;
use serde_json::Value;

const CREATED: i64 = 1_700_000_000;

/// Runs a tool and returns its stdout; a missing tool fails with how to install it.
fn run(tool: &str, args: &[&str]) -> String {
    let out = match Command::new(tool).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{tool}` is missing: apt-get install {tool}")
        }
        Err(e) => panic!("cannot run `{tool}`: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn skopeo_json(args: &[&str]) -> Value {
    serde_json::from_str(&run("skopeo", args)).unwrap()
}

fn spec(platform: Platform) -> ConfigSpec {
    ConfigSpec {
        platform,
        created: CREATED,
        env: vec![
            ("PATH".into(), "/opt/venv/bin:/usr/bin:/bin".into()),
            ("VIRTUAL_ENV".into(), "/opt/venv".into()),
        ],
        user: Some("1000:1000".into()),
        workdir: Some("/work".into()),
        entrypoint: None,
        cmd: Some(vec!["/opt/venv/bin/hello".into()]),
        labels: BTreeMap::from([("org.example.k".into(), "v".into())]),
    }
}

fn layers() -> Vec<Vec<Entry>> {
    vec![
        vec![
            Entry::dir("work"),
            Entry::bytes("opt/venv/pyvenv.cfg", 0o644, "home = /usr/bin\n"),
            Entry::symlink("opt/venv/bin/python", "/usr/bin/python3"),
        ],
        vec![
            Entry::bytes("opt/venv/bin/hello", 0o755, "#!/bin/sh\necho hello\n"),
            Entry::bytes(long_path(), 0o644, "long\n"),
        ],
    ]
}

/// Longer than a tar header's 100-byte name field.
fn long_path() -> String {
    format!("opt/venv/lib/{}/mod.py", "p".repeat(120))
}

/// Writes a two-layer image for `platform` into the layout and returns its manifest.
fn build(layout: &Layout, platform: Platform) -> (Descriptor, Vec<LayerInfo>) {
    let opts = LayerOptions {
        mtime: CREATED as u64,
    };
    let infos: Vec<LayerInfo> = layers()
        .into_iter()
        .map(|entries| write_layer(entries, &opts, &layout.blobs_dir()).unwrap())
        .collect();
    let history: Vec<(String, String)> = infos
        .iter()
        .enumerate()
        .map(|(i, l)| (l.diff_id.clone(), format!("envbuild layer {i}")))
        .collect();
    let config = config_json(None, &spec(platform), &history).unwrap();
    let config = layout.put_bytes(MEDIA_TYPE_CONFIG, &config).unwrap();
    let descs: Vec<Descriptor> = infos
        .iter()
        .map(|l| Descriptor {
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
        })
        .collect();
    let annotations = BTreeMap::from([(
        "org.opencontainers.image.created".to_string(),
        "2023-11-14T22:13:20Z".to_string(),
    )]);
    let manifest = manifest_json(&config, &descs, &annotations);
    (
        layout.put_bytes(MEDIA_TYPE_MANIFEST, &manifest).unwrap(),
        infos,
    )
}

fn oci_ref(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

#[test]
fn skopeo_reads_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::create(tmp.path()).unwrap();
    let (manifest, infos) = build(&layout, Platform::LinuxAmd64);
    layout.set_tag("v1", &manifest).unwrap();

    let r = oci_ref(tmp.path(), "v1");
    let info = skopeo_json(&["inspect", &r]);
    assert_eq!(info["Digest"], manifest.digest.as_str());
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Created"], "2023-11-14T22:13:20Z");
    let layer_digests: Vec<&str> = infos.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(info["Layers"], serde_json::json!(layer_digests));
    assert_eq!(info["Labels"]["org.example.k"], "v");

    let config = skopeo_json(&["inspect", "--config", &r]);
    let diff_ids: Vec<&str> = infos.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
    assert_eq!(config["config"]["User"], "1000:1000");
    assert_eq!(config["config"]["WorkingDir"], "/work");
    assert_eq!(config["config"]["Env"][1], "VIRTUAL_ENV=/opt/venv");
    assert_eq!(config["history"][1]["created_by"], "envbuild layer 1");
}

#[test]
fn umoci_unpacks_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let layout = Layout::create(&dir).unwrap();
    let (manifest, _) = build(&layout, Platform::LinuxAmd64);
    layout.set_tag("v1", &manifest).unwrap();

    let bundle = tmp.path().join("bundle");
    let image = format!("{}:v1", dir.display());
    let bundle_arg = bundle.display().to_string();
    run(
        "umoci",
        &["unpack", "--rootless", "--image", &image, &bundle_arg],
    );

    let rootfs = bundle.join("rootfs");
    let hello = std::fs::read_to_string(rootfs.join("opt/venv/bin/hello")).unwrap();
    assert_eq!(hello, "#!/bin/sh\necho hello\n");
    let link = std::fs::read_link(rootfs.join("opt/venv/bin/python")).unwrap();
    assert_eq!(link, Path::new("/usr/bin/python3"));
    assert!(rootfs.join("work").is_dir());
    assert_eq!(
        std::fs::read_to_string(rootfs.join(long_path())).unwrap(),
        "long\n"
    );
}

#[test]
fn same_input_gives_same_digests() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (one, _) = build(&Layout::create(a.path()).unwrap(), Platform::LinuxArm64);
    let (two, _) = build(&Layout::create(b.path()).unwrap(), Platform::LinuxArm64);
    assert_eq!(one, two);
    let (amd, _) = build(&Layout::create(b.path()).unwrap(), Platform::LinuxAmd64);
    assert_ne!(one.digest, amd.digest);
}

#[test]
fn index_names_each_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::create(tmp.path()).unwrap();
    let (amd, _) = build(&layout, Platform::LinuxAmd64);
    let (arm, _) = build(&layout, Platform::LinuxArm64);
    let index = index_json(
        &[
            (amd.clone(), Platform::LinuxAmd64),
            (arm.clone(), Platform::LinuxArm64),
        ],
        &BTreeMap::new(),
    );
    let index = layout.put_bytes(MEDIA_TYPE_INDEX, &index).unwrap();
    layout.set_tag("multi", &index).unwrap();

    let r = oci_ref(tmp.path(), "multi");
    let raw = skopeo_json(&["inspect", "--raw", &r]);
    assert_eq!(raw["mediaType"], MEDIA_TYPE_INDEX);
    assert_eq!(raw["manifests"][1]["platform"]["architecture"], "arm64");
    assert!(
        raw.get("annotations").is_none(),
        "empty annotations are left out"
    );

    assert_eq!(raw["manifests"][0]["digest"], amd.digest.as_str());
    assert_eq!(raw["manifests"][1]["digest"], arm.digest.as_str());

    let out = tmp.path().join("multi.tar");
    let err = write_archive(&layout, &index, "localhost/x:1", &out).unwrap_err();
    assert!(matches!(err, ImageError::NotAManifest { .. }), "{err:?}");
    assert!(!out.exists());

    // skopeo picks the manifest for the requested platform out of the index.
    for arch in ["arm64", "amd64"] {
        let info = skopeo_json(&["--override-arch", arch, "inspect", &r]);
        assert_eq!(info["Digest"], index.digest.as_str());
        assert_eq!(info["Architecture"], arch);
        let config = skopeo_json(&["--override-arch", arch, "inspect", "--config", &r]);
        assert_eq!(config["architecture"], arch);
    }
}

#[test]
fn tags_replace_and_resolve() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::create(tmp.path()).unwrap();
    let (amd, _) = build(&layout, Platform::LinuxAmd64);
    let (arm, _) = build(&layout, Platform::LinuxArm64);

    assert!(matches!(
        layout.resolve_tag(None),
        Err(ImageError::EmptyLayout { .. })
    ));
    layout.set_tag("latest", &amd).unwrap();
    assert_eq!(layout.resolve_tag(None).unwrap(), amd);
    layout.set_tag("other", &amd).unwrap();
    layout.set_tag("latest", &arm).unwrap();

    let reopened = Layout::open(tmp.path()).unwrap();
    assert_eq!(reopened.resolve_tag(Some("latest")).unwrap(), arm);
    assert_eq!(reopened.resolve_tag(Some("other")).unwrap(), amd);
    assert!(matches!(
        reopened.resolve_tag(None),
        Err(ImageError::AmbiguousTag { count: 2, .. })
    ));
    let missing = reopened.resolve_tag(Some("nope")).unwrap_err().to_string();
    assert!(
        missing.contains("`nope`") && missing.contains("latest, other"),
        "{missing}"
    );

    let index: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

    let not_layout = tempfile::tempdir().unwrap();
    assert!(matches!(
        Layout::open(not_layout.path()),
        Err(ImageError::NotLayout { .. })
    ));
}

#[test]
fn blobs_are_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::create(tmp.path()).unwrap();
    let desc = layout.put_bytes(MEDIA_TYPE_CONFIG, b"{}").unwrap();
    assert_eq!(layout.read_blob(&desc.digest).unwrap(), b"{}");

    let path = layout
        .blobs_dir()
        .join(desc.digest.trim_start_matches("sha256:"));
    std::fs::write(&path, b"{ }").unwrap();
    assert!(matches!(
        layout.read_blob(&desc.digest),
        Err(ImageError::BlobMismatch { .. })
    ));
    assert!(matches!(
        layout.read_blob("sha256:../../etc/passwd"),
        Err(ImageError::BadDigest { .. })
    ));
}

#[test]
fn put_file_links_or_copies_verified_files() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::create(&tmp.path().join("layout")).unwrap();
    let src = tmp.path().join("blob");
    std::fs::write(&src, b"layer bytes").unwrap();
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(b"layer bytes"))
    );

    let desc = layout
        .put_file("application/octet-stream", &src, &digest, 11)
        .unwrap();
    assert_eq!(layout.read_blob(&desc.digest).unwrap(), b"layer bytes");

    let wrong_size = layout.put_file("x", &src, &digest, 12).unwrap_err();
    assert!(matches!(wrong_size, ImageError::BlobMismatch { .. }));
}

use sha2::Digest as _;

#[test]
fn archive_is_read_as_oci_and_docker() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::create(&tmp.path().join("layout")).unwrap();
    let (manifest, infos) = build(&layout, Platform::LinuxAmd64);
    let out = tmp.path().join("image.tar");
    write_archive(&layout, &manifest, "localhost/envbuild-test:1.0", &out).unwrap();

    let oci = skopeo_json(&["inspect", &format!("oci-archive:{}", out.display())]);
    assert_eq!(oci["Digest"], manifest.digest.as_str());
    // Naming the tag makes skopeo look it up in `manifest.json`'s RepoTags.
    let tagged = format!(
        "docker-archive:{}:localhost/envbuild-test:1.0",
        out.display()
    );
    let docker = skopeo_json(&["inspect", &tagged]);
    // A Docker archive names layers by their uncompressed digests (the diff_ids).
    let diff_ids: Vec<&str> = infos.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(docker["Layers"], serde_json::json!(diff_ids));
    assert_eq!(docker["Architecture"], "amd64");

    let docker_config = skopeo_json(&["inspect", "--config", &tagged]);
    assert_eq!(
        docker_config["rootfs"]["diff_ids"],
        serde_json::json!(diff_ids)
    );

    // The same inputs give the same archive bytes.
    let again = tmp.path().join("again.tar");
    write_archive(&layout, &manifest, "localhost/envbuild-test:1.0", &again).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `podman load` into a throw-away store (vfs driver, its own root and run folders), so the
/// machine's own image store is not touched.
#[test]
fn podman_loads_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::create(&tmp.path().join("layout")).unwrap();
    let (manifest, _) = build(&layout, Platform::LinuxAmd64);
    let out = tmp.path().join("image.tar");
    write_archive(&layout, &manifest, "localhost/envbuild-test:1.0", &out).unwrap();

    let root = tmp.path().join("store").display().to_string();
    let runroot = tmp.path().join("run").display().to_string();
    let podman = |args: &[&str]| {
        let mut all = vec![
            "--root",
            &root,
            "--runroot",
            &runroot,
            "--storage-driver",
            "vfs",
        ];
        all.extend_from_slice(args);
        run("podman", &all)
    };
    let loaded = podman(&["load", "-i", &out.display().to_string()]);
    assert!(loaded.contains("localhost/envbuild-test:1.0"), "{loaded}");

    let images: Value = serde_json::from_str(&podman(&["images", "--format", "json"])).unwrap();
    // podman's image ID is the config digest.
    let doc: Value = serde_json::from_slice(&layout.read_blob(&manifest.digest).unwrap()).unwrap();
    let config_hex = doc["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let image = &images[0];
    assert_eq!(
        image["Names"],
        serde_json::json!(["localhost/envbuild-test:1.0"])
    );
    assert_eq!(image["Id"], config_hex);
}

/// A source on another file system (`/dev/shm` is a tmpfs) cannot be hard-linked, so it is
/// copied, and the copy is hashed: a wrong digest leaves no blob.
#[test]
fn put_file_copies_across_file_systems() {
    use std::os::unix::fs::MetadataExt;
    let other_fs = tempfile::tempdir_in("/dev/shm").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::create(tmp.path()).unwrap();
    let src = other_fs.path().join("blob");
    std::fs::write(&src, b"layer bytes").unwrap();
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(b"layer bytes"))
    );
    let wrong = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(b"other bytes"))
    );

    let err = layout.put_file("x", &src, &wrong, 11).unwrap_err();
    assert!(matches!(err, ImageError::BlobMismatch { .. }), "{err:?}");
    assert_eq!(std::fs::read_dir(layout.blobs_dir()).unwrap().count(), 0);

    let desc = layout.put_file("x", &src, &digest, 11).unwrap();
    let blob = layout
        .blobs_dir()
        .join(desc.digest.trim_start_matches("sha256:"));
    assert_eq!(
        std::fs::metadata(&blob).unwrap().nlink(),
        1,
        "a copy, not a link"
    );
    assert_eq!(layout.read_blob(&digest).unwrap(), b"layer bytes");
}
