//! `atelier jobs prune [--older-than DURATION]`: free the disk that finished jobs' raw artifacts
//! take in a state dir, keeping every job's row in jobs.sqlite as the record of what was made
//! and billed.

use super::StateArgs;
use anyhow::{Result, bail};
use atelier::jobs::{JobDb, JobState};
use clap::Args;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct PruneArgs {
    /// Only jobs that finished longer ago than this: a number and a unit, s, m, h, d or w (e.g. 12h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    older_than: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    state_dir: StateArgs,
}

/// `30s`, `15m`, `12h`, `7d`, `2w` (a whole or decimal number, then the unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{text}` is not a duration; write a number and a unit, e.g. 12h or 7d"))?;
    let secs = match unit.trim() {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 7.0 * 86_400.0,
        "" => return Err(format!("`{text}` has no unit; write e.g. {num}h or {num}d (s, m, h, d, w)")),
        other => return Err(format!("`{other}` is not a unit of time; use s, m, h, d or w (e.g. 12h, 7d)")),
    };
    Duration::try_from_secs_f64(n * secs).map_err(|_| format!("`{text}` is out of range"))
}

/// Remove the folders of finished jobs older than `--older-than`; print what was freed.
pub fn run(a: &PruneArgs) -> Result<ExitCode> {
    let dir = a.state_dir.dir();
    if !dir.join("jobs.sqlite").exists() {
        bail!("{}: no jobs database here; pass the state dir that holds jobs.sqlite with --state-dir (or ATELIER_STATE_DIR)", dir.display());
    }
    let db = JobDb::open(&dir)?;
    let cutoff = atelier::jobs::db::now_ms().saturating_sub(a.older_than.as_millis() as u64);
    let (mut freed, mut folders, mut kept) = (0u64, 0u64, vec![]);
    for j in db.list(&[])? {
        let folder = db.job_dir(&j.id);
        if !j.state.is_final() || j.updated_ms > cutoff || !folder.exists() {
            continue;
        }
        // Done, but its outputs were never written (a failure after the model): the raw
        // artifacts are the only copy of a result that was paid for.
        if j.state == JobState::Done && j.outputs.is_none() {
            kept.push(j.id.clone());
            continue;
        }
        let bytes = size_of(&folder);
        match std::fs::remove_dir_all(&folder) {
            Ok(()) => {
                freed += bytes;
                folders += 1;
            }
            Err(e) => bail!("{}: cannot remove: {e}; check its permissions, then run `atelier jobs prune` again", folder.display()),
        }
    }
    if a.json {
        println!("{}", serde_json::json!({"freed_bytes": freed, "folders": folders, "kept_without_outputs": kept}));
    } else {
        println!(
            "freed {} in {folders} job folder(s) of jobs finished more than {} ago; their rows stay in {}",
            mib(freed),
            shown(a.older_than),
            dir.join("jobs.sqlite").display()
        );
        for id in &kept {
            println!("kept {id}: it is done but its outputs were never written; `atelier jobs resume {id}` writes them");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn size_of(p: &Path) -> u64 {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::read_dir(p).into_iter().flatten().flatten().map(|e| size_of(&e.path())).sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn shown(d: Duration) -> String {
    let s = d.as_secs_f64();
    for (unit, len) in [("d", 86_400.0), ("h", 3600.0), ("m", 60.0)] {
        if s >= len {
            return format!("{}{unit}", (s / len * 10.0).round() / 10.0);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert!(parse_duration("7").unwrap_err().contains("no unit"));
        assert!(parse_duration("7y").unwrap_err().contains("not a unit"));
        assert!(parse_duration("h").unwrap_err().contains("not a duration"));
    }
}
