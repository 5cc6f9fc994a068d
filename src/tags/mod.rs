//! Wheel file names and compatibility tags (the binary distribution format's file name
//! convention, PEP 425 tags, PEP 600 manylinux and PEP 656 musllinux platforms).

use std::collections::HashMap;

use crate::platform::Platform;
use crate::spec::Libc;

/// A wheel file name that does not follow the naming convention.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a valid wheel file name")]
pub struct InvalidWheelName(pub String);

/// The parts of a wheel file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    /// The distribution part, as written (escaped, not normalized).
    pub distribution: String,
    pub version: String,
    pub build: Option<String>,
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platform: Vec<String>,
}

impl WheelName {
    /// Parses `{distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
    pub fn parse(filename: &str) -> Result<WheelName, InvalidWheelName> {
        let invalid = || InvalidWheelName(filename.to_string());
        let stem = filename.strip_suffix(".whl").ok_or_else(invalid)?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (distribution, version, build, tags) = match parts.as_slice() {
            [d, v, p, a, pl] => (*d, *v, None, [*p, *a, *pl]),
            [d, v, b, p, a, pl] => (*d, *v, Some(b.to_string()), [*p, *a, *pl]),
            _ => return Err(invalid()),
        };
        if distribution.is_empty() || version.is_empty() || tags.iter().any(|t| t.is_empty()) {
            return Err(invalid());
        }
        // Compressed tag sets (`py2.py3`) list alternatives separated by dots.
        let split = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        Ok(WheelName {
            distribution: distribution.to_string(),
            version: version.to_string(),
            build,
            python: split(tags[0]),
            abi: split(tags[1]),
            platform: split(tags[2]),
        })
    }

    /// Every `(python, abi, platform)` triple the name expands to.
    pub fn triples(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.python.iter().flat_map(move |p| {
            self.abi.iter().flat_map(move |a| {
                self.platform
                    .iter()
                    .map(move |pl| (p.as_str(), a.as_str(), pl.as_str()))
            })
        })
    }
}

/// The tags an interpreter on a platform accepts, most specific first.
#[derive(Debug, Clone)]
pub struct Tags {
    rank: HashMap<(String, String, String), usize>,
}

impl Tags {
    /// Tags for CPython `major.minor` on a Linux platform with the given C library.
    pub fn new(python: (u64, u64), libc: Libc, platform: Platform) -> Tags {
        let platforms = platform_tags(libc, platform.machine());
        let (major, minor) = python;
        let cp = format!("cp{major}{minor}");
        let mut ordered: Vec<(String, String, String)> = Vec::new();
        let mut push = |p: &str, a: &str, pl: &str| {
            ordered.push((p.to_string(), a.to_string(), pl.to_string()));
        };

        // The order follows what installers prefer: the exact ABI, then the stable ABI of this
        // and older minor versions, then tags without an ABI, then pure wheels.
        for pl in &platforms {
            push(&cp, &cp, pl);
            push(&cp, "abi3", pl);
            push(&cp, "none", pl);
        }
        for older in (2..minor).rev() {
            for pl in &platforms {
                push(&format!("cp{major}{older}"), "abi3", pl);
            }
        }
        for pl in &platforms {
            for py in py_versions(major, minor) {
                push(&py, "none", pl);
            }
        }
        push(&cp, "none", "any");
        for py in py_versions(major, minor) {
            push(&py, "none", "any");
        }

        let mut rank = HashMap::new();
        for (i, triple) in ordered.into_iter().enumerate() {
            rank.entry(triple).or_insert(i);
        }
        Tags { rank }
    }

    /// The rank of a wheel (lower is more specific), or `None` when it does not fit.
    pub fn rank(&self, wheel: &WheelName) -> Option<usize> {
        wheel
            .triples()
            .filter_map(|(p, a, pl)| {
                self.rank
                    .get(&(p.to_string(), a.to_string(), pl.to_string()))
                    .copied()
            })
            .min()
    }
}

/// `py311`, `py3`, `py310`, … `py30`: the generic Python tags, most specific first.
fn py_versions(major: u64, minor: u64) -> Vec<String> {
    let mut out = vec![format!("py{major}{minor}"), format!("py{major}")];
    out.extend((0..minor).rev().map(|m| format!("py{major}{m}")));
    out
}

/// Platform tags for a C library and CPU, newest first. `linux_*` is left out on purpose: such
/// wheels are built for one machine and are not portable into an image.
pub fn platform_tags(libc: Libc, machine: &str) -> Vec<String> {
    let mut out = Vec::new();
    match libc {
        Libc::Glibc { major, minor } => {
            if major != 2 {
                return out;
            }
            // PEP 600: manylinux_2_Y works on glibc >= 2.Y. The oldest glibc a wheel can
            // target differs by CPU: 2.17 is the first with aarch64, ppc64le and s390x.
            let oldest = if matches!(machine, "x86_64" | "i686") {
                5
            } else {
                17
            };
            for y in (oldest..=minor).rev() {
                out.push(format!("manylinux_2_{y}_{machine}"));
                // PEP 600's legacy aliases name the same glibc floors.
                let legacy = match y {
                    17 => Some("manylinux2014"),
                    12 => Some("manylinux2010"),
                    5 => Some("manylinux1"),
                    _ => None,
                };
                if let Some(legacy) = legacy
                    && (y == 17 || matches!(machine, "x86_64" | "i686"))
                {
                    out.push(format!("{legacy}_{machine}"));
                }
            }
        }
        Libc::Musl { major, minor } => {
            if major != 1 {
                return out;
            }
            // PEP 656: musllinux_1_Y works on musl >= 1.Y.
            for y in (0..=minor).rev() {
                out.push(format!("musllinux_1_{y}_{machine}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
