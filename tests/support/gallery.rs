//! An Open VSX compatible gallery on 127.0.0.1 serving VSIX files the tests build, and the
//! VSIX builder itself (`extension.vsixmanifest`, `extension/package.json`, optional target
//! platform).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};
use tiny_http::{Header, Response, Server};
use zip::write::SimpleFileOptions;

/// A VSIX to make.
#[derive(Debug, Clone)]
pub struct VsixBuilder {
    pub publisher: String,
    pub name: String,
    pub version: String,
    pub target: Option<String>,
    /// `(name in the archive, content, unix mode)`; names are taken as is.
    pub members: Vec<(String, Vec<u8>, u32)>,
    pub symlinks: Vec<(String, String)>,
    /// Names patched in the finished archive's bytes (same length), to make what zip
    /// writers refuse, such as two members with one name.
    pub patches: Vec<(String, String)>,
}

impl VsixBuilder {
    pub fn new(publisher: &str, name: &str, version: &str) -> VsixBuilder {
        VsixBuilder {
            publisher: publisher.to_string(),
            name: name.to_string(),
            version: version.to_string(),
            target: None,
            members: vec![(
                "extension/out/main.js".to_string(),
                format!("// {publisher}.{name} {version}\n").into_bytes(),
                0o644,
            )],
            symlinks: Vec::new(),
            patches: Vec::new(),
        }
    }

    /// A platform-specific build (`linux-x64`, …).
    pub fn target(mut self, target: &str) -> Self {
        self.target = Some(target.to_string());
        self
    }

    /// A file under `extension/`.
    pub fn file(mut self, path: &str, data: &[u8]) -> Self {
        self.members
            .push((format!("extension/{path}"), data.to_vec(), 0o644));
        self
    }

    /// An executable file under `extension/`.
    pub fn executable(mut self, path: &str, data: &[u8]) -> Self {
        self.members
            .push((format!("extension/{path}"), data.to_vec(), 0o755));
        self
    }

    /// A member with exactly this name (for unsafe names).
    pub fn raw(mut self, name: &str, data: &[u8]) -> Self {
        self.members.push((name.to_string(), data.to_vec(), 0o644));
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        self.symlinks.push((name.to_string(), target.to_string()));
        self
    }

    /// Renames every `from` in the archive bytes to `to` (both the same length).
    pub fn patch_name(mut self, from: &str, to: &str) -> Self {
        assert_eq!(from.len(), to.len());
        self.patches.push((from.to_string(), to.to_string()));
        self
    }

    /// `publisher.name-version[@target].vsix`, the name vsce gives.
    pub fn file_name(&self) -> String {
        match &self.target {
            Some(t) => format!("{}.{}-{}@{t}.vsix", self.publisher, self.name, self.version),
            None => format!("{}.{}-{}.vsix", self.publisher, self.name, self.version),
        }
    }

    pub fn package_json(&self) -> String {
        format!(
            "{{\n  \"name\": \"{}\",\n  \"publisher\": \"{}\",\n  \"version\": \"{}\",\n  \
             \"engines\": {{ \"vscode\": \"^1.80.0\" }},\n  \"main\": \"./out/main.js\"\n}}\n",
            self.name, self.publisher, self.version
        )
    }

    fn manifest(&self) -> String {
        let target = self
            .target
            .as_ref()
            .map(|t| format!(" TargetPlatform=\"{t}\""))
            .unwrap_or_default();
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011">
  <Metadata>
    <Identity Language="en-US" Id="{name}" Version="{version}" Publisher="{publisher}"{target}/>
    <DisplayName>{name}</DisplayName>
    <Description xml:space="preserve">A test extension</Description>
    <Properties>
      <Property Id="Microsoft.VisualStudio.Code.Engine" Value="^1.80.0" />
    </Properties>
  </Metadata>
  <Installation>
    <InstallationTarget Id="Microsoft.VisualStudio.Code"/>
  </Installation>
  <Dependencies/>
  <Assets>
    <Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json"/>
  </Assets>
</PackageManifest>
"#,
            name = self.name,
            version = self.version,
            publisher = self.publisher,
        )
    }

    /// The VSIX bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = |mode: u32| {
            SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(mode)
        };
        let content_types = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Types xmlns=\"http://\
            schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"json\" \
            ContentType=\"application/json\"/></Types>\n";
        let mut put = |name: &str, data: &[u8], mode: u32| {
            zip.start_file(name, opts(mode)).unwrap();
            zip.write_all(data).unwrap();
        };
        put("[Content_Types].xml", content_types.as_bytes(), 0o644);
        put("extension.vsixmanifest", self.manifest().as_bytes(), 0o644);
        put(
            "extension/package.json",
            self.package_json().as_bytes(),
            0o644,
        );
        for (name, data, mode) in &self.members {
            put(name, data, *mode);
        }
        for (name, target) in &self.symlinks {
            zip.add_symlink(name, target, SimpleFileOptions::default())
                .unwrap();
        }
        let mut bytes = zip.finish().unwrap().into_inner();
        for (from, to) in &self.patches {
            let (from, to) = (from.as_bytes(), to.as_bytes());
            let mut i = 0;
            while i + from.len() <= bytes.len() {
                if &bytes[i..i + from.len()] == from {
                    bytes[i..i + from.len()].copy_from_slice(to);
                }
                i += 1;
            }
        }
        bytes
    }

    /// Writes the VSIX into `dir` and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join(self.file_name());
        std::fs::write(&path, self.bytes()).unwrap();
        path
    }
}

/// The hex sha256 of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// How the gallery publishes a build's sha256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFile {
    Right,
    /// No `files.sha256` link at all.
    Absent,
    /// A link to a hash that does not match the bytes.
    Wrong,
}

#[derive(Debug, Clone)]
struct Build {
    vsix: VsixBuilder,
    bytes: Vec<u8>,
    hash: HashFile,
}

#[derive(Default)]
struct State {
    /// `namespace.name` → builds in publication order (the last version is the latest).
    builds: BTreeMap<String, Vec<Build>>,
    /// Paths answered with raw bytes.
    raw: BTreeMap<String, Vec<u8>>,
    /// Extensions whose API answers are not JSON.
    malformed: Vec<String>,
    requests: Vec<String>,
}

/// An Open VSX compatible gallery on 127.0.0.1; stops when dropped.
pub struct Gallery {
    pub url: String,
    server: Arc<Server>,
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<()>>,
}

impl Gallery {
    pub fn start() -> Gallery {
        let server = Arc::new(Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let state = Arc::new(Mutex::new(State::default()));
        let thread = {
            let (server, state, url) = (server.clone(), state.clone(), url.clone());
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let path = request.url().to_string();
                    let mut state = state.lock().unwrap();
                    state.requests.push(path.clone());
                    let (status, body, json) = answer(&state, &url, &path);
                    drop(state);
                    let mut resp = Response::from_data(body).with_status_code(status);
                    if json {
                        resp.add_header(
                            Header::from_bytes("Content-Type", "application/json").unwrap(),
                        );
                    }
                    let _ = request.respond(resp);
                }
            })
        };
        Gallery {
            url,
            server,
            state,
            thread: Some(thread),
        }
    }

    /// Publishes a build; returns its bytes.
    pub fn publish(&self, vsix: VsixBuilder) -> Vec<u8> {
        self.publish_with(vsix, HashFile::Right)
    }

    pub fn publish_with(&self, vsix: VsixBuilder, hash: HashFile) -> Vec<u8> {
        let bytes = vsix.bytes();
        let key = format!("{}.{}", vsix.publisher, vsix.name);
        let build = Build {
            vsix,
            bytes: bytes.clone(),
            hash,
        };
        self.state
            .lock()
            .unwrap()
            .builds
            .entry(key)
            .or_default()
            .push(build);
        bytes
    }

    /// Serves `bytes` at `path`; returns the full URL.
    pub fn serve_raw(&self, path: &str, bytes: Vec<u8>) -> String {
        self.state
            .lock()
            .unwrap()
            .raw
            .insert(path.to_string(), bytes);
        format!("{}{path}", self.url)
    }

    /// Makes the API answers about `namespace.name` unparsable.
    pub fn break_json(&self, id: &str) {
        self.state.lock().unwrap().malformed.push(id.to_string());
    }

    /// Paths asked so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for Gallery {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const TARGETS: &[&str] = &[
    "universal",
    "linux-x64",
    "linux-arm64",
    "linux-armhf",
    "alpine-x64",
    "alpine-arm64",
    "win32-x64",
    "darwin-x64",
    "darwin-arm64",
];

/// `(status, body, is JSON)` for a path.
fn answer(state: &State, base: &str, path: &str) -> (u16, Vec<u8>, bool) {
    if let Some(bytes) = state.raw.get(path) {
        return (200, bytes.clone(), false);
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", ns, name, rest @ ..] => api(state, base, &format!("{ns}.{name}"), rest),
        ["files", id, version, target, file] => {
            let Some(build) = find(state, id, version, target) else {
                return not_found();
            };
            if file.ends_with(".vsix") {
                (200, build.bytes.clone(), false)
            } else if file.ends_with(".sha256") {
                let hex = match build.hash {
                    HashFile::Right => sha256_hex(&build.bytes),
                    HashFile::Wrong => sha256_hex(b"something else"),
                    HashFile::Absent => return not_found(),
                };
                (200, hex.into_bytes(), false)
            } else {
                not_found()
            }
        }
        _ => not_found(),
    }
}

fn api(state: &State, base: &str, id: &str, rest: &[&str]) -> (u16, Vec<u8>, bool) {
    let Some(builds) = state.builds.get(id) else {
        return not_found();
    };
    if state.malformed.iter().any(|m| m == id) {
        return (200, b"{\"version\": [".to_vec(), true);
    }
    let latest = &builds[builds.len() - 1].vsix.version;
    let (target, version) = match rest {
        [] | ["latest"] => (None, latest.as_str()),
        [t, v] if TARGETS.contains(t) => {
            (Some(*t), if *v == "latest" { latest.as_str() } else { *v })
        }
        [t] if TARGETS.contains(t) => (Some(*t), latest.as_str()),
        [v] => (None, *v),
        _ => return not_found(),
    };
    let build = match target {
        Some(t) => find(state, id, version, t),
        // Without a target platform Open VSX answers with the universal build, or else one
        // of the platform builds.
        None => find(state, id, version, "universal")
            .or_else(|| builds.iter().find(|b| b.vsix.version == version)),
    };
    let Some(build) = build else {
        return not_found();
    };
    (
        200,
        describe(builds, build, base).to_string().into_bytes(),
        true,
    )
}

fn find<'s>(state: &'s State, id: &str, version: &str, target: &str) -> Option<&'s Build> {
    state.builds.get(id)?.iter().find(|b| {
        b.vsix.version == version && b.vsix.target.as_deref().unwrap_or("universal") == target
    })
}

fn describe(all: &[Build], build: &Build, base: &str) -> serde_json::Value {
    let v = &build.vsix;
    let target = v.target.clone().unwrap_or_else(|| "universal".to_string());
    let id = format!("{}.{}", v.publisher, v.name);
    let file_url = |b: &Build, ext: &str| {
        let t = b.vsix.target.as_deref().unwrap_or("universal");
        format!("{base}/files/{id}/{}/{t}/file.{ext}", b.vsix.version)
    };
    let mut files = serde_json::json!({ "download": file_url(build, "vsix") });
    if build.hash != HashFile::Absent {
        files["sha256"] = file_url(build, "sha256").into();
    }

    let mut all_versions = serde_json::Map::new();
    let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in all {
        let api = format!("{base}/api/{}/{}/{}", v.publisher, v.name, b.vsix.version);
        all_versions.insert(b.vsix.version.clone(), api.into());
        let t = b
            .vsix
            .target
            .clone()
            .unwrap_or_else(|| "universal".to_string());
        by_version
            .entry(b.vsix.version.clone())
            .or_default()
            .push(t);
    }
    all_versions.insert("latest".into(), format!("{base}/api/{id}/latest").into());
    let downloads: serde_json::Map<String, serde_json::Value> = all
        .iter()
        .filter(|b| b.vsix.version == v.version)
        .map(|b| {
            let t = b
                .vsix
                .target
                .clone()
                .unwrap_or_else(|| "universal".to_string());
            (t, file_url(b, "vsix").into())
        })
        .collect();
    serde_json::json!({
        "namespace": v.publisher,
        "name": v.name,
        "version": v.version,
        "targetPlatform": target,
        "displayName": v.name,
        "files": files,
        "allVersions": all_versions,
        "allTargetPlatformVersions": by_version
            .iter()
            .map(|(version, targets)| serde_json::json!({
                "version": version, "targetPlatforms": targets,
            }))
            .collect::<Vec<_>>(),
        "downloads": downloads,
    })
}

fn not_found() -> (u16, Vec<u8>, bool) {
    (404, b"{\"error\": \"Extension not found\"}".to_vec(), true)
}
