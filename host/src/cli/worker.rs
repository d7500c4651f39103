//! `atelier worker`: run jobs from the shared job store with no HTTP API (docs/deploy.md).

use super::{Cli, StateArgs};
use anyhow::{Context, Result};
use atelier::jobs::worker::{Worker, WorkerOptions};
use atelier::jobs::{JobDb, store};
use clap::Args;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct WorkerArgs {
    /// Serve this worker's Prometheus metrics (identity, leases, heartbeats, claim latency) at
    /// http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Most jobs this worker drives at once.
    #[arg(long, default_value_t = 256)]
    max_jobs: usize,
    /// The job database (default: [jobs] database, else ATELIER_DATABASE_URL, else SQLite in the state dir).
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    #[command(flatten)]
    state: StateArgs,
}

pub async fn worker(cli: &Cli, a: &WorkerArgs) -> Result<ExitCode> {
    let rt = cli.runtime()?;
    for p in rt.problems() {
        tracing::warn!("{}: {}", p.dir.display(), p.message);
    }
    let dir = a.state.dir();
    let database = a.database.clone().or_else(|| rt.settings.jobs.database.clone());
    let store = store::open(database.as_deref(), &dir).await?;
    let mut opts = WorkerOptions::new(rt.settings.jobs.lease_s.map(Duration::from_secs_f64));
    opts.max_jobs = a.max_jobs.max(1);
    if store.kind() == "postgres" {
        opts.heartbeat_database = database.clone().or_else(|| std::env::var(store::DATABASE_URL_ENV).ok());
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Cancelling everything is not what stopping a worker means: its pending jobs go to others.
    let (_all_tx, all_rx) = tokio::sync::watch::channel(false);
    let db = Arc::new(JobDb::open(&dir)?);
    let runner = Arc::new(Worker::runner_for(db, store.clone(), &opts, all_rx));
    let worker = Worker::new(Arc::new(rt), runner, opts);
    if let Some(addr) = &a.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics; pick another address with --metrics ADDR"))?;
        let w = worker.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let w = w.clone();
                async move {
                    let mut out = String::new();
                    w.render_metrics(&mut out);
                    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
                }
            }),
        );
        eprintln!("atelier worker: metrics on http://{}/metrics", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    eprintln!("atelier worker {}: jobs from {} (lease {} s)", worker.id(), store.kind(), worker.lease().as_secs_f64());
    let run = {
        let w = worker.clone();
        tokio::spawn(async move { w.run(stop_rx).await })
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("stopping: pending jobs go to other workers; submits under way are let finish");
    let _ = stop_tx.send(true);
    run.await.context("the worker task")??;
    Ok(ExitCode::SUCCESS)
}
