//! Stopping work nobody waits for any more: an image request whose client left, a video deleted
//! before it finished.

use super::App;
use crate::jobs::{JobDb, JobRecord, JobState};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::task::AbortHandle;

/// How long a provider's cancel may take (the runner lets a submit under way finish, then cancels
/// the job there) before the task is stopped regardless.
const PROVIDER_GRACE: Duration = Duration::from_secs(60);

/// Whether a job writes its outputs under `dir` (its stored plan names where).
pub(crate) fn job_is_under(j: &JobRecord, dir: &Path) -> bool {
    j.plan["paths"].as_array().is_some_and(|ps| ps.iter().filter_map(|p| p.as_str()).any(|p| Path::new(p).starts_with(dir)))
}

/// The jobs still `submitting` or `pending` that write under `dir`.
fn unfinished_under(db: &JobDb, dir: &Path) -> Vec<JobRecord> {
    db.list(&[JobState::Submitting, JobState::Pending]).unwrap_or_default().into_iter().filter(|j| job_is_under(j, dir)).collect()
}

/// Stop `task`, the pipeline making what goes under `dir`, and its jobs; returns once the task has
/// ended. A job at a provider is cancelled there by the runner ([`crate::jobs::Runner::cancel_job`]:
/// it lets a submit under way finish, since stopping it would leave unknown whether the provider
/// took the job), and the task ends with it. A model working in this process (`offline`), or a
/// pipeline with no job under way, is stopped at once: dropping it stops a plugin at its next
/// yield. Jobs left unfinished are recorded `cancelled` with `why`.
pub(crate) async fn stop(app: &App, task: &AbortHandle, dir: PathBuf, offline: bool, why: &str) {
    let db = app.runner.db.clone();
    let d = dir.clone();
    let jobs = tokio::task::spawn_blocking(move || unfinished_under(&db, &d)).await.unwrap_or_default();
    let at_provider = !offline && jobs.iter().filter(|j| app.runner.cancel_job(&j.id)).count() > 0;
    if !at_provider {
        task.abort();
    }
    let (started, mut aborted) = (Instant::now(), !at_provider);
    while !task.is_finished() {
        if !aborted && started.elapsed() > PROVIDER_GRACE {
            tracing::warn!(target: "atelier::server", "{}: the provider's cancel took over {} s; stopping the task", dir.display(), PROVIDER_GRACE.as_secs());
            task.abort();
            aborted = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (db, why) = (app.runner.db.clone(), why.to_string());
    let _ = tokio::task::spawn_blocking(move || {
        for j in unfinished_under(&db, &dir) {
            tracing::info!(target: "atelier::server", "job {} cancelled: {why}", j.id);
            let _ = db.set_final(&j.id, JobState::Cancelled, &why);
        }
    })
    .await;
}
