//! The command line: argument parsing, output, exit codes. Library modules never print; this
//! module decides what the user sees.

mod build;
mod diff;
mod fetch;
mod image_facts;
mod init;
mod inspect;
mod lock;
mod progress;
mod push;
mod sbom;
mod verify;

use std::error::Error as StdError;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for a failure (bad input, network, hash mismatch, …).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for a command line that does not parse.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a lock that no longer matches the spec.
pub const EXIT_STALE: i32 = 3;

/// Reproducible OCI images for data-science and ML environments.
#[derive(Debug, Parser)]
#[command(name = "envbuild", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The spec file.
    #[arg(
        long,
        global = true,
        default_value = "envbuild.toml",
        env = "ENVBUILD_SPEC"
    )]
    pub spec: PathBuf,
    /// The lock file (default: `envbuild.lock` beside the spec).
    #[arg(long, global = true, env = "ENVBUILD_LOCK")]
    pub lock: Option<PathBuf>,
    /// Cache folder (default: `$ENVBUILD_CACHE_DIR` or the user cache folder).
    #[arg(long, global = true)]
    pub cache: Option<PathBuf>,
    /// More detail (`-vv` for debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

impl GlobalArgs {
    /// The lock path: `--lock`, or `envbuild.lock` beside the spec.
    pub fn lock_path(&self) -> PathBuf {
        self.lock.clone().unwrap_or_else(|| {
            self.spec
                .parent()
                .unwrap_or(std::path::Path::new(""))
                .join("envbuild.lock")
        })
    }

    /// The cache chosen by the flags and environment.
    pub fn cache(&self) -> crate::cache::Cache {
        crate::cache::Cache::new(self.cache.clone())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starting spec.
    Init(init::InitArgs),
    /// Resolve the spec into `envbuild.lock`.
    Lock(lock::LockArgs),
    /// Build the lock into OCI images (a layout, an archive, or a registry).
    Build(build::BuildArgs),
    /// Push an image of an OCI layout to a registry.
    Push(push::PushArgs),
    /// Download every artifact of the lock into the cache.
    Fetch(fetch::FetchArgs),
    /// Rebuild from the lock and compare with a built or pushed image.
    Verify(verify::VerifyArgs),
    /// Show what a lock pins or an image holds, layer by layer.
    Inspect(inspect::InspectArgs),
    /// Show what changed between two locks, package by package.
    Diff(diff::DiffArgs),
    /// Print the CycloneDX SBOM of a target and platform, from the lock.
    Sbom(sbom::SbomArgs),
}

/// An error on its way to the user, with the exit code it deserves.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: Box<dyn StdError + Send + Sync>,
}

impl<E: StdError + Send + Sync + 'static> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure {
            code: EXIT_FAILURE,
            error: Box::new(error),
        }
    }
}

impl Failure {
    /// A failure from a plain message.
    pub fn msg(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            error: message.into().into(),
        }
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_OK
            };
        }
    };
    init_logging(&cli.global);
    match run(cli) {
        Ok(()) => EXIT_OK,
        Err(failure) => {
            eprintln!("{}", render_error(failure.error.as_ref()));
            failure.code
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init(args) => init::run(&cli.global, args),
        Command::Lock(args) => lock::run(&cli.global, args),
        Command::Build(args) => build::run(&cli.global, args),
        Command::Fetch(args) => fetch::run(&cli.global, args),
        Command::Push(args) => push::run(&cli.global, args),
        Command::Verify(args) => verify::run(&cli.global, args),
        Command::Inspect(args) => inspect::run(&cli.global, args),
        Command::Diff(args) => diff::run(&cli.global, args),
        Command::Sbom(args) => sbom::run(&cli.global, args),
    }
}

/// `error: …` with the cause chain and any `hint:` lines moved to the end.
pub fn render_error(err: &(dyn StdError + 'static)) -> String {
    let mut hints = Vec::new();
    let mut split = |text: String| -> String {
        let mut keep = Vec::new();
        for line in text.lines() {
            match line.strip_prefix("hint: ") {
                Some(h) => hints.push(h.to_string()),
                None => keep.push(line.to_string()),
            }
        }
        keep.join("\n")
    };
    let mut out = format!("error: {}", split(err.to_string()));
    let mut cause = err.source();
    let mut first = true;
    while let Some(c) = cause {
        if first {
            out.push_str("\n  Caused by:");
            first = false;
        }
        out.push_str(&format!(
            "\n    {}",
            split(c.to_string()).replace('\n', "\n    ")
        ));
        cause = c.source();
    }
    for h in hints {
        out.push_str(&format!("\nhint: {h}"));
    }
    out
}

/// Colour only on a terminal, and never when `NO_COLOR` is set (to anything but empty).
fn use_colour() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

fn init_logging(global: &GlobalArgs) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENVBUILD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("envbuild={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(use_colour())
        .try_init();
}
