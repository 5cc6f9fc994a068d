//! `envbuild verify`: rebuild from the lock and compare with an image that was built or pushed
//! before. On a mismatch it names the platform, the layer and the first file that differs — the
//! question a user has when reproducibility breaks.

use clap::Args;
use serde_json::Value;

use super::build::load_fresh;
use super::image_facts::Source;
use super::{EXIT_FAILURE, EXIT_USAGE, Failure, GlobalArgs};
use crate::build::{self, BuildRequest};
use crate::image::Layout;
use crate::layer::{self, ListedEntry};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image to check: `oci:DIR[:TAG]` or a registry reference.
    pub image: String,
    /// Target to rebuild (default: `prod`, or the lock's only target).
    #[arg(long, short = 't', value_name = "TARGET")]
    pub target: Option<String>,
    /// Use only the cache.
    #[arg(long)]
    pub offline: bool,
    #[command(flatten)]
    pub registry: super::push::RegistryArgs,
}

pub fn run(global: &GlobalArgs, args: VerifyArgs) -> Result<(), Failure> {
    let (spec, lock) = load_fresh(global, false)?;
    let target = match &args.target {
        Some(t) => t.clone(),
        None if lock.targets.len() == 1 => lock.targets.keys().next().cloned().unwrap_or_default(),
        None => "prod".to_string(),
    };
    let opts = args.registry.options(&spec.image.insecure_registries)?;
    let cache = global.cache();

    // The image to compare with, and its root digest.
    let (other, other_digest) = Source::open(&args.image, Some(&target), &opts, &cache)?;

    // Rebuild into a scratch layout.
    let scratch = tempfile::tempdir().map_err(|e| Failure::msg(EXIT_FAILURE, e.to_string()))?;
    let out = scratch.path().join("layout");
    let request = BuildRequest {
        targets: vec![target.clone()],
        platforms: Vec::new(),
        source_date_epoch: None,
        offline: args.offline,
        registry: opts,
    };
    let images = build::build(
        &lock,
        &spec,
        &request,
        &cache,
        &out,
        super::progress::reporter(global).as_ref(),
    )?;
    let Some(image) = images.first() else {
        return Err(Failure::msg(
            EXIT_USAGE,
            format!("Nothing was built for `{target}`"),
        ));
    };
    if image.digest == other_digest {
        if global.json {
            println!(
                "{}",
                serde_json::json!({"verified": true, "digest": image.digest})
            );
        } else {
            println!("{}", image.digest);
            if !global.quiet {
                eprintln!("Verified: `{}` is what the lock builds", args.image);
            }
        }
        return Ok(());
    }

    let mine = Layout::open(&out)?;
    let finding = explain(&mine, &image.digest, &other, &other_digest)?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({"verified": false, "expected": image.digest,
                "found": other_digest, "difference": finding})
        );
    }
    Err(Failure::msg(
        EXIT_FAILURE,
        format!(
            "`{}` is not what the lock builds: expected `{}`, found `{}`\n{finding}",
            args.image, image.digest, other_digest
        ),
    ))
}

/// `DIR[:TAG]`, with the tag after the last `:` unless that part looks like a path.
pub(crate) fn split_layout(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once(':') {
        Some((d, t)) if !t.contains('/') && !d.is_empty() => (d, Some(t)),
        _ => (s, None),
    }
}

/// Platform → manifest digest of a root (an index, or one manifest under the name `image`).
fn manifests(root: &Value, digest: &str) -> Vec<(String, String)> {
    match root.get("manifests").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|m| {
                let p = &m["platform"];
                let name = format!(
                    "{}/{}",
                    p["os"].as_str().unwrap_or("?"),
                    p["architecture"].as_str().unwrap_or("?")
                );
                (name, m["digest"].as_str().unwrap_or_default().to_string())
            })
            .collect(),
        None => vec![("image".to_string(), digest.to_string())],
    }
}

fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|d| d["digest"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Finds the first platform, layer and file that differ.
fn explain(
    mine: &Layout,
    my_digest: &str,
    other: &Source,
    other_digest: &str,
) -> Result<String, Failure> {
    let read_mine = |d: &str| -> Result<Value, Failure> {
        serde_json::from_slice(&mine.read_blob(d)?)
            .map_err(|e| Failure::msg(EXIT_FAILURE, format!("`{d}` is not JSON: {e}")))
    };
    let my_root = read_mine(my_digest)?;
    let other_root = other.json(other_digest)?;
    let theirs = manifests(&other_root, other_digest);
    for (platform, my_manifest) in manifests(&my_root, my_digest) {
        let Some((_, their_manifest)) = theirs.iter().find(|(p, _)| *p == platform) else {
            return Ok(format!("The image has no `{platform}` manifest"));
        };
        if *their_manifest == my_manifest {
            continue;
        }
        let a = read_mine(&my_manifest)?;
        let b = other.json(their_manifest)?;
        let (la, lb) = (layer_digests(&a), layer_digests(&b));
        for (i, (x, y)) in la.iter().zip(&lb).enumerate() {
            if x == y {
                continue;
            }
            let files_a =
                layer::list_layer(&mine.blobs_dir().join(x.trim_start_matches("sha256:")))?;
            let files_b = layer::list_layer(&other.blob(y)?)?;
            return Ok(format!(
                "{platform}: layer {} differs (expected `{x}`, found `{y}`): {}",
                i + 1,
                first_difference(&files_a, &files_b)
            ));
        }
        if la.len() != lb.len() {
            return Ok(format!(
                "{platform}: the lock builds {} layers, the image has {}",
                la.len(),
                lb.len()
            ));
        }
        return Ok(format!(
            "{platform}: the layers are the same; the config differs (expected `{}`, found `{}`)",
            a["config"]["digest"].as_str().unwrap_or("?"),
            b["config"]["digest"].as_str().unwrap_or("?")
        ));
    }
    Ok("The index differs but every platform's manifest is the same".to_string())
}

/// The first file, in path order, that is missing from one side or differs.
fn first_difference(a: &[ListedEntry], b: &[ListedEntry]) -> String {
    let mut a: Vec<&ListedEntry> = a.iter().collect();
    let mut b: Vec<&ListedEntry> = b.iter().collect();
    a.sort_by(|x, y| x.path.cmp(&y.path));
    b.sort_by(|x, y| x.path.cmp(&y.path));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.path == y.path => {
                if x != y {
                    return format!(
                        "first differing file `/{}`: expected size {} mode {:o} sha256 {}, found \
                         size {} mode {:o} sha256 {}",
                        x.path,
                        x.size,
                        x.mode,
                        x.sha256.as_deref().unwrap_or("-"),
                        y.size,
                        y.mode,
                        y.sha256.as_deref().unwrap_or("-")
                    );
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.path < y.path => {
                return format!("`/{}` is missing from the image", x.path);
            }
            (Some(_), Some(y)) | (None, Some(y)) => {
                return format!("`/{}` is in the image but not in the rebuild", y.path);
            }
            (Some(x), None) => return format!("`/{}` is missing from the image", x.path),
            (None, None) => break,
        }
    }
    "the files are the same; the tar headers or compression differ".to_string()
}
