use std::path::Path;

use super::*;

fn sample() -> Lock {
    Lock {
        version: LOCK_VERSION,
        spec_checksum: "sha256:00".into(),
        source_date_epoch: 0,
        settings: Settings {
            indexes: vec!["http://127.0.0.1:1/simple".into()],
            exclude_newer: None,
            platforms: vec![Platform::LinuxArm64, Platform::LinuxAmd64],
            venv: "/opt/venv".into(),
        },
        base: BaseLock {
            reference: "scratch".into(),
            index_digest: None,
            platforms: vec![],
        },
        targets: BTreeMap::new(),
        packages: vec![
            PackageLock {
                name: "zeta".into(),
                version: "1.0".into(),
                index: "http://127.0.0.1:1/simple".into(),
                targets: vec!["prod".into(), "dev".into()],
                dependencies: vec![],
                wheels: vec![],
            },
            PackageLock {
                name: "alpha".into(),
                version: "2.0".into(),
                index: "http://127.0.0.1:1/simple".into(),
                targets: vec!["dev".into()],
                dependencies: vec!["zeta".into()],
                wheels: vec![WheelLock {
                    platforms: vec![Platform::LinuxArm64, Platform::LinuxAmd64],
                    file: "alpha-2.0-py3-none-any.whl".into(),
                    url: "http://127.0.0.1:1/alpha-2.0-py3-none-any.whl".into(),
                    sha256: "ab".repeat(32),
                    size: Some(10),
                }],
            },
        ],
        extensions: vec![],
    }
}

#[test]
fn round_trips_and_is_sorted() {
    let lock = sample();
    let text = lock.to_toml();
    let back = Lock::parse(&text, Path::new("envbuild.lock")).unwrap();
    assert_eq!(back.packages[0].name, "alpha");
    assert_eq!(back.packages[1].targets, vec!["dev", "prod"]);
    assert_eq!(
        back.settings.platforms,
        vec![Platform::LinuxAmd64, Platform::LinuxArm64]
    );
    // Writing what was read gives the same bytes.
    assert_eq!(back.to_toml(), text);
}

#[test]
fn other_version_is_refused_with_hint() {
    let text = sample().to_toml().replace("version = 1", "version = 99");
    let err = Lock::parse(&text, Path::new("x.lock"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("version 99"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn unknown_key_is_refused() {
    let text = format!("{}\nsurprise = 1\n", sample().to_toml());
    assert!(Lock::parse(&text, Path::new("x.lock")).is_err());
}
