//! Step 3a of the build: writing the planned layers, in parallel, into the layout.
//!
//! - Layers go into a staging folder inside the layout and are moved into `blobs/` only when
//!   every one succeeded: a failed build leaves no blob behind, not even complete ones nothing
//!   refers to. Dropping the folder on an error path removes it.
//! - The largest layers start first, handed out one at a time as threads free up: in the
//!   plan's own order the biggest layer (scipy, say) could start last and run alone on one
//!   core. Results are matched to jobs by index, so the order changes no byte.
//! - A layer whose inputs the memo has seen, and whose blob is in the layout with the right
//!   hash, is used as it is (see `layer::memo`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::plan::LayerContent;
use super::{BuildError, InstalledMap, JobKey, PlatformCtx, layer_entries};
use crate::image::Layout;
use crate::layer::memo::{self, Memo};
use crate::layer::{self, Entry, LayerError, LayerInfo, LayerOptions};
use crate::lock::Lock;
use crate::progress::{Reporter, Stage};
use crate::spec::Spec;

/// What every layer job reads.
pub(super) struct JobInputs<'a> {
    pub lock: &'a Lock,
    pub spec: &'a Spec,
    pub ctxs: &'a [PlatformCtx],
    pub installed: &'a InstalledMap,
    pub vsix_paths: &'a BTreeMap<String, PathBuf>,
    pub opts: LayerOptions,
    pub memo: Memo,
    pub reporter: &'a dyn Reporter,
}

/// Writes the layers of `jobs` into `layout` (whose folder is `out`); the result is in the
/// order of `jobs`. The first failing job in that order is the one reported.
pub(super) fn write_layers(
    inputs: &JobInputs<'_>,
    jobs: &[JobKey],
    layout: &Layout,
    out: &Path,
) -> Result<Vec<LayerInfo>, BuildError> {
    let blobs = layout.blobs_dir();
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(out)
        .map_err(|e| BuildError::Internal(format!("cannot stage in `{}`: {e}", out.display())))?;

    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(job_weight(&jobs[i], inputs.installed)));
    let mut results: Vec<(usize, Result<LayerInfo, BuildError>)> = order
        .into_iter()
        .par_bridge()
        .map(|i| (i, write_job(inputs, &jobs[i], &blobs, staging.path())))
        .collect();
    results.sort_by_key(|(i, _)| *i);
    let written: Vec<LayerInfo> = results
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Result<_, _>>()?;

    for info in &written {
        let hex = info.digest.trim_start_matches("sha256:");
        let dest = blobs.join(hex);
        // A blob already there has the same bytes (same digest); keep it. Layers the memo
        // found are there already and were never staged.
        if !dest.exists() {
            std::fs::rename(staging.path().join(hex), &dest).map_err(|e| {
                BuildError::Internal(format!("cannot move a layer to `{}`: {e}", dest.display()))
            })?;
        }
    }
    Ok(written)
}

/// One layer: from the memo when it knows a checked blob made from the same inputs, else
/// written into `staging`.
fn write_job(
    inputs: &JobInputs<'_>,
    job: &JobKey,
    blobs: &Path,
    staging: &Path,
) -> Result<LayerInfo, BuildError> {
    let ctx = inputs
        .ctxs
        .iter()
        .find(|c| c.platform == job.platform)
        .ok_or_else(|| BuildError::Internal("platform context missing".into()))?;
    let entries: Vec<Entry> = layer_entries(
        inputs.lock,
        inputs.spec,
        ctx,
        &job.content,
        inputs.installed,
        inputs.vsix_paths,
    )?;

    let key = memo::key(&entries, &inputs.opts);
    if let Some(info) = key.as_deref().and_then(|k| inputs.memo.lookup(k, blobs)) {
        tracing::debug!(
            "layer {} unchanged: {}",
            job.content.created_by(),
            info.digest
        );
        return Ok(info);
    }

    let what = format!(
        "{} ({})",
        job.content.created_by().trim_start_matches("envbuild: "),
        job.platform
    );
    let reporter = inputs.reporter;
    reporter.started(Stage::Layer, &what, None);
    let info = layer::write_layer(entries, &inputs.opts, staging)
        .map_err(|source| layer_error(ctx, &job.content, source))?;
    if let Some(k) = &key {
        inputs.memo.record(k, &info);
    }
    reporter.advanced(Stage::Layer, &what, info.size);
    reporter.finished(Stage::Layer, &what);
    Ok(info)
}

/// How much work a layer is, for scheduling: the installed bytes of its packages.
fn job_weight(job: &JobKey, installed: &InstalledMap) -> u64 {
    match &job.content {
        LayerContent::Packages { names, .. } => installed
            .iter()
            .filter(|((p, name, _), _)| *p == job.platform && names.contains(name))
            .map(|(_, inst)| inst.installed_size)
            .sum(),
        _ => 0,
    }
}

/// A layer error, with a member whose bytes do not match its wheel's `RECORD` put in terms of
/// the wheel: the cached file is the locked one, so it is the wheel itself that is broken.
fn layer_error(ctx: &PlatformCtx, content: &LayerContent, source: LayerError) -> BuildError {
    if let LayerError::ZipHash {
        archive,
        path,
        expected,
        actual,
        ..
    } = &source
        && let Some((file, _)) = ctx.wheels.values().find(|(_, p)| p == archive)
    {
        return BuildError::RecordMismatch {
            file: file.clone(),
            path: path.clone(),
            expected: expected.clone(),
            actual: actual.clone(),
        };
    }
    BuildError::Layer {
        what: content.created_by(),
        source: Box::new(source),
    }
}
