//! The layer writer, checked against the system's `gzip` and `tar` as independent readers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use envbuild::layer::{
    Entry, EntryKind, LayerError, LayerInfo, LayerOptions, ListedKind, Source, list_layer,
    write_layer,
};
use sha2::{Digest, Sha256};

const MTIME: u64 = 1_700_000_000;

fn opts() -> LayerOptions {
    LayerOptions { mtime: MTIME }
}

fn long_name() -> String {
    format!("opt/venv/lib/{}/{}.py", "d".repeat(60), "m".repeat(80))
}

fn long_dir() -> String {
    format!("opt/{}", "x".repeat(110))
}

fn long_target() -> String {
    format!("/usr/{}/python3", "t".repeat(120))
}

/// A mix of every kind of entry, long names included; no parents given for most paths.
fn sample_entries() -> Vec<Entry> {
    vec![
        Entry::bytes("opt/venv/bin/tool", 0o4775, "#!/bin/sh\necho tool\n"),
        Entry::bytes("opt/venv/pyvenv.cfg", 0o600, "home = /usr/bin\n"),
        Entry::symlink("opt/venv/bin/python", "/usr/bin/python3"),
        Entry::symlink("opt/venv/bin/python3", "python"),
        Entry::symlink("opt/venv/lib64", "lib"),
        Entry::dir("opt/venv/include"),
        Entry::dir("opt/venv/include/"),
        Entry::bytes(long_name(), 0o644, "x = 1\n"),
        Entry::symlink("opt/venv/bin/long", long_target()),
        Entry::bytes("opt/venv/share/empty", 0o644, ""),
        Entry::dir(long_dir()),
    ]
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn blob_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn blob_path(dir: &Path, info: &LayerInfo) -> PathBuf {
    dir.join(info.digest.trim_start_matches("sha256:"))
}

fn gunzip(blob: &Path) -> Vec<u8> {
    let out = Command::new("gzip").arg("-dc").arg(blob).output().unwrap();
    assert!(out.status.success(), "gzip -dc failed: {out:?}");
    out.stdout
}

#[test]
fn digests_match_independent_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let info = write_layer(sample_entries(), &opts(), tmp.path()).unwrap();
    let blob = blob_path(tmp.path(), &info);
    let bytes = std::fs::read(&blob).unwrap();

    assert_eq!(info.digest, format!("sha256:{}", sha256_hex(&bytes)));
    assert_eq!(info.size, bytes.len() as u64);
    assert_eq!(
        info.media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let tar = gunzip(&blob);
    assert_eq!(info.diff_id, format!("sha256:{}", sha256_hex(&tar)));

    // RFC 1952: magic, deflate, FLG 0 (no name, comment or extra), MTIME 0, OS 255.
    assert_eq!(&bytes[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
    assert_eq!(bytes[9], 255);
    assert_eq!(blob_names(tmp.path()).len(), 1, "no temporary file is left");
}

#[test]
fn system_tar_sees_normalized_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let info = write_layer(sample_entries(), &opts(), tmp.path()).unwrap();
    let tar_path = tmp.path().join("layer.tar");
    std::fs::write(&tar_path, gunzip(&blob_path(tmp.path(), &info))).unwrap();

    let out = Command::new("tar")
        .args(["--numeric-owner", "--full-time", "-tvf"])
        .arg(&tar_path)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();

    let rows: Vec<(String, String, String, String)> = lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f[5..].join(" ");
            (f[0].into(), f[1].into(), format!("{} {}", f[3], f[4]), name)
        })
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    let expected = [
        "opt/".to_string(),
        "opt/venv/".into(),
        "opt/venv/bin/".into(),
        "opt/venv/bin/long -> ".to_string() + &long_target(),
        "opt/venv/bin/python -> /usr/bin/python3".into(),
        "opt/venv/bin/python3 -> python".into(),
        "opt/venv/bin/tool".into(),
        "opt/venv/include/".into(),
        "opt/venv/lib/".into(),
        format!("opt/venv/lib/{}/", "d".repeat(60)),
        long_name(),
        "opt/venv/lib64 -> lib".into(),
        "opt/venv/pyvenv.cfg".into(),
        "opt/venv/share/".into(),
        "opt/venv/share/empty".into(),
        long_dir() + "/",
    ];
    assert_eq!(names, expected);

    for (perm, owner, time, name) in &rows {
        assert_eq!(owner, "0/0", "{name}");
        assert_eq!(time, "2023-11-14 22:13:20", "{name}");
        let want = if name.ends_with('/') || name.ends_with("tool") {
            "rwxr-xr-x"
        } else if name.contains(" -> ") {
            "rwxrwxrwx"
        } else {
            "rw-r--r--"
        };
        assert_eq!(&perm[1..], want, "{name}");
    }
}

/// Walks the raw tar blocks: only plain, directory, symlink and GNU long-name members, no PAX
/// headers, empty user and group names.
#[test]
fn raw_headers_have_no_extensions_or_names() {
    let tmp = tempfile::tempdir().unwrap();
    let info = write_layer(sample_entries(), &opts(), tmp.path()).unwrap();
    let tar = gunzip(&blob_path(tmp.path(), &info));

    let mut at = 0;
    let mut kinds = Vec::new();
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
        let h = &tar[at..at + 512];
        kinds.push(h[156]);
        assert!(b"052LK".contains(&h[156]), "type {}", h[156] as char);
        assert!(
            h[265..329].iter().all(|&b| b == 0),
            "uname/gname must be empty"
        );
        let size_field = std::str::from_utf8(&h[124..135]).unwrap();
        let size = u64::from_str_radix(size_field.trim_matches('\0'), 8).unwrap();
        at += 512 + size.div_ceil(512) as usize * 512;
    }
    assert!(kinds.contains(&b'L') && kinds.contains(&b'K'));
    assert_eq!(tar.len(), at + 1024, "ends with exactly two zero blocks");
}

#[test]
fn input_order_does_not_matter() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut reversed = sample_entries();
    reversed.reverse();
    let mut rotated = sample_entries();
    rotated.rotate_left(3);
    let one = write_layer(sample_entries(), &opts(), a.path()).unwrap();
    let two = write_layer(reversed, &opts(), b.path()).unwrap();
    let three = write_layer(rotated, &opts(), b.path()).unwrap();
    assert_eq!(one, two);
    assert_eq!(one, three);
    assert_eq!(
        blob_names(b.path()).len(),
        1,
        "the same blob is kept, not duplicated"
    );

    let later = write_layer(
        sample_entries(),
        &LayerOptions { mtime: MTIME + 1 },
        a.path(),
    );
    assert_ne!(
        later.unwrap().digest,
        one.digest,
        "the mtime option reaches the bytes"
    );
}

/// Environment variable telling this test binary to act as the child of `umask_and_tz_...`.
const CHILD_ENV: &str = "ENVBUILD_LAYER_TEST_CHILD_OUT";

/// In the child: creates files on disk (so their modes follow the umask), takes the entry
/// modes from the disk like a producer would, writes a layer and reports its digests.
#[test]
fn child_writes_layer_from_disk() {
    let Ok(out) = std::env::var(CHILD_ENV) else {
        return;
    };
    let out = PathBuf::from(out);
    let src = out.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut entries = Vec::new();
    let names: Vec<&str> = if std::env::var("REVERSE").is_ok() {
        vec!["run.sh", "data.txt"]
    } else {
        vec!["data.txt", "run.sh"]
    };
    for name in names {
        let path = src.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(format!("content of {name}\n").as_bytes())
            .unwrap();
        if name.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            // Executable for the owner only, as a umask of 077 would leave it.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode | 0o100)).unwrap();
        }
        let meta = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        entries.push(Entry {
            path: format!("app/{name}"),
            mode: meta.permissions().mode() & 0o7777,
            kind: EntryKind::File {
                size: meta.len(),
                source: Source::File(path),
            },
        });
    }
    let info = write_layer(entries, &opts(), &out.join("blobs")).unwrap();
    std::fs::write(
        out.join("digest"),
        format!("{} {}", info.digest, info.diff_id),
    )
    .unwrap();
}

#[test]
fn umask_and_tz_do_not_matter() {
    let exe = std::env::current_exe().unwrap();
    let mut results = Vec::new();
    for (umask, tz, reverse) in [("022", "UTC", false), ("077", "Asia/Kolkata", true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" --exact child_writes_layer_from_disk"
            ))
            .arg(&exe)
            .env(CHILD_ENV, dir.path())
            .env("TZ", tz);
        if reverse {
            cmd.env("REVERSE", "1");
        }
        let status = cmd.status().unwrap();
        assert!(status.success());
        results.push(std::fs::read_to_string(dir.path().join("digest")).unwrap());

        let blob = dir.path().join("blobs");
        let name = &blob_names(&blob)[0];
        let rows = list_layer(&blob.join(name)).unwrap();
        let modes: Vec<(String, u32)> = rows.into_iter().map(|r| (r.path, r.mode)).collect();
        assert_eq!(
            modes,
            [
                ("app".to_string(), 0o755),
                ("app/data.txt".into(), 0o644),
                ("app/run.sh".into(), 0o755)
            ]
        );
    }
    assert_eq!(results[0], results[1]);
}

fn assert_refused(entries: Vec<Entry>, needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let blobs = tmp.path().join("blobs");
    let err = write_layer(entries, &opts(), &blobs).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(needle), "`{msg}` should name `{needle}`");
    assert!(blob_names(&blobs).is_empty(), "nothing is left behind");
}

#[test]
fn refuses_unsafe_paths() {
    let file = |p: &str| Entry::bytes(p, 0o644, "x");
    assert_refused(
        vec![file("ok"), file("a/../../etc/passwd")],
        "a/../../etc/passwd",
    );
    assert_refused(vec![file("/etc/passwd")], "/etc/passwd");
    assert_refused(vec![file("a/b\0c")], "NUL");
    assert_refused(vec![file("./")], "root");
    assert_refused(
        vec![Entry::symlink("opt/venv/escape", "../../../etc/shadow")],
        "opt/venv/escape",
    );
    assert_refused(vec![Entry::symlink("l", "x\0y")], "NUL");
}

#[test]
fn refuses_duplicates_but_merges_dirs() {
    assert_refused(
        vec![
            Entry::bytes("a/x", 0o644, "1"),
            Entry::bytes("a/x", 0o755, "1"),
        ],
        "a/x",
    );
    assert_refused(vec![Entry::dir("a/x"), Entry::symlink("a/x", "y")], "a/x");
    assert_refused(
        vec![Entry::symlink("lib", "usr/lib"), Entry::dir("lib/x")],
        "lib",
    );

    let tmp = tempfile::tempdir().unwrap();
    let info = write_layer(
        vec![Entry::dir("a"), Entry::dir("a"), Entry::dir("./a/")],
        &opts(),
        tmp.path(),
    )
    .unwrap();
    assert_eq!(list_layer(&blob_path(tmp.path(), &info)).unwrap().len(), 1);
}

#[test]
fn file_size_must_match_source() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("f");
    std::fs::write(&src, b"12345").unwrap();
    for declared in [4, 6] {
        let entry = Entry {
            path: "f".into(),
            mode: 0o644,
            kind: EntryKind::File {
                size: declared,
                source: Source::File(src.clone()),
            },
        };
        assert_refused(vec![entry], "declared as");
    }
    let lying = Entry {
        path: "b".into(),
        mode: 0o644,
        kind: EntryKind::File {
            size: 3,
            source: Source::Bytes(Arc::from(&b"12"[..])),
        },
    };
    assert_refused(vec![lying], "`b`");
}

/// A zip made with the `zip` crate; members `a.txt` (index 0) and `b.bin` (index 1).
fn make_zip(path: &Path) -> Vec<Vec<u8>> {
    let contents = vec![b"alpha\n".to_vec(), vec![7u8; 300_000]];
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in ["a.txt", "b.bin"].iter().zip(&contents) {
        w.start_file(*name, o).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
    contents
}

fn zip_entry(archive: &Path, index: usize, size: usize, sha256: Option<[u8; 32]>) -> Entry {
    Entry {
        path: format!("site/{index}"),
        mode: 0o644,
        kind: EntryKind::File {
            size: size as u64,
            source: Source::Zip {
                archive: archive.to_path_buf(),
                index,
                sha256,
            },
        },
    }
}

#[test]
fn zip_members_are_streamed_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("pkg.whl");
    let contents = make_zip(&archive);
    let hash = |d: &[u8]| -> [u8; 32] { Sha256::digest(d).into() };

    let blobs = tmp.path().join("blobs");
    let entries = vec![
        zip_entry(&archive, 0, contents[0].len(), Some(hash(&contents[0]))),
        zip_entry(&archive, 1, contents[1].len(), None),
    ];
    let info = write_layer(entries, &opts(), &blobs).unwrap();
    let rows = list_layer(&blob_path(&blobs, &info)).unwrap();
    let files: Vec<_> = rows.iter().filter(|r| r.kind == ListedKind::File).collect();
    assert_eq!(
        files[0].sha256.as_deref(),
        Some(sha256_hex(&contents[0]).as_str())
    );
    assert_eq!(
        files[1].sha256.as_deref(),
        Some(sha256_hex(&contents[1]).as_str())
    );
}

#[test]
fn zip_member_with_wrong_hash_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("pkg.whl");
    let contents = make_zip(&archive);
    let blobs = tmp.path().join("blobs");
    let mut wrong: [u8; 32] = Sha256::digest(&contents[1]).into();
    wrong[0] ^= 1;

    let entries = vec![
        Entry::bytes("first", 0o644, "ok"),
        zip_entry(&archive, 1, contents[1].len(), Some(wrong)),
    ];
    let err = write_layer(entries, &opts(), &blobs).unwrap_err();
    assert!(
        matches!(err, LayerError::ZipHash { index: 1, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("pkg.whl") && msg.contains("site/1"), "{msg}");
    assert!(blob_names(&blobs).is_empty());
}

fn vm_hwm_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Environment variable telling this test binary to run the large-file check as a child.
const LARGE_ENV: &str = "ENVBUILD_LAYER_TEST_LARGE_OUT";

/// In the child: writes a 200 MB file as a layer and reports the peak-memory growth. A child
/// process of its own, since a panicking test next to it (backtrace symbolization) or any
/// other test's buffers would count in this process's peak.
#[test]
fn child_writes_large_file() {
    const SIZE: u64 = 200 * 1024 * 1024;
    let Ok(out) = std::env::var(LARGE_ENV) else {
        return;
    };
    let out = PathBuf::from(out);
    let src = out.join("big.bin");
    // Sparse: zero blocks with a few marks, so the check does not need 200 MB of disk.
    let f = std::fs::File::create(&src).unwrap();
    f.set_len(SIZE).unwrap();
    for at in [0, SIZE / 2, SIZE - 5] {
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"mark!", at).unwrap();
    }
    drop(f);

    let before = vm_hwm_kb();
    let entry = Entry {
        path: "data/big.bin".into(),
        mode: 0o644,
        kind: EntryKind::File {
            size: SIZE,
            source: Source::File(src.clone()),
        },
    };
    write_layer(vec![entry], &opts(), &out.join("blobs")).unwrap();
    let grown_kb = vm_hwm_kb() - before;
    std::fs::write(out.join("grown_kb"), grown_kb.to_string()).unwrap();
}

#[test]
fn large_file_is_streamed_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writes_large_file"])
        .env(LARGE_ENV, dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let grown_kb: u64 = std::fs::read_to_string(dir.path().join("grown_kb"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        grown_kb < 64 * 1024,
        "peak memory grew by {} MB",
        grown_kb / 1024
    );

    let src = dir.path().join("big.bin");
    let out = Command::new("sha256sum").arg(&src).output().unwrap();
    let expected = String::from_utf8(out.stdout).unwrap();
    let blobs = dir.path().join("blobs");
    let rows = list_layer(&blobs.join(&blob_names(&blobs)[0])).unwrap();
    let big = rows.iter().find(|r| r.path == "data/big.bin").unwrap();
    assert_eq!(big.size, 200 * 1024 * 1024);
    assert_eq!(big.sha256.as_deref(), expected.split_whitespace().next());
}

#[test]
fn lists_plain_tar_too() {
    let tmp = tempfile::tempdir().unwrap();
    let info = write_layer(sample_entries(), &opts(), tmp.path()).unwrap();
    let blob = blob_path(tmp.path(), &info);
    let plain = tmp.path().join("plain.tar");
    std::fs::write(&plain, gunzip(&blob)).unwrap();

    let rows = list_layer(&plain).unwrap();
    assert_eq!(rows, list_layer(&blob).unwrap());
    let long = rows.iter().find(|r| r.path == "opt/venv/bin/long").unwrap();
    assert_eq!(long.kind, ListedKind::Symlink);
    assert_eq!(long.link_target.as_deref(), Some(long_target().as_str()));
    assert!(rows.iter().any(|r| r.path == long_name() && r.size == 6));
}

#[test]
fn unreadable_zip_members_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("gone.whl");
    let err = write_layer(vec![zip_entry(&missing, 0, 1, None)], &opts(), tmp.path());
    let err = err.unwrap_err();
    assert!(matches!(err, LayerError::Zip { index: 0, .. }), "{err:?}");
    assert!(err.to_string().contains("gone.whl"));
    let mut chain = String::new();
    let mut cause: Option<&dyn std::error::Error> = Some(&err);
    while let Some(c) = cause {
        chain.push_str(&format!("{c}\n"));
        cause = c.source();
    }
    assert!(chain.contains("No such file"), "{chain}");

    let archive = tmp.path().join("pkg.whl");
    make_zip(&archive);
    let err = write_layer(vec![zip_entry(&archive, 9, 1, None)], &opts(), tmp.path());
    assert!(
        matches!(err, Err(LayerError::Zip { index: 9, .. })),
        "{err:?}"
    );
    let names = blob_names(tmp.path());
    assert_eq!(names, ["pkg.whl"], "no blob or temporary file is left");
}

/// Trap: a compressor whose output depended on how its input was cut into writes would make
/// the digest depend on read sizes. The same bytes from memory (one write), a file (64 KiB
/// reads) and a zip member (the decompressor's sizes) must give the same layer.
#[test]
fn source_kind_does_not_change_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = tmp.path().join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let archive = tmp.path().join("data.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
    w.start_file("data.bin", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(&data).unwrap();
    w.finish().unwrap();

    let entry = |source| Entry {
        path: "d/data.bin".into(),
        mode: 0o644,
        kind: EntryKind::File {
            size: data.len() as u64,
            source,
        },
    };
    let zip_source = Source::Zip {
        archive,
        index: 0,
        sha256: Some(Sha256::digest(&data).into()),
    };
    let digests: Vec<String> = [
        Source::Bytes(data.clone().into()),
        Source::File(file),
        zip_source,
    ]
    .into_iter()
    .map(|s| {
        let blobs = tempfile::tempdir().unwrap();
        write_layer(vec![entry(s)], &opts(), blobs.path())
            .unwrap()
            .digest
    })
    .collect();
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[0], digests[2]);
}

/// The committed reference for `sample_entries()`. The other tests check the structure of
/// these bytes with `gzip` and `tar`; this one pins the bytes themselves, so a dependency
/// update (flate2, miniz_oxide, tar) or a writer change that alters them fails here.
///
/// To update on a deliberate format change: run this test, take the `left` values from the
/// failure, paste them here, and bump the lock's format version in the same commit, since
/// every image digest changes with it.
#[test]
fn golden_layer_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let info = write_layer(sample_entries(), &opts(), tmp.path()).unwrap();
    assert_eq!(
        info.diff_id,
        "sha256:dc715566eac7c3c3375a933d0f6537b66be5238b60111ec594e4571c88d6844f"
    );
    assert_eq!(
        info.digest,
        "sha256:de4401808f83ff891af77bfa8804f9f09f9fbf868e9130eccee5452fd9c09f74"
    );
}
