//! Drive one job: submit (retrying only where the provider did not take the call), persist the
//! token, poll at the plugin's pace with jitter, fetch artifacts, and record the outcome.

use super::db::{JobDb, JobState, now_ms};
use super::store::{JobStore, NewJob};
use crate::caps::http::Outbound;
use crate::types;
use crate::plugin::{CutOff, Plugin};
use crate::text::{clipped, printable};
use anyhow::{Result, bail};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The plan key of a job queued by a front end that writes its outputs itself.
pub(crate) const FINISHED_BY_CALLER: &str = "finished_by_caller";

/// What a cancelled job records.
const CANCELLED: &str = "cancelled by the user";

/// Progress reports for displays.
#[derive(Clone, Debug)]
pub enum RunnerEvent {
    /// The job is recorded; its submit is about to start.
    Created { job: String },
    /// The provider accepted the job; polling starts.
    Pending { job: String },
    /// A poll answered "still running".
    Progress { job: String, fraction: Option<f32>, state: String },
    /// A retry is scheduled.
    Retrying { job: String, after: Duration, reason: String },
    /// Artifacts are being fetched.
    Fetching { job: String },
    /// A poll reported an output before the job finished (contract 0.2), kept at `path`.
    Partial { job: String, index: u32, preview: bool, path: PathBuf },
}

/// One artifact stored in the job's folder.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StoredArtifact {
    /// Position in the job's outputs.
    pub index: u32,
    /// The file in the job folder.
    pub path: PathBuf,
    /// The media type the bytes really are.
    pub mime: String,
    /// The seed that made it, if known.
    pub seed: Option<u64>,
    /// Provider facts.
    pub notes: Vec<(String, String)>,
    /// Its key in the `[storage]` bucket ([`crate::storage::job_artifact_key`]) when a worker of a
    /// shared job store published it there: front ends fetch it from the bucket, not `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// What a finished job produced.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct JobOutcome {
    /// The job.
    pub job: String,
    /// Stored artifacts.
    pub artifacts: Vec<StoredArtifact>,
    /// Outputs of the batch that failed, with why.
    pub failures: Vec<(u32, String)>,
    /// Usage as reported, JSON.
    pub usage: serde_json::Value,
    /// Wall time from submit to done, ms.
    pub millis: u64,
}

/// Retry and timing policy.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Most submit attempts after rate limits / unavailability.
    pub max_attempts: u32,
    /// First backoff.
    pub base: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
    /// How long a job may take from submit to done.
    pub job_timeout: Duration,
}

/// Polls of one job that may fail in a row before the command stops and leaves the job pending
/// for `jobs resume`, unless the operator sets `[jobs] poll_failures`. With the backoff doubling
/// from 0.5 s to 60 s, 20 failures take about 14 minutes: a provider's bad quarter-hour.
pub const DEFAULT_POLL_FAILURES: u32 = 20;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            job_timeout: Duration::from_secs(3600),
        }
    }
}

/// Runs jobs; one per process, shared by all of them.
pub struct Runner {
    /// The state dir's SQLite database: job folders, and the jobs of this machine.
    pub db: Arc<JobDb>,
    /// Where the runner records the life of the jobs it drives: `db` unless
    /// [`Runner::with_store`] gave a shared store (PostgreSQL).
    store: Arc<dyn JobStore>,
    /// The worker this runner drives jobs for, and its lease: a job it submits is recorded
    /// under this lease (see [`crate::jobs::worker`]).
    lease: Option<(String, Duration)>,
    /// Front end of a shared store: [`Runner::run`] queues the job for a worker and waits for
    /// the store to show its end, instead of submitting it here.
    queue: bool,
    /// Retry policy.
    pub policy: RetryPolicy,
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    events: Option<Arc<dyn Fn(RunnerEvent) + Send + Sync>>,
    cancel: tokio::sync::watch::Receiver<bool>,
    /// The jobs being driven (by `run` or `wait`): each one's cancel token and how many drivers share it.
    driving: Mutex<HashMap<String, (CancellationToken, usize)>>,
    /// The remote `[storage]` bucket when jobs are shared across machines: a worker publishes each
    /// job's raw artifacts there before the job is done, and a front end fetches them back.
    shared_artifacts: std::sync::OnceLock<Arc<crate::storage::ArtifactStore>>,
}

/// One `run` or `wait` driving a job: its cancel token, registered while it lasts.
struct Driving<'a> {
    runner: &'a Runner,
    job: String,
    cancel: CancellationToken,
}

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        let mut m = self.runner.driving.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, drivers)) = m.get_mut(&self.job) {
            *drivers -= 1;
            if *drivers == 0 {
                m.remove(&self.job);
            }
        }
    }
}

impl Runner {
    /// A runner; `cancel` turning true cancels every job it is driving.
    pub fn new(db: Arc<JobDb>, cancel: tokio::sync::watch::Receiver<bool>) -> Runner {
        Runner {
            store: db.clone(),
            db,
            lease: None,
            queue: false,
            policy: RetryPolicy::default(),
            in_flight: Mutex::default(),
            events: None,
            cancel,
            driving: Mutex::default(),
            shared_artifacts: std::sync::OnceLock::new(),
        }
    }

    /// Move the raw artifacts of shared jobs through `bucket` (a remote `[storage]`): a worker
    /// publishes them there before recording the job done, a front end fetches them from there.
    /// The first bucket given stays.
    pub(crate) fn share_artifacts_through(&self, bucket: Arc<crate::storage::ArtifactStore>) {
        let _ = self.shared_artifacts.set(bucket);
    }

    /// Record the jobs in `store` (a shared PostgreSQL store) instead of the state dir's database.
    pub fn with_store(mut self, store: Arc<dyn JobStore>) -> Runner {
        self.store = store;
        self
    }

    /// Submit jobs under `worker`'s lease of `ttl`, renewed by its heartbeat.
    pub fn with_lease(mut self, worker: &str, ttl: Duration) -> Runner {
        self.lease = Some((worker.to_string(), ttl));
        self
    }

    /// Queue jobs for workers instead of running them ([`Runner::run`]).
    pub fn queue_for_workers(mut self) -> Runner {
        self.queue = true;
        self
    }

    /// The store the runner records jobs in.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// Report progress to `f`.
    pub fn with_events(mut self, f: Arc<dyn Fn(RunnerEvent) + Send + Sync>) -> Runner {
        self.events = Some(f);
        self
    }

    /// Cancel one job this runner is driving (in [`Runner::run`] or [`Runner::wait`]); the others go on.
    /// A wait (between attempts, between polls, for a `max_in_flight` slot) ends at once and a
    /// poll under way is abandoned (polls are safe to drop). A submit under way is let finish,
    /// since stopping it could leave unknown whether the provider took the job: a job it made
    /// pending is then cancelled at the provider where it allows, while one it finished, like one
    /// whose results are already being fetched, is kept. A cancelled job ends `cancelled` and its
    /// `run`/`wait` returns an error saying so. Returns `false`, changing nothing, when this runner
    /// is not driving `job` (finished, not started yet, or run by another process: `atelier jobs
    /// cancel` handles those).
    pub fn cancel_job(&self, job: &str) -> bool {
        let m = self.driving.lock().unwrap_or_else(PoisonError::into_inner);
        match m.get(job) {
            Some((cancel, _)) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// The jobs this runner is driving now (their leases are renewed by the worker's heartbeat).
    pub(crate) fn driving_ids(&self) -> Vec<String> {
        self.driving.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }

    /// Register a driver of `job`, for [`Runner::cancel_job`].
    fn drive(&self, job: &str) -> Driving<'_> {
        let mut m = self.driving.lock().unwrap_or_else(PoisonError::into_inner);
        let (cancel, drivers) = m.entry(job.to_string()).or_insert_with(|| (CancellationToken::new(), 0));
        *drivers += 1;
        Driving { runner: self, job: job.to_string(), cancel: cancel.clone() }
    }

    fn emit(&self, e: RunnerEvent) {
        if let Some(f) = &self.events {
            f(e)
        }
    }

    fn slots(&self, plugin: &Plugin) -> Option<Arc<tokio::sync::Semaphore>> {
        let n = plugin.limits.max_in_flight?;
        let mut m = self.in_flight.lock().unwrap();
        Some(m.entry(plugin.id().to_string()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(n as usize))).clone())
    }

    /// Submit a new job and wait for it. The job is recorded before anything is sent.
    pub async fn run(&self, plugin: &Plugin, job: &str, model: &str, plan: &serde_json::Value, req: &types::Request) -> Result<JobOutcome> {
        // Kept (offline jobs) before the job is on record, so whoever finds the job — `jobs
        // resume`, a cancel — finds its request whole.
        if self.queue {
            return self.queue_and_wait(plugin, job, model, plan, req).await;
        }
        let kept = self.keep(plugin, job, Some(req)).await?;
        let lease = self.lease.as_ref().map(|(w, ttl)| (w.as_str(), *ttl));
        self.store
            .create(&NewJob {
                id: job,
                plugin: plugin.id(),
                model,
                plan,
                contract: plugin.contract(),
                component_digest: plugin.component_digest(),
                queued_request: None,
                lease,
            })
            .await?;
        self.emit(RunnerEvent::Created { job: job.into() });
        self.submit_and_wait(plugin, job, req, kept).await
    }

    /// A front end's run: the job is queued in the shared store with its request, a worker
    /// claims, submits and polls it, and this waits for the store to show its end (reading it
    /// every 200 ms). Its plan is marked finished by the front end, so the worker leaves the
    /// outputs to the caller. A cancel asks the store; the worker holding the job cancels it.
    /// The state dir's database gets a mirror of the job's start and end, so a restarted front
    /// end never takes a job it queued for one that was never sent.
    async fn queue_and_wait(&self, plugin: &Plugin, job: &str, model: &str, plan: &serde_json::Value, req: &types::Request) -> Result<JobOutcome> {
        let driving = self.drive(job);
        let request = super::saved::to_bytes(req)?;
        let mut stored = plan.clone();
        if let Some(o) = stored.as_object_mut() {
            o.insert(FINISHED_BY_CALLER.into(), serde_json::Value::Bool(true));
        }
        self.db.create(job, plugin.id(), model, plan)?;
        self.store
            .create(&NewJob {
                id: job,
                plugin: plugin.id(),
                model,
                plan: &stored,
                contract: plugin.contract(),
                component_digest: plugin.component_digest(),
                queued_request: Some(&request),
                lease: None,
            })
            .await?;
        self.emit(RunnerEvent::Created { job: job.into() });
        let mut asked = false;
        let mut pending = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = self.until_cancelled(&driving.cancel), if !asked => {}
            }
            if !asked && self.is_cancelled(&driving.cancel) {
                asked = true;
                self.store.request_cancel(job).await?;
            }
            let Some(rec) = self.store.get(job).await? else { bail!("job {job} is no longer in the job store") };
            match rec.state {
                JobState::Done => {
                    let mut out: JobOutcome = serde_json::from_value(rec.outcome.clone().unwrap_or_default())?;
                    self.fetch_published(&mut out).await?;
                    self.db.set_done(job, &serde_json::to_value(&out)?)?;
                    return Ok(out);
                }
                JobState::Pending if !pending => {
                    pending = true;
                    self.emit(RunnerEvent::Pending { job: job.into() });
                }
                s if s.is_final() || s == JobState::Unknown => {
                    let message = rec.error.unwrap_or_else(|| format!("job {job} ended {s}"));
                    self.db.set_final(job, s, &message)?;
                    bail!(message);
                }
                _ => {}
            }
        }
    }

    /// Submit a job a worker claimed from `queued` (recorded `submitting` under its lease) with
    /// the request stored with it, and wait for it. Refused, with the job failed, when the
    /// installed plugin speaks another contract than the one the job was queued for.
    pub async fn run_claimed(&self, plugin: &Plugin, job: &str, req: &types::Request) -> Result<JobOutcome> {
        if let Err(e) = self.check_build(plugin, job).await {
            return self.fail(job, JobState::Failed, format!("{e:#}; nothing was sent")).await;
        }
        self.submit_and_wait(plugin, job, req, None).await
    }

    /// Whether `plugin` may carry on `job`: the contract it speaks must be the one recorded when
    /// the job was taken (a token or request of one contract means nothing to another); a
    /// different build of the same contract is allowed, with a warning.
    async fn check_build(&self, plugin: &Plugin, job: &str) -> Result<()> {
        let Some(rec) = self.store.get(job).await? else { bail!("no job `{job}`") };
        if let Some(recorded) = rec.contract.as_deref().filter(|c| *c != plugin.contract()) {
            bail!(
                "job {job} was taken by `{}` speaking contract {recorded}, but the installed `{}` speaks contract {}: its token means nothing to this build. Install a build of `{}` with contract {recorded} to finish it (`atelier plugins list` shows what is installed), or cancel it with `atelier jobs cancel {job}`",
                rec.plugin,
                plugin.id(),
                plugin.contract(),
                rec.plugin
            );
        }
        if let Some(recorded) = rec.component_digest.as_deref().filter(|d| *d != plugin.component_digest()) {
            tracing::warn!(
                target: "atelier::jobs",
                job,
                recorded,
                installed = plugin.component_digest(),
                "job {job} was taken by another build of `{}` (same contract {}); carrying on with the installed one",
                plugin.id(),
                plugin.contract()
            );
        }
        Ok(())
    }

    /// For a job of a plugin that reaches no host: its run lock, and its request kept (`req`)
    /// or already kept (`None`, a job run again). `None` for other plugins.
    async fn keep(&self, plugin: &Plugin, job: &str, req: Option<&types::Request>) -> Result<Option<super::saved::Kept>> {
        if !plugin.reaches_no_host() {
            return Ok(None);
        }
        let dir = self.db.job_dir(job);
        let Some(lock) = super::saved::lock(&dir)? else {
            bail!("job {job} is being run by another atelier process; `atelier jobs show {job}` shows how it ends");
        };
        let kept = super::saved::Kept::new(&dir, lock);
        if let Some(req) = req {
            super::saved::save(&dir, req).await?;
        }
        Ok(Some(kept))
    }

    /// Whether [`Runner::rerun`] can run `job` again: its plugin reaches no host, it was cut
    /// off while submitting (`submitting`, or `unknown` as an older version recorded it), and
    /// its request was kept.
    pub fn can_rerun(&self, plugin: &Plugin, job: &crate::jobs::JobRecord) -> bool {
        plugin.reaches_no_host()
            && plugin.id() == job.plugin
            && matches!(job.state, JobState::Submitting | JobState::Unknown)
            && super::saved::exists(&self.db.job_dir(&job.id))
    }

    /// Run again a job of a plugin that reaches no host ([`Plugin::reaches_no_host`]) which a
    /// stopped process left `submitting` (or `unknown`): nothing it did left this host, so
    /// sending it again cannot bill twice. Its request was kept in its folder; the job keeps its
    /// id and plan. Refused for any other job, and for one another process is still running.
    pub async fn rerun(&self, plugin: &Plugin, job: &str) -> Result<JobOutcome> {
        let Some(rec) = self.store.get(job).await? else { bail!("no job `{job}`") };
        if !self.can_rerun(plugin, &rec) {
            if !plugin.reaches_no_host() {
                bail!("job {job} of `{}` is not run again: the plugin can reach the network, so the provider may have it", plugin.id());
            }
            if !matches!(rec.state, JobState::Submitting | JobState::Unknown) {
                bail!("job {job} is {}; only a job cut off while submitting is run again", rec.state);
            }
            bail!("job {job} was cut off, but its request was not kept, so it cannot be run again; run the command again");
        }
        let Some(req) = super::saved::load(&self.db.job_dir(job)).await? else {
            bail!("job {job} was cut off, but its request was not kept, so it cannot be run again; run the command again");
        };
        let kept = self.keep(plugin, job, None).await?;
        tracing::info!(target: "atelier::jobs", job, plugin = plugin.id(), "running again a job cut off while submitting (its plugin reaches no host, so nothing was sent)");
        self.store.set_submitting(job).await?;
        self.submit_and_wait(plugin, job, &req, kept).await
    }

    /// Submit and follow the job to its end. `kept`: the run lock and kept request of a job of a
    /// plugin that reaches no host, safe to send again if this process dies until its submit
    /// has answered.
    async fn submit_and_wait(&self, plugin: &Plugin, job: &str, req: &types::Request, mut kept: Option<super::saved::Kept>) -> Result<JobOutcome> {
        let driving = self.drive(job);
        let cancel = &driving.cancel;
        // A `max_in_flight` slot is held from the submit until the job ends (polls included):
        // the provider counts a pending job as active.
        let slots = self.slots(plugin);
        let _permit = match &slots {
            Some(s) => tokio::select! {
                permit = s.clone().acquire_owned() => Some(permit?),
                _ = self.until_cancelled(cancel) => return self.fail(job, JobState::Cancelled, CANCELLED.into()).await,
            },
            None => None,
        };
        // The kept request goes (`kept` dropped) once the job has left `submitting`: done or
        // failed (after its artifacts are stored, which may take a while for a large video), or
        // pending.
        match self.submit_loop(plugin, job, req, cancel).await? {
            Submitted::Done(o, started) => self.finish(plugin, job, o, started).await,
            Submitted::Pending(p, started) => {
                kept.take();
                self.emit(RunnerEvent::Pending { job: job.into() });
                self.poll_until_done(plugin, job, &p.token, Duration::from_millis(p.retry_after_ms), started, cancel).await
            }
        }
    }

    /// Submit, retrying only where the provider did not take the call, until it is done or pending.
    async fn submit_loop(&self, plugin: &Plugin, job: &str, req: &types::Request, cancel: &CancellationToken) -> Result<Submitted> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.check_cancelled(plugin, job, None, cancel).await?;
            self.store.count_submit(job).await?;
            let called = match plugin.submit(job, req).await {
                Ok(c) => c,
                // Stopped (deadline, crash) after a state-changing request was answered, went
                // unanswered or was under way: the provider may hold the job.
                Err(e) if e.is::<CutOff>() => {
                    return self.fail(job, JobState::Unknown, format!(
                        "{e:#}; the provider may have accepted it, so it is not sent again automatically (it could be billed twice). Check the provider's dashboard; `atelier jobs show {job}` has the details"
                    )).await;
                }
                Err(e) => return self.fail(job, JobState::Failed, format!("{e:#}")).await,
            };
            let e = match called.value {
                Ok(types::Submission::Done(o)) => return Ok(Submitted::Done(o, started)),
                Ok(types::Submission::Pending(p)) => {
                    if p.token.len() > (plugin.limits.max_token_kb as usize) << 10 {
                        return self.token_too_large(plugin, job, &p.token).await;
                    }
                    self.store.set_pending(job, &p.token).await?;
                    return Ok(Submitted::Pending(p, started));
                }
                Err(e) if called.ambiguous => {
                    return self.fail(
                        job,
                        JobState::Unknown,
                        format!(
                            "{}; the request may have reached the provider before the connection failed, so it is not sent again automatically (it could be billed twice). Check the provider's dashboard; `atelier jobs show {job}` has the details",
                            explain(plugin.id(), &e, attempt)
                        ),
                    ).await;
                }
                // The provider took the request (HTTP 2xx) and the plugin could not make sense of
                // what followed: the job may exist there. An explicit refusal is still a refusal.
                Err(e) if called.accepted && !is_refusal(&e) => {
                    return self.fail(
                        job,
                        JobState::Unknown,
                        format!(
                            "{}; the provider accepted the request (HTTP 2xx), so it may hold the job and bill it, and it is not sent again automatically (it could be billed twice). Check the provider's dashboard; `atelier jobs show {job}` has the details",
                            explain(plugin.id(), &e, attempt)
                        ),
                    ).await;
                }
                Err(e) => e,
            };
            let retry_after = match &e {
                types::PluginError::RateLimited(r) if attempt < self.policy.max_attempts => {
                    r.retry_after_ms.map(|ms| self.plugin_delay(plugin, ms)).unwrap_or_else(|| self.backoff(plugin, attempt))
                }
                types::PluginError::Unavailable(_) if attempt < self.policy.max_attempts => self.backoff(plugin, attempt),
                _ => return self.fail(job, JobState::Failed, explain(plugin.id(), &e, attempt)).await,
            };
            let delay = jitter(retry_after);
            // The provider did not take the job; one that could only be tried again past the job's
            // time limit ends now rather than at the limit.
            if started.elapsed() + delay > self.policy.job_timeout {
                return self.fail(job, JobState::Failed, format!(
                    "{}; not tried again, as the next attempt would come after the job's time limit of {} s",
                    explain(plugin.id(), &e, attempt),
                    self.policy.job_timeout.as_secs_f64()
                )).await;
            }
            let reason = explain(plugin.id(), &e, attempt);
            tracing::info!(target: "atelier::jobs", job, attempt, delay_ms = delay.as_millis() as u64, reason = %reason, "submit refused; sending it again after a pause");
            self.emit(RunnerEvent::Retrying { job: job.into(), after: delay, reason: format!("attempt {attempt} refused") });
            self.sleep_or_cancel(plugin, job, None, delay, cancel).await?;
        }
    }

    /// Poll a pending job until it ends (also used by `jobs resume`, without submitting again).
    /// Refused when the installed plugin speaks another contract than the one that took the job.
    pub async fn wait(&self, plugin: &Plugin, job: &str, token: &str, first: Duration, started: Instant) -> Result<JobOutcome> {
        self.check_build(plugin, job).await?;
        let driving = self.drive(job);
        self.poll_until_done(plugin, job, token, first, started, &driving.cancel).await
    }

    /// Poll until the provider says the job is done or failed. A failed poll (the provider
    /// unavailable or rate limiting, "not found (yet)", a poll call that timed out or crashed)
    /// says nothing about the job: it is backed off exponentially and counted, and after the
    /// poll budget in a row the command stops with the job left `pending` for `jobs resume`.
    async fn poll_until_done(
        &self,
        plugin: &Plugin,
        job: &str,
        token: &str,
        first: Duration,
        started: Instant,
        cancel: &CancellationToken,
    ) -> Result<JobOutcome> {
        let mut delay = first;
        let mut failures = 0u32;
        let budget = self.poll_budget(plugin);
        loop {
            let remaining = self.policy.job_timeout.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                let _ = plugin.cancel(job, token).await;
                return self.fail(job, JobState::Failed, format!(
                    "{}: the job did not finish within {} s; it was cancelled at the provider where possible",
                    plugin.id(), self.policy.job_timeout.as_secs_f64()
                )).await;
            }
            let pause = jitter(self.poll_delay(plugin, delay));
            self.sleep_or_cancel(plugin, job, Some(token), pause.min(remaining), cancel).await?;
            if pause >= remaining {
                continue; // the time limit came first: the check above ends the job
            }
            self.store.count_poll(job).await?;
            // A poll is safe to abandon, so a cancellation does not wait for it.
            let status = tokio::select! {
                s = plugin.poll(job, token) => s,
                _ = self.until_cancelled(cancel) => {
                    self.check_cancelled(plugin, job, Some(token), cancel).await?;
                    continue;
                }
            };
            let (why, wait) = match status {
                Ok(Ok(types::Status::Running(mut p))) => {
                    failures = 0;
                    self.keep_partials(plugin, job, std::mem::take(&mut p.partials)).await;
                    self.emit(RunnerEvent::Progress { job: job.into(), fraction: p.fraction, state: p.state });
                    delay = Duration::from_millis(p.retry_after_ms);
                    continue;
                }
                Ok(Ok(types::Status::Done(o))) => return self.finish(plugin, job, o, started).await,
                // Polling is safe to repeat: rate limits, outages and a job not visible yet only slow it down.
                Ok(Err(e)) if matches!(e, types::PluginError::RateLimited(_) | types::PluginError::Unavailable(_)) => {
                    let asked = match &e {
                        types::PluginError::RateLimited(r) => r.retry_after_ms.map(|ms| self.plugin_delay(plugin, ms)),
                        _ => None,
                    };
                    (poll_failure(plugin.id(), &e), asked.unwrap_or_else(|| self.backoff(plugin, failures + 1)))
                }
                // The credentials stopped working: polling again will not help until the operator
                // fixes them, and the job may well be running. Stop now, leaving it pending.
                Ok(Err(e @ types::PluginError::Unauthorized(_))) => {
                    bail!("{}\njob {job} is still pending at the provider and kept on record: once the key works, `atelier jobs resume {job}` picks it up", explain(plugin.id(), &e, 1))
                }
                // The provider said the work failed (or was refused): the job is over.
                Ok(Err(e)) => return self.fail(job, JobState::Failed, explain(plugin.id(), &e, 1)).await,
                // The poll call itself failed in this host (its deadline, a crash): not the provider's word.
                Err(e) => (format!("{e:#}"), self.backoff(plugin, failures + 1)),
            };
            failures += 1;
            if failures >= budget {
                return Err(self.stalled(plugin, job, failures, &why));
            }
            delay = wait;
            tracing::info!(target: "atelier::jobs", job, attempt = failures, delay_ms = delay.as_millis() as u64, reason = %why, "poll failed; polling again after a pause");
            self.emit(RunnerEvent::Retrying { job: job.into(), after: delay, reason: format!("poll {failures} of {budget} failed") });
        }
    }

    /// `failures` polls in a row failed: the command stops, the job stays `pending` (the
    /// provider never said it failed), and the message says how to pick it up and how to wait longer.
    fn stalled(&self, plugin: &Plugin, job: &str, failures: u32, why: &str) -> anyhow::Error {
        tracing::warn!(target: "atelier::jobs", job, failures, reason = %why, "polling stopped after too many failures; the job stays pending");
        anyhow::anyhow!(
            "{why}\n{} polls of job {job} failed in a row, so atelier stopped polling; the provider never said the job failed, so it is still pending and kept on record: `atelier jobs resume {job}` picks it up when the provider answers again. To keep polling longer before stopping, raise the budget in {}:\n    [jobs]\n    poll_failures = {}",
            failures,
            plugin.grants.config_path,
            failures.saturating_mul(2)
        )
    }

    /// The poll budget: the operator's `[jobs] poll_failures`, else [`DEFAULT_POLL_FAILURES`].
    fn poll_budget(&self, plugin: &Plugin) -> u32 {
        plugin.jobs.poll_failures.unwrap_or(DEFAULT_POLL_FAILURES).max(1)
    }

    /// How long a long-running host (`atelier serve`) waits before polling a stalled job again:
    /// the longest backoff.
    pub(crate) fn stall_pause(&self, plugin: &Plugin) -> Duration {
        self.max_backoff(plugin)
    }

    /// The longest pause: the operator's `[jobs] max_backoff_s`, else the policy's.
    fn max_backoff(&self, plugin: &Plugin) -> Duration {
        plugin.jobs.max_backoff_s.map(Duration::from_secs_f64).unwrap_or(self.policy.max_backoff)
    }

    /// A pending job whose token is over `max_token_kb`: the provider may have accepted (and
    /// may bill) it, but the token is not stored, so it could never be polled. Ask the provider
    /// to cancel it and record the job `unknown`, naming the limit.
    async fn token_too_large<T>(&self, plugin: &Plugin, job: &str, token: &str) -> Result<T> {
        let cancelled = match plugin.cancel(job, token).await {
            Ok(Ok(())) => "the provider confirmed its cancellation",
            _ => "the provider did not confirm a cancellation",
        };
        let what = format!(
            "handed back a job token of {} KiB, which was not stored, so the job cannot be polled (the provider may have accepted it and may bill it: check its dashboard; {cancelled})",
            token.len().div_ceil(1024)
        );
        let message = plugin.limits.over_message(plugin.id(), &plugin.grants.config_path, "max_token_kb", &what);
        self.fail(job, JobState::Unknown, message).await
    }

    /// A delay a plugin asked for, bounded by the largest backoff: a plugin cannot park a job
    /// for longer (`u64::MAX` ms is a hang, not a delay).
    fn plugin_delay(&self, plugin: &Plugin, ms: u64) -> Duration {
        Duration::from_millis(ms).min(self.max_backoff(plugin))
    }

    /// The pause before a poll: the plugin's delay, bounded, and never under 50 ms.
    fn poll_delay(&self, plugin: &Plugin, d: Duration) -> Duration {
        d.min(self.max_backoff(plugin)).max(Duration::from_millis(50))
    }

    /// Resolves once `job` is cancelled: all jobs (the runner's watch) or this one (its token).
    async fn until_cancelled(&self, cancel: &CancellationToken) {
        let mut all = self.cancel.clone();
        tokio::select! {
            sender_gone = async { all.wait_for(|c| *c).await.is_err() } => {
                // A dropped sender can no longer cancel everything; only the job's own token can.
                if sender_gone {
                    cancel.cancelled().await
                }
            }
            _ = cancel.cancelled() => {}
        }
    }

    fn is_cancelled(&self, cancel: &CancellationToken) -> bool {
        *self.cancel.borrow() || cancel.is_cancelled()
    }

    async fn check_cancelled(&self, plugin: &Plugin, job: &str, token: Option<&str>, cancel: &CancellationToken) -> Result<()> {
        if self.is_cancelled(cancel) {
            if let Some(t) = token {
                let _ = plugin.cancel(job, t).await;
            }
            self.fail::<()>(job, JobState::Cancelled, CANCELLED.into()).await?;
        }
        Ok(())
    }

    async fn sleep_or_cancel(&self, plugin: &Plugin, job: &str, token: Option<&str>, d: Duration, cancel: &CancellationToken) -> Result<()> {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.until_cancelled(cancel) => {}
        }
        self.check_cancelled(plugin, job, token, cancel).await
    }

    /// Exponential: the policy's base, doubled per attempt, capped at the largest backoff.
    fn backoff(&self, plugin: &Plugin, attempt: u32) -> Duration {
        self.policy.base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1))).min(self.max_backoff(plugin))
    }

    async fn fail<T>(&self, job: &str, state: JobState, message: String) -> Result<T> {
        self.store.set_final(job, state, &message).await?;
        bail!(message)
    }

    /// Store every artifact in the job folder (downloading where needed) and record the outcome.
    /// What the plugin handed back is checked before anything is kept: the number of artifacts
    /// against its `max_artifacts` (over it, the call fails), each artifact's notes against
    /// `max_notes_kb` and its bytes against the media type it claims (a refused artifact becomes a
    /// failure of that output and is not stored).
    async fn finish(&self, plugin: &Plugin, job: &str, o: types::Outcome, started: Instant) -> Result<JobOutcome> {
        let (id, limits, config_path) = (plugin.id(), &plugin.limits, plugin.grants.config_path.as_str());
        let max = limits.max_artifacts as usize;
        if o.artifacts.len() > max || o.failures.len() > max {
            let what = if o.artifacts.len() >= o.failures.len() {
                format!("returned {} artifacts", o.artifacts.len())
            } else {
                format!("reported {} failed outputs", o.failures.len())
            };
            return self.fail(job, JobState::Failed, limits.over_message(id, config_path, "max_artifacts", &what)).await;
        }
        self.emit(RunnerEvent::Fetching { job: job.into() });
        let dir = self.db.job_dir(job);
        tokio::fs::create_dir_all(&dir).await?;
        let mut artifacts = vec![];
        let mut failures: Vec<(u32, String)> = o.failures.iter().map(|f| (f.index, explain(id, &f.error, 1))).collect();
        let max_notes = (limits.max_notes_kb as usize).saturating_mul(1024);
        for (i, a) in o.artifacts.into_iter().enumerate() {
            let i = i as u32;
            // Notes are copied into the PNG and its sidecar: counted as stored, a JSON pair each.
            let notes = a.notes.iter().fold(0usize, |n, (k, v)| n.saturating_add(k.len()).saturating_add(v.len()).saturating_add(6));
            if notes > max_notes {
                let what = format!("returned an output with {} KiB of notes (the output was not written)", notes.div_ceil(1024));
                failures.push((i, limits.over_message(id, config_path, "max_notes_kb", &what)));
                continue;
            }
            let label = printable(&clipped(&a.mime, 100)).into_owned();
            let claimed = |head: &[u8]| {
                crate::imageio::check_claimed(&a.mime, head)
                    .map_err(|why| format!("plugin `{id}` returned this output labelled `{label}`, but {why}; the output was not written"))
            };
            // Inline bytes are checked before they reach the disk, downloads as soon as they are there.
            let tmp = dir.join(format!("raw-{i}.part"));
            let fetched = match a.body {
                types::Body::Inline(bytes) => match claimed(&bytes[..bytes.len().min(64)]) {
                    Ok(mime) => tokio::fs::write(&tmp, &bytes).await.map(|_| mime).map_err(|e| e.to_string()),
                    Err(m) => Err(m),
                },
                types::Body::Download(d) => match self.download(plugin, &d, &tmp).await {
                    Ok(()) => claimed(&read_head(&tmp).await),
                    Err(m) => Err(m),
                },
                // A stream the plugin wrote (contract 0.2): moved into the job's folder, not read.
                types::Body::File(held) => match move_file(&held, &tmp).await {
                    Ok(()) => claimed(&read_head(&tmp).await),
                    Err(e) => Err(format!("the host could not keep the plugin's streamed output: {e}")),
                },
            };
            let mime = match fetched {
                Ok(mime) => mime.to_string(),
                Err(m) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    failures.push((i, m));
                    continue;
                }
            };
            let path = dir.join(format!("raw-{i}.{}", crate::imageio::extension(&mime)));
            tokio::fs::rename(&tmp, &path).await?;
            artifacts.push(StoredArtifact { index: i, path, mime, seed: a.seed, notes: a.notes, key: None });
        }
        let out = JobOutcome {
            job: job.into(),
            artifacts,
            failures,
            usage: usage_json(&o.usage),
            millis: started.elapsed().as_millis() as u64,
        };
        if out.artifacts.is_empty() {
            let why = out.failures.iter().map(|(i, m)| format!("output {}: {m}", u64::from(*i) + 1)).collect::<Vec<_>>().join("; ");
            return self.fail(job, JobState::Failed, format!("{id}: no output could be kept: {why}")).await;
        }
        let mut out = out;
        if let Err(e) = self.publish_artifacts(&mut out).await {
            // Billed and fetched, but out of the front ends' reach: never recorded done with
            // files missing; the message says where the files are kept.
            let kept = out.artifacts.iter().map(|a| a.path.display().to_string()).collect::<Vec<_>>().join(", ");
            let worker = self.lease.as_ref().map_or("this worker", |(w, _)| w.as_str());
            return self.fail(job, JobState::Failed, format!("the job finished, but its results could not be stored in the [storage] bucket ({e:#}); they are kept on worker {worker} at {kept}")).await;
        }
        self.store.set_done(job, &serde_json::to_value(&out)?).await?;
        Ok(out)
    }

    /// A worker of a shared job store with a remote `[storage]`: each artifact published under
    /// [`crate::storage::job_artifact_key`], its key recorded in the outcome.
    async fn publish_artifacts(&self, out: &mut JobOutcome) -> Result<()> {
        let (Some(bucket), Some(_)) = (self.shared_artifacts.get(), &self.lease) else { return Ok(()) };
        for a in &mut out.artifacts {
            let name = a.path.file_name().and_then(|n| n.to_str()).unwrap_or("artifact");
            let key = crate::storage::job_artifact_key(&out.job, name);
            bucket.publish(&key, &a.path).await?;
            a.key = Some(key);
        }
        Ok(())
    }

    /// A front end's copy of each artifact a worker published to the bucket, streamed into this
    /// state dir's job folder; `path` then names the copy.
    pub(crate) async fn fetch_published(&self, out: &mut JobOutcome) -> Result<()> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let dir = self.db.job_dir(&out.job);
        for a in &mut out.artifacts {
            let Some(key) = &a.key else { continue };
            // Published by this process's own worker: the file is already here.
            if a.path.parent() == Some(dir.as_path()) {
                continue;
            }
            let Some(bucket) = self.shared_artifacts.get() else {
                bail!("job {}: its output is stored at `{key}` in the workers' [storage] bucket, but this front end has no [storage] url; set the same [storage] as the workers", out.job)
            };
            let Some(mut artifact) = bucket.read(key).await? else {
                bail!("job {}: its output `{key}` is missing from {}", out.job, bucket.location())
            };
            tokio::fs::create_dir_all(&dir).await?;
            let name = std::path::Path::new(key).file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "artifact".into());
            let path = dir.join(name);
            let tmp = path.with_extension("part");
            let mut f = tokio::fs::File::create(&tmp).await?;
            while let Some(chunk) = artifact.stream.next().await {
                f.write_all(&chunk?).await?;
            }
            f.flush().await?;
            f.sync_all().await?;
            drop(f);
            tokio::fs::rename(&tmp, &path).await?;
            a.path = path;
        }
        Ok(())
    }

    async fn download(&self, plugin: &Plugin, d: &types::Download, dest: &std::path::Path) -> Result<(), String> {
        let http = plugin.http().ok_or("plugin has no network access")?;
        let req = Outbound { method: "GET".into(), url: d.url.clone(), headers: d.headers.clone(), body: vec![], timeout: None };
        let (status, _headers, _n) = http.download(req, dest).await.map_err(|f| format!("download failed: {f}"))?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = tokio::fs::read(dest).await.unwrap_or_default();
        let excerpt = printable(&String::from_utf8_lossy(&body[..body.len().min(300)])).into_owned();
        let expired = d.expires_at_ms.is_some_and(|t| now_ms() >= t);
        if expired || (d.expires_at_ms.is_some() && matches!(status, 403 | 404 | 410)) {
            return Err(format!(
                "the delivery URL has expired (HTTP {status}{}); the provider keeps results only briefly — the result is lost, submit the job again",
                d.expires_at_ms.map(|t| format!(", valid until {}", fmt_time(t))).unwrap_or_default()
            ));
        }
        Err(format!("download failed with HTTP {status}: {excerpt}"))
    }
}

impl Runner {
    /// Outputs a poll reported before the job finished (contract 0.2: one image of a batch, a
    /// preview frame): each kept in the job's folder as `partials/<index>-<preview|final>-<n>.<ext>`,
    /// its bytes checked against the type it claims, at most `max_artifacts` a poll. A partial
    /// that cannot be kept is logged and skipped: the job's final outcome does not depend on it.
    async fn keep_partials(&self, plugin: &Plugin, job: &str, partials: Vec<types::Partial>) {
        if partials.is_empty() {
            return;
        }
        let dir = self.db.job_dir(job).join("partials");
        if let Err(e) = tokio::fs::create_dir_all(&dir).await {
            tracing::warn!(target: "atelier::jobs", job, "cannot keep partial results in {}: {e}", dir.display());
            return;
        }
        let max = plugin.limits.max_artifacts as usize;
        for p in partials.into_iter().take(max) {
            // Numbered after what earlier polls kept, so a later preview never replaces an earlier file.
            let mut seq = 0usize;
            if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
                while let Ok(Some(_)) = entries.next_entry().await {
                    seq += 1;
                }
            }
            let stem = format!("{:02}-{}-{seq}", p.index, if p.preview { "preview" } else { "final" });
            let tmp = dir.join(format!("{stem}.part"));
            let stored = match p.artifact.body {
                types::Body::Inline(bytes) => tokio::fs::write(&tmp, &bytes).await.map_err(|e| e.to_string()),
                types::Body::File(held) => move_file(&held, &tmp).await.map_err(|e| e.to_string()),
                types::Body::Download(d) => self.download(plugin, &d, &tmp).await,
            };
            let kept = match stored {
                Ok(()) => crate::imageio::check_claimed(&p.artifact.mime, &read_head(&tmp).await),
                Err(e) => Err(e),
            };
            match kept {
                Ok(mime) => {
                    let path = dir.join(format!("{stem}.{}", crate::imageio::extension(mime)));
                    if tokio::fs::rename(&tmp, &path).await.is_ok() {
                        self.emit(RunnerEvent::Partial { job: job.into(), index: p.index, preview: p.preview, path });
                    }
                }
                Err(why) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                    tracing::warn!(target: "atelier::jobs", job, plugin = plugin.id(), "a partial result was not kept: {}", printable(&why));
                }
            }
        }
    }
}

/// Move a file the host holds into place: a rename, or a copy when it is on another filesystem.
async fn move_file(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    if tokio::fs::rename(from, to).await.is_ok() {
        return Ok(());
    }
    tokio::fs::copy(from, to).await?;
    let _ = tokio::fs::remove_file(from).await;
    Ok(())
}

/// How a submit ended when it did not fail.
enum Submitted {
    /// Done in the call.
    Done(types::Outcome, Instant),
    /// Accepted; to be polled.
    Pending(types::Pending, Instant),
}

/// An explicit refusal by the provider (bad input, moderation, credentials): the job was not
/// taken, whatever the plugin sent before.
fn is_refusal(e: &types::PluginError) -> bool {
    matches!(e, types::PluginError::InvalidInput(_) | types::PluginError::Moderated(_) | types::PluginError::Unauthorized(_))
}

/// The first 64 bytes of a file (fewer if it is shorter), for sniffing its media type.
async fn read_head(p: &std::path::Path) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(64);
    if let Ok(f) = tokio::fs::File::open(p).await {
        let _ = f.take(64).read_to_end(&mut buf).await;
    }
    buf
}

/// Up to +25 % random delay, so many clients do not poll in lockstep.
fn jitter(d: Duration) -> Duration {
    d + d.mul_f64(rand::random::<f64>() * 0.25)
}

fn fmt_time(ms: u64) -> String {
    format!("{} s after the Unix epoch", ms / 1000)
}

/// Usage as JSON, with what the plugin reported made safe to add up and multiply: counts of
/// tokens and images at most 2^53 (exact in JSON and f64; sums over a run cannot wrap a u64),
/// images of one size merged (at most 64 sizes), video seconds finite and not negative. What was
/// changed is listed under `adjusted`.
pub fn usage_json(u: &types::Usage) -> serde_json::Value {
    const MAX_COUNT: u64 = 1 << 53;
    const MAX_SIZES: usize = 64;
    let mut adjusted: Vec<String> = vec![];
    let mut sizes: std::collections::BTreeMap<(u32, u32), u64> = Default::default();
    let mut dropped = 0usize;
    for i in &u.images {
        let full = sizes.len() >= MAX_SIZES;
        match sizes.get_mut(&(i.width, i.height)) {
            Some(c) => *c = c.saturating_add(u64::from(i.count)),
            None if !full => {
                sizes.insert((i.width, i.height), u64::from(i.count));
            }
            None => dropped += 1,
        }
    }
    if dropped > 0 {
        adjusted.push(format!("{dropped} image entries beyond {MAX_SIZES} sizes dropped"));
    }
    let mut capped = |what: &str, n: u64| {
        if n > MAX_COUNT {
            adjusted.push(format!("{what} {n} capped at 2^53"));
        }
        n.min(MAX_COUNT)
    };
    let images: Vec<serde_json::Value> = sizes
        .into_iter()
        .map(|((w, h), c)| json!({"width": w, "height": h, "count": capped(&format!("images of {w}x{h}:"), c)}))
        .collect();
    let input_tokens = u.input_tokens.map(|n| capped("input_tokens", n));
    let output_tokens = u.output_tokens.map(|n| capped("output_tokens", n));
    let video_seconds = u.video_seconds.filter(|s| {
        let ok = s.is_finite() && *s >= 0.0;
        if !ok {
            adjusted.push(format!("video_seconds {s} dropped"));
        }
        ok
    });
    let mut v = json!({"images": images, "input_tokens": input_tokens, "output_tokens": output_tokens, "video_seconds": video_seconds});
    if !adjusted.is_empty() {
        v["adjusted"] = json!(adjusted);
    }
    v
}

/// A plugin's error as a user reads it: which engine, what the provider said, what to do. The
/// plugin's own text is escaped ([`printable`]): it ends up on terminals and in logs.
pub fn explain(engine: &str, e: &types::PluginError, attempts: u32) -> String {
    let e = &escaped(e);
    match e {
        types::PluginError::InvalidInput(m) => format!("{engine}: invalid request: {m}"),
        types::PluginError::Unauthorized(m) => format!("{engine}: the provider refused the credentials: {m}; check the API key (`atelier plugins inspect {engine}` shows where it is read from)"),
        types::PluginError::RateLimited(r) => format!("{engine}: rate limited by the provider (gave up after {attempts} attempts): {}; wait, lower -n, or raise your quota", r.message),
        types::PluginError::Moderated(m) => format!("{engine}: blocked by the provider's safety system: {m}; change the prompt or the image"),
        types::PluginError::Unavailable(m) => format!("{engine}: the provider is unavailable (gave up after {attempts} attempts): {m}; try again later"),
        types::PluginError::Provider(p) => format!("{engine}: the provider answered {}: {}", p.code, p.message),
        types::PluginError::Internal(m) => format!("{engine}: plugin error: {m}"),
    }
}

/// A failed poll (`rate-limited` or `unavailable`) as a user reads it: which engine, what the
/// provider said. Unlike [`explain`] it does not say atelier gave up: the job goes on.
fn poll_failure(engine: &str, e: &types::PluginError) -> String {
    match escaped(e) {
        types::PluginError::RateLimited(r) => format!("{engine}: a poll was rate limited by the provider: {}", r.message),
        types::PluginError::Unavailable(m) => format!("{engine}: a poll failed: {m}"),
        other => explain(engine, &other, 1),
    }
}

/// The error with every string the plugin wrote cut to 4 KiB and made printable.
fn escaped(e: &types::PluginError) -> types::PluginError {
    let p = |m: &str| printable(&clipped(m, 4096)).into_owned();
    match e {
        types::PluginError::InvalidInput(m) => types::PluginError::InvalidInput(p(m)),
        types::PluginError::Unauthorized(m) => types::PluginError::Unauthorized(p(m)),
        types::PluginError::RateLimited(r) => types::PluginError::RateLimited(types::RateLimit { retry_after_ms: r.retry_after_ms, message: p(&r.message) }),
        types::PluginError::Moderated(m) => types::PluginError::Moderated(p(m)),
        types::PluginError::Unavailable(m) => types::PluginError::Unavailable(p(m)),
        types::PluginError::Provider(e) => types::PluginError::Provider(types::ProviderError { code: p(&e.code), message: p(&e.message) }),
        types::PluginError::Internal(m) => types::PluginError::Internal(p(m)),
    }
}
