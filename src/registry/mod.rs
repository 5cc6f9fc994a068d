//! Pulling from and pushing to OCI distribution registries (OCI distribution spec v1.1).
//!
//! Parsing references uses `oci-spec`'s `Reference` (the same type `oci-client` re-exports).
//! The transfers themselves are done here, over the crate's blocking `reqwest` client, because
//! `oci-client` falls short of what a build tool needs in three places:
//! - its blob push takes the whole blob as one `&[u8]`, and a layer may be gigabytes: here a
//!   blob streams from its file ([`client::Session::upload`]);
//! - it has no "does the registry have this blob" check, so it cannot skip what is there;
//! - it does not retry resets, 429 or 5xx; here every request goes through [`crate::http::send`].
//!
//! Layout: [`reference`] (what a reference names and how to reach it), [`auth`] (where
//! credentials come from), [`client`] (one repository session: auth challenges, tokens,
//! requests), [`pull`] and [`push`].

pub mod auth;
mod client;
mod pull;
mod push;
pub mod reference;
mod referrer;

use crate::cache::CacheError;
use crate::http::HttpError;
use crate::image::ImageError;

pub use auth::Credential;
pub use pull::{fetch_manifest, fetch_root, pull_blob};
pub use push::{PushOptions, PushReport, push_layout};
pub use referrer::{ReferrerReport, push_referrer};

/// Media types a manifest GET accepts: OCI and Docker, images and indexes.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Errors from registry operations. None of them ever holds a password or token.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{reference}` is not a valid image reference: {message}")]
    InvalidReference { reference: String, message: String },
    #[error("Failed to reach registry `{registry}`{hint}")]
    Network {
        registry: String,
        hint: String,
        #[source]
        source: HttpError,
    },
    #[error(
        "Registry `{registry}` asks for credentials and none were found (tried {tried})\n\
         hint: log in with `docker login {registry}` or set `ENVBUILD_REGISTRY_USERNAME` and \
         `ENVBUILD_REGISTRY_PASSWORD`"
    )]
    AuthRequired { registry: String, tried: String },
    #[error(
        "Registry `{registry}` refused the credentials from {source_name} (HTTP {status})\n\
         hint: check the user name and password of that source, and that the account may \
         {action} `{repository}`"
    )]
    AuthRejected {
        registry: String,
        repository: String,
        source_name: String,
        status: u16,
        action: String,
    },
    #[error(
        "Registry `{registry}` sent an authentication challenge envbuild cannot follow: {message}"
    )]
    BadChallenge { registry: String, message: String },
    #[error("`{reference}` was not found in registry `{registry}`")]
    NotFound { registry: String, reference: String },
    #[error(
        "Registry `{registry}` answered `{what}` with bytes of digest `{actual}`, not \
         `{expected}`\n\
         hint: the registry or something between it and here altered the content; nothing of it \
         was used"
    )]
    DigestMismatch {
        registry: String,
        what: String,
        expected: String,
        actual: String,
    },
    #[error("Registry `{registry}` answered HTTP {status} to {what}{detail}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        detail: String,
    },
    #[error("Registry `{registry}` sent a malformed answer to {what}: {message}")]
    Malformed {
        registry: String,
        what: String,
        message: String,
    },
    #[error("Credential helper `{helper}` failed for `{registry}`: {message}")]
    CredentialHelper {
        helper: String,
        registry: String,
        message: String,
    },
    #[error("Docker configuration `{path}` cannot be used: {message}")]
    DockerConfig { path: String, message: String },
    #[error("Failed to read `{path}` for the push")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// Options for talking to registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Hosts that may be reached over plain HTTP (loopback always may).
    pub insecure: Vec<String>,
    /// Credentials given on the command line or in `ENVBUILD_REGISTRY_*`; they win over
    /// Docker's configuration. Applied to every registry the command talks to.
    pub credential: Option<Credential>,
}

impl RegistryOptions {
    /// Options allowing plain HTTP to `insecure`, with credentials from
    /// `ENVBUILD_REGISTRY_USERNAME` and `ENVBUILD_REGISTRY_PASSWORD` when both are set.
    pub fn new(insecure: Vec<String>) -> RegistryOptions {
        RegistryOptions {
            insecure,
            credential: Credential::from_env(),
        }
    }
}

/// A manifest or index as fetched: its digest, media type and exact bytes.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}
