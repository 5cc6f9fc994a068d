//! Reading a layer blob back, for `verify`, `inspect` and tests.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};
use tar::EntryType;

use super::LayerError;

/// One member of a layer as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    /// Without a leading `/` or `./` and without the trailing `/` of directories.
    pub path: String,
    pub kind: ListedKind,
    pub mode: u32,
    pub size: u64,
    /// Hex sha256 of a regular file's content; `None` for other kinds.
    pub sha256: Option<String>,
    /// Target of a symbolic or hard link.
    pub link_target: Option<String>,
}

/// The type of a listed member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedKind {
    Dir,
    File,
    Symlink,
    HardLink,
    /// Any other tar type flag (devices, FIFOs, …).
    Other(u8),
}

/// Reads a layer blob (gzip or plain tar, told apart by the gzip magic) back as rows.
pub fn list_layer(blob: &Path) -> Result<Vec<ListedEntry>, LayerError> {
    let err = |source| LayerError::Read {
        path: blob.to_path_buf(),
        source,
    };
    let mut file = BufReader::new(File::open(blob).map_err(err)?);
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(err)?;
    let head = io::Cursor::new(magic[..n].to_vec());
    let stream = head.chain(file);

    if n == 2 && magic == [0x1f, 0x8b] {
        list_tar(flate2::read::GzDecoder::new(stream)).map_err(err)
    } else {
        list_tar(stream).map_err(err)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn list_tar(r: impl Read) -> io::Result<Vec<ListedEntry>> {
    let mut archive = tar::Archive::new(r);
    let mut rows = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = raw
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let header = entry.header();
        let kind = match header.entry_type() {
            EntryType::Directory => ListedKind::Dir,
            EntryType::Regular | EntryType::Continuous => ListedKind::File,
            EntryType::Symlink => ListedKind::Symlink,
            EntryType::Link => ListedKind::HardLink,
            other => ListedKind::Other(other.as_byte()),
        };
        let mode = header.mode()?;
        let size = header.size()?;
        let link_target = entry
            .link_name_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned());

        let sha256 = if kind == ListedKind::File {
            let mut hasher = Sha256::new();
            io::copy(&mut entry, &mut HashSink(&mut hasher))?;
            Some(hex::encode(hasher.finalize()))
        } else {
            None
        };
        rows.push(ListedEntry {
            path,
            kind,
            mode,
            size,
            sha256,
            link_target,
        });
    }
    Ok(rows)
}

struct HashSink<'a>(&'a mut Sha256);

impl io::Write for HashSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
