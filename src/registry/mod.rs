//! Pulling from and pushing to OCI distribution registries.
//!
//! Not yet written: every function below returns `RegistryError::NotImplemented`.

use std::path::PathBuf;

use crate::cache::Cache;

/// Errors from registry operations.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Registry access is not implemented yet (`{0}`)")]
    NotImplemented(String),
}

/// Options for talking to registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Hosts that may be reached over plain HTTP (loopback always may).
    pub insecure: Vec<String>,
}

/// A manifest or index as fetched: its digest, media type and exact bytes.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// Fetches what `reference` (tag or digest) points at: an image index or a manifest.
pub fn fetch_root(reference: &str, _opts: &RegistryOptions) -> Result<Fetched, RegistryError> {
    Err(RegistryError::NotImplemented(reference.to_string()))
}

/// Fetches a manifest of the repository of `reference` by digest, verifying the digest.
pub fn fetch_manifest(
    reference: &str,
    digest: &str,
    _opts: &RegistryOptions,
) -> Result<Fetched, RegistryError> {
    Err(RegistryError::NotImplemented(format!(
        "{reference}@{digest}"
    )))
}

/// Downloads a blob of the repository of `reference` into the cache (verified) unless there.
pub fn pull_blob(
    reference: &str,
    digest: &str,
    cache: &Cache,
    _opts: &RegistryOptions,
) -> Result<PathBuf, RegistryError> {
    let _ = cache;
    Err(RegistryError::NotImplemented(format!(
        "{reference}@{digest}"
    )))
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushReport {
    pub reference: String,
    pub digest: String,
    pub uploaded_blobs: usize,
    pub uploaded_bytes: u64,
    pub skipped_blobs: usize,
    pub mounted_blobs: usize,
}

/// Pushes the image `tag` names in the OCI layout at `layout_dir` to `reference`.
pub fn push_layout(
    layout_dir: &std::path::Path,
    tag: Option<&str>,
    reference: &str,
    _opts: &RegistryOptions,
) -> Result<PushReport, RegistryError> {
    let _ = (layout_dir, tag);
    Err(RegistryError::NotImplemented(reference.to_string()))
}
