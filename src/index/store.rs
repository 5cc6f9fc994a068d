//! The on-disk cache of index answers: project pages with their HTTP validators, and metadata
//! files keyed by the sha256 of the wheel they describe (immutable, so never revalidated).
//!
//! A cache entry that cannot be read is treated as missing: the cache only saves time.

use std::path::PathBuf;

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::simple::ProjectPage;

/// A cached project page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedPage {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Seconds since the epoch until which the page may be used without asking the index.
    pub fresh_until: i64,
    pub page: ProjectPage,
}

impl CachedPage {
    /// An entry for a page just fetched.
    pub fn new(page: ProjectPage, headers: &HeaderMap) -> CachedPage {
        let mut entry = CachedPage {
            etag: None,
            last_modified: None,
            fresh_until: 0,
            page,
        };
        entry.refresh(headers);
        entry
    }

    /// Takes the validators and freshness of a new answer.
    pub fn refresh(&mut self, headers: &HeaderMap) {
        let get = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if let Some(etag) = get("etag") {
            self.etag = Some(etag);
        }
        if let Some(lm) = get("last-modified") {
            self.last_modified = Some(lm);
        }
        // Freshness follows the index's own `Cache-Control: max-age` (PyPI sends 600 s); an
        // answer without it is asked again every time.
        let max_age = get("cache-control").and_then(|cc| {
            cc.split(',').find_map(|d| {
                let d = d.trim();
                if d == "no-cache" || d == "no-store" {
                    return Some(0);
                }
                d.strip_prefix("max-age=")
                    .and_then(|v| v.parse::<i64>().ok())
            })
        });
        self.fresh_until = now() + max_age.unwrap_or(0);
    }

    /// Whether the entry may be used without asking the index.
    pub fn is_fresh(&self) -> bool {
        now() < self.fresh_until
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The cache folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: PathBuf) -> Store {
        Store { root }
    }

    fn page_path(&self, url: &str) -> PathBuf {
        let key = hex::encode(Sha256::digest(url.as_bytes()));
        self.root.join("pages").join(format!("{key}.json"))
    }

    fn metadata_path(&self, sha256: &str) -> PathBuf {
        let sha = sha256.to_ascii_lowercase();
        self.root.join("metadata").join(format!("{sha}.METADATA"))
    }

    /// A cached page, fresh or not.
    pub fn page(&self, url: &str) -> Option<CachedPage> {
        let bytes = std::fs::read(self.page_path(url)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Stores a page; failures are only logged.
    pub fn put_page(&self, url: &str, entry: &CachedPage) {
        let path = self.page_path(url);
        match serde_json::to_vec(entry) {
            Ok(bytes) => {
                if let Err(e) = crate::fsutil::write_atomic(&path, &bytes) {
                    tracing::debug!("cannot cache {}: {e}", path.display());
                }
            }
            Err(e) => tracing::debug!("cannot encode page of {url}: {e}"),
        }
    }

    /// Cached metadata of the wheel with this sha256.
    pub fn metadata(&self, sha256: &str) -> Option<String> {
        std::fs::read_to_string(self.metadata_path(sha256)).ok()
    }

    /// Stores metadata; failures are only logged.
    pub fn put_metadata(&self, sha256: &str, text: &str) {
        let path = self.metadata_path(sha256);
        if let Err(e) = crate::fsutil::write_atomic(&path, text.as_bytes()) {
            tracing::debug!("cannot cache {}: {e}", path.display());
        }
    }
}
