//! The job store: one trait, two implementations. SQLite in the state dir is the default (one
//! machine, no set-up: [`crate::jobs::JobDb`]); PostgreSQL ([`postgres::PgStore`], `[jobs]
//! database = "postgres://…"` or `ATELIER_DATABASE_URL`) lets several front ends and workers
//! share the jobs.
//!
//! Leases carry atelier's rule across machines: the worker that takes a job holds a lease on it,
//! renewed by its heartbeat. When a lease runs out — the worker stopped — a job that was
//! `submitting` with a submit sent becomes `unknown` and is never sent again (the provider may
//! have it and may bill it); one whose submit never went out goes back to `queued`; a `pending`
//! job is claimed by another worker, which polls on with the stored token.

pub mod postgres;
mod sqlite;

pub use crate::jobs::db::{JobRecord, JobState};
use anyhow::Result;
use std::time::Duration;

/// Plugin id → the most of its jobs in flight at once across every worker (its `max_in_flight`).
pub type InFlightCaps = std::collections::BTreeMap<String, u32>;

/// The setting that points the jobs at PostgreSQL, when `[jobs] database` is not set.
pub const DATABASE_URL_ENV: &str = "ATELIER_DATABASE_URL";

/// The lease a worker takes on a job unless the operator sets `[jobs] lease_s`: long enough to
/// ride out a slow database, short enough that a stopped worker's pending jobs resume soon.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// A job to record.
pub struct NewJob<'a> {
    /// `j-…`.
    pub id: &'a str,
    /// Plugin id.
    pub plugin: &'a str,
    /// Provider model id.
    pub model: &'a str,
    /// How the pipeline finishes the job (see [`JobRecord::plan`]).
    pub plan: &'a serde_json::Value,
    /// The contract the plugin speaks ([`crate::plugin::Plugin::contract`]).
    pub contract: &'a str,
    /// sha256 of the plugin's component ([`crate::plugin::Plugin::component_digest`]).
    pub component_digest: &'a str,
    /// `Some`: the job is `queued` for a worker with this request (`saved` JSON); `None`: the
    /// caller submits it now (`submitting`).
    pub queued_request: Option<&'a [u8]>,
    /// `Some(worker, ttl)`: a `submitting` job is recorded under this worker's lease.
    pub lease: Option<(&'a str, Duration)>,
}

/// A job a worker claimed.
#[derive(Debug)]
pub struct Claimed {
    /// The job as it is now (a queued job is claimed as `submitting`).
    pub job: JobRecord,
    /// Its stored request, for a job claimed from `queued`.
    pub request: Option<Vec<u8>>,
    /// Whether its cancel was asked for.
    pub cancel_requested: bool,
}

/// One lease a renewal kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// The job.
    pub id: String,
    /// Whether its cancel was asked for meanwhile.
    pub cancel_requested: bool,
}

/// What asking for a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAsked {
    /// The job was still queued: it is cancelled (nothing had been sent).
    Cancelled,
    /// The job runs (or waits for a worker): whoever holds it cancels it.
    Asked,
    /// The job already ended (its state).
    Ended(JobState),
    /// No such job.
    Missing,
}

/// A worker as its heartbeats show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerRow {
    /// Its identity.
    pub id: String,
    /// Unix ms.
    pub started_ms: u64,
    /// Unix ms of its last heartbeat (the store's clock).
    pub heartbeat_ms: u64,
    /// Leases it holds that have not run out.
    pub leases: u64,
}

/// The jobs table, wherever it lives. Every call is a short statement: nothing holds a
/// transaction across a provider call.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync {
    /// `sqlite` or `postgres`, for messages and metrics.
    fn kind(&self) -> &'static str;
    /// The implementation, for what only it offers (PostgreSQL's `LISTEN`).
    fn as_any(&self) -> &dyn std::any::Any;
    /// Record a new job.
    async fn create(&self, job: &NewJob<'_>) -> Result<()>;
    /// One job.
    async fn get(&self, id: &str) -> Result<Option<JobRecord>>;
    /// Jobs, newest first; only those in `states` when given.
    async fn list(&self, states: &[JobState]) -> Result<Vec<JobRecord>>;
    /// Jobs by state.
    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>>;
    /// Count a submit call (before it is sent: a job with no submit counted was never sent).
    async fn count_submit(&self, id: &str) -> Result<()>;
    /// Count a poll.
    async fn count_poll(&self, id: &str) -> Result<()>;
    /// Accepted by the provider: pending with the token to poll.
    async fn set_pending(&self, id: &str, token: &str) -> Result<()>;
    /// Back to `submitting`, its error cleared (a job run again).
    async fn set_submitting(&self, id: &str) -> Result<()>;
    /// Done, with its outcome; its lease is let go.
    async fn set_done(&self, id: &str, outcome: &serde_json::Value) -> Result<()>;
    /// Failed, cancelled or unknown, with a message; its lease is let go.
    async fn set_final(&self, id: &str, state: JobState, error: &str) -> Result<()>;
    /// The files the pipeline wrote from the job's artifacts.
    async fn set_outputs(&self, id: &str, outputs: &serde_json::Value) -> Result<()>;
    /// Take one job that needs a worker — queued (it becomes `submitting`), or pending with a
    /// lease that ran out — under a lease of `ttl` for `worker`. Several workers never take the
    /// same job. A queued job of a plugin in `caps` is taken only while fewer than its cap of that
    /// plugin's jobs are in flight (`submitting` or `pending`) in the whole store, whichever worker
    /// drives them: a provider's limit on active tasks holds across workers.
    async fn claim(&self, worker: &str, ttl: Duration, caps: &InFlightCaps) -> Result<Option<Claimed>>;
    /// Renew `worker`'s leases on `jobs` by `ttl`; the ones it still holds come back (a job
    /// missing from the answer was lost: stop driving it).
    async fn renew(&self, worker: &str, jobs: &[String], ttl: Duration) -> Result<Vec<Held>>;
    /// Let go of `worker`'s lease on a job it stops driving, unfinished: another worker may take
    /// it at once.
    async fn release(&self, worker: &str, id: &str) -> Result<()>;
    /// Jobs whose worker's lease ran out while `submitting`: with a submit counted they become
    /// `unknown` (never sent again); with none, `queued` again (or `cancelled` when no request
    /// is stored to send). Returns the ids made `unknown`.
    async fn expire_submitting(&self) -> Result<Vec<String>>;
    /// Ask for a job's cancel: a column the lease holder reads, and (PostgreSQL) a `NOTIFY` on
    /// [`postgres::CANCEL_CHANNEL`] with the job id.
    async fn request_cancel(&self, id: &str) -> Result<CancelAsked>;
    /// A worker's heartbeat.
    async fn heartbeat(&self, worker: &str, started_ms: u64) -> Result<()>;
    /// Workers seen, with the leases each holds.
    async fn workers(&self) -> Result<Vec<WorkerRow>>;
    /// Copy a job as it is (`atelier jobs migrate`): `false` when its id is already there. An
    /// unfinished job comes in with a lease that already ran out, so a worker takes it (pending)
    /// or it is made `unknown` (cut off while submitting).
    async fn import(&self, job: &JobRecord) -> Result<bool>;
}

/// Where the jobs live: `[jobs] database` (or `ATELIER_DATABASE_URL`) when set, else SQLite in
/// `state_dir`.
pub async fn open(database: Option<&str>, state_dir: &std::path::Path) -> Result<std::sync::Arc<dyn JobStore>> {
    let env = std::env::var(DATABASE_URL_ENV).ok().filter(|v| !v.is_empty());
    match database.map(str::to_string).or(env) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(std::sync::Arc::new(postgres::PgStore::connect(&url).await?))
        }
        Some(url) if url.starts_with("sqlite:") || url.is_empty() => Ok(std::sync::Arc::new(crate::jobs::JobDb::open(state_dir)?)),
        Some(url) => anyhow::bail!(
            "[jobs] database = \"{}\" is not a PostgreSQL URL; use postgres://USER@HOST:PORT/DB (or leave it out for SQLite in the state dir)",
            crate::text::printable(&crate::text::clipped(&redact(&url), 200))
        ),
        None => Ok(std::sync::Arc::new(crate::jobs::JobDb::open(state_dir)?)),
    }
}

/// A database URL fit for logs and messages: its password replaced by `***`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The message a job cut off while submitting records when its worker's lease ran out.
pub(crate) const LEASE_LOST_WHILE_SUBMITTING: &str = "the worker submitting this job stopped (its lease ran out), so whether the provider accepted the job is unknown; it is not submitted again automatically (that could bill twice). Check the provider's dashboard, then submit it again if needed";

/// The message of a queued job that was never sent and has no request to send.
pub(crate) const NEVER_SENT: &str = "the worker that took this job stopped before sending it, and its request is not stored; nothing reached the provider, so submit it again";
