//! `atelier serve`: an OpenAI-compatible HTTP server over the same pipeline as the CLI.
//!
//! Routes: `POST /v1/images/edits`, `POST /v1/images/generations`, `POST /v1/videos`,
//! `GET /v1/videos[/{id}[/content]]`, `DELETE /v1/videos/{id}`, `GET /v1/models[/{id}]` (bearer tokens from `[server]
//! tokens`), plus `/healthz` and `/metrics`. Videos run in background tasks on the shared job
//! runner; they are recorded in `<state dir>/server.sqlite` (or, with a shared job store, in its
//! PostgreSQL database, for every front end) and resumed when the server starts.

pub(crate) mod admission;
pub mod auth;
mod cancel;
pub mod errors;
pub mod form;
pub mod images;
mod listen;
pub mod metrics;
pub mod models;
pub mod request;
pub mod store;
mod studio;
pub mod videos;

use crate::jobs::{JobDb, Runner, RunnerEvent};
use crate::runtime::Runtime;
use anyhow::{Result, bail};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware;
use axum::routing::{get, post};
use errors::ApiError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Largest request body when `[server] max_body_mb` is not set: OpenAI's own per-image cap.
pub const DEFAULT_MAX_BODY_MB: u64 = 50;
/// Seconds a connection has to send a request's headers when `[server] header_timeout_s` is not
/// set; also how long an idle keep-alive connection stays open.
pub const DEFAULT_HEADER_TIMEOUT_S: f64 = 10.0;
/// Seconds a request has to send its whole body when `[server] body_timeout_s` is not set
/// (50 MiB at 4 Mbit/s).
pub const DEFAULT_BODY_TIMEOUT_S: f64 = 120.0;
/// Open connections when `[server] max_connections` is not set.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4096;
/// Hours `url` results are kept when `[server] keep_results_h` is not set (OpenAI's URLs lived 60 minutes).
pub const DEFAULT_KEEP_RESULTS_H: f64 = 1.0;

/// How the server is started.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The state dir (jobs database, server database, artifacts).
    pub state_dir: PathBuf,
    /// Serve without tokens (loopback only): every caller is `anonymous`.
    pub insecure_no_auth: bool,
}

/// Everything a handler needs.
pub struct App {
    /// The plugins.
    pub rt: Arc<Runtime>,
    /// The job runner shared by all requests (its jobs database is the state dir's).
    pub runner: Arc<Runner>,
    /// Videos and their owners.
    pub store: Arc<store::Store>,
    /// `<state dir>/server`: uploads, results, videos.
    pub dir: PathBuf,
    /// Where video content and `url` results are kept and served from (`[storage]`).
    pub artifacts: Arc<crate::storage::ArtifactStore>,
    /// Request counters.
    pub metrics: metrics::Metrics,
    /// `describe()` answers.
    pub models: models::ModelCache,
    /// `[server] public_url`.
    pub public_url: Option<String>,
    /// Largest request body, bytes.
    pub max_body: u64,
    /// Time a request has to send its body.
    pub body_timeout: std::time::Duration,
    /// How long `url` results (and what failed requests leave) are kept.
    pub keep_results: std::time::Duration,
    pub(crate) admission: admission::Admission,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// The task making each unfinished video, so `DELETE` can stop it.
    video_tasks: Mutex<std::collections::HashMap<String, tokio::task::AbortHandle>>,
    // Held, never sent: the runner's cancel signal would cancel jobs at the provider, and a server
    // that stops must leave its jobs pending so the next start resumes them.
    _cancel: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// Run `f` in the background; [`Running::stop`] ends it.
    pub fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let h = tokio::spawn(f);
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(h.abort_handle());
    }
}

impl App {
    /// [`App::spawn`] for the task making video `id`, findable by `DELETE` until it ends.
    pub(crate) fn spawn_video(self: &Arc<Self>, id: &str, f: impl std::future::Future<Output = ()> + Send + 'static) {
        /// Takes the entry out when the task ends, however it ends (also when aborted).
        struct Entry(Arc<App>, String);
        impl Drop for Entry {
            fn drop(&mut self) {
                self.0.video_tasks.lock().unwrap().remove(&self.1);
            }
        }
        let entry = Entry(self.clone(), id.to_string());
        // Registered before it can run, so its own removal comes after.
        let mut tasks = self.video_tasks.lock().unwrap();
        let h = tokio::spawn(async move {
            let _entry = entry;
            f.await
        });
        tasks.insert(id.to_string(), h.abort_handle());
        drop(tasks);
        let mut all = self.tasks.lock().unwrap();
        all.retain(|t| !t.is_finished());
        all.push(h.abort_handle());
    }

    /// The task making video `id`, while it runs.
    pub(crate) fn video_task(&self, id: &str) -> Option<tokio::task::AbortHandle> {
        self.video_tasks.lock().unwrap().get(id).cloned()
    }
}

/// A server that is up.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub app: Arc<App>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stop at once, as a crash would: background jobs are dropped mid-wait and stay pending in the
    /// jobs database, so the next server on the same state dir resumes them (nothing is cancelled
    /// at the provider, nothing is submitted twice).
    pub async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
        for t in self.app.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Serve until the listener fails or the process ends.
    pub async fn wait(self) -> Result<()> {
        match self.server.await {
            Ok(r) => Ok(r?),
            Err(e) => bail!("the server task ended: {e}"),
        }
    }
}

/// Check the auth setup, open the databases, resume unfinished videos and serve on `listener`.
pub async fn start(rt: Runtime, listener: TcpListener, opts: ServeOptions) -> Result<Running> {
    start_scaled(rt, listener, opts, false).await
}

/// [`start`], for a server that may share its jobs with others (`[jobs] database`): it queues
/// them in the shared store, and runs a worker too unless `no_worker` (see docs/deploy.md).
pub async fn start_scaled(rt: Runtime, listener: TcpListener, opts: ServeOptions, no_worker: bool) -> Result<Running> {
    let shared = crate::jobs::worker::ServeJobs::open(&rt.settings.jobs, no_worker).await?;
    let addr = listener.local_addr()?;
    let shown = rt.settings.shown_path();
    let tokens = if !rt.settings.server.tokens.is_empty() {
        if opts.insecure_no_auth {
            tracing::warn!("--insecure-no-auth ignored: [server] tokens are configured in {shown}, so callers must send one");
        }
        auth::Tokens::load(&rt.settings.server, &shown)?
    } else if opts.insecure_no_auth {
        if !addr.ip().is_loopback() {
            bail!("--insecure-no-auth serves only on a loopback address (127.0.0.1 or ::1), not {addr}; configure tokens to listen elsewhere: add `tokens = {{ alice = \"env:ALICE_TOKEN\" }}` under [server] in {shown}");
        }
        tracing::warn!("serving WITHOUT authentication on {addr}: every caller is `{}`", auth::ANONYMOUS);
        auth::Tokens::open()
    } else {
        bail!(
            "no API tokens are configured, so nobody could call this server; add to {shown}:\n  [server]\n  tokens = {{ alice = \"env:ALICE_TOKEN\" }}\n(or `file:/run/secrets/alice`), or pass --insecure-no-auth to serve without tokens on loopback only"
        );
    };
    // Absolute, because jobs find their video through the output paths stored in their plans.
    let state_dir = std::path::absolute(&opts.state_dir).unwrap_or(opts.state_dir.clone());
    let db = Arc::new(JobDb::open(&state_dir)?);
    // With a shared job store the video records are shared too, so any front end answers for
    // any video and finishes those of a front end that stopped.
    let store = Arc::new(match &shared {
        Some(s) => store::Store::open_shared(s.database(), &new_id("frontend_"), s.lease()).await?,
        None => store::Store::open(&state_dir)?,
    });
    let dir = state_dir.join("server");
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}; check --state-dir", dir.display()))?;
    // Checked before any job is accepted or resumed: a wrong bucket fails the start, naming the line.
    let artifacts = Arc::new(crate::storage::ArtifactStore::open(&rt.settings.storage, &dir)?);
    artifacts.check().await?;
    tracing::info!(target: "atelier::server", "artifacts: {}", artifacts.location());
    let (cancel, rx) = tokio::sync::watch::channel(false);
    let events = videos::progress_events(db.clone(), store.clone(), dir.join("videos"));
    let runner = Runner::new(db, rx).with_events(Arc::new(move |e: RunnerEvent| events(e)));
    let runner = Arc::new(match &shared {
        Some(s) => s.runner(runner),
        None => runner,
    });
    // Workers on other machines publish the jobs' results to a remote bucket; fetched from there.
    if shared.is_some() && artifacts.is_remote() {
        runner.share_artifacts_through(artifacts.clone());
    }
    let max_body = rt.settings.server.max_body_mb.unwrap_or(DEFAULT_MAX_BODY_MB) << 20;
    let ss = &rt.settings.server;
    let conn = listen::ConnLimits {
        header_timeout: std::time::Duration::from_secs_f64(ss.header_timeout_s.unwrap_or(DEFAULT_HEADER_TIMEOUT_S)),
        max_connections: listen::fit_fd_limit(ss.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS) as usize, &shown),
    };
    let app = Arc::new(App {
        body_timeout: std::time::Duration::from_secs_f64(ss.body_timeout_s.unwrap_or(DEFAULT_BODY_TIMEOUT_S)),
        keep_results: std::time::Duration::from_secs_f64(ss.keep_results_h.unwrap_or(DEFAULT_KEEP_RESULTS_H) * 3600.0),
        admission: admission::Admission::new(ss),
        public_url: rt.settings.server.public_url.clone(),
        rt: Arc::new(rt),
        runner,
        store,
        dir,
        artifacts,
        metrics: Default::default(),
        models: Default::default(),
        max_body,
        tasks: Mutex::default(),
        video_tasks: Mutex::default(),
        _cancel: cancel,
    });
    if let Some(s) = shared {
        s.start(app.rt.clone(), app.runner.clone());
    }
    videos::resume_all(&app).await?;
    videos::start_sweep(&app);
    images::start_janitor(&app);
    // New, changed and removed plugins take effect for new requests without a restart.
    app.spawn(crate::reload::watch(app.rt.clone()));
    let router = router(app.clone(), Arc::new(tokens));
    let server = tokio::spawn(listen::serve(listener, router, conn));
    tracing::info!("atelier serve: listening on http://{addr}/v1 ({} plugin(s))", app.rt.manifests().count());
    Ok(Running { addr, app, server })
}

/// All routes, with auth on `/v1`, the body limit, and request accounting.
pub fn router(app: Arc<App>, tokens: Arc<auth::Tokens>) -> Router {
    let v1 = Router::new()
        .route("/v1/images/edits", post(images::edits))
        .route("/v1/images/generations", post(images::generations))
        .route("/v1/videos", post(videos::create).get(videos::list))
        .route("/v1/videos/{id}", get(videos::retrieve).delete(videos::delete))
        .route("/v1/videos/{id}/content", get(videos::content))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::retrieve))
        .merge(studio::api())
        .route_layer(middleware::from_fn_with_state(tokens, auth::require));
    Router::new()
        .merge(v1)
        // The studio page's own files need no token; its API calls send one.
        .merge(studio::pages())
        // Result URLs are capabilities (long random names that expire), like OpenAI's signed URLs:
        // a plain GET fetches them, with no token.
        .route("/v1/images/files/{request}/{name}", get(images::file))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(app.max_body as usize))
        .with_state(app)
}

async fn healthz(State(app): State<Arc<App>>) -> String {
    format!("ok\nplugins: {}\n", app.rt.manifests().count())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}; atelier serves /v1/images/edits, /v1/images/generations, /v1/videos, /v1/models, /healthz and /metrics",
        uri.path()
    ))
}

/// Unix seconds now.
pub fn now_s() -> u64 {
    crate::jobs::db::now_ms() / 1000
}

/// A random id with this prefix (128 bits: unguessable, so URLs built on it can be capabilities).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}
