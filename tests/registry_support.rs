//! Checks of the registry test support itself: the real registry starts, with and without
//! auth, skopeo moves images in and out of it, and the fault proxy forwards faithfully and
//! misbehaves exactly when told.

mod support;

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::faults::{Fault, FaultProxy};
use support::registry::{
    Registry, get_status, skopeo, skopeo_copy_from_layout, skopeo_copy_to_layout,
    skopeo_inspect_digest, skopeo_inspect_raw, write_tiny_layout,
};

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Opens a blob upload session through `base` and returns the `Location` to finish it at.
fn start_upload(base: &str, repo: &str) -> String {
    let response = client()
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 202, "{:?}", response.text());
    let location = response.headers()["Location"].to_str().unwrap().to_string();
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    }
}

/// `location` with `digest=` added to its query, as the final `PUT` of an upload wants.
fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

#[test]
fn image_round_trips_through_the_registry_with_digests_kept() {
    let registry = Registry::start();
    let scratch = tempfile::tempdir().unwrap();
    let layout = scratch.path().join("layout");
    let digest = write_tiny_layout(&layout, "t", b"hello\n");

    registry.seed(&layout, "t", "tiny:1");

    let reference = registry.reference("tiny:1");
    assert_eq!(skopeo_inspect_digest(&reference, None), digest);
    let raw = skopeo_inspect_raw(&reference, None);
    assert_eq!(
        sha256_digest(&raw),
        digest,
        "the manifest bytes are kept as written"
    );

    let back = scratch.path().join("back");
    skopeo_copy_to_layout(&reference, &back, "copy", None);
    let index = std::fs::read_to_string(back.join("index.json")).unwrap();
    assert!(index.contains(&digest), "{index}");
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert_eq!(
        std::fs::read(back.join("blobs/sha256").join(hex)).unwrap(),
        raw
    );
}

#[test]
fn auth_registry_refuses_anonymous_clients_and_accepts_the_credentials() {
    let registry = Registry::start_with_auth("alice", "s3cret");
    assert_eq!(registry.creds.as_deref(), Some("alice:s3cret"));
    assert_eq!(get_status(&registry.addr, "/v2/").unwrap(), 401);

    let scratch = tempfile::tempdir().unwrap();
    let digest = write_tiny_layout(scratch.path(), "t", b"private\n");
    registry.seed(scratch.path(), "t", "private:1");

    let reference = format!("docker://{}", registry.reference("private:1"));
    let anonymous = skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
    assert!(!anonymous.status.success(), "anonymous inspect must fail");
    let stderr = String::from_utf8_lossy(&anonymous.stderr).to_lowercase();
    assert!(
        stderr.contains("unauthorized") || stderr.contains("authentication required"),
        "{stderr}"
    );

    let wrong = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "alice:wrong",
        &reference,
    ]);
    assert!(!wrong.status.success(), "a wrong password must fail");

    let reference = registry.reference("private:1");
    assert_eq!(
        skopeo_inspect_digest(&reference, Some("alice:s3cret")),
        digest
    );
}

#[test]
fn status_fault_fires_once_then_requests_pass_through() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.addr, vec![Fault::on("GET", "/v2/").status(500)]);

    assert_eq!(get_status(&proxy.addr, "/v2/").unwrap(), 500);
    assert_eq!(get_status(&proxy.addr, "/v2/").unwrap(), 200);
    assert_eq!(get_status(&proxy.addr, "/v2/").unwrap(), 200);

    assert_eq!(proxy.faults_fired(), 1);
    let get_v2 = ("GET".to_string(), "/v2/".to_string());
    assert_eq!(
        proxy.requests(),
        vec![get_v2.clone(), get_v2.clone(), get_v2]
    );
}

#[test]
fn too_many_requests_carries_retry_after_and_a_registry_error_body() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![Fault::on("*", "/v2/").nth(2).status(429)],
    );
    let url = format!("{}/v2/", proxy.url());

    assert_eq!(client().get(&url).send().unwrap().status(), 200);
    let limited = client().get(&url).send().unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["Retry-After"], "0");
    assert!(limited.text().unwrap().contains("TOOMANYREQUESTS"));
    assert_eq!(client().get(&url).send().unwrap().status(), 200);
}

#[test]
fn chunked_upload_through_the_proxy_reaches_the_registry_intact() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.addr, Vec::new());
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = sha256_digest(&blob);

    // docker-registry makes `Location` absolute from the `Host` it was addressed by, which the
    // proxy forwards unchanged: the session stays behind the proxy.
    let location = start_upload(&proxy.url(), "chunky");
    assert!(location.starts_with(&proxy.url()), "{location}");

    // A body of unknown length, which reqwest sends with `Transfer-Encoding: chunked`.
    let body = reqwest::blocking::Body::new(Cursor::new(blob.clone()));
    let response = client()
        .put(with_digest(&location, &digest))
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text());
    assert_eq!(proxy.forwarded_body_bytes(), blob.len() as u64);

    let stored = client()
        .get(format!("{}/v2/chunky/blobs/{digest}", registry.url()))
        .send()
        .unwrap();
    assert_eq!(stored.status(), 200);
    assert_eq!(stored.bytes().unwrap().as_ref(), blob.as_slice());
}

#[test]
fn hand_written_chunked_body_with_extension_and_trailer_is_relayed() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.addr, Vec::new());
    let blob = b"hello, chunked world";
    let digest = sha256_digest(blob);
    let location = start_upload(&proxy.url(), "raw");
    let target = with_digest(&location, &digest);
    let target = target.strip_prefix(&proxy.url()).unwrap();

    let mut stream = TcpStream::connect(&proxy.addr).unwrap();
    write!(
        stream,
        "PUT {target} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\
         Connection: keep-alive\r\n\r\n\
         7;note=x\r\nhello, \r\nd\r\nchunked world\r\n0\r\nX-Trailer: 1\r\n\r\n",
        proxy.addr
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert_eq!(proxy.forwarded_body_bytes(), blob.len() as u64);
    assert_eq!(
        get_status(&registry.addr, &format!("/v2/raw/blobs/{digest}")).unwrap(),
        200
    );
}

#[test]
fn reset_fault_breaks_the_upload_and_the_retry_goes_through() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![Fault::on("PUT", "/blobs/uploads/").nth(1).reset()],
    );
    let blob = vec![7u8; 4 << 20];
    let digest = sha256_digest(&blob);

    let location = start_upload(&proxy.url(), "flaky");
    let broken = client()
        .put(with_digest(&location, &digest))
        .body(blob.clone())
        .send();
    assert!(
        broken.is_err(),
        "the client must see the connection die: {broken:?}"
    );
    assert_eq!(proxy.forwarded_body_bytes(), 0);

    let location = start_upload(&proxy.url(), "flaky");
    let retried = client()
        .put(with_digest(&location, &digest))
        .body(blob.clone())
        .send()
        .unwrap();
    assert_eq!(retried.status(), 201);
    assert_eq!(proxy.faults_fired(), 1);
    assert_eq!(proxy.forwarded_body_bytes(), blob.len() as u64);
}

#[test]
fn stall_fault_holds_the_request_past_the_client_timeout() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![
            Fault::on("GET", "/v2/")
                .always()
                .stall(Duration::from_secs(2)),
        ],
    );
    let impatient = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let error = impatient
        .get(format!("{}/v2/", proxy.url()))
        .send()
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(
        get_status(&proxy.addr, "/v2/").ok(),
        None,
        "always means always"
    );
}

#[test]
fn skopeo_pushes_through_the_proxy_and_an_unchanged_push_uploads_no_layer() {
    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.addr, Vec::new());
    let scratch = tempfile::tempdir().unwrap();
    let digest = write_tiny_layout(scratch.path(), "t", b"through the proxy\n");
    let via_proxy = format!("{}/proxied:1", proxy.addr);

    skopeo_copy_from_layout(scratch.path(), "t", &via_proxy, None);
    assert_eq!(
        skopeo_inspect_digest(&registry.reference("proxied:1"), None),
        digest
    );
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/"),
        2,
        "{:?}",
        proxy.requests()
    );
    assert_eq!(
        proxy.count("PUT", "/manifests/1"),
        1,
        "{:?}",
        proxy.requests()
    );

    let uploads_before = proxy.count("POST", "/blobs/uploads/");
    let bytes_before = proxy.forwarded_body_bytes();
    skopeo_copy_from_layout(scratch.path(), "t", &via_proxy, None);
    assert_eq!(proxy.count("POST", "/blobs/uploads/"), uploads_before);
    let manifest = skopeo_inspect_raw(&registry.reference("proxied:1"), None);
    assert!(
        proxy.forwarded_body_bytes() - bytes_before <= manifest.len() as u64,
        "only the manifest may be sent again: {:?}",
        proxy.requests()
    );
}
