//! Target platforms (`linux/amd64`, `linux/arm64`, …) and what follows from them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An OCI platform limited to what envbuild can build for: Linux on a known CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    LinuxAmd64,
    LinuxArm64,
    LinuxPpc64le,
    LinuxS390x,
}

/// A platform string that envbuild does not know.
#[derive(Debug, thiserror::Error)]
#[error(
    "Unknown platform `{0}`\nhint: use one of linux/amd64, linux/arm64, linux/ppc64le, linux/s390x"
)]
pub struct UnknownPlatform(pub String);

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::LinuxAmd64,
        Platform::LinuxArm64,
        Platform::LinuxPpc64le,
        Platform::LinuxS390x,
    ];

    /// The OCI `os/architecture` form.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "linux/amd64",
            Platform::LinuxArm64 => "linux/arm64",
            Platform::LinuxPpc64le => "linux/ppc64le",
            Platform::LinuxS390x => "linux/s390x",
        }
    }

    /// The OCI `architecture` field.
    pub fn oci_arch(self) -> &'static str {
        self.as_str().trim_start_matches("linux/")
    }

    /// The CPU name used in wheel platform tags and `platform_machine`.
    pub fn machine(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "x86_64",
            Platform::LinuxArm64 => "aarch64",
            Platform::LinuxPpc64le => "ppc64le",
            Platform::LinuxS390x => "s390x",
        }
    }

    /// The Debian multiarch triplet, where the C library lives in Debian-like bases.
    pub fn multiarch(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "x86_64-linux-gnu",
            Platform::LinuxArm64 => "aarch64-linux-gnu",
            Platform::LinuxPpc64le => "powerpc64le-linux-gnu",
            Platform::LinuxS390x => "s390x-linux-gnu",
        }
    }

    /// The VS Code target platform name (`linux-x64`, …).
    pub fn vscode_target(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "linux-x64",
            Platform::LinuxArm64 => "linux-arm64",
            Platform::LinuxPpc64le => "linux-ppc64le",
            Platform::LinuxS390x => "linux-s390x",
        }
    }

    /// Platform from an OCI `architecture` (and optional variant) pair.
    pub fn from_oci(os: &str, arch: &str) -> Option<Platform> {
        if os != "linux" {
            return None;
        }
        Platform::ALL.into_iter().find(|p| p.oci_arch() == arch)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = UnknownPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        // `linux/arm64/v8` is how arm64 is often written; the variant adds nothing here.
        let s = s.strip_suffix("/v8").unwrap_or(s);
        let s = match s {
            "linux/x86_64" => "linux/amd64",
            "linux/aarch64" => "linux/arm64",
            other => other,
        };
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPlatform(s.to_string()))
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aliases() {
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap(),
            Platform::LinuxArm64
        );
        assert_eq!(
            "linux/x86_64".parse::<Platform>().unwrap(),
            Platform::LinuxAmd64
        );
        assert!("windows/amd64".parse::<Platform>().is_err());
    }
}
