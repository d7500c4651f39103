//! The request of a job that is safe to send again (its plugin reaches no host), kept in the
//! job's folder while it runs, so a job cut off by a killed process can be run again by `jobs
//! resume` or a restarted server with exactly the inputs it had.

use crate::types;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Where a job's request is kept.
fn path(job_dir: &Path) -> PathBuf {
    job_dir.join("request.json")
}

fn media_json(m: &types::Media) -> Value {
    json!({"mime": m.mime, "bytes": B64.encode(&m.bytes)})
}

fn media_from(v: &Value) -> Result<types::Media> {
    let mime = v["mime"].as_str().context("media without a type")?.to_string();
    let bytes = B64.decode(v["bytes"].as_str().context("media without bytes")?).context("media bytes are not base64")?;
    Ok(types::Media { mime, bytes })
}

fn value_json(v: &types::Value) -> Value {
    match v {
        types::Value::Boolean(b) => json!({"boolean": b}),
        types::Value::Integer(i) => json!({"integer": i}),
        types::Value::Number(n) => json!({"number": n}),
        types::Value::Text(t) => json!({"text": t}),
        types::Value::Media(m) => json!({"media": media_json(m)}),
    }
}

fn value_from(v: &Value) -> Result<types::Value> {
    let (kind, x) = v.as_object().and_then(|o| o.iter().next()).context("a parameter without a value")?;
    Ok(match kind.as_str() {
        "boolean" => types::Value::Boolean(x.as_bool().context("not a boolean")?),
        "integer" => types::Value::Integer(x.as_i64().context("not an integer")?),
        "number" => types::Value::Number(x.as_f64().context("not a number")?),
        "text" => types::Value::Text(x.as_str().context("not text")?.to_string()),
        "media" => types::Value::Media(media_from(x)?),
        other => bail!("unknown value kind `{other}`"),
    })
}

/// `req` as the JSON kept for it: in the job's folder, or in a shared job store for a queued job.
pub fn to_bytes(req: &types::Request) -> Result<Vec<u8>> {
    let v = json!({
        "prompt": req.prompt,
        "references": req.references.iter().map(media_json).collect::<Vec<_>>(),
        "mask": req.mask.as_ref().map(media_json),
        "n": req.n,
        "seed": req.seed,
        "output": req.output,
        "aspect": req.aspect,
        "size": req.size,
        "params": req.params.iter().map(|p| json!({"name": p.name, "value": value_json(&p.value)})).collect::<Vec<_>>(),
    });
    Ok(serde_json::to_vec(&v)?)
}

/// Keep `req` in the job's folder (written whole, then renamed into place).
pub(crate) async fn save(job_dir: &Path, req: &types::Request) -> Result<()> {
    let bytes = to_bytes(req)?;
    tokio::fs::create_dir_all(job_dir).await?;
    let tmp = job_dir.join("request.json.part");
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path(job_dir)).await?;
    Ok(())
}

/// The request kept for a job, if there is one.
pub(crate) async fn load(job_dir: &Path) -> Result<Option<types::Request>> {
    let bytes = match tokio::fs::read(path(job_dir)).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read the job's request", path(job_dir).display())),
    };
    from_bytes(&bytes).map(Some).with_context(|| format!("{}: the job's request is unreadable", path(job_dir).display()))
}

/// A request kept by [`to_bytes`].
pub fn from_bytes(bytes: &[u8]) -> Result<types::Request> {
    let v: Value = serde_json::from_slice(bytes)?;
    let read = || -> Result<types::Request> {
        Ok(types::Request {
            prompt: v["prompt"].as_str().context("no prompt")?.to_string(),
            references: v["references"].as_array().context("no references")?.iter().map(media_from).collect::<Result<_>>()?,
            mask: if v["mask"].is_null() { None } else { Some(media_from(&v["mask"])?) },
            n: v["n"].as_u64().and_then(|n| u32::try_from(n).ok()).context("no n")?,
            seed: v["seed"].as_u64(),
            // Absent in requests kept before contract 0.2 (their params carry `output`/`aspect`/`size`).
            output: if v["output"].is_null() { types::OutputKind::Image } else { serde_json::from_value(v["output"].clone()).context("bad output kind")? },
            aspect: v["aspect"].as_str().map(str::to_string),
            size: v["size"].as_str().map(str::to_string),
            params: v["params"]
                .as_array()
                .context("no params")?
                .iter()
                .map(|p| Ok(types::Param { name: p["name"].as_str().context("a parameter without a name")?.to_string(), value: value_from(&p["value"])? }))
                .collect::<Result<_>>()?,
        })
    };
    read()
}

/// Whether a request is kept for the job.
pub(crate) fn exists(job_dir: &Path) -> bool {
    path(job_dir).is_file()
}

/// The job's run lock, held by the process running it (the kernel lets go when that process
/// dies), so a job cut off is told apart from one still running elsewhere. `None`: another
/// process holds it. Opening and a non-blocking lock take no time worth a blocking task.
pub(crate) fn lock(job_dir: &Path) -> Result<Option<std::fs::File>> {
    std::fs::create_dir_all(job_dir).with_context(|| format!("{}: cannot create the job's folder", job_dir.display()))?;
    let p = lock_path(job_dir);
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&p).with_context(|| format!("{}: cannot open", p.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("{}: cannot lock", p.display())),
    }
}

fn lock_path(job_dir: &Path) -> PathBuf {
    job_dir.join("run.lock")
}

/// A job's kept request and its run lock while it is submitting. Dropped — the job left
/// `submitting`, or its run was abandoned (cancelled, aborted) — both are removed, the request
/// first, so nobody runs it again. A killed process runs no destructor: what it kept stays for
/// `jobs resume`.
pub(crate) struct Kept {
    dir: PathBuf,
    lock: Option<std::fs::File>,
}

impl Kept {
    /// Hold `lock` for the job in `job_dir`.
    pub(crate) fn new(job_dir: &Path, lock: std::fs::File) -> Kept {
        Kept { dir: job_dir.to_path_buf(), lock: Some(lock) }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        // Two unlinks of small local files: quick enough for wherever the drop happens.
        let _ = std::fs::remove_file(path(&self.dir));
        let _ = std::fs::remove_file(self.dir.join("request.json.part"));
        let _ = std::fs::remove_file(lock_path(&self.dir));
        drop(self.lock.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_comes_back_as_it_was_saved() {
        let dir = tempfile::tempdir().unwrap();
        let media = types::Media { mime: "image/png".into(), bytes: vec![0, 1, 2, 255] };
        let req = types::Request {
            prompt: "oil \u{1b}painting".into(),
            references: vec![media.clone()],
            mask: Some(media.clone()),
            n: 2,
            seed: Some(u64::MAX),
            output: types::OutputKind::Video,
            aspect: Some("16:9".into()),
            size: None,
            params: vec![
                types::Param { name: "b".into(), value: types::Value::Boolean(true) },
                types::Param { name: "i".into(), value: types::Value::Integer(-3) },
                types::Param { name: "x".into(), value: types::Value::Number(0.25) },
                types::Param { name: "t".into(), value: types::Value::Text("warm".into()) },
                types::Param { name: "m".into(), value: types::Value::Media(media) },
            ],
        };
        assert!(load(dir.path()).await.unwrap().is_none());
        save(dir.path(), &req).await.unwrap();
        assert!(exists(dir.path()));
        let held = lock(dir.path()).unwrap().expect("free");
        assert!(lock(dir.path()).unwrap().is_none(), "held by the first");
        let back = load(dir.path()).await.unwrap().unwrap();
        assert_eq!(format!("{back:?}"), format!("{req:?}"));
        // Let go: the request and the lock file are gone, and the lock is free.
        drop(Kept::new(dir.path(), held));
        assert!(load(dir.path()).await.unwrap().is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(lock(dir.path()).unwrap().is_some(), "free again");
    }
}
