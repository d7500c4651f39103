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
/// SIGHUP still reloads it. Call it inside a tokio runtime.
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
    // SIGHUP is hooked now, before the server answers anything, so a signal sent as soon as it is
    // up reloads instead of ending the process.
    #[cfg(unix)]
    let hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP ({e}); plugin changes are still picked up from the file system");
            None
        }
    };
    #[cfg(not(unix))]
    let hup: Option<Hup> = None;
    async move {
        // Held so the channel stays open (and SIGHUP keeps working) even without a watcher.
        let (_watcher, _tx) = (watcher, tx);
        run(rt, rx, hup).await
    }
}

#[cfg(unix)]
type Hup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hup = std::future::Pending<()>;

/// The next reason to reload: a file event or SIGHUP; `None` when the watcher is gone.
async fn next(rx: &mut mpsc::UnboundedReceiver<()>, hup: &mut Option<Hup>) -> Option<()> {
    #[cfg(unix)]
    if let Some(s) = hup.as_mut() {
        return tokio::select! {
            r = rx.recv() => r,
            Some(()) = s.recv() => {
                tracing::info!("SIGHUP: reloading plugins");
                Some(())
            }
        };
    }
    let _ = hup;
    rx.recv().await
}

async fn run(rt: Arc<Runtime>, mut rx: mpsc::UnboundedReceiver<()>, mut hup: Option<Hup>) {
    while next(&mut rx, &mut hup).await.is_some() {
        let first = tokio::time::Instant::now();
        // Settle: wait for a quiet moment, bounded.
        loop {
            let left = MAX_WAIT.saturating_sub(first.elapsed());
            match tokio::time::timeout(SETTLE.min(left), next(&mut rx, &mut hup)).await {
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
