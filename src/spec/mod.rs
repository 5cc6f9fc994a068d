//! The environment spec, `envbuild.toml`: what the user declares.
//!
//! Parsing is strict: unknown keys and wrong types are errors that name the file, the line and
//! the key, because a typo that is silently ignored becomes an image that lacks something.

mod checksum;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

pub use checksum::spec_checksum;

use crate::platform::Platform;

/// Default location of the virtual environment inside the image.
pub const DEFAULT_VENV: &str = "/opt/venv";
/// Default Python package index.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";
/// Default Open VSX compatible gallery.
pub const DEFAULT_GALLERY: &str = "https://open-vsx.org";

/// Errors met while reading a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("Failed to read spec `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Invalid spec `{path}`: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("Invalid spec `{path}` at line {line}, key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// The whole `envbuild.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Spec {
    pub image: ImageSpec,
    #[serde(default)]
    pub python: PythonSpec,
    #[serde(default)]
    pub vscode: Option<VscodeSpec>,
    #[serde(default)]
    pub jupyter: Option<JupyterSpec>,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetSpec>,
    /// Where the spec was read from; relative paths in it are relative to its folder.
    #[serde(skip)]
    pub path: PathBuf,
}

/// `[image]`: the base and the runtime configuration of the result.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageSpec {
    /// `scratch`, `oci:PATH[:TAG]` or a registry reference.
    pub base: Spanned<String>,
    #[serde(default = "default_platforms")]
    pub platforms: Vec<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where the virtual environment lives in the image.
    pub venv: Option<String>,
    /// Fixed timestamp for every file and the config; `SOURCE_DATE_EPOCH` overrides it.
    pub source_date_epoch: Option<i64>,
    /// Registries that may be reached over plain HTTP.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
}

fn default_platforms() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "linux/amd64".to_string())]
}

/// `[python]`: requirements and where to find them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PythonSpec {
    #[serde(default)]
    pub requirements: Vec<Spanned<String>>,
    /// Indexes in the order they are asked; a name is served by the first index that has it.
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
    /// Ignore files uploaded after this instant (RFC 3339 or a plain date).
    pub exclude_newer: Option<Spanned<String>>,
    /// Python version when the base cannot tell, e.g. `3.11` or `3.11.2`.
    pub version: Option<String>,
    /// Interpreter path in the image when the base cannot tell.
    pub interpreter: Option<String>,
    /// C library when the base cannot tell: `glibc 2.36` or `musl 1.2`.
    pub libc: Option<Spanned<String>>,
    /// Packages over this many bytes (installed) get a layer of their own.
    pub own_layer_threshold: Option<u64>,
}

/// One package index.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IndexSpec {
    pub name: Option<String>,
    pub url: String,
}

/// `[vscode]`: IDE extensions for the dev workspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VscodeSpec {
    /// `code-server`, `openvscode-server` or `vscode-server`.
    #[serde(default = "default_flavour")]
    pub flavour: String,
    pub extensions_dir: Option<String>,
    /// The IDE's data folder in the image, which holds the machine-level settings.
    #[serde(default)]
    pub data_dir: Option<String>,
    pub gallery: Option<String>,
    #[serde(default)]
    pub extensions: Vec<ExtensionSpec>,
    /// Machine-level `settings.json` content.
    pub settings: Option<toml::Table>,
}

fn default_flavour() -> String {
    "openvscode-server".to_string()
}

/// An extension: `publisher.name[@version]`, or a table with a URL or a local file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ExtensionSpec {
    Id(String),
    Detailed(ExtensionDetail),
}

/// The table form of an extension.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExtensionDetail {
    pub id: String,
    pub version: Option<String>,
    pub url: Option<String>,
    pub sha256: Option<String>,
    pub path: Option<String>,
}

/// `[jupyter]`: JupyterLab settings written as files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JupyterSpec {
    /// Content of `share/jupyter/lab/settings/overrides.json`.
    pub overrides: Option<toml::Table>,
    /// Extensions listed as disabled in `labconfig/page_config.json`.
    #[serde(default)]
    pub disabled_extensions: Vec<String>,
}

/// `[targets.NAME]`: what one image holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetSpec {
    /// A target whose content this one starts from (its layers come first).
    pub extends: Option<String>,
    /// Requirements added by this target.
    #[serde(default)]
    pub requirements: Vec<Spanned<String>>,
    /// Include the `[vscode]` extensions.
    #[serde(default)]
    pub vscode: bool,
    /// Include the `[jupyter]` settings.
    #[serde(default)]
    pub jupyter: bool,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
}

/// A target after `extends` is followed: every requirement and feature it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub name: String,
    /// Ancestors first, then the target itself.
    pub chain: Vec<String>,
    pub requirements: Vec<pep508_rs::Requirement>,
    pub vscode: bool,
    pub jupyter: bool,
    pub env: BTreeMap<String, String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
}

/// The C library of a base, which decides the wheel platform tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Libc {
    Glibc { major: u16, minor: u16 },
    Musl { major: u16, minor: u16 },
}

impl std::fmt::Display for Libc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Libc::Glibc { major, minor } => write!(f, "glibc {major}.{minor}"),
            Libc::Musl { major, minor } => write!(f, "musl {major}.{minor}"),
        }
    }
}

impl FromStr for Libc {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, version) = s
            .trim()
            .split_once([' ', '-'])
            .ok_or_else(|| format!("expected `glibc X.Y` or `musl X.Y`, found `{s}`"))?;
        let (major, minor) = version
            .trim()
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| format!("expected a version like `2.36`, found `{version}`"))?;
        match kind {
            "glibc" => Ok(Libc::Glibc { major, minor }),
            "musl" => Ok(Libc::Musl { major, minor }),
            other => Err(format!(
                "unknown C library `{other}` (expected `glibc` or `musl`)"
            )),
        }
    }
}

impl Spec {
    /// Reads and validates a spec file.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Spec::parse(&text, path)
    }

    /// Parses and validates spec text; `path` is used in messages and for relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Spec, SpecError> {
        let mut spec: Spec = toml::from_str(text).map_err(|err| SpecError::Toml {
            path: path.to_path_buf(),
            message: err.to_string().trim_end().to_string(),
        })?;
        spec.path = path.to_path_buf();
        spec.validate(text)?;
        Ok(spec)
    }

    fn invalid(
        &self,
        text: &str,
        span: std::ops::Range<usize>,
        key: &str,
        msg: String,
    ) -> SpecError {
        SpecError::Invalid {
            path: self.path.clone(),
            line: line_of(text, span.start),
            key: key.to_string(),
            message: msg,
        }
    }

    fn validate(&self, text: &str) -> Result<(), SpecError> {
        let base = self.image.base.get_ref();
        if base.trim().is_empty() {
            return Err(self.invalid(
                text,
                self.image.base.span(),
                "image.base",
                "is empty".into(),
            ));
        }
        if self.image.platforms.is_empty() {
            return Err(self.invalid(text, 0..0, "image.platforms", "lists no platform".into()));
        }
        for p in &self.image.platforms {
            if let Err(err) = p.get_ref().parse::<Platform>() {
                return Err(self.invalid(text, p.span(), "image.platforms", err.to_string()));
            }
        }
        for req in &self.python.requirements {
            parse_requirement(req.get_ref())
                .map_err(|m| self.invalid(text, req.span(), "python.requirements", m))?;
        }
        if let Some(libc) = &self.python.libc {
            libc.get_ref()
                .parse::<Libc>()
                .map_err(|m| self.invalid(text, libc.span(), "python.libc", m))?;
        }
        if let Some(date) = &self.python.exclude_newer {
            parse_exclude_newer(date.get_ref())
                .map_err(|m| self.invalid(text, date.span(), "python.exclude-newer", m))?;
        }
        for (name, target) in &self.targets {
            let key = format!("targets.{name}.requirements");
            for req in &target.requirements {
                parse_requirement(req.get_ref())
                    .map_err(|m| self.invalid(text, req.span(), &key, m))?;
            }
            if let Some(parent) = &target.extends
                && !self.targets.contains_key(parent)
            {
                return Err(self.invalid(
                    text,
                    0..0,
                    &format!("targets.{name}.extends"),
                    format!("names `{parent}`, which is not a target"),
                ));
            }
            if target.vscode && self.vscode.is_none() {
                return Err(self.invalid(
                    text,
                    0..0,
                    &format!("targets.{name}.vscode"),
                    "is true but the spec has no `[vscode]` section".into(),
                ));
            }
        }
        for name in self.targets.keys() {
            self.target_chain(name)
                .map_err(|m| self.invalid(text, 0..0, &format!("targets.{name}.extends"), m))?;
        }
        Ok(())
    }

    /// The platforms, parsed (validated at load time).
    pub fn platforms(&self) -> Vec<Platform> {
        let mut out: Vec<Platform> = self
            .image
            .platforms
            .iter()
            .filter_map(|p| p.get_ref().parse().ok())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The venv prefix inside the image.
    pub fn venv(&self) -> &str {
        self.image.venv.as_deref().unwrap_or(DEFAULT_VENV)
    }

    /// Index URLs in order; the public index when none is given.
    pub fn index_urls(&self) -> Vec<String> {
        if self.python.indexes.is_empty() {
            vec![DEFAULT_INDEX.to_string()]
        } else {
            self.python
                .indexes
                .iter()
                .map(|i| i.url.trim_end_matches('/').to_string())
                .collect()
        }
    }

    /// Target names; a spec without targets has one implicit `prod` target.
    pub fn target_names(&self) -> Vec<String> {
        if self.targets.is_empty() {
            vec!["prod".to_string()]
        } else {
            self.targets.keys().cloned().collect()
        }
    }

    fn target_chain(&self, name: &str) -> Result<Vec<String>, String> {
        let mut chain = vec![name.to_string()];
        let mut current = name;
        while let Some(parent) = self.targets.get(current).and_then(|t| t.extends.as_deref()) {
            if chain.iter().any(|c| c == parent) {
                return Err(format!("forms a cycle: {} -> {parent}", chain.join(" -> ")));
            }
            chain.push(parent.to_string());
            current = parent;
        }
        chain.reverse();
        Ok(chain)
    }

    /// A target with its `extends` chain folded in: base requirements, then each ancestor's.
    pub fn target(&self, name: &str) -> Option<ResolvedTarget> {
        if !self.targets.is_empty() && !self.targets.contains_key(name) {
            return None;
        }
        if self.targets.is_empty() && name != "prod" {
            return None;
        }
        let chain = self.target_chain(name).ok()?;
        let mut out = ResolvedTarget {
            name: name.to_string(),
            chain: if self.targets.is_empty() {
                vec![]
            } else {
                chain.clone()
            },
            requirements: self
                .python
                .requirements
                .iter()
                .filter_map(|r| parse_requirement(r.get_ref()).ok())
                .collect(),
            vscode: false,
            jupyter: false,
            env: self.image.env.clone(),
            entrypoint: self.image.entrypoint.clone(),
            cmd: self.image.cmd.clone(),
        };
        for link in &chain {
            let Some(t) = self.targets.get(link) else {
                continue;
            };
            out.requirements.extend(
                t.requirements
                    .iter()
                    .filter_map(|r| parse_requirement(r.get_ref()).ok()),
            );
            out.vscode |= t.vscode;
            out.jupyter |= t.jupyter;
            out.env.extend(t.env.clone());
            if t.entrypoint.is_some() {
                out.entrypoint = t.entrypoint.clone();
            }
            if t.cmd.is_some() {
                out.cmd = t.cmd.clone();
            }
        }
        Some(out)
    }

    /// Resolves a path written in the spec relative to the spec's folder.
    pub fn relative_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

/// Parses one PEP 508 requirement, refusing URL requirements (only index packages are locked).
pub fn parse_requirement(s: &str) -> Result<pep508_rs::Requirement, String> {
    let req = pep508_rs::Requirement::from_str(s)
        .map_err(|e| format!("`{s}` is not a valid PEP 508 requirement: {}", e.message))?;
    if matches!(req.version_or_url, Some(pep508_rs::VersionOrUrl::Url(_))) {
        return Err(format!(
            "`{s}` is a URL requirement; only packages from an index can be locked"
        ));
    }
    Ok(req)
}

/// Parses `exclude-newer`: RFC 3339 timestamp or a plain `YYYY-MM-DD` date (midnight UTC).
pub fn parse_exclude_newer(s: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    let date: jiff::civil::Date = s
        .parse()
        .map_err(|_| format!("`{s}` is neither an RFC 3339 time nor a YYYY-MM-DD date"))?;
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| format!("`{s}`: {e}"))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
