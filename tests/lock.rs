//! `envbuild lock` end to end: the real binary against an index served on 127.0.0.1.

mod support;

use std::path::PathBuf;

use assert_cmd::Command;
use envbuild::lock::{Lock, PackageLock};
use envbuild::platform::Platform;
use support::index::{Fault, FileOpts, IndexServer};
use support::wheel::WheelBuilder;

/// A project folder with a spec, a cache and an index.
struct Project {
    dir: tempfile::TempDir,
    index: IndexServer,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let index = IndexServer::start(&dir.path().join("wheels"));
        Project { dir, index }
    }

    fn spec_path(&self) -> PathBuf {
        self.dir.path().join("envbuild.toml")
    }

    /// Writes a spec over `scratch` with the given platforms, requirements and extra lines
    /// for the `[python]` table, then anything after (e.g. targets).
    fn write_spec(&self, platforms: &[&str], reqs: &[&str], python_extra: &str, tail: &str) {
        let quote = |v: &[&str]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            "# a test spec\n[image]\nbase = \"scratch\"\nplatforms = [{}]\n\n[python]\n\
             version = \"3.11\"\ninterpreter = \"/usr/bin/python3.11\"\nlibc = \"glibc 2.36\"\n\
             requirements = [{}]\nindexes = [{{ url = \"{}\" }}]\n{python_extra}\n{tail}",
            quote(platforms),
            quote(reqs),
            self.index.url()
        );
        std::fs::write(self.spec_path(), text).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("envbuild").unwrap();
        cmd.arg("--spec")
            .arg(self.spec_path())
            .arg("--cache")
            .arg(self.dir.path().join("cache"))
            .arg("lock")
            .args(args)
            .env_remove("ENVBUILD_CACHE_DIR");
        cmd
    }

    fn lock_ok(&self, args: &[&str]) -> Lock {
        self.cmd(args).assert().success();
        self.lock()
    }

    /// Runs a lock that must fail with exit 1 and returns stderr.
    fn lock_err(&self, args: &[&str]) -> String {
        let out = self.cmd(args).assert().code(1).get_output().clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.contains("panicked"), "{err}");
        eprintln!("{err}");
        err
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.path().join("envbuild.lock")
    }

    fn lock(&self) -> Lock {
        Lock::load(&self.lock_path()).unwrap()
    }
}

fn package<'a>(lock: &'a Lock, name: &str) -> &'a PackageLock {
    lock.packages
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no `{name}` in {:#?}", lock.packages))
}

fn has(lock: &Lock, name: &str) -> bool {
    lock.packages.iter().any(|p| p.name == name)
}

fn pure(name: &str, version: &str) -> WheelBuilder {
    WheelBuilder::new(name, version)
}

#[test]
fn arm64_and_amd64_pick_their_own_wheels_and_share_pure_ones() {
    let p = Project::new();
    let amd = p.index.add(
        &pure("native", "1.0")
            .tag("cp311-cp311-manylinux_2_17_x86_64")
            .requires("helper>=1"),
    );
    let arm = p.index.add(
        &pure("native", "1.0")
            .tag("cp311-cp311-manylinux_2_17_aarch64")
            .requires("helper"),
    );
    let helper = p.index.add(&pure("helper", "1.2"));
    p.write_spec(&["linux/amd64", "linux/arm64"], &["Native"], "", "");

    let lock = p.lock_ok(&[]);
    let native = package(&lock, "native");
    assert_eq!(native.version, "1.0");
    assert_eq!(native.targets, ["prod"]);
    assert_eq!(native.dependencies, ["helper"]);
    assert_eq!(native.index, p.index.url());
    assert_eq!(native.wheels.len(), 2);
    let a = native.wheel_for(Platform::LinuxAmd64).unwrap();
    assert_eq!(a.file, "native-1.0-cp311-cp311-manylinux_2_17_x86_64.whl");
    assert_eq!(a.sha256, amd);
    assert!(
        a.url
            .ends_with("/files/native-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    );
    assert!(a.size.is_some());
    let b = native.wheel_for(Platform::LinuxArm64).unwrap();
    assert_eq!(b.file, "native-1.0-cp311-cp311-manylinux_2_17_aarch64.whl");
    assert_eq!(b.sha256, arm);

    let helper_lock = package(&lock, "helper");
    assert_eq!(helper_lock.wheels.len(), 1);
    assert_eq!(
        helper_lock.wheels[0].platforms,
        [Platform::LinuxAmd64, Platform::LinuxArm64]
    );
    assert_eq!(helper_lock.wheels[0].sha256, helper);
    assert_eq!(lock.targets["prod"].direct, ["native"]);
}

#[test]
fn manylinux_up_to_the_base_glibc_and_the_most_specific_wheel_wins() {
    let p = Project::new();
    p.index
        .add(&pure("fast", "2.0").tag("cp311-cp311-manylinux_2_39_x86_64"));
    p.index
        .add(&pure("fast", "1.0").tag("cp311-cp311-manylinux_2_17_x86_64"));
    p.index
        .add(&pure("fast", "1.0").tag("cp311-cp311-manylinux2014_x86_64"));
    p.index
        .add(&pure("fast", "1.0").tag("cp38-abi3-manylinux_2_28_x86_64"));
    p.index.add(&pure("fast", "1.0"));
    p.write_spec(&["linux/amd64"], &["fast"], "", "");

    let lock = p.lock_ok(&[]);
    let fast = package(&lock, "fast");
    assert_eq!(fast.version, "1.0");
    // `manylinux2014` is the legacy name of `manylinux_2_17`: equally specific, and the
    // modern name ranks first.
    assert_eq!(
        fast.wheels[0].file,
        "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    );

    // The only 2.0 wheel needs glibc 2.39: pinning it must fail and name what exists.
    p.write_spec(&["linux/amd64"], &["fast==2.0"], "", "");
    let err = p.lock_err(&[]);
    assert!(
        err.contains("No wheel of `fast` 2.0 fits linux/amd64"),
        "{err}"
    );
    assert!(err.contains("glibc 2.36"), "{err}");
    assert!(
        err.contains("fast-2.0-cp311-cp311-manylinux_2_39_x86_64.whl"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn exclude_newer_ignores_later_uploads() {
    let p = Project::new();
    let at = |t: &str| FileOpts {
        upload_time: Some(t.to_string()),
        ..FileOpts::default()
    };
    p.index
        .add_with(&pure("dated", "1.0"), at("2024-01-01T00:00:00Z"));
    p.index
        .add_with(&pure("dated", "2.0"), at("2024-06-01T00:00:00Z"));
    p.write_spec(
        &["linux/amd64"],
        &["dated"],
        "exclude-newer = \"2024-03-01\"",
        "",
    );
    assert_eq!(package(&p.lock_ok(&[]), "dated").version, "1.0");

    p.write_spec(&["linux/amd64"], &["dated"], "", "");
    assert_eq!(package(&p.lock_ok(&["--upgrade"]), "dated").version, "2.0");
}

#[test]
fn yanked_files_are_skipped_unless_pinned() {
    let p = Project::new();
    p.index.add(&pure("shaky", "1.0"));
    let yanked = FileOpts {
        yanked: true,
        ..FileOpts::default()
    };
    p.index.add_with(&pure("shaky", "2.0"), yanked);
    p.write_spec(&["linux/amd64"], &["shaky"], "", "");
    assert_eq!(package(&p.lock_ok(&[]), "shaky").version, "1.0");

    p.write_spec(&["linux/amd64"], &["shaky==2.0"], "", "");
    assert_eq!(package(&p.lock_ok(&[]), "shaky").version, "2.0");
}

#[test]
fn requires_python_is_honoured() {
    let p = Project::new();
    p.index.add(&pure("modern", "1.0").requires_python(">=3.8"));
    p.index
        .add(&pure("modern", "2.0").requires_python(">=3.12"));
    p.write_spec(&["linux/amd64"], &["modern"], "", "");
    assert_eq!(package(&p.lock_ok(&[]), "modern").version, "1.0");
}

#[test]
fn pins_are_kept_and_upgrade_package_moves_only_that_package() {
    let p = Project::new();
    p.index.add(&pure("alpha", "1.0"));
    p.index.add(&pure("beta", "1.0"));
    p.write_spec(&["linux/amd64"], &["alpha", "beta"], "", "");
    p.lock_ok(&[]);
    let first = std::fs::read_to_string(p.lock_path()).unwrap();

    p.index.add(&pure("alpha", "2.0"));
    p.index.add(&pure("beta", "2.0"));
    p.cmd(&[]).assert().success();
    assert_eq!(std::fs::read_to_string(p.lock_path()).unwrap(), first);

    let lock = p.lock_ok(&["--upgrade-package", "Alpha"]);
    assert_eq!(package(&lock, "alpha").version, "2.0");
    assert_eq!(package(&lock, "beta").version, "1.0");

    let lock = p.lock_ok(&["--upgrade"]);
    assert_eq!(package(&lock, "beta").version, "2.0");
}

#[test]
fn check_fails_after_a_spec_edit() {
    let p = Project::new();
    p.index.add(&pure("alpha", "1.0"));
    p.index.add(&pure("beta", "1.0"));
    p.write_spec(&["linux/amd64"], &["alpha"], "", "");
    p.cmd(&["--check"]).assert().code(3);
    p.lock_ok(&[]);
    p.cmd(&["--check"]).assert().success();

    p.write_spec(&["linux/amd64"], &["alpha", "beta"], "", "");
    let out = p.cmd(&["--check"]).assert().code(3).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("out of date"), "{err}");
}

#[test]
fn extras_markers_and_targets() {
    let p = Project::new();
    p.index.add(
        &pure("app", "1.0")
            .extra("fast")
            .requires("speedup; extra == 'fast'")
            .requires("linux-only; sys_platform == 'linux' and os_name == 'posix'")
            .requires("win-only; sys_platform == 'win32'")
            .requires("arm-only; platform_machine == 'aarch64'")
            .requires("old-py; python_version < '3.8'")
            .requires("cpy; platform_python_implementation == 'CPython'"),
    );
    for name in [
        "speedup",
        "linux-only",
        "arm-only",
        "cpy",
        "devtool",
        "devdep",
    ] {
        p.index.add(&pure(name, "1.0"));
    }
    p.index.add(&pure("devtool", "1.1").requires("devdep"));
    let tail = "[targets.prod]\n[targets.dev]\nextends = \"prod\"\nrequirements = [\"devtool\"]\n";
    p.write_spec(&["linux/amd64", "linux/arm64"], &["app[fast]"], "", tail);

    let lock = p.lock_ok(&[]);
    assert!(has(&lock, "speedup") && has(&lock, "linux-only") && has(&lock, "cpy"));
    assert!(!has(&lock, "win-only") && !has(&lock, "old-py"));
    let arm = package(&lock, "arm-only");
    assert_eq!(arm.wheels.len(), 1);
    assert_eq!(arm.wheels[0].platforms, [Platform::LinuxArm64]);
    let app = package(&lock, "app");
    assert_eq!(app.targets, ["dev", "prod"]);
    assert!(app.dependencies.contains(&"speedup".to_string()), "{app:?}");
    assert_eq!(package(&lock, "devtool").targets, ["dev"]);
    assert_eq!(package(&lock, "devtool").version, "1.1");
    assert_eq!(package(&lock, "devdep").targets, ["dev"]);
    assert_eq!(lock.targets["dev"].direct, ["app", "devtool"]);
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let p = Project::new();
    p.index.add(&pure("alpha", "1.0").requires("beta"));
    p.index.add(&pure("beta", "1.0"));
    p.index
        .add(&pure("beta", "1.0").tag("cp311-cp311-manylinux_2_17_aarch64"));
    p.write_spec(&["linux/arm64", "linux/amd64"], &["alpha"], "", "");
    p.lock_ok(&[]);
    let first = std::fs::read(p.lock_path()).unwrap();
    std::fs::remove_file(p.lock_path()).unwrap();
    std::fs::remove_dir_all(p.dir.path().join("cache")).unwrap();
    p.lock_ok(&[]);
    assert_eq!(std::fs::read(p.lock_path()).unwrap(), first);
    let out = p.cmd(&[]).assert().success().get_output().clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("up to date"));
}

#[test]
fn html_index_without_metadata_files_reads_the_wheel() {
    let p = Project::new();
    p.index.set_html(true);
    p.index.set_metadata_files(false);
    p.index.add(&pure("alpha", "1.0").requires("beta>=2"));
    p.index.add(&pure("beta", "1.0"));
    p.index.add(&pure("beta", "2.0").requires_python(">=3.8"));
    p.write_spec(&["linux/amd64"], &["alpha"], "", "");
    let lock = p.lock_ok(&[]);
    assert_eq!(package(&lock, "beta").version, "2.0");
    let requests = p.index.requests();
    assert!(
        requests
            .iter()
            .any(|r| r == "/files/alpha-1.0-py3-none-any.whl"),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.ends_with(".metadata")),
        "{requests:?}"
    );
}

#[test]
fn json_index_serves_metadata_files_without_wheel_downloads() {
    let p = Project::new();
    p.index.add(&pure("alpha", "1.0").requires("beta"));
    p.index.add(&pure("beta", "1.0"));
    p.write_spec(&["linux/amd64"], &["alpha"], "", "");
    p.lock_ok(&[]);
    let requests = p.index.requests();
    assert!(
        requests.iter().any(|r| r.ends_with(".whl.metadata")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.ends_with(".whl")),
        "{requests:?}"
    );
}

#[test]
fn the_first_index_that_has_a_name_serves_it() {
    let p = Project::new();
    let second = IndexServer::start(&p.dir.path().join("wheels2"));
    p.index.add(&pure("shared", "1.0"));
    second.add(&pure("shared", "9.0"));
    second.add(&pure("other", "1.0"));
    let extra = format!("[[python.indexes]]\nurl = \"{}\"\n", second.url());
    p.write_spec(&["linux/amd64"], &["shared", "other"], "", "");
    // Append the second index after the first one.
    let text = std::fs::read_to_string(p.spec_path()).unwrap().replace(
        &format!("indexes = [{{ url = \"{}\" }}]", p.index.url()),
        &format!(
            "indexes = [{{ url = \"{}\" }}, {{ url = \"{}\" }}]",
            p.index.url(),
            second.url()
        ),
    );
    std::fs::write(p.spec_path(), text).unwrap();
    let _ = extra;
    let lock = p.lock_ok(&[]);
    assert_eq!(package(&lock, "shared").version, "1.0");
    assert_eq!(package(&lock, "shared").index, p.index.url());
    assert_eq!(package(&lock, "other").index, second.url());
}

#[test]
fn platforms_agree_on_one_version() {
    let p = Project::new();
    p.index
        .add(&pure("lib", "1.0").tag("cp311-cp311-manylinux_2_17_x86_64"));
    p.index
        .add(&pure("lib", "1.0").tag("cp311-cp311-manylinux_2_17_aarch64"));
    p.index
        .add(&pure("lib", "2.0").tag("cp311-cp311-manylinux_2_17_x86_64"));
    p.write_spec(&["linux/amd64", "linux/arm64"], &["lib"], "", "");
    let lock = p.lock_ok(&[]);
    let lib = package(&lock, "lib");
    assert_eq!(lib.version, "1.0");
    assert_eq!(lib.wheels.len(), 2);
}

#[test]
fn unknown_package_is_a_clear_error() {
    let p = Project::new();
    p.index.add(&pure("alpha", "1.0").requires("nope"));
    p.write_spec(&["linux/amd64"], &["alpha"], "", "");
    let err = p.lock_err(&[]);
    assert!(err.contains("Package `nope` was not found"), "{err}");
    assert!(
        err.contains("Failed to look up `nope` (required by `alpha 1.0`)"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");

    // A direct requirement names its target.
    p.write_spec(&["linux/amd64"], &["nope"], "", "");
    let err = p.lock_err(&[]);
    assert!(
        err.contains("Failed to look up `nope` (required by target `prod`)"),
        "{err}"
    );
}

#[test]
fn conflicting_requirements_are_explained() {
    let p = Project::new();
    p.index.add(&pure("left", "1.0").requires("core<2"));
    p.index.add(&pure("right", "1.0").requires("core>=2"));
    p.index.add(&pure("core", "1.0"));
    p.index.add(&pure("core", "2.0"));
    p.write_spec(&["linux/amd64"], &["left", "right"], "", "");
    let err = p.lock_err(&[]);
    assert!(err.contains("cannot be satisfied"), "{err}");
    assert!(err.contains("left"), "{err}");
    assert!(err.contains("right"), "{err}");
    assert!(err.contains("core <2") || err.contains("core >=2"), "{err}");
}

#[test]
fn sdist_only_is_a_clear_error() {
    let p = Project::new();
    p.index.add_sdist("oldie", "1.0");
    p.write_spec(&["linux/amd64"], &["oldie"], "", "");
    let err = p.lock_err(&[]);
    assert!(
        err.contains("`oldie` 1.0 is only published as a source distribution"),
        "{err}"
    );
    assert!(err.contains("oldie-1.0.tar.gz"), "{err}");
}

#[test]
fn no_wheel_for_one_platform_names_the_platform() {
    let p = Project::new();
    p.index
        .add(&pure("x86", "1.0").tag("cp311-cp311-manylinux_2_17_x86_64"));
    p.write_spec(&["linux/amd64", "linux/arm64"], &["x86"], "", "");
    let err = p.lock_err(&[]);
    assert!(
        err.contains("No wheel of `x86` 1.0 fits linux/arm64"),
        "{err}"
    );
    assert!(
        err.contains("x86-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        "{err}"
    );
}

#[test]
fn unreachable_index_is_retried_then_reported() {
    let p = Project::new();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let text = format!(
        "[image]\nbase = \"scratch\"\n[python]\nversion = \"3.11\"\n\
         interpreter = \"/usr/bin/python3.11\"\nlibc = \"glibc 2.36\"\n\
         requirements = [\"alpha\"]\nindexes = [{{ url = \"http://127.0.0.1:{port}/simple\" }}]\n"
    );
    std::fs::write(p.spec_path(), text).unwrap();
    let err = p.lock_err(&[]);
    assert!(
        err.contains(&format!("127.0.0.1:{port}/simple/alpha/")),
        "{err}"
    );
    assert!(err.contains("after 4 attempts"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn malformed_index_answer_is_reported() {
    let p = Project::new();
    p.index.add(&pure("alpha", "1.0"));
    p.index.set_fault(Fault::MalformedJson);
    p.write_spec(&["linux/amd64"], &["alpha"], "", "");
    let err = p.lock_err(&[]);
    assert!(err.contains("malformed answer"), "{err}");
    assert!(err.contains("/simple/alpha/"), "{err}");
}

#[test]
fn server_errors_are_retried_then_reported() {
    let p = Project::new();
    p.index.add(&pure("alpha", "1.0"));
    p.index.set_fault(Fault::ServerError);
    p.write_spec(&["linux/amd64"], &["alpha"], "", "");
    let err = p.lock_err(&[]);
    assert!(err.contains("HTTP 500"), "{err}");
    let tries = p.index.requests().len();
    assert_eq!(tries, 4, "{:?}", p.index.requests());
}

#[test]
fn musllinux_base_takes_musl_wheels() {
    let p = Project::new();
    p.index
        .add(&pure("m", "1.0").tag("cp311-cp311-musllinux_1_1_x86_64"));
    p.index
        .add(&pure("m", "1.0").tag("cp311-cp311-manylinux_2_17_x86_64"));
    p.write_spec(&["linux/amd64"], &["m"], "", "");
    let text = std::fs::read_to_string(p.spec_path())
        .unwrap()
        .replace("glibc 2.36", "musl 1.2");
    std::fs::write(p.spec_path(), text).unwrap();
    let lock = p.lock_ok(&[]);
    assert_eq!(
        package(&lock, "m").wheels[0].file,
        "m-1.0-cp311-cp311-musllinux_1_1_x86_64.whl"
    );
}

/// Locks a realistic set against the public index. Run with `cargo test --test lock --
/// --ignored` on a machine that reaches pypi.org.
#[test]
#[ignore]
fn public_index_jupyterlab_pandas_scikit_learn() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("envbuild.toml");
    std::fs::write(
        &spec,
        "[image]\nbase = \"scratch\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\
         [python]\nversion = \"3.11\"\ninterpreter = \"/usr/bin/python3.11\"\n\
         libc = \"glibc 2.36\"\nrequirements = [\"jupyterlab\", \"pandas\", \"scikit-learn\"]\n",
    )
    .unwrap();
    Command::cargo_bin("envbuild")
        .unwrap()
        .arg("--spec")
        .arg(&spec)
        .arg("--cache")
        .arg(dir.path().join("cache"))
        .arg("lock")
        .assert()
        .success();
    let lock = Lock::load(&dir.path().join("envbuild.lock")).unwrap();
    for name in ["jupyterlab", "pandas", "scikit-learn", "numpy", "scipy"] {
        let p = package(&lock, name);
        for platform in [Platform::LinuxAmd64, Platform::LinuxArm64] {
            assert!(
                p.wheel_for(platform).is_some(),
                "{name} has no wheel for {platform:?}"
            );
        }
    }
    let numpy = package(&lock, "numpy");
    assert_ne!(
        numpy.wheel_for(Platform::LinuxAmd64).unwrap().file,
        numpy.wheel_for(Platform::LinuxArm64).unwrap().file
    );
    assert!(lock.packages.len() > 50, "{}", lock.packages.len());
}
