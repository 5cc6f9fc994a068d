//! Dependency resolution: PubGrub over the package indexes, for every platform and target.
//!
//! Not yet written: `resolve` refuses every non-empty input.

use std::collections::{BTreeMap, BTreeSet};

use crate::lock::PackageLock;
use crate::platform::Platform;
use crate::spec::Libc;

/// Errors from resolution.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("Resolution is not implemented yet")]
    NotImplemented,
}

/// The interpreter and C library of one platform: what markers and wheel tags are judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformEnv {
    pub platform: Platform,
    /// Full Python version, `3.11.2`.
    pub python_version: String,
    pub libc: Libc,
}

/// Which locked versions may change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Upgrade {
    /// Keep every pin from the previous lock that still satisfies the spec.
    #[default]
    None,
    /// Ignore the previous lock.
    All,
    /// Ignore the previous pins of these normalized names.
    Packages(BTreeSet<String>),
}

/// Everything resolution needs.
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    /// Index URLs in order; a name is served by the first index that has it.
    pub indexes: Vec<String>,
    /// Files uploaded after this are ignored.
    pub exclude_newer: Option<jiff::Timestamp>,
    pub platforms: Vec<PlatformEnv>,
    /// Target name → its requirements (the target's whole chain, folded).
    pub targets: BTreeMap<String, Vec<pep508_rs::Requirement>>,
    /// Normalized name → version from the previous lock.
    pub preferences: BTreeMap<String, String>,
    pub upgrade: Upgrade,
}

/// Resolves every target for every platform into locked packages.
pub fn resolve(request: &ResolveRequest) -> Result<Vec<PackageLock>, ResolveError> {
    if request.targets.values().all(Vec::is_empty) {
        return Ok(Vec::new());
    }
    Err(ResolveError::NotImplemented)
}
