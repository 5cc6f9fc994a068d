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
