//! A strict local emulator of the providers atelier's engines speak to.
//!
//! One server answers for every provider (each in its own module with its own routes). It is
//! strict: it rejects what the real service rejects (auth header, field types, MIME types, ...)
//! with the real error envelope. Faults are injected by a marker in the prompt, e.g.
//! `a cat [fault:429]`, so a test can drive them through the CLI unchanged; each provider module
//! documents the markers it understands. Every request is recorded for assertions. A body over
//! [`MAX_BODY`] (64 MiB) is answered `413` in the provider's own error envelope.
//!
//! A second listener on another port plays "another host" (BFL's regional polling URLs, delivery
//! URLs); both serve the same routes.

pub mod ark;
pub mod bfl;
pub mod gemini;
pub mod openai;
mod state;

pub use state::{Keys, MAX_BODY, RecordedRequest, State};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// A running emulator.
pub struct Emulator {
    /// `http://127.0.0.1:PORT`, the main host.
    pub base_url: String,
    /// `http://127.0.0.1:PORT2`, the "other host" (regional polling, delivery).
    pub alt_url: String,
    /// Shared state: recorded requests, keys, operations.
    pub state: State,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Emulator {
    /// Start on two free loopback ports, with the default test keys.
    pub async fn start() -> anyhow::Result<Emulator> {
        Self::start_on(0, 0, Keys::default()).await
    }

    /// Start on the given ports (0 = any free one).
    pub async fn start_on(port: u16, alt_port: u16, keys: Keys) -> anyhow::Result<Emulator> {
        let main = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let alt = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], alt_port))).await?;
        let base_url = format!("http://{}", main.local_addr()?);
        let alt_url = format!("http://{}", alt.local_addr()?);
        let state = State::new(keys, base_url.clone(), alt_url.clone());
        let app = router(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
        let app2 = app.clone();
        tokio::spawn(async move {
            let _ = axum::serve(main, app).with_graceful_shutdown(async { let _ = rx.await; let _ = tx2.send(()); }).await;
        });
        tokio::spawn(async move {
            let _ = axum::serve(alt, app2).with_graceful_shutdown(async { let _ = rx2.await; }).await;
        });
        Ok(Emulator { base_url, alt_url, state, _shutdown: tx })
    }
}

/// Every provider's routes plus the emulator's own `/_emulator/*` control routes.
pub fn router(state: State) -> axum::Router {
    axum::Router::new()
        .merge(gemini::router())
        .merge(ark::router())
        .merge(bfl::router())
        .merge(openai::router())
        .merge(state::control_router())
        // The recorder enforces the body limit (with each provider's 413); the extractors' own
        // default (2 MB) would answer a plain-text 413 of axum's below it.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(state.clone(), state::record))
        .with_state(state)
}

/// The 413 for a body over `limit` bytes, in the envelope of the provider that owns `path`
/// (a plain-text 413 for the emulator's own routes and file deliveries, which take no body).
pub(crate) fn too_large(state: &State, path: &str, limit: usize) -> Response {
    gemini::too_large(path, limit)
        .or_else(|| ark::too_large(state, path, limit))
        .or_else(|| bfl::too_large(path, limit))
        .or_else(|| openai::too_large(path, limit))
        .unwrap_or_else(|| (StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {limit} bytes")).into_response())
}
