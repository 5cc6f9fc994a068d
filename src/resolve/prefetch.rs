//! Fetching ahead of the resolver: while PubGrub works through one package, the pages and
//! metadata of the packages it will most likely ask for next are fetched on a thread pool over
//! the shared, kept-alive HTTP client. The resolver itself stays single-threaded and
//! deterministic; prefetching only fills the client's caches.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use pep440_rs::Version;

use super::candidates::{Candidate, Filter};
use crate::index::{IndexClient, normalize};
use crate::platform::Platform;

/// How many fetches run at once.
const THREADS: usize = 16;

/// Fetches project pages and the metadata of likely versions in the background.
pub struct Prefetcher {
    pool: Option<rayon::ThreadPool>,
    client: Arc<IndexClient>,
    preferences: BTreeMap<String, Version>,
    seen: Mutex<HashSet<(Platform, String)>>,
}

impl Prefetcher {
    /// A prefetcher over a client; without a thread pool it does nothing.
    pub fn new(client: Arc<IndexClient>, preferences: BTreeMap<String, Version>) -> Prefetcher {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(THREADS)
            .thread_name(|i| format!("envbuild-fetch-{i}"))
            .build()
            .map_err(|e| tracing::debug!("no prefetch pool: {e}"))
            .ok();
        Prefetcher {
            pool,
            client,
            preferences,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// Starts fetching a project for a platform, once.
    pub fn prefetch(self: &Arc<Self>, filter: &Arc<Filter>, name: &str) {
        let Some(pool) = &self.pool else {
            return;
        };
        let key = (filter.env.platform, name.to_string());
        if !self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key)
        {
            return;
        }
        let this = Arc::clone(self);
        let filter = Arc::clone(filter);
        let name = name.to_string();
        pool.spawn(move || this.run(&filter, &name));
    }

    fn run(self: &Arc<Self>, filter: &Arc<Filter>, name: &str) {
        // Errors are left for the resolver to meet and report in order.
        let Ok(project) = self.client.project(name) else {
            return;
        };
        let candidates = filter.candidates(&project);
        let wheel = |v: &Version| match candidates.get(v) {
            Some(Candidate::Wheel(f)) => Some(f.clone()),
            _ => None,
        };
        let file = self.preferences.get(name).and_then(wheel).or_else(|| {
            candidates
                .keys()
                .rev()
                .filter(|v| !v.any_prerelease())
                .find_map(wheel)
        });
        let Some(file) = file else {
            return;
        };
        let Ok(metadata) = self.client.metadata(&file) else {
            return;
        };
        for req in &metadata.requires_dist {
            if req.marker.evaluate(&filter.markers, &[]) {
                self.prefetch(filter, &normalize(req.name.as_ref()));
            }
        }
    }
}
