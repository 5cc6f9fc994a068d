//! `envbuild fetch`: every artifact of the lock into the cache, for offline and air-gapped
//! builds.

use std::path::PathBuf;

use clap::Args;

use super::build::load_fresh;
use super::{Failure, GlobalArgs};
use crate::build::{self, BuildRequest};
use crate::cache::Cache;
use crate::platform::Platform;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Target whose artifacts to fetch (repeatable; default: every target).
    #[arg(long, short = 't', value_name = "TARGET")]
    pub target: Vec<String>,
    /// Platform (repeatable; default: every platform of the lock).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Vec<String>,
    /// Fill this folder instead of the cache: copy it to an air-gapped machine and build there
    /// with `--cache DIR --offline`.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    #[command(flatten)]
    pub registry: super::push::RegistryArgs,
}

pub fn run(global: &GlobalArgs, args: FetchArgs) -> Result<(), Failure> {
    let (spec, lock) = load_fresh(global, false)?;
    let mut platforms = Vec::new();
    for p in &args.platform {
        platforms.push(p.parse::<Platform>()?);
    }
    let targets = if args.target.is_empty() {
        lock.targets.keys().cloned().collect()
    } else {
        args.target.clone()
    };
    let request = BuildRequest {
        targets,
        platforms,
        source_date_epoch: None,
        offline: false,
        registry: args.registry.options(&spec.image.insecure_registries)?,
    };
    let cache = match &args.to {
        Some(dir) => Cache::new(Some(dir.clone())),
        None => global.cache(),
    };
    let report = build::fetch(
        &lock,
        &spec,
        &request,
        &cache,
        super::progress::reporter(global).as_ref(),
    )?;
    if global.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if !global.quiet {
        eprintln!(
            "Fetched {} wheels, {} base layers and {} extensions into {}",
            report.wheels,
            report.base_blobs,
            report.extensions,
            cache.root().display()
        );
    }
    Ok(())
}
