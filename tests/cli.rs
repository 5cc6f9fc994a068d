//! The command line as a user meets it: the exit codes and the error cases the README
//! documents, and stdout holding only results.

mod support;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use envbuild::cache::Cache;
use envbuild::lock::Lock;
use serde_json::Value;
use support::index::IndexServer;
use support::wheel::{WheelBuilder, sha256_file};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A folder holding the golden spec and lock, and a cache filled with their wheels.
struct Golden {
    dir: tempfile::TempDir,
}

impl Golden {
    fn new() -> Golden {
        let dir = tempfile::tempdir().unwrap();
        for name in ["envbuild.toml", "envbuild.lock"] {
            std::fs::copy(
                repo().join("fixtures/golden").join(name),
                dir.path().join(name),
            )
            .unwrap();
        }
        let cache = Cache::new(Some(dir.path().join("cache")));
        for entry in std::fs::read_dir(repo().join("fixtures/wheels")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "whl") {
                cache.insert_file(&path, &sha256_file(&path)).unwrap();
            }
        }
        Golden { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `envbuild ARGS --cache CACHE` in the folder.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("envbuild").unwrap();
        cmd.args(args)
            .arg("--cache")
            .arg(self.path().join("cache"))
            .current_dir(self.path())
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("ENVBUILD_LOG");
        cmd
    }

    fn lock(&self) -> Lock {
        Lock::load(&self.path().join("envbuild.lock")).unwrap()
    }
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An error for the user: exit code as documented, `error:` first, no panic or backtrace.
fn assert_user_error(output: &std::process::Output, code: i32) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(output.stdout.is_empty(), "stdout is for results only");
    err
}

#[test]
fn exit_code_0_on_success() {
    let golden = Golden::new();
    let output = golden
        .cmd(&["build", "--offline", "-q", "--output", "oci:out"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let version = Command::cargo_bin("envbuild")
        .unwrap()
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("envbuild "));
}

#[test]
fn exit_code_1_on_failure() {
    let golden = Golden::new();
    std::fs::write(
        golden.path().join("envbuild.toml"),
        "[image]\nbase = \"scratch\"\nplatfroms = [\"linux/amd64\"]\n",
    )
    .unwrap();
    let output = golden.cmd(&["build", "--offline"]).output().unwrap();
    let err = assert_user_error(&output, 1);
    assert!(
        err.contains("envbuild.toml") && err.contains("platfroms"),
        "{err}"
    );
}

#[test]
fn exit_code_2_on_usage_errors() {
    let golden = Golden::new();
    let unknown_flag = golden.cmd(&["build", "--no-such-flag"]).output().unwrap();
    assert_eq!(unknown_flag.status.code(), Some(2));
    assert!(stderr(&unknown_flag).contains("--no-such-flag"));
    assert!(unknown_flag.stdout.is_empty());

    let unknown_command = golden.cmd(&["bulid"]).output().unwrap();
    assert_eq!(unknown_command.status.code(), Some(2));

    let bad_output = golden
        .cmd(&["build", "--offline", "--output", "nowhere"])
        .output()
        .unwrap();
    let err = assert_user_error(&bad_output, 2);
    assert!(err.contains("Unknown output `nowhere`"), "{err}");
    assert!(err.contains("hint: use `oci:DIR`"), "{err}");
}

#[test]
fn exit_code_3_on_a_stale_or_missing_lock() {
    // Troubleshooting: "The lock ... is out of date".
    let golden = Golden::new();
    let spec = golden.path().join("envbuild.toml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, text.replace("C.UTF-8", "en_US.UTF-8")).unwrap();
    for args in [&["lock", "--check"][..], &["build", "--offline"][..]] {
        let output = golden.cmd(args).output().unwrap();
        let err = assert_user_error(&output, 3);
        assert!(
            err.contains("The lock `") && err.contains("is out of date"),
            "{args:?}: {err}"
        );
        assert!(err.contains("hint: run `envbuild lock`"), "{args:?}: {err}");
    }

    std::fs::remove_file(golden.path().join("envbuild.lock")).unwrap();
    for args in [&["lock", "--check"][..], &["build", "--offline"][..]] {
        let output = golden.cmd(args).output().unwrap();
        let err = assert_user_error(&output, 3);
        assert!(err.contains("No lock at `"), "{args:?}: {err}");
    }
}

#[test]
fn offline_build_names_the_missing_artifact_and_its_sha256() {
    // Troubleshooting: "... is not in the cache ... and the build is offline".
    let golden = Golden::new();
    std::fs::remove_dir_all(golden.path().join("cache")).unwrap();
    let output = golden
        .cmd(&["build", "--offline", "--target", "prod"])
        .output()
        .unwrap();
    let err = assert_user_error(&output, 1);
    assert!(
        err.contains("is not in the cache") && err.contains("the build is offline"),
        "{err}"
    );
    assert!(err.contains("hint: run `envbuild fetch`"), "{err}");
    let lock = golden.lock();
    let named = lock
        .packages_in("prod")
        .flat_map(|p| &p.wheels)
        .any(|w| err.contains(&format!("`{}` (sha256 `{}`)", w.file, w.sha256)));
    assert!(named, "no wheel of the lock named with its sha256: {err}");
}

#[test]
fn hash_mismatch_names_the_file_and_caches_nothing() {
    // Troubleshooting: "Hash mismatch for ...": the index serves other bytes than were locked.
    let tmp = tempfile::tempdir().unwrap();
    let index = IndexServer::start(&tmp.path().join("index"));
    index.add(&WheelBuilder::new("tinylib", "1.0.0"));
    std::fs::write(
        tmp.path().join("envbuild.toml"),
        format!(
            "[image]\nbase = \"scratch\"\n\n[python]\nrequirements = [\"tinylib\"]\n\
             indexes = [{{ url = \"{}\" }}]\nversion = \"3.11\"\n\
             interpreter = \"/usr/bin/python3.11\"\nlibc = \"glibc 2.36\"\n",
            index.url()
        ),
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let run = |args: &[&str]| {
        Command::cargo_bin("envbuild")
            .unwrap()
            .args(args)
            .arg("--cache")
            .arg(&cache)
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    let locked = run(&["lock"]);
    assert!(locked.status.success(), "{}", stderr(&locked));

    // Same name, other bytes.
    index.add(&WheelBuilder::new("tinylib", "1.0.0").file("tinylib/extra.py", b"x = 1\n"));
    let output = run(&["build", "--output", "oci:out"]);
    let err = assert_user_error(&output, 1);
    assert!(
        err.contains("Hash mismatch for `tinylib-1.0.0-py3-none-any.whl`"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");

    // Nothing of it reached the cache's blobs, not even a partial file (the index pages and
    // metadata that locking cached stay).
    let files: Vec<PathBuf> = walkdir::WalkDir::new(&cache)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(
        files
            .iter()
            .all(|p| !p.starts_with(cache.join("blobs"))
                && !p.to_string_lossy().contains(".partial")),
        "{files:?}"
    );
}

#[test]
fn json_output_is_json_on_stdout() {
    let golden = Golden::new();

    let build = golden
        .cmd(&["build", "--offline", "--output", "oci:out", "--json"])
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", stderr(&build));
    let images: Value = serde_json::from_slice(&build.stdout).unwrap();
    let targets: Vec<&str> = images
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["dev", "prod"]);
    for image in images.as_array().unwrap() {
        assert!(image["digest"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(image["sbom"].as_array().unwrap().len(), 2);
    }

    let lock_a = golden.path().join("envbuild.lock");
    let lock_b = golden.path().join("other.lock");
    let text = std::fs::read_to_string(&lock_a).unwrap();
    std::fs::write(
        &lock_b,
        text.replace("version = \"3.7\"", "version = \"3.8\""),
    )
    .unwrap();
    for args in [
        vec!["inspect", "--json", "envbuild.lock"],
        vec!["inspect", "--json", "oci:out:dev"],
        vec!["diff", "--json", "envbuild.lock", "other.lock"],
        vec!["sbom", "--target", "prod", "--platform", "linux/amd64"],
    ] {
        let output = golden.cmd(&args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        let parsed: Result<Value, _> = serde_json::from_slice(&output.stdout);
        assert!(
            parsed.is_ok(),
            "{args:?}: stdout is not JSON:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[test]
fn quiet_build_prints_only_the_result() {
    let golden = Golden::new();
    let output = golden
        .cmd(&["build", "--offline", "--output", "oci:out", "-q"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(
        output.stderr.is_empty(),
        "stderr with -q: {}",
        stderr(&output)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("dev sha256:"), "{stdout}");
    assert!(lines[1].starts_with("prod sha256:"), "{stdout}");

    // Without -q, what the build did goes to stderr, never to stdout.
    let output = golden
        .cmd(&["build", "--offline", "--output", "oci:out2"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), stdout);
    let err = stderr(&output);
    assert!(
        err.contains("Wrote layer") && err.contains("Built dev"),
        "{err}"
    );
}
