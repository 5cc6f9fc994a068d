//! What an image reference names, and how its registry is reached.

use std::net::IpAddr;

use oci_spec::distribution::Reference;

use super::{RegistryError, RegistryOptions};

/// A parsed reference: registry, repository, and a tag or digest.
#[derive(Debug, Clone)]
pub struct ImageRef {
    /// The registry as written (`docker.io` for Docker Hub), used for credentials and messages.
    pub registry: String,
    /// The host the API is served from (Docker Hub's differs from its name).
    pub api_host: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses `[registry/]repository[:tag][@digest]`; Docker Hub is the default registry.
    pub fn parse(reference: &str) -> Result<ImageRef, RegistryError> {
        let parsed: Reference =
            reference
                .parse()
                .map_err(|e: oci_spec::distribution::ParseError| {
                    RegistryError::InvalidReference {
                        reference: reference.to_string(),
                        message: e.to_string(),
                    }
                })?;
        let api_host = match parsed.resolve_registry() {
            "index.docker.io" => "registry-1.docker.io".to_string(),
            other => other.to_string(),
        };
        Ok(ImageRef {
            registry: parsed.registry().to_string(),
            api_host,
            repository: parsed.repository().to_string(),
            tag: parsed.tag().map(str::to_string),
            digest: parsed.digest().map(str::to_string),
        })
    }

    /// What a manifest request asks for: the digest when there is one, else the tag, else
    /// `latest`.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `scheme://host` of the API: plain HTTP only for loopback hosts and hosts the user
    /// named as insecure, HTTPS otherwise.
    pub fn base_url(&self, opts: &RegistryOptions) -> String {
        let insecure = is_loopback(&self.api_host)
            || opts
                .insecure
                .iter()
                .any(|h| h == &self.api_host || h == &self.registry);
        let scheme = if insecure { "http" } else { "https" };
        format!("{scheme}://{}", self.api_host)
    }

    /// The reference with the repository only, for messages: `registry/repository`.
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

/// Whether `host[:port]` is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registries_and_defaults() {
        let r = ImageRef::parse("127.0.0.1:5000/team/model:v1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/model");
        assert_eq!(r.manifest_reference(), "v1");
        assert_eq!(
            r.base_url(&RegistryOptions::default()),
            "http://127.0.0.1:5000"
        );

        let hub = ImageRef::parse("python:3.11").unwrap();
        assert_eq!(hub.registry, "docker.io");
        assert_eq!(hub.api_host, "registry-1.docker.io");
        assert_eq!(hub.repository, "library/python");
        assert!(
            hub.base_url(&RegistryOptions::default())
                .starts_with("https://")
        );

        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = ImageRef::parse(&format!("reg.example:443/x@{digest}")).unwrap();
        assert_eq!(pinned.manifest_reference(), digest);

        let opts = RegistryOptions {
            insecure: vec!["reg.internal:5000".into()],
            credential: None,
        };
        let internal = ImageRef::parse("reg.internal:5000/x:1").unwrap();
        assert!(internal.base_url(&opts).starts_with("http://"));

        assert!(ImageRef::parse("team/app:bad tag").is_err());
        assert!(ImageRef::parse("").is_err());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("registry.example"));
    }
}
