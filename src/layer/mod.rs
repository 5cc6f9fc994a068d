//! Deterministic layers: a sorted list of entries written as tar, then gzip.
//!
//! Not yet written: the writer. The entry model below is what every producer of layer content
//! (wheels, VS Code extensions, Jupyter settings, the venv skeleton) hands to the writer.

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
