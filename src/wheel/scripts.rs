//! Scripts: `#!python` shebangs of `.data/scripts` rewritten, and launchers for the
//! `console_scripts` and `gui_scripts` entry points (the entry points specification).

/// Longest shebang line Linux reads whole (`BINPRM_BUF_SIZE` is 128 bytes with the newline).
const MAX_SHEBANG: usize = 127;

/// The first line(s) that run a script with `python`. A long interpreter path does not fit the
/// kernel's shebang buffer, so it is started through `/bin/sh` instead, with a line that is a
/// no-op string to Python and an `exec` to the shell.
pub fn shebang(python: &str) -> String {
    String::from_utf8(shebang_with_args(python, b"")).unwrap_or_default()
}

/// [`shebang`] with interpreter arguments (` -u`, leading blank included). In the `/bin/sh`
/// form they go on the `exec` line: after the closing `'''` Python would read them as code.
fn shebang_with_args(python: &str, args: &[u8]) -> Vec<u8> {
    let mut line = format!("#!{python}").into_bytes();
    line.extend_from_slice(args);
    line.push(b'\n');
    if line.len() <= MAX_SHEBANG && !python.contains(' ') {
        return line;
    }
    let mut out = format!("#!/bin/sh\n'''exec' '{python}'").into_bytes();
    out.extend_from_slice(args);
    out.extend_from_slice(b" \"$0\" \"$@\"\n' '''\n");
    out
}

/// One entry point: `name = module:attr.path [extras]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    pub name: String,
    pub module: String,
    pub attr: Option<String>,
}

/// Reads the `console_scripts` and `gui_scripts` groups of `entry_points.txt` (an INI file).
pub fn parse_entry_points(text: &str) -> Result<Vec<EntryPoint>, String> {
    let mut group = String::new();
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(g) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            group = g.trim().to_string();
            continue;
        }
        if group != "console_scripts" && group != "gui_scripts" {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: `{line}` has no `=`", n + 1))?;
        let name = name.trim();
        // Extras (`[extra]`) only matter to installers that check them; the script is the same.
        let value = value.split('[').next().unwrap_or("").trim();
        let (module, attr) = match value.split_once(':') {
            Some((m, a)) => (m.trim(), Some(a.trim().to_string())),
            None => (value, None),
        };
        let valid_dotted =
            |s: &str| !s.is_empty() && s.split('.').all(|p| !p.is_empty() && is_identifier(p));
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(format!(
                "line {}: `{name}` is not a valid script name",
                n + 1
            ));
        }
        if !valid_dotted(module) || attr.as_deref().is_some_and(|a| !valid_dotted(a)) {
            return Err(format!(
                "line {}: `{value}` is not `module:attribute`",
                n + 1
            ));
        }
        out.push(EntryPoint {
            name: name.to_string(),
            module: module.to_string(),
            attr,
        });
    }
    Ok(out)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// The launcher script for an entry point, run by the venv's interpreter.
pub fn launcher(ep: &EntryPoint, python: &str) -> String {
    let call = match &ep.attr {
        Some(attr) => {
            let first = attr.split('.').next().unwrap_or(attr);
            format!("from {} import {first}\n    sys.exit({attr}())", ep.module)
        }
        None => format!("import {}\n    sys.exit({}())", ep.module, ep.module),
    };
    format!(
        "{}import sys\n\nif __name__ == \"__main__\":\n    {call}\n",
        shebang(python)
    )
}

/// Rewrites a first line that begins with `#!python`; `None` when the script has no such line.
///
/// The binary distribution format says every such line is rewritten, so `#!pythonw` and
/// `#!python3` are too (pip does; left alone, `python3` would be looked up relative to the
/// working directory and the script would not start). The interpreter word is replaced whole;
/// arguments after it (`-u`, `-E`) are kept, as uv does, since the script may rely on them.
pub fn rewrite_shebang(content: &[u8], python: &str) -> Option<Vec<u8>> {
    let end = content
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(content.len());
    let first = &content[..end];
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let rest = first.strip_prefix(b"#!python")?;
    let args_at = rest
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .unwrap_or(rest.len());
    let mut out = shebang_with_args(python, &rest[args_at..]);
    out.extend_from_slice(content.get(end + 1..).unwrap_or(&[]));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_and_launchers() {
        let eps = parse_entry_points(
            "[console_scripts]\npyflakes = pyflakes.api:main\nx = a.b:C.run [extra]\n\
             [other]\nignored = z:y\n[gui_scripts]\ng = gui\n",
        )
        .unwrap();
        assert_eq!(eps.len(), 3);
        assert_eq!(eps[1].attr.as_deref(), Some("C.run"));
        let s = launcher(&eps[1], "/opt/venv/bin/python");
        assert!(s.starts_with("#!/opt/venv/bin/python\nimport sys\n"), "{s}");
        assert!(
            s.contains("from a.b import C\n    sys.exit(C.run())"),
            "{s}"
        );
        assert!(parse_entry_points("[console_scripts]\nbad = 1x:y\n").is_err());
        assert!(parse_entry_points("[console_scripts]\n../evil = a:b\n").is_err());
    }

    #[test]
    fn shebangs() {
        let out = rewrite_shebang(b"#!python\nprint(1)\n", "/opt/venv/bin/python").unwrap();
        assert_eq!(out, b"#!/opt/venv/bin/python\nprint(1)\n");
        assert!(rewrite_shebang(b"#!/bin/sh\n", "/p").is_none());
        assert!(rewrite_shebang(b"#!/usr/bin/python\n", "/p").is_none());
        // Any interpreter word that begins with `python` is replaced; arguments stay.
        for (script, want) in [
            (&b"#!python3\nx"[..], &b"#!/p\nx"[..]),
            (b"#!python3.11 -u\r\nx", b"#!/p -u\nx"),
            (b"#!pythonw\t-E\n", b"#!/p\t-E\n"),
            (b"#!python", b"#!/p\n"),
        ] {
            assert_eq!(rewrite_shebang(script, "/p").unwrap(), want);
        }
        let long = format!("/{}/bin/python", "x".repeat(130));
        assert!(shebang(&long).starts_with("#!/bin/sh\n"));
        // Arguments of a long interpreter path go to the `exec` line, not after the `'''`.
        let out = rewrite_shebang(b"#!python -u\nprint(1)\n", &long).unwrap();
        let want = format!("#!/bin/sh\n'''exec' '{long}' -u \"$0\" \"$@\"\n' '''\nprint(1)\n");
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}
