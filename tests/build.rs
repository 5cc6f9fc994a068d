//! Building images from a lock: the golden digest, reproducibility across machines' quirks,
//! layer stability, and prod being a prefix of dev.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use envbuild::cache::Cache;
use serde_json::Value;
use support::wheel::{WheelBuilder, sha256_file};

/// The golden digests of `fixtures/golden`: the image index of each target.
///
/// They change only when the bytes of a build change on purpose (layer format, config, plan).
/// To update them, run `cargo test --test build golden -- --nocapture`, check what changed with
/// `skopeo inspect` and `tar -tvzf` on the layers, and explain the change in the commit message.
const GOLDEN: [(&str, &str); 2] = [
    (
        "dev",
        "sha256:3d272eab01790a598680378565bfb7a22f04f61d451c47fd12afab57e19d9d98",
    ),
    (
        "prod",
        "sha256:1c2f5ade849452f147bd6816fade5047f3ef4571a6afe62a655d0c54f019400a",
    ),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A cache holding the fixture wheels, inserted in the given order.
fn filled_cache(dir: &Path, reverse: bool) -> PathBuf {
    let cache = Cache::new(Some(dir.to_path_buf()));
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(repo().join("fixtures/wheels"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    wheels.sort();
    if reverse {
        wheels.reverse();
    }
    for w in wheels {
        cache.insert_file(&w, &sha256_file(&w)).unwrap();
    }
    dir.to_path_buf()
}

/// Runs `envbuild build` through `sh` so the umask and environment can be set; returns
/// target → digest from stdout.
fn build(
    spec: &Path,
    cache: &Path,
    out: &Path,
    cwd: &Path,
    env: &[(&str, &str)],
    umask: &str,
) -> BTreeMap<String, String> {
    build_logged(spec, cache, out, cwd, env, umask).0
}

/// [`build`], with stderr too.
fn build_logged(
    spec: &Path,
    cache: &Path,
    out: &Path,
    cwd: &Path,
    env: &[(&str, &str)],
    umask: &str,
) -> (BTreeMap<String, String>, String) {
    let bin = Command::cargo_bin("envbuild").unwrap();
    let bin = bin.get_program().to_owned();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(bin)
        .args(["build", "--offline", "--spec"])
        .arg(spec)
        .arg("--cache")
        .arg(cache)
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .current_dir(cwd)
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "build failed:\n{stderr}");
    let digests = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, d)| (t.to_string(), d.to_string()))
        .collect();
    (digests, stderr)
}

/// The layers a build compressed, from its progress lines.
fn written_layers(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("Wrote layer"))
        .collect()
}

fn read_json(layout: &Path, digest: &str) -> Value {
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

/// platform → layer digests of the image a digest names (an index or one manifest).
fn layers(layout: &Path, digest: &str) -> BTreeMap<String, Vec<String>> {
    let root = read_json(layout, digest);
    let manifests: Vec<(String, String)> = match root.get("manifests") {
        Some(list) => list
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let p = &m["platform"];
                (
                    format!(
                        "{}/{}",
                        p["os"].as_str().unwrap(),
                        p["architecture"].as_str().unwrap()
                    ),
                    m["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
        None => vec![("single".into(), digest.to_string())],
    };
    manifests
        .into_iter()
        .map(|(p, d)| {
            let m = read_json(layout, &d);
            let ls = m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string())
                .collect();
            (p, ls)
        })
        .collect()
}

fn golden_spec() -> PathBuf {
    repo().join("fixtures/golden/envbuild.toml")
}

#[test]
fn golden_build_matches_committed_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = filled_cache(&tmp.path().join("cache"), false);
    let out = tmp.path().join("out");
    let digests = build(&golden_spec(), &cache, &out, tmp.path(), &[], "022");
    println!("built: {digests:?}");
    let expected: BTreeMap<String, String> = GOLDEN
        .iter()
        .map(|(t, d)| (t.to_string(), d.to_string()))
        .collect();
    assert_eq!(
        digests, expected,
        "golden digests changed; see GOLDEN's comment"
    );
}

#[test]
fn same_lock_same_digests_whatever_the_machine() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let cache_a = filled_cache(&a.path().join("cache"), false);
    let cache_b = filled_cache(&b.path().join("cache"), true);
    let first = build(
        &golden_spec(),
        &cache_a,
        &a.path().join("out"),
        a.path(),
        &[("TZ", "UTC"), ("LC_ALL", "C"), ("RAYON_NUM_THREADS", "1")],
        "022",
    );
    let second = build(
        &golden_spec(),
        &cache_b,
        &b.path().join("elsewhere/out"),
        b.path(),
        &[
            ("TZ", "Asia/Kolkata"),
            ("LC_ALL", "C.UTF-8"),
            ("RAYON_NUM_THREADS", "2"),
        ],
        "077",
    );
    assert_eq!(first, second);
    // A warm cache and an existing layout change nothing either.
    let third = build(
        &golden_spec(),
        &cache_a,
        &a.path().join("out"),
        b.path(),
        &[],
        "002",
    );
    assert_eq!(first, third);
    assert_eq!(first.len(), 2, "{first:?}");
}

#[test]
fn prod_layers_are_a_prefix_of_dev_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = filled_cache(&tmp.path().join("cache"), false);
    let out = tmp.path().join("out");
    let digests = build(&golden_spec(), &cache, &out, tmp.path(), &[], "022");
    let prod = layers(&out, &digests["prod"]);
    let dev = layers(&out, &digests["dev"]);
    assert_eq!(
        prod.keys().collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"]
    );
    for (platform, prod_layers) in &prod {
        let dev_layers = &dev[platform];
        assert!(dev_layers.len() > prod_layers.len(), "{platform}");
        assert_eq!(
            &dev_layers[..prod_layers.len()],
            prod_layers.as_slice(),
            "{platform}"
        );
    }
    // The pure-Python layers are the same bytes on both platforms; MarkupSafe's are not.
    assert_ne!(prod["linux/amd64"], prod["linux/arm64"]);
    assert_eq!(prod["linux/amd64"][0], prod["linux/arm64"][0], "venv layer");
}

/// The golden spec and lock with `six` replaced by another release (a wheel made here and put
/// in the cache); returns the project folder.
fn six_changed(tmp: &Path, cache_dir: &Path) -> PathBuf {
    let project = tmp.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::copy(golden_spec(), project.join("envbuild.toml")).unwrap();
    let wheel = WheelBuilder::new("six", "1.16.1").build(&project);
    let sha = sha256_file(&wheel);
    Cache::new(Some(cache_dir.to_path_buf()))
        .insert_file(&wheel, &sha)
        .unwrap();
    let lock = std::fs::read_to_string(repo().join("fixtures/golden/envbuild.lock")).unwrap();
    let lock = lock
        .replace("version = \"1.16.0\"", "version = \"1.16.1\"")
        .replace(
            "six-1.16.0-py2.py3-none-any.whl",
            "six-1.16.1-py3-none-any.whl",
        )
        .replace(
            "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254",
            &sha,
        );
    std::fs::write(project.join("envbuild.lock"), lock).unwrap();
    project
}

#[test]
fn changing_one_package_changes_one_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = filled_cache(&tmp.path().join("cache"), false);
    let out = tmp.path().join("out");
    let before = build(&golden_spec(), &cache_dir, &out, tmp.path(), &[], "022");

    let project = six_changed(tmp.path(), &cache_dir);
    let (after, stderr) = build_logged(
        &project.join("envbuild.toml"),
        &cache_dir,
        &out,
        tmp.path(),
        &[],
        "022",
    );
    // Into the same layout, only six's layer is compressed again, once per platform.
    let written = written_layers(&stderr);
    assert_eq!(written.len(), 2, "{stderr}");
    assert!(written.iter().all(|l| l.contains("six")), "{stderr}");

    for target in ["prod", "dev"] {
        let old = layers(&out, &before[target]);
        let new = layers(&out, &after[target]);
        for (platform, old_layers) in &old {
            let new_layers = &new[platform];
            assert_eq!(old_layers.len(), new_layers.len(), "{target} {platform}");
            let changed = old_layers
                .iter()
                .zip(new_layers)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                changed, 1,
                "{target} {platform}: {old_layers:?} vs {new_layers:?}"
            );
        }
    }
}

/// A rebuild into the same layout reuses the layers whose inputs did not change, but only
/// after checking the blob: a damaged one is written again, and the digests never move.
#[test]
fn unchanged_layers_are_reused_only_when_their_blob_checks_out() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = filled_cache(&tmp.path().join("cache"), false);
    let out = tmp.path().join("out");
    let (first, stderr) = build_logged(&golden_spec(), &cache_dir, &out, tmp.path(), &[], "022");
    let all = written_layers(&stderr).len();
    assert!(all >= 6, "{stderr}");

    let (again, stderr) = build_logged(&golden_spec(), &cache_dir, &out, tmp.path(), &[], "022");
    assert_eq!(again, first);
    assert!(written_layers(&stderr).is_empty(), "{stderr}");

    // Damage one layer blob in place: it no longer hashes to its name, so it is rebuilt.
    let layer = layers(&out, &first["prod"])["linux/amd64"][1].clone();
    let blob = out.join("blobs/sha256").join(&layer[7..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::remove_file(&blob).unwrap();
    std::fs::write(&blob, bytes).unwrap();
    let (third, stderr) = build_logged(&golden_spec(), &cache_dir, &out, tmp.path(), &[], "022");
    assert_eq!(third, first);
    assert_eq!(written_layers(&stderr).len(), 1, "{stderr}");

    // A fresh layout shares nothing with the old one: every layer is written.
    let fresh = tmp.path().join("fresh");
    let (fourth, stderr) = build_logged(&golden_spec(), &cache_dir, &fresh, tmp.path(), &[], "022");
    assert_eq!(fourth, first);
    assert_eq!(written_layers(&stderr).len(), all, "{stderr}");
}

#[test]
fn a_stale_lock_is_refused_unless_frozen() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path();
    let spec = std::fs::read_to_string(golden_spec()).unwrap();
    std::fs::write(
        project.join("envbuild.toml"),
        spec.replace("C.UTF-8", "en_US.UTF-8"),
    )
    .unwrap();
    std::fs::copy(
        repo().join("fixtures/golden/envbuild.lock"),
        project.join("envbuild.lock"),
    )
    .unwrap();
    let cache = filled_cache(&project.join("cache"), false);
    let run = |extra: &[&str]| {
        Command::cargo_bin("envbuild")
            .unwrap()
            .args(["build", "--offline", "--cache"])
            .arg(&cache)
            .args(["--output", "oci:out"])
            .args(extra)
            .current_dir(project)
            .output()
            .unwrap()
    };
    let stale = run(&[]);
    assert_eq!(stale.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&stale.stderr);
    assert!(
        stderr.contains("out of date") && stderr.contains("hint: run `envbuild lock`"),
        "{stderr}"
    );
    assert!(!project.join("out").exists());
    let frozen = run(&["--frozen"]);
    assert!(
        frozen.status.success(),
        "{}",
        String::from_utf8_lossy(&frozen.stderr)
    );
}

#[test]
fn offline_build_names_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty-cache");
    let output = Command::cargo_bin("envbuild")
        .unwrap()
        .args(["build", "--offline", "--spec"])
        .arg(golden_spec())
        .arg("--cache")
        .arg(&empty)
        .arg("--output")
        .arg(format!("oci:{}", tmp.path().join("out").display()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not in the cache") && stderr.contains("envbuild fetch"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn layout_is_read_by_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = filled_cache(&tmp.path().join("cache"), false);
    let out = tmp.path().join("out");
    let digests = build(&golden_spec(), &cache, &out, tmp.path(), &[], "022");
    let skopeo = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:dev", out.display()))
        .output()
        .expect("skopeo is needed: apt-get install skopeo (scripts/test installs it)");
    assert!(
        skopeo.status.success(),
        "{}",
        String::from_utf8_lossy(&skopeo.stderr)
    );
    let raw = skopeo.stdout;
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw))
    );
    assert_eq!(digest, digests["dev"]);
    for arch in ["amd64", "arm64"] {
        let inspect = Command::new("skopeo")
            .args(["--override-arch", arch, "inspect"])
            .arg(format!("oci:{}:dev", out.display()))
            .output()
            .unwrap();
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let v: Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(v["Architecture"], arch);
        let env: Vec<&str> = v["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(
            env.iter().any(|e| e.starts_with("PATH=/opt/venv/bin:")),
            "{env:?}"
        );
        assert!(env.contains(&"VIRTUAL_ENV=/opt/venv"), "{env:?}");
        assert_eq!(v["Created"], "2023-11-14T22:13:20Z");
    }
}

/// The SBOM file of a target and platform in a layout.
fn sbom_path(layout: &Path, target: &str, platform: &str) -> PathBuf {
    layout
        .join("sbom")
        .join(format!("{target}-{}.cdx.json", platform.replace('/', "-")))
}

#[test]
fn sbom_is_written_beside_the_layout_without_touching_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = filled_cache(&tmp.path().join("cache"), false);
    let out = tmp.path().join("out");
    let digests = build(&golden_spec(), &cache, &out, tmp.path(), &[], "022");

    // The SBOM is a plain file: the images keep their golden digests and the layout's index
    // names only the two images.
    for (target, digest) in GOLDEN {
        assert_eq!(digests[target], digest, "{target}");
    }
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let mut listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected: Vec<&str> = digests.values().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected);

    // One valid CycloneDX document per target and platform, naming every locked package of
    // the target with its purl and the sha256 of the wheel for that platform.
    let lock = envbuild::lock::Lock::load(&repo().join("fixtures/golden/envbuild.lock")).unwrap();
    let mut files = Vec::new();
    for target in ["dev", "prod"] {
        for platform in lock.settings.platforms.clone() {
            let path = sbom_path(&out, target, platform.as_str());
            let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let components = doc["components"].as_array().unwrap();
            let packages: Vec<_> = lock.packages_in(target).collect();
            assert!(!packages.is_empty());
            for p in packages {
                let wheel = p.wheel_for(platform).unwrap();
                let found = components
                    .iter()
                    .find(|c| c["name"] == p.name.as_str())
                    .unwrap_or_else(|| panic!("{} missing from {}", p.name, path.display()));
                let purl = found["purl"].as_str().unwrap();
                assert!(
                    purl.starts_with(&format!("pkg:pypi/{}@{}", p.name, p.version)),
                    "{purl}"
                );
                assert_eq!(found["hashes"][0]["alg"], "SHA-256");
                assert_eq!(found["hashes"][0]["content"], wheel.sha256.as_str());
            }
            let pyflakes = components.iter().any(|c| c["name"] == "pyflakes");
            assert_eq!(pyflakes, target == "dev", "{target} {platform}");
            files.push(path);
        }
    }
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    support::validate_sbom(&refs);

    // `envbuild sbom` prints the same bytes, and a second build rewrites them unchanged.
    let first = std::fs::read(&files[0]).unwrap();
    let printed = Command::cargo_bin("envbuild")
        .unwrap()
        .args([
            "sbom",
            "--target",
            "dev",
            "--platform",
            "linux/amd64",
            "--spec",
        ])
        .arg(golden_spec())
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(printed.stdout, first);
    build(
        &golden_spec(),
        &cache,
        &out,
        tmp.path(),
        &[("TZ", "Asia/Kolkata")],
        "077",
    );
    assert_eq!(std::fs::read(&files[0]).unwrap(), first);
}

#[test]
fn sbom_is_written_beside_an_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = filled_cache(&tmp.path().join("cache"), false);
    let archive = tmp.path().join("prod.tar");
    let output = Command::cargo_bin("envbuild")
        .unwrap()
        .args([
            "build",
            "--offline",
            "--target",
            "prod",
            "--platform",
            "linux/arm64",
        ])
        .arg("--spec")
        .arg(golden_spec())
        .arg("--cache")
        .arg(&cache)
        .arg("--output")
        .arg(format!("archive:{}", archive.display()))
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sbom = tmp.path().join("prod.tar.cdx.json");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report[0]["sbom"][0], sbom.to_str().unwrap());
    support::validate_sbom(&[&sbom]);
    let doc: Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    assert_eq!(
        doc["metadata"]["component"]["properties"][0]["value"],
        "linux/arm64"
    );
}

#[test]
fn sbom_command_asks_which_target_when_the_lock_has_several() {
    let output = Command::cargo_bin("envbuild")
        .unwrap()
        .args(["sbom", "--platform", "linux/amd64", "--spec"])
        .arg(golden_spec())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("several targets (dev, prod)") && stderr.contains("hint: pass `--target"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

/// Remembers every progress call.
#[derive(Default)]
struct Recorder {
    calls: std::sync::Mutex<Vec<(String, envbuild::progress::Stage, String, u64)>>,
}

impl envbuild::progress::Reporter for Recorder {
    fn started(&self, stage: envbuild::progress::Stage, what: &str, total: Option<u64>) {
        let call = ("started".into(), stage, what.into(), total.unwrap_or(0));
        self.calls.lock().unwrap().push(call);
    }
    fn advanced(&self, stage: envbuild::progress::Stage, what: &str, bytes: u64) {
        let call = ("advanced".into(), stage, what.into(), bytes);
        self.calls.lock().unwrap().push(call);
    }
    fn finished(&self, stage: envbuild::progress::Stage, what: &str) {
        let call = ("finished".into(), stage, what.into(), 0);
        self.calls.lock().unwrap().push(call);
    }
}

#[test]
fn the_build_reports_each_layer_it_writes() {
    use envbuild::progress::Stage;

    let tmp = tempfile::tempdir().unwrap();
    let cache = Cache::new(Some(filled_cache(&tmp.path().join("cache"), false)));
    let spec = envbuild::spec::Spec::load(&golden_spec()).unwrap();
    let lock = envbuild::lock::Lock::load(&repo().join("fixtures/golden/envbuild.lock")).unwrap();
    let request = envbuild::build::BuildRequest {
        targets: vec!["dev".into(), "prod".into()],
        platforms: Vec::new(),
        source_date_epoch: None,
        offline: true,
        registry: envbuild::registry::RegistryOptions::default(),
    };
    let recorder = Recorder::default();
    let out = tmp.path().join("out");
    let images = envbuild::build::build(&lock, &spec, &request, &cache, &out, &recorder).unwrap();

    // Every layer envbuild wrote (not the base's) was started, sized and finished, once; the
    // cache was full, so nothing was downloaded.
    let calls = recorder.calls.into_inner().unwrap();
    assert!(calls.iter().all(|c| c.1 == Stage::Layer), "{calls:?}");
    // Layers are written per platform, even when two platforms' bytes are the same.
    let unique: std::collections::BTreeSet<(String, &String)> = images
        .iter()
        .flat_map(|i| &i.platforms)
        .flat_map(|p| p.layers.iter().map(|l| (p.platform.to_string(), l)))
        .collect();
    let finished: Vec<&String> = calls
        .iter()
        .filter(|c| c.0 == "finished")
        .map(|c| &c.2)
        .collect();
    assert_eq!(finished.len(), unique.len(), "{calls:?}");
    for what in &finished {
        let mine: Vec<&str> = calls
            .iter()
            .filter(|c| &&c.2 == what)
            .map(|c| c.0.as_str())
            .collect();
        assert_eq!(mine, ["started", "advanced", "finished"], "{what}");
    }
    assert!(
        finished.contains(&&"python venv (linux/arm64)".to_string()),
        "{finished:?}"
    );
}

/// Two builds at once, sharing one empty cache and downloading the same wheels: both finish
/// with the same digests, and the cache holds every wheel once, whole, with no partial file.
#[test]
fn two_builds_at_once_share_a_cache_without_harm() {
    let tmp = tempfile::tempdir().unwrap();
    let index = support::index::IndexServer::start(&tmp.path().join("wheels"));
    // Big enough that the two downloads overlap.
    // Incompressible (xorshift), so the wheels stay megabytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let payload: Vec<u8> = (0..4_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for name in ["alpha", "beta", "gamma"] {
        index.add(&WheelBuilder::new(name, "1.0").file(&format!("{name}/data.bin"), &payload));
    }
    let spec = tmp.path().join("envbuild.toml");
    std::fs::write(
        &spec,
        format!(
            "[image]\nbase = \"scratch\"\n\n[python]\nversion = \"3.11\"\n\
             interpreter = \"/usr/bin/python3.11\"\nlibc = \"glibc 2.36\"\n\
             requirements = [\"alpha\", \"beta\", \"gamma\"]\nindexes = [{{ url = \"{}\" }}]\n",
            index.url()
        ),
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let envbuild = |args: &[&str]| {
        let mut cmd = Command::cargo_bin("envbuild").unwrap();
        cmd.arg("--spec")
            .arg(&spec)
            .arg("--cache")
            .arg(&cache)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let lock = envbuild(&["lock"]).output().unwrap();
    assert!(
        lock.status.success(),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );
    // Locking reads metadata files only: the cache is still empty of wheels.
    let _ = std::fs::remove_dir_all(&cache);

    let outs: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| format!("oci:{}", tmp.path().join(n).display()))
        .collect();
    let children: Vec<_> = outs
        .iter()
        .map(|o| envbuild(&["build", "--output", o]).spawn().unwrap())
        .collect();
    let results: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for r in &results {
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    assert_eq!(results[0].stdout, results[1].stdout, "the same digests");

    let mut wheels = 0;
    for e in walkdir::WalkDir::new(&cache) {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".partial-"), "partial file left: {name}");
        if e.file_type().is_file() && e.path().to_string_lossy().contains("blobs/sha256") {
            assert_eq!(
                sha256_file(e.path()),
                name,
                "cache entry {name} is not whole"
            );
            wheels += 1;
        }
    }
    assert_eq!(wheels, 3, "each wheel once");
}

/// `diff` of two images reads what they hold from their layers: the six change, per
/// platform; dev's extra package over prod; and no mixing of a lock with an image.
#[test]
fn diff_of_two_images_names_the_packages_that_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = filled_cache(&tmp.path().join("cache"), false);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    build(&golden_spec(), &cache_dir, &a, tmp.path(), &[], "022");
    let project = six_changed(tmp.path(), &cache_dir);
    build(
        &project.join("envbuild.toml"),
        &cache_dir,
        &b,
        tmp.path(),
        &[],
        "022",
    );

    let diff = |old: &str, new: &str, json: bool| {
        let mut cmd = Command::cargo_bin("envbuild").unwrap();
        cmd.arg("--cache").arg(&cache_dir);
        if json {
            cmd.arg("--json");
        }
        cmd.args(["diff", old, new]).output().unwrap()
    };
    let oci = |dir: &Path, tag: &str| format!("oci:{}:{tag}", dir.display());

    let out = diff(&oci(&a, "prod"), &oci(&b, "prod"), false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec![
            "~ package six (linux/amd64) 1.16.0 -> 1.16.1",
            "~ package six (linux/arm64) 1.16.0 -> 1.16.1",
        ],
        "{stdout}"
    );

    let out = diff(&oci(&a, "prod"), &oci(&a, "dev"), true);
    let changes: Value = serde_json::from_slice(&out.stdout).unwrap();
    let added: Vec<&str> = changes
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["change"] == "added")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        added,
        vec!["pyflakes (linux/amd64)", "pyflakes (linux/arm64)"],
        "{changes}"
    );

    let lock = repo().join("fixtures/golden/envbuild.lock");
    let out = diff(lock.to_str().unwrap(), &oci(&a, "prod"), false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("are not of one kind"));
}
