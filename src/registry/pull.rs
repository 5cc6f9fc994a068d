//! Pulling manifests and blobs. Every manifest is checked against the digest asked for (or the
//! one the registry claims), and every blob streams into the cache, which checks its hash.

use std::io::Read;
use std::path::PathBuf;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;

use super::client::{Access, Session};
use super::reference::ImageRef;
use super::{Fetched, MANIFEST_ACCEPT, RegistryError, RegistryOptions};
use crate::cache::Cache;
use crate::image::sha256_digest;

/// Manifests larger than this are refused: the distribution spec lets registries refuse
/// above 4 MiB, and a bound keeps a hostile registry from filling memory.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// The header in which registries state a manifest's digest.
const CONTENT_DIGEST: &str = "docker-content-digest";

/// Fetches what `reference` (tag or digest) points at: an image index or a manifest.
pub fn fetch_root(reference: &str, opts: &RegistryOptions) -> Result<Fetched, RegistryError> {
    let image = ImageRef::parse(reference)?;
    let wanted = image.manifest_reference().to_string();
    get_manifest(&image, &wanted, opts)
}

/// Fetches a manifest of the repository of `reference` by digest, verifying the digest.
pub fn fetch_manifest(
    reference: &str,
    digest: &str,
    opts: &RegistryOptions,
) -> Result<Fetched, RegistryError> {
    let image = ImageRef::parse(reference)?;
    get_manifest(&image, digest, opts)
}

fn get_manifest(
    image: &ImageRef,
    wanted: &str,
    opts: &RegistryOptions,
) -> Result<Fetched, RegistryError> {
    let session = Session::get(image, opts, Access::Pull, &[])?;
    let url = session.url(&format!("manifests/{wanted}"));
    let what = format!("`{}:{wanted}`", image.repo_name());
    let resp = session.send(&what, &url, |c| c.get(&url).header(ACCEPT, MANIFEST_ACCEPT))?;
    match resp.status() {
        s if s.is_success() => {}
        StatusCode::NOT_FOUND => {
            return Err(RegistryError::NotFound {
                registry: image.registry.clone(),
                reference: format!("{}:{wanted}", image.repository),
            });
        }
        _ => return Err(session.status_error(&what, resp)),
    }

    let claimed = resp
        .headers()
        .get(CONTENT_DIGEST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let header_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_string());
    let mut bytes = Vec::new();
    resp.take(MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| session.malformed(&what, &format!("reading the body: {e}")))?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(session.malformed(&what, "the manifest is larger than 4 MiB"));
    }

    // The digest is computed from the bytes, never taken on trust: asked for by digest, it
    // must match; asked for by tag, the registry's claim (when it makes one) must match.
    let digest = sha256_digest(&bytes);
    let expected = if wanted.starts_with("sha256:") {
        Some(wanted.to_string())
    } else {
        claimed
    };
    if let Some(expected) = expected
        && expected != digest
    {
        return Err(RegistryError::DigestMismatch {
            registry: image.registry.clone(),
            what,
            expected,
            actual: digest,
        });
    }

    let body_type = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
    let media_type = body_type
        .or(header_type)
        .ok_or_else(|| session.malformed(&what, "the manifest states no media type"))?;
    Ok(Fetched {
        digest,
        media_type,
        bytes,
    })
}

/// Downloads a blob of the repository of `reference` into the cache (verified) unless there.
pub fn pull_blob(
    reference: &str,
    digest: &str,
    cache: &Cache,
    opts: &RegistryOptions,
) -> Result<PathBuf, RegistryError> {
    let hex = digest.trim_start_matches("sha256:");
    if let Some(p) = cache.get(hex) {
        return Ok(p);
    }
    let image = ImageRef::parse(reference)?;
    let session = Session::get(&image, opts, Access::Pull, &[])?;
    let url = session.url(&format!("blobs/{digest}"));
    let what = format!("blob `{digest}` of `{}`", image.repo_name());

    // A transfer cut off mid-body is tried again from the start; the cache never keeps the
    // partial file, and a hash mismatch is not a fault that retrying fixes.
    let mut attempt = 1;
    loop {
        let resp = session.send(&what, &url, |c| c.get(&url))?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    registry: image.registry.clone(),
                    reference: format!("{}@{digest}", image.repository),
                });
            }
            _ => return Err(session.status_error(&what, resp)),
        }
        let mut body = resp;
        match cache.insert(&what, hex, &mut body) {
            Ok(p) => return Ok(p),
            Err(crate::cache::CacheError::Download { .. }) if attempt < crate::http::ATTEMPTS => {
                tracing::debug!("{what}: transfer cut off, retrying");
                std::thread::sleep(crate::http::backoff(attempt));
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
