use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Spec, SpecError> {
    Spec::parse(text, Path::new("envbuild.toml"))
}

#[test]
fn minimal_spec_defaults_to_amd64_and_prod() {
    let spec = parse("[image]\nbase = \"scratch\"\n").unwrap();
    assert_eq!(spec.platforms(), vec![Platform::LinuxAmd64]);
    assert_eq!(spec.target_names(), vec!["prod"]);
    assert_eq!(spec.venv(), DEFAULT_VENV);
}

#[test]
fn unknown_key_names_line_and_key() {
    let err = parse("[image]\nbase = \"scratch\"\n\n[python]\nrequirement = []\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("envbuild.toml"), "{msg}");
    assert!(msg.contains("line 5"), "{msg}");
    assert!(msg.contains("requirement"), "{msg}");
}

#[test]
fn wrong_type_is_an_error() {
    let err = parse("[image]\nbase = 3\n").unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn bad_requirement_names_line() {
    let text =
        "[image]\nbase = \"scratch\"\n[python]\nrequirements = [\n  \"ok\",\n  \"bad>>=1\",\n]\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(err.contains("line 6"), "{err}");
    assert!(err.contains("python.requirements"), "{err}");
    assert!(err.contains("bad>>=1"), "{err}");
}

#[test]
fn targets_extend_and_detect_cycles() {
    let text = r#"
[image]
base = "scratch"
[python]
requirements = ["a"]
[targets.prod]
[targets.dev]
extends = "prod"
requirements = ["b[x]; python_version >= '3.8'"]
"#;
    let spec = parse(text).unwrap();
    let dev = spec.target("dev").unwrap();
    assert_eq!(dev.chain, vec!["prod", "dev"]);
    assert_eq!(dev.requirements.len(), 2);
    assert_eq!(spec.target("prod").unwrap().requirements.len(), 1);

    let cyclic =
        "[image]\nbase=\"scratch\"\n[targets.a]\nextends=\"b\"\n[targets.b]\nextends=\"a\"\n";
    let err = parse(cyclic).unwrap_err().to_string();
    assert!(err.contains("cycle"), "{err}");
}

#[test]
fn checksum_ignores_comments_order_and_line_endings() {
    let a = "[image]\nbase = \"scratch\"\nplatforms = [\"linux/amd64\"]\n";
    let b =
        "# a comment\r\n[image]\r\nplatforms = [\"linux/amd64\"] # here\r\nbase = \"scratch\"\r\n";
    let c = "[image]\nbase = \"other\"\n";
    assert_eq!(spec_checksum(a).unwrap(), spec_checksum(b).unwrap());
    assert_ne!(spec_checksum(a).unwrap(), spec_checksum(c).unwrap());
}

#[test]
fn libc_and_exclude_newer_parse() {
    assert_eq!(
        "glibc 2.36".parse::<Libc>().unwrap(),
        Libc::Glibc {
            major: 2,
            minor: 36
        }
    );
    assert_eq!(
        "musl-1.2".parse::<Libc>().unwrap(),
        Libc::Musl { major: 1, minor: 2 }
    );
    assert!("bsd 1.0".parse::<Libc>().is_err());
    assert!(parse_exclude_newer("2024-01-02").is_ok());
    assert!(parse_exclude_newer("2024-01-02T03:04:05Z").is_ok());
    assert!(parse_exclude_newer("yesterday").is_err());
}
