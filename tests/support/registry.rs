//! A real OCI distribution registry on 127.0.0.1 for tests (Debian's `docker-registry`), and
//! `skopeo` as the independent client that checks what envbuild pushed or seeds what it pulls.
//!
//! skopeo runs with its own trust policy, an empty `registries.conf` and an auth file of its
//! own, so neither this machine's container settings nor a developer's logins change a test,
//! and nothing reaches past loopback.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// How long the registry may take to answer `GET /v2/` after it was started.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// A port picked by binding port 0 can be taken by someone else before the registry binds it;
/// a few fresh tries make that race harmless.
const START_ATTEMPTS: usize = 5;

/// A running `docker-registry serve`. The process is killed and reaped on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`, as it goes in an image reference.
    pub addr: String,
    /// `user:pass` when the registry was started with htpasswd auth.
    pub creds: Option<String>,
    child: Child,
    dir: tempfile::TempDir,
}

/// What waiting for `GET /v2/` found.
enum Ready {
    Yes,
    PortTaken,
    Failed(String),
}

impl Registry {
    /// Starts a registry that accepts anonymous pushes and pulls.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// Starts a registry that answers 401 unless a request carries `user`/`pass` as basic auth
    /// (checked against an htpasswd file).
    pub fn start_with_auth(user: &str, pass: &str) -> Registry {
        Registry::launch(Some((user, pass)))
    }

    fn launch(auth: Option<(&str, &str)>) -> Registry {
        if which("docker-registry").is_none() {
            panic!(
                "docker-registry not found; install it with `apt-get install docker-registry` \
                 (scripts/test does this)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        if let Some((user, pass)) = auth {
            write_htpasswd(&dir.path().join("htpasswd"), user, pass);
        }

        let log_path = dir.path().join("registry.log");
        for _ in 0..START_ATTEMPTS {
            let addr = format!("127.0.0.1:{}", free_port());
            let mut child = spawn(dir.path(), &addr, auth.is_some());
            match wait_ready(&mut child, &addr, auth.is_some(), &log_path) {
                Ready::Yes => {
                    return Registry {
                        addr,
                        creds: auth.map(|(u, p)| format!("{u}:{p}")),
                        child,
                        dir,
                    };
                }
                Ready::PortTaken => {
                    reap(&mut child);
                }
                Ready::Failed(why) => {
                    reap(&mut child);
                    panic!(
                        "docker-registry did not start: {why}\n--- registry log ---\n{}",
                        read_log(&log_path)
                    );
                }
            }
        }
        panic!(
            "docker-registry found no free port in {START_ATTEMPTS} tries\n\
             --- registry log ---\n{}",
            read_log(&log_path)
        );
    }

    /// `ADDR/NAME` for `name` such as `"app:v1"` or `"app@sha256:…"`.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    /// `http://ADDR`, the base of the registry's HTTP API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The registry's own log (startup, access log, errors), for failure messages.
    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("registry.log"))
    }

    /// The registry's storage root, to check that nothing half-written was committed.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Copies image `tag` of the OCI layout at `layout` to `name` (such as `"base:1"`) in this
    /// registry with skopeo, keeping digests: the way tests seed a base image.
    pub fn seed(&self, layout: &Path, tag: &str, name: &str) {
        skopeo_copy_from_layout(layout, tag, &self.reference(name), self.creds.as_deref());
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        reap(&mut self.child);
    }
}

fn reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn spawn(dir: &Path, addr: &str, auth: bool) -> Child {
    let config = dir.join("config.yml");
    std::fs::write(&config, config_yaml(dir, addr, auth)).unwrap();
    // A fresh log per attempt, so a failure shows only the attempt that failed.
    let log = File::create(dir.join("registry.log")).unwrap();
    Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The registry's configuration: logs at `info` (`wait_ready` looks for the line saying the port
/// is bound), storage in the tempdir, deletes allowed (so tests can make a
/// registry lose a blob), upload purging off (its background sweep would only add log lines).
fn config_yaml(dir: &Path, addr: &str, auth: bool) -> String {
    let storage = yaml_str(&dir.join("storage").to_string_lossy());
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {addr}\n  secret: envbuild-tests\n"
    );
    if auth {
        let htpasswd = yaml_str(&dir.join("htpasswd").to_string_lossy());
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: envbuild-tests\n    path: {htpasswd}\n"
        ));
    }
    yaml
}

/// A double-quoted YAML scalar.
fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn write_htpasswd(path: &Path, user: &str, pass: &str) {
    // The registry accepts only bcrypt entries, hence -B.
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, pass])
        .output()
        .unwrap_or_else(|e| {
            panic!("running htpasswd: {e}; install it with `apt-get install apache2-utils`")
        });
    assert!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(path, &out.stdout).unwrap();
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn wait_ready(child: &mut Child, addr: &str, auth: bool, log_path: &Path) -> Ready {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            if read_log(log_path).contains("address already in use") {
                return Ready::PortTaken;
            }
            return Ready::Failed(format!("it exited with {status}"));
        }
        // Until the registry says it bound the port, whatever answers there is someone else
        // (another test's server that took the port first); only then is `/v2/` worth asking.
        let bound = read_log(log_path).contains(&format!("listening on {addr}"));
        let answer = if bound {
            get_status(addr, "/v2/")
        } else {
            Err(std::io::Error::other(
                "the registry has not bound its port yet",
            ))
        };
        match answer {
            Ok(200) => return Ready::Yes,
            Ok(401) if auth => return Ready::Yes,
            Ok(other) => return Ready::Failed(format!("GET /v2/ answered {other}")),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                return Ready::Failed(format!(
                    "GET /v2/ did not answer within {READY_DEADLINE:?}: {e}"
                ));
            }
        }
    }
}

/// The status code of a plain `GET` on `addr`, over a raw socket: no client library, no proxy
/// settings from the environment.
pub fn get_status(addr: &str, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {answer:?}")))
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Runs `skopeo ARGS` isolated from this machine's container settings and returns what it did,
/// successful or not. Global options go before `args`, so `args` starts with the subcommand.
pub fn skopeo(args: &[&str]) -> Output {
    if which("skopeo").is_none() {
        panic!(
            "skopeo not found; install it with `apt-get install skopeo` (scripts/test does this)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    // The system policy may reject unsigned images; tests check content, not signatures.
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    // Empty: no search registries and no mirrors, so nothing is looked up on docker.io.
    let registries_conf = dir.path().join("registries.conf");
    std::fs::write(&registries_conf, "").unwrap();
    let registries_d = dir.path().join("registries.d");
    std::fs::create_dir(&registries_d).unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();

    Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .arg("--registries.d")
        .arg(&registries_d)
        .arg("--tmpdir")
        .arg(&tmp)
        .args(args)
        // skopeo 1.9 has no `--registries-conf` flag; containers/image reads this variable.
        .env("CONTAINERS_REGISTRIES_CONF", &registries_conf)
        // A user-chosen auth file that does not exist: skopeo then reads no stored logins at
        // all (neither `~/.docker/config.json` nor `$XDG_RUNTIME_DIR/containers/auth.json`).
        .env("REGISTRY_AUTH_FILE", dir.path().join("auth.json"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs skopeo and panics with its stderr if it fails.
pub fn skopeo_ok(args: &[&str]) -> Output {
    let out = skopeo(args);
    assert!(
        out.status.success(),
        "skopeo {} failed ({}):\n{}",
        redacted(args),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `args` joined for a message, with the value of any `--*creds` option hidden: test
/// passwords are not secret, but a test log that never shows one is easier to trust.
fn redacted(args: &[&str]) -> String {
    let mut out = Vec::new();
    let mut hide = false;
    for arg in args {
        out.push(if hide { "***" } else { arg });
        hide = arg.ends_with("creds") && arg.starts_with("--");
    }
    out.join(" ")
}

/// The manifest (or index) bytes exactly as the registry serves them for `reference`
/// (`ADDR/REPO:TAG` or `ADDR/REPO@DIGEST`).
pub fn skopeo_inspect_raw(reference: &str, creds: Option<&str>) -> Vec<u8> {
    let docker = format!("docker://{reference}");
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    args.extend(creds_args("--creds", creds));
    args.push(&docker);
    skopeo_ok(&args).stdout
}

/// The digest of the manifest (or index) the registry serves for `reference`, `sha256:…`.
/// skopeo computes it from the bytes it received, so it is the digest a client must see.
pub fn skopeo_inspect_digest(reference: &str, creds: Option<&str>) -> String {
    let docker = format!("docker://{reference}");
    let mut args = vec!["inspect", "--tls-verify=false", "--format", "{{.Digest}}"];
    args.extend(creds_args("--creds", creds));
    args.push(&docker);
    let out = skopeo_ok(&args);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Copies `reference` with every platform of an index, digests unchanged, into the OCI layout
/// at `dir` (created if missing) as `tag`.
pub fn skopeo_copy_to_layout(reference: &str, dir: &Path, tag: &str, creds: Option<&str>) {
    let src = format!("docker://{reference}");
    let dest = format!("oci:{}:{tag}", dir.display());
    let mut args = vec![
        "copy",
        "--src-tls-verify=false",
        "--all",
        "--preserve-digests",
    ];
    args.extend(creds_args("--src-creds", creds));
    args.extend([src.as_str(), dest.as_str()]);
    skopeo_ok(&args);
}

/// Copies image `tag` of the OCI layout at `dir` to `reference`, digests unchanged.
pub fn skopeo_copy_from_layout(dir: &Path, tag: &str, reference: &str, creds: Option<&str>) {
    let src = format!("oci:{}:{tag}", dir.display());
    let dest = format!("docker://{reference}");
    let mut args = vec![
        "copy",
        "--dest-tls-verify=false",
        "--all",
        "--preserve-digests",
    ];
    args.extend(creds_args("--dest-creds", creds));
    args.extend([src.as_str(), dest.as_str()]);
    skopeo_ok(&args);
}

/// `[flag, creds]`, or nothing; with nothing skopeo goes anonymous because its auth file is
/// empty (see `skopeo`).
fn creds_args<'a>(flag: &'a str, creds: Option<&'a str>) -> Vec<&'a str> {
    match creds {
        Some(creds) => vec![flag, creds],
        None => Vec::new(),
    }
}

/// Writes a one-layer linux/amd64 image as `tag` into the OCI layout at `dir` (created, or
/// added to when it exists, replacing an older `tag`) and returns its manifest digest. The
/// layer holds `hello.txt` with `content`, so different contents make different images.
pub fn write_tiny_layout(dir: &Path, tag: &str, content: &[u8]) -> String {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();

    let tar = tiny_tar(content);
    let diff_id = sha256_hex(&tar);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let layer_desc = put_blob(dir, "application/vnd.oci.image.layer.v1.tar+gzip", &layer);

    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    });
    let config_desc = put_blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );

    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    });
    let mut manifest_desc = put_blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    );
    manifest_desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
    let digest = manifest_desc["digest"].as_str().unwrap().to_string();

    let index_path = dir.join("index.json");
    let mut manifests: Vec<serde_json::Value> = match std::fs::read(&index_path) {
        Ok(bytes) => {
            let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            index["manifests"].as_array().cloned().unwrap_or_default()
        }
        Err(_) => Vec::new(),
    };
    manifests.retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] != tag);
    manifests.push(manifest_desc);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    std::fs::write(&index_path, index.to_string()).unwrap();
    digest
}

fn tiny_tar(content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "hello.txt", content)
        .unwrap();
    builder.into_inner().unwrap()
}

/// Stores `bytes` as a blob of the layout and returns its descriptor.
fn put_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let hex = sha256_hex(bytes);
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    serde_json::json!({
        "mediaType": media_type,
        "digest": format!("sha256:{hex}"),
        "size": bytes.len(),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
