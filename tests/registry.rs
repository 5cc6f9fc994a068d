//! Pushing to and pulling from a real registry (`docker-registry` on 127.0.0.1), checked with
//! `skopeo` as an independent client; faults from a proxy in front of it; authentication from
//! every source envbuild reads.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use envbuild::cache::Cache;
use serde_json::Value;
use support::faults::{Fault, FaultProxy};
use support::index::IndexServer;
use support::registry::{
    Registry, skopeo, skopeo_copy_to_layout, skopeo_inspect_digest, skopeo_inspect_raw,
    write_tiny_layout,
};
use support::wheel::{WheelBuilder, sha256_file};

const PASSWORD: &str = "s3cret-Pa55word";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The golden fixture built offline into an OCI layout (tags `prod` and `dev`, two platforms
/// each). Returns the layout folder.
fn golden_layout(tmp: &Path) -> PathBuf {
    let cache = Cache::new(Some(tmp.join("cache")));
    for entry in std::fs::read_dir(repo().join("fixtures/wheels")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "whl") {
            cache.insert_file(&path, &sha256_file(&path)).unwrap();
        }
    }
    let out = tmp.join("layout");
    envbuild()
        .arg("--spec")
        .arg(repo().join("fixtures/golden/envbuild.toml"))
        .arg("--cache")
        .arg(tmp.join("cache"))
        .args(["build", "--offline", "--output"])
        .arg(format!("oci:{}", out.display()))
        .assert()
        .success();
    out
}

fn envbuild() -> Command {
    let mut cmd = Command::cargo_bin("envbuild").unwrap();
    // Nothing from the machine's own logins: each test says where credentials come from.
    let empty = std::env::temp_dir().join("envbuild-test-no-docker-config");
    cmd.env("DOCKER_CONFIG", empty)
        .env_remove("ENVBUILD_REGISTRY_USERNAME")
        .env_remove("ENVBUILD_REGISTRY_PASSWORD")
        .env_remove("ENVBUILD_CACHE_DIR");
    cmd
}

/// The root digest of `tag` in a layout's `index.json`.
fn layout_digest(layout: &Path, tag: &str) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// Runs `envbuild push --json` and returns the report; panics with stderr on failure.
fn push_json(layout: &Path, tag: &str, reference: &str, extra: &[&str]) -> Value {
    let out = envbuild()
        .args(["push", "--json"])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(reference)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "push failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn pushed_index_is_what_skopeo_reads_and_a_second_push_uploads_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = golden_layout(tmp.path());
    let registry = Registry::start();
    let reference = registry.reference("team/model:prod");
    let prod = layout_digest(&layout, "prod");

    // 1. The push prints `REF@DIGEST` with the local digest and writes the digest file.
    let digest_file = tmp.path().join("image.digest");
    let out = envbuild()
        .arg("push")
        .arg(format!("oci:{}:prod", layout.display()))
        .arg(&reference)
        .arg("--digest-file")
        .arg(&digest_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("{reference}@{prod}")
    );
    // Progress on stderr: a line per uploaded blob, as many as the summary counts.
    let uploaded = stderr
        .lines()
        .filter(|l| l.starts_with("Uploaded blob "))
        .count();
    assert!(
        stderr.contains(&format!("{uploaded} blobs uploaded")) && uploaded > 0,
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&digest_file).unwrap(),
        format!("{prod}\n")
    );

    // 2. skopeo sees the same index bytes, and copies the whole multi-platform image back
    //    out with the same digests.
    assert_eq!(skopeo_inspect_raw(&reference, None), blob(&layout, &prod));
    assert_eq!(skopeo_inspect_digest(&reference, None), prod);
    let copy = tmp.path().join("copy");
    skopeo_copy_to_layout(&reference, &copy, "prod", None);
    let index: Value = serde_json::from_slice(&blob(&layout, &prod)).unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        assert_eq!(blob(&copy, d), blob(&layout, d), "manifest {d}");
        let manifest: Value = serde_json::from_slice(&blob(&layout, d)).unwrap();
        for l in manifest["layers"].as_array().unwrap() {
            let ld = l["digest"].as_str().unwrap();
            assert_eq!(
                sha256_file(&copy.join("blobs/sha256").join(&ld[7..])),
                &ld[7..]
            );
        }
    }

    // 3. Unchanged image again: every blob is already there.
    let again = push_json(&layout, "prod", &reference, &[]);
    assert_eq!(again["uploaded_blobs"], 0, "{again}");
    assert_eq!(again["uploaded_bytes"], 0, "{again}");
    assert!(again["skipped_blobs"].as_u64().unwrap() > 0, "{again}");

    // 4. dev shares prod's layers: only dev's own layers and configs go up.
    let dev = push_json(&layout, "dev", &registry.reference("team/model:dev"), &[]);
    assert!(dev["skipped_blobs"].as_u64().unwrap() >= 2, "{dev}");
    assert!(dev["uploaded_blobs"].as_u64().unwrap() > 0, "{dev}");

    // 5. envbuild reads it back from the registry: inspect lists both platforms.
    let out = envbuild()
        .args(["inspect", "--json", &reference])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("linux/amd64") && text.contains("linux/arm64"),
        "{text}"
    );
}

#[test]
fn a_base_from_the_registry_is_locked_pulled_and_mounted_not_uploaded() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let base_layout = tmp.path().join("base");
    write_tiny_layout(&base_layout, "1", b"base layer content\n");
    registry.seed(&base_layout, "1", "library/base:1");

    let index = IndexServer::start(&tmp.path().join("wheels"));
    index.add(&WheelBuilder::new("tiny", "1.0"));
    let spec = tmp.path().join("envbuild.toml");
    std::fs::write(
        &spec,
        format!(
            "[image]\nbase = \"{}\"\n\n[python]\nversion = \"3.11\"\n\
             interpreter = \"/usr/bin/python3.11\"\nlibc = \"glibc 2.36\"\n\
             requirements = [\"tiny\"]\nindexes = [{{ url = \"{}\" }}]\n\n[targets.prod]\n",
            registry.reference("library/base:1"),
            index.url()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = envbuild()
            .arg("--spec")
            .arg(&spec)
            .arg("--cache")
            .arg(tmp.path().join("cache"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{args:?} failed:\n{stderr}");
        (String::from_utf8(out.stdout).unwrap(), stderr)
    };

    run(&["lock"]);
    let lock = std::fs::read_to_string(tmp.path().join("envbuild.lock")).unwrap();
    let base_digest = skopeo_inspect_digest(&registry.reference("library/base:1"), None);
    assert!(
        lock.contains(&base_digest),
        "the lock pins the base manifest:\n{lock}"
    );

    let app = registry.reference("team/app:1");
    let digest_file = tmp.path().join("digest");
    let out_dir = format!("oci:{}", tmp.path().join("out").display());
    let (stdout, stderr) = run(&[
        "build",
        "--target",
        "prod",
        "--output",
        &out_dir,
        "--push",
        &app,
        "--digest-file",
        digest_file.to_str().unwrap(),
    ]);
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    assert!(
        stdout.contains(&format!("{app}@{}", digest.trim())),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 mounted"),
        "the base layer is mounted:\n{stderr}"
    );
    assert_eq!(skopeo_inspect_digest(&app, None), digest.trim());

    // The SBOM went up as a referrer of the manifest (this registry has no referrers API, so
    // under the fallback tag), and the image's digest is still the one built.
    let fallback = registry.reference(&format!("team/app:{}", digest.trim().replace(':', "-")));
    let index: Value = serde_json::from_slice(&skopeo_inspect_raw(&fallback, None)).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["artifactType"], "application/vnd.cyclonedx+json",
        "{index}"
    );
    let artifact = registry.reference(&format!("team/app@{}", entry["digest"].as_str().unwrap()));
    let manifest: Value = serde_json::from_slice(&skopeo_inspect_raw(&artifact, None)).unwrap();
    assert_eq!(manifest["subject"]["digest"], digest.trim(), "{manifest}");
    let sbom_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    let url = format!("{}/v2/team/app/blobs/{sbom_digest}", registry.url());
    let sbom: Value = reqwest::blocking::get(url).unwrap().json().unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX", "{sbom}");
    assert!(sbom.to_string().contains("pkg:pypi/tiny@1.0"), "{sbom}");
    assert_eq!(skopeo_inspect_digest(&app, None), digest.trim());

    // For machines: one JSON document with the images and the push.
    let (stdout, _) = run(&[
        "build", "--json", "--target", "prod", "--output", &out_dir, "--push", &app,
    ]);
    let doc: Value = serde_json::from_str(&stdout).expect("one JSON document on stdout");
    assert_eq!(doc["push"]["digest"], digest.trim(), "{doc}");
    assert_eq!(doc["push"]["uploaded_blobs"], 0, "{doc}");
    assert_eq!(doc["images"][0]["digest"], digest.trim(), "{doc}");
}

#[test]
fn faults_on_the_way_are_retried_and_the_push_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = golden_layout(tmp.path());
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![
            Fault::on("HEAD", "/blobs/").nth(2).status(503),
            Fault::on("POST", "/blobs/uploads/").nth(1).status(500),
            Fault::on("POST", "/blobs/uploads/").nth(3).status(429),
            // A connection cut while the body of a monolithic upload streams.
            Fault::on("PUT", "digest=sha256:").nth(2).reset(),
            Fault::on("PUT", "/manifests/").nth(1).status(502),
        ],
    );
    let reference = format!("{}/faults/model:prod", proxy.addr);
    let report = push_json(&layout, "prod", &reference, &["--jobs", "2"]);
    assert!(
        proxy.faults_fired() >= 5,
        "faults fired: {}",
        proxy.faults_fired()
    );
    let prod = layout_digest(&layout, "prod");
    assert_eq!(report["digest"], prod.as_str());
    assert_eq!(
        skopeo_inspect_digest(&registry.reference("faults/model:prod"), None),
        prod
    );
}

#[test]
fn a_stalled_upload_times_out_and_is_tried_again() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("tiny");
    write_tiny_layout(&layout, "t", b"stalled layer\n");
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![
            Fault::on("PUT", "digest=sha256:")
                .nth(1)
                .stall(Duration::from_secs(30)),
        ],
    );
    let reference = format!("{}/stall/app:1", proxy.addr);
    let started = Instant::now();
    let out = envbuild()
        .env("ENVBUILD_HTTP_TIMEOUT", "2")
        .arg("push")
        .arg(format!("oci:{}:t", layout.display()))
        .arg(&reference)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(proxy.faults_fired(), 1);
    // Not a timing assertion on speed: only that the stall was cut short, not waited out.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        skopeo_inspect_digest(&registry.reference("stall/app:1"), None),
        layout_digest(&layout, "t")
    );
}

#[test]
fn a_chunked_upload_survives_a_cut_chunk_and_a_lost_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = golden_layout(tmp.path());
    let registry = Registry::start();
    // A chunk cut mid-body (sent again), and a chunk the registry took whose answer was lost.
    // docker-registry signs the upload's offset into its `Location` (`_state`), so the old
    // location is dead after a lost answer and the blob starts over in a new session.
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![
            Fault::on("PATCH", "/blobs/uploads/").nth(2).reset(),
            Fault::on("PATCH", "/blobs/uploads/").nth(5).lose_answer(),
        ],
    );
    let reference = format!("{}/chunked/model:prod", proxy.addr);
    let args = ["--chunk-size", "4096", "--jobs", "1"];
    let report = push_json(&layout, "prod", &reference, &args);
    assert_eq!(proxy.faults_fired(), 2);
    assert!(
        proxy.count("PATCH", "/blobs/uploads/") > 10,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(report["skipped_blobs"], 0, "{report}");
    assert_eq!(
        skopeo_inspect_digest(&registry.reference("chunked/model:prod"), None),
        layout_digest(&layout, "prod")
    );
}

#[test]
fn persistent_faults_fail_clearly_and_a_rerun_sends_only_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = golden_layout(tmp.path());
    let registry = Registry::start();

    // Manifests always refused: the blobs go up, the push fails, no tag appears.
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![Fault::on("PUT", "/manifests/").always().status(503)],
    );
    let broken = format!("{}/rerun/model:prod", proxy.addr);
    let out = envbuild()
        .arg("push")
        .arg(format!("oci:{}:prod", layout.display()))
        .arg(&broken)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("HTTP 503") && stderr.contains("manifest"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let tag = registry.reference("rerun/model:prod");
    let inspect = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{tag}")]);
    assert!(
        !inspect.status.success(),
        "no tag may point at a half-pushed image"
    );

    // Run again without the faults: the blobs are there already.
    let report = push_json(&layout, "prod", &tag, &[]);
    assert_eq!(report["uploaded_blobs"], 0, "{report}");
    assert_eq!(
        skopeo_inspect_digest(&tag, None),
        layout_digest(&layout, "prod")
    );
}

#[test]
fn unreachable_registry_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("tiny");
    write_tiny_layout(&layout, "t", b"x");
    // A port nothing listens on: bound, then dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = envbuild()
        .arg("push")
        .arg(format!("oci:{}:t", layout.display()))
        .arg(format!("127.0.0.1:{port}/x:1"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("Failed to reach registry `127.0.0.1:{port}`")),
        "{stderr}"
    );
}

/// Every credential source against a registry with htpasswd auth; the password never shows.
#[test]
fn credentials_from_each_source_and_never_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("tiny");
    write_tiny_layout(&layout, "t", b"private layer\n");
    let registry = Registry::start_with_auth("ci", PASSWORD);
    let reference = registry.reference("private/app:1");
    let source = format!("oci:{}:t", layout.display());
    let mut printed = String::new();
    let mut push = |configure: &dyn Fn(&mut Command)| {
        let mut cmd = envbuild();
        cmd.args(["-vv", "push"]).arg(&source).arg(&reference);
        configure(&mut cmd);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        printed.push_str(&text);
        (out.status.code(), text)
    };

    // No credentials at all.
    let (code, text) = push(&|_| {});
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("asks for credentials and none were found"),
        "{text}"
    );
    assert!(text.contains("hint: log in"), "{text}");

    // A wrong password from the environment.
    let (code, text) = push(&|c| {
        c.env("ENVBUILD_REGISTRY_USERNAME", "ci")
            .env("ENVBUILD_REGISTRY_PASSWORD", "wrong-password");
    });
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(text.contains(&registry.addr), "{text}");

    // The right one from the environment, then on stdin.
    let (code, text) = push(&|c| {
        c.env("ENVBUILD_REGISTRY_USERNAME", "ci")
            .env("ENVBUILD_REGISTRY_PASSWORD", PASSWORD);
    });
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = push(&|c| {
        c.args(["--username", "ci", "--password-stdin"])
            .write_stdin(format!("{PASSWORD}\n"));
    });
    assert_eq!(code, Some(0), "{text}");

    // Docker's config.json with an `auth` entry.
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("ci:{PASSWORD}"));
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let config = serde_json::json!({ "auths": { registry.addr.clone(): { "auth": auth } } });
    std::fs::write(docker.join("config.json"), config.to_string()).unwrap();
    let (code, text) = push(&|c| {
        c.env("DOCKER_CONFIG", &docker);
    });
    assert_eq!(code, Some(0), "{text}");

    // A credential helper on PATH named by `credsStore`.
    let helper_dir = tmp.path().join("bin");
    std::fs::create_dir_all(&helper_dir).unwrap();
    let helper = helper_dir.join("docker-credential-envtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = \"{}\" ] || exit 1\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"ci\",\"Secret\":\"{PASSWORD}\"}}' \
             \"$server\"\n",
            registry.addr
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let helper_config = tmp.path().join("docker-helper");
    std::fs::create_dir_all(&helper_config).unwrap();
    std::fs::write(
        helper_config.join("config.json"),
        r#"{"credsStore":"envtest"}"#,
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        helper_dir.display(),
        std::env::var("PATH").unwrap()
    );
    let (code, text) = push(&|c| {
        c.env("DOCKER_CONFIG", &helper_config).env("PATH", &path);
    });
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("0 blobs uploaded"),
        "pushed already by the runs before:\n{text}"
    );

    let creds = format!("ci:{PASSWORD}");
    assert_eq!(
        skopeo_inspect_digest(&reference, Some(&creds)),
        layout_digest(&layout, "t")
    );
    // Logs to a pipe carry no colour codes.
    assert!(
        printed.contains("DEBUG"),
        "-vv shows debug logs:\n{printed}"
    );
    assert!(
        !printed.contains('\x1b'),
        "colour codes on a pipe:\n{printed}"
    );
    assert!(
        !printed.contains(PASSWORD),
        "the password was printed:\n{printed}"
    );
    assert!(
        !printed.contains(&auth),
        "the auth string was printed:\n{printed}"
    );
}

#[test]
fn verify_rebuilds_and_compares_with_the_pushed_image() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = golden_layout(tmp.path());
    let registry = Registry::start();
    let good = registry.reference("verify/model:prod");
    let wrong = registry.reference("verify/model:wrong");
    push_json(&layout, "prod", &good, &[]);
    push_json(&layout, "dev", &wrong, &[]);

    let verify = |reference: &str| {
        envbuild()
            .arg("--spec")
            .arg(repo().join("fixtures/golden/envbuild.toml"))
            .arg("--cache")
            .arg(tmp.path().join("cache"))
            .args(["verify", "--offline", "--target", "prod", reference])
            .output()
            .unwrap()
    };
    let out = verify(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = verify(&wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("is not what the lock builds"), "{stderr}");
    assert!(
        stderr.contains("the lock builds 4 layers, the image has 5"),
        "{stderr}"
    );
}

#[test]
fn a_missing_base_is_named() {
    let registry = Registry::start();
    let missing = registry.reference("library/nothing:1");
    let out = envbuild().args(["inspect", &missing]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "`library/nothing:1` was not found in registry `{}`",
            registry.addr
        )),
        "{stderr}"
    );
}

/// A registry whose manifest bytes do not match the digest it states: only a hand-made server
/// can misbehave this way on purpose.
#[test]
fn a_manifest_that_does_not_match_its_digest_is_refused() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    let claimed = format!("sha256:{}", "0".repeat(64));
    let answer = claimed.clone();
    let thread = std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok(Some(req)) = server.recv_timeout(Duration::from_secs(10)) else {
                return;
            };
            let header = |k: &str, v: &str| tiny_http::Header::from_bytes(k, v).unwrap();
            let resp = if req.url() == "/v2/" {
                tiny_http::Response::from_data(b"{}".to_vec())
            } else {
                tiny_http::Response::from_data(body.to_vec())
                    .with_header(header("Docker-Content-Digest", &answer))
                    .with_header(header(
                        "Content-Type",
                        "application/vnd.oci.image.manifest.v1+json",
                    ))
            };
            let _ = req.respond(resp);
        }
    });
    let reference = format!("{addr}/team/app:1");
    let out = envbuild().args(["inspect", &reference]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("not `{claimed}`")), "{stderr}");
    thread.join().unwrap();
}

/// A two-platform base pulled from the registry by digest: both platforms are locked with
/// what detection found in their layers, and a push to another repository mounts the base's
/// layers instead of uploading them.
#[test]
fn a_multi_platform_base_by_digest_is_detected_and_mounted_per_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let base_layout = tmp.path().join("python");
    support::base::python_slim(&base_layout, &["amd64", "arm64"]);
    registry.seed(
        &base_layout,
        "3.11-slim-bookworm",
        "library/python:3.11-slim-bookworm",
    );
    let tagged = registry.reference("library/python:3.11-slim-bookworm");
    let index_digest = skopeo_inspect_digest(&tagged, None);
    let pinned = registry.reference(&format!("library/python@{index_digest}"));

    let index = IndexServer::start(&tmp.path().join("wheels"));
    index.add(&WheelBuilder::new("tiny", "1.0"));
    let spec = tmp.path().join("envbuild.toml");
    std::fs::write(
        &spec,
        format!(
            "[image]\nbase = \"{pinned}\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
             [python]\nrequirements = [\"tiny\"]\nindexes = [{{ url = \"{}\" }}]\n\n\
             [targets.prod]\n",
            index.url()
        ),
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let run = |args: &[&str]| {
        let out = envbuild()
            .arg("--spec")
            .arg(&spec)
            .arg("--cache")
            .arg(&cache)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{args:?} failed:\n{stderr}");
        stderr
    };

    run(&["lock"]);
    let lock = envbuild::lock::Lock::load(&tmp.path().join("envbuild.lock")).unwrap();
    assert_eq!(lock.base.platforms.len(), 2, "{:#?}", lock.base);
    let raw: Value = serde_json::from_slice(&skopeo_inspect_raw(&tagged, None)).unwrap();
    for p in &lock.base.platforms {
        let listed = raw["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| Some(m["digest"].as_str().unwrap()) == p.manifest_digest.as_deref());
        assert!(listed, "{p:#?} is not a manifest of the base index");
        assert!(p.python_version.starts_with("3.11"), "{p:#?}");
    }

    let app = registry.reference("team/multi:1");
    let out_dir = format!("oci:{}", tmp.path().join("out").display());
    let stderr = run(&[
        "build", "--target", "prod", "--output", &out_dir, "--push", &app,
    ]);
    // Every distinct base layer is mounted, none uploaded.
    let base_layers: std::collections::BTreeSet<String> = lock
        .base
        .platforms
        .iter()
        .flat_map(|p| p.layers.iter().map(|l| l.digest.clone()))
        .collect();
    let mounted = format!("{} mounted", base_layers.len());
    assert!(stderr.contains(&mounted), "want `{mounted}`:\n{stderr}");
}

/// Reading commands take the same credentials as push: a private image inspected with
/// `--username` and `--password-stdin`, refused without them.
#[test]
fn reading_commands_take_credentials_too() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("tiny");
    write_tiny_layout(&layout, "t", b"private base\n");
    let registry = Registry::start_with_auth("ci", PASSWORD);
    let creds = format!("ci:{PASSWORD}");
    support::registry::skopeo_copy_from_layout(
        &layout,
        "t",
        &registry.reference("private/base:1"),
        Some(&creds),
    );
    let reference = registry.reference("private/base:1");

    let out = envbuild().args(["inspect", &reference]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("asks for credentials"), "{stderr}");

    let out = envbuild()
        .args([
            "inspect",
            "--json",
            "--username",
            "ci",
            "--password-stdin",
            &reference,
        ])
        .write_stdin(format!("{PASSWORD}\n"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["digest"], layout_digest(&layout, "t").as_str(), "{doc}");
}
