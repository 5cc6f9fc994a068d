//! Progress of long work. Library code reports what it is doing through [`Reporter`] and never
//! prints; the command line decides what the user sees (bars on a terminal, plain lines in a
//! log, nothing with `-q`).
//!
//! Work items run in parallel, so each call names its item; an item's calls come in order
//! (`started`, any number of `advanced`, `finished`) from one thread.

/// The kinds of long work a build does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// An artifact (wheel, base layer) coming into the cache.
    Download,
    /// A layer being written to the output.
    Layer,
    /// A blob going up to a registry.
    Upload,
}

/// Receives progress. Every method has a do-nothing default.
pub trait Reporter: Send + Sync {
    /// Work on `what` began; `total_bytes` when the size is known in advance.
    fn started(&self, stage: Stage, what: &str, total_bytes: Option<u64>) {
        let _ = (stage, what, total_bytes);
    }

    /// `bytes` more of `what` were done (downloaded, or written for a layer).
    fn advanced(&self, stage: Stage, what: &str, bytes: u64) {
        let _ = (stage, what, bytes);
    }

    /// Work on `what` ended, successfully.
    fn finished(&self, stage: Stage, what: &str) {
        let _ = (stage, what);
    }
}

/// A reporter that shows nothing: for library callers and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Reporter for NoProgress {}

/// A reader that reports the bytes read through it.
pub struct ReportingReader<'a, R> {
    inner: R,
    reporter: &'a dyn Reporter,
    stage: Stage,
    what: &'a str,
}

impl<'a, R> ReportingReader<'a, R> {
    pub fn new(inner: R, reporter: &'a dyn Reporter, stage: Stage, what: &'a str) -> Self {
        ReportingReader {
            inner,
            reporter,
            stage,
            what,
        }
    }
}

impl<R: std::io::Read> std::io::Read for ReportingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.reporter.advanced(self.stage, self.what, n as u64);
        }
        Ok(n)
    }
}
