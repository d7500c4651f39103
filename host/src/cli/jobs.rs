//! `atelier jobs list|show|cancel|resume|migrate`.

use super::{Cli, StateArgs, progress};
use anyhow::{Result, bail};
use atelier::jobs::runner::JobOutcome;
use atelier::jobs::store::{self, CancelAsked, JobStore};
use atelier::jobs::{JobDb, JobRecord, JobState};
use atelier::text::{clipped, printable, printable_lines};
use clap::Subcommand;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How much of a pending job's token `jobs show` prints (`--json` has it whole).
const SHOWN_TOKEN_BYTES: usize = 200;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Jobs, newest first.
    List {
        /// Only jobs in this state (queued, submitting, pending, done, failed, cancelled, unknown).
        #[arg(long)]
        state: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state_dir: StateArgs,
    },
    /// One job in full.
    Show {
        /// Job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state_dir: StateArgs,
    },
    /// Cancel a pending job at the provider.
    Cancel {
        /// Job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state_dir: StateArgs,
    },
    /// Copy the jobs of a SQLite state dir into PostgreSQL (jobs already there are left as they are).
    Migrate {
        /// The PostgreSQL database, postgres://USER@HOST:PORT/DB.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state_dir: StateArgs,
    },
    /// Finish jobs a stopped process left behind, by polling — never by submitting again (except
    /// jobs of plugins that reach no host, which are run again: nothing of theirs left this host).
    Resume {
        /// Job id (or --all).
        id: Option<String>,
        /// Every unfinished job.
        #[arg(long)]
        all: bool,
        /// Overwrite outputs that exist.
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state_dir: StateArgs,
    },
}

pub async fn run(cli: &Cli, cmd: &JobsCommand) -> Result<ExitCode> {
    match cmd {
        JobsCommand::List { state, json, state_dir } => {
            let db = open_store(cli, state_dir).await?;
            let filter: Vec<JobState> = match state {
                Some(s) => vec![serde_json::from_value(serde_json::Value::String(s.clone()))
                    .map_err(|_| anyhow::anyhow!("unknown state `{s}`; use queued, submitting, pending, done, failed, cancelled or unknown"))?],
                None => vec![],
            };
            let jobs = db.list(&filter).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                for j in &jobs {
                    println!("{:<26} {:<14} {:<10} submits {} polls {}  {}", j.id, j.plugin, j.state.to_string(), j.submits, j.polls,
                        printable(&clipped(j.error.as_deref().unwrap_or("").lines().next().unwrap_or(""), 300)));
                }
                if jobs.is_empty() {
                    println!("no jobs in {}", state_dir.dir().display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { id, json, state_dir } => {
            let db = open_store(cli, state_dir).await?;
            let j = db.get(id).await?.ok_or_else(|| missing(id))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&j)?);
            } else {
                println!("{}  {}  {} (model {})", j.id, j.state, j.plugin, printable(&j.model));
                println!("  submits {}, polls {}", j.submits, j.polls);
                if let Some(t) = &j.token {
                    // A token is the plugin's text and may be large: its start, escaped, is enough to recognise it.
                    println!("  token: {}", printable(&clipped(t, SHOWN_TOKEN_BYTES)));
                }
                if let Some(e) = &j.error {
                    println!("  error: {}", printable_lines(e));
                }
                for o in j.outputs.as_ref().and_then(|o| o.as_array()).into_iter().flatten() {
                    println!("  output: {}", o["path"].as_str().unwrap_or(""));
                }
                // Outputs a poll reported before the job finished (contract 0.2), as the runner kept them.
                let partials = state_dir.dir().join("jobs").join(id).join("partials");
                let mut kept: Vec<_> = std::fs::read_dir(&partials).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x != "part")).collect();
                kept.sort();
                for p in kept {
                    println!("  partial: {}", p.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { id, json, state_dir } => {
            let shared = open_store(cli, state_dir).await?;
            if shared.kind() != "sqlite" {
                // The worker holding the job cancels it at the provider (it heard the NOTIFY).
                let said = match shared.request_cancel(id).await? {
                    CancelAsked::Cancelled => "cancelled (it was still queued; nothing was sent)",
                    CancelAsked::Asked => "cancel asked; the worker holding it cancels it at the provider",
                    CancelAsked::Ended(s) => bail!("job {id} is already {s}; nothing to cancel"),
                    CancelAsked::Missing => return Err(missing(id)),
                };
                if *json {
                    println!("{}", serde_json::json!({"id": id, "cancel": said}));
                } else {
                    println!("{id}: {said}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let db = JobDb::open(&state_dir.dir())?;
            let j = get(&db, id)?;
            if j.state.is_final() {
                bail!("job {id} is already {}; nothing to cancel", j.state);
            }
            let rt = cli.runtime()?;
            let plugin = rt.model(&j.plugin)?;
            if let Some(token) = &j.token {
                if let Err(e) = plugin.cancel(id, token).await? {
                    eprintln!("warning: the provider did not confirm the cancellation: {}", atelier::jobs::runner::explain(&j.plugin, &e, 1));
                }
            }
            db.set_final(id, JobState::Cancelled, "cancelled by the user")?;
            if *json {
                println!("{}", serde_json::json!({"id": id, "state": "cancelled"}));
            } else {
                println!("{id}: cancelled");
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Resume { id, all, force, json, state_dir } => resume(cli, id.as_deref(), *all, *force, *json, state_dir).await,
        JobsCommand::Migrate { to, json, state_dir } => migrate(to, *json, state_dir).await,
    }
}

/// The jobs the commands read: the shared store when `[jobs] database` (or ATELIER_DATABASE_URL)
/// is set, else the state dir's.
async fn open_store(cli: &Cli, state: &StateArgs) -> Result<std::sync::Arc<dyn JobStore>> {
    let settings = cli.settings()?;
    store::open(settings.jobs.database.as_deref(), &state.dir()).await
}

fn missing(id: &str) -> anyhow::Error {
    anyhow::anyhow!("no job `{id}` in this state dir; `atelier jobs list` shows the jobs (is --state-dir / ATELIER_STATE_DIR the same as when it ran?)")
}

fn get(db: &JobDb, id: &str) -> Result<JobRecord> {
    db.get(id)?.ok_or_else(|| missing(id))
}

/// `jobs migrate --to postgres://…`: every job of the state dir, as it is. Unfinished ones come
/// in with a lease that already ran out: a worker polls on a pending one; one cut off while
/// submitting becomes `unknown` (never sent again). Run it with the SQLite-side processes stopped.
async fn migrate(to: &str, as_json: bool, state: &StateArgs) -> Result<ExitCode> {
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!("--to must be a PostgreSQL URL, postgres://USER@HOST:PORT/DB");
    }
    let dir = state.dir();
    let path = dir.join("jobs.sqlite");
    if !path.is_file() {
        bail!("{}: no jobs database here; point --state-dir (or ATELIER_STATE_DIR) at the state dir to copy", path.display());
    }
    let from = JobDb::open(&dir)?;
    let target = store::postgres::PgStore::connect(to).await?;
    let (mut copied, mut skipped) = (0u64, 0u64);
    for j in from.list(&[])? {
        if target.import(&j).await? {
            copied += 1;
        } else {
            skipped += 1;
        }
    }
    if as_json {
        println!("{}", serde_json::json!({"copied": copied, "already_there": skipped, "to": store::redact(to)}));
    } else {
        println!("{copied} jobs copied to {} ({skipped} already there); job folders stay in {}", store::redact(to), dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn resume(cli: &Cli, id: Option<&str>, all: bool, force: bool, as_json: bool, state: &StateArgs) -> Result<ExitCode> {
    let db = JobDb::open(&state.dir())?;
    let rt = cli.runtime()?;
    let (runner, bar) = progress::runner(state, as_json, "resume")?;
    let jobs: Vec<JobRecord> = match (id, all) {
        (Some(id), false) => vec![get(&db, id)?],
        (None, true) => db
            .list(&[JobState::Pending, JobState::Submitting, JobState::Done, JobState::Unknown])?
            .into_iter()
            .filter(|j| match j.state {
                JobState::Done => j.outputs.is_none(),
                // An unknown job is picked up only when it is safe to run again (it reached no host).
                JobState::Unknown => rt.model(&j.plugin).is_ok_and(|p| runner.can_rerun(&p, j)),
                _ => true,
            })
            .collect(),
        _ => bail!("give a job id or --all"),
    };
    let mut report = vec![];
    let mut failed = 0;
    for j in jobs {
        let r = resume_one(&rt, &runner, &db, &j, force).await;
        match r {
            Ok(files) => report.push(serde_json::json!({"id": j.id, "state": "done", "outputs": files})),
            Err(e) => {
                failed += 1;
                report.push(serde_json::json!({"id": j.id, "state": db.get(&j.id)?.map(|x| x.state), "error": format!("{e:#}")}));
            }
        }
    }
    bar.finish_and_clear();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"jobs": report}))?);
    } else {
        for r in &report {
            match r["error"].as_str() {
                Some(e) => println!("{}: {}", r["id"].as_str().unwrap_or(""), printable_lines(e)),
                None => {
                    for o in r["outputs"].as_array().into_iter().flatten() {
                        println!("{}: {}", r["id"].as_str().unwrap_or(""), o["path"].as_str().unwrap_or(""));
                    }
                }
            }
        }
        if report.is_empty() {
            println!("nothing to resume");
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn resume_one(rt: &atelier::Runtime, runner: &atelier::jobs::Runner, db: &JobDb, j: &JobRecord, force: bool) -> Result<serde_json::Value> {
    let plugin = rt.model(&j.plugin)?;
    let outcome: JobOutcome = match j.state {
        JobState::Pending => {
            let token = j.token.clone().ok_or_else(|| anyhow::anyhow!("job {} is pending but has no token", j.id))?;
            runner.wait(&plugin, &j.id, &token, Duration::ZERO, Instant::now()).await?
        }
        JobState::Done => serde_json::from_value(j.outcome.clone().unwrap_or_default())?,
        // Cut off while submitting, by a plugin that reaches no host: nothing left this
        // machine, so it runs again with the request it had.
        JobState::Submitting | JobState::Unknown if runner.can_rerun(&plugin, j) => runner.rerun(&plugin, &j.id).await?,
        JobState::Submitting if j.submits == 0 => {
            // Recorded, then the process stopped before the submit went out (it was waiting for a
            // `max_in_flight` slot): nothing reached the provider, so nothing is unknown.
            let msg = "the process stopped before this job was sent (it was waiting for a slot), so nothing reached the provider; run the command again to make it (`atelier run --resume` sends such outputs by itself)";
            db.set_final(&j.id, JobState::Cancelled, msg)?;
            bail!(msg);
        }
        JobState::Submitting => {
            let msg = "the process stopped while submitting, so whether the provider accepted the job is unknown; it is not submitted again automatically (that could bill twice). Check the provider's dashboard, then run the command again if needed";
            db.set_final(&j.id, JobState::Unknown, msg)?;
            bail!(msg);
        }
        s => bail!("job {} is {s}; nothing to resume", j.id),
    };
    // A name taken while the job ran: the output goes to the next free one, and the user is told.
    let (files, notes) = atelier::pipeline::outputs::resume_outputs(rt, &j.plan, &outcome, force).await?;
    for n in &notes {
        eprintln!("note: {}: {}", j.id, printable_lines(n));
    }
    let v = serde_json::to_value(&files)?;
    db.set_outputs(&j.id, &v)?;
    Ok(v)
}
