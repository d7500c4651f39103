//! A worker: claims jobs from the (shared) job store, submits queued ones, polls pending ones to
//! the end and writes their outputs — `atelier worker`, and `atelier serve` unless `--no-worker`.
//!
//! Each job it drives is under a lease on the store's clock, renewed by one heartbeat for all of
//! them every third of the lease. A renewal that misses a job means the lease was lost (this
//! worker stalled past it, and another may have the job): the job's task is stopped at once,
//! writing nothing. Every heartbeat also turns the `submitting` jobs of workers that stopped
//! into `unknown` ([`JobStore::expire_submitting`]). A cancel asked for on any front end reaches
//! the worker holding the job by `NOTIFY` (PostgreSQL) or by the heartbeat's read of the column.

use super::runner::Runner;
use super::store::{Claimed, JobStore, JobState};
use crate::runtime::Runtime;
use anyhow::{Context, Result};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Its identity in the store (leases, heartbeats, metrics): unique per process.
    pub id: String,
    /// The lease on each job it holds.
    pub lease: Duration,
    /// Most jobs driven at once (submitting or pending).
    pub max_jobs: usize,
    /// The pause before claiming again when nothing was due.
    pub idle: Duration,
    /// The PostgreSQL URL the heartbeat connects to on its own (see [`Worker::run`]); `None`:
    /// it uses the worker's store (SQLite, one process).
    pub heartbeat_database: Option<String>,
}

impl WorkerOptions {
    /// `host-pid-random`, the lease from `[jobs] lease_s` (else [`super::store::DEFAULT_LEASE`]).
    pub fn new(lease: Option<Duration>) -> WorkerOptions {
        let host = std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).unwrap_or_else(|| "host".into());
        WorkerOptions {
            id: format!("{host}-{}-{:04x}", std::process::id(), rand::random::<u16>()),
            lease: lease.unwrap_or(super::store::DEFAULT_LEASE),
            max_jobs: 256,
            idle: Duration::from_millis(250),
            heartbeat_database: None,
        }
    }
}

/// What a worker did, for `/metrics`.
#[derive(Default)]
pub struct WorkerStats {
    started_ms: u64,
    claims: AtomicU64,
    heartbeats: AtomicU64,
    heartbeat_failures: AtomicU64,
    last_heartbeat_ms: AtomicU64,
    leases_lost: AtomicU64,
    expired_unknown: AtomicU64,
    finished: AtomicU64,
    /// The last claim latencies, µs (newest last).
    claim_us: Mutex<VecDeque<u64>>,
}

const CLAIM_SAMPLES: usize = 2048;

impl WorkerStats {
    fn claimed_in(&self, d: Duration) {
        let mut q = self.claim_us.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() == CLAIM_SAMPLES {
            q.pop_front();
        }
        q.push_back(d.as_micros() as u64);
    }

    /// The `q` quantile (0–1) of the recent claim latencies, seconds.
    pub fn claim_quantile(&self, q: f64) -> Option<f64> {
        let mut v: Vec<u64> = self.claim_us.lock().unwrap_or_else(PoisonError::into_inner).iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        Some(v[i] as f64 / 1e6)
    }
}

/// One worker.
pub struct Worker {
    rt: Arc<Runtime>,
    runner: Arc<Runner>,
    store: Arc<dyn JobStore>,
    opts: WorkerOptions,
    stats: WorkerStats,
    /// The jobs it drives: each one's task.
    held: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    slot_freed: tokio::sync::Notify,
}

impl Worker {
    /// A worker driving jobs of `store` with `runner` (whose store and lease must be `store`
    /// and `opts`: see [`Worker::runner_for`]).
    pub fn new(rt: Arc<Runtime>, runner: Arc<Runner>, opts: WorkerOptions) -> Arc<Worker> {
        let store = runner.store().clone();
        Arc::new(Worker {
            rt,
            runner,
            store,
            stats: WorkerStats { started_ms: super::db::now_ms(), ..Default::default() },
            opts,
            held: Mutex::default(),
            slot_freed: tokio::sync::Notify::new(),
        })
    }

    /// The runner a worker needs: jobs recorded in `store` under the worker's lease; job folders
    /// in `db`'s state dir.
    pub fn runner_for(db: Arc<super::JobDb>, store: Arc<dyn JobStore>, opts: &WorkerOptions, cancel: tokio::sync::watch::Receiver<bool>) -> Runner {
        Runner::new(db, cancel).with_store(store).with_lease(&opts.id, opts.lease)
    }

    /// Its identity.
    pub fn id(&self) -> &str {
        &self.opts.id
    }

    /// The lease it takes on each job.
    pub fn lease(&self) -> Duration {
        self.opts.lease
    }

    /// Its counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    fn held_ids(&self) -> Vec<String> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }

    /// Claim and drive jobs until `stop` turns true; then let go of the pending jobs it holds
    /// (another worker takes them at once) and wait for submits under way to answer.
    ///
    /// The heartbeat runs on a thread of its own, with its own runtime and database connection:
    /// jobs keeping the runtime's threads busy (plugin calls, decoding) or the job connection's
    /// queue long must not delay the renewals, or a live worker would lose its leases and its
    /// submits would be made `unknown`.
    pub async fn run(self: &Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) -> Result<()> {
        // Front ends on other machines cannot read this state dir: with a remote `[storage]`,
        // results go to the bucket (checked before any job is taken, naming the line to fix).
        if self.store.kind() == "postgres" && self.rt.settings.storage.url.is_some() {
            let bucket = crate::storage::ArtifactStore::open(&self.rt.settings.storage, &self.runner.db.state_dir().join("server"))?;
            bucket.check().await?;
            tracing::info!(target: "atelier::jobs", "job results go to {}", bucket.location());
            self.runner.share_artifacts_through(Arc::new(bucket));
        }
        self.store.heartbeat(&self.opts.id, self.stats.started_ms).await.context("the first heartbeat")?;
        let beating = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let beat = {
            let (me, beating) = (self.clone(), beating.clone());
            std::thread::Builder::new().name("atelier-heartbeat".into()).spawn(move || me.heartbeats(&beating))?
        };
        let listen = match self.store.kind() {
            "postgres" => match self.listen().await {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(target: "atelier::jobs", "cannot LISTEN for cancels ({e:#}); the heartbeat reads them instead");
                    None
                }
            },
            _ => None,
        };
        tracing::info!(target: "atelier::jobs", worker = %self.opts.id, store = self.store.kind(), lease_s = self.opts.lease.as_secs_f64(), "worker started");
        while !*stop.borrow() {
            let busy = self.held.lock().unwrap_or_else(PoisonError::into_inner).len() >= self.opts.max_jobs;
            if busy {
                tokio::select! {
                    _ = self.slot_freed.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let t = Instant::now();
            let caps = self.rt.in_flight_caps();
            let claimed = match self.store.claim(&self.opts.id, self.opts.lease, &caps).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(target: "atelier::jobs", "claiming a job failed: {e:#}");
                    None
                }
            };
            self.stats.claimed_in(t.elapsed());
            match claimed {
                Some(c) => {
                    self.stats.claims.fetch_add(1, Ordering::Relaxed);
                    self.start(c);
                }
                None => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.opts.idle) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
        beating.store(false, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || beat.join()).await;
        if let Some(l) = listen {
            l.abort();
        }
        // Pending jobs are safe to hand over; a submit under way is not abandoned.
        for id in self.held_ids() {
            match self.store.get(&id).await {
                Ok(Some(j)) if j.state == JobState::Pending => {
                    if let Some(h) = self.held.lock().unwrap_or_else(PoisonError::into_inner).remove(&id) {
                        h.abort();
                    }
                    let _ = self.store.release(&self.opts.id, &id).await;
                }
                _ => {}
            }
        }
        while !self.held.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
            let _ = tokio::time::timeout(Duration::from_millis(200), self.slot_freed.notified()).await;
        }
        Ok(())
    }

    fn start(self: &Arc<Self>, c: Claimed) {
        let id = c.job.id.clone();
        // Registered before the task runs, so a heartbeat renews it from the start.
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let me = self.clone();
        let task = tokio::spawn(async move {
            let id = c.job.id.clone();
            if let Err(e) = me.drive(c).await {
                tracing::info!(target: "atelier::jobs", job = %id, "{e:#}");
            }
            me.held.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
            me.stats.finished.fetch_add(1, Ordering::Relaxed);
            me.slot_freed.notify_one();
        });
        held.insert(id, task.abort_handle());
    }

    /// Drive one claimed job to its end, then write its outputs.
    async fn drive(&self, c: Claimed) -> Result<()> {
        let j = &c.job;
        let plugin = match self.rt.model(&j.plugin) {
            Ok(p) => p,
            Err(e) if j.state == JobState::Submitting => {
                let msg = format!("worker {} has no plugin `{}` ({e:#}); nothing was sent. Install it on every worker, then submit again", self.opts.id, j.plugin);
                self.store.set_final(&j.id, JobState::Failed, &msg).await?;
                anyhow::bail!(msg);
            }
            Err(e) => {
                // Another worker may have it; this one lets go.
                self.store.release(&self.opts.id, &j.id).await?;
                return Err(e.context(format!("job {} left for a worker with plugin `{}`", j.id, j.plugin)));
            }
        };
        if c.cancel_requested {
            if let Some(t) = &j.token {
                let _ = plugin.cancel(&j.id, t).await;
            }
            let msg = if j.state == JobState::Submitting { "cancelled by the user before it was sent" } else { "cancelled by the user" };
            self.store.set_final(&j.id, JobState::Cancelled, msg).await?;
            return Ok(());
        }
        let outcome = match j.state {
            JobState::Submitting => {
                let bytes = c.request.as_deref().context("a queued job without its request")?;
                let req = match super::saved::from_bytes(bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        let msg = format!("the stored request is unreadable ({e:#}); nothing was sent");
                        self.store.set_final(&j.id, JobState::Failed, &msg).await?;
                        anyhow::bail!(msg);
                    }
                };
                self.runner.run_claimed(&plugin, &j.id, &req).await?
            }
            JobState::Pending => {
                let token = j.token.clone().context("a pending job without a token")?;
                tracing::info!(target: "atelier::jobs", job = %j.id, worker = %self.opts.id, "polling on a job whose worker's lease ran out");
                loop {
                    match self.runner.wait(&plugin, &j.id, &token, Duration::ZERO, Instant::now()).await {
                        Ok(o) => break o,
                        // Polls kept failing: the job is still pending. Keep the lease and try later.
                        Err(e) if self.store.get(&j.id).await?.is_some_and(|r| r.state == JobState::Pending) => {
                            tracing::warn!(target: "atelier::jobs", job = %j.id, "{e:#}");
                            tokio::time::sleep(self.runner.stall_pause(&plugin)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            s => anyhow::bail!("claimed job {} is {s}", j.id),
        };
        // A front end waiting for the job writes its outputs itself.
        let caller_finishes = j.plan.get(super::runner::FINISHED_BY_CALLER).is_some();
        if j.plan.get("paths").is_some() && !caller_finishes {
            let (files, notes) = crate::pipeline::outputs::resume_outputs(&self.rt, &j.plan, &outcome, false).await?;
            for n in notes {
                tracing::info!(target: "atelier::jobs", job = %j.id, "{n}");
            }
            self.store.set_outputs(&j.id, &serde_json::to_value(&files)?).await?;
        }
        Ok(())
    }

    /// Every third of the lease: the worker's heartbeat, its leases renewed, lost ones stopped,
    /// asked-for cancels passed on, and other workers' cut-off submits made `unknown`.
    fn heartbeats(&self, beating: &std::sync::atomic::AtomicBool) {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(target: "atelier::jobs", "cannot start the heartbeat's runtime: {e}");
                return;
            }
        };
        rt.block_on(async {
            let store: Arc<dyn JobStore> = match &self.opts.heartbeat_database {
                Some(url) => loop {
                    match super::store::postgres::PgStore::connect(url).await {
                        Ok(s) => break Arc::new(s),
                        Err(e) => {
                            tracing::warn!(target: "atelier::jobs", "heartbeat: {e:#}; trying again");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                },
                None => self.store.clone(),
            };
            self.beat_every(&*store, beating).await
        })
    }

    async fn beat_every(&self, store: &dyn JobStore, beating: &std::sync::atomic::AtomicBool) {
        let every = (self.opts.lease / 3).max(Duration::from_millis(50));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while beating.load(Ordering::Relaxed) {
            // Short sleeps, so a stopping worker does not wait a whole period.
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
            }
            match self.beat(store).await {
                Ok(()) => {
                    self.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
                    self.stats.last_heartbeat_ms.store(super::db::now_ms(), Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.heartbeat_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(target: "atelier::jobs", worker = %self.opts.id, "heartbeat failed: {e:#}");
                }
            }
        }
    }

    async fn beat(&self, store: &dyn JobStore) -> Result<()> {
        store.heartbeat(&self.opts.id, self.stats.started_ms).await?;
        let ids = self.held_ids();
        // Jobs the runner submits itself under this lease (not claimed here) are renewed too.
        let own: Vec<String> = self.runner.driving_ids().into_iter().filter(|id| !ids.contains(id)).collect();
        if !own.is_empty() {
            store.renew(&self.opts.id, &own, self.opts.lease).await?;
        }
        let held = store.renew(&self.opts.id, &ids, self.opts.lease).await?;
        let kept: HashMap<&str, bool> = held.iter().map(|h| (h.id.as_str(), h.cancel_requested)).collect();
        for id in &ids {
            match kept.get(id.as_str()) {
                Some(true) => {
                    self.runner.cancel_job(id);
                }
                Some(false) => {}
                // Finished meanwhile (the task removes itself), or lost: stop it if it still runs.
                None => {
                    let lost = self.held.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
                    if let Some(task) = lost {
                        if store.get(id).await?.is_some_and(|j| !j.state.is_final()) {
                            tracing::warn!(target: "atelier::jobs", job = %id, worker = %self.opts.id, "lease lost; stopped driving the job");
                            self.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                            task.abort();
                            self.slot_freed.notify_one();
                        } else {
                            // It ended between the renewal and now: let its task finish its outputs.
                            self.held.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), task);
                        }
                    }
                }
            }
        }
        let unknown = store.expire_submitting().await?;
        for id in &unknown {
            tracing::warn!(target: "atelier::jobs", job = %id, "the worker submitting this job stopped; it is now unknown (never sent again)");
        }
        self.stats.expired_unknown.fetch_add(unknown.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn listen(self: &Arc<Self>) -> Result<tokio::task::JoinHandle<()>> {
        let pg = self.pg().context("not a PostgreSQL store")?;
        let mut rx = pg.listen_cancels().await?;
        let me = self.clone();
        Ok(tokio::spawn(async move {
            while let Some(id) = rx.recv().await {
                let ours = me.held.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&id);
                if ours && me.runner.cancel_job(&id) {
                    tracing::info!(target: "atelier::jobs", job = %id, "cancel heard; cancelling");
                }
            }
        }))
    }

    fn pg(&self) -> Option<&super::store::postgres::PgStore> {
        self.store.as_any().downcast_ref()
    }

    /// The worker's part of `/metrics` (Prometheus text).
    pub fn render_metrics(&self, out: &mut String) {
        let id = self.opts.id.replace('\\', "\\\\").replace('"', "\\\"");
        let s = &self.stats;
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner).len();
        let _ = writeln!(out, "# HELP atelier_worker_info This process's worker: identity, store and lease.\n# TYPE atelier_worker_info gauge");
        let _ = writeln!(out, "atelier_worker_info{{worker=\"{id}\",store=\"{}\",lease_seconds=\"{}\"}} 1", self.store.kind(), self.opts.lease.as_secs_f64());
        let _ = writeln!(out, "# HELP atelier_worker_leases Jobs this worker holds a lease on now.\n# TYPE atelier_worker_leases gauge");
        let _ = writeln!(out, "atelier_worker_leases{{worker=\"{id}\"}} {held}");
        let counters = [
            ("atelier_worker_claims_total", "Jobs this worker claimed.", &s.claims),
            ("atelier_worker_heartbeats_total", "Heartbeats (leases renewed) that reached the store.", &s.heartbeats),
            ("atelier_worker_heartbeat_failures_total", "Heartbeats that failed.", &s.heartbeat_failures),
            ("atelier_worker_leases_lost_total", "Leases lost (the job's task was stopped).", &s.leases_lost),
            ("atelier_worker_expired_unknown_total", "Other workers' cut-off submits this worker made unknown.", &s.expired_unknown),
            ("atelier_worker_jobs_finished_total", "Job tasks that ended.", &s.finished),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{worker=\"{id}\"}} {}", v.load(Ordering::Relaxed));
        }
        let last = s.last_heartbeat_ms.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP atelier_worker_last_heartbeat_seconds Unix time of the last heartbeat that reached the store.\n# TYPE atelier_worker_last_heartbeat_seconds gauge");
        let _ = writeln!(out, "atelier_worker_last_heartbeat_seconds{{worker=\"{id}\"}} {}", last as f64 / 1000.0);
        let _ = writeln!(out, "# HELP atelier_worker_claim_seconds Claim latency over the last {CLAIM_SAMPLES} claims.\n# TYPE atelier_worker_claim_seconds gauge");
        for q in [0.5, 0.95, 0.99] {
            if let Some(v) = s.claim_quantile(q) {
                let _ = writeln!(out, "atelier_worker_claim_seconds{{worker=\"{id}\",quantile=\"{q}\"}} {v}");
            }
        }
    }
}

/// The workers running in this process (`atelier serve` without `--no-worker`), for `/metrics`.
static IN_PROCESS: Mutex<Vec<std::sync::Weak<Worker>>> = Mutex::new(Vec::new());

/// The live workers of this process.
pub fn in_process() -> Vec<Arc<Worker>> {
    let mut v = IN_PROCESS.lock().unwrap_or_else(PoisonError::into_inner);
    v.retain(|w| w.strong_count() > 0);
    v.iter().filter_map(std::sync::Weak::upgrade).collect()
}

/// How `atelier serve` takes part in a shared job store (`[jobs] database` or
/// `ATELIER_DATABASE_URL`): its runner queues jobs for the workers and waits for their end, and,
/// unless `--no-worker`, a worker in the process claims jobs like `atelier worker` does.
pub struct ServeJobs {
    store: Arc<dyn JobStore>,
    opts: WorkerOptions,
    no_worker: bool,
}

impl ServeJobs {
    /// `None` with no shared store configured (jobs run in process on the state dir's SQLite,
    /// as on one machine); `--no-worker` then is an error naming the setting.
    pub async fn open(settings: &crate::settings::JobSettings, no_worker: bool) -> Result<Option<ServeJobs>> {
        let env = std::env::var(super::store::DATABASE_URL_ENV).ok().filter(|v| !v.is_empty());
        let Some(url) = settings.database.clone().or(env) else {
            if no_worker {
                anyhow::bail!(
                    "--no-worker leaves the jobs to `atelier worker` processes, which need a shared job store: set [jobs] database = \"postgres://…\" in {} (or ATELIER_DATABASE_URL), or drop --no-worker",
                    settings.at
                );
            }
            return Ok(None);
        };
        let store = super::store::open(Some(&url), std::path::Path::new(".")).await?;
        let mut opts = WorkerOptions::new(settings.lease_s.map(Duration::from_secs_f64));
        opts.heartbeat_database = Some(url);
        Ok(Some(ServeJobs { store, opts, no_worker }))
    }

    /// The shared store's URL (the server keeps its video records there too).
    pub fn database(&self) -> &str {
        self.opts.heartbeat_database.as_deref().unwrap_or_default()
    }

    /// The lease of `[jobs] lease_s`.
    pub fn lease(&self) -> Duration {
        self.opts.lease
    }

    /// `runner` made a front end of the shared store.
    pub fn runner(&self, runner: Runner) -> Runner {
        runner.with_store(self.store.clone()).with_lease(&self.opts.id, self.opts.lease).queue_for_workers()
    }

    /// Start the in-process worker (unless `--no-worker`) over `runner`; it runs as long as the
    /// process does.
    pub fn start(self, rt: Arc<Runtime>, runner: Arc<Runner>) -> Option<Arc<Worker>> {
        tracing::info!(target: "atelier::jobs", store = self.store.kind(), worker = !self.no_worker, "jobs are queued in the shared store");
        if self.no_worker {
            return None;
        }
        let worker = Worker::new(rt, runner, self.opts);
        IN_PROCESS.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::downgrade(&worker));
        let w = worker.clone();
        tokio::spawn(async move {
            let (_keep, stop) = tokio::sync::watch::channel(false);
            if let Err(e) = w.run(stop).await {
                tracing::error!(target: "atelier::jobs", "the in-process worker stopped: {e:#}");
            }
        });
        Some(worker)
    }
}
