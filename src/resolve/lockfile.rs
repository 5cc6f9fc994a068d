//! From PubGrub's selection to the lock's package entries.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use pep440_rs::Version;
use pubgrub::SelectedDependencies;

use super::candidates::Candidate;
use super::provider::{Pkg, Provider};
use super::{ResolveError, Solution};
use crate::lock::{PackageLock, WheelLock};
use crate::platform::Platform;

/// What one platform's selection holds: versions, wheels, edges and targets.
pub(super) fn solution(
    provider: &Provider<'_>,
    selected: &SelectedDependencies<Provider<'_>>,
    platform: Platform,
) -> Result<Solution, ResolveError> {
    let edges = provider.edges.borrow();
    let deps_of = |pkg: &Pkg| -> Vec<Pkg> {
        selected
            .get(pkg)
            .and_then(|v| edges.get(&(pkg.clone(), v.clone())))
            .cloned()
            .unwrap_or_default()
    };

    let mut out = Solution {
        platform: Some(platform),
        ..Solution::default()
    };
    let mut chosen: Vec<(&Pkg, &Version)> = selected.iter().collect();
    chosen.sort();
    for (pkg, version) in chosen {
        let (Pkg::Dist(name) | Pkg::Extra(name, _)) = pkg else {
            continue;
        };
        let names: BTreeSet<String> = deps_of(pkg)
            .iter()
            .filter_map(|d| match d {
                Pkg::Dist(n) | Pkg::Extra(n, _) if n != name => Some(n.clone()),
                _ => None,
            })
            .collect();
        out.dependencies
            .entry(name.clone())
            .or_default()
            .extend(names);
        if let Pkg::Dist(_) = pkg {
            let entry = provider.project(name)?;
            if let Some(Candidate::Wheel(file)) = entry.1.get(version) {
                out.packages.insert(
                    name.clone(),
                    (version.clone(), file.clone(), entry.0.index.clone()),
                );
            }
        }
    }

    // A target holds what its requirements reach through the chosen versions' edges.
    let mut targets: Vec<&Pkg> = selected
        .keys()
        .filter(|p| matches!(p, Pkg::Target(_)))
        .collect();
    targets.sort();
    for target in targets {
        let Pkg::Target(t) = target else {
            continue;
        };
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([target.clone()]);
        while let Some(pkg) = queue.pop_front() {
            for dep in deps_of(&pkg) {
                if seen.insert(dep.clone()) {
                    queue.push_back(dep);
                }
            }
        }
        for pkg in seen {
            if let Pkg::Dist(n) | Pkg::Extra(n, _) = pkg {
                out.targets.entry(n).or_default().insert(t.clone());
            }
        }
    }
    Ok(out)
}

/// One package entry per name; platforms that share a wheel share one `[[package.wheel]]`.
pub(super) fn packages(solutions: &[Solution]) -> Result<Vec<PackageLock>, ResolveError> {
    let mut names: BTreeSet<&String> = BTreeSet::new();
    for s in solutions {
        names.extend(s.packages.keys());
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut version = String::new();
        let mut index = String::new();
        let mut targets = BTreeSet::new();
        let mut dependencies = BTreeSet::new();
        let mut wheels: BTreeMap<String, WheelLock> = BTreeMap::new();
        for s in solutions {
            let Some((v, file, idx)) = s.packages.get(name) else {
                continue;
            };
            version = v.to_string();
            index = idx.clone();
            targets.extend(s.targets.get(name).into_iter().flatten().cloned());
            dependencies.extend(s.dependencies.get(name).into_iter().flatten().cloned());
            let sha256 = file.sha256.clone().ok_or_else(|| ResolveError::NoHash {
                file: file.filename.clone(),
            })?;
            let wheel = wheels.entry(file.url.clone()).or_insert_with(|| WheelLock {
                platforms: Vec::new(),
                file: file.filename.clone(),
                url: file.url.clone(),
                sha256,
                size: file.size,
            });
            wheel.platforms.extend(s.platform);
        }
        let mut wheels: Vec<WheelLock> = wheels.into_values().collect();
        for w in &mut wheels {
            w.platforms.sort();
        }
        wheels.sort_by(|a, b| a.platforms.cmp(&b.platforms).then(a.file.cmp(&b.file)));
        out.push(PackageLock {
            name: name.clone(),
            version,
            index,
            targets: targets.into_iter().collect(),
            dependencies: dependencies.into_iter().collect(),
            wheels,
        });
    }
    Ok(out)
}
