//! `envbuild diff A B`: what changed between two locks, or two images, package by package.

use std::collections::BTreeMap;
use std::path::Path;

use clap::Args;
use serde::Serialize;

use super::image_facts::{PlatformFacts, read_image};
use super::{EXIT_USAGE, Failure, GlobalArgs};
use crate::lock::Lock;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older side: a lock file, `oci:DIR[:TAG]`, or a registry reference.
    pub old: String,
    /// The newer side, of the same kind.
    pub new: String,
    #[command(flatten)]
    pub registry: super::push::RegistryArgs,
}

/// A lock file rather than an image: named `*.lock`, or an existing file.
fn is_lock(what: &str) -> bool {
    !what.starts_with("oci:") && (what.ends_with(".lock") || Path::new(what).is_file())
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum Change {
    Added {
        kind: &'static str,
        name: String,
        version: String,
    },
    Removed {
        kind: &'static str,
        name: String,
        version: String,
    },
    Changed {
        kind: &'static str,
        name: String,
        old: String,
        new: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added {
                kind,
                name,
                version,
            } => write!(f, "+ {kind} {name} {version}"),
            Change::Removed {
                kind,
                name,
                version,
            } => write!(f, "- {kind} {name} {version}"),
            Change::Changed {
                kind,
                name,
                old,
                new,
            } => write!(f, "~ {kind} {name} {old} -> {new}"),
        }
    }
}

pub fn run(global: &GlobalArgs, args: DiffArgs) -> Result<(), Failure> {
    let changes = match (is_lock(&args.old), is_lock(&args.new)) {
        (true, true) => {
            let old = Lock::load(Path::new(&args.old))?;
            let new = Lock::load(Path::new(&args.new))?;
            diff_locks(&old, &new)
        }
        (false, false) => {
            let opts = args.registry.options(&[])?;
            let cache = global.cache();
            let old = read_image(&args.old, &opts, &cache)?;
            let new = read_image(&args.new, &opts, &cache)?;
            diff_images(&old, &new)
        }
        _ => {
            return Err(Failure::msg(
                EXIT_USAGE,
                format!(
                    "`{}` and `{}` are not of one kind\nhint: compare two locks or two images; \
                     `envbuild verify IMAGE` checks an image against the lock",
                    args.old, args.new
                ),
            ));
        }
    };
    if global.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&changes).unwrap_or_default()
        );
    } else if changes.is_empty() {
        if !global.quiet {
            eprintln!("No differences");
        }
    } else {
        for c in &changes {
            println!("{c}");
        }
    }
    Ok(())
}

/// Differences between two locks: base digests, packages (version, and wheel when the version
/// stayed but a file changed), extensions.
pub fn diff_locks(old: &Lock, new: &Lock) -> Vec<Change> {
    let mut out = Vec::new();

    // The base, per platform: a new digest means every layer above it is new too.
    let bases = |l: &Lock| -> BTreeMap<String, String> {
        l.base
            .platforms
            .iter()
            .map(|p| {
                let digest = p
                    .manifest_digest
                    .clone()
                    .unwrap_or_else(|| l.base.reference.clone());
                (p.platform.to_string(), digest)
            })
            .collect()
    };
    compare(&mut out, "base", &bases(old), &bases(new));

    let packages = |l: &Lock| -> BTreeMap<String, String> {
        l.packages
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect()
    };
    compare(&mut out, "package", &packages(old), &packages(new));

    // Same version, different file: a rebuilt wheel, or a platform now served another file.
    for p in &new.packages {
        let Some(q) = old
            .packages
            .iter()
            .find(|q| q.name == p.name && q.version == p.version)
        else {
            continue;
        };
        for w in &p.wheels {
            for &platform in &w.platforms {
                if let Some(ow) = q.wheel_for(platform)
                    && ow.sha256 != w.sha256
                {
                    out.push(Change::Changed {
                        kind: "wheel",
                        name: format!("{} ({platform})", p.name),
                        old: ow.file.clone(),
                        new: w.file.clone(),
                    });
                }
            }
        }
    }

    let extensions = |l: &Lock| -> BTreeMap<String, String> {
        l.extensions
            .iter()
            .map(|e| (e.id.clone(), e.version.clone()))
            .collect()
    };
    compare(&mut out, "extension", &extensions(old), &extensions(new));
    out
}

/// Differences between two images, platform by platform: base layers, packages, extensions.
/// With one platform on both sides, names carry no platform.
pub fn diff_images(
    old: &BTreeMap<String, PlatformFacts>,
    new: &BTreeMap<String, PlatformFacts>,
) -> Vec<Change> {
    let mut out = Vec::new();
    let single = old.len() == 1 && new.len() == 1;
    let platforms: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for platform in platforms {
        let suffix = |name: &str| {
            if single {
                name.to_string()
            } else {
                format!("{name} ({platform})")
            }
        };
        let (Some(a), Some(b)) = (old.get(platform), new.get(platform)) else {
            let (name, version) = (platform.clone(), "image".to_string());
            out.push(if old.contains_key(platform) {
                Change::Removed {
                    kind: "platform",
                    name,
                    version,
                }
            } else {
                Change::Added {
                    kind: "platform",
                    name,
                    version,
                }
            });
            continue;
        };
        // The base as its top layer and layer count: a new base changes every layer above it.
        let base = |f: &PlatformFacts| {
            let top = f.base_layers.last().map_or("none", |d| {
                let hex = d.trim_start_matches("sha256:");
                hex.get(..12).unwrap_or(hex)
            });
            BTreeMap::from([(
                suffix("base"),
                format!("{} layers, top {top}", f.base_layers.len()),
            )])
        };
        compare(&mut out, "base", &base(a), &base(b));
        let named = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter().map(|(k, v)| (suffix(k), v.clone())).collect()
        };
        compare(
            &mut out,
            "package",
            &named(&a.packages),
            &named(&b.packages),
        );
        compare(
            &mut out,
            "extension",
            &named(&a.extensions),
            &named(&b.extensions),
        );
    }
    out
}

fn compare(
    out: &mut Vec<Change>,
    kind: &'static str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) {
    for (name, version) in old {
        match new.get(name) {
            None => out.push(Change::Removed {
                kind,
                name: name.clone(),
                version: version.clone(),
            }),
            Some(v) if v != version => out.push(Change::Changed {
                kind,
                name: name.clone(),
                old: version.clone(),
                new: v.clone(),
            }),
            Some(_) => {}
        }
    }
    for (name, version) in new {
        if !old.contains_key(name) {
            out.push(Change::Added {
                kind,
                name: name.clone(),
                version: version.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_added_removed_changed() {
        let text = |pkgs: &str| {
            format!(
                "version = 1\nspec-checksum = \"x\"\nsource-date-epoch = 0\n[settings]\n\
                 indexes = []\nplatforms = [\"linux/amd64\"]\nvenv = \"/opt/venv\"\n[base]\n\
                 reference = \"scratch\"\n{pkgs}"
            )
        };
        let pkg = |n: &str, v: &str| {
            format!("[[package]]\nname = \"{n}\"\nversion = \"{v}\"\nindex = \"i\"\ntargets = []\n")
        };
        let p = std::path::Path::new("x.lock");
        let old = Lock::parse(&text(&(pkg("a", "1") + &pkg("b", "1"))), p).unwrap();
        let new = Lock::parse(&text(&(pkg("a", "2") + &pkg("c", "1"))), p).unwrap();
        let lines: Vec<String> = diff_locks(&old, &new)
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            lines,
            vec!["~ package a 1 -> 2", "- package b 1", "+ package c 1"]
        );
        assert!(diff_locks(&old, &old).is_empty());
    }
}
