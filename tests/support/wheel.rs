//! A small wheel builder for tests: real wheels per the binary distribution format, with the
//! metadata, tags, files and entry points a test asks for.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

/// A wheel to make.
#[derive(Debug, Clone)]
pub struct WheelBuilder {
    pub name: String,
    pub version: String,
    /// `py3-none-any`, `cp311-cp311-manylinux_2_17_x86_64`, …
    pub tag: String,
    pub requires_dist: Vec<String>,
    pub requires_python: Option<String>,
    pub provides_extra: Vec<String>,
    /// Files relative to the wheel root (e.g. `pkg/__init__.py`, `pkg-1.0.data/scripts/x`).
    pub files: Vec<(String, Vec<u8>)>,
    /// Content of `entry_points.txt`.
    pub entry_points: Option<String>,
}

impl WheelBuilder {
    pub fn new(name: &str, version: &str) -> WheelBuilder {
        let module = name.replace('-', "_");
        WheelBuilder {
            name: name.to_string(),
            version: version.to_string(),
            tag: "py3-none-any".to_string(),
            requires_dist: Vec::new(),
            requires_python: None,
            provides_extra: Vec::new(),
            files: vec![(
                format!("{module}/__init__.py"),
                format!("__version__ = \"{version}\"\n").into_bytes(),
            )],
            entry_points: None,
        }
    }

    pub fn tag(mut self, tag: &str) -> Self {
        self.tag = tag.to_string();
        self
    }

    pub fn requires(mut self, req: &str) -> Self {
        self.requires_dist.push(req.to_string());
        self
    }

    pub fn requires_python(mut self, spec: &str) -> Self {
        self.requires_python = Some(spec.to_string());
        self
    }

    pub fn extra(mut self, name: &str) -> Self {
        self.provides_extra.push(name.to_string());
        self
    }

    pub fn file(mut self, path: &str, data: &[u8]) -> Self {
        self.files.push((path.to_string(), data.to_vec()));
        self
    }

    pub fn entry_points(mut self, text: &str) -> Self {
        self.entry_points = Some(text.to_string());
        self
    }

    /// The file name, per the wheel naming convention.
    pub fn filename(&self) -> String {
        format!("{}-{}-{}.whl", self.dist_name(), self.version, self.tag)
    }

    fn dist_name(&self) -> String {
        self.name.replace(['-', '.'], "_")
    }

    /// The `METADATA` text (also what an index serves as the PEP 658 metadata file).
    pub fn metadata(&self) -> String {
        let mut m = format!(
            "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
            self.name, self.version
        );
        if let Some(rp) = &self.requires_python {
            m.push_str(&format!("Requires-Python: {rp}\n"));
        }
        for e in &self.provides_extra {
            m.push_str(&format!("Provides-Extra: {e}\n"));
        }
        for r in &self.requires_dist {
            m.push_str(&format!("Requires-Dist: {r}\n"));
        }
        m
    }

    /// Writes the wheel into `dir` and returns its path.
    pub fn build(&self, dir: &Path) -> PathBuf {
        let path = dir.join(self.filename());
        let file = std::fs::File::create(&path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        let dist_info = format!("{}-{}.dist-info", self.dist_name(), self.version);
        let wheel = format!(
            "Wheel-Version: 1.0\nGenerator: envbuild-tests\nRoot-Is-Purelib: {}\nTag: {}\n",
            self.tag.ends_with("-none-any"),
            self.tag
        );
        let mut entries: Vec<(String, Vec<u8>)> = self.files.clone();
        entries.push((
            format!("{dist_info}/METADATA"),
            self.metadata().into_bytes(),
        ));
        entries.push((format!("{dist_info}/WHEEL"), wheel.into_bytes()));
        if let Some(ep) = &self.entry_points {
            entries.push((
                format!("{dist_info}/entry_points.txt"),
                ep.clone().into_bytes(),
            ));
        }
        let mut record = String::new();
        for (name, data) in &entries {
            let hash =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data));
            record.push_str(&format!("{name},sha256={hash},{}\n", data.len()));
        }
        record.push_str(&format!("{dist_info}/RECORD,,\n"));
        entries.push((format!("{dist_info}/RECORD"), record.into_bytes()));
        for (name, data) in entries {
            let mode = if name.contains(".data/scripts/") {
                0o755
            } else {
                0o644
            };
            zip.start_file(name, opts.unix_permissions(mode)).unwrap();
            zip.write_all(&data).unwrap();
        }
        zip.finish().unwrap();
        path
    }
}

/// The hex sha256 of a file.
pub fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}
