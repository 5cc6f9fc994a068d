//! `envbuild lock`: resolve the spec into `envbuild.lock`.

use std::collections::{BTreeMap, BTreeSet};

use clap::Args;

use super::{EXIT_STALE, Failure, GlobalArgs};
use crate::base::{self, BaseRef, Overrides};
use crate::lock::{LOCK_VERSION, Lock, Settings, TargetLock};
use crate::resolve::{self, PlatformEnv, ResolveRequest, Upgrade};
use crate::spec::{self, Libc, Spec};

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Fail (exit 3) when the lock does not match the spec, instead of writing it.
    #[arg(long, conflicts_with_all = ["upgrade", "upgrade_package"])]
    pub check: bool,
    /// Re-resolve everything to the newest allowed versions.
    #[arg(long, short = 'U')]
    pub upgrade: bool,
    /// Allow this package to change version (repeatable).
    #[arg(long, short = 'P', value_name = "NAME")]
    pub upgrade_package: Vec<String>,
    #[command(flatten)]
    pub registry: super::push::RegistryArgs,
}

pub fn run(global: &GlobalArgs, args: LockArgs) -> Result<(), Failure> {
    let spec = Spec::load(&global.spec)?;
    let text = std::fs::read_to_string(&global.spec).unwrap_or_default();
    let checksum = spec::spec_checksum(&text).map_err(|e| Failure::msg(1, e.to_string()))?;
    let lock_path = global.lock_path();
    let previous = if lock_path.exists() {
        Some(Lock::load(&lock_path)?)
    } else {
        None
    };

    if args.check {
        return check(&lock_path, previous.as_ref(), &checksum);
    }

    let lock = lock_spec(&spec, &checksum, previous.as_ref(), &args, global)?;
    if previous.as_ref() == Some(&lock) {
        if !global.quiet {
            eprintln!("{} is up to date", lock_path.display());
        }
        return Ok(());
    }
    lock.save(&lock_path)?;
    if !global.quiet {
        eprintln!(
            "Locked {} packages and {} extensions for {} into {}",
            lock.packages.len(),
            lock.extensions.len(),
            lock.settings
                .platforms
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            lock_path.display()
        );
    }
    Ok(())
}

fn check(path: &std::path::Path, previous: Option<&Lock>, checksum: &str) -> Result<(), Failure> {
    match previous {
        None => Err(Failure::msg(
            EXIT_STALE,
            format!(
                "No lock at `{}`\nhint: run `envbuild lock` and commit the lock",
                path.display()
            ),
        )),
        Some(lock) if lock.spec_checksum != checksum => Err(Failure::msg(
            EXIT_STALE,
            format!(
                "The lock `{}` is out of date: the spec changed since it was written\n\
                 hint: run `envbuild lock` and commit the lock",
                path.display()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Builds the lock for a spec.
pub fn lock_spec(
    spec: &Spec,
    checksum: &str,
    previous: Option<&Lock>,
    args: &LockArgs,
    global: &GlobalArgs,
) -> Result<Lock, Failure> {
    let cache = global.cache();
    let dir = spec
        .path
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .to_path_buf();
    let platforms = spec.platforms();
    let opts = args.registry.options(&spec.image.insecure_registries)?;

    // 1. The base: digests per platform and what it holds.
    let overrides = Overrides {
        python_version: spec.python.version.clone(),
        interpreter: spec.python.interpreter.clone(),
        libc: spec
            .python
            .libc
            .as_ref()
            .and_then(|l| l.get_ref().parse::<Libc>().ok()),
    };
    let reference = spec.image.base.get_ref();
    let base_ref = BaseRef::parse(reference, &dir);
    let base = base::lock_base(reference, &base_ref, &platforms, &overrides, &cache, &opts)?;

    // 2. Python packages, one resolution for every target and platform.
    let exclude_newer = spec
        .python
        .exclude_newer
        .as_ref()
        .and_then(|d| spec::parse_exclude_newer(d.get_ref()).ok());
    let mut targets = BTreeMap::new();
    let mut target_locks = BTreeMap::new();
    for name in spec.target_names() {
        let Some(t) = spec.target(&name) else {
            continue;
        };
        let direct: BTreeSet<String> = t
            .requirements
            .iter()
            .map(|r| normalize(r.name.as_ref()))
            .collect();
        target_locks.insert(
            name.clone(),
            TargetLock {
                chain: t.chain.clone(),
                direct: direct.into_iter().collect(),
            },
        );
        targets.insert(name, t.requirements);
    }
    let upgrade = if args.upgrade {
        Upgrade::All
    } else if !args.upgrade_package.is_empty() {
        Upgrade::Packages(args.upgrade_package.iter().map(|n| normalize(n)).collect())
    } else {
        Upgrade::None
    };
    let preferences = previous
        .map(|l| {
            l.packages
                .iter()
                .map(|p| (p.name.clone(), p.version.clone()))
                .collect()
        })
        .unwrap_or_default();
    let request = ResolveRequest {
        indexes: spec.index_urls(),
        exclude_newer,
        platforms: base
            .platforms
            .iter()
            .map(|b| PlatformEnv {
                platform: b.platform,
                python_version: b.python_version.clone(),
                libc: b.libc.parse().unwrap_or(Libc::Glibc {
                    major: 2,
                    minor: 17,
                }),
            })
            .collect(),
        targets,
        preferences,
        upgrade,
    };
    let packages = resolve::resolve(&request, &cache)?;

    // 3. VS Code extensions, for the targets that hold them.
    let extensions = match &spec.vscode {
        Some(vscode) => {
            let with_vscode: Vec<String> = spec
                .target_names()
                .into_iter()
                .filter(|n| spec.target(n).is_some_and(|t| t.vscode))
                .collect();
            if with_vscode.is_empty() {
                Vec::new()
            } else {
                crate::vsix::lock_extensions(vscode, &dir, &platforms, &with_vscode, &cache)?
            }
        }
        None => Vec::new(),
    };

    // The file time of every layer: the spec's, else the exclude-newer cut-off, else 0 — never
    // the clock, so locking twice gives the same lock.
    let source_date_epoch = spec
        .image
        .source_date_epoch
        .or_else(|| exclude_newer.map(|t| t.as_second()))
        .unwrap_or(0);

    let mut lock = Lock {
        version: LOCK_VERSION,
        spec_checksum: checksum.to_string(),
        source_date_epoch,
        settings: Settings {
            indexes: spec.index_urls(),
            exclude_newer: exclude_newer.map(|t| t.to_string()),
            platforms,
            venv: spec.venv().to_string(),
        },
        base,
        targets: target_locks,
        packages,
        extensions,
    };
    lock.normalize();
    Ok(lock)
}

/// PEP 503 name normalization.
pub fn normalize(name: &str) -> String {
    crate::index::normalize(name)
}
