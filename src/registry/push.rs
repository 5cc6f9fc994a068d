//! Pushing an image from an OCI layout (distribution spec, "pushing blobs" and "pushing
//! manifests"): blobs first, concurrently, each skipped when the registry has it, mounted when
//! another repository of the registry has it, else streamed from its file; then manifests,
//! children before the index that names them; the tag last, so the registry never holds a tag
//! or manifest that points at a missing blob, whatever interrupts the push.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::blocking::{Body, Response};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION};
use serde_json::Value;

use super::client::{Access, Session};
use super::reference::ImageRef;
use super::{RegistryError, RegistryOptions};
use crate::http;
use crate::image::{Descriptor, Layout, MEDIA_TYPE_INDEX};
use crate::progress::{Reporter, Stage};

/// Blobs above this size go up in chunks, so a dropped connection costs one chunk.
pub const DEFAULT_CHUNKED_ABOVE: u64 = 64 * 1024 * 1024;
/// The chunk size of a chunked upload, unless the registry asks for more.
pub const DEFAULT_CHUNK: u64 = 16 * 1024 * 1024;

/// How a push goes about its work.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Images of the same registry whose blobs may be mounted instead of uploaded (the base).
    pub mount_from: Vec<String>,
    /// Blobs larger than this are uploaded in chunks.
    pub chunked_above: u64,
    /// Chunk size of chunked uploads.
    pub chunk: u64,
    /// Blob uploads running at once.
    pub jobs: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            mount_from: Vec::new(),
            chunked_above: DEFAULT_CHUNKED_ABOVE,
            chunk: DEFAULT_CHUNK,
            jobs: 4,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushReport {
    /// `registry/repository[:tag]@digest`.
    pub reference: String,
    pub digest: String,
    pub uploaded_blobs: usize,
    pub uploaded_bytes: u64,
    pub skipped_blobs: usize,
    pub mounted_blobs: usize,
}

/// What happened to one blob.
pub(super) enum Outcome {
    Skipped,
    Mounted,
    Uploaded(u64),
}

/// Pushes the image `tag` names in the OCI layout at `layout_dir` to `reference`.
pub fn push_layout(
    layout_dir: &Path,
    tag: Option<&str>,
    reference: &str,
    opts: &RegistryOptions,
    push: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<PushReport, RegistryError> {
    let layout = Layout::open(layout_dir)?;
    let root = layout.resolve_tag(tag)?;
    let image = ImageRef::parse(reference)?;
    if let Some(pinned) = &image.digest
        && pinned != &root.digest
    {
        return Err(RegistryError::InvalidReference {
            reference: reference.to_string(),
            message: format!(
                "it pins `{pinned}`, but the image to push is `{}`",
                root.digest
            ),
        });
    }

    // 1. Everything the root references, read from the layout (digests checked on read).
    let root_bytes = layout.read_blob(&root.digest)?;
    let (manifests, blobs) = collect(&layout, root.media_type == MEDIA_TYPE_INDEX, &root_bytes)?;

    // 2. One session, allowed to read the mount sources too.
    let mount_repos: Vec<String> = push
        .mount_from
        .iter()
        .filter_map(|r| ImageRef::parse(r).ok())
        .filter(|r| r.api_host == image.api_host && r.repository != image.repository)
        .map(|r| r.repository)
        .collect();
    let session = Session::get(&image, opts, Access::Push, &mount_repos)?;

    // 3. Blobs, several at once.
    let mut report = PushReport {
        reference: String::new(),
        digest: root.digest.clone(),
        uploaded_blobs: 0,
        uploaded_bytes: 0,
        skipped_blobs: 0,
        mounted_blobs: 0,
    };
    for outcome in push_blobs(&session, &layout, &blobs, &mount_repos, push, reporter)? {
        match outcome {
            Outcome::Skipped => report.skipped_blobs += 1,
            Outcome::Mounted => report.mounted_blobs += 1,
            Outcome::Uploaded(bytes) => {
                report.uploaded_blobs += 1;
                report.uploaded_bytes += bytes;
            }
        }
    }

    // 4. Manifests by digest, then the root under its tag.
    for (desc, bytes) in &manifests {
        put_manifest(&session, &desc.digest, desc, bytes)?;
    }
    let name = image.tag.clone().or_else(|| image.digest.clone());
    let name = name.unwrap_or_else(|| "latest".to_string());
    put_manifest(&session, &name, &root, &root_bytes)?;

    let shown = match (&image.tag, image.digest.is_some()) {
        (Some(t), _) => format!("{}:{t}", image.repo_name()),
        (None, true) => image.repo_name(),
        (None, false) => format!("{}:latest", image.repo_name()),
    };
    report.reference = format!("{shown}@{}", root.digest);
    Ok(report)
}

/// The manifests under `root` (children only, in index order) and every blob they name
/// (configs and layers, each once, in first-seen order).
type Collected = (Vec<(Descriptor, Vec<u8>)>, Vec<Descriptor>);

fn collect(layout: &Layout, is_index: bool, root_bytes: &[u8]) -> Result<Collected, RegistryError> {
    let mut manifests = Vec::new();
    let mut blobs: Vec<Descriptor> = Vec::new();
    let mut add_blobs = |bytes: &[u8]| {
        let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let config = v.get("config").into_iter();
        let layers = v
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for d in config.chain(layers).filter_map(Descriptor::from_value) {
            if !blobs.iter().any(|b| b.digest == d.digest) {
                blobs.push(d);
            }
        }
    };

    if is_index {
        let v: Value = serde_json::from_slice(root_bytes).unwrap_or(Value::Null);
        let children = v.get("manifests").and_then(Value::as_array).cloned();
        for d in children
            .unwrap_or_default()
            .iter()
            .filter_map(Descriptor::from_value)
        {
            let bytes = layout.read_blob(&d.digest)?;
            add_blobs(&bytes);
            manifests.push((d, bytes));
        }
    } else {
        add_blobs(root_bytes);
    }
    Ok((manifests, blobs))
}

/// Pushes blobs with `push.jobs` workers; the first error wins once all workers stop.
fn push_blobs(
    session: &Session,
    layout: &Layout,
    blobs: &[Descriptor],
    mount_repos: &[String],
    push: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<Outcome>, RegistryError> {
    let queue = Mutex::new(blobs.iter().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    let failed = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..push.jobs.clamp(1, blobs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    let Some(desc) = next else { break };
                    if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                        break;
                    }
                    let outcome = layout
                        .blob_path(&desc.digest)
                        .map_err(RegistryError::from)
                        .and_then(|path| {
                            push_blob(session, &path, desc, mount_repos, push, reporter)
                        });
                    match outcome {
                        Ok(o) => results.lock().map(|mut r| r.push(o)).unwrap_or(()),
                        Err(e) => {
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_default())
}

/// One blob: skipped when present, else mounted or uploaded. A failed upload starts again
/// with a fresh upload session, since a registry may have kept part of the broken one.
pub(super) fn push_blob(
    session: &Session,
    path: &Path,
    desc: &Descriptor,
    mount_repos: &[String],
    push: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<Outcome, RegistryError> {
    if exists(session, &desc.digest)? {
        return Ok(Outcome::Skipped);
    }
    let what = short(&desc.digest);
    let mut attempt = 1;
    loop {
        let location = match start_upload(session, &desc.digest, mount_repos)? {
            None => return Ok(Outcome::Mounted),
            Some(location) => location,
        };
        reporter.started(Stage::Upload, &what, Some(desc.size));
        let sent = if desc.size > push.chunked_above {
            let progress = |n| reporter.advanced(Stage::Upload, &what, n);
            upload_chunked(session, location, path, desc, push.chunk, &progress)
        } else {
            upload_whole(session, &location, path, desc)
                .inspect(|()| reporter.advanced(Stage::Upload, &what, desc.size))
        };
        match sent {
            Ok(()) => {
                reporter.finished(Stage::Upload, &what);
                return Ok(Outcome::Uploaded(desc.size));
            }
            Err(e @ (RegistryError::Network { .. } | RegistryError::Status { .. }))
                if attempt < http::ATTEMPTS =>
            {
                tracing::debug!("blob {}: {e}; starting the upload again", desc.digest);
                std::thread::sleep(http::backoff(attempt));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A digest as progress shows it: the first 12 hex digits.
fn short(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!("blob {}", hex.get(..12).unwrap_or(hex))
}

/// `HEAD /v2/<name>/blobs/<digest>`.
fn exists(session: &Session, digest: &str) -> Result<bool, RegistryError> {
    let url = session.url(&format!("blobs/{digest}"));
    let what = format!("`HEAD` of blob `{digest}`");
    let resp = session.send(&what, &url, |c| c.head(&url))?;
    match resp.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(session.status_error(&what, resp)),
    }
}

/// Opens an upload session, first asking each mount source for the blob. `None` when a
/// mount succeeded; a registry that cannot mount answers 202 with a session to upload into.
fn start_upload(
    session: &Session,
    digest: &str,
    mount_repos: &[String],
) -> Result<Option<String>, RegistryError> {
    let mut location = None;
    for from in mount_repos {
        let url = session.url(&format!("blobs/uploads/?mount={digest}&from={from}"));
        let what = format!("the mount of blob `{digest}` from `{from}`");
        let resp = session.send(&what, &url, |c| c.post(&url).header(CONTENT_LENGTH, 0))?;
        match resp.status() {
            StatusCode::CREATED => return Ok(None),
            StatusCode::ACCEPTED if location.is_none() => {
                location = Some(upload_location(session, &what, &resp)?);
            }
            StatusCode::ACCEPTED => {}
            _ => return Err(session.status_error(&what, resp)),
        }
    }
    if let Some(l) = location {
        return Ok(Some(l));
    }

    let url = session.url("blobs/uploads/");
    let what = format!("the upload of blob `{digest}`");
    let resp = session.send(&what, &url, |c| c.post(&url).header(CONTENT_LENGTH, 0))?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(session.status_error(&what, resp));
    }
    upload_location(session, &what, &resp).map(Some)
}

fn upload_location(
    session: &Session,
    what: &str,
    resp: &Response,
) -> Result<String, RegistryError> {
    resp.headers()
        .get(LOCATION)
        .and_then(|h| h.to_str().ok())
        .map(|l| session.absolute(l))
        .ok_or_else(|| session.malformed(what, "no `Location` for the upload"))
}

/// `location` with `digest=<digest>` added to its query.
fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// A monolithic upload: one `PUT` streaming the whole file.
fn upload_whole(
    session: &Session,
    location: &str,
    path: &Path,
    desc: &Descriptor,
) -> Result<(), RegistryError> {
    check_readable(path)?;
    let url = with_digest(location, &desc.digest);
    let what = format!("the upload of blob `{}`", desc.digest);
    let resp = session.send(&what, &url, |c| {
        c.put(&url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(file_body(path, 0, desc.size))
    })?;
    match resp.status() {
        StatusCode::CREATED => Ok(()),
        _ => Err(session.status_error(&what, resp)),
    }
}

/// A chunked upload: `PATCH` chunks with `Content-Range`, then a closing `PUT`. A chunk cut
/// off is sent again; when the registry says it has more than we think (416, after an answer
/// was lost), the upload's status (`GET` of its location, whose `Range` says what arrived)
/// tells where to go on. docker-registry signs the offset into the location (`_state`), so
/// there a lost answer kills the session and [`push_blob`] starts the blob over.
fn upload_chunked(
    session: &Session,
    mut location: String,
    path: &Path,
    desc: &Descriptor,
    chunk: u64,
    progress: &dyn Fn(u64),
) -> Result<(), RegistryError> {
    check_readable(path)?;
    let what = format!("the chunked upload of blob `{}`", desc.digest);
    let mut offset = 0;
    let mut faults = 0;
    while offset < desc.size {
        let len = chunk.max(1).min(desc.size - offset);
        let url = location.clone();
        let sent = session.send(&what, &url, |c| {
            c.patch(&url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header("Content-Range", format!("{offset}-{}", offset + len - 1))
                .body(file_body(path, offset, len))
        });
        let resp = match sent {
            Ok(r) if r.status() == StatusCode::ACCEPTED => r,
            Ok(r) if r.status() != StatusCode::RANGE_NOT_SATISFIABLE => {
                return Err(session.status_error(&what, r));
            }
            Ok(_) | Err(RegistryError::Network { .. }) if faults < http::ATTEMPTS => {
                faults += 1;
                (location, offset) = upload_status(session, &location, &what)?;
                tracing::debug!("{what}: resuming at byte {offset}");
                continue;
            }
            Ok(r) => return Err(session.status_error(&what, r)),
            Err(e) => return Err(e),
        };
        location = upload_location(session, &what, &resp)?;
        let next = range_end(&resp).unwrap_or(offset + len);
        progress(next.saturating_sub(offset));
        offset = next;
    }

    let url = with_digest(&location, &desc.digest);
    let resp = session.send(&what, &url, |c| c.put(&url).header(CONTENT_LENGTH, 0))?;
    match resp.status() {
        StatusCode::CREATED => Ok(()),
        _ => Err(session.status_error(&what, resp)),
    }
}

/// The upload's location and how many bytes the registry holds (`GET` of the upload URL).
fn upload_status(
    session: &Session,
    location: &str,
    what: &str,
) -> Result<(String, u64), RegistryError> {
    let resp = session.send(what, location, |c| c.get(location))?;
    if resp.status() != StatusCode::NO_CONTENT {
        return Err(session.status_error(what, resp));
    }
    let offset = range_end(&resp).unwrap_or(0);
    Ok((upload_location(session, what, &resp)?, offset))
}

/// The byte after the end of a `Range: 0-<last>` header.
fn range_end(resp: &Response) -> Option<u64> {
    let range = resp.headers().get("Range")?.to_str().ok()?;
    let last: u64 = range.rsplit('-').next()?.trim().parse().ok()?;
    Some(last + 1)
}

fn check_readable(path: &Path) -> Result<(), RegistryError> {
    File::open(path)
        .map(drop)
        .map_err(|source| RegistryError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// `len` bytes of the file from `offset`, streamed. The file was opened successfully just
/// before; if it vanished since, an empty body makes the registry refuse the digest.
fn file_body(path: &Path, offset: u64, len: u64) -> Body {
    let path: PathBuf = path.to_path_buf();
    match File::open(&path).and_then(|mut f| f.seek(SeekFrom::Start(offset)).map(|_| f)) {
        Ok(f) => Body::sized(f.take(len), len),
        Err(_) => Body::from(Vec::new()),
    }
}

/// `PUT /v2/<name>/manifests/<reference>`, checking the digest the registry computed.
/// Returns the answer's headers (a registry with the referrers API sets `OCI-Subject`).
pub(super) fn put_manifest(
    session: &Session,
    reference: &str,
    desc: &Descriptor,
    bytes: &[u8],
) -> Result<HeaderMap, RegistryError> {
    let url = session.url(&format!("manifests/{reference}"));
    let what = format!("the manifest `{}` as `{reference}`", desc.digest);
    let resp = session.send(&what, &url, |c| {
        c.put(&url)
            .header(CONTENT_TYPE, &desc.media_type)
            .body(bytes.to_vec())
    })?;
    if resp.status() != StatusCode::CREATED {
        return Err(session.status_error(&what, resp));
    }
    let headers = resp.headers().clone();
    let claimed = headers
        .get("docker-content-digest")
        .and_then(|h| h.to_str().ok());
    match claimed {
        Some(d) if d != desc.digest => Err(RegistryError::DigestMismatch {
            registry: session.image.registry.clone(),
            what,
            expected: desc.digest.clone(),
            actual: d.to_string(),
        }),
        _ => Ok(headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_goes_into_the_query() {
        assert_eq!(
            with_digest("http://h/u/1", "sha256:a"),
            "http://h/u/1?digest=sha256:a"
        );
        assert_eq!(
            with_digest("http://h/u/1?_state=x", "sha256:a"),
            "http://h/u/1?_state=x&digest=sha256:a"
        );
    }
}
