//! OCI image pieces: the config, manifests and indexes as canonical JSON, the image layout
//! directory, and the tarball that `podman load` and `docker load` take.
//!
//! JSON determinism: the `oci-spec` types keep annotations and labels in hash maps, whose
//! iteration order changes from run to run, so they are not used to write anything here.
//! Every document is built as a `serde_json::Value`, its object keys sorted recursively by
//! byte order, and written compact with no trailing newline ([`canonical_json`]). Arrays keep
//! their order, which is meaningful (layers, env, history).

mod archive;
mod config;
mod layout;
mod manifest;

use std::path::PathBuf;

use serde_json::{Map, Value};

pub use archive::write_archive;
pub use config::{ConfigSpec, config_json};
pub use layout::Layout;
pub use manifest::{index_json, manifest_json};

/// OCI image manifest media type.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The annotation naming a manifest in an image layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor: what a manifest or index says about a blob it points to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Descriptor {
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    /// The descriptor as a JSON object (keys sorted when written).
    pub(crate) fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("mediaType".into(), self.media_type.clone().into());
        m.insert("digest".into(), self.digest.clone().into());
        m.insert("size".into(), self.size.into());
        Value::Object(m)
    }

    /// Reads a descriptor from a JSON object (the fields other than these three are ignored).
    pub(crate) fn from_value(v: &Value) -> Option<Descriptor> {
        Some(Descriptor {
            media_type: v.get("mediaType")?.as_str()?.to_string(),
            digest: v.get("digest")?.as_str()?.to_string(),
            size: v.get("size")?.as_u64()?,
        })
    }

    /// The hex part of the digest, checked to be a sha256 digest.
    pub(crate) fn hex(&self) -> Result<&str, ImageError> {
        digest_hex(&self.digest)
    }
}

/// The hex part of a `sha256:<64 lowercase hex>` digest.
pub(crate) fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if hex.len() == 64 && hex.chars().all(lower_hex) {
        Ok(hex)
    } else {
        Err(ImageError::BadDigest {
            digest: digest.to_string(),
        })
    }
}

/// `sha256:<hex>` of some bytes.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Canonical JSON bytes: object keys sorted recursively, compact, no trailing newline.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    // `Value`'s Display is the compact form and cannot fail, unlike `to_vec`'s signature.
    sorted(value).to_string().into_bytes()
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            // The crate keeps insertion order (feature `preserve_order`), so inserting in
            // sorted order writes sorted keys.
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Why an image document, layout or archive could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("The base image config is not valid JSON")]
    BaseConfigJson(#[source] serde_json::Error),

    #[error("The base image config has an unexpected shape: `{field}` is not {expected}")]
    BaseConfigShape {
        field: &'static str,
        expected: &'static str,
    },

    #[error("The creation time `{seconds}` is out of range")]
    Created { seconds: i64 },

    #[error("`{digest}` is not a sha256 digest")]
    BadDigest { digest: String },

    #[error(
        "`{dir}` is not an OCI image layout (no valid `oci-layout` file)\nhint: create it \
         with `envbuild build --output oci:DIR` or `skopeo copy ... oci:DIR:TAG`"
    )]
    NotLayout { dir: PathBuf },

    #[error("Blob `{digest}` is missing from the layout `{dir}`")]
    MissingBlob { digest: String, dir: PathBuf },

    #[error(
        "Blob `{path}` does not match its digest or size: expected `{expected}`, got \
         `{actual}`\nhint: the file is corrupt; remove it and build again"
    )]
    BlobMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("`{path}` is not a valid OCI document")]
    BadDocument {
        path: PathBuf,
        #[source]
        source: Option<serde_json::Error>,
    },

    #[error(
        "An archive holds one platform's image, but `{digest}` is a `{media_type}`\nhint: \
         choose one platform with `--platform`"
    )]
    NotAManifest { digest: String, media_type: String },

    #[error("Tag `{tag}` is not in the layout `{dir}`\nhint: tags present: {present}")]
    TagNotFound {
        tag: String,
        dir: PathBuf,
        present: String,
    },

    #[error("The layout `{dir}` names no image in its `index.json`")]
    EmptyLayout { dir: PathBuf },

    #[error(
        "The layout `{dir}` holds {count} manifests and no tag was given\nhint: name one \
         with `oci:DIR:TAG`"
    )]
    AmbiguousTag { dir: PathBuf, count: usize },

    #[error("Failed to access `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An I/O error with the path it happened on.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.into();
    move |source| ImageError::Io { path, source }
}
