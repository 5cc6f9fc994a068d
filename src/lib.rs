//! envbuild: reproducible, bit-identical OCI images for data-science and ML environments.
//!
//! The pipeline reads top to bottom: a [`spec`] is resolved ([`base`], [`index`], [`tags`],
//! [`resolve`], [`vsix`]) into a [`lock`]; a build plans layers from the lock and writes them
//! ([`cache`], [`wheel`], [`layer`], [`image`], [`build`]); [`registry`] pulls and pushes.

pub mod base;
pub mod build;
pub mod cache;
pub mod cli;
pub mod fsutil;
pub mod http;
pub mod image;
pub mod index;
pub mod jupyter;
pub mod layer;
pub mod lock;
pub mod platform;
pub mod progress;
pub mod registry;
pub mod resolve;
pub mod sbom;
pub mod spec;
pub mod tags;
pub mod vsix;
pub mod wheel;
