//! The base image: where it comes from, its per-platform manifests, and what it holds that the
//! lock needs to know (Python interpreter and version, C library).

mod detect;
mod source;

use std::path::{Path, PathBuf};

pub use detect::{Detected, detect};
pub use source::{ImageSource, Resolved, ResolvedPlatform};

use crate::cache::{Cache, CacheError};
use crate::lock::{BaseLock, BasePlatform, BlobLock};
use crate::platform::Platform;
use crate::registry::{RegistryError, RegistryOptions};
use crate::spec::Libc;

/// Errors met while resolving or reading a base image.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("Failed to read base image layout `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Base image `{reference}`: {message}")]
    Invalid { reference: String, message: String },
    #[error(
        "Base image `{reference}` has no `{platform}` image (it has: {available})\nhint: remove \
         `{platform}` from `image.platforms` or choose a base built for it"
    )]
    MissingPlatform {
        reference: String,
        platform: Platform,
        available: String,
    },
    #[error(
        "Could not detect {what} in base image `{reference}` for `{platform}`\nhint: set \
         `{key}` under `[python]` in the spec"
    )]
    Undetected {
        reference: String,
        platform: Platform,
        what: &'static str,
        key: &'static str,
    },
    // Boxed: registry errors carry several names, and every `Result` of this module would
    // otherwise be as large as the largest of them.
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl From<RegistryError> for BaseError {
    fn from(e: RegistryError) -> Self {
        BaseError::Registry(Box::new(e))
    }
}

/// A base reference as written in the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseRef {
    /// No base: an empty root file system.
    Scratch,
    /// A local OCI image layout, with an optional tag (`org.opencontainers.image.ref.name`).
    Layout { path: PathBuf, tag: Option<String> },
    /// A registry reference, `host/repo:tag` or `host/repo@sha256:…`.
    Registry(String),
}

impl BaseRef {
    /// Parses a reference; layout paths are taken relative to `dir`.
    pub fn parse(reference: &str, dir: &Path) -> BaseRef {
        let reference = reference.trim();
        if reference == "scratch" {
            return BaseRef::Scratch;
        }
        if let Some(rest) = reference.strip_prefix("oci:") {
            // The tag follows the last `:` unless that part looks like a path.
            let (path, tag) = match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') && !p.is_empty() => (p, Some(t.to_string())),
                _ => (rest, None),
            };
            let path = Path::new(path);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                dir.join(path)
            };
            return BaseRef::Layout { path, tag };
        }
        BaseRef::Registry(reference.to_string())
    }

    /// The source to read manifests and blobs from, when there is one.
    pub fn source(&self, opts: &RegistryOptions) -> Option<ImageSource> {
        match self {
            BaseRef::Scratch => None,
            BaseRef::Layout { path, tag } => Some(ImageSource::Layout {
                path: path.clone(),
                tag: tag.clone(),
            }),
            BaseRef::Registry(r) => Some(ImageSource::Registry {
                reference: r.clone(),
                opts: opts.clone(),
            }),
        }
    }
}

/// Values from the spec that override or stand in for detection.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub python_version: Option<String>,
    pub interpreter: Option<String>,
    pub libc: Option<Libc>,
}

/// Resolves the base for each platform and detects its facts, giving the lock's `[base]`.
pub fn lock_base(
    reference: &str,
    base: &BaseRef,
    platforms: &[Platform],
    overrides: &Overrides,
    cache: &Cache,
    opts: &RegistryOptions,
) -> Result<BaseLock, BaseError> {
    let Some(source) = base.source(opts) else {
        return lock_scratch(reference, platforms, overrides);
    };

    let resolved = source.resolve(reference, platforms, cache)?;
    let mut out = Vec::new();
    for rp in &resolved.platforms {
        let layer_paths = rp
            .layers
            .iter()
            .map(|l| source.blob(&l.digest, cache))
            .collect::<Result<Vec<_>, _>>()?;
        let detected =
            detect(&layer_paths, &rp.layers, rp.platform, &rp.config_env).map_err(|message| {
                BaseError::Invalid {
                    reference: reference.to_string(),
                    message,
                }
            })?;
        out.push(facts(reference, rp.platform, &detected, overrides, rp)?);
    }
    Ok(BaseLock {
        reference: reference.to_string(),
        index_digest: resolved.index_digest,
        platforms: out,
    })
}

fn facts(
    reference: &str,
    platform: Platform,
    detected: &Detected,
    overrides: &Overrides,
    rp: &ResolvedPlatform,
) -> Result<BasePlatform, BaseError> {
    let undetected = |what, key| BaseError::Undetected {
        reference: reference.to_string(),
        platform,
        what,
        key,
    };
    let python_version = overrides
        .python_version
        .clone()
        .or_else(|| detected.python_version.clone())
        .ok_or_else(|| undetected("a Python interpreter", "version"))?;
    let interpreter = overrides
        .interpreter
        .clone()
        .or_else(|| detected.interpreter.clone())
        .ok_or_else(|| undetected("a Python interpreter", "interpreter"))?;
    let libc = overrides
        .libc
        .or(detected.libc)
        .ok_or_else(|| undetected("the C library", "libc"))?;
    Ok(BasePlatform {
        platform,
        manifest_digest: Some(rp.manifest_digest.clone()),
        config_digest: Some(rp.config_digest.clone()),
        layers: rp.layers.clone(),
        python_version: full_version(&python_version),
        interpreter,
        libc: libc.to_string(),
    })
}

fn lock_scratch(
    reference: &str,
    platforms: &[Platform],
    overrides: &Overrides,
) -> Result<BaseLock, BaseError> {
    let missing = |key: &str| BaseError::Invalid {
        reference: reference.to_string(),
        message: format!(
            "a `scratch` base has no Python to detect\nhint: set `{key}` under `[python]` in \
             the spec"
        ),
    };
    let version = overrides
        .python_version
        .clone()
        .ok_or_else(|| missing("version"))?;
    let interpreter = overrides
        .interpreter
        .clone()
        .ok_or_else(|| missing("interpreter"))?;
    let libc = overrides.libc.ok_or_else(|| missing("libc"))?;
    Ok(BaseLock {
        reference: reference.to_string(),
        index_digest: None,
        platforms: platforms
            .iter()
            .map(|&platform| BasePlatform {
                platform,
                manifest_digest: None,
                config_digest: None,
                layers: Vec::<BlobLock>::new(),
                python_version: full_version(&version),
                interpreter: interpreter.clone(),
                libc: libc.to_string(),
            })
            .collect(),
    })
}

/// `3.11` → `3.11.0`, so markers on `python_full_version` have something to compare.
fn full_version(v: &str) -> String {
    if v.split('.').count() == 2 {
        format!("{v}.0")
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests;
