//! `atelier serve`: the OpenAI-compatible HTTP server (see docs/server.md).

use super::{Cli, StateArgs};
use anyhow::{Context, Result};
use atelier::server::{self, ServeOptions};
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (default: [server] listen in atelier.toml, else 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Serve without bearer tokens, on a loopback address only (every caller is `anonymous`).
    #[arg(long)]
    insecure_no_auth: bool,
    /// Leave the jobs to `atelier worker` processes: queue them in the shared job store ([jobs]
    /// database) and answer from it, with no worker in this process.
    #[arg(long)]
    no_worker: bool,
    #[command(flatten)]
    state: StateArgs,
}

pub async fn serve(cli: &Cli, a: &ServeArgs) -> Result<ExitCode> {
    let rt = cli.runtime()?;
    for p in rt.problems() {
        tracing::warn!("{}: {}", p.dir.display(), p.message);
    }
    let listen = a.listen.clone().or_else(|| rt.settings.server.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; is another server using the port? Pick another with --listen ADDR or [server] listen"))?;
    let running = server::start_scaled(rt, listener, ServeOptions { state_dir: a.state.dir(), insecure_no_auth: a.insecure_no_auth }, a.no_worker).await?;
    // Where artifacts go, in the line every operator sees (the store's own log line is info).
    eprintln!("atelier serve: OpenAI-compatible API on http://{}/v1 (state dir {}; artifacts in {})", running.addr, a.state.dir().display(), running.app.artifacts.location());
    tokio::select! {
        r = running.wait() => r?,
        _ = tokio::signal::ctrl_c() => {
            // Unfinished videos stay pending in the state dir; the next `atelier serve` resumes them.
            eprintln!("stopping; unfinished videos resume at the next start");
        }
    }
    Ok(ExitCode::SUCCESS)
}
