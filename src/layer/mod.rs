//! Deterministic layers: a sorted list of entries written as tar, then gzip.
//!
//! Every producer of layer content (wheels, VS Code extensions, Jupyter settings, the venv
//! skeleton) hands a list of [`Entry`] values to [`write_layer`]. The same entries, in any
//! order, on any machine, give the same bytes: see `plan.rs` for the entry rules, `tar.rs` for
//! the headers and `gzip.rs` for the compressed stream.

mod gzip;
mod list;
pub mod memo;
mod plan;
pub(crate) mod tar;
mod write;

pub use list::{ListedEntry, ListedKind, list_layer};
pub use write::write_layer;

use std::path::PathBuf;
use std::sync::Arc;

/// One file-system entry of a layer. Paths are absolute in the image, without the leading `/`
/// (`opt/venv/bin/python`), using `/` separators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    /// Permission bits; the writer normalizes them (0755 or 0644, no setuid).
    pub mode: u32,
    pub kind: EntryKind,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { size: u64, source: Source },
    Symlink { target: String },
}

/// Where a file's bytes come from. Large content is never held in memory: it is streamed from
/// the archive or file when the layer is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Small generated content (RECORD, scripts, settings).
    Bytes(Arc<[u8]>),
    /// A member of a zip archive (wheel, VSIX), by index in its central directory. When
    /// `sha256` is set, the bytes must hash to it or writing fails.
    Zip {
        archive: PathBuf,
        index: usize,
        sha256: Option<[u8; 32]>,
    },
    /// A file on disk.
    File(PathBuf),
}

impl Entry {
    /// A directory entry.
    pub fn dir(path: impl Into<String>) -> Entry {
        Entry {
            path: path.into(),
            mode: 0o755,
            kind: EntryKind::Dir,
        }
    }

    /// A file with in-memory content.
    pub fn bytes(path: impl Into<String>, mode: u32, data: impl Into<Vec<u8>>) -> Entry {
        let data: Vec<u8> = data.into();
        Entry {
            path: path.into(),
            mode,
            kind: EntryKind::File {
                size: data.len() as u64,
                source: Source::Bytes(data.into()),
            },
        }
    }

    /// A symbolic link.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry {
            path: path.into(),
            mode: 0o777,
            kind: EntryKind::Symlink {
                target: target.into(),
            },
        }
    }
}

/// The media type of every layer envbuild writes.
pub const MEDIA_TYPE_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// How a layer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOptions {
    /// The modification time of every entry, in seconds since the Unix epoch.
    pub mtime: u64,
}

/// A layer blob as written: what a manifest and a config need to name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// `sha256:<hex>` of the gzip bytes (the blob's name).
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    /// Size of the gzip bytes.
    pub size: u64,
    pub media_type: String,
}

/// Why a layer could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("Layer entry `{path}` is not allowed: {reason}")]
    BadPath { path: String, reason: &'static str },

    #[error(
        "Symbolic link `{path}` points to `{target}`, outside the image\nhint: use a target \
         that stays inside the image root"
    )]
    EscapingSymlink { path: String, target: String },

    #[error("Layer path `{path}` is given twice; only directories may repeat")]
    Duplicate { path: String },

    #[error("Layer path `{path}` is under `{parent}`, which is not a directory")]
    ParentNotDir { path: String, parent: String },

    #[error("File `{path}` was declared as {expected} bytes but its source gave {actual}")]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: String,
    },

    #[error(
        "Member {index} of `{archive}` (for `{path}`) does not match its sha256: expected \
         `{expected}`, got `{actual}`\nhint: the archive changed or is corrupt; remove it from \
         the cache and build again"
    )]
    ZipHash {
        archive: PathBuf,
        index: usize,
        path: String,
        expected: String,
        actual: String,
    },

    #[error("Failed to read member {index} of `{archive}` (for `{path}`)")]
    Zip {
        archive: PathBuf,
        index: usize,
        path: String,
        #[source]
        source: zip::result::ZipError,
    },

    #[error("Failed to read `{path}`")]
    ReadSource {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("Failed to write the layer into `{dir}`")]
    Write {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("Failed to read the layer `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
