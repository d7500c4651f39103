//! The jobs table in `<state dir>/jobs.sqlite`: the default job store (one machine, no set-up).
//! [`crate::jobs::store`] puts the same table behind one trait with a PostgreSQL twin.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting in a shared store for a worker to claim it (its request is stored with it);
    /// nothing was sent.
    Queued,
    /// The submit call is under way (if the process dies now, the outcome is unknown).
    Submitting,
    /// Accepted by the provider; the token is stored and polling goes on.
    Pending,
    /// Finished; artifacts are in the job's folder.
    Done,
    /// Failed with an error.
    Failed,
    /// Cancelled by the user.
    Cancelled,
    /// The process stopped during submit: the provider may or may not have accepted it.
    Unknown,
}

impl JobState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Submitting => "submitting",
            JobState::Pending => "pending",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Unknown => "unknown",
        }
    }
    pub(crate) fn parse(s: &str) -> JobState {
        match s {
            "queued" => JobState::Queued,
            "submitting" => JobState::Submitting,
            "pending" => JobState::Pending,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Unknown,
        }
    }
    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job as stored.
#[derive(Clone, Debug, Serialize)]
pub struct JobRecord {
    /// Id (`j-...`).
    pub id: String,
    /// Plugin id.
    pub plugin: String,
    /// Provider model id at submit time.
    pub model: String,
    /// State.
    pub state: JobState,
    /// The plugin's token while pending.
    pub token: Option<String>,
    /// How the pipeline finishes the job (output folder, post steps, provenance), as JSON.
    pub plan: serde_json::Value,
    /// The error, when failed.
    pub error: Option<String>,
    /// Artifacts written to the job folder, with usage, as JSON.
    pub outcome: Option<serde_json::Value>,
    /// How many times submit was called (retries after rate limits count).
    pub submits: u32,
    /// How many polls.
    pub polls: u32,
    /// Unix ms.
    pub created_ms: u64,
    /// Unix ms.
    pub updated_ms: u64,
    /// Files the pipeline wrote from the artifacts, once it has.
    pub outputs: Option<serde_json::Value>,
    /// The contract version of the plugin that took the job (None: recorded before it was kept).
    pub contract: Option<String>,
    /// sha256 of the component (or native library) that took the job.
    pub component_digest: Option<String>,
}

/// The jobs database.
pub struct JobDb {
    pub(crate) conn: Mutex<Connection>,
    dir: PathBuf,
}

/// The SQLite schema, one step per version (`PRAGMA user_version`), each applied once in a
/// transaction. Version 1 is the table as it was before versions were counted, so a state dir
/// made by an older atelier is upgraded in place.
const SQLITE_MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY, plugin TEXT NOT NULL, model TEXT NOT NULL, state TEXT NOT NULL,
        token TEXT, plan TEXT NOT NULL, error TEXT, outcome TEXT,
        submits INTEGER NOT NULL DEFAULT 0, polls INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, outputs TEXT);
     CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);",
    // Which build took the job (contract, component digest), the request of a queued job, and
    // the lease of the worker holding it.
    "ALTER TABLE jobs ADD COLUMN contract TEXT;
     ALTER TABLE jobs ADD COLUMN component_digest TEXT;
     ALTER TABLE jobs ADD COLUMN request BLOB;
     ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
     ALTER TABLE jobs ADD COLUMN lease_until_ms INTEGER;
     ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, started_ms INTEGER NOT NULL, heartbeat_ms INTEGER NOT NULL);",
];

/// Apply the SQLite migrations `conn` has not seen yet.
fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if version > SQLITE_MIGRATIONS.len() {
        anyhow::bail!(
            "{}: the jobs database is at schema version {version}, newer than this atelier knows ({}); use the atelier that wrote it, or a newer one",
            path.display(),
            SQLITE_MIGRATIONS.len()
        );
    }
    for (i, step) in SQLITE_MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(step).with_context(|| format!("{}: cannot upgrade the jobs database to version {}", path.display(), i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

impl JobDb {
    /// Open (creating) `<state_dir>/jobs.sqlite`.
    pub fn open(state_dir: &Path) -> Result<JobDb> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("{}: cannot create the state dir (set --state-dir or ATELIER_STATE_DIR)", state_dir.display()))?;
        let path = state_dir.join("jobs.sqlite");
        let mut conn = Connection::open(&path).with_context(|| format!("{}: cannot open the jobs database", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&mut conn, &path)?;
        Ok(JobDb { conn: Mutex::new(conn), dir: state_dir.to_path_buf() })
    }

    /// The folder for a job's raw artifacts.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.dir.join("jobs").join(id)
    }

    /// Record a new job in state `submitting` (contract and digest unknown).
    pub fn create(&self, id: &str, plugin: &str, model: &str, plan: &serde_json::Value) -> Result<()> {
        let now = now_ms();
        self.conn.lock().unwrap().execute(
            "INSERT INTO jobs (id, plugin, model, state, plan, created_ms, updated_ms) VALUES (?1, ?2, ?3, 'submitting', ?4, ?5, ?5)",
            params![id, plugin, model, plan.to_string(), now as i64],
        )?;
        Ok(())
    }

    /// The state dir this database lives in.
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// Count a submit call.
    pub fn count_submit(&self, id: &str) -> Result<()> {
        self.exec("UPDATE jobs SET submits = submits + 1, updated_ms = ?2 WHERE id = ?1", id)
    }

    /// Count a poll.
    pub fn count_poll(&self, id: &str) -> Result<()> {
        self.exec("UPDATE jobs SET polls = polls + 1, updated_ms = ?2 WHERE id = ?1", id)
    }

    fn exec(&self, sql: &str, id: &str) -> Result<()> {
        self.conn.lock().unwrap().execute(sql, params![id, now_ms() as i64])?;
        Ok(())
    }

    /// Mark pending with the token to poll.
    pub fn set_pending(&self, id: &str, token: &str) -> Result<()> {
        self.conn.lock().unwrap().execute(
            "UPDATE jobs SET state = 'pending', token = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, token, now_ms() as i64],
        )?;
        Ok(())
    }

    /// Back to `submitting`, its error cleared: a job run again ([`crate::jobs::Runner::rerun`]).
    pub fn set_submitting(&self, id: &str) -> Result<()> {
        self.conn.lock().unwrap().execute(
            "UPDATE jobs SET state = 'submitting', error = NULL, updated_ms = ?2 WHERE id = ?1",
            params![id, now_ms() as i64],
        )?;
        Ok(())
    }

    /// Mark done with its outcome.
    pub fn set_done(&self, id: &str, outcome: &serde_json::Value) -> Result<()> {
        self.conn.lock().unwrap().execute(
            "UPDATE jobs SET state = 'done', outcome = ?2, error = NULL, updated_ms = ?3 WHERE id = ?1",
            params![id, outcome.to_string(), now_ms() as i64],
        )?;
        Ok(())
    }

    /// Mark failed, cancelled or unknown with a message.
    pub fn set_final(&self, id: &str, state: JobState, error: &str) -> Result<()> {
        self.conn.lock().unwrap().execute(
            "UPDATE jobs SET state = ?2, error = ?3, updated_ms = ?4 WHERE id = ?1",
            params![id, state.as_str(), error, now_ms() as i64],
        )?;
        Ok(())
    }

    /// Record the files the pipeline wrote from this job's artifacts.
    pub fn set_outputs(&self, id: &str, outputs: &serde_json::Value) -> Result<()> {
        self.conn.lock().unwrap().execute(
            "UPDATE jobs SET outputs = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, outputs.to_string(), now_ms() as i64],
        )?;
        Ok(())
    }

    /// One job.
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        let conn = self.conn.lock().unwrap();
        conn.query_row(&format!("SELECT {COLS} FROM jobs WHERE id = ?1"), params![id], row).optional().map_err(Into::into)
    }

    /// Jobs, newest first; only those in `states` when given.
    pub fn list(&self, states: &[JobState]) -> Result<Vec<JobRecord>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare(&format!("SELECT {COLS} FROM jobs ORDER BY created_ms DESC, id DESC"))?;
        let rows = stmt.query_map([], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.into_iter().filter(|r| states.is_empty() || states.contains(&r.state)).collect())
    }
}

pub(crate) const COLS: &str = "id, plugin, model, state, token, plan, error, outcome, submits, polls, created_ms, updated_ms, outputs, contract, component_digest";

pub(crate) fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(JobRecord {
        id: r.get(0)?,
        plugin: r.get(1)?,
        model: r.get(2)?,
        state: JobState::parse(&r.get::<_, String>(3)?),
        token: r.get(4)?,
        plan: json(r.get(5)?).unwrap_or(serde_json::Value::Null),
        error: r.get(6)?,
        outcome: json(r.get(7)?),
        submits: r.get(8)?,
        polls: r.get(9)?,
        created_ms: r.get::<_, i64>(10)? as u64,
        updated_ms: r.get::<_, i64>(11)? as u64,
        outputs: json(r.get(12)?),
        contract: r.get(13)?,
        component_digest: r.get(14)?,
    })
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    crate::caps::clock::wall_ms()
}

/// A new job id: time-ordered and unique.
pub fn new_job_id() -> String {
    format!("j-{:x}-{:06x}", now_ms(), rand::random::<u32>() & 0xFFFFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_persist_across_connections() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = JobDb::open(dir.path()).unwrap();
            db.create("j1", "veo-3", "veo-3.1", &serde_json::json!({"out": "x"})).unwrap();
            db.count_submit("j1").unwrap();
            db.set_pending("j1", "operations/abc").unwrap();
        }
        let db = JobDb::open(dir.path()).unwrap();
        let j = db.get("j1").unwrap().unwrap();
        assert_eq!(j.state, JobState::Pending);
        assert_eq!(j.token.as_deref(), Some("operations/abc"));
        assert_eq!(j.submits, 1);
        assert_eq!(db.list(&[JobState::Pending]).unwrap().len(), 1);
        db.set_final("j1", JobState::Failed, "boom").unwrap();
        assert!(db.get("j1").unwrap().unwrap().state.is_final());
    }

    #[test]
    fn a_state_dir_made_before_schema_versions_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The table exactly as atelier created it before migrations were counted.
            let conn = Connection::open(dir.path().join("jobs.sqlite")).unwrap();
            conn.execute_batch(SQLITE_MIGRATIONS[0]).unwrap();
            conn.execute(
                "INSERT INTO jobs (id, plugin, model, state, plan, created_ms, updated_ms, token, submits) VALUES ('old', 'veo-3', 'veo', 'pending', '{}', 1, 1, 'op/1', 1)",
                [],
            )
            .unwrap();
        }
        let db = JobDb::open(dir.path()).unwrap();
        let j = db.get("old").unwrap().unwrap();
        assert_eq!((j.state, j.token.as_deref(), j.contract), (JobState::Pending, Some("op/1"), None));
        let v: i64 = db.conn.lock().unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v as usize, SQLITE_MIGRATIONS.len());
        drop(db);
        // Opening again applies nothing twice.
        JobDb::open(dir.path()).unwrap();
    }
}
