//! The layer plan: which layers each image gets, decided from the lock alone, before anything
//! is written.
//!
//! The plan keeps layers stable, which is what makes pushes and pulls cheap:
//! - the venv skeleton is a layer of its own, first, shared by every target;
//! - each target in an `extends` chain adds its own layers after its parent's, holding only what
//!   the parent lacks, and a layer's content depends on nothing but its own chain link, so a
//!   parent's layers are byte-identical whether the parent or a child is built;
//! - a package whose installed size reaches the threshold gets a layer of its own; smaller ones
//!   share one of a fixed number of buckets chosen by a hash of the name, so changing, adding or
//!   removing one package changes exactly one layer;
//! - VS Code extensions get a layer each, then one small layer with `extensions.json` and the
//!   settings; Jupyter settings get one layer.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::lock::Lock;
use crate::spec::Spec;

/// Installed bytes from which a package gets a layer of its own, unless the spec says otherwise.
pub const DEFAULT_OWN_LAYER_THRESHOLD: u64 = 32 * 1024 * 1024;
/// Buckets that small packages of one chain link are spread over.
pub const BUCKETS: u64 = 12;
/// Most layers an image may have, base included: well under the 127 that overlay mounts and
/// common runtimes allow.
pub const MAX_LAYERS: usize = 100;

/// What one new layer holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LayerContent {
    /// The empty venv: `pyvenv.cfg`, interpreter links, activate scripts.
    Venv,
    /// Python packages (normalized names) of one chain link; `requested` lists the direct ones.
    Packages {
        link: String,
        names: Vec<String>,
        requested: Vec<String>,
    },
    /// One VS Code extension (lock id).
    Extension { link: String, id: String },
    /// `extensions.json` and settings for the extensions of a chain link.
    VscodeConfig { link: String },
    /// JupyterLab settings files.
    Jupyter { link: String },
}

impl LayerContent {
    /// The history line of the layer in the image config.
    pub fn created_by(&self) -> String {
        match self {
            LayerContent::Venv => "envbuild: python venv".to_string(),
            LayerContent::Packages { names, .. } => {
                format!("envbuild: python packages {}", names.join(" "))
            }
            LayerContent::Extension { id, .. } => format!("envbuild: vscode extension {id}"),
            LayerContent::VscodeConfig { .. } => "envbuild: vscode extensions.json".to_string(),
            LayerContent::Jupyter { .. } => "envbuild: jupyter settings".to_string(),
        }
    }
}

/// A chain link of a target and the features it switches on.
#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    pub vscode: bool,
    pub jupyter: bool,
}

/// The chain of a target as recorded in the lock (a spec without targets has one implicit one).
pub fn chain(lock: &Lock, spec: &Spec, target: &str) -> Vec<Link> {
    let names = match lock.targets.get(target) {
        Some(t) if !t.chain.is_empty() => t.chain.clone(),
        _ => vec![target.to_string()],
    };
    names
        .into_iter()
        .map(|name| {
            let t = spec.targets.get(&name);
            Link {
                vscode: t.is_some_and(|t| t.vscode),
                jupyter: t.is_some_and(|t| t.jupyter),
                name,
            }
        })
        .collect()
}

/// The new layers of one target, in order, given each package's installed size.
pub fn target_layers(
    lock: &Lock,
    chain: &[Link],
    sizes: &BTreeMap<String, u64>,
    threshold: u64,
) -> Vec<LayerContent> {
    let mut out = Vec::new();
    if !lock.packages.is_empty() {
        out.push(LayerContent::Venv);
    }

    for (i, link) in chain.iter().enumerate() {
        let earlier: BTreeSet<&str> = chain[..i].iter().map(|l| l.name.as_str()).collect();
        let direct: BTreeSet<&str> = lock
            .targets
            .get(&link.name)
            .map(|t| t.direct.iter().map(String::as_str).collect())
            .unwrap_or_default();

        // Packages this link adds: in its target, in no earlier link's.
        let mut big = Vec::new();
        let mut buckets: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for p in &lock.packages {
            let here = p.targets.contains(&link.name);
            let before = p.targets.iter().any(|t| earlier.contains(t.as_str()));
            if !here || before {
                continue;
            }
            if sizes.get(&p.name).copied().unwrap_or(0) >= threshold {
                big.push(p.name.clone());
            } else {
                buckets
                    .entry(bucket(&p.name))
                    .or_default()
                    .push(p.name.clone());
            }
        }
        let packages = |names: Vec<String>| {
            let requested = names
                .iter()
                .filter(|n| direct.contains(n.as_str()))
                .cloned()
                .collect();
            LayerContent::Packages {
                link: link.name.clone(),
                names,
                requested,
            }
        };
        // Big packages first: they change least often, so they sit lowest.
        out.extend(big.into_iter().map(|n| packages(vec![n])));
        out.extend(buckets.into_values().map(packages));

        let before_vscode = chain[..i].iter().any(|l| l.vscode);
        if link.vscode && !before_vscode {
            for e in &lock.extensions {
                if e.targets.contains(&link.name) {
                    out.push(LayerContent::Extension {
                        link: link.name.clone(),
                        id: e.id.clone(),
                    });
                }
            }
            out.push(LayerContent::VscodeConfig {
                link: link.name.clone(),
            });
        }
        let before_jupyter = chain[..i].iter().any(|l| l.jupyter);
        if link.jupyter && !before_jupyter {
            out.push(LayerContent::Jupyter {
                link: link.name.clone(),
            });
        }
    }
    out
}

/// A package's bucket: stable across envbuild releases that share the lock format version.
fn bucket(name: &str) -> u64 {
    let h = Sha256::digest(name.as_bytes());
    u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) % BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_spread_and_stable() {
        // Twenty common names: a hash that spreads them over fewer than half the buckets
        // would put most small packages in a few big layers.
        let names = [
            "numpy",
            "pandas",
            "six",
            "idna",
            "jupyterlab",
            "requests",
            "attrs",
            "scipy",
            "matplotlib",
            "torch",
            "certifi",
            "urllib3",
            "packaging",
            "pyyaml",
            "jinja2",
            "markupsafe",
            "click",
            "tqdm",
            "pillow",
            "sympy",
        ];
        let used: BTreeSet<u64> = names.iter().map(|n| bucket(n)).collect();
        assert!(used.len() as u64 >= BUCKETS / 2, "{used:?}");
        assert_eq!(bucket("numpy"), bucket("numpy"));
        assert!(names.iter().all(|n| bucket(n) < BUCKETS));
    }
}
