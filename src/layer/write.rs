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
    let tar_out = HashWriter::new(gz);
    let mut tar_out = write_members(tar_out, &entries, opts.mtime, blobs_dir)?;
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

/// Writes every member and hands the stream back.
fn write_members<W: Write>(
    w: W,
    entries: &[Entry],
    mtime: u64,
    blobs_dir: &Path,
) -> Result<W, LayerError> {
    let mut members = Members {
        w,
        mtime,
        zips: Zips::default(),
        buf: vec![0u8; 1 << 16],
        blobs_dir,
    };
    for entry in entries {
        members.write(entry)?;
    }
    Ok(members.w)
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

/// Writes the members of one layer into a tar stream.
struct Members<'a, W> {
    w: W,
    mtime: u64,
    zips: Zips,
    buf: Vec<u8>,
    blobs_dir: &'a Path,
}

impl<W: Write> Members<'_, W> {
    fn werr(&self, source: io::Error) -> LayerError {
        LayerError::Write {
            dir: self.blobs_dir.to_path_buf(),
            source,
        }
    }

    /// One member: header, data, padding.
    fn write(&mut self, entry: &Entry) -> Result<(), LayerError> {
        let (path, mode) = (entry.path.as_str(), entry.mode);
        let (size, source) = match &entry.kind {
            EntryKind::Dir => return self.header(path, Member::Dir, mode),
            EntryKind::Symlink { target } => {
                return self.header(path, Member::Symlink { target }, mode);
            }
            EntryKind::File { size, source } => (*size, source),
        };

        match source {
            Source::Bytes(data) => {
                if data.len() as u64 != size {
                    return Err(size_mismatch(path, size, data.len().to_string()));
                }
                self.header(path, Member::File { size }, mode)?;
                self.w.write_all(data).map_err(|e| self.werr(e))?;
            }
            Source::File(file) => {
                let read_err = |source| LayerError::ReadSource {
                    path: file.clone(),
                    source,
                };
                let mut reader = File::open(file).map_err(read_err)?;
                self.header(path, Member::File { size }, mode)?;
                let copied = self.copy(&mut reader, size, None);
                copied.map_err(|e| e.into_layer_error(path, size, self.blobs_dir, read_err))?;
            }
            Source::Zip {
                archive,
                index,
                sha256,
            } => {
                let read_err = |source| zip_err(archive, *index, path, source);
                let written = self.zip_member(entry, size, archive, *index, sha256.as_ref());
                written.map_err(|e| match e {
                    CopyError::Hash { expected, actual } => LayerError::ZipHash {
                        archive: archive.clone(),
                        index: *index,
                        path: path.to_string(),
                        expected,
                        actual,
                    },
                    other => other.into_layer_error(path, size, self.blobs_dir, read_err),
                })?;
            }
        }
        tarfmt::write_padding(&mut self.w, size).map_err(|e| self.werr(e))
    }

    fn header(&mut self, path: &str, member: Member<'_>, mode: u32) -> Result<(), LayerError> {
        tarfmt::write_header(&mut self.w, path, member, mode, self.mtime).map_err(|e| self.werr(e))
    }

    /// A zip member's header and data, checking its sha256 when one is given.
    fn zip_member(
        &mut self,
        entry: &Entry,
        size: u64,
        archive: &Path,
        index: usize,
        sha256: Option<&[u8; 32]>,
    ) -> Result<(), CopyError> {
        let zip = self.zips.get(archive).map_err(CopyError::Read)?;
        let mut member = zip
            .by_index(index)
            .map_err(|e| CopyError::Read(io::Error::other(e)))?;
        let header = Member::File { size };
        tarfmt::write_header(&mut self.w, &entry.path, header, entry.mode, self.mtime)
            .map_err(CopyError::Write)?;

        let mut hasher = sha256.map(|_| Sha256::new());
        copy_exact(
            &mut member,
            &mut self.w,
            size,
            &mut self.buf,
            hasher.as_mut(),
        )?;
        if let (Some(expected), Some(hasher)) = (sha256, hasher) {
            let actual: [u8; 32] = hasher.finalize().into();
            if &actual != expected {
                return Err(CopyError::Hash {
                    expected: hex::encode(expected),
                    actual: hex::encode(actual),
                });
            }
        }
        Ok(())
    }

    fn copy(
        &mut self,
        r: &mut impl Read,
        size: u64,
        hasher: Option<&mut Sha256>,
    ) -> Result<(), CopyError> {
        copy_exact(r, &mut self.w, size, &mut self.buf, hasher)
    }
}

fn zip_err(archive: &Path, index: usize, path: &str, source: io::Error) -> LayerError {
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
        archive: archive.to_path_buf(),
        index,
        path: path.to_string(),
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
    /// The bytes did not hash to the expected sha256 (hex).
    Hash {
        expected: String,
        actual: String,
    },
}

impl CopyError {
    fn into_layer_error(
        self,
        path: &str,
        size: u64,
        blobs_dir: &Path,
        read_err: impl FnOnce(io::Error) -> LayerError,
    ) -> LayerError {
        match self {
            CopyError::Read(source) => read_err(source),
            CopyError::Write(source) => LayerError::Write {
                dir: blobs_dir.to_path_buf(),
                source,
            },
            CopyError::Size(actual) => size_mismatch(path, size, actual),
            CopyError::Hash { expected, actual } => read_err(io::Error::other(format!(
                "sha256 `{actual}`, expected `{expected}`"
            ))),
        }
    }
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
