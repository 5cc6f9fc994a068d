//! Dependency resolution: PubGrub over the package indexes, for every platform and target.
//!
//! One lock gives each package one version on every platform. PubGrub solves one platform
//! at a time (markers and wheel tags differ per platform) over a virtual root that depends on
//! every target, so targets share versions. Platforms are solved in order, each preferring the
//! versions the previous ones chose; when two platforms still disagree on a package (a newer
//! version lacks a wheel for one of them), the older of the versions becomes the preference
//! and every platform is solved again, a few rounds at most before giving up with a message.

mod candidates;
mod lockfile;
mod prefetch;
mod provider;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use pep440_rs::{Operator, Version};
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder, VersionOrUrl};
use pubgrub::PubGrubError;

use crate::cache::Cache;
use crate::http::HttpError;
use crate::index::{IndexClient, IndexError, normalize};
use crate::lock::PackageLock;
use crate::platform::Platform;
use crate::spec::Libc;
use candidates::Filter;
use prefetch::Prefetcher;
use provider::{Provider, Unusable};

/// How many times the platforms are solved again to agree on versions.
const MAX_ROUNDS: usize = 4;

/// Errors from resolution.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("Failed to set up the index client")]
    Client(#[source] HttpError),
    #[error("Failed to look up `{package}`{required_by}")]
    Index {
        package: String,
        /// ` (required by …)` or empty.
        required_by: String,
        #[source]
        source: Arc<IndexError>,
    },
    #[error(
        "`{requirement}` (from {from}) is a direct URL; envbuild resolves from indexes only\n\
         hint: publish the wheel to an index and list that index in `[[python.indexes]]`"
    )]
    UrlRequirement { requirement: String, from: String },
    #[error(
        "The requirements cannot be satisfied together on {platform}:\n{report}\n\
         hint: relax or remove one of the conflicting requirements"
    )]
    Conflict { platform: String, report: String },
    #[error(
        "No wheel of `{package}` {version} fits {platform}; the index has: {files}\n{report}\n\
         hint: require a version of `{package}` that publishes a wheel for this platform, \
         or remove the platform from `image.platforms`"
    )]
    NoWheel {
        package: String,
        version: String,
        platform: String,
        files: String,
        report: String,
    },
    #[error(
        "`{package}` {version} is only published as a source distribution ({files}); \
         envbuild installs wheels only\n{report}\n\
         hint: require a version that publishes wheels, or build a wheel and serve it from \
         your own index"
    )]
    SdistOnly {
        package: String,
        version: String,
        files: String,
        report: String,
    },
    #[error(
        "The platforms need different versions of `{package}`: {versions}\n\
         hint: a lock gives each package one version everywhere; require a version of \
         `{package}` that has wheels for every platform"
    )]
    Disagree { package: String, versions: String },
    #[error("Python version `{version}` of {platform} is not a valid version")]
    PythonVersion { platform: String, version: String },
    #[error(
        "The index gives no sha256 for `{file}`\n\
         hint: envbuild pins every file by sha256; use an index that publishes hashes"
    )]
    NoHash { file: String },
}

/// The interpreter and C library of one platform: what markers and wheel tags are judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformEnv {
    pub platform: Platform,
    /// Full Python version, `3.11.2`.
    pub python_version: String,
    pub libc: Libc,
}

/// Which locked versions may change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Upgrade {
    /// Keep every pin from the previous lock that still satisfies the spec.
    #[default]
    None,
    /// Ignore the previous lock.
    All,
    /// Ignore the previous pins of these normalized names.
    Packages(BTreeSet<String>),
}

/// Everything resolution needs.
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    /// Index URLs in order; a name is served by the first index that has it.
    pub indexes: Vec<String>,
    /// Files uploaded after this are ignored.
    pub exclude_newer: Option<jiff::Timestamp>,
    pub platforms: Vec<PlatformEnv>,
    /// Target name → its requirements (the target's whole chain, folded).
    pub targets: BTreeMap<String, Vec<pep508_rs::Requirement>>,
    /// Normalized name → version from the previous lock.
    pub preferences: BTreeMap<String, String>,
    pub upgrade: Upgrade,
}

/// The outcome for one platform.
#[derive(Debug, Default)]
struct Solution {
    platform: Option<Platform>,
    /// Normalized name → (version, wheel, index).
    packages: BTreeMap<String, (Version, crate::index::IndexFile, String)>,
    /// Normalized name → names it depends on.
    dependencies: BTreeMap<String, BTreeSet<String>>,
    /// Normalized name → targets that hold it.
    targets: BTreeMap<String, BTreeSet<String>>,
}

/// Resolves every target for every platform into locked packages, caching index answers
/// under `cache`.
pub fn resolve(request: &ResolveRequest, cache: &Cache) -> Result<Vec<PackageLock>, ResolveError> {
    if request.targets.values().all(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let client =
        Arc::new(IndexClient::new(request.indexes.clone(), cache).map_err(ResolveError::Client)?);
    let pinned = pinned_versions(&request.targets);
    let exclude_newer = request.exclude_newer.map(|t| t.as_second());
    let filters = request
        .platforms
        .iter()
        .map(|env| filter_for(env, exclude_newer, &pinned).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let mut preferences = kept_preferences(request);
    let prefetcher = Arc::new(Prefetcher::new(client.clone(), preferences.clone()));
    for filter in &filters {
        for req in request.targets.values().flatten() {
            if req.marker.evaluate(&filter.markers, &[]) {
                prefetcher.prefetch(filter, &normalize(req.name.as_ref()));
            }
        }
    }

    for round in 1..=MAX_ROUNDS {
        let mut solutions = Vec::with_capacity(filters.len());
        let mut round_prefs = preferences.clone();
        for filter in &filters {
            let solution = solve(filter, &client, &prefetcher, request, &round_prefs)?;
            for (name, (version, _, _)) in &solution.packages {
                round_prefs.insert(name.clone(), version.clone());
            }
            solutions.push(solution);
        }

        let disagreements = disagreements(&solutions);
        if disagreements.is_empty() {
            return lockfile::packages(&solutions);
        }
        tracing::debug!("round {round}: platforms disagree on {disagreements:?}");
        if round == MAX_ROUNDS {
            let (package, versions) = disagreements.into_iter().next().unwrap_or_default();
            return Err(ResolveError::Disagree {
                package,
                versions: versions.join(", "),
            });
        }
        for (name, versions) in &solutions_min(&solutions, &disagreements) {
            preferences.insert(name.clone(), versions.clone());
        }
    }
    Ok(Vec::new())
}

/// The previous lock's pins that may stay, parsed.
fn kept_preferences(request: &ResolveRequest) -> BTreeMap<String, Version> {
    request
        .preferences
        .iter()
        .filter(|(name, _)| match &request.upgrade {
            Upgrade::None => true,
            Upgrade::All => false,
            Upgrade::Packages(names) => !names.contains(*name),
        })
        .filter_map(|(name, v)| Some((name.clone(), Version::from_str(v).ok()?)))
        .collect()
}

/// Versions the spec pins with `==` or `===`, by normalized name.
fn pinned_versions(
    targets: &BTreeMap<String, Vec<pep508_rs::Requirement>>,
) -> BTreeMap<String, BTreeSet<Version>> {
    let mut out: BTreeMap<String, BTreeSet<Version>> = BTreeMap::new();
    for req in targets.values().flatten() {
        let Some(VersionOrUrl::VersionSpecifier(specs)) = &req.version_or_url else {
            continue;
        };
        for spec in specs.iter() {
            if matches!(spec.operator(), Operator::Equal | Operator::ExactEqual) {
                out.entry(normalize(req.name.as_ref()))
                    .or_default()
                    .insert(spec.version().clone());
            }
        }
    }
    out
}

/// The marker environment and tags of one platform (PEP 508 environment markers).
fn filter_for(
    env: &PlatformEnv,
    exclude_newer: Option<i64>,
    pinned: &BTreeMap<String, BTreeSet<Version>>,
) -> Result<Filter, ResolveError> {
    let bad = || ResolveError::PythonVersion {
        platform: env.platform.as_str().to_string(),
        version: env.python_version.clone(),
    };
    let python = Version::from_str(env.python_version.trim()).map_err(|_| bad())?;
    let mut release = python.release().to_vec();
    if release.len() < 2 {
        return Err(bad());
    }
    release.resize(3, 0);
    let full = format!("{}.{}.{}", release[0], release[1], release[2]);
    let short = format!("{}.{}", release[0], release[1]);
    let markers: MarkerEnvironment = MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: &full,
        os_name: "posix",
        platform_machine: env.platform.machine(),
        platform_python_implementation: "CPython",
        platform_release: "",
        platform_system: "Linux",
        platform_version: "",
        python_full_version: &full,
        python_version: &short,
        sys_platform: "linux",
    }
    .try_into()
    .map_err(|_| bad())?;
    let python = Version::from_str(&full).map_err(|_| bad())?;
    Ok(Filter::new(
        env.clone(),
        markers,
        python,
        exclude_newer,
        pinned.clone(),
    ))
}

/// Solves one platform.
fn solve(
    filter: &Arc<Filter>,
    client: &IndexClient,
    prefetcher: &Arc<Prefetcher>,
    request: &ResolveRequest,
    preferences: &BTreeMap<String, Version>,
) -> Result<Solution, ResolveError> {
    let provider = Provider::new(
        filter.clone(),
        client,
        prefetcher,
        &request.targets,
        preferences,
    );
    let selected =
        match pubgrub::resolve(&provider, provider::Pkg::Root, provider::virtual_version()) {
            Ok(selected) => selected,
            Err(err) => return Err(failure(err, filter)),
        };
    lockfile::solution(&provider, &selected, filter.env.platform)
}

fn failure(err: PubGrubError<Provider<'_>>, filter: &Filter) -> ResolveError {
    match err {
        PubGrubError::NoSolution(mut tree) => {
            tree.collapse_no_versions();
            let report = report::explain(&tree);
            match report::unusable(&tree) {
                Some((package, version, Unusable::NoWheel { platform, files })) => {
                    ResolveError::NoWheel {
                        package,
                        version: version.to_string(),
                        platform,
                        files: files.join(", "),
                        report,
                    }
                }
                Some((package, version, Unusable::SdistOnly { files })) => {
                    ResolveError::SdistOnly {
                        package,
                        version: version.to_string(),
                        files: files.join(", "),
                        report,
                    }
                }
                _ => ResolveError::Conflict {
                    platform: filter.describe(),
                    report,
                },
            }
        }
        PubGrubError::ErrorChoosingVersion { source, .. }
        | PubGrubError::ErrorRetrievingDependencies { source, .. }
        | PubGrubError::ErrorInShouldCancel(source) => source,
    }
}

/// Packages whose versions differ between platforms, with the versions seen.
fn disagreements(solutions: &[Solution]) -> BTreeMap<String, Vec<String>> {
    let mut seen: BTreeMap<String, BTreeSet<Version>> = BTreeMap::new();
    for s in solutions {
        for (name, (v, _, _)) in &s.packages {
            seen.entry(name.clone()).or_default().insert(v.clone());
        }
    }
    seen.into_iter()
        .filter(|(_, vs)| vs.len() > 1)
        .map(|(name, vs)| (name, vs.iter().map(|v| v.to_string()).collect()))
        .collect()
}

/// For each disagreement, the oldest version chosen: the one every platform is likelier to
/// have a wheel for.
fn solutions_min(
    solutions: &[Solution],
    disagreements: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Version> {
    let mut out = BTreeMap::new();
    for name in disagreements.keys() {
        let min = solutions
            .iter()
            .filter_map(|s| s.packages.get(name).map(|p| p.0.clone()))
            .min();
        if let Some(min) = min {
            out.insert(name.clone(), min);
        }
    }
    out
}

#[cfg(test)]
mod tests;
