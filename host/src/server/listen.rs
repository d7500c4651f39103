//! The accept loop. `axum::serve` sets neither a header read timeout nor a connection cap, so a
//! few thousand half-sent requests could hold every socket the process may open; here each
//! connection is served by hyper's HTTP/1 builder with a header read timeout (which also ends
//! idle keep-alive connections), and at most `max_connections` are open at once.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnLimits {
    /// Time to send a request's headers (and the longest a keep-alive connection sits idle).
    pub header_timeout: Duration,
    /// Connections open at once; more wait in the kernel's backlog until one closes.
    pub max_connections: usize,
}

/// File descriptors kept aside for everything that is not a client connection (databases,
/// plugin files, artifacts, outbound HTTP).
const SPARE_FDS: u64 = 256;

/// Make room for `wanted` connections in the open-file limit: raise the soft limit up to the
/// hard one if needed (as Go's runtime does), else serve fewer connections and say which line
/// to change.
// `rlim_t` is u64 on Linux but not on every Unix: the casts are not all no-ops.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn fit_fd_limit(wanted: usize, config: &str) -> usize {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return wanted;
        }
        let need = wanted as u64 + SPARE_FDS;
        if (lim.rlim_cur as u64) < need {
            let raised = libc::rlimit { rlim_cur: need.min(lim.rlim_max as u64) as libc::rlim_t, rlim_max: lim.rlim_max };
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim.rlim_cur = raised.rlim_cur;
            }
        }
        let fit = (lim.rlim_cur as u64).saturating_sub(SPARE_FDS).max(1) as usize;
        if fit < wanted {
            tracing::warn!(
                "serving at most {fit} connections, not {wanted}: the open-file limit is {}; raise it (`ulimit -n {need}`) or set `max_connections = {fit}` under [server] in {config}",
                lim.rlim_cur
            );
            return fit;
        }
    }
    wanted
}

/// Serve `router` on `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, router: Router, limits: ConnLimits) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let timer = TokioTimer::new();
    loop {
        // Taken before accepting: at the cap, new connections wait in the backlog (bounded by the
        // kernel) instead of costing a socket and a task each.
        let permit = open.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (stream, _peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // A client that gave up before accept is no reason to stop; anything else (out of
                // file descriptors) is waited out, as axum::serve does.
                if !matches!(e.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionRefused) {
                    tracing::error!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let timer = timer.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(timer).header_read_timeout(limits.header_timeout);
            if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!("connection closed: {e}");
            }
            drop(permit);
        });
    }
}
