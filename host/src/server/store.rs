//! `<state dir>/server.sqlite`: the videos made through the server, with their owner and the
//! request, so a restarted server answers for them and finishes the unfinished ones. The provider
//! side of each (token, polls, artifacts) stays in the jobs database.
//!
//! With a shared job store (`[jobs] database = "postgres://…"`) the records live in its database
//! instead, so every front end answers for every video. Each unfinished video has a handler (the
//! front end making it) holding a lease it renews; a video whose handler's lease ran out (the
//! front end was killed) is claimed by exactly one other front end, which finishes it.

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What is needed to run a video request (again, after a restart that came before any submit).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VideoRequest {
    /// The stored first frame.
    pub input: PathBuf,
    /// The prompt.
    pub prompt: String,
    /// Model plugin id.
    pub model: String,
    /// Seed, when given.
    pub seed: Option<u64>,
    /// Model parameters.
    pub params: Vec<(String, String)>,
    /// Where the pipeline writes the video (its extension follows the real media type).
    pub out_file: PathBuf,
}

/// One video as stored.
#[derive(Clone, Debug)]
pub struct VideoRow {
    /// `video_...`.
    pub id: String,
    /// The caller who made it.
    pub owner: String,
    /// Model plugin id.
    pub model: String,
    /// The prompt.
    pub prompt: String,
    /// Requested seconds, as given (OpenAI sends a string).
    pub seconds: Option<String>,
    /// Requested size, WxH.
    pub size: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub completed_at: Option<u64>,
    /// queued | in_progress | completed | failed.
    pub status: String,
    /// 0–100.
    pub progress: u32,
    /// `{code, message}` when failed.
    pub error: Option<serde_json::Value>,
    /// The job in the jobs database, once known.
    pub job: Option<String>,
    /// The finished file.
    pub output: Option<PathBuf>,
    /// Its media type.
    pub mime: Option<String>,
    /// The request.
    pub request: VideoRequest,
}

/// The table: the state dir's SQLite, or the shared PostgreSQL database.
pub struct Store {
    backend: Backend,
}

enum Backend {
    Sqlite(Mutex<Connection>),
    Postgres {
        client: tokio_postgres::Client,
        /// This front end, as the handler of the videos it makes.
        me: String,
        /// How long a handler's claim lasts without renewal.
        lease: std::time::Duration,
    },
}

/// A place in a caller's list: the video's creation time and its tie-breaking sequence number.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    /// Unix seconds.
    pub created_at: i64,
    /// Insertion order, never reused.
    pub seq: i64,
}

/// What [`Store::delete_finished`] did.
#[derive(Debug)]
pub enum Deleted {
    /// Removed; the row as it was (its files are the caller's to remove).
    Gone(VideoRow),
    /// Still queued or in progress: nothing changed.
    Unfinished(VideoRow),
    /// No such video of this owner's.
    Missing,
}

const COLS: &str = "id, owner, model, prompt, seconds, size, created_at, completed_at, status, progress, error, job, output, mime, request";

impl Store {
    /// Open (creating) `<state_dir>/server.sqlite`.
    pub fn open(state_dir: &Path) -> Result<Store> {
        Ok(Store { backend: Backend::Sqlite(Mutex::new(open_sqlite(state_dir)?)) })
    }

    /// The records in the shared PostgreSQL database at `url` (creating its `videos` table), with
    /// this front end as `me`, the handler of the videos it makes, under leases of `lease`.
    pub async fn open_shared(url: &str, me: &str, lease: std::time::Duration) -> Result<Store> {
        let client = crate::jobs::store::postgres::client(url).await?;
        Ok(Store { backend: Backend::Postgres { client, me: me.to_string(), lease } })
    }

    /// Whether the records are shared with other front ends.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// Record a new video, queued (and, shared, handled by this front end).
    pub async fn insert(&self, v: &VideoRow) -> Result<()> {
        let request = serde_json::to_string(&v.request)?;
        match &self.backend {
            Backend::Sqlite(conn) => {
                conn.lock().unwrap().execute(
                    // `seq` is never reused, not even after a delete: a deleted video's id stays a valid
                    // `after` cursor (see `deleted_videos`), so a newer video must sort after it.
                    &format!(
                        "INSERT INTO videos ({COLS}, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, 'queued', 0, NULL, NULL, NULL, NULL, ?8,
                         1 + MAX(COALESCE((SELECT MAX(seq) FROM videos), 0), COALESCE((SELECT MAX(seq) FROM deleted_videos), 0)))"
                    ),
                    params![v.id, v.owner, v.model, v.prompt, v.seconds, v.size, v.created_at as i64, request],
                )?;
            }
            // `seq` comes from a sequence, never reused either.
            Backend::Postgres { client, me, lease } => {
                client
                    .execute(
                        &format!(
                            "INSERT INTO videos ({COLS}, handler, handler_until_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 'queued', 0, NULL, NULL, NULL, NULL, $8,
                             $9, atelier_now_ms() + $10)"
                        ),
                        &[&v.id, &v.owner, &v.model, &v.prompt, &v.seconds, &v.size, &(v.created_at as i64), &request, me, &ms(*lease)],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The job is known and running (progress in percent).
    pub async fn set_running(&self, id: &str, job: &str, progress: u32) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                conn.lock().unwrap().execute(
                    "UPDATE videos SET status = 'in_progress', job = ?2, progress = MAX(progress, ?3) WHERE id = ?1 AND status IN ('queued', 'in_progress')",
                    params![id, job, progress.min(99)],
                )?;
            }
            Backend::Postgres { client, .. } => {
                client
                    .execute(
                        "UPDATE videos SET status = 'in_progress', job = $2, progress = GREATEST(progress, $3) WHERE id = $1 AND status IN ('queued', 'in_progress')",
                        &[&id, &job, &(progress.min(99) as i32)],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The video's job is on record (queued for the workers): any front end finishing the video
    /// finds it by this, never by making another.
    pub async fn set_job(&self, id: &str, job: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                conn.lock().unwrap().execute("UPDATE videos SET job = ?2 WHERE id = ?1 AND job IS NULL", params![id, job])?;
            }
            Backend::Postgres { client, .. } => {
                client.execute("UPDATE videos SET job = $2 WHERE id = $1 AND job IS NULL", &[&id, &job]).await?;
            }
        }
        Ok(())
    }

    /// Its turn came: the pipeline runs (the job is not known yet).
    pub async fn set_started(&self, id: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                conn.lock().unwrap().execute("UPDATE videos SET status = 'in_progress' WHERE id = ?1 AND status = 'queued'", params![id])?;
            }
            Backend::Postgres { client, .. } => {
                client.execute("UPDATE videos SET status = 'in_progress' WHERE id = $1 AND status = 'queued'", &[&id]).await?;
            }
        }
        Ok(())
    }

    /// An estimated percentage for a video whose provider reports none yet (no job on record:
    /// once the runner reports, its figures win). Never goes down.
    pub async fn set_estimate(&self, id: &str, progress: u32) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                conn.lock().unwrap().execute(
                    "UPDATE videos SET progress = MAX(progress, ?2) WHERE id = ?1 AND status = 'in_progress' AND job IS NULL",
                    params![id, progress.min(95)],
                )?;
            }
            Backend::Postgres { client, .. } => {
                client
                    .execute(
                        "UPDATE videos SET progress = GREATEST(progress, $2) WHERE id = $1 AND status = 'in_progress' AND job IS NULL",
                        &[&id, &(progress.min(95) as i32)],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// How long this model's last (up to 10) completed videos took, seconds; None before the first.
    pub async fn typical_seconds(&self, model: &str) -> Result<Option<f64>> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let conn = conn.lock().unwrap();
                let avg: Option<f64> = conn.query_row(
                    "SELECT AVG(completed_at - created_at) FROM (SELECT completed_at, created_at FROM videos WHERE model = ?1 AND status = 'completed' ORDER BY completed_at DESC LIMIT 10)",
                    params![model],
                    |r| r.get(0),
                )?;
                Ok(avg)
            }
            Backend::Postgres { client, .. } => Ok(client
                .query_one(
                    "SELECT AVG(completed_at - created_at)::float8 FROM (SELECT completed_at, created_at FROM videos WHERE model = $1 AND status = 'completed' ORDER BY completed_at DESC LIMIT 10) t",
                    &[&model],
                )
                .await?
                .get(0)),
        }
    }

    /// Finished with this file. Shared, only while this front end handles the video (a front end
    /// whose claim ran out and was taken over records nothing: the one that took it does).
    pub async fn set_completed(&self, id: &str, job: &str, output: &Path, mime: &str, at: u64) -> Result<()> {
        let output = output.display().to_string();
        match &self.backend {
            Backend::Sqlite(conn) => {
                conn.lock().unwrap().execute(
                    "UPDATE videos SET status = 'completed', progress = 100, job = ?2, output = ?3, mime = ?4, completed_at = ?5, error = NULL WHERE id = ?1",
                    params![id, job, output, mime, at as i64],
                )?;
            }
            Backend::Postgres { client, me, .. } => {
                client
                    .execute(
                        "UPDATE videos SET status = 'completed', progress = 100, job = $2, output = $3, mime = $4, completed_at = $5, error = NULL, handler = NULL
                         WHERE id = $1 AND handler = $6 AND status IN ('queued', 'in_progress')",
                        &[&id, &job, &output, &mime, &(at as i64), me],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Failed with `{code, message}`.
    pub async fn set_failed(&self, id: &str, code: &str, message: &str, at: u64) -> Result<()> {
        let err = serde_json::json!({"code": code, "message": message}).to_string();
        match &self.backend {
            Backend::Sqlite(conn) => {
                conn.lock().unwrap().execute(
                    "UPDATE videos SET status = 'failed', error = ?2, completed_at = ?3 WHERE id = ?1",
                    params![id, err, at as i64],
                )?;
            }
            Backend::Postgres { client, .. } => {
                client
                    .execute(
                        "UPDATE videos SET status = 'failed', error = $2, completed_at = $3, handler = NULL WHERE id = $1 AND status IN ('queued', 'in_progress')",
                        &[&id, &err, &(at as i64)],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// One video.
    pub async fn get(&self, id: &str) -> Result<Option<VideoRow>> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let conn = conn.lock().unwrap();
                conn.query_row(&format!("SELECT {COLS} FROM videos WHERE id = ?1"), params![id], row).optional().map_err(Into::into)
            }
            Backend::Postgres { client, .. } => {
                client.query_opt(&format!("SELECT {COLS} FROM videos WHERE id = $1"), &[&id]).await?.map(|r| pg_row(&r)).transpose()
            }
        }
    }

    /// Where a caller's video (or one they deleted) sits in their list, as an `after` cursor;
    /// None if `id` is not theirs, so another caller's ids reveal nothing.
    pub async fn cursor(&self, owner: &str, id: &str) -> Result<Option<Cursor>> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let conn = conn.lock().unwrap();
                conn.query_row(
                    "SELECT created_at, seq FROM videos WHERE id = ?1 AND owner = ?2
                     UNION ALL SELECT created_at, seq FROM deleted_videos WHERE id = ?1 AND owner = ?2",
                    params![id, owner],
                    |r| Ok(Cursor { created_at: r.get(0)?, seq: r.get(1)? }),
                )
                .optional()
                .map_err(Into::into)
            }
            Backend::Postgres { client, .. } => Ok(client
                .query_opt(
                    "SELECT created_at, seq FROM videos WHERE id = $1 AND owner = $2
                     UNION ALL SELECT created_at, seq FROM deleted_videos WHERE id = $1 AND owner = $2 LIMIT 1",
                    &[&id, &owner],
                )
                .await?
                .map(|r| Cursor { created_at: r.get(0), seq: r.get(1) })),
        }
    }

    /// One page of a caller's videos by creation time (`desc`: newest first), strictly past
    /// `after`, at most `limit` of them; the flag says whether more follow.
    pub async fn page(&self, owner: &str, after: Option<Cursor>, desc: bool, limit: u32) -> Result<(Vec<VideoRow>, bool)> {
        let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
        let (t, s) = (after.map(|c| c.created_at), after.map(|c| c.seq));
        let mut rows = match &self.backend {
            Backend::Sqlite(conn) => {
                // Keyset pagination: stable while videos are added or deleted between pages, unlike an offset.
                let past = if after.is_some() { format!("AND (created_at, seq) {cmp} (?2, ?3)") } else { "AND ?2 IS NULL AND ?3 IS NULL".into() };
                let sql = format!("SELECT {COLS} FROM videos WHERE owner = ?1 {past} ORDER BY created_at {dir}, seq {dir} LIMIT ?4");
                let conn = conn.lock().unwrap();
                let mut stmt = conn.prepare(&sql)?;
                stmt.query_map(params![owner, t, s, i64::from(limit) + 1], row)?.collect::<rusqlite::Result<Vec<_>>>()?
            }
            Backend::Postgres { client, .. } => {
                let past = if after.is_some() { format!("AND (created_at, seq) {cmp} ($2, $3)") } else { "AND $2::bigint IS NULL AND $3::bigint IS NULL".into() };
                let sql = format!("SELECT {COLS} FROM videos WHERE owner = $1 {past} ORDER BY created_at {dir}, seq {dir} LIMIT $4");
                client.query(&sql, &[&owner, &t, &s, &(i64::from(limit) + 1)]).await?.iter().map(pg_row).collect::<Result<Vec<_>>>()?
            }
        };
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok((rows, more))
    }

    /// Delete a finished (completed or failed) video of `owner`'s, keeping only its place in the
    /// list (id, owner, time) so a client paging while deleting can still pass it as `after`.
    /// The check and the delete are one transaction, so a video cannot finish in between.
    pub async fn delete_finished(&self, owner: &str, id: &str) -> Result<Deleted> {
        let now = super::now_s() as i64;
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut conn = conn.lock().unwrap();
                let tx = conn.transaction()?;
                let Some(v) = tx.query_row(&format!("SELECT {COLS} FROM videos WHERE id = ?1 AND owner = ?2"), params![id, owner], row).optional()? else {
                    return Ok(Deleted::Missing);
                };
                let n = tx.execute(
                    "INSERT INTO deleted_videos (id, owner, created_at, seq, deleted_at)
                     SELECT id, owner, created_at, seq, ?2 FROM videos WHERE id = ?1 AND status IN ('completed', 'failed')",
                    params![id, now],
                )?;
                if n == 0 {
                    return Ok(Deleted::Unfinished(v));
                }
                tx.execute("DELETE FROM videos WHERE id = ?1", params![id])?;
                tx.commit()?;
                Ok(Deleted::Gone(v))
            }
            Backend::Postgres { client, .. } => {
                // One statement: the row goes only if finished, and its place is kept in the same step.
                let gone = client
                    .query_opt(
                        &format!(
                            "WITH gone AS (DELETE FROM videos WHERE id = $1 AND owner = $2 AND status IN ('completed', 'failed') RETURNING *),
                             kept AS (INSERT INTO deleted_videos (id, owner, created_at, seq, deleted_at) SELECT id, owner, created_at, seq, $3 FROM gone)
                             SELECT {COLS} FROM gone"
                        ),
                        &[&id, &owner, &now],
                    )
                    .await?;
                if let Some(r) = gone {
                    return Ok(Deleted::Gone(pg_row(&r)?));
                }
                match client.query_opt(&format!("SELECT {COLS} FROM videos WHERE id = $1 AND owner = $2"), &[&id, &owner]).await? {
                    Some(r) => Ok(Deleted::Unfinished(pg_row(&r)?)),
                    None => Ok(Deleted::Missing),
                }
            }
        }
    }

    /// Videos this front end is to finish: at start, every unfinished one (SQLite: this front end
    /// made them all). Shared: the unfinished ones whose handler's lease ran out, claimed in one
    /// statement, so exactly one front end takes each.
    pub async fn unfinished(&self) -> Result<Vec<VideoRow>> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let conn = conn.lock().unwrap();
                let mut stmt = conn.prepare(&format!("SELECT {COLS} FROM videos WHERE status IN ('queued', 'in_progress') ORDER BY created_at"))?;
                let rows = stmt.query_map([], row)?.collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            }
            Backend::Postgres { client, me, lease } => {
                let rows = client
                    .query(
                        &format!(
                            "UPDATE videos SET handler = $1, handler_until_ms = atelier_now_ms() + $2
                             WHERE id IN (SELECT id FROM videos WHERE status IN ('queued', 'in_progress')
                                          AND (handler IS NULL OR handler_until_ms < atelier_now_ms()) FOR UPDATE SKIP LOCKED)
                             RETURNING {COLS}"
                        ),
                        &[me, &ms(*lease)],
                    )
                    .await?;
                let mut rows = rows.iter().map(pg_row).collect::<Result<Vec<_>>>()?;
                rows.sort_by_key(|r| r.created_at);
                Ok(rows)
            }
        }
    }

    /// Shared: renew this front end's claim on the videos it is making (a no-op on SQLite).
    pub async fn renew(&self) -> Result<()> {
        if let Backend::Postgres { client, me, lease } = &self.backend {
            client
                .execute(
                    "UPDATE videos SET handler_until_ms = atelier_now_ms() + $2 WHERE handler = $1 AND status IN ('queued', 'in_progress')",
                    &[me, &ms(*lease)],
                )
                .await?;
        }
        Ok(())
    }

    /// How often [`Store::renew`] and the sweep for videos left by a stopped front end run.
    pub fn sweep_every(&self) -> Option<std::time::Duration> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres { lease, .. } => Some(*lease / 3),
        }
    }

    /// How many videos are in each status.
    pub async fn count_by_status(&self) -> Result<HashMap<String, u64>> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let conn = conn.lock().unwrap();
                let mut stmt = conn.prepare("SELECT status, COUNT(*) FROM videos GROUP BY status")?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?.collect::<rusqlite::Result<HashMap<_, _>>>()?;
                Ok(rows)
            }
            Backend::Postgres { client, .. } => Ok(client
                .query("SELECT status, COUNT(*) FROM videos GROUP BY status", &[])
                .await?
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
                .collect()),
        }
    }
}

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

fn open_sqlite(state_dir: &Path) -> Result<Connection> {
    std::fs::create_dir_all(state_dir).with_context(|| format!("{}: cannot create the state dir (--state-dir)", state_dir.display()))?;
    let path = state_dir.join("server.sqlite");
    let conn = Connection::open(&path).with_context(|| format!("{}: cannot open the server database", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS videos (
            id TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT NOT NULL, prompt TEXT NOT NULL,
            seconds TEXT, size TEXT, created_at INTEGER NOT NULL, completed_at INTEGER,
            status TEXT NOT NULL, progress INTEGER NOT NULL DEFAULT 0, error TEXT, job TEXT,
            output TEXT, mime TEXT, request TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS videos_status ON videos(status);
         CREATE TABLE IF NOT EXISTS deleted_videos (
            id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at INTEGER NOT NULL, seq INTEGER NOT NULL,
            deleted_at INTEGER NOT NULL);",
    )?;
    // `seq` orders videos made in the same second (created_at is in whole seconds, as OpenAI's
    // is), so pages never shuffle ties. Added by ALTER, so databases made before it existed get
    // it too: their rowids are in insertion order, which is what `seq` means.
    let has_seq = conn.prepare("SELECT 1 FROM pragma_table_info('videos') WHERE name = 'seq'")?.exists([])?;
    if !has_seq {
        conn.execute_batch("ALTER TABLE videos ADD COLUMN seq INTEGER; UPDATE videos SET seq = rowid WHERE seq IS NULL;")?;
    }
    conn.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS videos_owner_order ON videos(owner, created_at, seq);")?;
    Ok(conn)
}

fn pg_row(r: &tokio_postgres::Row) -> Result<VideoRow> {
    let request: String = r.try_get(14)?;
    Ok(VideoRow {
        id: r.try_get(0)?,
        owner: r.try_get(1)?,
        model: r.try_get(2)?,
        prompt: r.try_get(3)?,
        seconds: r.try_get(4)?,
        size: r.try_get(5)?,
        created_at: r.try_get::<_, i64>(6)? as u64,
        completed_at: r.try_get::<_, Option<i64>>(7)?.map(|t| t as u64),
        status: r.try_get(8)?,
        progress: r.try_get::<_, i32>(9)? as u32,
        error: r.try_get::<_, Option<String>>(10)?.and_then(|s| serde_json::from_str(&s).ok()),
        job: r.try_get(11)?,
        output: r.try_get::<_, Option<String>>(12)?.map(PathBuf::from),
        mime: r.try_get(13)?,
        request: serde_json::from_str(&request).context("a video's stored request")?,
    })
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VideoRow> {
    let request: String = r.get(14)?;
    let request = serde_json::from_str(&request)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(14, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(VideoRow {
        id: r.get(0)?,
        owner: r.get(1)?,
        model: r.get(2)?,
        prompt: r.get(3)?,
        seconds: r.get(4)?,
        size: r.get(5)?,
        created_at: r.get::<_, i64>(6)? as u64,
        completed_at: r.get::<_, Option<i64>>(7)?.map(|t| t as u64),
        status: r.get(8)?,
        progress: r.get::<_, i64>(9)? as u32,
        error: r.get::<_, Option<String>>(10)?.and_then(|s| serde_json::from_str(&s).ok()),
        job: r.get(11)?,
        output: r.get::<_, Option<String>>(12)?.map(PathBuf::from),
        mime: r.get(13)?,
        request,
    })
}
