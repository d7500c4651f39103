//! Progress display and the job runner set-up shared by commands that run jobs.

use anyhow::Result;
use atelier::jobs::{JobDb, Runner, RunnerEvent};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// The jobs database of this command's runner, once it has one.
static DB: OnceLock<Arc<JobDb>> = OnceLock::new();

/// The jobs this command recorded, in order.
fn created() -> &'static Mutex<Vec<String>> {
    static CREATED: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    CREATED.get_or_init(Mutex::default)
}

/// The jobs this command recorded, each with its state (and its error, if it has one), as on
/// record now: what a script needs after a hard error to know what exists at a provider.
pub fn created_jobs() -> Vec<serde_json::Value> {
    let ids = created().lock().unwrap_or_else(PoisonError::into_inner).clone();
    let Some(db) = DB.get() else { return vec![] };
    ids.iter()
        .map(|id| match db.get(id) {
            Ok(Some(j)) => serde_json::json!({"id": j.id, "plugin": j.plugin, "state": j.state, "submits": j.submits, "polls": j.polls, "error": j.error}),
            _ => serde_json::json!({"id": id, "state": null}),
        })
        .collect()
}

/// A runner on the state dir's database, cancelled by Ctrl-C, reporting to a spinner (hidden for
/// `--json` or when stderr is not a terminal).
pub fn runner(state: &super::StateArgs, quiet: bool, label: &str) -> Result<(Runner, ProgressBar)> {
    let db = Arc::new(JobDb::open(&state.dir())?);
    let _ = DB.set(db.clone());
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ncancelling… (press Ctrl-C again to quit at once)");
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()) };
    bar.set_style(ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed}").expect("valid template"));
    bar.set_prefix(label.to_string());
    bar.set_message("submitting");
    bar.enable_steady_tick(Duration::from_millis(120));
    let b = bar.clone();
    let events: Arc<dyn Fn(RunnerEvent) + Send + Sync> = Arc::new(move |e| match e {
        RunnerEvent::Created { job } => {
            // Remembered for a hard error's JSON report, which lists the jobs this command made.
            created().lock().unwrap_or_else(PoisonError::into_inner).push(job.clone());
            b.set_message(format!("{job}: submitting"))
        }
        RunnerEvent::Pending { job } => b.set_message(format!("{job}: accepted, waiting")),
        RunnerEvent::Progress { job, fraction, state } => {
            // The provider's status word, via the plugin: at most a line's worth, escaped.
            let state = atelier::text::printable(&atelier::text::clipped(&state, 80)).into_owned();
            b.set_message(match fraction {
                Some(f) => format!("{job}: {state} {:.0}%", f * 100.0),
                None => format!("{job}: {state}"),
            })
        }
        // The runner logs each retry (tracing, info) for logs and pipes; this is the terminal's view.
        RunnerEvent::Retrying { job, after, reason } => b.set_message(format!("{job}: {reason}, retrying in {:.1} s", after.as_secs_f64())),
        RunnerEvent::Fetching { job } => b.set_message(format!("{job}: fetching results")),
        RunnerEvent::Partial { job, index, preview, path } => {
            b.set_message(format!("{job}: {} of output {} ready: {}", if preview { "a preview" } else { "the result" }, index + 1, path.display()))
        }
    });
    Ok((Runner::new(db, rx).with_events(events), bar))
}

/// Usage of several jobs on one line.
pub fn usage_line(usage: &[serde_json::Value]) -> String {
    let mut images = 0u64;
    let mut tokens = 0u64;
    let mut seconds = 0f64;
    let mut sizes = std::collections::BTreeSet::new();
    for u in usage {
        for i in u["images"].as_array().into_iter().flatten() {
            images += i["count"].as_u64().unwrap_or(0);
            sizes.insert(format!("{}x{}", i["width"], i["height"]));
        }
        tokens += u["input_tokens"].as_u64().unwrap_or(0) + u["output_tokens"].as_u64().unwrap_or(0);
        seconds += u["video_seconds"].as_f64().unwrap_or(0.0);
    }
    let mut parts = vec![];
    if images > 0 {
        parts.push(format!("{images} image(s) {}", sizes.into_iter().collect::<Vec<_>>().join(", ")));
    }
    if tokens > 0 {
        parts.push(format!("{tokens} tokens"));
    }
    if seconds > 0.0 {
        parts.push(format!("{seconds:.1} s of video"));
    }
    if parts.is_empty() { "none reported".into() } else { parts.join("; ") }
}
