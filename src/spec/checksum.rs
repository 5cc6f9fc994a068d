//! The spec checksum recorded in the lock, used to tell when the lock is stale.

use sha2::{Digest, Sha256};

/// Checksum of the spec's meaning, not its bytes: it is computed over the parsed TOML value with
/// keys sorted, so comments, blank lines, key order and `\r\n` line endings do not change it.
pub fn spec_checksum(text: &str) -> Result<String, toml::de::Error> {
    let value: toml::Value = toml::from_str(text)?;
    // `toml::Table` keeps keys sorted, so the JSON form is canonical.
    let canonical = serde_json::to_string(&value).unwrap_or_default();
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    ))
}
