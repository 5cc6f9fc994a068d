//! The lockfile, `envbuild.lock`: every byte a build will use, pinned by hash.
//!
//! The lock is TOML, written with sorted tables and arrays so that re-locking the same inputs
//! gives the same bytes and one changed package gives a small diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::platform::Platform;

/// Version of the lock format. It also pins the layer format: a build from a lock of version N
/// must give the same bytes with every envbuild that reads version N.
pub const LOCK_VERSION: u32 = 1;

/// Errors met while reading or writing a lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("Failed to read lock `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to write lock `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Invalid lock `{path}`: {message}\nhint: run `envbuild lock` to write it again")]
    Parse { path: PathBuf, message: String },
    #[error(
        "Lock `{path}` has format version {found}, this envbuild reads version {LOCK_VERSION}\n\
         hint: use the envbuild release that wrote it, or run `envbuild lock` to rewrite it"
    )]
    Version { path: PathBuf, found: u32 },
}

/// The whole lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lock {
    pub version: u32,
    /// `sha256:` of the spec's canonical form (see `spec::spec_checksum`).
    pub spec_checksum: String,
    /// Seconds since the epoch used for every file time and the image `created` field.
    pub source_date_epoch: i64,
    pub settings: Settings,
    pub base: BaseLock,
    /// Target name → what it holds, in build order of its chain.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetLock>,
    #[serde(default, rename = "package", skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageLock>,
    #[serde(default, rename = "extension", skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<ExtensionLock>,
}

/// Settings the resolution ran with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub indexes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_newer: Option<String>,
    pub platforms: Vec<Platform>,
    pub venv: String,
}

/// The base image, as resolved at lock time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BaseLock {
    /// The reference as written in the spec (`scratch`, `oci:PATH[:TAG]`, `registry/repo:tag`).
    pub reference: String,
    /// Digest of the image index (or of the single manifest when the base has no index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
    #[serde(default, rename = "platform")]
    pub platforms: Vec<BasePlatform>,
}

/// One platform of the base image and what was detected in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BasePlatform {
    pub platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    #[serde(default, rename = "layer")]
    pub layers: Vec<BlobLock>,
    /// Full Python version, e.g. `3.11.2`.
    pub python_version: String,
    /// Interpreter path in the image, e.g. `/usr/bin/python3.11`.
    pub interpreter: String,
    /// `glibc 2.36` or `musl 1.2`.
    pub libc: String,
}

/// A blob of the base image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BlobLock {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// What a target holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetLock {
    /// Ancestor targets first, then this one; layers are laid in this order.
    #[serde(default)]
    pub chain: Vec<String>,
    /// Normalized names of the requirements the spec names directly (for `REQUESTED`).
    #[serde(default)]
    pub direct: Vec<String>,
}

/// One resolved Python package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageLock {
    /// Normalized name (PEP 503).
    pub name: String,
    pub version: String,
    /// Index the package came from.
    pub index: String,
    /// Targets that hold the package (sorted).
    pub targets: Vec<String>,
    /// Normalized names of the dependencies it pulls in, across all platforms (sorted).
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// The chosen wheel for each platform that needs the package (sorted by platform).
    #[serde(default, rename = "wheel")]
    pub wheels: Vec<WheelLock>,
}

/// The wheel chosen for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WheelLock {
    pub platforms: Vec<Platform>,
    pub file: String,
    pub url: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// One VS Code extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExtensionLock {
    /// `publisher.name`, lower case.
    pub id: String,
    pub version: String,
    pub targets: Vec<String>,
    #[serde(default, rename = "artifact")]
    pub artifacts: Vec<ExtensionArtifact>,
}

/// The VSIX chosen for one or more platforms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExtensionArtifact {
    pub platforms: Vec<Platform>,
    /// VS Code target platform (`linux-x64`, …) or `universal`.
    pub target_platform: String,
    /// Download URL, or `file:` path relative to the spec for local files.
    pub url: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl Lock {
    /// Reads a lock file.
    pub fn load(path: &Path) -> Result<Lock, LockError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Lock::parse(&text, path)
    }

    /// Parses lock text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Lock, LockError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: Option<u32>,
        }
        // Check the version first, so an old or new lock says so instead of listing odd keys.
        if let Ok(VersionOnly {
            version: Some(found),
        }) = toml::from_str::<VersionOnly>(text)
            && found != LOCK_VERSION
        {
            return Err(LockError::Version {
                path: path.to_path_buf(),
                found,
            });
        }
        toml::from_str(text).map_err(|err| LockError::Parse {
            path: path.to_path_buf(),
            message: err.to_string().trim_end().to_string(),
        })
    }

    /// Puts every list in its canonical order so the file is stable.
    pub fn normalize(&mut self) {
        self.settings.platforms.sort();
        self.base.platforms.sort_by_key(|p| p.platform);
        for target in self.targets.values_mut() {
            target.direct.sort();
            target.direct.dedup();
        }
        self.packages
            .sort_by(|a, b| a.name.cmp(&b.name).then(a.version.cmp(&b.version)));
        for p in &mut self.packages {
            p.targets.sort();
            p.targets.dedup();
            p.dependencies.sort();
            p.dependencies.dedup();
            for w in &mut p.wheels {
                w.platforms.sort();
            }
            p.wheels
                .sort_by(|a, b| a.platforms.cmp(&b.platforms).then(a.file.cmp(&b.file)));
        }
        self.extensions.sort_by(|a, b| a.id.cmp(&b.id));
        for e in &mut self.extensions {
            e.targets.sort();
            for a in &mut e.artifacts {
                a.platforms.sort();
            }
            e.artifacts.sort_by(|a, b| a.platforms.cmp(&b.platforms));
        }
    }

    /// The lock as TOML text, normalized.
    pub fn to_toml(&self) -> String {
        let mut lock = self.clone();
        lock.normalize();
        let body = toml::to_string(&lock).unwrap_or_default();
        format!("# This file is written by `envbuild lock`. Do not edit it by hand.\n{body}")
    }

    /// Writes the lock atomically: a reader never sees half a lock.
    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        crate::fsutil::write_atomic(path, self.to_toml().as_bytes()).map_err(|source| {
            LockError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Base facts for one platform.
    pub fn base_for(&self, platform: Platform) -> Option<&BasePlatform> {
        self.base.platforms.iter().find(|p| p.platform == platform)
    }

    /// Packages in a target, in name order.
    pub fn packages_in<'a>(&'a self, target: &'a str) -> impl Iterator<Item = &'a PackageLock> {
        self.packages
            .iter()
            .filter(move |p| p.targets.iter().any(|t| t == target))
    }

    /// Extensions in a target, in id order.
    pub fn extensions_in<'a>(&'a self, target: &'a str) -> impl Iterator<Item = &'a ExtensionLock> {
        self.extensions
            .iter()
            .filter(move |e| e.targets.iter().any(|t| t == target))
    }
}

impl PackageLock {
    /// The wheel for a platform, if this package is installed there.
    pub fn wheel_for(&self, platform: Platform) -> Option<&WheelLock> {
        self.wheels.iter().find(|w| w.platforms.contains(&platform))
    }
}

impl ExtensionLock {
    /// The VSIX for a platform.
    pub fn artifact_for(&self, platform: Platform) -> Option<&ExtensionArtifact> {
        self.artifacts
            .iter()
            .find(|a| a.platforms.contains(&platform))
    }
}

#[cfg(test)]
mod tests;
