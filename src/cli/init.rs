//! `envbuild init`: a commented starting spec.

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_FAILURE, Failure, GlobalArgs};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Take the requirements from a `requirements.txt`.
    #[arg(long, short = 'r')]
    pub requirements: Option<PathBuf>,
    /// The base image reference.
    #[arg(long, default_value = "python:3.11-slim-bookworm")]
    pub base: String,
    /// Overwrite an existing spec.
    #[arg(long)]
    pub force: bool,
}

pub fn run(global: &GlobalArgs, args: InitArgs) -> Result<(), Failure> {
    let path = &global.spec;
    if path.exists() && !args.force {
        return Err(Failure::msg(
            EXIT_FAILURE,
            format!(
                "`{}` already exists\nhint: pass `--force` to overwrite it",
                path.display()
            ),
        ));
    }
    let requirements = match &args.requirements {
        Some(file) => read_requirements(file)?,
        None => vec!["numpy".to_string()],
    };
    let text = render(&args.base, &requirements);
    crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|e| {
        Failure::msg(
            EXIT_FAILURE,
            format!("Failed to write `{}`: {e}", path.display()),
        )
    })?;
    if !global.quiet {
        eprintln!("Wrote {}; next: `envbuild lock`", path.display());
    }
    Ok(())
}

/// Reads a `requirements.txt`: one PEP 508 requirement a line, `#` comments, `\` continuations.
/// Options (`-r`, `-e`, `--index-url`, …) are refused by name, since a spec says them otherwise.
fn read_requirements(file: &PathBuf) -> Result<Vec<String>, Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Failure::msg(
            EXIT_FAILURE,
            format!("Failed to read `{}`: {e}", file.display()),
        )
    })?;
    let joined = text.replace("\\\r\n", "").replace("\\\n", "");
    let mut out = Vec::new();
    for (n, raw) in joined.lines().enumerate() {
        let line = match raw.find(" #") {
            Some(i) => &raw[..i],
            None => raw,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Hash pins from `pip-compile` are dropped: the lock pins hashes itself.
        let line = line.split(" --hash").next().unwrap_or(line).trim();
        if line.starts_with('-') {
            return Err(Failure::msg(
                EXIT_FAILURE,
                format!(
                    "`{}` line {}: option `{line}` is not supported\nhint: put indexes under \
                     `[python] indexes` in the spec and list only requirements",
                    file.display(),
                    n + 1
                ),
            ));
        }
        crate::spec::parse_requirement(line).map_err(|m| {
            Failure::msg(
                EXIT_FAILURE,
                format!("`{}` line {}: {m}", file.display(), n + 1),
            )
        })?;
        out.push(line.to_string());
    }
    Ok(out)
}

fn render(base: &str, requirements: &[String]) -> String {
    let reqs: String = requirements
        .iter()
        .map(|r| format!("  {},\n", toml::Value::String(r.clone())))
        .collect();
    format!(
        r#"# envbuild spec: the environment, declared. `envbuild lock` pins it; `envbuild build`
# turns the lock into an OCI image.

[image]
# Base image: a registry reference, `oci:PATH[:TAG]` for a local OCI layout, or `scratch`.
base = {base}
platforms = ["linux/amd64"]
# Where the Python virtual environment goes in the image.
venv = "/opt/venv"
# workdir = "/workspace"
# user = "1000:1000"
# cmd = ["python"]

[python]
# PEP 508 requirements, with extras and markers.
requirements = [
{reqs}]
# Indexes, asked in order; a package comes from the first index that has it.
# indexes = [{{ url = "https://pypi.org/simple" }}]
# Lock as of a day: files uploaded later are ignored.
# exclude-newer = "2025-01-01"

[targets.prod]

[targets.dev]
extends = "prod"
requirements = ["jupyterlab"]
"#,
        base = toml::Value::String(base.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_spec_parses() {
        let text = render(
            "scratch",
            &["numpy>=1".into(), "pandas[performance]".into()],
        );
        let spec = crate::spec::Spec::parse(&text, std::path::Path::new("x.toml")).unwrap();
        assert_eq!(spec.target("dev").unwrap().requirements.len(), 3);
    }
}
