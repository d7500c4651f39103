//! Hot reload for `atelier serve`: the plugin directories are watched (`notify`) and SIGHUP asks
//! for a reload; either one swaps in a new plugin table ([`Runtime::reload`]) once the changed
//! plugins passed their checks. Requests that already hold a plugin finish on it.

use crate::runtime::{ReloadReport, Runtime};
use notify::{RecursiveMode, Watcher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Quiet time after the last file event before reloading: an install writes several files and
/// renames a directory; reloading once after all of it avoids compiling a half-written plugin.
const SETTLE: Duration = Duration::from_millis(300);
/// A reload happens at the latest this long after the first event, even if events keep coming.
const MAX_WAIT: Duration = Duration::from_secs(3);

/// Watch `rt`'s plugin directories and reload on changes and on SIGHUP, until the returned task
/// is aborted (the watcher is dropped with it). A directory that cannot be watched is logged;
/// SIGHUP still reloads it.
pub fn watch(rt: Arc<Runtime>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (tx, rx) = mpsc::unbounded_channel::<()>();
    let events = tx.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        // Staging and retired directories (`.atelier-*`) are the installer's business; the final
        // rename is an event on the plugin's own name.
        Ok(ev) if ev.paths.iter().all(|p| in_dot_dir(p)) => {}
        Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => {}
        Ok(_) => {
            let _ = events.send(());
        }
        Err(e) => tracing::warn!("watching the plugin directories: {e}"),
    });
    let mut watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("cannot watch the plugin directories ({e}); send SIGHUP to reload plugins");
            None
        }
    };
    if let Some(w) = watcher.as_mut() {
        for dir in &rt.search_path {
            if let Err(e) = w.watch(dir, RecursiveMode::Recursive) {
                tracing::warn!("{}: cannot watch for plugin changes ({e}); send SIGHUP to reload after changing it", dir.display());
            }
        }
    }
    async move {
        let _watcher = watcher;
        #[cfg(unix)]
        {
            let hup = tx.clone();
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(mut s) => {
                    tokio::spawn(async move {
                        while s.recv().await.is_some() {
                            tracing::info!("SIGHUP: reloading plugins");
                            if hup.send(()).is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(e) => tracing::warn!("cannot listen for SIGHUP ({e}); plugin changes are still picked up from the file system"),
            }
        }
        drop(tx);
        run(rt, rx).await
    }
}

async fn run(rt: Arc<Runtime>, mut rx: mpsc::UnboundedReceiver<()>) {
    while rx.recv().await.is_some() {
        let first = tokio::time::Instant::now();
        // Settle: wait for a quiet moment, bounded.
        loop {
            let left = MAX_WAIT.saturating_sub(first.elapsed());
            match tokio::time::timeout(SETTLE.min(left), rx.recv()).await {
                Ok(Some(())) if !left.is_zero() => continue,
                Ok(None) => return,
                _ => break,
            }
        }
        let r = rt.clone();
        // Compiles run on the blocking pool, never on an async worker.
        match tokio::task::spawn_blocking(move || r.reload()).await {
            Ok(report) => log(&report),
            Err(e) => tracing::error!("plugin reload panicked: {e}; the previous plugins stay"),
        }
    }
}

fn log(r: &ReloadReport) {
    for a in &r.added {
        tracing::info!("plugin added: {a}");
    }
    for u in &r.updated {
        tracing::info!("plugin updated: {u}");
    }
    for x in &r.removed {
        tracing::info!("plugin removed: {x}");
    }
    for k in &r.kept {
        tracing::warn!("plugin change refused: {}", k.message);
    }
}

/// Whether the path is inside (or is) a dot-directory of a plugin directory.
fn in_dot_dir(p: &Path) -> bool {
    p.components().any(|c| c.as_os_str().to_string_lossy().starts_with(".atelier-"))
}
