//! The content-addressed download cache.
//!
//! Every artifact (wheel, VSIX, base blob) is stored once under its sha256. An entry is written
//! to a temporary file in the same folder, hashed while it streams, and renamed into place only
//! when the hash matches, so an interrupted or corrupt download never becomes an entry and two
//! builds filling the cache at once cannot see each other's partial files.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Errors met while storing or reading cache entries.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("Cache I/O failed at `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "Hash mismatch for `{what}`: the lock says sha256 `{expected}`, the bytes are `{actual}`\n\
         hint: the file changed upstream or in transit; if the change is expected, run \
         `envbuild lock --upgrade-package NAME` with the name of its package"
    )]
    HashMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("Failed to download `{what}`")]
    Download {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "`{what}` (sha256 `{sha256}`) is not in the cache `{cache}` and the build is offline\n\
         hint: run `envbuild fetch` while online, or pass `--cache` pointing at a filled cache"
    )]
    Missing {
        what: String,
        sha256: String,
        cache: PathBuf,
    },
}

/// A cache rooted at a folder.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// A cache at `root`, or at `$ENVBUILD_CACHE_DIR`, or the XDG cache folder.
    pub fn new(root: Option<PathBuf>) -> Cache {
        let root = root
            .or_else(|| std::env::var_os("ENVBUILD_CACHE_DIR").map(PathBuf::from))
            .or_else(|| dirs::cache_dir().map(|d| d.join("envbuild")))
            .unwrap_or_else(|| std::env::temp_dir().join("envbuild-cache"));
        Cache { root }
    }

    /// The cache folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this hex sha256 lives (whether or not it is there).
    pub fn path_for(&self, sha256_hex: &str) -> PathBuf {
        let hex = sha256_hex.trim_start_matches("sha256:");
        let prefix = hex.get(..2).unwrap_or("xx");
        self.root
            .join("blobs")
            .join("sha256")
            .join(prefix)
            .join(hex)
    }

    /// The path of an entry when present.
    pub fn get(&self, sha256_hex: &str) -> Option<PathBuf> {
        let p = self.path_for(sha256_hex);
        p.is_file().then_some(p)
    }

    /// Streams `reader` into the cache, checking it hashes to `sha256_hex`.
    pub fn insert(
        &self,
        what: &str,
        sha256_hex: &str,
        reader: &mut dyn Read,
    ) -> Result<PathBuf, CacheError> {
        let expected = sha256_hex
            .trim_start_matches("sha256:")
            .to_ascii_lowercase();
        let dest = self.path_for(&expected);
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&dir)
            .map_err(io_err(&dir))?;

        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(CacheError::Download {
                        what: what.to_string(),
                        source: e.into(),
                    });
                }
            };
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io_err(tmp.path()))?;
        }
        let actual = hex::encode(hasher.finalize());
        if actual != expected {
            return Err(CacheError::HashMismatch {
                what: what.to_string(),
                expected,
                actual,
            });
        }

        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        crate::fsutil::set_mode(tmp.path(), 0o644).map_err(io_err(&dest))?;
        // A concurrent build may have renamed the same content in first; either copy is right.
        tmp.persist(&dest).map_err(|e| CacheError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(dest)
    }

    /// Returns the entry, verifying its hash again; a corrupt entry is removed and `None`.
    pub fn get_verified(&self, sha256_hex: &str) -> Result<Option<PathBuf>, CacheError> {
        let Some(path) = self.get(sha256_hex) else {
            return Ok(None);
        };
        let actual = sha256_file(&path).map_err(|source| CacheError::Io {
            path: path.clone(),
            source,
        })?;
        if actual == sha256_hex.trim_start_matches("sha256:") {
            Ok(Some(path))
        } else {
            tracing::warn!("removing corrupt cache entry {}", path.display());
            let _ = std::fs::remove_file(&path);
            Ok(None)
        }
    }

    /// Copies a local file into the cache after checking its hash.
    pub fn insert_file(&self, path: &Path, sha256_hex: &str) -> Result<PathBuf, CacheError> {
        let mut f = File::open(path).map_err(|source| CacheError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.insert(&path.display().to_string(), sha256_hex, &mut f)
    }
}

/// The hex sha256 of a file, read in chunks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut f, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_checks_hash_and_leaves_nothing_on_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(Some(dir.path().to_path_buf()));
        let data = b"hello";
        let good = hex::encode(Sha256::digest(data));
        let p = cache.insert("hello.txt", &good, &mut &data[..]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data);
        assert_eq!(cache.get_verified(&good).unwrap(), Some(p));

        let bad = "0".repeat(64);
        let err = cache
            .insert("other.txt", &bad, &mut &b"other"[..])
            .unwrap_err();
        assert!(
            err.to_string().contains("Hash mismatch for `other.txt`"),
            "{err}"
        );
        assert!(cache.get(&bad).is_none());
        let leftovers: Vec<_> = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".partial-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn corrupt_entry_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(Some(dir.path().to_path_buf()));
        let good = hex::encode(Sha256::digest(b"x"));
        let p = cache.insert("x", &good, &mut &b"x"[..]).unwrap();
        std::fs::write(&p, b"y").unwrap();
        assert_eq!(cache.get_verified(&good).unwrap(), None);
        assert!(!p.exists());
    }
}
