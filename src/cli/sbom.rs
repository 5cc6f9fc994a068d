//! `envbuild sbom`: the CycloneDX SBOM of one target on one platform, from the lock, on stdout.
//! `envbuild build` writes the same document beside its output.

use clap::Args;

use super::{EXIT_USAGE, Failure, GlobalArgs};
use crate::lock::Lock;
use crate::platform::Platform;

#[derive(Debug, Args)]
pub struct SbomArgs {
    /// Target to describe (default: the lock's only target).
    #[arg(long, short = 't', value_name = "TARGET")]
    pub target: Option<String>,
    /// Platform to describe (default: the lock's only platform).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
}

pub fn run(global: &GlobalArgs, args: SbomArgs) -> Result<(), Failure> {
    // The SBOM describes the lock, which is what a build puts in the image; the spec is not
    // read, so this works on a lock alone.
    let lock = Lock::load(&global.lock_path())?;

    let targets: Vec<String> = lock.targets.keys().cloned().collect();
    let target = match args.target {
        Some(t) if targets.contains(&t) => t,
        Some(t) => {
            return Err(Failure::msg(
                EXIT_USAGE,
                format!(
                    "The lock has no target `{t}` (it has: {})",
                    targets.join(", ")
                ),
            ));
        }
        None => one_of("target", "--target NAME", &targets)?,
    };

    let platforms: Vec<String> = lock
        .settings
        .platforms
        .iter()
        .map(|p| p.to_string())
        .collect();
    let platform: Platform = match args.platform {
        Some(p) => p.parse()?,
        None => one_of("platform", "--platform OS/ARCH", &platforms)?.parse()?,
    };
    if !lock.settings.platforms.contains(&platform) {
        return Err(Failure::msg(
            EXIT_USAGE,
            format!(
                "The lock was made for {}, not `{platform}`",
                platforms.join(", ")
            ),
        ));
    }

    print!("{}", crate::sbom::cyclonedx(&lock, &target, platform));
    Ok(())
}

/// The only choice, or a usage error listing the choices.
fn one_of(what: &str, flag: &str, choices: &[String]) -> Result<String, Failure> {
    match choices {
        [one] => Ok(one.clone()),
        _ => Err(Failure::msg(
            EXIT_USAGE,
            format!(
                "The lock has several {what}s ({})\nhint: pass `{flag}`",
                choices.join(", ")
            ),
        )),
    }
}
