//! JupyterLab settings from the spec, written as files in the environment.
//!
//! JupyterLab reads default overrides from `<prefix>/share/jupyter/lab/settings/overrides.json`
//! and the page config (which holds disabled extensions) from
//! `<prefix>/etc/jupyter/labconfig/page_config.json`; with the venv as the prefix both land
//! inside the environment, so no user folder is needed. The plugins themselves are Python
//! requirements and reach `share/jupyter/labextensions` through their wheels' data files.

use serde_json::{Map, Value};

use crate::layer::Entry;
use crate::spec::JupyterSpec;

/// Errors met while writing JupyterLab settings.
#[derive(Debug, thiserror::Error)]
pub enum JupyterError {
    #[error(
        "Invalid `[jupyter]` setting `{key}`: {message}\n\
         hint: JSON has no such value; write it as a string or drop it"
    )]
    Value { key: String, message: String },
}

/// Settings files for a venv at `venv` (an absolute image path such as `/opt/venv`).
pub fn settings_entries(spec: &JupyterSpec, venv: &str) -> Result<Vec<Entry>, JupyterError> {
    let prefix = match venv.trim_matches('/') {
        "" => String::new(),
        p => format!("{p}/"),
    };
    let mut entries = Vec::new();

    if let Some(overrides) = &spec.overrides {
        let json = table_to_json(overrides, "jupyter.overrides")
            .map_err(|(key, message)| JupyterError::Value { key, message })?;
        entries.push(Entry::bytes(
            format!("{prefix}share/jupyter/lab/settings/overrides.json"),
            0o644,
            canonical_json(&json),
        ));
    }

    if !spec.disabled_extensions.is_empty() {
        let disabled: Map<String, Value> = spec
            .disabled_extensions
            .iter()
            .map(|name| (name.clone(), Value::Bool(true)))
            .collect();
        let mut page = Map::new();
        page.insert("disabledExtensions".into(), Value::Object(disabled));
        entries.push(Entry::bytes(
            format!("{prefix}etc/jupyter/labconfig/page_config.json"),
            0o644,
            canonical_json(&Value::Object(page)),
        ));
    }
    Ok(entries)
}

/// A TOML table as a JSON object. Datetimes become their RFC 3339 strings; a value JSON
/// cannot hold (NaN, infinity) is an error `(dotted key, message)`.
pub(crate) fn table_to_json(table: &toml::Table, key: &str) -> Result<Value, (String, String)> {
    let mut out = Map::new();
    for (k, v) in table {
        out.insert(k.clone(), toml_to_json(v, &format!("{key}.{k}"))?);
    }
    Ok(Value::Object(out))
}

fn toml_to_json(value: &toml::Value, key: &str) -> Result<Value, (String, String)> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => Value::Number(n),
            None => return Err((key.to_string(), format!("`{f}` is not a finite number"))),
        },
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| toml_to_json(v, &format!("{key}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => table_to_json(t, key)?,
    })
}

/// Canonical JSON bytes: keys sorted at every level, two-space indent, a trailing newline, so
/// the same settings always give the same file.
pub(crate) fn canonical_json(value: &Value) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(&sorted(value)).unwrap_or_default();
    text.push('\n');
    text.into_bytes()
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{EntryKind, Source};

    fn content(entry: &Entry) -> String {
        match &entry.kind {
            EntryKind::File {
                source: Source::Bytes(b),
                ..
            } => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("not bytes: {other:?}"),
        }
    }

    #[test]
    fn non_finite_float_is_refused_with_its_key() {
        let spec: JupyterSpec = toml::from_str("overrides = { a = { b = nan } }").unwrap();
        let err = settings_entries(&spec, "/opt/venv").unwrap_err();
        assert!(err.to_string().contains("`jupyter.overrides.a.b`"), "{err}");
    }

    #[test]
    fn nothing_written_without_settings() {
        let spec = JupyterSpec::default();
        assert!(settings_entries(&spec, "/opt/venv").unwrap().is_empty());
    }

    #[test]
    fn keys_sorted_and_datetime_as_string() {
        let spec: JupyterSpec =
            toml::from_str("overrides = { z = 1, a = { y = 1979-05-27T07:32:00Z, b = [2.5] } }")
                .unwrap();
        let entries = settings_entries(&spec, "/opt/venv").unwrap();
        assert_eq!(
            content(&entries[0]),
            "{\n  \"a\": {\n    \"b\": [\n      2.5\n    ],\n    \
             \"y\": \"1979-05-27T07:32:00Z\"\n  },\n  \"z\": 1\n}\n"
        );
    }
}
