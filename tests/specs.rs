//! The example specs in `specs/` lock and build. Each is copied into a temporary project with
//! its base, index and gallery pointed at stand-ins on this machine (a local OCI layout shaped
//! like the official Python image, a PEP 691 index and an Open VSX gallery on 127.0.0.1, all
//! serving artifacts made here under the real names); the spec files themselves keep the public
//! addresses a user needs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use envbuild::lock::Lock;
use serde_json::Value;
use support::gallery::{Gallery, VsixBuilder};
use support::index::IndexServer;
use support::wheel::WheelBuilder;

const REAL_BASE: &str = "docker.io/library/python:3.11-slim-bookworm";
const REAL_INDEX: &str = "https://pypi.org/simple";
const REAL_GALLERY: &str = "https://open-vsx.org";

const AMD64: &str = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64";
const ARM64: &str = "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64";

/// A project made from one of `specs/`, with its stand-in servers.
struct Project {
    tmp: tempfile::TempDir,
    index: IndexServer,
    gallery: Gallery,
}

impl Project {
    /// Copies `specs/<name>/envbuild.toml` and points it at the stand-ins.
    fn new(name: &str, arches: &[&str]) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let index = IndexServer::start(&tmp.path().join("index"));
        let gallery = Gallery::start();
        let base = support::base::python_slim(&tmp.path().join("base"), arches);

        let original = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("specs")
            .join(name)
            .join("envbuild.toml");
        let text = std::fs::read_to_string(&original).unwrap();
        // The spec must name the real places: the test replaces them, the user keeps them.
        assert!(text.contains(&format!("base = \"{REAL_BASE}\"")), "{name}");
        assert!(text.contains(&format!("url = \"{REAL_INDEX}\"")), "{name}");
        let text = text
            .replace(REAL_BASE, &base)
            .replace(REAL_INDEX, &index.url())
            .replace(REAL_GALLERY, &gallery.url);
        std::fs::create_dir_all(tmp.path().join("project")).unwrap();
        std::fs::write(tmp.path().join("project/envbuild.toml"), text).unwrap();
        Project {
            tmp,
            index,
            gallery,
        }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("project")
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::cargo_bin("envbuild")
            .unwrap()
            .args(args)
            .arg("--cache")
            .arg(self.tmp.path().join("cache"))
            .current_dir(self.dir())
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap()
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "envbuild {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `envbuild lock` then `envbuild build`; returns target → digest.
    fn lock_and_build(&self) -> BTreeMap<String, String> {
        self.run_ok(&["lock"]);
        self.run_ok(&["lock", "--check"]);
        let build = self.run(&["build", "--output", "oci:out"]);
        let stderr = String::from_utf8_lossy(&build.stderr);
        assert!(build.status.success(), "envbuild build failed:\n{stderr}");

        // stderr is not a terminal here: progress comes as one plain line per item.
        let lock = self.lock();
        for p in &lock.packages {
            for w in &p.wheels {
                let line = format!("Downloaded {} (", w.file);
                assert!(stderr.contains(&line), "no `{line}` in:\n{stderr}");
            }
        }
        assert!(
            stderr.contains("Wrote layer python venv (linux/amd64) ("),
            "{stderr}"
        );

        String::from_utf8(build.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(t, d)| (t.to_string(), d.to_string()))
            .collect()
    }

    fn lock(&self) -> Lock {
        Lock::load(&self.dir().join("envbuild.lock")).unwrap()
    }

    fn layout(&self) -> PathBuf {
        self.dir().join("out")
    }
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn read_json(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&std::fs::read(blob(layout, digest)).unwrap()).unwrap()
}

/// `os/arch` → layer digests of the image a digest names (an index or one manifest).
fn layers(layout: &Path, digest: &str) -> BTreeMap<String, Vec<String>> {
    let root = read_json(layout, digest);
    let manifests: Vec<(String, String)> = match root["manifests"].as_array() {
        Some(list) => list
            .iter()
            .map(|m| {
                let p = &m["platform"];
                let platform = format!(
                    "{}/{}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                );
                (platform, m["digest"].as_str().unwrap().to_string())
            })
            .collect(),
        None => {
            let config = read_json(layout, root["config"]["digest"].as_str().unwrap());
            let platform = format!(
                "{}/{}",
                config["os"].as_str().unwrap(),
                config["architecture"].as_str().unwrap()
            );
            vec![(platform, digest.to_string())]
        }
    };
    manifests
        .into_iter()
        .map(|(platform, d)| {
            let list = read_json(layout, &d)["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string())
                .collect();
            (platform, list)
        })
        .collect()
}

/// The paths a gzip layer holds.
fn layer_paths(layout: &Path, digest: &str) -> BTreeSet<String> {
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(blob(layout, digest)).unwrap())
        .read_to_end(&mut data)
        .unwrap();
    let mut archive = tar::Archive::new(data.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

fn assert_prefix(prod: &[String], dev: &[String], what: &str) {
    assert!(dev.len() > prod.len(), "{what}: {prod:?} vs {dev:?}");
    assert_eq!(&dev[..prod.len()], prod, "{what}");
}

/// Validates every SBOM the build wrote and checks each names every locked package.
fn check_sboms(project: &Project, expected: usize) {
    let lock = project.lock();
    let dir = project.layout().join("sbom");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), expected, "{files:?}");
    for file in &files {
        let doc: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let target = doc["metadata"]["component"]["name"].as_str().unwrap();
        let purls: BTreeSet<&str> = doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["purl"].as_str())
            .collect();
        for p in lock.packages_in(target) {
            let purl = format!("pkg:pypi/{}@{}?", p.name, p.version);
            assert!(
                purls.iter().any(|u| u.starts_with(&purl)),
                "{} lacks {purl}",
                file.display()
            );
        }
        for e in lock.extensions_in(target) {
            let purl = format!("pkg:generic/{}@{}", e.id.replace('.', "/"), e.version);
            assert!(
                purls.contains(purl.as_str()),
                "{} lacks {purl}",
                file.display()
            );
        }
    }
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    support::validate_sbom(&refs);
}

/// A platform wheel for each tag.
fn native(index: &IndexServer, wheel: WheelBuilder, tags: &[&str]) {
    for tag in tags {
        index.add(&wheel.clone().tag(tag));
    }
}

#[test]
fn datascience_spec_locks_and_builds_with_prod_a_prefix_of_dev() {
    let project = Project::new("datascience", &["amd64"]);
    let index = &project.index;

    // prod: the scientific stack, with the dependencies the real releases declare.
    native(index, WheelBuilder::new("numpy", "2.1.3"), &[AMD64]);
    native(
        index,
        WheelBuilder::new("pandas", "2.2.3")
            .requires("numpy>=1.23.2; python_version == '3.11'")
            .requires("python-dateutil>=2.8.2")
            .requires("pytz>=2020.1")
            .requires("tzdata>=2022.7"),
        &[AMD64],
    );
    native(
        index,
        WheelBuilder::new("scikit-learn", "1.5.2")
            .requires("numpy>=1.19.5")
            .requires("scipy>=1.6.0")
            .requires("joblib>=1.2.0")
            .requires("threadpoolctl>=3.1.0"),
        &[AMD64],
    );
    native(
        index,
        WheelBuilder::new("scipy", "1.14.1").requires("numpy<2.3,>=1.23.5"),
        &[AMD64],
    );
    index.add(&WheelBuilder::new("python-dateutil", "2.9.0.post0").requires("six>=1.5"));
    for (name, version) in [
        ("six", "1.16.0"),
        ("pytz", "2024.2"),
        ("tzdata", "2024.2"),
        ("joblib", "1.4.2"),
        ("threadpoolctl", "3.5.0"),
    ] {
        index.add(&WheelBuilder::new(name, version));
    }

    // dev: JupyterLab, its Git plugin with a prebuilt labextension, a kernel.
    index.add(
        &WheelBuilder::new("jupyterlab", "4.2.5")
            .requires("jupyter-server<3,>=2.4.0")
            .requires("ipykernel>=6.5.0")
            .entry_points("[console_scripts]\njupyter-lab = jupyterlab.labapp:main\n"),
    );
    index.add(
        &WheelBuilder::new("jupyter-server", "2.14.2")
            .entry_points("[console_scripts]\njupyter-server = jupyter_server.serverapp:main\n"),
    );
    index.add(
        &WheelBuilder::new("jupyterlab-git", "0.50.1")
            .requires("jupyter-server<3,>=2.0.1")
            .file(
                "jupyterlab_git-0.50.1.data/data/share/jupyter/labextensions/@jupyterlab/git/\
                 package.json",
                br#"{"name": "@jupyterlab/git", "version": "0.50.1"}"#,
            ),
    );
    index.add(&WheelBuilder::new("ipykernel", "6.29.5"));
    project
        .gallery
        .publish(VsixBuilder::new("ms-python", "python", "2024.16.1"));
    project
        .gallery
        .publish(VsixBuilder::new("ms-toolsai", "jupyter", "2024.10.0"));

    let digests = project.lock_and_build();
    assert_eq!(digests.keys().collect::<Vec<_>>(), ["dev", "prod"]);

    // One resolution: prod's packages are in dev too, at the same version.
    let lock = project.lock();
    let prod: Vec<&str> = lock.packages_in("prod").map(|p| p.name.as_str()).collect();
    assert!(
        prod.contains(&"scikit-learn") && prod.contains(&"scipy"),
        "{prod:?}"
    );
    assert!(!prod.contains(&"jupyterlab"), "{prod:?}");
    assert!(lock.packages_in("dev").count() > prod.len());
    assert!(lock.extensions_in("prod").next().is_none());
    assert_eq!(lock.extensions_in("dev").count(), 2);

    let out = project.layout();
    let prod_layers = layers(&out, &digests["prod"]);
    let dev_layers = layers(&out, &digests["dev"]);
    assert_eq!(prod_layers.keys().collect::<Vec<_>>(), ["linux/amd64"]);
    assert_prefix(
        &prod_layers["linux/amd64"],
        &dev_layers["linux/amd64"],
        "datascience",
    );

    // dev's own layers hold the plugin's labextension, the JupyterLab settings and the
    // extensions outside $HOME.
    let own = &dev_layers["linux/amd64"][prod_layers["linux/amd64"].len()..];
    let paths: BTreeSet<String> = own.iter().flat_map(|d| layer_paths(&out, d)).collect();
    for wanted in [
        "opt/venv/share/jupyter/labextensions/@jupyterlab/git/package.json",
        "opt/venv/share/jupyter/lab/settings/overrides.json",
        "opt/venv/etc/jupyter/labconfig/page_config.json",
        "opt/venv/bin/jupyter-lab",
        "opt/vscode/extensions/extensions.json",
    ] {
        assert!(
            paths.contains(wanted),
            "{wanted} not in dev's layers: {paths:?}"
        );
    }
    check_sboms(&project, 2);
}

#[test]
fn multiarch_spec_locks_and_builds_an_index_for_two_platforms() {
    let project = Project::new("multiarch", &["amd64", "arm64"]);
    let index = &project.index;
    native(index, WheelBuilder::new("numpy", "2.1.3"), &[AMD64, ARM64]);
    native(
        index,
        WheelBuilder::new("polars", "1.12.0"),
        &[
            "cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64",
            "cp39-abi3-manylinux_2_24_aarch64.manylinux_2_28_aarch64",
        ],
    );
    index.add(
        &WheelBuilder::new("rich", "13.9.4")
            .requires("markdown-it-py>=2.2.0")
            .requires("pygments<3.0.0,>=2.13.0"),
    );
    index.add(&WheelBuilder::new("markdown-it-py", "3.0.0").requires("mdurl~=0.1"));
    index.add(&WheelBuilder::new("mdurl", "0.1.2"));
    index.add(&WheelBuilder::new("pygments", "2.18.0"));

    let digests = project.lock_and_build();
    assert_eq!(digests.keys().collect::<Vec<_>>(), ["prod"]);

    // Compiled packages get a wheel per platform; pure ones one wheel for both.
    let lock = project.lock();
    let wheels = |name: &str| {
        let p = lock.packages.iter().find(|p| p.name == name).unwrap();
        p.wheels.iter().map(|w| w.file.clone()).collect::<Vec<_>>()
    };
    assert_eq!(wheels("numpy").len(), 2);
    assert_eq!(wheels("polars").len(), 2);
    assert!(
        wheels("polars")[1].contains("aarch64"),
        "{:?}",
        wheels("polars")
    );
    assert_eq!(wheels("rich").len(), 1);

    let out = project.layout();
    let image = read_json(&out, &digests["prod"]);
    assert_eq!(
        image["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{image}"
    );
    let by_platform = layers(&out, &digests["prod"]);
    assert_eq!(
        by_platform.keys().collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"]
    );
    let (amd, arm) = (&by_platform["linux/amd64"], &by_platform["linux/arm64"]);
    assert_eq!(amd.len(), arm.len());
    assert_ne!(amd, arm, "numpy and polars differ per platform");
    assert!(
        amd.iter().any(|l| arm.contains(l)),
        "pure layers are shared"
    );
    check_sboms(&project, 2);
}
