//! What an image holds, read back from the image itself: per platform its base layers, the
//! Python distributions of its venv (from the `.dist-info` folders) and its VS Code extensions
//! (from the extension folders). `diff` compares two images with these.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{EXIT_FAILURE, Failure};
use crate::cache::Cache;
use crate::image::Layout;
use crate::layer::{self, ListedKind};
use crate::registry::RegistryOptions;

/// One platform of an image.
#[derive(Debug, Clone, Default)]
pub struct PlatformFacts {
    /// Digests of the layers envbuild did not make, in order.
    pub base_layers: Vec<String>,
    /// Normalized distribution name → version.
    pub packages: BTreeMap<String, String>,
    /// `publisher.name` → version (and target platform, when there is one).
    pub extensions: BTreeMap<String, String>,
}

/// Where an image is read from: a layout, or a registry through the cache.
pub(super) enum Source {
    Layout(Layout),
    Registry {
        reference: String,
        opts: RegistryOptions,
        cache: Cache,
    },
}

impl Source {
    /// Opens `oci:DIR[:TAG]` (the tag defaulting to `default_tag`) or a registry reference;
    /// returns the source and the digest of the image's root.
    pub(super) fn open(
        what: &str,
        default_tag: Option<&str>,
        opts: &RegistryOptions,
        cache: &Cache,
    ) -> Result<(Source, String), Failure> {
        match what.strip_prefix("oci:") {
            Some(rest) => {
                let (dir, tag) = super::verify::split_layout(rest);
                let layout = Layout::open(Path::new(dir))?;
                let root = layout.resolve_tag(tag.or(default_tag))?.digest;
                Ok((Source::Layout(layout), root))
            }
            None => {
                let root = crate::registry::fetch_root(what, opts)?.digest;
                let source = Source::Registry {
                    reference: what.to_string(),
                    opts: opts.clone(),
                    cache: cache.clone(),
                };
                Ok((source, root))
            }
        }
    }

    /// A manifest or index, parsed (digest checked on the way).
    pub(super) fn json(&self, digest: &str) -> Result<Value, Failure> {
        let bytes = match self {
            Source::Layout(l) => l.read_blob(digest)?,
            Source::Registry {
                reference, opts, ..
            } => crate::registry::fetch_manifest(reference, digest, opts)?.bytes,
        };
        parse(digest, &bytes)
    }

    /// A config, parsed: a blob, so a registry serves it from its blob endpoint.
    pub(super) fn config(&self, digest: &str) -> Result<Value, Failure> {
        let bytes = match self {
            Source::Layout(l) => l.read_blob(digest)?,
            // The cache checked the hash when the blob came in.
            Source::Registry { .. } => {
                let path = self.blob(digest)?;
                std::fs::read(&path)
                    .map_err(|e| Failure::msg(EXIT_FAILURE, format!("`{}`: {e}", path.display())))?
            }
        };
        parse(digest, &bytes)
    }

    /// A blob on disk (pulled into the cache for a registry).
    pub(super) fn blob(&self, digest: &str) -> Result<PathBuf, Failure> {
        match self {
            Source::Layout(l) => Ok(l.blob_path(digest)?),
            Source::Registry {
                reference,
                opts,
                cache,
            } => Ok(crate::registry::pull_blob(reference, digest, cache, opts)?),
        }
    }
}

fn parse(digest: &str, bytes: &[u8]) -> Result<Value, Failure> {
    serde_json::from_slice(bytes)
        .map_err(|e| Failure::msg(EXIT_FAILURE, format!("`{digest}` is not JSON: {e}")))
}

/// Reads `oci:DIR[:TAG]` or a registry reference: platform → what it holds.
pub fn read_image(
    what: &str,
    opts: &RegistryOptions,
    cache: &Cache,
) -> Result<BTreeMap<String, PlatformFacts>, Failure> {
    let (source, root) = Source::open(what, None, opts, cache)?;

    let root_json = source.json(&root)?;
    let manifests: Vec<String> = match root_json.get("manifests").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(|m| m["digest"].as_str().map(str::to_string))
            .collect(),
        None => vec![root.clone()],
    };
    let mut out = BTreeMap::new();
    for digest in manifests {
        let manifest = source.json(&digest)?;
        let config = source.config(manifest["config"]["digest"].as_str().unwrap_or_default())?;
        let platform = format!(
            "{}/{}",
            config["os"].as_str().unwrap_or("?"),
            config["architecture"].as_str().unwrap_or("?")
        );
        out.insert(platform, platform_facts(&source, &manifest, &config)?);
    }
    Ok(out)
}

fn platform_facts(
    source: &Source,
    manifest: &Value,
    config: &Value,
) -> Result<PlatformFacts, Failure> {
    // The history lines of the layers that exist, in order; envbuild's begin `envbuild:`.
    let history: Vec<&str> = config["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter(|e| !e["empty_layer"].as_bool().unwrap_or(false))
                .map(|e| e["created_by"].as_str().unwrap_or(""))
                .collect()
        })
        .unwrap_or_default();
    let ext_dir = config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|e| e.strip_prefix("ENVBUILD_VSCODE_EXTENSIONS_DIR="))
        .map(|d| d.trim_matches('/').to_string());

    let mut facts = PlatformFacts::default();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    for (i, l) in layers.iter().enumerate() {
        let digest = l["digest"].as_str().unwrap_or_default();
        if !history.get(i).is_some_and(|h| h.starts_with("envbuild:")) {
            facts.base_layers.push(digest.to_string());
            continue;
        }
        let blob = source.blob(digest)?;
        for entry in layer::list_layer(&blob)? {
            if entry.kind != ListedKind::Dir {
                continue;
            }
            if let Some((name, version)) = dist_info(&entry.path) {
                facts.packages.insert(name, version);
            } else if let Some(dir) = &ext_dir
                && let Some(rest) = entry.path.strip_prefix(dir.as_str())
                && let Some((id, version)) = extension_dir(rest.trim_start_matches('/'))
            {
                facts.extensions.insert(id, version);
            }
        }
    }
    Ok(facts)
}

/// `…/site-packages/Name-1.0.dist-info` → (`name`, `1.0`), the name normalized (PEP 503).
fn dist_info(path: &str) -> Option<(String, String)> {
    let (parent, dir) = path.rsplit_once('/')?;
    if !parent.ends_with("/site-packages") {
        return None;
    }
    let stem = dir.strip_suffix(".dist-info")?;
    let (name, version) = stem.split_once('-')?;
    let name = name.to_ascii_lowercase().replace(['_', '.'], "-");
    Some((name, version.to_string()))
}

/// `publisher.name-1.2.3[-linux-x64]` (one folder below the extensions folder) → (`id`,
/// `version[ target]`). The version starts at the first `-` followed by a digit after the
/// publisher, since names may hold dashes.
fn extension_dir(rest: &str) -> Option<(String, String)> {
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    let dot = rest.find('.')?;
    let bytes = rest.as_bytes();
    let dash = (dot..rest.len().saturating_sub(1))
        .find(|&i| bytes[i] == b'-' && bytes[i + 1].is_ascii_digit())?;
    let (id, tail) = (&rest[..dash], &rest[dash + 1..]);
    let version = match tail.split_once('-') {
        Some((v, target)) => format!("{v} {target}"),
        None => tail.to_string(),
    };
    Some((id.to_string(), version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_folders() {
        assert_eq!(
            dist_info("opt/venv/lib/python3.11/site-packages/MarkupSafe-2.1.5.dist-info"),
            Some(("markupsafe".into(), "2.1.5".into()))
        );
        assert_eq!(
            dist_info("opt/venv/lib/python3.11/site-packages/six.py"),
            None
        );
        assert_eq!(dist_info("elsewhere/a-1.dist-info"), None);
        assert_eq!(
            extension_dir("ms-python.vscode-pylance-2024.2.1-linux-x64"),
            Some((
                "ms-python.vscode-pylance".into(),
                "2024.2.1 linux-x64".into()
            ))
        );
        assert_eq!(
            extension_dir("acme.hello-0.1.0"),
            Some(("acme.hello".into(), "0.1.0".into()))
        );
        assert_eq!(extension_dir("acme.hello-0.1.0/package.json"), None);
        assert_eq!(extension_dir("extensions.json"), None);
    }
}
