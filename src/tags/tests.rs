use super::*;

fn tags(libc: Libc, platform: Platform) -> Tags {
    Tags::new((3, 11), libc, platform)
}

fn rank(t: &Tags, file: &str) -> Option<usize> {
    t.rank(&WheelName::parse(file).unwrap())
}

const GLIBC_236: Libc = Libc::Glibc {
    major: 2,
    minor: 36,
};

#[test]
fn parses_names_with_build_tags_and_compressed_sets() {
    let w = WheelName::parse("foo_bar-1.0-1-py2.py3-none-any.whl").unwrap();
    assert_eq!(w.distribution, "foo_bar");
    assert_eq!(w.version, "1.0");
    assert_eq!(w.build.as_deref(), Some("1"));
    assert_eq!(w.python, ["py2", "py3"]);
    assert!(WheelName::parse("foo-1.0.tar.gz").is_err());
    assert!(WheelName::parse("foo-1.0-py3-none.whl").is_err());
}

#[test]
fn glibc_bounds_manylinux() {
    let t = tags(GLIBC_236, Platform::LinuxAmd64);
    assert!(rank(&t, "a-1-cp311-cp311-manylinux_2_17_x86_64.whl").is_some());
    assert!(rank(&t, "a-1-cp311-cp311-manylinux_2_36_x86_64.whl").is_some());
    assert!(rank(&t, "a-1-cp311-cp311-manylinux_2_39_x86_64.whl").is_none());
    assert!(rank(&t, "a-1-cp311-cp311-manylinux2014_x86_64.whl").is_some());
    assert!(rank(&t, "a-1-cp311-cp311-manylinux2010_x86_64.whl").is_some());
    assert!(rank(&t, "a-1-cp311-cp311-manylinux1_x86_64.whl").is_some());
    assert!(rank(&t, "a-1-cp311-cp311-manylinux_2_17_aarch64.whl").is_none());
    assert!(rank(&t, "a-1-cp311-cp311-linux_x86_64.whl").is_none());
    assert!(rank(&t, "a-1-cp311-cp311-musllinux_1_1_x86_64.whl").is_none());
}

#[test]
fn arm64_has_no_pre_2014_aliases() {
    let t = tags(GLIBC_236, Platform::LinuxArm64);
    assert!(rank(&t, "a-1-cp311-cp311-manylinux2014_aarch64.whl").is_some());
    assert!(rank(&t, "a-1-cp311-cp311-manylinux1_aarch64.whl").is_none());
}

#[test]
fn musl_and_abi3_and_pure() {
    let musl = Libc::Musl { major: 1, minor: 2 };
    let t = tags(musl, Platform::LinuxAmd64);
    assert!(rank(&t, "a-1-cp311-cp311-musllinux_1_2_x86_64.whl").is_some());
    assert!(rank(&t, "a-1-cp311-cp311-musllinux_1_3_x86_64.whl").is_none());
    assert!(rank(&t, "a-1-cp311-cp311-manylinux_2_17_x86_64.whl").is_none());
    assert!(rank(&t, "a-1-cp38-abi3-musllinux_1_1_x86_64.whl").is_some());
    assert!(rank(&t, "a-1-cp312-abi3-musllinux_1_1_x86_64.whl").is_none());
    assert!(rank(&t, "a-1-cp310-cp310-musllinux_1_1_x86_64.whl").is_none());
    assert!(rank(&t, "a-1-py3-none-any.whl").is_some());
    assert!(rank(&t, "a-1-py2-none-any.whl").is_none());
}

#[test]
fn the_most_specific_wheel_ranks_first() {
    let t = tags(GLIBC_236, Platform::LinuxAmd64);
    let exact = rank(&t, "a-1-cp311-cp311-manylinux_2_28_x86_64.whl").unwrap();
    let older_glibc = rank(&t, "a-1-cp311-cp311-manylinux_2_17_x86_64.whl").unwrap();
    let abi3 = rank(&t, "a-1-cp39-abi3-manylinux_2_28_x86_64.whl").unwrap();
    let pure = rank(&t, "a-1-py3-none-any.whl").unwrap();
    assert!(exact < older_glibc);
    assert!(older_glibc < abi3);
    assert!(abi3 < pure);
}
