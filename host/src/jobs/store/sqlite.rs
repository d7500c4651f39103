//! [`JobStore`] over the state dir's SQLite database ([`JobDb`]): one process drives its jobs.
//! The lease calls work the same as PostgreSQL's, so `atelier worker` runs on SQLite too (one
//! worker: SQLite is one machine's file). Each call is one short statement on a local file, made
//! in place as the runner always has.

use super::{CancelAsked, Claimed, Held, InFlightCaps, JobStore, NewJob, WorkerRow};
use crate::jobs::db::{COLS, JobDb, JobRecord, JobState, now_ms, row};
use anyhow::Result;
use rusqlite::{OptionalExtension, params};
use std::time::Duration;

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

#[async_trait::async_trait]
impl JobStore for JobDb {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn create(&self, j: &NewJob<'_>) -> Result<()> {
        let now = now_ms() as i64;
        let state = if j.queued_request.is_some() { JobState::Queued } else { JobState::Submitting };
        let (owner, until) = match j.lease {
            Some((w, ttl)) => (Some(w), Some(now + ms(ttl))),
            None => (None, None),
        };
        self.conn.lock().unwrap().execute(
            "INSERT INTO jobs (id, plugin, model, state, plan, created_ms, updated_ms, contract, component_digest, request, lease_owner, lease_until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![j.id, j.plugin, j.model, state.as_str(), j.plan.to_string(), now, j.contract, j.component_digest, j.queued_request, owner, until],
        )?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        JobDb::get(self, id)
    }

    async fn list(&self, states: &[JobState]) -> Result<Vec<JobRecord>> {
        JobDb::list(self, states)
    }

    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
        let rows = stmt.query_map([], |r| Ok((JobState::parse(&r.get::<_, String>(0)?), r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    async fn count_submit(&self, id: &str) -> Result<()> {
        JobDb::count_submit(self, id)
    }

    async fn count_poll(&self, id: &str) -> Result<()> {
        JobDb::count_poll(self, id)
    }

    async fn set_pending(&self, id: &str, token: &str) -> Result<()> {
        JobDb::set_pending(self, id, token)
    }

    async fn set_submitting(&self, id: &str) -> Result<()> {
        JobDb::set_submitting(self, id)
    }

    async fn set_done(&self, id: &str, outcome: &serde_json::Value) -> Result<()> {
        self.conn.lock().unwrap().execute(
            "UPDATE jobs SET state = 'done', outcome = ?2, error = NULL, request = NULL, lease_owner = NULL, lease_until_ms = NULL, updated_ms = ?3 WHERE id = ?1",
            params![id, outcome.to_string(), now_ms() as i64],
        )?;
        Ok(())
    }

    async fn set_final(&self, id: &str, state: JobState, error: &str) -> Result<()> {
        self.conn.lock().unwrap().execute(
            "UPDATE jobs SET state = ?2, error = ?3, request = NULL, lease_owner = NULL, lease_until_ms = NULL, updated_ms = ?4 WHERE id = ?1",
            params![id, state.as_str(), error, now_ms() as i64],
        )?;
        Ok(())
    }

    async fn set_outputs(&self, id: &str, outputs: &serde_json::Value) -> Result<()> {
        JobDb::set_outputs(self, id, outputs)
    }

    async fn claim(&self, worker: &str, ttl: Duration, caps: &InFlightCaps) -> Result<Option<Claimed>> {
        let now = now_ms() as i64;
        let conn = self.conn.lock().unwrap();
        // One statement under SQLite's write lock: nobody else can take the same row, and the
        // in-flight counts it checks cannot change under it.
        let caps = serde_json::to_string(caps)?;
        let claimed = conn
            .query_row(
                &format!(
                    "UPDATE jobs SET lease_owner = ?1, lease_until_ms = ?2 + ?3, updated_ms = ?2,
                        state = CASE WHEN state = 'queued' THEN 'submitting' ELSE state END
                     WHERE id = (SELECT id FROM jobs j
                                 WHERE (state = 'queued' AND NOT EXISTS (
                                          SELECT 1 FROM json_each(?4) c WHERE c.key = j.plugin
                                           AND (SELECT count(*) FROM jobs f WHERE f.plugin = j.plugin AND f.state IN ('submitting', 'pending')) >= c.value))
                                    OR (state = 'pending' AND lease_owner IS NOT NULL AND lease_until_ms < ?2)
                                 ORDER BY created_ms, id LIMIT 1)
                     RETURNING {COLS}, request, cancel_requested"
                ),
                params![worker, now, ms(ttl), caps],
                |r| Ok(Claimed { job: row(r)?, request: r.get(15)?, cancel_requested: r.get::<_, i64>(16)? != 0 }),
            )
            .optional()?;
        Ok(claimed)
    }

    async fn renew(&self, worker: &str, jobs: &[String], ttl: Duration) -> Result<Vec<Held>> {
        let now = now_ms() as i64;
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare_cached(
            "UPDATE jobs SET lease_until_ms = ?3 + ?4 WHERE id = ?1 AND lease_owner = ?2 AND state IN ('submitting', 'pending') RETURNING cancel_requested",
        )?;
        let mut held = vec![];
        for id in jobs {
            if let Some(c) = stmt.query_row(params![id, worker, now, ms(ttl)], |r| r.get::<_, i64>(0)).optional()? {
                held.push(Held { id: id.clone(), cancel_requested: c != 0 });
            }
        }
        Ok(held)
    }

    async fn release(&self, worker: &str, id: &str) -> Result<()> {
        self.conn.lock().unwrap().execute("UPDATE jobs SET lease_until_ms = 0 WHERE id = ?1 AND lease_owner = ?2", params![id, worker])?;
        Ok(())
    }

    async fn expire_submitting(&self) -> Result<Vec<String>> {
        let now = now_ms() as i64;
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare_cached(
            "UPDATE jobs SET
                state = CASE WHEN submits > 0 THEN 'unknown' WHEN request IS NOT NULL THEN 'queued' ELSE 'cancelled' END,
                error = CASE WHEN submits > 0 THEN ?2 WHEN request IS NOT NULL THEN NULL ELSE ?3 END,
                lease_owner = NULL, lease_until_ms = NULL, updated_ms = ?1
             WHERE state = 'submitting' AND lease_owner IS NOT NULL AND lease_until_ms < ?1
             RETURNING id, state",
        )?;
        let rows = stmt.query_map(params![now, super::LEASE_LOST_WHILE_SUBMITTING, super::NEVER_SENT], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut unknown = vec![];
        for r in rows {
            let (id, state) = r?;
            if state == "unknown" {
                unknown.push(id);
            }
        }
        Ok(unknown)
    }

    async fn request_cancel(&self, id: &str) -> Result<CancelAsked> {
        let now = now_ms() as i64;
        let conn = self.conn.lock().unwrap();
        let state: Option<String> = conn.query_row("SELECT state FROM jobs WHERE id = ?1", params![id], |r| r.get(0)).optional()?;
        let Some(state) = state.map(|s| JobState::parse(&s)) else { return Ok(CancelAsked::Missing) };
        match state {
            JobState::Queued => {
                conn.execute(
                    "UPDATE jobs SET state = 'cancelled', error = 'cancelled by the user', request = NULL, cancel_requested = 1, updated_ms = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                Ok(CancelAsked::Cancelled)
            }
            JobState::Submitting | JobState::Pending => {
                conn.execute("UPDATE jobs SET cancel_requested = 1, updated_ms = ?2 WHERE id = ?1", params![id, now])?;
                Ok(CancelAsked::Asked)
            }
            s => Ok(CancelAsked::Ended(s)),
        }
    }

    async fn heartbeat(&self, worker: &str, started_ms: u64) -> Result<()> {
        self.conn.lock().unwrap().execute(
            "INSERT INTO workers (id, started_ms, heartbeat_ms) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
            params![worker, started_ms as i64, now_ms() as i64],
        )?;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerRow>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare(
            "SELECT w.id, w.started_ms, w.heartbeat_ms, (SELECT COUNT(*) FROM jobs j WHERE j.lease_owner = w.id AND j.lease_until_ms > ?1)
             FROM workers w ORDER BY w.id",
        )?;
        let rows = stmt.query_map(params![now_ms() as i64], |r| {
            Ok(WorkerRow { id: r.get(0)?, started_ms: r.get::<_, i64>(1)? as u64, heartbeat_ms: r.get::<_, i64>(2)? as u64, leases: r.get::<_, i64>(3)? as u64 })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    async fn import(&self, j: &JobRecord) -> Result<bool> {
        let (owner, until) = if matches!(j.state, JobState::Pending | JobState::Submitting) { (Some("migrated"), Some(0i64)) } else { (None, None) };
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        let n = self.conn.lock().unwrap().execute(
            "INSERT INTO jobs (id, plugin, model, state, token, plan, error, outcome, submits, polls, created_ms, updated_ms, outputs, contract, component_digest, lease_owner, lease_until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) ON CONFLICT (id) DO NOTHING",
            params![
                j.id, j.plugin, j.model, j.state.as_str(), j.token, j.plan.to_string(), j.error, json(&j.outcome), j.submits, j.polls,
                j.created_ms as i64, j.updated_ms as i64, json(&j.outputs), j.contract, j.component_digest, owner, until
            ],
        )?;
        Ok(n == 1)
    }
}
