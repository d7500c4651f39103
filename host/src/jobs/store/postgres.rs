//! [`JobStore`] on PostgreSQL (`[jobs] database = "postgres://…"`): the jobs of several front
//! ends and workers in one table. Workers claim with `FOR UPDATE SKIP LOCKED` in one statement,
//! hold leases on the store's clock (`atelier_now_ms()`, so workers' clocks do not matter) and
//! hear cancels by `LISTEN`. Every call is one short statement over one pipelined connection.

use super::{CancelAsked, Claimed, Held, InFlightCaps, JobStore, NewJob, WorkerRow};
use crate::jobs::db::{JobRecord, JobState};
use anyhow::{Context, Result, bail};
use std::time::Duration;
use tokio_postgres::{AsyncMessage, Client, NoTls, Row};

/// The `NOTIFY` channel a cancel is announced on; its payload is the job id.
pub const CANCEL_CHANNEL: &str = "atelier_cancel";

/// The PostgreSQL schema, one step per version, each applied once in a transaction under an
/// advisory lock (processes starting together do not race) and recorded in `schema_version`.
const MIGRATIONS: &[&str] = &[
    "CREATE FUNCTION atelier_now_ms() RETURNS bigint LANGUAGE sql VOLATILE
         AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;
     CREATE TABLE jobs (
        id TEXT PRIMARY KEY, plugin TEXT NOT NULL, model TEXT NOT NULL, state TEXT NOT NULL,
        token TEXT, plan TEXT NOT NULL, error TEXT, outcome TEXT,
        submits INTEGER NOT NULL DEFAULT 0, polls INTEGER NOT NULL DEFAULT 0,
        created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL, outputs TEXT,
        contract TEXT, component_digest TEXT, request BYTEA,
        lease_owner TEXT, lease_until_ms BIGINT, cancel_requested BOOLEAN NOT NULL DEFAULT false);
     CREATE INDEX jobs_state ON jobs (state);
     CREATE INDEX jobs_claimable ON jobs (created_ms, id) WHERE state IN ('queued', 'pending', 'submitting');
     CREATE INDEX jobs_lease_owner ON jobs (lease_owner) WHERE lease_owner IS NOT NULL;
     CREATE TABLE workers (id TEXT PRIMARY KEY, started_ms BIGINT NOT NULL, heartbeat_ms BIGINT NOT NULL);",
    // 2: the server's video records (`crate::server::store`), shared by every front end: any of
    // them answers for any video, and one whose handler's claim ran out is finished by another.
    // `IF NOT EXISTS`: builds before this step made the same tables outside the numbered schema.
    "CREATE SEQUENCE IF NOT EXISTS videos_seq;
     CREATE TABLE IF NOT EXISTS videos (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT NOT NULL, prompt TEXT NOT NULL,
        seconds TEXT, size TEXT, created_at BIGINT NOT NULL, completed_at BIGINT,
        status TEXT NOT NULL, progress INTEGER NOT NULL DEFAULT 0, error TEXT, job TEXT,
        output TEXT, mime TEXT, request TEXT NOT NULL, seq BIGINT NOT NULL DEFAULT nextval('videos_seq'),
        handler TEXT, handler_until_ms BIGINT);
     CREATE INDEX IF NOT EXISTS videos_status ON videos (status);
     CREATE UNIQUE INDEX IF NOT EXISTS videos_owner_order ON videos (owner, created_at, seq);
     CREATE TABLE IF NOT EXISTS deleted_videos (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at BIGINT NOT NULL, seq BIGINT NOT NULL,
        deleted_at BIGINT NOT NULL);",
    // 3: counting a plugin's jobs in flight (its `max_in_flight` across workers) on every claim.
    "CREATE INDEX jobs_in_flight ON jobs (plugin) WHERE state IN ('submitting', 'pending');",
];

const COLS: &str = "id, plugin, model, state, token, plan, error, outcome, submits, polls, created_ms, updated_ms, outputs, contract, component_digest";

/// The jobs table in PostgreSQL.
pub struct PgStore {
    client: Client,
    url: String,
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Connect to `url`, with the connection driven by a task that forwards notifications to `notes`.
async fn connect(url: &str, notes: Option<tokio::sync::mpsc::UnboundedSender<String>>) -> Result<Client> {
    let shown = super::redact(url);
    let (client, mut conn) = tokio_postgres::connect(url, NoTls).await.with_context(|| {
        format!("cannot connect to the jobs database {shown} ([jobs] database or {}); is PostgreSQL running there?", super::DATABASE_URL_ENV)
    })?;
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Some(tx) = &notes {
                        let _ = tx.send(n.payload().to_string());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::error!(target: "atelier::jobs", "the jobs database connection {shown} failed: {e}");
                    break;
                }
                None => break,
            }
        }
    });
    Ok(client)
}

impl PgStore {
    /// Connect and bring the schema up to date.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let mut client = connect(url, None).await?;
        migrate(&mut client).await.with_context(|| format!("the jobs database {}: cannot apply the schema", super::redact(url)))?;
        Ok(PgStore { client, url: url.to_string() })
    }

    /// The job ids of cancels announced from now on (`LISTEN`, on a connection of its own).
    pub async fn listen_cancels(&self) -> Result<tokio::sync::mpsc::UnboundedReceiver<String>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = connect(&self.url, Some(tx)).await?;
        client.batch_execute(&format!("LISTEN {CANCEL_CHANNEL}")).await?;
        // The connection lives while its client does: keep it with the task driving it.
        tokio::spawn(async move {
            let _client = client;
            std::future::pending::<()>().await
        });
        Ok(rx)
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(self.client.query_one("SELECT COALESCE(MAX(version), 0)::bigint FROM schema_version", &[]).await?.get(0))
    }
}

/// A connection of its own to `url` with the schema up to date (the server's video records).
pub(crate) async fn client(url: &str) -> Result<Client> {
    let mut client = connect(url, None).await?;
    migrate(&mut client).await.with_context(|| format!("the jobs database {}: cannot apply the schema", super::redact(url)))?;
    Ok(client)
}

async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    // One process migrates at a time; the others wait here, then find nothing left to do.
    tx.batch_execute("SELECT pg_advisory_xact_lock(7406143532); CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)")
        .await?;
    let version: i64 = tx.query_one("SELECT COALESCE(MAX(version), 0)::bigint FROM schema_version", &[]).await?.get(0);
    if version as usize > MIGRATIONS.len() {
        bail!("the database is at schema version {version}, newer than this atelier knows ({}); upgrade atelier", MIGRATIONS.len());
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(step).await.with_context(|| format!("migration {}", i + 1))?;
        tx.execute("INSERT INTO schema_version (version, applied_ms) VALUES ($1, atelier_now_ms())", &[&((i + 1) as i32)]).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn record(r: &Row) -> Result<JobRecord> {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(JobRecord {
        id: r.try_get("id")?,
        plugin: r.try_get("plugin")?,
        model: r.try_get("model")?,
        state: JobState::parse(r.try_get("state")?),
        token: r.try_get("token")?,
        plan: json(r.try_get("plan")?).unwrap_or(serde_json::Value::Null),
        error: r.try_get("error")?,
        outcome: json(r.try_get("outcome")?),
        submits: r.try_get::<_, i32>("submits")? as u32,
        polls: r.try_get::<_, i32>("polls")? as u32,
        created_ms: r.try_get::<_, i64>("created_ms")? as u64,
        updated_ms: r.try_get::<_, i64>("updated_ms")? as u64,
        outputs: json(r.try_get("outputs")?),
        contract: r.try_get("contract")?,
        component_digest: r.try_get("component_digest")?,
    })
}

fn states(s: &[JobState]) -> Vec<String> {
    s.iter().map(|s| s.as_str().to_string()).collect()
}

#[async_trait::async_trait]
impl JobStore for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn create(&self, j: &NewJob<'_>) -> Result<()> {
        let state = if j.queued_request.is_some() { JobState::Queued } else { JobState::Submitting };
        let (owner, ttl) = match j.lease {
            Some((w, ttl)) => (Some(w), Some(ms(ttl))),
            None => (None, None),
        };
        self.client
            .execute(
                "INSERT INTO jobs (id, plugin, model, state, plan, created_ms, updated_ms, contract, component_digest, request, lease_owner, lease_until_ms)
                 VALUES ($1, $2, $3, $4, $5, atelier_now_ms(), atelier_now_ms(), $6, $7, $8, $9, atelier_now_ms() + $10)",
                &[&j.id, &j.plugin, &j.model, &state.as_str(), &j.plan.to_string(), &j.contract, &j.component_digest, &j.queued_request, &owner, &ttl],
            )
            .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        self.client.query_opt(&format!("SELECT {COLS} FROM jobs WHERE id = $1"), &[&id]).await?.as_ref().map(record).transpose()
    }

    async fn list(&self, s: &[JobState]) -> Result<Vec<JobRecord>> {
        let rows = self
            .client
            .query(&format!("SELECT {COLS} FROM jobs WHERE cardinality($1::text[]) = 0 OR state = ANY($1) ORDER BY created_ms DESC, id DESC"), &[&states(s)])
            .await?;
        rows.iter().map(record).collect()
    }

    async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>> {
        let rows = self.client.query("SELECT state, COUNT(*) FROM jobs GROUP BY state", &[]).await?;
        Ok(rows.iter().map(|r| (JobState::parse(r.get(0)), r.get::<_, i64>(1) as u64)).collect())
    }

    async fn count_submit(&self, id: &str) -> Result<()> {
        self.client.execute("UPDATE jobs SET submits = submits + 1, updated_ms = atelier_now_ms() WHERE id = $1", &[&id]).await?;
        Ok(())
    }

    async fn count_poll(&self, id: &str) -> Result<()> {
        self.client.execute("UPDATE jobs SET polls = polls + 1, updated_ms = atelier_now_ms() WHERE id = $1", &[&id]).await?;
        Ok(())
    }

    async fn set_pending(&self, id: &str, token: &str) -> Result<()> {
        // The stored request is no longer needed once the provider holds the job.
        self.client
            .execute("UPDATE jobs SET state = 'pending', token = $2, request = NULL, updated_ms = atelier_now_ms() WHERE id = $1", &[&id, &token])
            .await?;
        Ok(())
    }

    async fn set_submitting(&self, id: &str) -> Result<()> {
        self.client.execute("UPDATE jobs SET state = 'submitting', error = NULL, updated_ms = atelier_now_ms() WHERE id = $1", &[&id]).await?;
        Ok(())
    }

    async fn set_done(&self, id: &str, outcome: &serde_json::Value) -> Result<()> {
        self.client
            .execute(
                "UPDATE jobs SET state = 'done', outcome = $2, error = NULL, request = NULL, lease_owner = NULL, lease_until_ms = NULL, updated_ms = atelier_now_ms() WHERE id = $1",
                &[&id, &outcome.to_string()],
            )
            .await?;
        Ok(())
    }

    async fn set_final(&self, id: &str, state: JobState, error: &str) -> Result<()> {
        self.client
            .execute(
                "UPDATE jobs SET state = $2, error = $3, request = NULL, lease_owner = NULL, lease_until_ms = NULL, updated_ms = atelier_now_ms() WHERE id = $1",
                &[&id, &state.as_str(), &error],
            )
            .await?;
        Ok(())
    }

    async fn set_outputs(&self, id: &str, outputs: &serde_json::Value) -> Result<()> {
        self.client.execute("UPDATE jobs SET outputs = $2, updated_ms = atelier_now_ms() WHERE id = $1", &[&id, &outputs.to_string()]).await?;
        Ok(())
    }

    async fn claim(&self, worker: &str, ttl: Duration, caps: &InFlightCaps) -> Result<Option<Claimed>> {
        let (plugins, limits): (Vec<&str>, Vec<i64>) = caps.iter().map(|(p, n)| (p.as_str(), i64::from(*n))).unzip();
        let row = self
            .client
            .query_opt(
                &format!(
                    "UPDATE jobs SET lease_owner = $1, lease_until_ms = atelier_now_ms() + $2, updated_ms = atelier_now_ms(),
                        state = CASE WHEN state = 'queued' THEN 'submitting' ELSE state END
                     WHERE id = (SELECT id FROM jobs j
                                 WHERE (state = 'queued' AND NOT EXISTS (
                                          SELECT 1 FROM unnest($3::text[], $4::bigint[]) AS c(plugin, cap)
                                          WHERE c.plugin = j.plugin
                                            AND (SELECT count(*) FROM jobs f WHERE f.plugin = j.plugin AND f.state IN ('submitting', 'pending')) >= c.cap))
                                    OR (state = 'pending' AND lease_owner IS NOT NULL AND lease_until_ms < atelier_now_ms())
                                 ORDER BY created_ms, id
                                 FOR UPDATE SKIP LOCKED LIMIT 1)
                     RETURNING {COLS}, request, cancel_requested"
                ),
                &[&worker, &ms(ttl), &plugins, &limits],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        let claimed = Claimed { job: record(&r)?, request: r.try_get("request")?, cancel_requested: r.try_get("cancel_requested")? };
        // Workers claiming at once each counted before the others' claims were committed; now that
        // this one is, count again: over the cap, the job goes back to the queue untouched (nothing
        // was sent) and this worker claims nothing this time. Of racing claims, at least every one
        // beyond the cap sees the cap exceeded, so no more than the cap proceed.
        if let (JobState::Submitting, Some(cap)) = (claimed.job.state, caps.get(&claimed.job.plugin)) {
            let n: i64 = self
                .client
                .query_one("SELECT count(*) FROM jobs WHERE plugin = $1 AND state IN ('submitting', 'pending')", &[&claimed.job.plugin])
                .await?
                .get(0);
            if n > i64::from(*cap) {
                self.client
                    .execute(
                        "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until_ms = NULL
                         WHERE id = $1 AND lease_owner = $2 AND state = 'submitting' AND submits = 0",
                        &[&claimed.job.id, &worker],
                    )
                    .await?;
                return Ok(None);
            }
        }
        Ok(Some(claimed))
    }

    async fn renew(&self, worker: &str, jobs: &[String], ttl: Duration) -> Result<Vec<Held>> {
        if jobs.is_empty() {
            return Ok(vec![]);
        }
        let rows = self
            .client
            .query(
                "UPDATE jobs SET lease_until_ms = atelier_now_ms() + $3
                 WHERE id = ANY($1) AND lease_owner = $2 AND state IN ('submitting', 'pending')
                 RETURNING id, cancel_requested",
                &[&jobs, &worker, &ms(ttl)],
            )
            .await?;
        Ok(rows.iter().map(|r| Held { id: r.get(0), cancel_requested: r.get(1) }).collect())
    }

    async fn release(&self, worker: &str, id: &str) -> Result<()> {
        self.client.execute("UPDATE jobs SET lease_until_ms = 0 WHERE id = $1 AND lease_owner = $2", &[&id, &worker]).await?;
        Ok(())
    }

    async fn expire_submitting(&self) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "UPDATE jobs SET
                    state = CASE WHEN submits > 0 THEN 'unknown' WHEN request IS NOT NULL THEN 'queued' ELSE 'cancelled' END,
                    error = CASE WHEN submits > 0 THEN $1 WHEN request IS NOT NULL THEN NULL ELSE $2 END,
                    lease_owner = NULL, lease_until_ms = NULL, updated_ms = atelier_now_ms()
                 WHERE id IN (SELECT id FROM jobs WHERE state = 'submitting' AND lease_owner IS NOT NULL AND lease_until_ms < atelier_now_ms()
                              FOR UPDATE SKIP LOCKED)
                 RETURNING id, state",
                &[&super::LEASE_LOST_WHILE_SUBMITTING, &super::NEVER_SENT],
            )
            .await?;
        Ok(rows.iter().filter(|r| r.get::<_, &str>(1) == "unknown").map(|r| r.get(0)).collect())
    }

    async fn request_cancel(&self, id: &str) -> Result<CancelAsked> {
        let queued = self
            .client
            .execute(
                "UPDATE jobs SET state = 'cancelled', error = 'cancelled by the user', request = NULL, cancel_requested = true, updated_ms = atelier_now_ms()
                 WHERE id = $1 AND state = 'queued'",
                &[&id],
            )
            .await?;
        if queued == 1 {
            return Ok(CancelAsked::Cancelled);
        }
        let asked = self
            .client
            .query_opt(
                "WITH asked AS (UPDATE jobs SET cancel_requested = true, updated_ms = atelier_now_ms()
                                WHERE id = $1 AND state IN ('submitting', 'pending') RETURNING id)
                 SELECT pg_notify($2, id) FROM asked",
                &[&id, &CANCEL_CHANNEL],
            )
            .await?;
        if asked.is_some() {
            return Ok(CancelAsked::Asked);
        }
        Ok(match self.get(id).await? {
            Some(j) => CancelAsked::Ended(j.state),
            None => CancelAsked::Missing,
        })
    }

    async fn heartbeat(&self, worker: &str, started_ms: u64) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO workers (id, started_ms, heartbeat_ms) VALUES ($1, $2, atelier_now_ms())
                 ON CONFLICT (id) DO UPDATE SET heartbeat_ms = EXCLUDED.heartbeat_ms",
                &[&worker, &(started_ms as i64)],
            )
            .await?;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerRow>> {
        let rows = self
            .client
            .query(
                "SELECT w.id, w.started_ms, w.heartbeat_ms,
                        (SELECT COUNT(*) FROM jobs j WHERE j.lease_owner = w.id AND j.lease_until_ms > atelier_now_ms())
                 FROM workers w ORDER BY w.id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| WorkerRow { id: r.get(0), started_ms: r.get::<_, i64>(1) as u64, heartbeat_ms: r.get::<_, i64>(2) as u64, leases: r.get::<_, i64>(3) as u64 })
            .collect())
    }

    async fn import(&self, j: &JobRecord) -> Result<bool> {
        let (owner, until) = if matches!(j.state, JobState::Pending | JobState::Submitting) { (Some("migrated"), Some(0i64)) } else { (None, None) };
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        let n = self
            .client
            .execute(
                "INSERT INTO jobs (id, plugin, model, state, token, plan, error, outcome, submits, polls, created_ms, updated_ms, outputs, contract, component_digest, lease_owner, lease_until_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (id) DO NOTHING",
                &[
                    &j.id, &j.plugin, &j.model, &j.state.as_str(), &j.token, &j.plan.to_string(), &j.error, &json(&j.outcome),
                    &(j.submits as i32), &(j.polls as i32), &(j.created_ms as i64), &(j.updated_ms as i64), &json(&j.outputs),
                    &j.contract, &j.component_digest, &owner, &until,
                ],
            )
            .await?;
        Ok(n == 1)
    }
}
