//! The image config (OCI image spec, `config.md`): inherited from the base, then extended.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{ImageError, canonical_json};
use crate::platform::Platform;

/// What the build sets in the image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSpec {
    pub platform: Platform,
    /// Creation time in seconds since the Unix epoch (the lock's epoch).
    pub created: i64,
    /// Variables set or overridden, in order; `PATH` is given in full.
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Added to the base's labels; a key present in both takes this value.
    pub labels: BTreeMap<String, String>,
}

/// The image config JSON as canonical bytes.
///
/// Starts from the base config when given and keeps every field not named here (its
/// `rootfs.diff_ids`, history, env, exposed ports, …). Applies the spec, then appends one
/// `diff_id` and one history entry (`created` from the spec, `created_by` the given text) per
/// new layer, in order.
///
/// Entrypoint and Cmd follow Docker's rules: a spec setting only `cmd` keeps the base's
/// entrypoint; a spec setting `entrypoint` without `cmd` clears the base's `Cmd`, since those
/// arguments were meant for the old entrypoint.
pub fn config_json(
    base: Option<&[u8]>,
    spec: &ConfigSpec,
    layers: &[(String, String)],
) -> Result<Vec<u8>, ImageError> {
    let mut root = match base {
        Some(bytes) => match serde_json::from_slice(bytes).map_err(ImageError::BaseConfigJson)? {
            Value::Object(m) => m,
            _ => return Err(shape("(root)", "an object")),
        },
        None => Map::new(),
    };
    let created = rfc3339(spec.created)?;

    root.insert("architecture".into(), spec.platform.oci_arch().into());
    root.insert("os".into(), "linux".into());
    root.insert("created".into(), created.clone().into());

    let config = object_field(&mut root, "config")?;
    apply_exec_config(config, spec)?;

    let rootfs = object_field(&mut root, "rootfs")?;
    rootfs.insert("type".into(), "layers".into());
    let diff_ids = array_field(rootfs, "diff_ids", "rootfs.diff_ids")?;
    diff_ids.extend(layers.iter().map(|(d, _)| Value::String(d.clone())));

    let history = array_field(&mut root, "history", "history")?;
    for (_, created_by) in layers {
        let mut h = Map::new();
        h.insert("created".into(), created.clone().into());
        h.insert("created_by".into(), created_by.clone().into());
        history.push(Value::Object(h));
    }

    Ok(canonical_json(&Value::Object(root)))
}

/// Env, User, WorkingDir, Entrypoint, Cmd and Labels.
fn apply_exec_config(config: &mut Map<String, Value>, spec: &ConfigSpec) -> Result<(), ImageError> {
    let env = array_field(config, "Env", "config.Env")?;
    for (key, value) in &spec.env {
        let line = Value::String(format!("{key}={value}"));
        let prefix = format!("{key}=");
        let same_key = |v: &Value| v.as_str().is_some_and(|s| s.starts_with(&prefix));
        // Overriding in place keeps the base's order, so diffs against the base stay small.
        match env.iter_mut().find(|v| same_key(v)) {
            Some(slot) => *slot = line,
            None => env.push(line),
        }
    }

    if let Some(user) = &spec.user {
        config.insert("User".into(), user.clone().into());
    }
    if let Some(dir) = &spec.workdir {
        config.insert("WorkingDir".into(), dir.clone().into());
    }
    if let Some(entrypoint) = &spec.entrypoint {
        config.insert("Entrypoint".into(), strings(entrypoint));
        if spec.cmd.is_none() {
            config.remove("Cmd");
        }
    }
    if let Some(cmd) = &spec.cmd {
        config.insert("Cmd".into(), strings(cmd));
    }

    if !spec.labels.is_empty() {
        let labels = object_field(config, "Labels")?;
        for (k, v) in &spec.labels {
            labels.insert(k.clone(), v.clone().into());
        }
    }
    Ok(())
}

/// RFC 3339 in UTC with a `Z`, e.g. `2024-01-01T00:00:00Z`.
fn rfc3339(seconds: i64) -> Result<String, ImageError> {
    let ts = jiff::Timestamp::from_second(seconds).map_err(|_| ImageError::Created { seconds })?;
    Ok(ts.to_string())
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

fn shape(field: &'static str, expected: &'static str) -> ImageError {
    ImageError::BaseConfigShape { field, expected }
}

/// The object at `key`, created when absent or null.
fn object_field<'a>(
    m: &'a mut Map<String, Value>,
    key: &'static str,
) -> Result<&'a mut Map<String, Value>, ImageError> {
    let slot = m.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().ok_or_else(|| shape(key, "an object"))
}

/// The array at `key`, created when absent or null (Go writes empty lists as `null`).
fn array_field<'a>(
    m: &'a mut Map<String, Value>,
    key: &'static str,
    name: &'static str,
) -> Result<&'a mut Vec<Value>, ImageError> {
    let slot = m.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().ok_or_else(|| shape(name, "an array"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ConfigSpec {
        ConfigSpec {
            platform: Platform::LinuxArm64,
            created: 1_700_000_000,
            env: vec![("PATH".into(), "/opt/venv/bin:/usr/bin".into())],
            user: None,
            workdir: None,
            entrypoint: None,
            cmd: Some(vec!["python".into()]),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn keeps_base_fields_and_entrypoint() {
        let base = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1","PATH=/bin"],
            "Entrypoint":["/init"],"Cmd":["sh"],"ExposedPorts":{"80/tcp":{}}},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created_by":"x"}]}"#;
        let layers = [("sha256:bb".to_string(), "envbuild: venv".to_string())];
        let out = config_json(Some(base), &spec(), &layers).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["architecture"], "arm64");
        assert_eq!(v["created"], "2023-11-14T22:13:20Z");
        assert_eq!(
            v["config"]["Env"],
            serde_json::json!(["A=1", "PATH=/opt/venv/bin:/usr/bin"])
        );
        assert_eq!(v["config"]["Entrypoint"], serde_json::json!(["/init"]));
        assert_eq!(v["config"]["Cmd"], serde_json::json!(["python"]));
        assert!(v["config"]["ExposedPorts"]["80/tcp"].is_object());
        assert_eq!(
            v["rootfs"]["diff_ids"],
            serde_json::json!(["sha256:aa", "sha256:bb"])
        );
        assert_eq!(v["history"][1]["created_by"], "envbuild: venv");
        assert!(!out.ends_with(b"\n"));
    }

    #[test]
    fn entrypoint_clears_base_cmd() {
        let base = br#"{"config":{"Cmd":["sh"]}}"#;
        let mut s = spec();
        s.cmd = None;
        s.entrypoint = Some(vec!["jupyter".into()]);
        let out = config_json(Some(base), &s, &[]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v["config"].get("Cmd").is_none());
    }

    #[test]
    fn keys_are_sorted() {
        let mut s = spec();
        s.labels.insert("z".into(), "1".into());
        s.labels.insert("a".into(), "2".into());
        let out = String::from_utf8(config_json(None, &s, &[]).unwrap()).unwrap();
        assert!(out.starts_with(r#"{"architecture":"arm64","config":{"Cmd":["python"],"Env""#));
        assert!(out.contains(r#""Labels":{"a":"2","z":"1"}"#));
    }
}
