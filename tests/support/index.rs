//! A package index on 127.0.0.1 for tests: PEP 691 JSON or PEP 503 HTML project pages over
//! wheels the tests build, optional PEP 658 metadata files, yanked files, upload times, and
//! misbehaving answers (malformed JSON, HTTP 500) for error tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::http::{HttpServer, Request, Response};
use super::wheel::{WheelBuilder, sha256_file};

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Project pages are JSON that does not parse.
    MalformedJson,
    /// Every answer is HTTP 500.
    ServerError,
}

/// Options of one served file.
#[derive(Debug, Clone, Default)]
pub struct FileOpts {
    pub yanked: bool,
    /// RFC 3339, PEP 700 `upload-time`.
    pub upload_time: Option<String>,
}

#[derive(Debug, Clone)]
struct Served {
    filename: String,
    path: PathBuf,
    sha256: String,
    size: u64,
    metadata: Option<String>,
    requires_python: Option<String>,
    opts: FileOpts,
}

#[derive(Debug)]
struct State {
    projects: BTreeMap<String, Vec<Served>>,
    html: bool,
    metadata_files: bool,
    fault: Fault,
    requests: Vec<String>,
}

/// A running index. Stops when dropped.
pub struct IndexServer {
    dir: PathBuf,
    port: u16,
    state: Arc<Mutex<State>>,
    /// Stops serving when dropped.
    _server: HttpServer,
}

fn normalize(name: &str) -> String {
    let mut out = String::new();
    for part in name.split(['-', '_', '.']).filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&part.to_ascii_lowercase());
    }
    out
}

impl IndexServer {
    /// Starts an index serving files from `dir` (where added wheels are built).
    pub fn start(dir: &Path) -> IndexServer {
        std::fs::create_dir_all(dir).unwrap();
        let state = Arc::new(Mutex::new(State {
            projects: BTreeMap::new(),
            html: false,
            metadata_files: true,
            fault: Fault::None,
            requests: Vec::new(),
        }));
        let server = {
            let state = state.clone();
            HttpServer::start(move |request| respond(&state, request))
        };
        IndexServer {
            dir: dir.to_path_buf(),
            port: server.port(),
            state,
            _server: server,
        }
    }

    /// The index URL to put in a spec.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/simple", self.port)
    }

    /// Builds and serves a wheel.
    pub fn add(&self, wheel: &WheelBuilder) -> String {
        self.add_with(wheel, FileOpts::default())
    }

    /// Builds and serves a wheel with options.
    pub fn add_with(&self, wheel: &WheelBuilder, opts: FileOpts) -> String {
        let path = wheel.build(&self.dir);
        let served = Served {
            filename: wheel.filename(),
            sha256: sha256_file(&path),
            size: std::fs::metadata(&path).unwrap().len(),
            path,
            metadata: Some(wheel.metadata()),
            requires_python: wheel.requires_python.clone(),
            opts,
        };
        let mut state = self.state.lock().unwrap();
        let files = state.projects.entry(normalize(&wheel.name)).or_default();
        files.retain(|f| f.filename != served.filename);
        files.push(served.clone());
        served.sha256
    }

    /// Serves a source distribution (its content is never read by the locker).
    pub fn add_sdist(&self, name: &str, version: &str) {
        let filename = format!("{}-{version}.tar.gz", name.replace('-', "_"));
        let path = self.dir.join(&filename);
        std::fs::write(&path, b"not really a tarball").unwrap();
        let served = Served {
            filename,
            sha256: sha256_file(&path),
            size: 20,
            path,
            metadata: None,
            requires_python: None,
            opts: FileOpts::default(),
        };
        let mut state = self.state.lock().unwrap();
        state
            .projects
            .entry(normalize(name))
            .or_default()
            .push(served);
    }

    /// Serve PEP 503 HTML instead of PEP 691 JSON.
    pub fn set_html(&self, html: bool) {
        self.state.lock().unwrap().html = html;
    }

    /// Serve PEP 658 metadata files (on by default).
    pub fn set_metadata_files(&self, on: bool) {
        self.state.lock().unwrap().metadata_files = on;
    }

    pub fn set_fault(&self, fault: Fault) {
        self.state.lock().unwrap().fault = fault;
    }

    /// Paths requested so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn respond(state: &Mutex<State>, request: &Request) -> Response {
    let path = request.path.clone();
    let accept = request.header("Accept").unwrap_or_default().to_string();
    let (status, content_type, body) = {
        let mut state = state.lock().unwrap();
        state.requests.push(path.clone());
        answer(&state, &path, &accept)
    };
    Response {
        status,
        content_type: content_type.to_string(),
        body,
    }
}

fn answer(state: &State, path: &str, accept: &str) -> (u16, &'static str, Vec<u8>) {
    let not_found = (404, "text/plain", b"not found".to_vec());
    if state.fault == Fault::ServerError {
        return (500, "text/plain", b"broken".to_vec());
    }
    if let Some(rest) = path.strip_prefix("/simple/") {
        let name = rest.trim_end_matches('/');
        let Some(files) = state.projects.get(name) else {
            return not_found;
        };
        if state.fault == Fault::MalformedJson {
            return (
                200,
                "application/vnd.pypi.simple.v1+json",
                b"{\"files\": [".to_vec(),
            );
        }
        if state.html || !accept.contains("application/vnd.pypi.simple.v1+json") {
            return (200, "text/html", html_page(state, files).into_bytes());
        }
        return (
            200,
            "application/vnd.pypi.simple.v1+json",
            json_page(state, name, files).into_bytes(),
        );
    }
    if let Some(file) = path.strip_prefix("/files/") {
        for served in state.projects.values().flatten() {
            if file == served.filename {
                return (
                    200,
                    "application/octet-stream",
                    std::fs::read(&served.path).unwrap(),
                );
            }
            if state.metadata_files
                && file == format!("{}.metadata", served.filename)
                && let Some(m) = &served.metadata
            {
                return (200, "text/plain", m.clone().into_bytes());
            }
        }
    }
    not_found
}

fn metadata_hash(state: &State, f: &Served) -> Option<String> {
    let m = f.metadata.as_ref().filter(|_| state.metadata_files)?;
    Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        m.as_bytes(),
    )))
}

fn json_page(state: &State, name: &str, files: &[Served]) -> String {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            let mut v = serde_json::json!({
                "filename": f.filename,
                "url": format!("../../files/{}", f.filename),
                "hashes": {"sha256": f.sha256},
                "size": f.size,
            });
            if let Some(rp) = &f.requires_python {
                v["requires-python"] = rp.clone().into();
            }
            if f.opts.yanked {
                v["yanked"] = "broken release".into();
            }
            if let Some(t) = &f.opts.upload_time {
                v["upload-time"] = t.clone().into();
            }
            if let Some(h) = metadata_hash(state, f) {
                v["core-metadata"] = serde_json::json!({"sha256": h});
            }
            v
        })
        .collect();
    serde_json::json!({"meta": {"api-version": "1.1"}, "name": name, "files": files}).to_string()
}

fn html_page(state: &State, files: &[Served]) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html><body>\n");
    for f in files {
        let mut attrs = String::new();
        if let Some(rp) = &f.requires_python {
            let escaped = rp
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            attrs.push_str(&format!(" data-requires-python=\"{escaped}\""));
        }
        if f.opts.yanked {
            attrs.push_str(" data-yanked=\"\"");
        }
        if let Some(h) = metadata_hash(state, f) {
            attrs.push_str(&format!(" data-core-metadata=\"sha256={h}\""));
        }
        out.push_str(&format!(
            "<a href=\"../../files/{0}#sha256={1}\"{attrs}>{0}</a><br/>\n",
            f.filename, f.sha256
        ));
    }
    out.push_str("</body></html>\n");
    out
}
