//! Getting every artifact a build needs into the cache: wheels by URL, base blobs from the base's
//! registry or layout, VS Code extensions. Every byte is checked against the lock's sha256 on
//! the way in (see `cache`), and nothing is fetched twice.

use std::path::PathBuf;

use rayon::prelude::*;

use super::BuildError;
use crate::cache::{Cache, CacheError};
use crate::lock::Lock;
use crate::platform::Platform;
use crate::progress::{Reporter, ReportingReader, Stage};

/// One artifact of the lock: what it is (for messages), where it comes from, its sha256.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Artifact {
    pub what: String,
    pub url: String,
    pub sha256: String,
    /// Size from the lock, when it records one (for progress only).
    pub size: Option<u64>,
}

/// Every wheel the given targets need on the given platforms, without duplicates.
pub fn wheel_artifacts(lock: &Lock, targets: &[String], platforms: &[Platform]) -> Vec<Artifact> {
    let mut out: Vec<Artifact> = Vec::new();
    for p in &lock.packages {
        if !p.targets.iter().any(|t| targets.contains(t)) {
            continue;
        }
        for w in &p.wheels {
            if w.platforms.iter().any(|pl| platforms.contains(pl)) {
                out.push(Artifact {
                    what: w.file.clone(),
                    url: w.url.clone(),
                    sha256: w.sha256.clone(),
                    size: w.size,
                });
            }
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.sha256 == b.sha256);
    out
}

/// Fetches artifacts into the cache, several at once; returns their cache paths in order.
pub fn fetch_all(
    cache: &Cache,
    artifacts: &[Artifact],
    offline: bool,
    reporter: &dyn Reporter,
) -> Result<Vec<PathBuf>, BuildError> {
    let client = if offline {
        None
    } else {
        Some(crate::http::client().map_err(BuildError::Http)?)
    };
    // Downloads are network-bound, so more of them run at once than there are cores.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(8)
        .build()
        .map_err(|e| BuildError::Internal(format!("cannot start download threads: {e}")))?;
    pool.install(|| {
        artifacts
            .par_iter()
            .map(|a| fetch_one(cache, client.as_ref(), a, reporter))
            .collect()
    })
}

/// Fetches one artifact into the cache unless a verified copy is there already.
pub fn fetch_one(
    cache: &Cache,
    client: Option<&reqwest::blocking::Client>,
    artifact: &Artifact,
    reporter: &dyn Reporter,
) -> Result<PathBuf, BuildError> {
    let sha = artifact.sha256.trim_start_matches("sha256:");
    if let Some(path) = cache.get_verified(sha)? {
        return Ok(path);
    }
    let Some(client) = client else {
        return Err(CacheError::Missing {
            what: artifact.what.clone(),
            sha256: sha.to_string(),
            cache: cache.root().to_path_buf(),
        }
        .into());
    };
    tracing::debug!("downloading {}", artifact.url);
    let resp = crate::http::get_ok(client, &artifact.url).map_err(BuildError::Http)?;
    let total = resp.content_length().or(artifact.size);
    reporter.started(Stage::Download, &artifact.what, total);
    let mut reader = ReportingReader::new(resp, reporter, Stage::Download, &artifact.what);
    let path = cache.insert(&artifact.what, sha, &mut reader)?;
    reporter.finished(Stage::Download, &artifact.what);
    Ok(path)
}
