//! The empty virtual environment, laid out as `python -m venv` does on Linux, without running
//! it: `pyvenv.cfg`, interpreter links, activate scripts and the folders packages go into.

use super::InstallTarget;
use crate::layer::Entry;

/// The entries of the empty venv.
pub fn venv_entries(target: &InstallTarget) -> Vec<Entry> {
    let venv = target.venv.trim_matches('/');
    let py = target.python_xy();
    let home = target
        .interpreter
        .rsplit_once('/')
        .map(|(dir, _)| if dir.is_empty() { "/" } else { dir })
        .unwrap_or("/usr/bin");

    // `pyvenv.cfg` is what makes the interpreter treat the folder as a venv (PEP 405): it is
    // looked for beside, or one level above, the executable that was started.
    let cfg = format!(
        "home = {home}\ninclude-system-site-packages = false\nversion = {}\nexecutable = {}\n\
         command = {} -m venv {}\n",
        target.python_version, target.interpreter, target.interpreter, target.venv
    );
    let mut out = vec![
        Entry::dir(venv.to_string()),
        Entry::dir(format!("{venv}/bin")),
        Entry::dir(format!("{venv}/include")),
        Entry::dir(format!("{venv}/lib")),
        Entry::dir(format!("{venv}/lib/{py}")),
        Entry::dir(format!("{venv}/lib/{py}/site-packages")),
        // 64-bit Linux venvs have `lib64 -> lib`, so `platlib` paths resolve either way.
        Entry::symlink(format!("{venv}/lib64"), "lib"),
        Entry::bytes(format!("{venv}/pyvenv.cfg"), 0o644, cfg),
        Entry::symlink(format!("{venv}/bin/python"), target.interpreter.clone()),
        Entry::symlink(format!("{venv}/bin/python3"), "python"),
        Entry::symlink(format!("{venv}/bin/{py}"), "python"),
    ];
    out.push(Entry::bytes(
        format!("{venv}/bin/activate"),
        0o644,
        activate_sh(&target.venv),
    ));
    out.push(Entry::bytes(
        format!("{venv}/bin/activate.fish"),
        0o644,
        activate_fish(&target.venv),
    ));
    out
}

fn activate_sh(venv: &str) -> String {
    format!(
        r#"# Source this file from bash or zsh: `. {venv}/bin/activate`; `deactivate` undoes it.
deactivate () {{
    if [ -n "${{_ENVBUILD_OLD_PATH:-}}" ]; then
        PATH="$_ENVBUILD_OLD_PATH"
        export PATH
        unset _ENVBUILD_OLD_PATH
    fi
    if [ -n "${{_ENVBUILD_OLD_PS1+set}}" ]; then
        PS1="$_ENVBUILD_OLD_PS1"
        export PS1
        unset _ENVBUILD_OLD_PS1
    fi
    unset VIRTUAL_ENV VIRTUAL_ENV_PROMPT
    hash -r 2>/dev/null
    if [ "${{1:-}}" != "nondestructive" ]; then
        unset -f deactivate
    fi
}}
deactivate nondestructive
VIRTUAL_ENV="{venv}"
VIRTUAL_ENV_PROMPT="({name}) "
export VIRTUAL_ENV VIRTUAL_ENV_PROMPT
_ENVBUILD_OLD_PATH="$PATH"
PATH="$VIRTUAL_ENV/bin:$PATH"
export PATH
if [ -z "${{VIRTUAL_ENV_DISABLE_PROMPT:-}}" ]; then
    _ENVBUILD_OLD_PS1="${{PS1:-}}"
    PS1="$VIRTUAL_ENV_PROMPT${{PS1:-}}"
    export PS1
fi
hash -r 2>/dev/null
"#,
        name = venv.rsplit('/').next().unwrap_or("venv")
    )
}

fn activate_fish(venv: &str) -> String {
    format!(
        "# Source this file from fish: `source {venv}/bin/activate.fish`.\n\
         function deactivate\n    if set -q _ENVBUILD_OLD_PATH\n        set -gx PATH \
         $_ENVBUILD_OLD_PATH\n        set -e _ENVBUILD_OLD_PATH\n    end\n    set -e \
         VIRTUAL_ENV\n    functions -e deactivate\nend\n\
         set -gx VIRTUAL_ENV \"{venv}\"\nset -gx _ENVBUILD_OLD_PATH $PATH\n\
         set -gx PATH \"$VIRTUAL_ENV/bin\" $PATH\n"
    )
}
