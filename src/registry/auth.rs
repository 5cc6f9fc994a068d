//! Where registry credentials come from, in the order they are tried:
//! 1. credentials given to envbuild (`--username` with `--password-stdin`, or
//!    `ENVBUILD_REGISTRY_USERNAME` and `ENVBUILD_REGISTRY_PASSWORD`);
//! 2. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//!    a `credHelpers` entry for the registry, then an `auths` entry (`auth` or
//!    `identitytoken`), then the `credsStore` helper;
//! 3. none: anonymous access.
//!
//! Secrets stay inside [`Credential`], whose `Debug` hides them, and no error here quotes one.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use super::RegistryError;
use super::reference::ImageRef;

/// The user name a credential helper returns for an identity (refresh) token.
const TOKEN_USERNAME: &str = "<token>";

/// A credential for a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token, which Docker stores as `identitytoken`.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <hidden> }}")
            }
            Credential::IdentityToken(_) => write!(f, "IdentityToken(<hidden>)"),
        }
    }
}

impl Credential {
    /// `ENVBUILD_REGISTRY_USERNAME` and `ENVBUILD_REGISTRY_PASSWORD`, when both are set.
    pub fn from_env() -> Option<Credential> {
        let username = std::env::var("ENVBUILD_REGISTRY_USERNAME").ok()?;
        let password = std::env::var("ENVBUILD_REGISTRY_PASSWORD").ok()?;
        Some(Credential::Basic { username, password })
    }
}

/// A credential (or none) and a description of where it came from, for messages.
#[derive(Debug, Clone)]
pub struct Found {
    pub credential: Option<Credential>,
    pub source: String,
}

/// Finds the credential for the registry of `image`.
pub fn find(image: &ImageRef, given: Option<&Credential>) -> Result<Found, RegistryError> {
    if let Some(c) = given {
        return Ok(Found {
            credential: Some(c.clone()),
            source: "the credentials given to envbuild (`--username` or \
                     `ENVBUILD_REGISTRY_USERNAME`)"
                .to_string(),
        });
    }

    let Some(path) = docker_config_path() else {
        return Ok(anonymous("no Docker configuration"));
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(anonymous(&format!(
                "`{}`, which does not exist",
                path.display()
            )));
        }
        Err(e) => return Err(config_error(&path, &e.to_string())),
    };
    let config: Value =
        serde_json::from_str(&text).map_err(|e| config_error(&path, &e.to_string()))?;
    let keys = config_keys(image);

    if let Some(helpers) = config.get("credHelpers").and_then(Value::as_object) {
        for key in &keys {
            if let Some(helper) = helpers.get(key).and_then(Value::as_str) {
                return from_helper(helper, image, &keys);
            }
        }
    }

    if let Some(auths) = config.get("auths").and_then(Value::as_object) {
        for (key, entry) in auths {
            if keys.contains(&normalize_key(key))
                && let Some(credential) = from_auths_entry(entry, &path, key)?
            {
                return Ok(Found {
                    credential: Some(credential),
                    source: format!("`auths` in `{}`", path.display()),
                });
            }
        }
    }

    if let Some(store) = config.get("credsStore").and_then(Value::as_str) {
        return from_helper(store, image, &keys);
    }
    Ok(anonymous(&format!(
        "`{}`, which has nothing for `{}`",
        path.display(),
        image.registry
    )))
}

fn anonymous(tried: &str) -> Found {
    Found {
        credential: None,
        source: tried.to_string(),
    }
}

fn config_error(path: &std::path::Path, message: &str) -> RegistryError {
    RegistryError::DockerConfig {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("config.json")),
        _ => dirs::home_dir().map(|h| h.join(".docker").join("config.json")),
    }
}

/// The names a registry goes by in `config.json`. Docker Hub is stored under its legacy
/// `https://index.docker.io/v1/` key, which [`normalize_key`] turns into `index.docker.io`.
fn config_keys(image: &ImageRef) -> Vec<String> {
    if image.registry == "docker.io" {
        vec![
            "index.docker.io".to_string(),
            "docker.io".to_string(),
            "registry-1.docker.io".to_string(),
        ]
    } else {
        vec![image.registry.clone()]
    }
}

/// `https://host:port/v1/` → `host:port`: `docker login` has written keys in both forms.
fn normalize_key(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// A credential from an `auths` entry: `identitytoken`, else `auth` (base64 of
/// `user:password`), else separate `username` and `password`; `None` for an empty entry
/// (which `docker login` leaves when a helper holds the secret).
fn from_auths_entry(
    entry: &Value,
    path: &std::path::Path,
    key: &str,
) -> Result<Option<Credential>, RegistryError> {
    let field = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(token) = field("identitytoken") {
        return Ok(Some(Credential::IdentityToken(token.to_string())));
    }
    if let Some(auth) = field("auth") {
        let bad = || {
            config_error(
                path,
                &format!("the `auth` of `{key}` is not base64 `user:password`"),
            )
        };
        let bytes = BASE64.decode(auth.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (username, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    if let (Some(username), Some(password)) = (field("username"), field("password")) {
        return Ok(Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    Ok(None)
}

/// Asks `docker-credential-<helper> get` (the credential helper protocol: the server URL on
/// stdin, a JSON object with `Username` and `Secret` on stdout).
fn from_helper(helper: &str, image: &ImageRef, keys: &[String]) -> Result<Found, RegistryError> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| RegistryError::CredentialHelper {
        helper: program.clone(),
        registry: image.registry.clone(),
        message,
    };
    let server = if image.registry == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        keys[0].clone()
    };

    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it ({e}); is it on `PATH`?")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| fail(format!("cannot write to it: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("it did not finish: {e}")))?;
    let source = format!("credential helper `{program}`");

    if !out.status.success() {
        // The protocol's "no credentials for this server" answer is a failure exit with this
        // text; it means anonymous access, not an error.
        let said = String::from_utf8_lossy(&out.stdout).to_lowercase()
            + &String::from_utf8_lossy(&out.stderr).to_lowercase();
        if said.contains("credentials not found") {
            return Ok(anonymous(&format!("{source}, which has nothing for it")));
        }
        // Helper output is not quoted: a misbehaving helper might print a secret.
        return Err(fail(format!("it exited with {}", out.status)));
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("its answer is not the JSON the protocol describes".to_string()))?;
    let username = v.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
    let credential = match (username, secret) {
        (_, "") => None,
        (TOKEN_USERNAME, token) => Some(Credential::IdentityToken(token.to_string())),
        (user, password) => Some(Credential::Basic {
            username: user.to_string(),
            password: password.to_string(),
        }),
    };
    Ok(Found { credential, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_entries() {
        assert_eq!(
            normalize_key("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(normalize_key("reg.example:5000"), "reg.example:5000");
        let path = std::path::Path::new("config.json");
        let entry = serde_json::json!({ "auth": BASE64.encode("me:pa:ss") });
        assert_eq!(
            from_auths_entry(&entry, path, "k").unwrap(),
            Some(Credential::Basic {
                username: "me".into(),
                password: "pa:ss".into()
            })
        );
        let bad = serde_json::json!({ "auth": "%%%" });
        let err = from_auths_entry(&bad, path, "k").unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        assert_eq!(
            from_auths_entry(&serde_json::json!({}), path, "k").unwrap(),
            None
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credential::Basic {
            username: "me".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        let t = Credential::IdentityToken("tok-123".into());
        assert!(!format!("{t:?}").contains("tok-123"));
    }
}
