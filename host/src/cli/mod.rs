//! Command-line interface: global options, logging, and one module per command group.

mod doctor;
mod edit;
mod inspect;
mod jobs;
mod oci;
mod progress;
mod prune;
mod run;
mod serve;
mod worker;
mod scaffold;

use anyhow::Result;
use atelier::runtime::{Runtime, RuntimeOptions};
use atelier::settings::Settings;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// atelier: image-to-image and image-to-video work with swappable, sandboxed engines.
#[derive(Parser)]
#[command(name = "atelier", version, about)]
pub struct Cli {
    /// The operator config file (default: the per-user config dir's atelier.toml, if present).
    #[arg(long, global = true, env = "ATELIER_CONFIG")]
    config: Option<PathBuf>,
    /// A plugin directory (or a directory of them), searched before the installed plugins (the
    /// config's `plugin_dirs`, else the per-user directory); repeat for several; the first
    /// directory providing an id wins. Also ATELIER_PLUGINS (separated by ':').
    #[arg(long = "plugins", global = true, env = "ATELIER_PLUGINS", value_delimiter = ':')]
    plugins: Vec<PathBuf>,
    /// Search only the --plugins directories, not the installed plugins too.
    #[arg(long, global = true, env = "ATELIER_NO_DEFAULT_PLUGINS")]
    no_default_plugins: bool,
    /// Where compiled plugins are cached (default: the per-user cache dir).
    #[arg(long, global = true, env = "ATELIER_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Log more (-v info, -vv debug); ATELIER_LOG takes tracing filter syntax.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Installed plugins.
    Plugins {
        #[command(subcommand)]
        command: inspect::PluginsCommand,
    },
    /// Model backends with what they accept.
    Models(inspect::ListArgs),
    /// Filters with their parameters.
    Filters(inspect::ListArgs),
    /// Check the config, secrets, grants and plugins; one line per problem with its fix.
    Doctor(doctor::DoctorArgs),
    /// Edit images with a model: pre-filters → model → post-filters.
    Edit(edit::EditArgs),
    /// Turn an image into a video.
    Animate(edit::AnimateArgs),
    /// Run a filter chain with no model.
    Filter(edit::FilterArgs),
    /// Run a multi-stage recipe on source images.
    Run(run::RunArgs),
    /// Repeat the exact call that made an output, optionally changed.
    Rerun(run::RerunArgs),
    /// Serve an OpenAI-compatible HTTP API (images, videos, models) over the installed plugins.
    Serve(serve::ServeArgs),
    /// Run jobs from the shared job store ([jobs] database), with no HTTP API (docs/deploy.md).
    Worker(worker::WorkerArgs),
    /// Jobs: list, show, cancel, resume, migrate, prune.
    Jobs {
        #[command(subcommand)]
        command: JobsCmd,
    },
}

/// `atelier jobs ...`: the commands of `jobs.rs`, plus `prune`.
#[derive(Subcommand)]
enum JobsCmd {
    #[command(flatten)]
    Other(jobs::JobsCommand),
    /// Delete the folders (raw artifacts) of finished jobs older than --older-than; their rows stay.
    Prune(prune::PruneArgs),
}

/// Where jobs are kept.
#[derive(clap::Args, Clone)]
pub struct StateArgs {
    /// The state dir (jobs database and artifacts); default the per-user state dir.
    #[arg(long, env = "ATELIER_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

impl StateArgs {
    /// The state dir to use.
    pub fn dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(atelier::runtime::default_state_dir)
    }
}

/// Parse, run, and turn errors into one clear message and a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.command.json();
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("error: {}", atelier::text::printable_lines(&message));
            if json {
                // Scripts read stdout: they learn what went wrong and which jobs exist (and may be billed).
                println!("{}", json_error(&message, progress::created_jobs()));
            }
            ExitCode::FAILURE
        }
    }
}

/// The JSON a command run with `--json` prints on a hard error: `{"error": {"message", "kind"},
/// "jobs": [...]}`. `kind` says what the jobs it made call for: `unknown_outcome` (one may be
/// billed: check before running again), `stalled` (one is still pending: `jobs resume`),
/// `cancelled`, `failed`, or `not_started` (no job was made).
fn json_error(message: &str, jobs: Vec<serde_json::Value>) -> serde_json::Value {
    let any = |state: &str| jobs.iter().any(|j| j["state"] == state);
    let kind = if any("unknown") || any("submitting") {
        "unknown_outcome"
    } else if any("pending") {
        "stalled"
    } else if any("cancelled") {
        "cancelled"
    } else if jobs.is_empty() {
        "not_started"
    } else {
        "failed"
    };
    serde_json::json!({"error": {"message": message, "kind": kind}, "jobs": jobs})
}

impl Command {
    /// Whether the command was asked for JSON output.
    fn json(&self) -> bool {
        match self {
            Command::Edit(a) => a.json(),
            Command::Animate(a) => a.json(),
            Command::Filter(a) => a.json,
            Command::Run(a) => a.json,
            Command::Rerun(a) => a.json,
            _ => false,
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Plugins { command } => inspect::plugins(&cli, command).await,
        Command::Models(a) => inspect::models(&cli, a).await,
        Command::Filters(a) => inspect::filters(&cli, a).await,
        Command::Doctor(a) => doctor::run(&cli, a).await,
        Command::Edit(a) => edit::edit(&cli, a).await,
        Command::Animate(a) => edit::animate(&cli, a).await,
        Command::Filter(a) => edit::filter(&cli, a).await,
        Command::Jobs { command: JobsCmd::Other(command) } => jobs::run(&cli, command).await,
        Command::Jobs { command: JobsCmd::Prune(a) } => prune::run(a),
        Command::Run(a) => run::run(&cli, a).await,
        Command::Rerun(a) => run::rerun(&cli, a).await,
        Command::Serve(a) => serve::serve(&cli, a).await,
        Command::Worker(a) => worker::worker(&cli, a).await,
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ATELIER_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: a log piped to a file or another program carries no escapes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi).try_init();
}

impl Cli {
    /// The operator settings: `--config`, else the per-user file if it exists, else defaults.
    pub fn settings(&self) -> Result<Settings> {
        if let Some(p) = &self.config {
            return Settings::load(p);
        }
        let user = directories::ProjectDirs::from("", "", "atelier").map(|d| d.config_dir().join("atelier.toml"));
        match user {
            Some(p) if p.exists() => Settings::load(&p),
            _ => Ok(Settings::default()),
        }
    }

    /// Load the runtime with every plugin found.
    pub fn runtime(&self) -> Result<Runtime> {
        let settings = self.settings()?;
        Runtime::new(
            settings,
            RuntimeOptions { plugin_dirs: self.plugins.clone(), only_given_dirs: self.no_default_plugins, cache_dir: self.cache_dir.clone(), ..Default::default() },
        )
    }
}
