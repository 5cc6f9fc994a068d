//! `envbuild inspect`: what a lock pins, or what an image holds, layer by layer.

use std::path::Path;

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::image_facts::Source;
use super::{EXIT_FAILURE, Failure, GlobalArgs};
use crate::lock::Lock;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A lock file, `oci:DIR[:TAG]`, or a registry reference.
    pub what: String,
    #[command(flatten)]
    pub registry: super::push::RegistryArgs,
}

/// One layer of an inspected image.
#[derive(Debug, Serialize)]
struct LayerRow {
    digest: String,
    size: u64,
    /// The history line: which packages or extensions the layer holds.
    holds: String,
}

/// One platform of an inspected image.
#[derive(Debug, Serialize)]
struct PlatformRow {
    platform: String,
    manifest: String,
    layers: Vec<LayerRow>,
    total_size: u64,
}

pub fn run(global: &GlobalArgs, args: InspectArgs) -> Result<(), Failure> {
    let path = Path::new(&args.what);
    if args.what.ends_with(".lock") || (path.is_file() && !args.what.starts_with("oci:")) {
        let lock = Lock::load(path)?;
        return inspect_lock(global, &lock);
    }
    let (source, root) = Source::open(
        &args.what,
        None,
        &args.registry.options(&[])?,
        &global.cache(),
    )?;
    let json = |d: &str| source.json(d);

    let root_json = json(&root)?;
    let mut manifests = Vec::new();
    match root_json.get("manifests").and_then(Value::as_array) {
        Some(list) => {
            for m in list {
                let p = &m["platform"];
                let platform = format!(
                    "{}/{}",
                    p["os"].as_str().unwrap_or("?"),
                    p["architecture"].as_str().unwrap_or("?")
                );
                manifests.push((
                    platform,
                    m["digest"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        None => manifests.push((String::new(), root.clone())),
    }

    let mut rows = Vec::new();
    for (platform, digest) in manifests {
        let manifest = json(&digest)?;
        let config = source.config(manifest["config"]["digest"].as_str().unwrap_or_default())?;
        let platform = if platform.is_empty() {
            format!(
                "{}/{}",
                config["os"].as_str().unwrap_or("?"),
                config["architecture"].as_str().unwrap_or("?")
            )
        } else {
            platform
        };
        // History lines of the layers that exist, in order (empty layers have no blob).
        let history: Vec<String> = config["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .filter(|e| !e["empty_layer"].as_bool().unwrap_or(false))
                    .map(|e| e["created_by"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut layers = Vec::new();
        for (i, l) in manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            layers.push(LayerRow {
                digest: l["digest"].as_str().unwrap_or_default().to_string(),
                size: l["size"].as_u64().unwrap_or(0),
                holds: history
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| "base".to_string()),
            });
        }
        let total_size = layers.iter().map(|l| l.size).sum();
        rows.push(PlatformRow {
            platform,
            manifest: digest,
            layers,
            total_size,
        });
    }

    if global.json {
        let doc = serde_json::json!({"digest": root, "platforms": rows});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(());
    }
    println!("{} {root}", args.what);
    for p in &rows {
        println!(
            "{} {} ({} layers, {})",
            p.platform,
            p.manifest,
            p.layers.len(),
            human(p.total_size)
        );
        for l in &p.layers {
            println!("  {} {:>10}  {}", short(&l.digest), human(l.size), l.holds);
        }
    }
    Ok(())
}

fn inspect_lock(global: &GlobalArgs, lock: &Lock) -> Result<(), Failure> {
    if global.json {
        let doc =
            serde_json::to_value(lock).map_err(|e| Failure::msg(EXIT_FAILURE, e.to_string()))?;
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(());
    }
    println!("base {}", lock.base.reference);
    for b in &lock.base.platforms {
        println!(
            "  {} {} python {} ({}) {}",
            b.platform,
            b.manifest_digest.as_deref().unwrap_or("-"),
            b.python_version,
            b.interpreter,
            b.libc
        );
    }
    for name in lock.targets.keys() {
        let packages: Vec<_> = lock.packages_in(name).collect();
        let extensions: Vec<_> = lock.extensions_in(name).collect();
        println!(
            "target {name}: {} packages, {} extensions",
            packages.len(),
            extensions.len()
        );
        for p in packages {
            let size: u64 = p.wheels.iter().filter_map(|w| w.size).max().unwrap_or(0);
            println!("  {} {} {:>10}", p.name, p.version, human(size));
        }
        for e in extensions {
            println!("  {} {} (vscode)", e.id, e.version);
        }
    }
    Ok(())
}

fn short(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

/// Sizes in powers of 1024 with one decimal.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
