//! Request accounting: one `tracing` line per request and the Prometheus text at `/metrics`
//! (requests by route and status, requests in flight, jobs by state, and with a shared job store
//! its workers' leases and heartbeats).

use super::App;
use super::auth::Caller;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

/// Counters since the server started.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    in_flight: AtomicI64,
}

impl Metrics {
    fn count(&self, method: &str, route: &str, status: u16) {
        *self.requests.lock().unwrap().entry((method.to_string(), route.to_string(), status)).or_default() += 1;
    }
}

/// Middleware: count, time and log every request under its route pattern (never the raw path, so
/// ids do not explode the label set).
pub async fn track(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    app.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let resp = next.run(req).await;
    app.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    let status = resp.status().as_u16();
    app.metrics.count(&method, &route, status);
    let caller = resp.extensions().get::<Caller>().map(|c| c.0.as_str()).unwrap_or("-");
    tracing::info!(target: "atelier::server", "{method} {path} → {status} in {} ms (caller {caller})", started.elapsed().as_millis());
    resp
}

/// `GET /metrics`.
pub async fn render(State(app): State<Arc<App>>) -> Response {
    let mut out = String::new();
    out.push_str("# HELP atelier_http_requests_total HTTP requests by method, route and status.\n# TYPE atelier_http_requests_total counter\n");
    for ((m, r, s), n) in app.metrics.requests.lock().unwrap().iter() {
        let _ = writeln!(out, "atelier_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}", escape(r));
    }
    out.push_str("# HELP atelier_http_requests_in_flight Requests being served now.\n# TYPE atelier_http_requests_in_flight gauge\n");
    // This scrape itself is in flight; leave it out.
    let _ = writeln!(out, "atelier_http_requests_in_flight {}", (app.metrics.in_flight.load(Ordering::Relaxed) - 1).max(0));
    out.push_str("# HELP atelier_model_requests Requests per model holding a turn (running) or waiting for one ([server] max_queue).\n# TYPE atelier_model_requests gauge\n");
    for (model, (running, waiting)) in app.admission.snapshot() {
        let _ = writeln!(out, "atelier_model_requests{{model=\"{}\",state=\"running\"}} {running}", escape(&model));
        let _ = writeln!(out, "atelier_model_requests{{model=\"{}\",state=\"waiting\"}} {waiting}", escape(&model));
    }
    out.push_str("# HELP atelier_videos Video jobs made through this server, by status.\n# TYPE atelier_videos gauge\n");
    let by_status = app.store.count_by_status().await.unwrap_or_default();
    for s in ["queued", "in_progress", "completed", "failed"] {
        let _ = writeln!(out, "atelier_videos{{status=\"{s}\"}} {}", by_status.get(s).copied().unwrap_or(0));
    }
    let store = app.runner.store();
    out.push_str("# HELP atelier_jobs Jobs in the job store (the state dir's, or the shared one of [jobs] database), by state.\n# TYPE atelier_jobs gauge\n");
    let mut jobs: BTreeMap<String, u64> = BTreeMap::new();
    for (state, n) in store.count_by_state().await.unwrap_or_default() {
        *jobs.entry(state.to_string()).or_default() += n;
    }
    let states: &[&str] = if store.kind() == "sqlite" { &["submitting", "pending", "done", "failed", "cancelled", "unknown"] } else { &["queued", "submitting", "pending", "done", "failed", "cancelled", "unknown"] };
    for s in states {
        let _ = writeln!(out, "atelier_jobs{{state=\"{s}\"}} {}", jobs.get(*s).copied().unwrap_or(0));
    }
    // The workers of the shared store as their heartbeats show them (any front end can tell
    // which worker holds how many leases and whether it still beats), then this process's own.
    let workers = if store.kind() == "sqlite" { vec![] } else { store.workers().await.unwrap_or_default() };
    if !workers.is_empty() {
        let now = crate::jobs::db::now_ms();
        out.push_str("# HELP atelier_store_worker_leases Leases each worker of the shared store holds.\n# TYPE atelier_store_worker_leases gauge\n");
        for w in &workers {
            let _ = writeln!(out, "atelier_store_worker_leases{{worker=\"{}\"}} {}", escape(&w.id), w.leases);
        }
        out.push_str("# HELP atelier_store_worker_heartbeat_age_seconds Seconds since each worker's last heartbeat.\n# TYPE atelier_store_worker_heartbeat_age_seconds gauge\n");
        for w in &workers {
            let _ = writeln!(out, "atelier_store_worker_heartbeat_age_seconds{{worker=\"{}\"}} {}", escape(&w.id), now.saturating_sub(w.heartbeat_ms) as f64 / 1000.0);
        }
    }
    for w in crate::jobs::worker::in_process() {
        w.render_metrics(&mut out);
    }
    out.push_str("# HELP atelier_plugins Plugins found.\n# TYPE atelier_plugins gauge\n");
    let _ = writeln!(out, "atelier_plugins {}", app.rt.manifests().count());
    out.push_str("# HELP atelier_plugin_info The plugins being served: version and component digest (changes on reload).\n# TYPE atelier_plugin_info gauge\n");
    let rt = app.rt.clone();
    // Reading component files to hash them is blocking work.
    for p in tokio::task::spawn_blocking(move || rt.installed()).await.unwrap_or_default() {
        let _ = writeln!(
            out,
            "atelier_plugin_info{{id=\"{}\",kind=\"{}\",version=\"{}\",digest=\"{}\"}} 1",
            escape(&p.id),
            p.kind,
            escape(&p.version),
            escape(p.digest.as_deref().unwrap_or("unknown"))
        );
    }
    let (reloads, refused) = app.rt.reload_counts();
    out.push_str("# HELP atelier_plugin_reloads_total Plugin table reloads (file changes, SIGHUP).\n# TYPE atelier_plugin_reloads_total counter\n");
    let _ = writeln!(out, "atelier_plugin_reloads_total {reloads}");
    out.push_str("# HELP atelier_plugin_reload_refusals_total Changed plugins a reload refused (the previous version kept serving).\n# TYPE atelier_plugin_reload_refusals_total counter\n");
    let _ = writeln!(out, "atelier_plugin_reload_refusals_total {refused}");
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
