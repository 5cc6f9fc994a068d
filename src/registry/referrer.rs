//! Attaching an artifact (an SBOM) to a pushed image without touching the image: an artifact
//! manifest whose `subject` is the image's manifest (OCI image spec 1.1, distribution spec
//! "listing referrers").
//!
//! A registry with the referrers API says so with an `OCI-Subject` header on the manifest
//! `PUT`. One without it gets the fallback the distribution spec defines: an image index under
//! the tag `sha256-<hex of the subject digest>` listing every referrer, read, extended and
//! written back. Either way the image's own manifests and tags are left as they are, so its
//! digest does not change.

use std::io::Write;

use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde_json::{Map, Value, json};

use super::client::{Access, Session};
use super::push::{PushOptions, push_blob, put_manifest};
use super::reference::ImageRef;
use super::{RegistryError, RegistryOptions};
use crate::image::{Descriptor, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, canonical_json};

/// The empty JSON object the image spec names for artifacts without a config.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_JSON: &[u8] = b"{}";

/// How an artifact reached the registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReferrerReport {
    /// Digest of the artifact manifest.
    pub digest: String,
    /// The fallback tag that lists it, when the registry has no referrers API.
    pub fallback_tag: Option<String>,
}

/// Pushes `content` (of media type `artifact_type`) as an artifact referring to `subject`, a
/// manifest already in the repository of `reference`.
pub fn push_referrer(
    reference: &str,
    subject: &Descriptor,
    artifact_type: &str,
    content: &[u8],
    opts: &RegistryOptions,
) -> Result<ReferrerReport, RegistryError> {
    let image = ImageRef::parse(reference)?;
    let session = Session::get(&image, opts, Access::Push, &[])?;

    // 1. The blobs: the empty config and the content.
    let config = upload_bytes(&session, EMPTY_MEDIA_TYPE, EMPTY_JSON)?;
    let layer = upload_bytes(&session, artifact_type, content)?;

    // 2. The artifact manifest, by digest.
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": artifact_type,
        "config": config.to_value(),
        "layers": [layer.to_value()],
        "subject": subject.to_value(),
    });
    let bytes = canonical_json(&manifest);
    let desc = Descriptor {
        media_type: MEDIA_TYPE_MANIFEST.to_string(),
        digest: crate::image::sha256_digest(&bytes),
        size: bytes.len() as u64,
    };
    let headers = put_manifest(&session, &desc.digest, &desc, &bytes)?;
    if headers.contains_key("oci-subject") {
        return Ok(ReferrerReport {
            digest: desc.digest,
            fallback_tag: None,
        });
    }

    // 3. No referrers API: list the artifact in the subject's fallback tag.
    let tag = subject.digest.replacen(':', "-", 1);
    let mut entries = fallback_entries(&session, &tag)?;
    entries.retain(|e| e.get("digest").and_then(Value::as_str) != Some(&desc.digest));
    let mut entry = desc.to_value();
    if let Value::Object(m) = &mut entry {
        m.insert("artifactType".into(), artifact_type.into());
    }
    entries.push(entry);
    let mut index = Map::new();
    index.insert("schemaVersion".into(), 2.into());
    index.insert("mediaType".into(), MEDIA_TYPE_INDEX.into());
    index.insert("manifests".into(), Value::Array(entries));
    let index_bytes = canonical_json(&Value::Object(index));
    let index_desc = Descriptor {
        media_type: MEDIA_TYPE_INDEX.to_string(),
        digest: crate::image::sha256_digest(&index_bytes),
        size: index_bytes.len() as u64,
    };
    put_manifest(&session, &tag, &index_desc, &index_bytes)?;
    Ok(ReferrerReport {
        digest: desc.digest,
        fallback_tag: Some(tag),
    })
}

/// The `manifests` of the fallback index under `tag`, or none when the tag does not exist.
fn fallback_entries(session: &Session, tag: &str) -> Result<Vec<Value>, RegistryError> {
    let url = session.url(&format!("manifests/{tag}"));
    let what = format!("the referrers tag `{tag}`");
    let resp = session.send(&what, &url, |c| {
        c.get(&url).header(ACCEPT, MEDIA_TYPE_INDEX)
    })?;
    match resp.status() {
        StatusCode::NOT_FOUND => Ok(Vec::new()),
        s if s.is_success() => {
            let v: Value = resp
                .json()
                .map_err(|e| session.malformed(&what, &e.to_string()))?;
            Ok(v.get("manifests")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default())
        }
        _ => Err(session.status_error(&what, resp)),
    }
}

/// Uploads small in-memory content as a blob (skipped when present) through a temporary file,
/// the way every other blob goes up.
fn upload_bytes(
    session: &Session,
    media_type: &str,
    bytes: &[u8],
) -> Result<Descriptor, RegistryError> {
    let desc = Descriptor {
        media_type: media_type.to_string(),
        digest: crate::image::sha256_digest(bytes),
        size: bytes.len() as u64,
    };
    let io_err = |source| RegistryError::Io {
        path: "a temporary file".to_string(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new().map_err(io_err)?;
    tmp.write_all(bytes).map_err(io_err)?;
    tmp.flush().map_err(io_err)?;
    let quiet = crate::progress::NoProgress;
    push_blob(
        session,
        tmp.path(),
        &desc,
        &[],
        &PushOptions::default(),
        &quiet,
    )?;
    Ok(desc)
}
