//! Writing one layer: tar → hash (diff_id) → gzip → hash (digest) → temporary file → blob.
//!
//! Every stage is a streaming writer, so memory stays bounded by the buffers whatever the
//! size of the layer; file content is copied in 64 KiB pieces from its source.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::ZipArchive;
use zip::result::ZipError;

use super::gzip::{HashWriter, encoder};
use super::plan::plan;
use super::tar::{self as tarfmt, Member};
use super::{Entry, EntryKind, LayerError, LayerInfo, LayerOptions, MEDIA_TYPE_GZIP, Source};

/// How many zip archives stay open at once while a layer is written.
const MAX_OPEN_ZIPS: usize = 32;

/// Writes the entries as one deterministic tar+gzip blob into `blobs_dir/<hex>` and returns
/// its digests. The blob appears atomically (temporary file, then rename); an existing blob of
/// the same digest is kept. On any error nothing is left in `blobs_dir`.
pub fn write_layer(
    entries: Vec<Entry>,
    opts: &LayerOptions,
    blobs_dir: &Path,
) -> Result<LayerInfo, LayerError> {
    let entries = plan(entries)?;
    let werr = |source| LayerError::Write {
        dir: blobs_dir.to_path_buf(),
        source,
    };

    std::fs::create_dir_all(blobs_dir).map_err(werr)?;
    // Dropping the temporary file on an error path deletes it: no partial blob survives.
    let tmp = tempfile::Builder::new()
        .prefix(".layer-")
        .tempfile_in(blobs_dir)
        .map_err(werr)?;

    let file = BufWriter::with_capacity(1 << 18, tmp.as_file());
    // The buffer in front of the compressor batches the many 512-byte headers and paddings of
    // small files into large deflate calls.
    let gz = BufWriter::with_capacity(1 << 16, encoder(HashWriter::new(file)));
    let mut tar_out = HashWriter::new(gz);
    let mut zips = Zips::default();
    let mut buf = vec![0u8; 1 << 16];
    for entry in &entries {
        write_entry(
            &mut tar_out,
            entry,
            opts.mtime,
            &mut zips,
            &mut buf,
            blobs_dir,
        )?;
    }
    tarfmt::write_end(&mut tar_out).map_err(werr)?;

    let (gz, diff_id, _) = tar_out.finish();
    let gz = gz.into_inner().map_err(|e| werr(e.into_error()))?;
    let (file, digest, size) = gz.finish().map_err(werr)?.finish();
    file.into_inner().map_err(|e| werr(e.into_error()))?;
    tmp.as_file().sync_all().map_err(werr)?;
    crate::fsutil::set_mode(tmp.path(), 0o644).map_err(werr)?;

    let hex = digest.trim_start_matches("sha256:");
    let dest = blobs_dir.join(hex);
    match tmp.persist_noclobber(&dest) {
        Ok(_) => {}
        // Another build wrote the same bytes first; its blob is as good as ours.
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(werr(e.error)),
    }
    tracing::debug!(%digest, %diff_id, size, entries = entries.len(), "wrote layer");

    Ok(LayerInfo {
        digest,
        diff_id,
        size,
        media_type: MEDIA_TYPE_GZIP.to_string(),
    })
}

/// Open zip archives, so a wheel's central directory is read once per layer, not per member.
#[derive(Default)]
struct Zips {
    open: HashMap<PathBuf, ZipArchive<BufReader<File>>>,
}

impl Zips {
    fn get(&mut self, path: &Path) -> io::Result<&mut ZipArchive<BufReader<File>>> {
        if !self.open.contains_key(path) {
            if self.open.len() >= MAX_OPEN_ZIPS {
                self.open.clear();
            }
            let file = BufReader::new(File::open(path)?);
            let archive = ZipArchive::new(file).map_err(io::Error::other)?;
            self.open.insert(path.to_path_buf(), archive);
        }
        self.open
            .get_mut(path)
            .ok_or_else(|| io::Error::other("zip archive vanished from the cache"))
    }
}

/// Writes one member: header, data, padding.
fn write_entry(
    w: &mut impl Write,
    entry: &Entry,
    mtime: u64,
    zips: &mut Zips,
    buf: &mut [u8],
    blobs_dir: &Path,
) -> Result<(), LayerError> {
    let werr = |source| LayerError::Write {
        dir: blobs_dir.to_path_buf(),
        source,
    };
    let path = entry.path.as_str();

    let (size, source) = match &entry.kind {
        EntryKind::Dir => {
            return tarfmt::write_header(w, path, Member::Dir, entry.mode, mtime).map_err(werr);
        }
        EntryKind::Symlink { target } => {
            let member = Member::Symlink { target };
            return tarfmt::write_header(w, path, member, entry.mode, mtime).map_err(werr);
        }
        EntryKind::File { size, source } => (*size, source),
    };

    let member = Member::File { size };
    match source {
        Source::Bytes(data) => {
            if data.len() as u64 != size {
                return Err(size_mismatch(path, size, data.len().to_string()));
            }
            tarfmt::write_header(w, path, member, entry.mode, mtime).map_err(werr)?;
            w.write_all(data).map_err(werr)?;
        }
        Source::File(file) => {
            let rerr = |source| LayerError::ReadSource {
                path: file.clone(),
                source,
            };
            let mut reader = File::open(file).map_err(rerr)?;
            tarfmt::write_header(w, path, member, entry.mode, mtime).map_err(werr)?;
            copy_exact(&mut reader, w, size, buf, None).map_err(|e| match e {
                CopyError::Read(source) => rerr(source),
                CopyError::Write(source) => werr(source),
                CopyError::Size(actual) => size_mismatch(path, size, actual),
            })?;
        }
        Source::Zip {
            archive,
            index,
            sha256,
        } => {
            write_zip_member(w, entry, size, (archive, *index, sha256), mtime, zips, buf).map_err(
                |e| match e {
                    CopyError::Read(source) => zip_err(archive, *index, path, source),
                    CopyError::Write(source) => werr(source),
                    CopyError::Size(actual) => size_mismatch(path, size, actual),
                },
            )?;
        }
    }
    tarfmt::write_padding(w, size).map_err(werr)
}

/// A zip member's header and data, checking its sha256 when one is given.
fn write_zip_member(
    w: &mut impl Write,
    entry: &Entry,
    size: u64,
    (archive, index, sha256): (&Path, usize, &Option<[u8; 32]>),
    mtime: u64,
    zips: &mut Zips,
    buf: &mut [u8],
) -> Result<(), CopyError> {
    let zip = zips.get(archive).map_err(CopyError::Read)?;
    let mut member = zip
        .by_index(index)
        .map_err(|e| CopyError::Read(io::Error::other(e)))?;
    let header = Member::File { size };
    tarfmt::write_header(w, &entry.path, header, entry.mode, mtime).map_err(CopyError::Write)?;

    let mut hasher = sha256.map(|_| Sha256::new());
    copy_exact(&mut member, w, size, buf, hasher.as_mut())?;
    if let (Some(expected), Some(hasher)) = (sha256, hasher) {
        let actual: [u8; 32] = hasher.finalize().into();
        if &actual != expected {
            return Err(CopyError::Read(io::Error::other(HashMismatch {
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            })));
        }
    }
    Ok(())
}

/// Carries a sha256 mismatch through an `io::Error` to where the error is named.
#[derive(Debug, thiserror::Error)]
#[error("sha256 mismatch")]
struct HashMismatch {
    expected: String,
    actual: String,
}

fn zip_err(archive: &Path, index: usize, path: &str, source: io::Error) -> LayerError {
    let archive = archive.to_path_buf();
    let path = path.to_string();
    if let Some(m) = source
        .get_ref()
        .and_then(|e| e.downcast_ref::<HashMismatch>())
    {
        return LayerError::ZipHash {
            archive,
            index,
            path,
            expected: m.expected.clone(),
            actual: m.actual.clone(),
        };
    }
    // Zip errors travel wrapped in an `io::Error`; unwrap them so the cause reads as itself.
    let source = if source.get_ref().is_some_and(|e| e.is::<ZipError>()) {
        match source.into_inner().map(|e| e.downcast::<ZipError>()) {
            Some(Ok(z)) => *z,
            Some(Err(other)) => ZipError::Io(io::Error::other(other)),
            None => ZipError::Io(io::Error::other("unknown zip error")),
        }
    } else {
        ZipError::Io(source)
    };
    LayerError::Zip {
        archive,
        index,
        path,
        source,
    }
}

fn size_mismatch(path: &str, expected: u64, actual: String) -> LayerError {
    LayerError::SizeMismatch {
        path: path.to_string(),
        expected,
        actual,
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
    /// The source gave a different number of bytes (described) than declared.
    Size(String),
}

/// Copies exactly `size` bytes; a source that is shorter or longer is an error, since the tar
/// header announcing the size is already written.
fn copy_exact(
    r: &mut impl Read,
    w: &mut impl Write,
    size: u64,
    buf: &mut [u8],
    mut hasher: Option<&mut Sha256>,
) -> Result<(), CopyError> {
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = read_some(r, &mut buf[..want])?;
        if n == 0 {
            return Err(CopyError::Size((size - left).to_string()));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        w.write_all(&buf[..n]).map_err(CopyError::Write)?;
        left -= n as u64;
    }
    if read_some(r, &mut buf[..1])? != 0 {
        return Err(CopyError::Size(format!("more than {size}")));
    }
    Ok(())
}

fn read_some(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, CopyError> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map_err(CopyError::Read),
        }
    }
}
