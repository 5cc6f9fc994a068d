//! The compressed stream: a pinned compressor with a header that says nothing about the
//! machine, and writers that hash what passes through them.

use std::io::{self, Write};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

/// The deflate level. Part of the layer format: changing it changes every digest.
const LEVEL: u32 = 6;

/// The gzip header's OS byte: 255, "unknown". Fixed so that the same layer built on any
/// system has the same header.
const OS_UNKNOWN: u8 = 255;

/// A gzip encoder whose header has mtime 0, no file name, no comment and a fixed OS byte.
pub(crate) fn encoder<W: Write>(inner: W) -> GzEncoder<W> {
    // Trap: gzip headers carry the compression time and the input file name by default
    // (`gzip` the command does); both would make every build differ.
    GzBuilder::new()
        .mtime(0)
        .operating_system(OS_UNKNOWN)
        .write(inner, Compression::new(LEVEL))
}

/// Passes bytes through to `inner`, hashing and counting them.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> HashWriter<W> {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, the `sha256:<hex>` digest and the byte count of what was written.
    pub(crate) fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
