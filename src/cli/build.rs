//! `envbuild build`: the lock into an OCI layout, a `docker load`/`podman load` archive, or a
//! registry.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_STALE, EXIT_USAGE, Failure, GlobalArgs};
use crate::build::{self, BuildRequest, BuiltImage};
use crate::lock::Lock;
use crate::platform::Platform;
use crate::registry::PushOptions;
use crate::spec::{self, Spec};

/// Where the image goes when `--output` is not given.
pub const DEFAULT_OUTPUT: &str = "oci:envbuild-out";

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Target to build (repeatable; default: every target of the lock).
    #[arg(long, short = 't', value_name = "TARGET")]
    pub target: Vec<String>,
    /// Platform to build (repeatable; default: every platform of the lock).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Vec<String>,
    /// `oci:DIR` (an OCI image layout, default `oci:envbuild-out`) or `archive:FILE` (a
    /// tarball for `podman load` / `docker load`; one target, one platform).
    #[arg(long, short = 'o', value_name = "DEST")]
    pub output: Option<String>,
    /// Push the built target to this registry reference.
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// Write the pushed (or built) digest to this file.
    #[arg(long, value_name = "PATH")]
    pub digest_file: Option<PathBuf>,
    /// Use only the cache: fail, naming what is missing, instead of downloading.
    #[arg(long)]
    pub offline: bool,
    /// Build from the lock even when the spec changed since it was written.
    #[arg(long)]
    pub frozen: bool,
    #[command(flatten)]
    pub registry: super::push::RegistryArgs,
}

/// Where the build writes.
enum Output {
    Layout(PathBuf),
    Archive(PathBuf),
}

fn parse_output(s: &str) -> Result<Output, Failure> {
    if let Some(dir) = s.strip_prefix("oci:") {
        Ok(Output::Layout(PathBuf::from(dir)))
    } else if let Some(file) = s.strip_prefix("archive:") {
        Ok(Output::Archive(PathBuf::from(file)))
    } else {
        Err(Failure::msg(
            EXIT_USAGE,
            format!(
                "Unknown output `{s}`\nhint: use `oci:DIR` for an OCI layout or `archive:FILE` \
                 for a tarball"
            ),
        ))
    }
}

/// Loads the spec and the lock and refuses a lock the spec has moved away from.
pub fn load_fresh(global: &GlobalArgs, frozen: bool) -> Result<(Spec, Lock), Failure> {
    let spec = Spec::load(&global.spec)?;
    let lock_path = global.lock_path();
    if !lock_path.exists() {
        return Err(Failure::msg(
            EXIT_STALE,
            format!(
                "No lock at `{}`\nhint: run `envbuild lock` first",
                lock_path.display()
            ),
        ));
    }
    let lock = Lock::load(&lock_path)?;
    let text = std::fs::read_to_string(&global.spec).unwrap_or_default();
    let checksum = spec::spec_checksum(&text).map_err(|e| Failure::msg(1, e.to_string()))?;
    if checksum != lock.spec_checksum && !frozen {
        return Err(Failure::msg(
            EXIT_STALE,
            format!(
                "The lock `{}` is out of date: `{}` changed since it was written\nhint: run \
                 `envbuild lock`, or pass `--frozen` to build the lock as it is",
                lock_path.display(),
                global.spec.display()
            ),
        ));
    }
    Ok((spec, lock))
}

pub fn run(global: &GlobalArgs, args: BuildArgs) -> Result<(), Failure> {
    let (spec, lock) = load_fresh(global, args.frozen)?;
    let output = parse_output(args.output.as_deref().unwrap_or(DEFAULT_OUTPUT))?;
    let mut platforms = Vec::new();
    for p in &args.platform {
        platforms.push(p.parse::<Platform>()?);
    }
    let targets = if args.target.is_empty() {
        lock.targets.keys().cloned().collect()
    } else {
        args.target.clone()
    };
    let one_image = targets.len() == 1;
    if args.push.is_some() && !one_image {
        return Err(Failure::msg(
            EXIT_USAGE,
            "`--push` takes one target\nhint: pass `--target NAME`",
        ));
    }
    let request = BuildRequest {
        targets,
        platforms,
        source_date_epoch: source_date_epoch()?,
        offline: args.offline,
        registry: args.registry.options(&spec.image.insecure_registries)?,
    };

    // An archive or a push starts from a layout; the layout is a temporary one unless asked for.
    let scratch = tempfile::tempdir().map_err(|e| Failure::msg(1, e.to_string()))?;
    let layout_dir = match &output {
        Output::Layout(dir) => dir.clone(),
        Output::Archive(_) => scratch.path().join("layout"),
    };
    let cache = global.cache();
    let images = build::build(
        &lock,
        &spec,
        &request,
        &cache,
        &layout_dir,
        super::progress::reporter(global).as_ref(),
    )?;

    if let Output::Archive(file) = &output {
        write_archive(&layout_dir, &images, file)?;
    }
    let sboms = write_sboms(&lock, &images, &output)?;
    if args.push.is_none() || !global.json {
        report(global, &images, &sboms, &layout_dir, &output, None);
    }

    if let (Some(reference), Some(image)) = (&args.push, images.first()) {
        // The base's blobs are mounted when it lives in another repository of the same
        // registry, instead of being uploaded again.
        let push = PushOptions {
            mount_from: vec![lock.base.reference.clone()],
            ..PushOptions::default()
        };
        let pushed = crate::registry::push_layout(
            &layout_dir,
            Some(&image.tag),
            reference,
            &request.registry,
            &push,
            super::progress::reporter(global).as_ref(),
        )?;
        push_sboms(
            &lock,
            image,
            &layout_dir,
            reference,
            &request.registry,
            global,
        )?;
        if global.json {
            // One JSON document on stdout: the images and the push together.
            report(global, &images, &sboms, &layout_dir, &output, Some(&pushed));
        }
        return super::push::finish(global, &pushed, args.digest_file.as_deref(), true);
    }
    if let (Some(path), Some(image)) = (&args.digest_file, images.first()) {
        super::push::write_digest(path, &image.digest)?;
    }
    Ok(())
}

/// Attaches each platform's SBOM to its pushed manifest as an OCI referrer; the image's own
/// manifests and tag are untouched, so its digest stays what the build printed.
fn push_sboms(
    lock: &Lock,
    image: &BuiltImage,
    layout_dir: &Path,
    reference: &str,
    opts: &crate::registry::RegistryOptions,
    global: &GlobalArgs,
) -> Result<(), Failure> {
    let layout = crate::image::Layout::open(layout_dir)?;
    for p in &image.platforms {
        let path = layout.blob_path(&p.manifest)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| Failure::msg(1, format!("Failed to read `{}`: {e}", path.display())))?
            .len();
        let subject = crate::image::Descriptor {
            media_type: crate::image::MEDIA_TYPE_MANIFEST.to_string(),
            digest: p.manifest.clone(),
            size,
        };
        let sbom = crate::sbom::cyclonedx(lock, &image.target, p.platform);
        let report = crate::registry::push_referrer(
            reference,
            &subject,
            crate::sbom::MEDIA_TYPE,
            sbom.as_bytes(),
            opts,
        )?;
        if !global.quiet {
            eprintln!(
                "Attached the {} SBOM to {} as {}",
                p.platform.as_str(),
                p.manifest,
                report.digest
            );
        }
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH`, when set, overrides the lock's time.
fn source_date_epoch() -> Result<Option<i64>, Failure> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|_| {
            Failure::msg(
                EXIT_USAGE,
                format!("`SOURCE_DATE_EPOCH` must be whole seconds since 1970, found `{v}`"),
            )
        }),
        _ => Ok(None),
    }
}

fn write_archive(layout_dir: &Path, images: &[BuiltImage], file: &Path) -> Result<(), Failure> {
    let [image] = images else {
        return Err(Failure::msg(
            EXIT_USAGE,
            "An archive holds one image\nhint: pass `--target NAME`",
        ));
    };
    let [platform] = image.platforms.as_slice() else {
        return Err(Failure::msg(
            EXIT_USAGE,
            "An archive holds one platform\nhint: pass `--platform OS/ARCH`",
        ));
    };
    let layout = crate::image::Layout::open(layout_dir)?;
    let manifest = layout.resolve_tag(Some(&image.tag))?;
    let _ = platform;
    let repo_tag = format!("localhost/envbuild:{}", image.tag);
    crate::image::write_archive(&layout, &manifest, &repo_tag, file)?;
    Ok(())
}

/// Writes the CycloneDX SBOM of every built image and platform beside the output: in the
/// layout's `sbom/` folder (a plain file, so the layout's `index.json` and the image digests are
/// untouched), or as `FILE.cdx.json` beside an archive. Returns the paths per image.
fn write_sboms(
    lock: &Lock,
    images: &[BuiltImage],
    output: &Output,
) -> Result<Vec<Vec<PathBuf>>, Failure> {
    let mut out = Vec::new();
    for image in images {
        let mut paths = Vec::new();
        for p in &image.platforms {
            let path = match output {
                Output::Layout(dir) => dir
                    .join("sbom")
                    .join(crate::sbom::file_name(&image.target, p.platform)),
                Output::Archive(file) => {
                    let mut name = file.as_os_str().to_owned();
                    name.push(".cdx.json");
                    PathBuf::from(name)
                }
            };
            crate::sbom::write(lock, &image.target, p.platform, &path)?;
            paths.push(path);
        }
        out.push(paths);
    }
    Ok(out)
}

/// One built image as `--json` shows it: the image and where its SBOMs are.
#[derive(serde::Serialize)]
struct ImageReport<'a> {
    #[serde(flatten)]
    image: &'a BuiltImage,
    sbom: &'a [PathBuf],
}

fn report(
    global: &GlobalArgs,
    images: &[BuiltImage],
    sboms: &[Vec<PathBuf>],
    layout_dir: &Path,
    output: &Output,
    pushed: Option<&crate::registry::PushReport>,
) {
    if global.json {
        let list: Vec<ImageReport> = images
            .iter()
            .zip(sboms)
            .map(|(image, sbom)| ImageReport { image, sbom })
            .collect();
        let doc = match pushed {
            Some(push) => serde_json::json!({ "images": list, "push": push }),
            None => serde_json::json!(list),
        };
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    for (image, sbom) in images.iter().zip(sboms) {
        if !global.quiet {
            let platforms: Vec<&str> = image
                .platforms
                .iter()
                .map(|p| p.platform.as_str())
                .collect();
            let place = match output {
                Output::Layout(_) => format!("oci:{}:{}", layout_dir.display(), image.tag),
                Output::Archive(f) => format!("archive:{}", f.display()),
            };
            eprintln!(
                "Built {} for {} into {place}",
                image.target,
                platforms.join(", ")
            );
            for path in sbom {
                eprintln!("  SBOM {}", path.display());
            }
        }
        println!("{} {}", image.target, image.digest);
    }
}
