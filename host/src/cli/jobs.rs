//! `atelier jobs list|show|cancel|resume`.

use super::{Cli, StateArgs, progress};
use anyhow::{Result, bail};
use atelier::jobs::runner::JobOutcome;
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
        /// Only jobs in this state (pending, done, failed, cancelled, unknown, submitting).
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
            let db = JobDb::open(&state_dir.dir())?;
            let filter: Vec<JobState> = match state {
                Some(s) => vec![serde_json::from_value(serde_json::Value::String(s.clone()))
                    .map_err(|_| anyhow::anyhow!("unknown state `{s}`; use pending, done, failed, cancelled, unknown or submitting"))?],
                None => vec![],
            };
            let jobs = db.list(&filter)?;
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
            let db = JobDb::open(&state_dir.dir())?;
            let j = get(&db, id)?;
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
    }
}

fn get(db: &JobDb, id: &str) -> Result<JobRecord> {
    db.get(id)?.ok_or_else(|| anyhow::anyhow!("no job `{id}` in this state dir; `atelier jobs list` shows the jobs (is --state-dir / ATELIER_STATE_DIR the same as when it ran?)"))
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
