//! The PubGrub dependency provider for one platform.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use pep440_rs::Version;
use pep508_rs::{ExtraName, Requirement, VersionOrUrl};
use pubgrub::{Dependencies, DependencyConstraints, DependencyProvider, Ranges};

use super::ResolveError;
use super::candidates::{Candidate, Filter};
use super::prefetch::Prefetcher;
use crate::index::{IndexClient, Project, normalize};

/// A node of the resolution: the virtual root and targets, distributions, and extras of a
/// distribution (which pin the distribution to their own version).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pkg {
    Root,
    Target(String),
    Dist(String),
    Extra(String, String),
}

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkg::Root => write!(f, "the spec"),
            Pkg::Target(t) => write!(f, "target `{t}`"),
            Pkg::Dist(n) => write!(f, "{n}"),
            Pkg::Extra(n, e) => write!(f, "{n}[{e}]"),
        }
    }
}

/// Why a version cannot be used on this platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    NoWheel {
        platform: String,
        files: Vec<String>,
    },
    SdistOnly {
        files: Vec<String>,
    },
    Python {
        requires: String,
        platform: String,
    },
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::NoWheel { platform, .. } => write!(f, "(no wheel fits {platform})"),
            Unusable::SdistOnly { .. } => write!(f, "(only a source distribution exists)"),
            Unusable::Python { requires, platform } => {
                write!(f, "(it requires Python {requires}, {platform} has another)")
            }
        }
    }
}

/// A project and what each of its versions offers this platform.
pub type Offer = (Arc<Project>, BTreeMap<Version, Candidate>);

/// The version given to the virtual root and targets.
pub fn virtual_version() -> Version {
    Version::new([0u64])
}

/// Resolves one platform.
pub struct Provider<'a> {
    pub filter: Arc<Filter>,
    pub client: &'a IndexClient,
    pub prefetcher: &'a Arc<Prefetcher>,
    pub targets: &'a BTreeMap<String, Vec<Requirement>>,
    pub preferences: &'a BTreeMap<String, Version>,
    candidates: RefCell<HashMap<String, Arc<Offer>>>,
    order: RefCell<HashMap<Pkg, usize>>,
    /// The dependencies handed to PubGrub, kept to report targets and dependencies.
    pub edges: RefCell<HashMap<(Pkg, Version), Vec<Pkg>>>,
}

impl<'a> Provider<'a> {
    pub fn new(
        filter: Arc<Filter>,
        client: &'a IndexClient,
        prefetcher: &'a Arc<Prefetcher>,
        targets: &'a BTreeMap<String, Vec<Requirement>>,
        preferences: &'a BTreeMap<String, Version>,
    ) -> Provider<'a> {
        Provider {
            filter,
            client,
            prefetcher,
            targets,
            preferences,
            candidates: RefCell::default(),
            order: RefCell::default(),
            edges: RefCell::default(),
        }
    }

    /// The project and its candidates, computed once per name.
    pub fn project(&self, name: &str) -> Result<Arc<Offer>, ResolveError> {
        if let Some(c) = self.candidates.borrow().get(name) {
            return Ok(c.clone());
        }
        let project = self
            .client
            .project(name)
            .map_err(|source| ResolveError::Index {
                package: name.to_string(),
                required_by: self.required_by(name),
                source,
            })?;
        let candidates = self.filter.candidates(&project);
        let entry = Arc::new((project, candidates));
        self.candidates
            .borrow_mut()
            .insert(name.to_string(), entry.clone());
        Ok(entry)
    }

    fn required_by(&self, name: &str) -> String {
        let edges = self.edges.borrow();
        let mut parents: Vec<String> = edges
            .iter()
            .filter(|(_, deps)| deps.iter().any(|d| d == &Pkg::Dist(name.to_string())))
            .map(|((p, v), _)| match p {
                Pkg::Dist(_) | Pkg::Extra(..) => format!("`{p} {v}`"),
                other => other.to_string(),
            })
            .collect();
        parents.sort();
        if parents.is_empty() {
            String::new()
        } else {
            format!(" (required by {})", parents.join(", "))
        }
    }

    fn choose(&self, name: &str, range: &Ranges<Version>) -> Result<Option<Version>, ResolveError> {
        let entry = self.project(name)?;
        let candidates = &entry.1;
        let wheel = |v: &Version| matches!(candidates.get(v), Some(Candidate::Wheel(_)));
        if let Some(pref) = self.preferences.get(name)
            && range.contains(pref)
            && wheel(pref)
        {
            return Ok(Some(pref.clone()));
        }
        let in_range = || candidates.keys().rev().filter(|v| range.contains(*v));
        // Newest stable version with a wheel; pre-releases only when no stable one fits;
        // failing both, a version without a usable wheel, so the error can name it.
        let pick = in_range()
            .find(|v| wheel(v) && !v.any_prerelease())
            .or_else(|| in_range().find(|v| wheel(v)))
            .or_else(|| in_range().next());
        Ok(pick.cloned())
    }

    fn dist_dependencies(
        &self,
        name: &str,
        version: &Version,
        extra: Option<&str>,
    ) -> Result<Dependencies<Pkg, Ranges<Version>, Unusable>, ResolveError> {
        let entry = self.project(name)?;
        let file = match entry.1.get(version) {
            Some(Candidate::Wheel(file)) => file.clone(),
            Some(Candidate::NoWheel(files)) => {
                return Ok(Dependencies::Unavailable(Unusable::NoWheel {
                    platform: self.filter.describe(),
                    files: files.clone(),
                }));
            }
            Some(Candidate::SdistOnly(files)) => {
                return Ok(Dependencies::Unavailable(Unusable::SdistOnly {
                    files: files.clone(),
                }));
            }
            None => return Ok(Dependencies::Available(DependencyConstraints::default())),
        };
        let metadata = self
            .client
            .metadata(&file)
            .map_err(|source| ResolveError::Index {
                package: name.to_string(),
                required_by: self.required_by(name),
                source,
            })?;
        if let Some(rp) = &metadata.requires_python
            && !self.filter.python_ok(rp)
        {
            return Ok(Dependencies::Unavailable(Unusable::Python {
                requires: rp.to_string(),
                platform: self.filter.describe(),
            }));
        }

        let mut deps = DependencyConstraints::default();
        let extras: Vec<ExtraName> = extra
            .and_then(|e| ExtraName::new(e.to_string()).ok())
            .into_iter()
            .collect();
        for req in &metadata.requires_dist {
            if req.marker.evaluate(&self.filter.markers, &extras) {
                add_requirement(&mut deps, req, &format!("{name} {version}"))?;
            }
        }
        // A distribution that names itself (`foo[all]` requiring `foo[gpu]`) means its own
        // version; the bare self-reference is dropped, an extra's is pinned to this version.
        deps.remove(&Pkg::Dist(name.to_string()));
        for (pkg, range) in deps.iter_mut() {
            if matches!(pkg, Pkg::Extra(n, _) if n == name) {
                *range = Ranges::singleton(version.clone());
            }
        }
        deps.remove(&Pkg::Extra(
            name.to_string(),
            extra.unwrap_or_default().to_string(),
        ));
        if extra.is_some() {
            deps.insert(
                Pkg::Dist(name.to_string()),
                Ranges::singleton(version.clone()),
            );
        }
        Ok(Dependencies::Available(deps))
    }

    fn target_dependencies(
        &self,
        target: &str,
    ) -> Result<DependencyConstraints<Pkg, Ranges<Version>>, ResolveError> {
        let mut deps = DependencyConstraints::default();
        for req in self.targets.get(target).into_iter().flatten() {
            if req.marker.evaluate(&self.filter.markers, &[]) {
                add_requirement(&mut deps, req, &format!("target `{target}`"))?;
            }
        }
        Ok(deps)
    }
}

/// Adds a requirement (and its extras) to a set of constraints, intersecting repeated names.
pub fn add_requirement(
    deps: &mut DependencyConstraints<Pkg, Ranges<Version>>,
    req: &Requirement,
    from: &str,
) -> Result<(), ResolveError> {
    let name = normalize(req.name.as_ref());
    let range = match &req.version_or_url {
        None => Ranges::full(),
        Some(VersionOrUrl::VersionSpecifier(spec)) => Ranges::from(spec.clone()),
        Some(VersionOrUrl::Url(url)) => {
            return Err(ResolveError::UrlRequirement {
                requirement: format!("{} @ {url}", req.name),
                from: from.to_string(),
            });
        }
    };
    let mut add = |pkg: Pkg| {
        let merged = match deps.get(&pkg) {
            Some(existing) => existing.intersection(&range),
            None => range.clone(),
        };
        deps.insert(pkg, merged);
    };
    add(Pkg::Dist(name.clone()));
    for extra in &req.extras {
        add(Pkg::Extra(name.clone(), extra.to_string()));
    }
    Ok(())
}

impl DependencyProvider for Provider<'_> {
    type P = Pkg;
    type V = Version;
    type VS = Ranges<Version>;
    type M = Unusable;
    type Err = ResolveError;
    type Priority = (u8, u32, Reverse<usize>);

    fn prioritize(
        &self,
        package: &Pkg,
        range: &Ranges<Version>,
        stats: &pubgrub::PackageResolutionStatistics,
    ) -> Self::Priority {
        // Virtual nodes first (they only forward constraints), then exact pins, then the
        // packages that conflicted most; ties in the order the packages were first seen.
        let class = match package {
            Pkg::Root | Pkg::Target(_) => 3,
            Pkg::Extra(..) => 2,
            Pkg::Dist(_) if range.as_singleton().is_some() => 1,
            Pkg::Dist(_) => 0,
        };
        let mut order = self.order.borrow_mut();
        let next = order.len();
        let seen = *order.entry(package.clone()).or_insert(next);
        (class, stats.conflict_count(), Reverse(seen))
    }

    fn choose_version(
        &self,
        package: &Pkg,
        range: &Ranges<Version>,
    ) -> Result<Option<Version>, ResolveError> {
        match package {
            Pkg::Root | Pkg::Target(_) => {
                let v = virtual_version();
                Ok(range.contains(&v).then_some(v))
            }
            Pkg::Dist(name) | Pkg::Extra(name, _) => self.choose(name, range),
        }
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &Version,
    ) -> Result<Dependencies<Pkg, Ranges<Version>, Unusable>, ResolveError> {
        let deps = match package {
            Pkg::Root => Dependencies::Available(
                self.targets
                    .keys()
                    .map(|t| (Pkg::Target(t.clone()), Ranges::singleton(virtual_version())))
                    .collect(),
            ),
            Pkg::Target(t) => Dependencies::Available(self.target_dependencies(t)?),
            Pkg::Dist(name) => self.dist_dependencies(name, version, None)?,
            Pkg::Extra(name, extra) => self.dist_dependencies(name, version, Some(extra))?,
        };
        if let Dependencies::Available(deps) = &deps {
            let mut list: Vec<Pkg> = deps.keys().cloned().collect();
            list.sort();
            for pkg in &list {
                if let Pkg::Dist(n) | Pkg::Extra(n, _) = pkg {
                    self.prefetcher.prefetch(&self.filter, n);
                }
            }
            self.edges
                .borrow_mut()
                .insert((package.clone(), version.clone()), list);
        }
        Ok(deps)
    }
}
