//! Code shared by the integration tests.

#![allow(dead_code)]

pub mod base;
pub mod faults;
pub mod gallery;
pub mod http;
pub mod index;
pub mod registry;
pub mod wheel;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A Python that can run `scripts/validate-sbom`: the first of `$ENVBUILD_TEST_PYTHON`,
/// `python3` and `/usr/bin/python3` that imports `jsonschema`. Debian's `python3-jsonschema`
/// lands in `/usr/bin/python3`, which is not always the `python3` on `PATH`.
pub fn jsonschema_python() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("ENVBUILD_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend([PathBuf::from("python3"), PathBuf::from("/usr/bin/python3")]);
    for python in &candidates {
        let ok = Command::new(python)
            .args(["-c", "import jsonschema"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return python.clone();
        }
    }
    panic!(
        "validating SBOMs needs Python's jsonschema (tried {candidates:?})\n\
         hint: apt-get install python3-jsonschema (scripts/test installs it), or \
         pip install jsonschema"
    );
}

/// Runs `scripts/validate-sbom` on the files and fails the test with its messages.
pub fn validate_sbom(files: &[&Path]) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(jsonschema_python())
        .arg(repo.join("scripts/validate-sbom"))
        .args(files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "SBOM does not validate against fixtures/schema/cyclonedx:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
