//! `envbuild build`: from the lock to image layers, configs, manifests and an OCI layout.
//!
//! The build reads only the lock (and the spec for the image settings, after checking the lock
//! was made from it); it never resolves. It runs in three steps:
//! 1. fetch: every wheel, extension and base blob into the cache, each verified by sha256;
//! 2. plan: the layers of every requested image (see `plan`), deduplicated across targets and
//!    platforms, with the entries each holds;
//! 3. write: layers in parallel (they are independent), then configs, manifests, indexes and
//!    tags, in a fixed order so the parallelism can never show in the bytes.

mod fetch;
mod layers;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use fetch::{Artifact, fetch_all, fetch_one, wheel_artifacts};
use plan::{LayerContent, Link};

use crate::base::{BaseError, BaseRef};
use crate::cache::{Cache, CacheError};
use crate::image::{self, ConfigSpec, Descriptor, ImageError, Layout};
use crate::layer::memo::Memo;
use crate::layer::{Entry, EntryKind, LayerError, LayerInfo, LayerOptions};
use crate::lock::Lock;
use crate::platform::Platform;
use crate::progress::{Reporter, Stage};
use crate::registry::RegistryOptions;
use crate::spec::Spec;
use crate::wheel::{self, InstallTarget, Installed, WheelError};

/// Errors met while building.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("The lock has no target `{target}` (it has: {available})")]
    UnknownTarget { target: String, available: String },
    #[error(
        "The lock was made for {available}, not `{platform}`\nhint: add `{platform}` to \
         `image.platforms` and run `envbuild lock`"
    )]
    UnknownPlatform {
        platform: Platform,
        available: String,
    },
    #[error(
        "Package `{package}` {version} has no wheel for `{platform}` in the lock\nhint: run \
         `envbuild lock` again"
    )]
    MissingWheel {
        package: String,
        version: String,
        platform: Platform,
    },
    #[error("`{path}` is installed by both `{first}` and `{second}` on `{platform}`")]
    Conflict {
        path: String,
        first: String,
        second: String,
        platform: Platform,
    },
    #[error(
        "Image `{target}` for `{platform}` would have {count} layers, more than {max}\nhint: \
         raise `python.own-layer-threshold` so fewer packages get a layer of their own"
    )]
    TooManyLayers {
        target: String,
        platform: Platform,
        count: usize,
        max: usize,
    },
    #[error("Failed to install wheel `{file}`")]
    Wheel {
        file: String,
        #[source]
        source: WheelError,
    },
    #[error(
        "Wheel `{file}` does not match its own `RECORD` at `{path}`: `RECORD` says sha256 \
         `{expected}`, the member is `{actual}`\nhint: the wheel is the locked one but is \
         broken as published; pin another version of the package, or report it to its \
         maintainers"
    )]
    RecordMismatch {
        file: String,
        path: String,
        expected: String,
        actual: String,
    },
    #[error("Failed to write a layer ({what})")]
    Layer {
        what: String,
        #[source]
        source: Box<LayerError>,
    },
    #[error("Failed to read base image `{reference}`")]
    Base {
        reference: String,
        #[source]
        source: BaseError,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Http(crate::http::HttpError),
    #[error(transparent)]
    Vsix(#[from] crate::vsix::VsixError),
    #[error(transparent)]
    Jupyter(#[from] crate::jupyter::JupyterError),
    #[error("{0}")]
    Internal(String),
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub targets: Vec<String>,
    /// Empty means every platform of the lock.
    pub platforms: Vec<Platform>,
    /// Seconds since the epoch for file times and `created`; the lock's value when `None`.
    pub source_date_epoch: Option<i64>,
    pub offline: bool,
    pub registry: RegistryOptions,
}

/// One image written to the layout.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuiltImage {
    pub target: String,
    /// The tag in the layout (the target name).
    pub tag: String,
    /// Digest of the index (several platforms) or of the manifest (one platform).
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub platforms: Vec<BuiltPlatform>,
}

/// One platform's manifest of a built image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuiltPlatform {
    pub platform: Platform,
    pub manifest: String,
    /// Layer digests, base first.
    pub layers: Vec<String>,
}

impl BuiltImage {
    /// The descriptor the layout's tag points at.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
        }
    }
}

/// Everything the layer producers need about one platform.
struct PlatformCtx {
    platform: Platform,
    install: InstallTarget,
    /// Base layers as they are in the base: never re-tarred.
    base_layers: Vec<(Descriptor, PathBuf)>,
    base_config: Option<Vec<u8>>,
    /// Cache path of each package's wheel for this platform.
    wheels: BTreeMap<String, (String, PathBuf)>,
}

/// A layer to write, shared by every image that has the same content on the same platform.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct JobKey {
    platform: Platform,
    content: LayerContent,
}

/// Builds the requested targets into the OCI layout at `out`, creating it when needed; reports
/// downloads and layer writes to `reporter`.
pub fn build(
    lock: &Lock,
    spec: &Spec,
    request: &BuildRequest,
    cache: &Cache,
    out: &Path,
    reporter: &dyn Reporter,
) -> Result<Vec<BuiltImage>, BuildError> {
    let platforms = platforms(lock, &request.platforms)?;
    for t in &request.targets {
        if !lock.targets.contains_key(t) {
            return Err(BuildError::UnknownTarget {
                target: t.clone(),
                available: lock.targets.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
    }
    let epoch = request.source_date_epoch.unwrap_or(lock.source_date_epoch);

    // 1. Fetch: wheels, base blobs and extensions, verified into the cache.
    let Inputs { ctxs, vsix_paths } =
        fetch_inputs(lock, spec, request, cache, &platforms, reporter)?;

    // 2. Plan: read each wheel's table of contents once per platform, then lay out the images.
    let installed = install_all(lock, &ctxs)?;
    let threshold = spec
        .python
        .own_layer_threshold
        .unwrap_or(plan::DEFAULT_OWN_LAYER_THRESHOLD);
    let mut images = Vec::new();
    let mut jobs: BTreeSet<JobKey> = BTreeSet::new();
    for target in &request.targets {
        let chain = plan::chain(lock, spec, target);
        for ctx in &ctxs {
            let sizes = installed
                .iter()
                .filter(|((p, _, _), _)| *p == ctx.platform)
                .map(|((_, name, _), inst)| (name.clone(), inst.installed_size))
                .collect();
            let contents = plan::target_layers(lock, &chain, &sizes, threshold);
            let count = ctx.base_layers.len() + contents.len();
            if count > plan::MAX_LAYERS {
                return Err(BuildError::TooManyLayers {
                    target: target.clone(),
                    platform: ctx.platform,
                    count,
                    max: plan::MAX_LAYERS,
                });
            }
            check_conflicts(&contents, ctx.platform, &installed)?;
            jobs.extend(contents.iter().map(|c| JobKey {
                platform: ctx.platform,
                content: c.clone(),
            }));
            images.push((target.clone(), chain.clone(), ctx.platform, contents));
        }
    }

    // 3. Write: layers in parallel (`layers`), then the JSON documents in plan order.
    let layout = if out.join("oci-layout").exists() {
        Layout::open(out)?
    } else {
        Layout::create(out)?
    };
    let jobs: Vec<JobKey> = jobs.into_iter().collect();
    let inputs = layers::JobInputs {
        lock,
        spec,
        ctxs: &ctxs,
        installed: &installed,
        vsix_paths: &vsix_paths,
        opts: LayerOptions {
            mtime: epoch.max(0) as u64,
        },
        memo: Memo::new(cache.root()),
        reporter,
    };
    let written = layers::write_layers(&inputs, &jobs, &layout, out)?;
    let layer_of: BTreeMap<&JobKey, &LayerInfo> = jobs.iter().zip(&written).collect();

    let mut manifests: BTreeMap<String, Vec<(Descriptor, Platform, BuiltPlatform)>> =
        BTreeMap::new();
    for (target, chain, platform, contents) in &images {
        let ctx = ctxs
            .iter()
            .find(|c| c.platform == *platform)
            .ok_or_else(|| BuildError::Internal("platform context missing".into()))?;
        let new: Vec<&LayerInfo> = contents
            .iter()
            .filter_map(|c| {
                layer_of
                    .get(&JobKey {
                        platform: *platform,
                        content: c.clone(),
                    })
                    .copied()
            })
            .collect();
        let (desc, built) = write_image(
            &layout, lock, spec, target, chain, ctx, contents, &new, epoch,
        )?;
        manifests
            .entry(target.clone())
            .or_default()
            .push((desc, *platform, built));
    }

    let mut out_images = Vec::new();
    for (target, list) in manifests {
        let root = if list.len() == 1 {
            list[0].0.clone()
        } else {
            let pairs: Vec<(Descriptor, Platform)> =
                list.iter().map(|(d, p, _)| (d.clone(), *p)).collect();
            let bytes = image::index_json(&pairs, &BTreeMap::new());
            layout.put_bytes(image::MEDIA_TYPE_INDEX, &bytes)?
        };
        layout.set_tag(&target, &root)?;
        out_images.push(BuiltImage {
            tag: target.clone(),
            target,
            digest: root.digest.clone(),
            media_type: root.media_type.clone(),
            size: root.size,
            platforms: list.into_iter().map(|(_, _, b)| b).collect(),
        });
    }
    Ok(out_images)
}

/// What the fetch step hands to the plan.
struct Inputs {
    ctxs: Vec<PlatformCtx>,
    /// sha256 of a VSIX → its cache path.
    vsix_paths: BTreeMap<String, PathBuf>,
}

/// Counts of what `fetch` made sure is in the cache.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FetchReport {
    pub wheels: usize,
    pub base_blobs: usize,
    pub extensions: usize,
}

/// Puts every artifact the request needs into the cache (for `envbuild fetch` and air-gapped
/// builds), without writing any image.
pub fn fetch(
    lock: &Lock,
    spec: &Spec,
    request: &BuildRequest,
    cache: &Cache,
    reporter: &dyn Reporter,
) -> Result<FetchReport, BuildError> {
    let platforms = platforms(lock, &request.platforms)?;
    let inputs = fetch_inputs(lock, spec, request, cache, &platforms, reporter)?;
    let wheels: BTreeSet<&PathBuf> = inputs
        .ctxs
        .iter()
        .flat_map(|c| c.wheels.values())
        .map(|(_, p)| p)
        .collect();
    let blobs: BTreeSet<&String> = inputs
        .ctxs
        .iter()
        .flat_map(|c| c.base_layers.iter().map(|(d, _)| &d.digest))
        .collect();
    Ok(FetchReport {
        wheels: wheels.len(),
        base_blobs: blobs.len(),
        extensions: inputs.vsix_paths.len(),
    })
}

fn fetch_inputs(
    lock: &Lock,
    spec: &Spec,
    request: &BuildRequest,
    cache: &Cache,
    platforms: &[Platform],
    reporter: &dyn Reporter,
) -> Result<Inputs, BuildError> {
    let spec_dir = spec.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let wheels = wheel_artifacts(lock, &request.targets, platforms);
    let wheel_paths = fetch_all(cache, &wheels, request.offline, reporter)?;
    let by_sha: BTreeMap<&str, &PathBuf> = wheels
        .iter()
        .map(|a| a.sha256.trim_start_matches("sha256:"))
        .zip(&wheel_paths)
        .collect();
    let mut ctxs = Vec::new();
    for &platform in platforms {
        ctxs.push(platform_ctx(
            lock, request, cache, &spec_dir, platform, &by_sha, reporter,
        )?);
    }
    let mut vsix_paths = BTreeMap::new();
    for e in &lock.extensions {
        if !e.targets.iter().any(|t| request.targets.contains(t)) {
            continue;
        }
        for a in &e.artifacts {
            if a.platforms.iter().any(|p| platforms.contains(p)) {
                let path = crate::vsix::fetch_artifact(a, &spec_dir, cache)?;
                vsix_paths.insert(a.sha256.clone(), path);
            }
        }
    }
    Ok(Inputs { ctxs, vsix_paths })
}

/// The platforms to build: those asked for, each of which the lock must cover.
fn platforms(lock: &Lock, asked: &[Platform]) -> Result<Vec<Platform>, BuildError> {
    let locked = &lock.settings.platforms;
    if asked.is_empty() {
        return Ok(locked.clone());
    }
    for p in asked {
        if !locked.contains(p) {
            return Err(BuildError::UnknownPlatform {
                platform: *p,
                available: locked
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let mut out = asked.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

fn platform_ctx(
    lock: &Lock,
    request: &BuildRequest,
    cache: &Cache,
    spec_dir: &Path,
    platform: Platform,
    by_sha: &BTreeMap<&str, &PathBuf>,
    reporter: &dyn Reporter,
) -> Result<PlatformCtx, BuildError> {
    let base = lock
        .base_for(platform)
        .ok_or_else(|| BuildError::UnknownPlatform {
            platform,
            available: lock
                .base
                .platforms
                .iter()
                .map(|p| p.platform.to_string())
                .collect(),
        })?;
    let reference = &lock.base.reference;
    let base_err = |source| BuildError::Base {
        reference: reference.clone(),
        source,
    };

    let mut base_layers = Vec::new();
    let mut base_config = None;
    if let Some(source) = BaseRef::parse(reference, spec_dir).source(&request.registry) {
        for l in &base.layers {
            let path = match cache.get_verified(l.digest.trim_start_matches("sha256:"))? {
                Some(p) => p,
                None if request.offline => {
                    return Err(CacheError::Missing {
                        what: format!("base layer of `{reference}`"),
                        sha256: l.digest.clone(),
                        cache: cache.root().to_path_buf(),
                    }
                    .into());
                }
                None => {
                    // Base blobs come through the base's source, which reports no bytes: the
                    // reporter hears of each blob as a whole.
                    let what = format!("base layer {} ({platform})", short(&l.digest));
                    reporter.started(Stage::Download, &what, Some(l.size));
                    let path = source.blob(&l.digest, cache).map_err(base_err)?;
                    reporter.advanced(Stage::Download, &what, l.size);
                    reporter.finished(Stage::Download, &what);
                    path
                }
            };
            let desc = Descriptor {
                media_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.size,
            };
            base_layers.push((desc, path));
        }
        if let Some(digest) = &base.config_digest {
            let bytes = source
                .config_bytes(reference, digest, cache)
                .map_err(base_err)?;
            base_config = Some(bytes);
        }
    }

    let mut wheels = BTreeMap::new();
    for p in &lock.packages {
        if !p.targets.iter().any(|t| request.targets.contains(t)) {
            continue;
        }
        let w = p
            .wheel_for(platform)
            .ok_or_else(|| BuildError::MissingWheel {
                package: p.name.clone(),
                version: p.version.clone(),
                platform,
            })?;
        let path = by_sha
            .get(w.sha256.trim_start_matches("sha256:"))
            .ok_or_else(|| BuildError::Internal(format!("wheel `{}` was not fetched", w.file)))?;
        wheels.insert(p.name.clone(), (w.file.clone(), (*path).clone()));
    }

    Ok(PlatformCtx {
        platform,
        install: InstallTarget {
            venv: lock.settings.venv.clone(),
            python_version: base.python_version.clone(),
            interpreter: base.interpreter.clone(),
        },
        base_layers,
        base_config,
        wheels,
    })
}

/// (platform, package, requested) → what installing the wheel gives.
type InstalledMap = BTreeMap<(Platform, String, bool), Installed>;

/// Reads every wheel's contents, for each way it is installed (REQUESTED or not).
fn install_all(lock: &Lock, ctxs: &[PlatformCtx]) -> Result<InstalledMap, BuildError> {
    let direct: BTreeSet<&str> = lock
        .targets
        .values()
        .flat_map(|t| t.direct.iter().map(String::as_str))
        .collect();
    let mut work = Vec::new();
    for ctx in ctxs {
        for (name, (file, path)) in &ctx.wheels {
            work.push((ctx, name, file, path, false));
            if direct.contains(name.as_str()) {
                work.push((ctx, name, file, path, true));
            }
        }
    }
    work.par_iter()
        .map(|(ctx, name, file, path, requested)| {
            let inst =
                wheel::install_entries(path, file, &ctx.install, *requested).map_err(|source| {
                    BuildError::Wheel {
                        file: (*file).clone(),
                        source,
                    }
                })?;
            Ok(((ctx.platform, (*name).clone(), *requested), inst))
        })
        .collect()
}

/// Two packages of one image writing the same file is an error naming both.
fn check_conflicts(
    contents: &[LayerContent],
    platform: Platform,
    installed: &InstalledMap,
) -> Result<(), BuildError> {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for c in contents {
        let LayerContent::Packages {
            names, requested, ..
        } = c
        else {
            continue;
        };
        for name in names {
            let key = (platform, name.clone(), requested.contains(name));
            let Some(inst) = installed.get(&key) else {
                continue;
            };
            for e in &inst.entries {
                if matches!(e.kind, EntryKind::Dir) {
                    continue;
                }
                if let Some(first) = owner.insert(&e.path, name) {
                    return Err(BuildError::Conflict {
                        path: format!("/{}", e.path),
                        first: first.to_string(),
                        second: name.clone(),
                        platform,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The entries of one planned layer.
fn layer_entries(
    lock: &Lock,
    spec: &Spec,
    ctx: &PlatformCtx,
    content: &LayerContent,
    installed: &InstalledMap,
    vsix_paths: &BTreeMap<String, PathBuf>,
) -> Result<Vec<Entry>, BuildError> {
    match content {
        LayerContent::Venv => Ok(wheel::venv_entries(&ctx.install)),
        LayerContent::Packages {
            names, requested, ..
        } => {
            let mut out = Vec::new();
            for name in names {
                let key = (ctx.platform, name.clone(), requested.contains(name));
                let inst = installed.get(&key).ok_or_else(|| {
                    BuildError::Internal(format!("package `{name}` was not planned"))
                })?;
                out.extend(inst.entries.iter().cloned());
            }
            Ok(out)
        }
        LayerContent::Extension { id, .. } => {
            let Some(vscode) = &spec.vscode else {
                return Ok(Vec::new());
            };
            let dir = crate::vsix::extensions_dir(vscode);
            let (ext, artifact) = extension(lock, id, ctx.platform)?;
            let path = vsix_paths
                .get(&artifact.sha256)
                .ok_or_else(|| BuildError::Internal(format!("extension `{id}` not fetched")))?;
            Ok(crate::vsix::extension_entries(ext, artifact, path, &dir)?)
        }
        LayerContent::VscodeConfig { link } => {
            let Some(vscode) = &spec.vscode else {
                return Ok(Vec::new());
            };
            let dir = crate::vsix::extensions_dir(vscode);
            let mut pairs = Vec::new();
            for e in lock.extensions.iter().filter(|e| e.targets.contains(link)) {
                pairs.push(extension(lock, &e.id, ctx.platform)?);
            }
            let mut out = vec![crate::vsix::extensions_json(
                &pairs,
                &dir,
                lock.source_date_epoch.saturating_mul(1000),
            )];
            out.extend(crate::vsix::settings_entry(vscode)?);
            Ok(out)
        }
        LayerContent::Jupyter { .. } => match &spec.jupyter {
            Some(j) => Ok(crate::jupyter::settings_entries(j, &lock.settings.venv)?),
            None => Ok(Vec::new()),
        },
    }
}

fn extension<'a>(
    lock: &'a Lock,
    id: &str,
    platform: Platform,
) -> Result<
    (
        &'a crate::lock::ExtensionLock,
        &'a crate::lock::ExtensionArtifact,
    ),
    BuildError,
> {
    let ext = lock
        .extensions
        .iter()
        .find(|e| e.id == id)
        .ok_or_else(|| BuildError::Internal(format!("extension `{id}` not in the lock")))?;
    let artifact = ext.artifact_for(platform).ok_or_else(|| {
        BuildError::Internal(format!("extension `{id}` has no `{platform}` file"))
    })?;
    Ok((ext, artifact))
}

/// Writes one platform's config and manifest; returns the manifest descriptor.
#[allow(clippy::too_many_arguments)]
fn write_image(
    layout: &Layout,
    lock: &Lock,
    spec: &Spec,
    target: &str,
    chain: &[Link],
    ctx: &PlatformCtx,
    contents: &[LayerContent],
    new: &[&LayerInfo],
    epoch: i64,
) -> Result<(Descriptor, BuiltPlatform), BuildError> {
    let mut layer_descs = Vec::new();
    for (desc, path) in &ctx.base_layers {
        layer_descs.push(layout.put_file(&desc.media_type, path, &desc.digest, desc.size)?);
    }
    for l in new {
        layer_descs.push(Descriptor {
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
        });
    }

    let config = ConfigSpec {
        platform: ctx.platform,
        created: epoch,
        env: image_env(lock, spec, target, chain, ctx),
        user: spec.image.user.clone(),
        workdir: spec.image.workdir.clone(),
        entrypoint: spec.target(target).and_then(|t| t.entrypoint),
        cmd: spec.target(target).and_then(|t| t.cmd),
        labels: spec.image.labels.clone(),
    };
    let history: Vec<(String, String)> = contents
        .iter()
        .zip(new)
        .map(|(c, l)| (l.diff_id.clone(), c.created_by()))
        .collect();
    let config_bytes = image::config_json(ctx.base_config.as_deref(), &config, &history)?;
    let config_desc = layout.put_bytes(image::MEDIA_TYPE_CONFIG, &config_bytes)?;

    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.created".to_string(),
        rfc3339(epoch),
    );
    if let Some(base) = lock.base_for(ctx.platform)
        && let Some(digest) = &base.manifest_digest
    {
        annotations.insert(
            "org.opencontainers.image.base.name".to_string(),
            lock.base.reference.clone(),
        );
        annotations.insert(
            "org.opencontainers.image.base.digest".to_string(),
            digest.clone(),
        );
    }
    let manifest = image::manifest_json(&config_desc, &layer_descs, &annotations);
    let desc = layout.put_bytes(image::MEDIA_TYPE_MANIFEST, &manifest)?;
    let built = BuiltPlatform {
        platform: ctx.platform,
        manifest: desc.digest.clone(),
        layers: layer_descs.iter().map(|d| d.digest.clone()).collect(),
    };
    Ok((desc, built))
}

/// The image's environment: the venv first on `PATH`, `VIRTUAL_ENV`, the spec's variables, and
/// what the IDE needs to find its extensions.
fn image_env(
    lock: &Lock,
    spec: &Spec,
    target: &str,
    chain: &[Link],
    ctx: &PlatformCtx,
) -> Vec<(String, String)> {
    let venv = &lock.settings.venv;
    let base_path = ctx
        .base_config
        .as_deref()
        .and_then(base_path)
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    let mut env = Vec::new();
    if !lock.packages.is_empty() {
        env.push(("PATH".to_string(), format!("{venv}/bin:{base_path}")));
        env.push(("VIRTUAL_ENV".to_string(), venv.clone()));
    }
    if let Some(t) = spec.target(target) {
        env.extend(t.env);
    }
    if chain.iter().any(|l| l.vscode)
        && let Some(vscode) = &spec.vscode
    {
        env.extend(crate::vsix::ide_env(vscode));
    }
    env
}

/// `PATH` from a base config's `Env`.
fn base_path(config: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    v.get("config")?
        .get("Env")?
        .as_array()?
        .iter()
        .filter_map(|e| e.as_str())
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_string))
}

/// The first hex digits of a digest, as registries show them.
fn short(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

/// RFC 3339 in UTC for a time in seconds.
pub fn rfc3339(epoch: i64) -> String {
    jiff::Timestamp::from_second(epoch)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}
