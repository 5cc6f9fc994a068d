//! Installing wheels through `envbuild build`, judged by outside oracles: the image's venv run by
//! the host's real interpreter, pip installing the same wheels into a real venv, and wheels made
//! to attack the installer.
//!
//! The host needs `python3` 3.11 (the fixture MarkupSafe wheels are `cp311`) with pip 20 or
//! later; nothing is fetched from the network.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use envbuild::cache::Cache;
use envbuild::lock::{
    BaseLock, BasePlatform, LOCK_VERSION, Lock, PackageLock, Settings, TargetLock, WheelLock,
};
use envbuild::platform::Platform;
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::index::IndexServer;
use support::wheel::{WheelBuilder, sha256_file};

const VENV: &str = "/opt/venv";
/// The index a hand-made lock names; builds read the cache, so it is never asked.
const NO_INDEX: &str = "http://127.0.0.1:9/simple";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The host's interpreter, which the image's venv links to so the host can run it.
struct HostPython {
    /// `python3` with symlinks resolved, as a base's detected interpreter would be.
    exe: String,
    /// Full version, e.g. `3.11.7`.
    version: String,
    /// `3.11`.
    short: String,
}

fn host_python() -> HostPython {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, platform, sys\nprint(os.path.realpath(sys.executable))\n\
             print(platform.python_version())",
        ])
        .output()
        .expect("python3 is needed on PATH");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let exe = lines.next().unwrap().to_string();
    let version = lines.next().unwrap().to_string();
    let short = version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    HostPython {
        exe,
        version,
        short,
    }
}

/// The platform of this machine, and the architecture in manylinux wheel tags.
fn host_platform() -> (Platform, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("linux/amd64".parse().unwrap(), "x86_64"),
        "aarch64" => ("linux/arm64".parse().unwrap(), "aarch64"),
        other => panic!("no fixture wheel of MarkupSafe for `{other}`"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One package of a hand-made lock.
struct Pkg {
    /// Normalized name.
    name: String,
    version: String,
    wheel: PathBuf,
    /// Named by the spec (gets `REQUESTED`).
    direct: bool,
}

fn pkg(name: &str, version: &str, wheel: PathBuf, direct: bool) -> Pkg {
    Pkg {
        name: name.to_string(),
        version: version.to_string(),
        wheel,
        direct,
    }
}

/// A spec over `scratch` for this machine's platform, a lock pinning given wheels, and a cache
/// holding them (as `envbuild fetch` leaves it), so `envbuild build --offline` installs exactly
/// those bytes.
struct Project {
    dir: PathBuf,
    cache: PathBuf,
    out: PathBuf,
}

impl Project {
    fn new(dir: &Path, python: &HostPython, pkgs: &[Pkg]) -> Project {
        std::fs::create_dir_all(dir).unwrap();
        let (platform, _) = host_platform();
        let direct: Vec<String> = pkgs
            .iter()
            .filter(|p| p.direct)
            .map(|p| p.name.clone())
            .collect();
        let requirements: Vec<String> = pkgs
            .iter()
            .filter(|p| p.direct)
            .map(|p| format!("\"{}=={}\"", p.name, p.version))
            .collect();
        let spec = format!(
            "[image]\nbase = \"scratch\"\nplatforms = [\"{platform}\"]\nvenv = \"{VENV}\"\n\n\
             [python]\nrequirements = [{}]\nindexes = [{{ url = \"{NO_INDEX}\" }}]\n\
             version = \"{}\"\ninterpreter = \"{}\"\nlibc = \"glibc 2.36\"\n",
            requirements.join(", "),
            python.version,
            python.exe
        );
        std::fs::write(dir.join("envbuild.toml"), &spec).unwrap();

        let cache = Cache::new(Some(dir.join("cache")));
        let mut packages = Vec::new();
        for p in pkgs {
            let file = p.wheel.file_name().unwrap().to_str().unwrap().to_string();
            let sha = sha256_file(&p.wheel);
            cache.insert_file(&p.wheel, &sha).unwrap();
            packages.push(PackageLock {
                name: p.name.clone(),
                version: p.version.clone(),
                index: NO_INDEX.to_string(),
                targets: vec!["prod".to_string()],
                dependencies: Vec::new(),
                wheels: vec![WheelLock {
                    platforms: vec![platform],
                    url: format!("http://127.0.0.1:9/files/{file}"),
                    file,
                    sha256: sha,
                    size: Some(std::fs::metadata(&p.wheel).unwrap().len()),
                }],
            });
        }
        let lock = Lock {
            version: LOCK_VERSION,
            spec_checksum: envbuild::spec::spec_checksum(&spec).unwrap(),
            source_date_epoch: 1_700_000_000,
            settings: Settings {
                indexes: vec![NO_INDEX.to_string()],
                exclude_newer: None,
                platforms: vec![platform],
                venv: VENV.to_string(),
            },
            base: BaseLock {
                reference: "scratch".to_string(),
                index_digest: None,
                platforms: vec![BasePlatform {
                    platform,
                    manifest_digest: None,
                    config_digest: None,
                    layers: Vec::new(),
                    python_version: python.version.clone(),
                    interpreter: python.exe.clone(),
                    libc: "glibc 2.36".to_string(),
                }],
            },
            targets: BTreeMap::from([(
                "prod".to_string(),
                TargetLock {
                    chain: vec!["prod".to_string()],
                    direct,
                },
            )]),
            packages,
            extensions: Vec::new(),
        };
        lock.save(&dir.join("envbuild.lock")).unwrap();
        Project {
            dir: dir.to_path_buf(),
            cache: dir.join("cache"),
            out: dir.join("out"),
        }
    }

    /// `envbuild build --offline` (plus `extra`) into `out`.
    fn build(&self, extra: &[&str]) -> Output {
        Command::cargo_bin("envbuild")
            .unwrap()
            .arg("--spec")
            .arg(self.dir.join("envbuild.toml"))
            .arg("--cache")
            .arg(&self.cache)
            .args(["build", "--offline", "--output"])
            .arg(format!("oci:{}", self.out.display()))
            .args(extra)
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("ENVBUILD_CACHE_DIR")
            .output()
            .unwrap()
    }
}

fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

fn read_json(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&read_blob(layout, digest)).unwrap()
}

/// Unpacks the layers of the image tagged `tag` in order into `root`; returns the paths the
/// venv skeleton layer holds (files and links), which pip's venv has in its own way.
fn unpack(layout: &Path, tag: &str, root: &Path) -> BTreeSet<String> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag `{tag}` in {index}"));
    let manifest = read_json(layout, desc["digest"].as_str().unwrap());
    assert!(
        manifest.get("layers").is_some(),
        "one platform gives a manifest: {manifest}"
    );
    std::fs::create_dir_all(root).unwrap();
    let mut skeleton = None;
    for layer in manifest["layers"].as_array().unwrap() {
        let path = layout.join("blobs/sha256").join(
            layer["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:"),
        );
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap());
        let mut archive = tar::Archive::new(gz);
        let mut names = BTreeSet::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            assert!(
                !name.contains(".wh."),
                "whiteouts are not expected in a fresh build: {name}"
            );
            if !entry.header().entry_type().is_dir() {
                names.insert(name);
            }
            entry.set_preserve_permissions(true);
            assert!(entry.unpack_in(root).unwrap(), "entry escapes the root");
        }
        if names.contains("opt/venv/pyvenv.cfg") {
            skeleton = Some(names);
        }
    }
    skeleton.expect("no layer holds opt/venv/pyvenv.cfg")
}

/// A file or link as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File { exec: bool, data: Vec<u8> },
    Link(PathBuf),
}

/// Every file and link under `root`, by relative path; `__pycache__` is left out since neither
/// installer compiles (pip is told `--no-compile`) but the host may write caches when running.
fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if e.file_type().is_dir() || rel.split('/').any(|c| c == "__pycache__") {
            continue;
        }
        let node = if e.file_type().is_symlink() {
            Node::Link(std::fs::read_link(e.path()).unwrap())
        } else {
            let mode = e.metadata().unwrap().permissions().mode();
            Node::File {
                exec: mode & 0o111 != 0,
                data: std::fs::read(e.path()).unwrap(),
            }
        };
        out.insert(rel, node);
    }
    out
}

/// `a/b/../c` → `a/c`, lexically, as RECORD's `../../../bin/x` rows are meant.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn record_hash(data: &[u8]) -> String {
    format!("sha256={}", URL_SAFE_NO_PAD.encode(Sha256::digest(data)))
}

// ------------------------------------------------------------------------------------------
// The demo environment: the real wheels of fixtures/wheels plus a made one that uses every
// `.data` scheme, entry points of both kinds and scripts with and without `#!python`.
// ------------------------------------------------------------------------------------------

/// The project name of the made wheel: a dash, so its file name (`data_demo-…`) and its name
/// differ the way real projects' do.
const DEMO: &str = "data-demo";

fn demo_wheel() -> WheelBuilder {
    let cli = "import sys\n\n\ndef main():\n    print('demo main', sys.argv[1:])\n\n\n\
               class Tool:\n    @staticmethod\n    def run():\n        print('tool run')\n        \
               return 3\n";
    WheelBuilder::new(DEMO, "1.0")
        .requires("six")
        .file("data_demo/cli.py", cli.as_bytes())
        .file(
            "data_demo-1.0.data/scripts/demo-script",
            b"#!python\nimport data_demo\nprint('demo-script', data_demo.__version__)\n",
        )
        .file(
            "data_demo-1.0.data/scripts/demo-script3",
            b"#!python3\nimport sys\nprint('demo-script3', sys.prefix)\n",
        )
        .file(
            "data_demo-1.0.data/scripts/plain.sh",
            b"#!/bin/sh\necho plain script\n",
        )
        .file(
            "data_demo-1.0.data/data/share/jupyter/labextensions/demo-ext/package.json",
            b"{\"name\": \"demo-ext\", \"version\": \"1.0.0\"}\n",
        )
        .file(
            "data_demo-1.0.data/data/etc/jupyter/jupyter_server_config.d/demo.json",
            b"{\"ServerApp\": {\"jpserver_extensions\": {\"data_demo\": true}}}\n",
        )
        .file("data_demo-1.0.data/headers/demo.h", b"#define DEMO 1\n")
        .file(
            "data_demo-1.0.data/purelib/data_demo_pure.py",
            b"WHERE = 'purelib'\n",
        )
        .file(
            "data_demo-1.0.data/platlib/data_demo_plat.py",
            b"WHERE = 'platlib'\n",
        )
        .entry_points(
            "[console_scripts]\ndemo = data_demo.cli:main\ndemo-tool = data_demo.cli:Tool.run\n\
             \n[gui_scripts]\ndemo-gui = data_demo.cli:main\n\n[other.group]\nnot-a-script = x:y\n",
        )
}

/// The wheels of the demo environment, copied into `dir` (and only those: pip is pointed at it
/// with `--find-links`).
fn demo_wheels(dir: &Path) -> Vec<Pkg> {
    std::fs::create_dir_all(dir).unwrap();
    let (_, arch) = host_platform();
    let fixtures = repo().join("fixtures/wheels");
    let markupsafe =
        format!("MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_{arch}.manylinux2014_{arch}.whl");
    let copy = |file: &str| {
        let dest = dir.join(file);
        std::fs::copy(fixtures.join(file), &dest).unwrap();
        dest
    };
    vec![
        // `six` comes in as a dependency of the demo only, so it gets no `REQUESTED`.
        pkg(
            "six",
            "1.16.0",
            copy("six-1.16.0-py2.py3-none-any.whl"),
            false,
        ),
        pkg("idna", "3.7", copy("idna-3.7-py3-none-any.whl"), true),
        pkg("markupsafe", "2.1.5", copy(&markupsafe), true),
        pkg(
            "pyflakes",
            "3.2.0",
            copy("pyflakes-3.2.0-py2.py3-none-any.whl"),
            true,
        ),
        pkg(DEMO, "1.0", demo_wheel().build(dir), true),
    ]
}

/// The demo environment built and unpacked.
struct Built {
    tmp: tempfile::TempDir,
    python: HostPython,
    wheels: PathBuf,
    root: PathBuf,
    /// Paths (relative to the root) of the venv skeleton layer.
    skeleton: BTreeSet<String>,
}

impl Built {
    fn venv(&self) -> PathBuf {
        self.root.join(VENV.trim_start_matches('/'))
    }

    fn site(&self) -> PathBuf {
        self.venv()
            .join(format!("lib/python{}/site-packages", self.python.short))
    }

    /// Runs a program with the environment of a plain shell: no variable that would make the
    /// interpreter look elsewhere than the venv it is started from.
    fn run(&self, program: &Path, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .env_remove("VIRTUAL_ENV")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(self.tmp.path())
            .output()
            .unwrap()
    }

    /// Runs a script with the venv's interpreter, since its shebang names `/opt/venv`.
    fn run_script(&self, script: &str, args: &[&str]) -> Output {
        let path = self.venv().join("bin").join(script);
        let mut all = vec![path.to_str().unwrap()];
        all.extend(args);
        self.run(&self.venv().join("bin/python"), &all)
    }
}

fn build_demo() -> Built {
    let python = host_python();
    assert_eq!(
        python.short, "3.11",
        "the fixture MarkupSafe wheels need CPython 3.11"
    );
    let tmp = tempfile::tempdir().unwrap();
    let wheels = tmp.path().join("wheels");
    let pkgs = demo_wheels(&wheels);
    let project = Project::new(&tmp.path().join("project"), &python, &pkgs);
    let out = project.build(&[]);
    assert!(out.status.success(), "build failed:\n{}", text(&out.stderr));
    let root = tmp.path().join("root");
    let skeleton = unpack(&project.out, "prod", &root);
    Built {
        tmp,
        python,
        wheels,
        root,
        skeleton,
    }
}

#[test]
fn the_host_interpreter_takes_the_venv_and_imports_every_package() {
    let b = build_demo();
    let script = "import json, sys\nimport importlib.metadata as md\n\
        import six, idna, markupsafe, pyflakes, data_demo, data_demo_pure, data_demo_plat\n\
        from markupsafe import _speedups\n\
        dists = {d.metadata['Name']: [d.version, d.read_text('INSTALLER'),\n\
                 d.read_text('REQUESTED') is not None] for d in md.distributions()}\n\
        print(json.dumps({'prefix': sys.prefix, 'base_prefix': sys.base_prefix,\n\
            'dists': dists, 'speedups': _speedups.__file__,\n\
            'escape': str(markupsafe.escape('<a>')), 'idna': idna.encode('bücher.de').decode(),\n\
            'six': six.__file__}))\n";
    let out = b.run(&b.venv().join("bin/python"), &["-c", script]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();

    // `pyvenv.cfg` made it a venv: the prefix is the image's venv, the base is the host's.
    assert_eq!(v["prefix"], b.venv().to_str().unwrap(), "{v}");
    assert_ne!(v["prefix"], v["base_prefix"], "{v}");
    let site = b.site();
    for module in ["speedups", "six"] {
        let file = v[module].as_str().unwrap();
        assert!(Path::new(file).starts_with(&site), "{module} from {file}");
    }
    assert_eq!(v["escape"], "&lt;a&gt;");
    assert_eq!(v["idna"], "xn--bcher-kva.de");

    // Exactly the locked distributions, no host site-packages leaking in; INSTALLER names
    // envbuild and REQUESTED marks the spec's own requirements only.
    let expected = serde_json::json!({
        "MarkupSafe": ["2.1.5", "envbuild\n", true],
        "data-demo": ["1.0", "envbuild\n", true],
        "idna": ["3.7", "envbuild\n", true],
        "pyflakes": ["3.2.0", "envbuild\n", true],
        "six": ["1.16.0", "envbuild\n", false],
    });
    assert_eq!(v["dists"], expected);

    // `pyvenv.cfg` says what `python -m venv` says about the interpreter.
    let cfg = std::fs::read_to_string(b.venv().join("pyvenv.cfg")).unwrap();
    let home = Path::new(&b.python.exe).parent().unwrap();
    for line in [
        format!("home = {}", home.display()),
        "include-system-site-packages = false".to_string(),
        format!("version = {}", b.python.version),
    ] {
        assert!(cfg.lines().any(|l| l == line), "`{line}` missing:\n{cfg}");
    }
}

/// RECORD rows of every installed distribution, read by Python's own `csv` module.
fn records(b: &Built) -> BTreeMap<String, Vec<Vec<String>>> {
    let script = "import csv, glob, json, os, sys\nsite = sys.argv[1]\nout = {}\n\
        for rec in sorted(glob.glob(os.path.join(site, '*.dist-info', 'RECORD'))):\n\
        \x20   with open(rec, newline='') as f:\n\
        \x20       out[os.path.relpath(rec, site)] = list(csv.reader(f))\n\
        print(json.dumps(out))\n";
    let out = b.run(
        Path::new(&b.python.exe),
        &["-c", script, b.site().to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_record_lists_every_installed_file_with_its_true_hash() {
    let b = build_demo();
    let site = b.site();
    let records = records(&b);
    assert_eq!(records.len(), 5, "{:?}", records.keys());

    let mut owner: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (record, rows) in &records {
        let mut saw_itself = false;
        for row in rows {
            let [path, hash, size] = row.as_slice() else {
                panic!("{record}: row {row:?} has not 3 fields");
            };
            let full = normalize(&site.join(path));
            assert!(
                full.starts_with(b.venv()),
                "{record}: `{path}` is outside the venv"
            );
            if let Some(other) = owner.insert(full.clone(), record.clone()) {
                panic!("`{path}` is listed by both {other} and {record}");
            }
            let data = std::fs::read(&full)
                .unwrap_or_else(|e| panic!("{record}: `{path}` is listed but unreadable: {e}"));
            if path == record {
                // RECORD cannot hold its own hash.
                assert_eq!((hash.as_str(), size.as_str()), ("", ""), "{record}");
                saw_itself = true;
                continue;
            }
            assert_eq!(*hash, record_hash(&data), "{record}: hash of `{path}`");
            assert_eq!(*size, data.len().to_string(), "{record}: size of `{path}`");
        }
        assert!(saw_itself, "{record} does not list itself");
    }

    // And nothing is installed that no RECORD owns (the skeleton is the venv's, not a
    // package's).
    let unowned: Vec<String> = tree(&b.root)
        .into_keys()
        .filter(|p| !b.skeleton.contains(p))
        .filter(|p| !owner.contains_key(&normalize(&b.root.join(p))))
        .collect();
    assert!(
        unowned.is_empty(),
        "installed but in no RECORD: {unowned:?}"
    );
}

#[test]
fn scripts_and_entry_points_run_with_the_venv_interpreter() {
    let b = build_demo();
    let bin = b.venv().join("bin");
    let first_line = |name: &str| {
        let data = std::fs::read_to_string(bin.join(name)).unwrap();
        data.lines().next().unwrap_or_default().to_string()
    };
    let shebang = format!("#!{VENV}/bin/python");
    // Launchers of both entry-point groups, and `.data/scripts` whose first line begins with
    // `#!python` (the binary distribution format says to rewrite those, `#!python3` included).
    for name in [
        "pyflakes",
        "demo",
        "demo-tool",
        "demo-gui",
        "demo-script",
        "demo-script3",
    ] {
        assert_eq!(first_line(name), shebang, "{name}");
        let mode = std::fs::metadata(bin.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{name} is not executable: {mode:o}");
    }
    // Other scripts keep their bytes.
    assert_eq!(
        std::fs::read(bin.join("plain.sh")).unwrap(),
        b"#!/bin/sh\necho plain script\n"
    );
    assert!(!bin.join("not-a-script").exists());

    let ok = |out: Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let version = ok(b.run_script("pyflakes", &["--version"]));
    assert!(version.starts_with("3.2.0 "), "{version}");
    // pyflakes really runs: it reports an unused import and exits 1.
    let linted = b.tmp.path().join("lint_me.py");
    std::fs::write(&linted, "import os\n").unwrap();
    let lint = b.run_script("pyflakes", &[linted.to_str().unwrap()]);
    assert_eq!(lint.status.code(), Some(1));
    assert!(text(&lint.stdout).contains("'os' imported but unused"));

    assert_eq!(
        ok(b.run_script("demo", &["a", "b"])),
        "demo main ['a', 'b']\n"
    );
    let tool = b.run_script("demo-tool", &[]);
    assert_eq!(
        (tool.status.code(), text(&tool.stdout)),
        (Some(3), "tool run\n".into())
    );
    assert_eq!(ok(b.run_script("demo-script", &[])), "demo-script 1.0\n");
    let prefix = ok(b.run_script("demo-script3", &[]));
    assert_eq!(prefix, format!("demo-script3 {}\n", b.venv().display()));
    assert_eq!(
        ok(b.run(Path::new("sh"), &[bin.join("plain.sh").to_str().unwrap()])),
        "plain script\n"
    );
}

// ------------------------------------------------------------------------------------------
// pip as the oracle.
// ------------------------------------------------------------------------------------------

/// Installs the demo's wheels with the host's pip into a fresh venv at `dir`; returns the files
/// pip added (everything but what `python -m venv` made).
fn pip_install(python: &HostPython, wheels: &Path, dir: &Path) -> BTreeMap<String, Node> {
    // pip learned `--python` (install into another environment) in 22.3; before it, the venv
    // gets its own pip, which the before/after difference below leaves out again.
    let version = Command::new(&python.exe)
        .args(["-c", "import pip; print(pip.__version__)"])
        .output()
        .expect("the host python needs pip");
    assert!(version.status.success(), "{}", text(&version.stderr));
    let version = text(&version.stdout);
    let parts: Vec<u32> = version
        .trim()
        .split('.')
        .map_while(|p| p.parse().ok())
        .collect();
    let has_python_option = parts.as_slice() >= [22, 3].as_slice();

    let mut venv = Command::new(&python.exe);
    venv.args(["-m", "venv"]);
    if has_python_option {
        venv.arg("--without-pip");
    }
    let made = venv.arg(dir).output().unwrap();
    assert!(made.status.success(), "{}", text(&made.stderr));
    let before = tree(dir);

    let mut pip = if has_python_option {
        let mut c = Command::new(&python.exe);
        c.args(["-m", "pip", "--python"])
            .arg(dir.join("bin/python"));
        c
    } else {
        let mut c = Command::new(dir.join("bin/python"));
        c.args(["-m", "pip"]);
        c
    };
    // By names from a folder, as from an index: the same REQUESTED rule as envbuild's, and no
    // `direct_url.json` (which pip writes for wheels given by path).
    pip.args([
        "install",
        "--no-index",
        "--no-compile",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--find-links",
    ])
    .arg(wheels)
    .args([DEMO, "idna", "markupsafe", "pyflakes"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("PIP_") {
            pip.env_remove(k);
        }
    }
    let out = pip
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PYTHONPATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    tree(dir)
        .into_iter()
        .filter(|(path, node)| before.get(path) != Some(node))
        .collect()
}

/// RECORD rows of a RECORD file's bytes: path → (hash, size). Paths with commas do not occur in
/// these wheels, so splitting is enough.
fn record_rows(data: &[u8]) -> BTreeMap<String, (String, String)> {
    text(data)
        .lines()
        .map(|l| {
            let mut f = l.rsplitn(3, ',');
            let size = f.next().unwrap().to_string();
            let hash = f.next().unwrap().to_string();
            (f.next().unwrap().to_string(), (hash, size))
        })
        .collect()
}

#[test]
fn pip_installs_the_same_files_with_the_same_bytes() {
    let b = build_demo();
    let pip_dir = b.tmp.path().join("pip-venv");
    let pip = pip_install(&b.python, &b.wheels, &pip_dir);
    let ours: BTreeMap<String, Node> = tree(&b.venv())
        .into_iter()
        .filter(|(p, _)| !b.skeleton.contains(&format!("opt/venv/{p}")))
        .collect();

    // 1. The same paths; pip's list holds every kind of file, so the comparison is not empty.
    let so = format!(
        "markupsafe/_speedups.cpython-{}",
        b.python.short.replace('.', "")
    );
    for kind in [
        "bin/pyflakes",
        "bin/demo-gui",
        "bin/demo-script3",
        "share/jupyter/labextensions/demo-ext/package.json",
        "etc/jupyter/jupyter_server_config.d/demo.json",
        "include/site/python3",
        "site-packages/data_demo_plat.py",
        "site-packages/six.py",
        "site-packages/data_demo-1.0.dist-info/REQUESTED",
        &so,
    ] {
        assert!(
            pip.keys().any(|p| p.contains(kind)),
            "pip installed no `{kind}`"
        );
    }
    let pip_paths: BTreeSet<&String> = pip.keys().collect();
    let our_paths: BTreeSet<&String> = ours.keys().collect();
    let only_pip: Vec<_> = pip_paths.difference(&our_paths).collect();
    let only_ours: Vec<_> = our_paths.difference(&pip_paths).collect();
    assert!(
        only_pip.is_empty() && only_ours.is_empty(),
        "installed files differ from pip's\n  only pip: {only_pip:#?}\n  only envbuild: \
         {only_ours:#?}"
    );

    // 2. The same bytes and executable bits, but where the two installers differ by design:
    //    - INSTALLER names the installer;
    //    - entry-point launchers are each installer's own small program;
    //    - `#!python` scripts name each venv's interpreter (pip drops the rest of the line);
    //    - RECORD holds the hashes of those files, so it is compared row by row below.
    let pip_python = format!("#!{}", pip_dir.join("bin/python").display());
    let launchers = ["bin/pyflakes", "bin/demo", "bin/demo-tool", "bin/demo-gui"];
    let mut differ = Vec::new();
    let mut records = Vec::new();
    for (path, theirs) in &pip {
        let mine = &ours[path];
        let (Node::File { exec: e1, data: d1 }, Node::File { exec: e2, data: d2 }) = (theirs, mine)
        else {
            assert_eq!(theirs, mine, "{path}");
            continue;
        };
        assert_eq!(e1, e2, "executable bit of `{path}`");
        let name = path.rsplit('/').next().unwrap();
        if name == "INSTALLER" {
            assert_eq!(
                (d1.as_slice(), d2.as_slice()),
                (&b"pip\n"[..], &b"envbuild\n"[..])
            );
            continue;
        }
        if launchers.contains(&path.as_str()) {
            continue;
        }
        if name == "RECORD" {
            records.push((path.clone(), record_rows(d1), record_rows(d2)));
            continue;
        }
        let d1 = match d1.strip_prefix(pip_python.as_bytes()) {
            Some(rest) => [format!("#!{VENV}/bin/python").as_bytes(), rest].concat(),
            None => d1.clone(),
        };
        if d1 != *d2 {
            differ.push(path.clone());
        }
    }
    assert!(differ.is_empty(), "content differs from pip's: {differ:?}");

    // 3. Each RECORD lists the same paths as pip's, with the same hashes for files whose bytes
    //    are the same.
    assert_eq!(records.len(), 5);
    for (path, theirs, mine) in records {
        let a: Vec<&String> = theirs.keys().collect();
        let b: Vec<&String> = mine.keys().collect();
        assert_eq!(a, b, "paths listed in `{path}`");
        for (row, (hash, size)) in &theirs {
            let name = row.rsplit('/').next().unwrap();
            let own = name == "INSTALLER" || launchers.iter().any(|l| row.ends_with(l));
            let script = row.contains("/bin/demo-script");
            if !own && !script {
                assert_eq!(
                    &mine[row],
                    &(hash.clone(), size.clone()),
                    "`{row}` in `{path}`"
                );
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Wheels made to attack the installer, each refused by `envbuild build` with a message naming
// the wheel and the member, and nothing left behind.
// ------------------------------------------------------------------------------------------

/// A wheel written member by member, so it can break the rules [`WheelBuilder`] keeps.
#[derive(Default)]
struct RawWheel {
    /// Extra files (name, bytes), listed in RECORD with their true hash.
    files: Vec<(String, Vec<u8>)>,
    /// A symbolic link member (name, target).
    symlink: Option<(String, String)>,
    /// A member whose bytes are replaced after RECORD was written (name, new bytes).
    lie: Option<(String, Vec<u8>)>,
    entry_points: Option<String>,
}

impl RawWheel {
    fn file(mut self, name: &str, data: &[u8]) -> Self {
        self.files.push((name.to_string(), data.to_vec()));
        self
    }

    /// Writes `evil-1.0-py3-none-any.whl` into `dir`.
    fn build(&self, dir: &Path) -> PathBuf {
        let path = dir.join("evil-1.0-py3-none-any.whl");
        let mut members: Vec<(String, Vec<u8>)> = vec![
            ("evil/__init__.py".into(), b"print('evil')\n".to_vec()),
            (
                "evil-1.0.dist-info/METADATA".into(),
                b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n".to_vec(),
            ),
            (
                "evil-1.0.dist-info/WHEEL".into(),
                b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                    .to_vec(),
            ),
        ];
        members.extend(self.files.iter().cloned());
        if let Some(ep) = &self.entry_points {
            members.push((
                "evil-1.0.dist-info/entry_points.txt".into(),
                ep.clone().into(),
            ));
        }
        let mut record = String::new();
        for (name, data) in &members {
            record.push_str(&format!("{name},{},{}\n", record_hash(data), data.len()));
        }
        if let Some((name, target)) = &self.symlink {
            let h = record_hash(target.as_bytes());
            record.push_str(&format!("{name},{h},{}\n", target.len()));
        }
        record.push_str("evil-1.0.dist-info/RECORD,,\n");
        if let Some((name, data)) = &self.lie {
            let member = members.iter_mut().find(|(n, _)| n == name).unwrap();
            member.1 = data.clone();
        }
        members.push(("evil-1.0.dist-info/RECORD".into(), record.into_bytes()));

        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        for (name, data) in &members {
            zip.start_file(name.as_str(), opts).unwrap();
            zip.write_all(data).unwrap();
        }
        if let Some((name, target)) = &self.symlink {
            zip.add_symlink(name.as_str(), target.as_str(), opts)
                .unwrap();
        }
        zip.finish().unwrap();
        path
    }
}

/// Every blob of the layout is complete, no temporary file is left, and with `strict` every
/// blob is reachable from `index.json`.
fn assert_layout_clean(out: &Path, strict: bool) {
    if !out.exists() {
        return;
    }
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let mut reachable = BTreeSet::new();
    let mut todo: Vec<Value> = index["manifests"].as_array().unwrap().clone();
    while let Some(desc) = todo.pop() {
        let digest = desc["digest"].as_str().unwrap().to_string();
        if !reachable.insert(digest.clone()) {
            continue;
        }
        let media = desc["mediaType"].as_str().unwrap_or_default();
        if media.ends_with("index.v1+json") || media.ends_with("manifest.v1+json") {
            let doc = read_json(out, &digest);
            for key in ["manifests", "layers"] {
                todo.extend(doc[key].as_array().cloned().unwrap_or_default());
            }
            if let Some(config) = doc.get("config") {
                todo.push(config.clone());
            }
        }
    }
    let mut stray = Vec::new();
    for e in walkdir::WalkDir::new(out) {
        let e = e.unwrap();
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(out)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let known = match rel.strip_prefix("blobs/sha256/") {
            Some(hex) => {
                assert_eq!(sha256_file(e.path()), hex, "incomplete blob");
                !strict || reachable.contains(&format!("sha256:{hex}"))
            }
            // The SBOMs of a successful earlier build are plain, complete files beside it.
            None => {
                rel == "oci-layout"
                    || rel == "index.json"
                    || (rel.starts_with("sbom/") && rel.ends_with(".cdx.json"))
            }
        };
        if !known {
            stray.push(rel);
        }
    }
    assert!(
        stray.is_empty(),
        "left in the layout, unreferenced: {stray:?}"
    );
}

/// Every artifact in the cache is complete and named by its sha256, and no temporary file is
/// left anywhere in it (the index metadata kept beside the blobs is the locker's).
fn assert_cache_clean(cache: &Path) {
    for e in walkdir::WalkDir::new(cache) {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy();
        assert!(
            !name.starts_with('.'),
            "temporary file {}",
            e.path().display()
        );
        if e.file_type().is_file() && e.path().starts_with(cache.join("blobs")) {
            assert_eq!(
                sha256_file(e.path()),
                name,
                "bad cache entry {}",
                e.path().display()
            );
        }
    }
}

/// Builds six plus the evil wheel, which must fail with exit 1 and no panic; returns stderr.
fn build_evil(what: &str, evil: RawWheel, dir: &Path) -> (String, Project) {
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let six = wheels.join("six-1.16.0-py2.py3-none-any.whl");
    std::fs::copy(
        repo().join("fixtures/wheels/six-1.16.0-py2.py3-none-any.whl"),
        &six,
    )
    .unwrap();
    let pkgs = [
        pkg("six", "1.16.0", six, true),
        pkg("evil", "1.0", evil.build(&wheels), true),
    ];
    let project = Project::new(&dir.join("project"), &host_python(), &pkgs);
    let out = project.build(&[]);
    let stderr = text(&out.stderr);
    eprintln!("{what}:\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert_cache_clean(&project.cache);
    (stderr, project)
}

/// The build of the evil wheel fails naming the wheel and each of `needles`, before anything
/// is written to the layout.
fn assert_refused(what: &str, evil: RawWheel, needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let (stderr, project) = build_evil(what, evil, tmp.path());
    assert!(
        stderr.contains("Failed to install wheel `evil-1.0-py3-none-any.whl`"),
        "{stderr}"
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{what}: `{needle}` not in:\n{stderr}"
        );
    }
    assert_layout_clean(&project.out, true);
}

#[test]
fn a_member_outside_the_venv_is_refused() {
    let refuse = |name: &str, needles: &[&str]| {
        assert_refused(name, RawWheel::default().file(name, b"x = 1\n"), needles);
    };
    refuse("../evil.py", &["member `../evil.py`", "`..`"]);
    refuse(
        "evil/../../../../etc/evil",
        &["member `evil/../../../../etc/evil`", "`..`"],
    );
    refuse("/etc/evil", &["member `/etc/evil`", "absolute path"]);
    refuse(
        "evil-1.0.data/data/../../../etc/evil",
        &["member `evil-1.0.data/data/../../../etc/evil`"],
    );
    refuse("evil-1.0.data/etc/passwd", &["`etc` is not a scheme"]);
}

#[test]
fn a_symbolic_link_member_is_refused() {
    let evil = RawWheel {
        symlink: Some(("evil/passwd".into(), "/etc/passwd".into())),
        ..RawWheel::default()
    };
    assert_refused("symlink", evil, &["member `evil/passwd`", "symbolic link"]);
}

#[test]
fn an_entry_point_named_outside_bin_is_refused() {
    let evil = RawWheel {
        entry_points: Some("[console_scripts]\n../../../etc/evil = evil:main\n".into()),
        ..RawWheel::default()
    };
    assert_refused(
        "entry point",
        evil,
        &[
            "entry_points.txt",
            "`../../../etc/evil` is not a valid script name",
        ],
    );
}

#[test]
fn a_record_that_lies_is_refused() {
    // Same size, other bytes: only the hash can tell.
    let evil = RawWheel {
        lie: Some(("evil/__init__.py".into(), b"print('EVIL')\n".to_vec())),
        ..RawWheel::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let (stderr, project) = build_evil("lying RECORD", evil, tmp.path());
    // The lie shows while the member streams into its layer; the error names the wheel and
    // the member, and blames the wheel, not the cache.
    for needle in [
        "Wheel `evil-1.0-py3-none-any.whl` does not match its own `RECORD`",
        "site-packages/evil/__init__.py`: `RECORD` says sha256",
        "hint: the wheel is the locked one but is broken as published",
    ] {
        assert!(stderr.contains(needle), "`{needle}` not in:\n{stderr}");
    }
    assert!(!stderr.contains("remove it from the cache"), "{stderr}");
    // Layers other threads finished before the failure never reached `blobs/`.
    assert_layout_clean(&project.out, true);
}

#[test]
fn a_wheel_that_is_not_the_locked_one_is_refused() {
    // Locked from a real index, then the index serves other bytes under the same name.
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    let index = IndexServer::start(&served);
    index.add(&WheelBuilder::new("tampered", "1.0"));
    let python = host_python();
    let (platform, _) = host_platform();
    let project = tmp.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("envbuild.toml"),
        format!(
            "[image]\nbase = \"scratch\"\nplatforms = [\"{platform}\"]\n\n[python]\n\
             requirements = [\"tampered\"]\nindexes = [{{ url = \"{}\" }}]\nversion = \"{}\"\n\
             interpreter = \"{}\"\nlibc = \"glibc 2.36\"\n",
            index.url(),
            python.version,
            python.exe
        ),
    )
    .unwrap();
    let cache = project.join("cache");
    let envbuild = |args: &[&str]| {
        Command::cargo_bin("envbuild")
            .unwrap()
            .arg("--cache")
            .arg(&cache)
            .args(args)
            .current_dir(&project)
            .env_remove("ENVBUILD_CACHE_DIR")
            .output()
            .unwrap()
    };
    let locked = envbuild(&["lock"]);
    assert!(locked.status.success(), "{}", text(&locked.stderr));
    let wheel = served.join("tampered-1.0-py3-none-any.whl");
    let good = std::fs::read(&wheel).unwrap();
    WheelBuilder::new("tampered", "1.0")
        .file("tampered/payload.py", b"import os\n")
        .build(&served);
    assert_ne!(std::fs::read(&wheel).unwrap(), good);

    // Downloaded: refused before it enters the cache.
    let out = envbuild(&["build", "--output", "oci:out"]);
    let stderr = text(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Hash mismatch for `tampered-1.0-py3-none-any.whl`")
            && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_cache_clean(&cache);
    assert!(!project.join("out").exists(), "the layout was started");

    // Tampered inside the cache: the entry is dropped, an offline build names what is missing
    // and an online one downloads it again (the index is right again).
    std::fs::write(&wheel, &good).unwrap();
    let sha = sha256_file(&wheel);
    let entry = Cache::new(Some(cache.clone()))
        .insert_file(&wheel, &sha)
        .unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&entry, bad).unwrap();
    let out = envbuild(&["build", "--offline", "--output", "oci:out"]);
    let stderr = text(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`tampered-1.0-py3-none-any.whl`") && stderr.contains("not in the cache"),
        "{stderr}"
    );
    assert!(!entry.exists(), "the corrupt entry is still there");
    assert_cache_clean(&cache);
    assert_layout_clean(&project.join("out"), true);
    let out = envbuild(&["build", "--output", "oci:out"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&entry).unwrap(), good);
    assert_layout_clean(&project.join("out"), true);
}
