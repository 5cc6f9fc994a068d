//! `envbuild push`: an image of an OCI layout to a registry; and the registry options that
//! `build --push` shares with it.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_USAGE, Failure, GlobalArgs};
use crate::registry::{Credential, PushOptions, PushReport, RegistryOptions};

/// How to reach and log in to registries.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Registries reachable over plain HTTP (loopback always is).
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Registry user name; the password comes from `--password-stdin` or
    /// `ENVBUILD_REGISTRY_PASSWORD`. Without it, Docker's `config.json` is used.
    #[arg(long, env = "ENVBUILD_REGISTRY_USERNAME", hide_env_values = true)]
    pub username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

impl RegistryArgs {
    /// The options for these flags plus the spec's insecure registries.
    pub fn options(&self, spec_insecure: &[String]) -> Result<RegistryOptions, Failure> {
        let mut insecure = spec_insecure.to_vec();
        insecure.extend(self.insecure_registry.iter().cloned());
        let mut opts = RegistryOptions::new(insecure);
        if let Some(username) = &self.username {
            let password = if self.password_stdin {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(|e| {
                    Failure::msg(1, format!("Failed to read the password from stdin: {e}"))
                })?;
                text.trim_end_matches(['\r', '\n']).to_string()
            } else {
                std::env::var("ENVBUILD_REGISTRY_PASSWORD").map_err(|_| {
                    Failure::msg(
                        EXIT_USAGE,
                        "`--username` needs a password\nhint: pass `--password-stdin` or set \
                         `ENVBUILD_REGISTRY_PASSWORD`",
                    )
                })?
            };
            opts.credential = Some(Credential::Basic {
                username: username.clone(),
                password,
            });
        }
        Ok(opts)
    }
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image to push: `oci:DIR[:TAG]`.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// Where to push it: `registry/repository[:tag]`.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Write the pushed digest to this file.
    #[arg(long, value_name = "PATH")]
    pub digest_file: Option<PathBuf>,
    /// An image of the same registry whose blobs may be mounted instead of uploaded.
    #[arg(long, value_name = "REF")]
    pub mount_from: Vec<String>,
    /// Blob uploads running at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Upload blobs larger than this many bytes in chunks of this size (default: chunks of
    /// 16 MiB above 64 MiB), so a dropped connection costs one chunk.
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<u64>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(global: &GlobalArgs, args: PushArgs) -> Result<(), Failure> {
    let Some(rest) = args.source.strip_prefix("oci:") else {
        return Err(Failure::msg(
            EXIT_USAGE,
            format!(
                "`{}` is not an OCI layout\nhint: name the source as `oci:DIR[:TAG]`",
                args.source
            ),
        ));
    };
    let (dir, tag) = super::verify::split_layout(rest);
    let opts = args.registry.options(&[])?;
    let mut push = PushOptions {
        mount_from: args.mount_from.clone(),
        jobs: args.jobs,
        ..PushOptions::default()
    };
    if let Some(size) = args.chunk_size {
        push.chunk = size.max(1);
        push.chunked_above = size.max(1);
    }
    let reporter = super::progress::reporter(global);
    let report = crate::registry::push_layout(
        Path::new(dir),
        tag,
        &args.reference,
        &opts,
        &push,
        reporter.as_ref(),
    )?;
    finish(global, &report, args.digest_file.as_deref(), false)
}

/// Tells what a push did: a summary on stderr, `REF@DIGEST` (or, for `push --json`, the
/// report) on stdout, and the digest file when asked for. `build --push --json` prints its
/// own document with the report in it, hence `json_printed`.
pub fn finish(
    global: &GlobalArgs,
    report: &PushReport,
    digest_file: Option<&Path>,
    json_printed: bool,
) -> Result<(), Failure> {
    if !global.quiet {
        eprintln!(
            "Pushed {}: {} blobs uploaded ({} bytes), {} already there, {} mounted",
            report.reference,
            report.uploaded_blobs,
            report.uploaded_bytes,
            report.skipped_blobs,
            report.mounted_blobs
        );
    }
    match (global.json, json_printed) {
        (true, true) => {}
        (true, false) => {
            println!(
                "{}",
                serde_json::to_string_pretty(report).unwrap_or_default()
            );
        }
        (false, _) => println!("{}", report.reference),
    }
    if let Some(path) = digest_file {
        write_digest(path, &report.digest)?;
    }
    Ok(())
}

/// Writes `digest` and a newline to `path`, atomically.
pub fn write_digest(path: &Path, digest: &str) -> Result<(), Failure> {
    crate::fsutil::write_atomic(path, format!("{digest}\n").as_bytes())
        .map_err(|e| Failure::msg(1, format!("Failed to write `{}`: {e}", path.display())))
}
