//! VS Code extensions against an Open VSX compatible gallery on 127.0.0.1, and JupyterLab
//! settings files.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};

use envbuild::cache::Cache;
use envbuild::layer::{Entry, EntryKind, Source};
use envbuild::lock::{ExtensionArtifact, ExtensionLock};
use envbuild::platform::Platform;
use envbuild::spec::{JupyterSpec, VscodeSpec};
use envbuild::vsix::{self, VsixError};
use support::gallery::{Gallery, HashFile, VsixBuilder, sha256_hex};

const BOTH: [Platform; 2] = [Platform::LinuxAmd64, Platform::LinuxArm64];

fn vscode_spec(gallery: &Gallery, extensions: &str) -> VscodeSpec {
    toml::from_str(&format!(
        "gallery = \"{}\"\nextensions = {extensions}\n",
        gallery.url
    ))
    .unwrap()
}

fn lock(spec: &VscodeSpec, dir: &Path, cache: &Cache) -> Result<Vec<ExtensionLock>, VsixError> {
    let targets = ["dev".to_string(), "ci".to_string()];
    vsix::lock_extensions(spec, dir, &BOTH, &targets, cache)
}

/// Writes entries under `root` the way a layer would hold them, reading zip members by index.
fn materialize(entries: &[Entry], root: &Path) {
    for entry in entries {
        let dest = root.join(&entry.path);
        match &entry.kind {
            EntryKind::Dir => std::fs::create_dir_all(&dest).unwrap(),
            EntryKind::File { size, source } => {
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                let data = match source {
                    Source::Bytes(b) => b.to_vec(),
                    Source::File(p) => std::fs::read(p).unwrap(),
                    Source::Zip { archive, index, .. } => {
                        let mut zip =
                            zip::ZipArchive::new(std::fs::File::open(archive).unwrap()).unwrap();
                        let mut data = Vec::new();
                        zip.by_index(*index)
                            .unwrap()
                            .read_to_end(&mut data)
                            .unwrap();
                        data
                    }
                };
                assert_eq!(data.len() as u64, *size, "{}", entry.path);
                std::fs::write(&dest, data).unwrap();
            }
            EntryKind::Symlink { .. } => panic!("unexpected symlink {}", entry.path),
        }
    }
}

fn files_under(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(root).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

fn entry_bytes(entry: &Entry) -> Vec<u8> {
    match &entry.kind {
        EntryKind::File {
            source: Source::Bytes(b),
            ..
        } => b.to_vec(),
        other => panic!("not in-memory bytes: {other:?}"),
    }
}

/// A gallery and a spec folder holding one of each kind of extension.
struct World {
    gallery: Gallery,
    spec_dir: tempfile::TempDir,
    cache_dir: tempfile::TempDir,
    spec: VscodeSpec,
    bytes: std::collections::BTreeMap<&'static str, Vec<u8>>,
}

fn world() -> World {
    let gallery = Gallery::start();
    let mut bytes = std::collections::BTreeMap::new();
    bytes.insert(
        "universal",
        gallery.publish(VsixBuilder::new("acme", "theme", "1.2.0")),
    );
    gallery.publish(VsixBuilder::new("acme", "older", "1.0.0").file("v1.txt", b"one"));
    gallery.publish(VsixBuilder::new("acme", "older", "2.0.0").file("v2.txt", b"two"));
    bytes.insert(
        "x64",
        gallery.publish(
            VsixBuilder::new("Acme", "native", "3.1.0")
                .target("linux-x64")
                .executable("bin/server", b"x64 server"),
        ),
    );
    bytes.insert(
        "arm64",
        gallery.publish(
            VsixBuilder::new("Acme", "native", "3.1.0")
                .target("linux-arm64")
                .executable("bin/server", b"arm64 server"),
        ),
    );
    bytes.insert(
        "nohash",
        gallery.publish_with(
            VsixBuilder::new("acme", "nohash", "0.3.0"),
            HashFile::Absent,
        ),
    );
    let direct = VsixBuilder::new("acme", "direct", "5.0.0").bytes();
    let direct_url = gallery.serve_raw("/downloads/direct.vsix", direct.clone());
    bytes.insert("direct", direct.clone());

    let spec_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(spec_dir.path().join("vsix")).unwrap();
    let local = VsixBuilder::new("acme", "local", "0.1.0").file("local.txt", b"here");
    bytes.insert("local", local.bytes());
    std::fs::write(spec_dir.path().join("vsix/local.vsix"), local.bytes()).unwrap();

    let extensions = format!(
        r#"[
  "acme.theme",
  "acme.older@1.0.0",
  "Acme.native",
  "acme.nohash",
  {{ id = "acme.direct", url = "{direct_url}", sha256 = "{}" }},
  {{ id = "acme.local", path = "vsix/local.vsix" }},
]"#,
        sha256_hex(&direct).to_uppercase()
    );
    let spec = vscode_spec(&gallery, &extensions);
    World {
        gallery,
        spec_dir,
        cache_dir: tempfile::tempdir().unwrap(),
        spec,
        bytes,
    }
}

fn artifact(platforms: &[Platform], target: &str, url: &str, data: &[u8]) -> ExtensionArtifact {
    ExtensionArtifact {
        platforms: platforms.to_vec(),
        target_platform: target.to_string(),
        url: url.to_string(),
        sha256: sha256_hex(data),
        size: Some(data.len() as u64),
    }
}

#[test]
fn locks_each_kind_of_extension() {
    let w = world();
    let cache = Cache::new(Some(w.cache_dir.path().to_path_buf()));
    let locks = lock(&w.spec, w.spec_dir.path(), &cache).unwrap();
    let g = &w.gallery.url;
    let ids: Vec<&str> = locks.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "acme.direct",
            "acme.local",
            "acme.native",
            "acme.nohash",
            "acme.older",
            "acme.theme"
        ]
    );
    let by_id = |id: &str| locks.iter().find(|l| l.id == id).unwrap();
    for l in &locks {
        assert_eq!(l.targets, ["ci", "dev"]);
    }

    // A universal build serves both platforms with one artifact.
    let theme = by_id("acme.theme");
    assert_eq!(theme.version, "1.2.0");
    let url = format!("{g}/files/acme.theme/1.2.0/universal/file.vsix");
    let want = artifact(&BOTH, "universal", &url, &w.bytes["universal"]);
    assert_eq!(theme.artifacts, [want]);

    // Platform-specific builds: a different file for each platform.
    let native = by_id("acme.native");
    assert_eq!(native.version, "3.1.0");
    let x64 = format!("{g}/files/Acme.native/3.1.0/linux-x64/file.vsix");
    let arm = format!("{g}/files/Acme.native/3.1.0/linux-arm64/file.vsix");
    assert_eq!(
        native.artifacts,
        [
            artifact(&[Platform::LinuxAmd64], "linux-x64", &x64, &w.bytes["x64"]),
            artifact(
                &[Platform::LinuxArm64],
                "linux-arm64",
                &arm,
                &w.bytes["arm64"]
            ),
        ]
    );
    assert_ne!(native.artifacts[0].sha256, native.artifacts[1].sha256);

    // `@version` holds back the newer 2.0.0.
    let older = by_id("acme.older");
    assert_eq!(older.version, "1.0.0");
    assert!(older.artifacts[0].url.contains("/1.0.0/"));

    // Without a published sha256 the download is hashed.
    let nohash = by_id("acme.nohash");
    assert_eq!(nohash.artifacts[0].sha256, sha256_hex(&w.bytes["nohash"]));

    // A URL with a sha256, and a local file: version and target from the VSIX itself.
    let direct = by_id("acme.direct");
    assert_eq!(direct.version, "5.0.0");
    let url = format!("{g}/downloads/direct.vsix");
    assert_eq!(
        direct.artifacts,
        [artifact(&BOTH, "universal", &url, &w.bytes["direct"])]
    );
    let local = by_id("acme.local");
    assert_eq!(local.version, "0.1.0");
    assert_eq!(
        local.artifacts,
        [artifact(
            &BOTH,
            "universal",
            "file:vsix/local.vsix",
            &w.bytes["local"]
        )]
    );

    // Every VSIX is in the cache, under its hash, with its bytes.
    for data in w.bytes.values() {
        let path = cache.get(&sha256_hex(data)).expect("cached");
        assert_eq!(&std::fs::read(path).unwrap(), data);
    }
}

#[test]
fn unpacks_extensions_and_writes_extensions_json() {
    let w = world();
    let cache = Cache::new(Some(w.cache_dir.path().to_path_buf()));
    let locks = lock(&w.spec, w.spec_dir.path(), &cache).unwrap();
    let dir = vsix::extensions_dir(&w.spec);
    assert_eq!(dir, "/opt/vscode/extensions");

    // A build from an empty cache fetches every artifact again, from the lock alone.
    let build_cache_dir = tempfile::tempdir().unwrap();
    let build_cache = Cache::new(Some(build_cache_dir.path().to_path_buf()));
    for platform in BOTH {
        let root = tempfile::tempdir().unwrap();
        let mut installed = Vec::new();
        for ext in &locks {
            let artifact = ext.artifact_for(platform).unwrap();
            let path = vsix::fetch_artifact(artifact, w.spec_dir.path(), &build_cache).unwrap();
            let entries = vsix::extension_entries(ext, artifact, &path, &dir).unwrap();
            assert!(
                entries
                    .iter()
                    .all(|e| e.path.starts_with("opt/vscode/extensions/"))
            );
            for e in &entries {
                let want = match &e.kind {
                    EntryKind::Dir => 0o755,
                    _ if e.path.ends_with("/bin/server") => 0o755,
                    _ => 0o644,
                };
                assert_eq!(e.mode, want, "{}", e.path);
            }
            materialize(&entries, root.path());
            installed.push((ext, artifact));
        }
        let json = vsix::extensions_json(&installed, &dir, 1_700_000_000_000);
        assert_eq!(json.path, "opt/vscode/extensions/extensions.json");
        materialize(std::slice::from_ref(&json), root.path());

        let arch = platform.vscode_target();
        let native = format!("acme.native-3.1.0-{arch}");
        let base = root.path().join("opt/vscode/extensions");
        let files = files_under(&base);
        let want: Vec<String> = [
            "acme.direct-5.0.0/out/main.js",
            "acme.direct-5.0.0/package.json",
            "acme.local-0.1.0/local.txt",
            "acme.local-0.1.0/out/main.js",
            "acme.local-0.1.0/package.json",
            &format!("{native}/bin/server"),
            &format!("{native}/out/main.js"),
            &format!("{native}/package.json"),
            "acme.nohash-0.3.0/out/main.js",
            "acme.nohash-0.3.0/package.json",
            "acme.older-1.0.0/out/main.js",
            "acme.older-1.0.0/package.json",
            "acme.older-1.0.0/v1.txt",
            "acme.theme-1.2.0/out/main.js",
            "acme.theme-1.2.0/package.json",
            "extensions.json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(files, want);
        let server = std::fs::read(base.join(&native).join("bin/server")).unwrap();
        let expected_server = if platform == Platform::LinuxAmd64 {
            "x64 server"
        } else {
            "arm64 server"
        };
        assert_eq!(server, expected_server.as_bytes());
        let package = std::fs::read_to_string(base.join("acme.theme-1.2.0/package.json")).unwrap();
        assert_eq!(
            package,
            VsixBuilder::new("acme", "theme", "1.2.0").package_json()
        );

        let parsed: serde_json::Value =
            serde_json::from_slice(&std::fs::read(base.join("extensions.json")).unwrap()).unwrap();
        check_extensions_json(&parsed, &native, arch);
    }
}

fn check_extensions_json(parsed: &serde_json::Value, native: &str, arch: &str) {
    let items = parsed.as_array().unwrap();
    assert_eq!(items.len(), 6);
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["identifier"]["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);

    let item = items
        .iter()
        .find(|i| i["identifier"]["id"] == "acme.native")
        .unwrap();
    assert_eq!(item["version"], "3.1.0");
    assert_eq!(item["relativeLocation"], native);
    assert_eq!(item["location"]["$mid"], 1);
    assert_eq!(item["location"]["scheme"], "file");
    assert_eq!(
        item["location"]["path"],
        format!("/opt/vscode/extensions/{native}")
    );
    assert_eq!(item["metadata"]["installedTimestamp"], 1_700_000_000_000i64);
    assert_eq!(item["metadata"]["targetPlatform"], arch);
    assert_eq!(item["metadata"]["source"], "gallery");
    assert_eq!(item["metadata"]["pinned"], true);

    let local = items
        .iter()
        .find(|i| i["identifier"]["id"] == "acme.local")
        .unwrap();
    assert_eq!(local["metadata"]["source"], "vsix");
    assert_eq!(local["metadata"]["targetPlatform"], "universal");
    assert_eq!(local["relativeLocation"], "acme.local-0.1.0");
}

#[test]
fn extensions_json_does_not_depend_on_input_order() {
    let w = world();
    let cache = Cache::new(Some(w.cache_dir.path().to_path_buf()));
    let locks = lock(&w.spec, w.spec_dir.path(), &cache).unwrap();
    let mut installed: Vec<_> = locks
        .iter()
        .map(|e| (e, e.artifact_for(Platform::LinuxArm64).unwrap()))
        .collect();
    let again_dir = tempfile::tempdir().unwrap();
    let again = Cache::new(Some(again_dir.path().to_path_buf()));
    assert_eq!(lock(&w.spec, w.spec_dir.path(), &again).unwrap(), locks);

    let first = vsix::extensions_json(&installed, "/opt/vscode/extensions", 42);
    installed.reverse();
    installed.swap(1, 3);
    let second = vsix::extensions_json(&installed, "opt/vscode/extensions/", 42);
    assert_eq!(first.path, second.path);
    assert_eq!(entry_bytes(&first), entry_bytes(&second));
}

#[test]
fn wrong_published_hash_is_refused_and_nothing_cached() {
    let gallery = Gallery::start();
    let bytes = gallery.publish_with(VsixBuilder::new("acme", "bad", "1.0.0"), HashFile::Wrong);
    let spec = vscode_spec(&gallery, "[\"acme.bad\"]");
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(Some(cache_dir.path().to_path_buf()));
    let err = lock(&spec, dir.path(), &cache).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("Hash mismatch for extension `acme.bad`"),
        "{msg}"
    );
    assert!(msg.contains(&sha256_hex(&bytes)), "{msg}");
    assert!(files_under(cache_dir.path()).is_empty());
}

#[test]
fn wrong_spec_hash_and_tampered_artifact_are_refused() {
    let gallery = Gallery::start();
    let bytes = VsixBuilder::new("acme", "direct", "1.0.0").bytes();
    let url = gallery.serve_raw("/d.vsix", bytes.clone());
    let wrong = sha256_hex(b"not it");
    let spec = vscode_spec(
        &gallery,
        &format!("[{{ id = \"acme.direct\", url = \"{url}\", sha256 = \"{wrong}\" }}]"),
    );
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(Some(cache_dir.path().to_path_buf()));
    let err = lock(&spec, dir.path(), &cache).unwrap_err();
    assert!(matches!(err, VsixError::HashMismatch { .. }), "{err}");
    assert!(files_under(cache_dir.path()).is_empty());

    // At build time, the lock's hash is checked against the bytes the URL now serves.
    let art = artifact(&BOTH, "universal", &url, b"what the lock saw");
    let err = vsix::fetch_artifact(&art, dir.path(), &cache).unwrap_err();
    assert!(err.to_string().contains("Hash mismatch"), "{err}");
    assert!(files_under(cache_dir.path()).is_empty());
}

#[test]
fn gallery_errors_name_the_extension() {
    let gallery = Gallery::start();
    gallery.publish(VsixBuilder::new("acme", "x64only", "1.0.0").target("linux-x64"));
    gallery.publish(VsixBuilder::new("acme", "theme", "1.0.0"));
    gallery.publish(VsixBuilder::new("acme", "broken", "1.0.0"));
    gallery.break_json("acme.broken");
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(Some(cache_dir.path().to_path_buf()));
    let run = |ext: &str| lock(&vscode_spec(&gallery, ext), dir.path(), &cache).unwrap_err();

    let err = run("[\"acme.missing\"]");
    assert!(matches!(err, VsixError::UnknownExtension { .. }), "{err}");
    assert!(err.to_string().contains("`acme.missing`"), "{err}");

    let err = run("[\"acme.theme@9.9.9\"]");
    assert!(matches!(err, VsixError::VersionNotFound { .. }), "{err}");
    assert!(err.to_string().contains("`1.0.0`"), "{err}");

    let err = run("[\"acme.x64only\"]");
    let msg = err.to_string();
    assert!(matches!(err, VsixError::NoBuild { .. }), "{msg}");
    assert!(
        msg.contains("`linux/arm64`") && msg.contains("`linux-x64`"),
        "{msg}"
    );

    let err = run("[\"acme.broken\"]");
    assert!(matches!(err, VsixError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("`acme.broken`"), "{err}");

    let err = run("[\"nodot\"]");
    assert!(matches!(err, VsixError::InvalidSpec { .. }), "{err}");
    let err = run("[{ id = \"acme.u\", url = \"http://127.0.0.1:1/x.vsix\" }]");
    assert!(err.to_string().contains("needs a `sha256`"), "{err}");
}

fn unpack(builder: VsixBuilder) -> Result<Vec<Entry>, VsixError> {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = builder.write(dir.path());
    let ext = ExtensionLock {
        id: "acme.evil".into(),
        version: "1.0.0".into(),
        targets: vec!["dev".into()],
        artifacts: vec![],
    };
    let art = artifact(&BOTH, "universal", "file:evil.vsix", b"");
    vsix::extension_entries(&ext, &art, &path, "/opt/vscode/extensions")
}

#[test]
fn unsafe_entries_are_refused() {
    let base = || VsixBuilder::new("acme", "evil", "1.0.0");
    let cases = [
        (base().raw("extension/../../x", b"x"), ".."),
        (base().raw("/etc/passwd", b"x"), "absolute"),
        (
            base().symlink("extension/link", "/etc/passwd"),
            "symbolic link",
        ),
        (
            base()
                .file("a.js", b"1")
                .file("b.js", b"2")
                .patch_name("extension/b.js", "extension/a.js"),
            "twice",
        ),
    ];
    for (builder, reason) in cases {
        let err = unpack(builder).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, VsixError::UnsafeEntry { .. }), "{msg}");
        assert!(msg.contains(reason) && msg.contains("`acme.evil`"), "{msg}");
    }
    assert!(unpack(base()).is_ok());

    // The lock refuses such an archive before it is ever recorded.
    let gallery = Gallery::start();
    gallery.publish(base().raw("extension/../../x", b"x"));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(Some(dir.path().join("cache")));
    let err = lock(
        &vscode_spec(&gallery, "[\"acme.evil\"]"),
        dir.path(),
        &cache,
    )
    .unwrap_err();
    assert!(matches!(err, VsixError::UnsafeEntry { .. }), "{err}");
}

#[test]
fn settings_and_environment_per_flavour() {
    let spec: VscodeSpec = toml::from_str(
        r#"
flavour = "code-server"
gallery = "https://gallery.example/"
[settings]
"editor.fontSize" = 14
"files.exclude" = { "**/.git" = true }
"#,
    )
    .unwrap();
    let entry = vsix::settings_entry(&spec).unwrap().unwrap();
    assert_eq!(entry.path, "opt/vscode/data/Machine/settings.json");
    let text = String::from_utf8(entry_bytes(&entry)).unwrap();
    assert_eq!(
        text,
        "{\n  \"editor.fontSize\": 14,\n  \"files.exclude\": {\n    \"**/.git\": true\n  }\n}\n"
    );
    let env = vsix::ide_env(&spec);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(
        get("ENVBUILD_VSCODE_EXTENSIONS_DIR"),
        Some("/opt/vscode/extensions")
    );
    assert_eq!(get("ENVBUILD_VSCODE_DATA_DIR"), Some("/opt/vscode/data"));
    let gallery: serde_json::Value =
        serde_json::from_str(get("EXTENSIONS_GALLERY").unwrap()).unwrap();
    assert_eq!(
        gallery["serviceUrl"],
        "https://gallery.example/vscode/gallery"
    );
    assert_eq!(get("VSCODE_AGENT_FOLDER"), None);

    let spec: VscodeSpec = toml::from_str(
        "flavour = \"openvscode-server\"\nextensions-dir = \"/srv/ext/\"\n[settings]\na = 1\n",
    )
    .unwrap();
    let entry = vsix::settings_entry(&spec).unwrap().unwrap();
    assert_eq!(entry.path, "opt/vscode/data/data/Machine/settings.json");
    let env = vsix::ide_env(&spec);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("ENVBUILD_VSCODE_EXTENSIONS_DIR"), Some("/srv/ext"));
    assert_eq!(get("VSCODE_AGENT_FOLDER"), Some("/opt/vscode/data"));
    assert_eq!(vsix::extensions_dir(&spec), "/srv/ext");

    let spec: VscodeSpec = toml::from_str("flavour = \"vscode-server\"\n").unwrap();
    assert!(vsix::settings_entry(&spec).unwrap().is_none());
    let env = vsix::ide_env(&spec);
    assert!(
        env.iter().all(|(k, _)| k.starts_with("ENVBUILD_VSCODE_")),
        "{env:?}"
    );

    let spec: VscodeSpec = toml::from_str("flavour = \"emacs\"\n[settings]\na = 1\n").unwrap();
    let err = vsix::settings_entry(&spec).unwrap_err();
    assert!(err.to_string().contains("`emacs`"), "{err}");
}

#[test]
fn jupyter_settings_files() {
    let spec: JupyterSpec = toml::from_str(
        r#"
disabled-extensions = ["@jupyterlab/extensionmanager-extension", "a-plugin"]
[overrides."@jupyterlab/apputils-extension:themes"]
theme = "JupyterLab Dark"
[overrides."@jupyterlab/notebook-extension:tracker"]
codeCellConfig = { lineNumbers = true, tabSize = 4 }
"#,
    )
    .unwrap();
    let entries = envbuild::jupyter::settings_entries(&spec, "/opt/venv").unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "opt/venv/share/jupyter/lab/settings/overrides.json",
            "opt/venv/etc/jupyter/labconfig/page_config.json",
        ]
    );
    let overrides = String::from_utf8(entry_bytes(&entries[0])).unwrap();
    assert_eq!(
        overrides,
        r#"{
  "@jupyterlab/apputils-extension:themes": {
    "theme": "JupyterLab Dark"
  },
  "@jupyterlab/notebook-extension:tracker": {
    "codeCellConfig": {
      "lineNumbers": true,
      "tabSize": 4
    }
  }
}
"#
    );
    let page: serde_json::Value = serde_json::from_slice(&entry_bytes(&entries[1])).unwrap();
    assert_eq!(
        page,
        serde_json::json!({"disabledExtensions": {
            "@jupyterlab/extensionmanager-extension": true, "a-plugin": true,
        }})
    );
    assert!(entry_bytes(&entries[1]).ends_with(b"}\n"));
}

#[test]
fn platform_without_its_own_build_falls_back_to_universal() {
    let gallery = Gallery::start();
    let universal = gallery.publish(VsixBuilder::new("acme", "mixed", "1.0.0"));
    let x64 = gallery.publish(VsixBuilder::new("acme", "mixed", "1.0.0").target("linux-x64"));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(Some(dir.path().join("cache")));
    let locks = lock(
        &vscode_spec(&gallery, "[\"acme.mixed\"]"),
        dir.path(),
        &cache,
    )
    .unwrap();
    let g = &gallery.url;
    assert_eq!(
        locks[0].artifacts,
        [
            artifact(
                &[Platform::LinuxAmd64],
                "linux-x64",
                &format!("{g}/files/acme.mixed/1.0.0/linux-x64/file.vsix"),
                &x64
            ),
            artifact(
                &[Platform::LinuxArm64],
                "universal",
                &format!("{g}/files/acme.mixed/1.0.0/universal/file.vsix"),
                &universal
            ),
        ]
    );
}

#[test]
fn offline_fetch_uses_the_cache_and_local_files_only() {
    let w = world();
    let cache = Cache::new(Some(w.cache_dir.path().to_path_buf()));
    let locks = lock(&w.spec, w.spec_dir.path(), &cache).unwrap();
    let empty_dir = tempfile::tempdir().unwrap();
    let empty = Cache::new(Some(empty_dir.path().to_path_buf()));
    for ext in &locks {
        let art = &ext.artifacts[0];
        let warm = vsix::fetch_artifact_offline(art, w.spec_dir.path(), &cache).unwrap();
        assert_eq!(envbuild::cache::sha256_file(&warm).unwrap(), art.sha256);
        let cold = vsix::fetch_artifact_offline(art, w.spec_dir.path(), &empty);
        if ext.id == "acme.local" {
            assert!(cold.is_ok());
        } else {
            let err = cold.unwrap_err();
            assert!(err.to_string().contains("the build is offline"), "{err}");
        }
    }
}
