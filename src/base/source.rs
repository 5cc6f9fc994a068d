//! Reading an image (index, manifests, config, blobs) from a local OCI layout or a registry.

use std::path::PathBuf;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest, Sha256};

use super::BaseError;
use crate::cache::Cache;
use crate::lock::BlobLock;
use crate::platform::Platform;
use crate::registry::{self, Fetched, RegistryOptions};

/// Where an image is read from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    Layout {
        path: PathBuf,
        tag: Option<String>,
    },
    Registry {
        reference: String,
        opts: RegistryOptions,
    },
}

/// An image resolved for the platforms asked for.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Digest the reference resolved to (an index, or a single manifest).
    pub index_digest: Option<String>,
    pub platforms: Vec<ResolvedPlatform>,
}

/// One platform's manifest, config and layers.
#[derive(Debug, Clone)]
pub struct ResolvedPlatform {
    pub platform: Platform,
    pub manifest_digest: String,
    pub config_digest: String,
    pub config_env: Vec<String>,
    pub layers: Vec<BlobLock>,
}

impl ImageSource {
    fn invalid(reference: &str, message: impl Into<String>) -> BaseError {
        BaseError::Invalid {
            reference: reference.to_string(),
            message: message.into(),
        }
    }

    /// The index or manifest the reference points at.
    fn root(&self, reference: &str) -> Result<Fetched, BaseError> {
        match self {
            ImageSource::Registry { reference: r, opts } => Ok(registry::fetch_root(r, opts)?),
            ImageSource::Layout { path, tag } => {
                let index_path = path.join("index.json");
                let bytes = std::fs::read(&index_path).map_err(|source| BaseError::Io {
                    path: index_path.clone(),
                    source,
                })?;
                let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| {
                    Self::invalid(
                        reference,
                        format!("`{}` is not an OCI index: {e}", index_path.display()),
                    )
                })?;
                let wanted = |d: &&oci_spec::image::Descriptor| match tag {
                    None => true,
                    Some(t) => d
                        .annotations()
                        .as_ref()
                        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                        .is_some_and(|n| n == t),
                };
                let matches: Vec<_> = index.manifests().iter().filter(wanted).collect();
                let desc = match (matches.as_slice(), tag) {
                    ([one], _) => *one,
                    ([], Some(t)) => {
                        return Err(Self::invalid(
                            reference,
                            format!("the layout has no tag `{t}`"),
                        ));
                    }
                    ([], None) => return Err(Self::invalid(reference, "the layout is empty")),
                    (_, _) => {
                        return Err(Self::invalid(
                            reference,
                            "the layout holds several images\nhint: name one as `oci:PATH:TAG`",
                        ));
                    }
                };
                let digest = desc.digest().to_string();
                let bytes = self.read_layout_blob(reference, &digest)?;
                Ok(Fetched {
                    digest,
                    media_type: desc.media_type().to_string(),
                    bytes,
                })
            }
        }
    }

    fn read_layout_blob(&self, reference: &str, digest: &str) -> Result<Vec<u8>, BaseError> {
        let ImageSource::Layout { path, .. } = self else {
            return Err(Self::invalid(reference, "not a layout"));
        };
        let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
            Self::invalid(
                reference,
                format!("unsupported digest `{digest}` (only sha256)"),
            )
        })?;
        let blob = path.join("blobs").join("sha256").join(hex);
        let bytes = std::fs::read(&blob).map_err(|source| BaseError::Io {
            path: blob.clone(),
            source,
        })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != hex {
            return Err(Self::invalid(
                reference,
                format!("blob `{digest}` in the layout hashes to `sha256:{actual}`"),
            ));
        }
        Ok(bytes)
    }

    fn manifest(&self, reference: &str, digest: &str) -> Result<Vec<u8>, BaseError> {
        match self {
            ImageSource::Registry { reference: r, opts } => {
                Ok(registry::fetch_manifest(r, digest, opts)?.bytes)
            }
            ImageSource::Layout { .. } => self.read_layout_blob(reference, digest),
        }
    }

    /// A blob, verified and stored in the cache; returns its cache path.
    pub fn blob(&self, digest: &str, cache: &Cache) -> Result<PathBuf, BaseError> {
        let hex = digest.trim_start_matches("sha256:");
        if let Some(p) = cache.get(hex) {
            return Ok(p);
        }
        match self {
            ImageSource::Registry { reference, opts } => {
                Ok(registry::pull_blob(reference, digest, cache, opts)?)
            }
            ImageSource::Layout { path, .. } => {
                let blob = path.join("blobs").join("sha256").join(hex);
                Ok(cache.insert_file(&blob, hex)?)
            }
        }
    }

    /// Resolves the reference to one manifest per platform.
    pub fn resolve(
        &self,
        reference: &str,
        platforms: &[Platform],
        cache: &Cache,
    ) -> Result<Resolved, BaseError> {
        let root = self.root(reference)?;
        let value: serde_json::Value = serde_json::from_slice(&root.bytes)
            .map_err(|e| Self::invalid(reference, format!("manifest is not JSON: {e}")))?;

        let mut out = Vec::new();
        if value.get("manifests").is_some() {
            let index: ImageIndex = serde_json::from_value(value)
                .map_err(|e| Self::invalid(reference, format!("invalid image index: {e}")))?;
            let mut available = Vec::new();
            for &platform in platforms {
                let found = index.manifests().iter().find(|d| {
                    d.platform().as_ref().is_some_and(|p| {
                        Platform::from_oci(&p.os().to_string(), &p.architecture().to_string())
                            == Some(platform)
                    })
                });
                let Some(desc) = found else {
                    if available.is_empty() {
                        available = index
                            .manifests()
                            .iter()
                            .filter_map(|d| d.platform().as_ref())
                            .map(|p| format!("{}/{}", p.os(), p.architecture()))
                            .collect();
                    }
                    return Err(BaseError::MissingPlatform {
                        reference: reference.to_string(),
                        platform,
                        available: available.join(", "),
                    });
                };
                let digest = desc.digest().to_string();
                let bytes = self.manifest(reference, &digest)?;
                out.push(self.platform_image(reference, platform, digest, &bytes, cache)?);
            }
        } else {
            // A single manifest: it must be for the one platform asked for.
            for &platform in platforms {
                let digest = root.digest.clone();
                out.push(self.platform_image(reference, platform, digest, &root.bytes, cache)?);
            }
        }
        Ok(Resolved {
            index_digest: Some(root.digest),
            platforms: out,
        })
    }

    fn platform_image(
        &self,
        reference: &str,
        platform: Platform,
        manifest_digest: String,
        bytes: &[u8],
        cache: &Cache,
    ) -> Result<ResolvedPlatform, BaseError> {
        let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(|e| {
            Self::invalid(
                reference,
                format!("invalid manifest `{manifest_digest}`: {e}"),
            )
        })?;
        let config_digest = manifest.config().digest().to_string();
        let config_bytes = self.config_bytes(reference, &config_digest, cache)?;
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes).map_err(|e| {
            Self::invalid(reference, format!("invalid config `{config_digest}`: {e}"))
        })?;

        let actual =
            Platform::from_oci(&config.os().to_string(), &config.architecture().to_string());
        if actual != Some(platform) {
            return Err(BaseError::MissingPlatform {
                reference: reference.to_string(),
                platform,
                available: format!("{}/{}", config.os(), config.architecture()),
            });
        }

        let layers = manifest
            .layers()
            .iter()
            .map(|l| BlobLock {
                digest: l.digest().to_string(),
                size: l.size(),
                media_type: l.media_type().to_string(),
            })
            .collect();
        let config_env = config
            .config()
            .as_ref()
            .and_then(|c| c.env().clone())
            .unwrap_or_default();
        Ok(ResolvedPlatform {
            platform,
            manifest_digest,
            config_digest,
            config_env,
            layers,
        })
    }

    /// The config blob's bytes (through the cache for registries).
    pub fn config_bytes(
        &self,
        reference: &str,
        digest: &str,
        cache: &Cache,
    ) -> Result<Vec<u8>, BaseError> {
        match self {
            ImageSource::Layout { .. } => self.read_layout_blob(reference, digest),
            ImageSource::Registry { .. } => {
                let path = self.blob(digest, cache)?;
                std::fs::read(&path).map_err(|source| BaseError::Io { path, source })
            }
        }
    }
}
