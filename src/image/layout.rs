//! The OCI image layout directory (OCI image spec, `image-layout.md`): an `oci-layout` file,
//! `index.json`, and content-addressed blobs under `blobs/sha256/`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    ANNOTATION_REF_NAME, Descriptor, ImageError, MEDIA_TYPE_INDEX, canonical_json, digest_hex,
    io_err, sha256_digest,
};
use crate::fsutil::write_atomic;

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Creates the layout (or reuses one already there): `oci-layout`, `blobs/sha256/` and an
    /// empty `index.json` when there is none.
    pub fn create(dir: &Path) -> Result<Layout, ImageError> {
        let layout = Layout {
            dir: dir.to_path_buf(),
        };
        let blobs = layout.blobs_dir();
        std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;

        let marker = dir.join("oci-layout");
        if !marker.exists() {
            write_atomic(&marker, OCI_LAYOUT).map_err(io_err(&marker))?;
        }
        let index = dir.join("index.json");
        if !index.exists() {
            layout.write_index(Vec::new())?;
        }
        Ok(layout)
    }

    /// Opens an existing layout, checking its `oci-layout` file.
    pub fn open(dir: &Path) -> Result<Layout, ImageError> {
        let marker = dir.join("oci-layout");
        let not_layout = || ImageError::NotLayout {
            dir: dir.to_path_buf(),
        };
        let bytes = std::fs::read(&marker).map_err(|_| not_layout())?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| not_layout())?;
        if v.get("imageLayoutVersion")
            .and_then(Value::as_str)
            .is_none()
        {
            return Err(not_layout());
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    /// The layout's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `blobs/sha256/`, where blobs are stored by the hex of their digest.
    pub fn blobs_dir(&self) -> PathBuf {
        self.dir.join("blobs").join("sha256")
    }

    /// The path of a blob (which may not exist).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.blobs_dir().join(digest_hex(digest)?))
    }

    /// Stores bytes as a blob (kept if already present) and returns its descriptor.
    pub fn put_bytes(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, ImageError> {
        let desc = Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
        };
        let path = self.blob_path(&desc.digest)?;
        if !path.exists() {
            write_atomic(&path, bytes).map_err(io_err(&path))?;
        }
        Ok(desc)
    }

    /// Copies (or hard-links when on the same file system) a verified file into blobs.
    ///
    /// The caller has checked the digest (the cache does before use); a copy is hashed again
    /// on the way, a hard link only has its size checked, since it shares the checked inode.
    pub fn put_file(
        &self,
        media_type: &str,
        src: &Path,
        digest: &str,
        size: u64,
    ) -> Result<Descriptor, ImageError> {
        let desc = Descriptor {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
        };
        let dest = self.blob_path(digest)?;
        let actual = std::fs::metadata(src).map_err(io_err(src))?.len();
        if actual != size {
            return Err(mismatch(
                src,
                &format!("{size} bytes"),
                &format!("{actual} bytes"),
            ));
        }
        if dest.exists() {
            return Ok(desc);
        }

        match std::fs::hard_link(src, &dest) {
            Ok(()) => return Ok(desc),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(desc),
            Err(e) => tracing::debug!(src = %src.display(), "hard link failed ({e}), copying"),
        }
        self.copy_verified(src, &desc, &dest)?;
        Ok(desc)
    }

    /// Copies `src` to `dest` through a temporary file, hashing it, so a bad copy never lands.
    fn copy_verified(&self, src: &Path, desc: &Descriptor, dest: &Path) -> Result<(), ImageError> {
        let blobs = self.blobs_dir();
        let mut input = File::open(src).map_err(io_err(src))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".blob-")
            .tempfile_in(&blobs)
            .map_err(io_err(&blobs))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = input.read(&mut buf).map_err(io_err(src))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io_err(tmp.path()))?;
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != desc.digest {
            return Err(mismatch(src, &desc.digest, &actual));
        }
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        crate::fsutil::set_mode(tmp.path(), 0o644).map_err(io_err(tmp.path()))?;
        if let Err(e) = tmp.persist_noclobber(dest)
            && e.error.kind() != io::ErrorKind::AlreadyExists
        {
            return Err(io_err(dest)(e.error));
        }
        Ok(())
    }

    /// Names a manifest or index in `index.json` with `org.opencontainers.image.ref.name` =
    /// `tag`, replacing any entry with the same tag. Entries are kept sorted by tag, then
    /// digest, so the file does not depend on the order tags were set in.
    pub fn set_tag(&self, tag: &str, desc: &Descriptor) -> Result<(), ImageError> {
        let mut entries: Vec<Value> = self
            .index_entries()?
            .into_iter()
            .filter(|e| ref_name(e) != Some(tag))
            .collect();

        let mut entry = desc.to_value();
        if let Value::Object(m) = &mut entry {
            let mut a = Map::new();
            a.insert(ANNOTATION_REF_NAME.into(), tag.into());
            m.insert("annotations".into(), Value::Object(a));
        }
        entries.push(entry);

        let key = |e: &Value| {
            let digest = e.get("digest").and_then(Value::as_str).unwrap_or("");
            (ref_name(e).unwrap_or("").to_string(), digest.to_string())
        };
        entries.sort_by_key(key);
        self.write_index(entries)
    }

    /// Reads a blob whole, checking its digest. Meant for manifests and configs, not layers.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::MissingBlob {
                    digest: digest.to_string(),
                    dir: self.dir.clone(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(mismatch(&path, digest, &actual));
        }
        Ok(bytes)
    }

    /// The descriptor `index.json` names with `tag`, or its only entry when `tag` is `None`.
    pub fn resolve_tag(&self, tag: Option<&str>) -> Result<Descriptor, ImageError> {
        let entries = self.index_entries()?;
        let found = match tag {
            Some(t) => entries.iter().find(|e| ref_name(e) == Some(t)),
            None if entries.len() == 1 => entries.first(),
            None if entries.is_empty() => {
                return Err(ImageError::EmptyLayout {
                    dir: self.dir.clone(),
                });
            }
            None => {
                return Err(ImageError::AmbiguousTag {
                    dir: self.dir.clone(),
                    count: entries.len(),
                });
            }
        };
        let Some(found) = found else {
            let present: Vec<&str> = entries.iter().filter_map(ref_name).collect();
            return Err(ImageError::TagNotFound {
                tag: tag.unwrap_or("").to_string(),
                dir: self.dir.clone(),
                present: if present.is_empty() {
                    "none".to_string()
                } else {
                    present.join(", ")
                },
            });
        };
        Descriptor::from_value(found).ok_or_else(|| self.bad_index(None))
    }

    /// The `manifests` array of `index.json` (empty when the file is absent).
    pub(crate) fn index_entries(&self) -> Result<Vec<Value>, ImageError> {
        let path = self.dir.join("index.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| self.bad_index(Some(e)))?;
        match v.get("manifests") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(_) => Err(self.bad_index(None)),
        }
    }

    fn write_index(&self, entries: Vec<Value>) -> Result<(), ImageError> {
        let mut m = Map::new();
        m.insert("schemaVersion".into(), 2.into());
        m.insert("mediaType".into(), MEDIA_TYPE_INDEX.into());
        m.insert("manifests".into(), Value::Array(entries));
        let path = self.dir.join("index.json");
        write_atomic(&path, &canonical_json(&Value::Object(m))).map_err(io_err(&path))
    }

    fn bad_index(&self, source: Option<serde_json::Error>) -> ImageError {
        ImageError::BadDocument {
            path: self.dir.join("index.json"),
            source,
        }
    }
}

/// The `org.opencontainers.image.ref.name` annotation of an index entry.
fn ref_name(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(ANNOTATION_REF_NAME)?.as_str()
}

fn mismatch(path: &Path, expected: &str, actual: &str) -> ImageError {
    ImageError::BlobMismatch {
        path: path.to_path_buf(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}
