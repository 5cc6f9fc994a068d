//! Which files of a project one platform may use, and the best wheel of each version.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::MarkerEnvironment;

use super::PlatformEnv;
use crate::index::{IndexFile, Project};
use crate::tags::{Tags, WheelName};

/// What one version of a project offers a platform.
#[derive(Debug, Clone)]
pub enum Candidate {
    /// The most specific compatible wheel.
    Wheel(IndexFile),
    /// Wheels exist, none fits the platform; their file names.
    NoWheel(Vec<String>),
    /// Only source distributions; their file names.
    SdistOnly(Vec<String>),
}

/// The rules that decide which files a platform may use.
#[derive(Debug)]
pub struct Filter {
    pub env: PlatformEnv,
    pub markers: MarkerEnvironment,
    tags: Tags,
    python: Version,
    exclude_newer: Option<i64>,
    /// Versions pinned with `==` in the spec: PEP 592 lets those use yanked files.
    pinned: BTreeMap<String, BTreeSet<Version>>,
}

impl Filter {
    /// The filter of one platform.
    pub fn new(
        env: PlatformEnv,
        markers: MarkerEnvironment,
        python: Version,
        exclude_newer: Option<i64>,
        pinned: BTreeMap<String, BTreeSet<Version>>,
    ) -> Filter {
        let release = python.release();
        let major = release.first().copied().unwrap_or(3);
        let minor = release.get(1).copied().unwrap_or(0);
        let tags = Tags::new((major, minor), env.libc, env.platform);
        Filter {
            env,
            markers,
            tags,
            python,
            exclude_newer,
            pinned,
        }
    }

    /// Whether an interpreter of this platform satisfies a `Requires-Python`.
    pub fn python_ok(&self, spec: &VersionSpecifiers) -> bool {
        spec.contains(&self.python)
    }

    /// A short description of the platform for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} (CPython {}, {})",
            self.env.platform.as_str(),
            self.env.python_version,
            self.env.libc
        )
    }

    /// Every version the platform may consider, with what it offers.
    pub fn candidates(&self, project: &Project) -> BTreeMap<Version, Candidate> {
        let mut by_version: BTreeMap<Version, Vec<&IndexFile>> = BTreeMap::new();
        for file in &project.files {
            let Some(version) = file_version(&file.filename) else {
                continue;
            };
            if !self.usable(&project.name, &version, file) {
                continue;
            }
            by_version.entry(version).or_default().push(file);
        }
        by_version
            .into_iter()
            .map(|(version, files)| {
                let candidate = self.best(&files);
                (version, candidate)
            })
            .collect()
    }

    fn usable(&self, name: &str, version: &Version, file: &IndexFile) -> bool {
        // PEP 700: files uploaded after the cut-off do not exist for this lock. Files whose
        // index gives no upload time (PEP 503 pages) cannot be judged and are kept.
        if let (Some(limit), Some(uploaded)) = (self.exclude_newer, file.upload_time)
            && uploaded > limit
        {
            return false;
        }
        // PEP 592: a yanked file is used only when the spec pins that exact version.
        if file.yanked && !self.pinned.get(name).is_some_and(|v| v.contains(version)) {
            return false;
        }
        match file
            .requires_python
            .as_deref()
            .map(VersionSpecifiers::from_str)
        {
            Some(Ok(spec)) => self.python_ok(&spec),
            // An unreadable `requires-python` is left to the metadata check.
            Some(Err(_)) | None => true,
        }
    }

    fn best(&self, files: &[&IndexFile]) -> Candidate {
        let mut best: Option<(usize, &IndexFile)> = None;
        let mut wheels = Vec::new();
        let mut sdists = Vec::new();
        for file in files {
            let Ok(name) = WheelName::parse(&file.filename) else {
                sdists.push(file.filename.clone());
                continue;
            };
            wheels.push(file.filename.clone());
            let Some(rank) = self.tags.rank(&name) else {
                continue;
            };
            // Ties (same rank) go to the smaller file name, so the choice never depends on
            // the order of the index page.
            let better = match best {
                None => true,
                Some((r, f)) => rank < r || (rank == r && file.filename < f.filename),
            };
            if better {
                best = Some((rank, file));
            }
        }
        match best {
            Some((_, file)) => Candidate::Wheel(file.clone()),
            None if !wheels.is_empty() => {
                wheels.sort();
                Candidate::NoWheel(wheels)
            }
            None => {
                sdists.sort();
                Candidate::SdistOnly(sdists)
            }
        }
    }
}

/// The version in a wheel or source distribution file name.
pub fn file_version(filename: &str) -> Option<Version> {
    if let Ok(wheel) = WheelName::parse(filename) {
        return Version::from_str(&wheel.version).ok();
    }
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"]
        .iter()
        .find_map(|ext| filename.strip_suffix(ext))?;
    let (_, version) = stem.rsplit_once('-')?;
    Version::from_str(version).ok()
}
