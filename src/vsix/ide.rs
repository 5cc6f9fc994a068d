//! Where each IDE flavour looks for extensions and machine settings, and the image
//! environment that points it there. `docs/vscode.md` gives the launch command per flavour.

use super::VsixError;
use crate::layer::Entry;
use crate::spec::VscodeSpec;

/// Extensions live outside `$HOME`: workspace homes are volumes that hide image content.
pub const DEFAULT_EXTENSIONS_DIR: &str = "/opt/vscode/extensions";
/// The IDE's data folder when the spec has machine settings.
pub const DEFAULT_DATA_DIR: &str = "/opt/vscode/data";

/// The IDE servers envbuild knows how to point at an extensions directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Coder's code-server.
    CodeServer,
    /// Gitpod's openvscode-server.
    OpenVscodeServer,
    /// Microsoft's VS Code Server.
    VscodeServer,
}

impl Flavour {
    /// The flavour named in the spec.
    pub fn of(spec: &VscodeSpec) -> Result<Flavour, VsixError> {
        match spec.flavour.as_str() {
            "code-server" => Ok(Flavour::CodeServer),
            "openvscode-server" => Ok(Flavour::OpenVscodeServer),
            "vscode-server" => Ok(Flavour::VscodeServer),
            other => Err(VsixError::UnknownFlavour(other.to_string())),
        }
    }
}

/// The extensions directory in the image, absolute, without a trailing slash.
pub fn extensions_dir(spec: &VscodeSpec) -> String {
    absolute(
        spec.extensions_dir
            .as_deref()
            .unwrap_or(DEFAULT_EXTENSIONS_DIR),
    )
}

/// The IDE's data folder in the image, absolute, without a trailing slash.
pub fn data_dir(spec: &VscodeSpec) -> String {
    absolute(spec.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR))
}

/// The machine-level `settings.json` path for the flavour (absolute).
pub fn settings_path(spec: &VscodeSpec) -> String {
    let data = data_dir(spec);
    match Flavour::of(spec) {
        // code-server's `--user-data-dir` holds `Machine/` directly.
        Ok(Flavour::CodeServer) => format!("{data}/Machine/settings.json"),
        // The VS Code server keeps user data in `<server-data-dir>/data`.
        _ => format!("{data}/data/Machine/settings.json"),
    }
}

/// Environment variables the image needs so the IDE finds its extensions and settings.
pub fn ide_env(spec: &VscodeSpec) -> Vec<(String, String)> {
    let flavour = Flavour::of(spec).unwrap_or(Flavour::OpenVscodeServer);
    let mut env = vec![
        ("ENVBUILD_VSCODE_FLAVOUR".to_string(), spec.flavour.clone()),
        (
            "ENVBUILD_VSCODE_EXTENSIONS_DIR".to_string(),
            extensions_dir(spec),
        ),
    ];

    // The data folder only moves out of `$HOME` when the image has settings to put in it,
    // since the IDE keeps the user's own state there too.
    if spec.settings.is_some() {
        env.push(("ENVBUILD_VSCODE_DATA_DIR".to_string(), data_dir(spec)));
        if flavour != Flavour::CodeServer {
            // The VS Code server reads its data folder from this variable when
            // `--server-data-dir` is not given.
            env.push(("VSCODE_AGENT_FOLDER".to_string(), data_dir(spec)));
        }
    }

    if flavour == Flavour::CodeServer
        && let Some(gallery) = &spec.gallery
    {
        let base = gallery.trim_end_matches('/');
        let value = serde_json::json!({
            "serviceUrl": format!("{base}/vscode/gallery"),
            "itemUrl": format!("{base}/vscode/item"),
        });
        env.push(("EXTENSIONS_GALLERY".to_string(), value.to_string()));
    }
    env.sort();
    env
}

/// The machine-level `settings.json`, when the spec has settings.
pub fn settings_entry(spec: &VscodeSpec) -> Result<Option<Entry>, VsixError> {
    let Some(settings) = &spec.settings else {
        return Ok(None);
    };
    Flavour::of(spec)?;
    let json = crate::jupyter::table_to_json(settings, "vscode.settings")
        .map_err(|(key, message)| VsixError::Setting { key, message })?;
    let path = settings_path(spec);
    Ok(Some(Entry::bytes(
        path.trim_start_matches('/'),
        0o644,
        crate::jupyter::canonical_json(&json),
    )))
}

fn absolute(path: &str) -> String {
    format!("/{}", path.trim_matches('/'))
}
