//! What the emulator remembers: the keys it accepts, every request it saw, pending operations.

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Json;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The API keys the emulator accepts, one per provider.
#[derive(Clone, Debug)]
pub struct Keys {
    /// `x-goog-api-key` for Gemini and Veo.
    pub gemini: String,
    /// `Authorization: Bearer` for BytePlus ModelArk.
    pub ark: String,
    /// `x-key` for Black Forest Labs.
    pub bfl: String,
    /// `Authorization: Bearer` for OpenAI's videos.
    pub openai: String,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            gemini: "emu-gemini-key".into(),
            ark: "emu-ark-key".into(),
            bfl: "emu-bfl-key".into(),
            openai: "emu-openai-key".into(),
        }
    }
}

/// One request as the emulator received it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy), truncated to 4 KiB.
    pub body: String,
    /// Which listener: `main` or `alt`.
    pub host: String,
}

/// Shared state of all providers' routes.
#[derive(Clone)]
pub struct State {
    /// Accepted keys.
    pub keys: Keys,
    /// `http://127.0.0.1:PORT` of the main listener.
    pub base_url: String,
    /// The other listener, for URLs that must point at another host.
    pub alt_url: String,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    requests: Vec<RecordedRequest>,
    /// Provider-specific records (operations, tasks, videos), by id, as JSON.
    jobs: HashMap<String, serde_json::Value>,
    counter: u64,
}

impl State {
    /// Fresh state.
    pub fn new(keys: Keys, base_url: String, alt_url: String) -> State {
        State { keys, base_url, alt_url, inner: Arc::default() }
    }
    /// Every request seen so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.lock().unwrap().requests.clone()
    }
    /// How many requests matched `method` and a path starting with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.requests().iter().filter(|r| r.method == method && r.path.starts_with(path_prefix)).count()
    }
    /// A new unique id with a prefix.
    pub fn next_id(&self, prefix: &str) -> String {
        let mut g = self.inner.lock().unwrap();
        g.counter += 1;
        format!("{prefix}{:08x}", g.counter)
    }
    /// Store a provider record.
    pub fn put_job(&self, id: &str, value: serde_json::Value) {
        self.inner.lock().unwrap().jobs.insert(id.into(), value);
    }
    /// Read a provider record.
    pub fn job(&self, id: &str) -> Option<serde_json::Value> {
        self.inner.lock().unwrap().jobs.get(id).cloned()
    }
    /// Change a provider record in place; returns the new value.
    pub fn update_job(&self, id: &str, f: impl FnOnce(&mut serde_json::Value)) -> Option<serde_json::Value> {
        let mut g = self.inner.lock().unwrap();
        let v = g.jobs.get_mut(id)?;
        f(v);
        Some(v.clone())
    }
}

/// Middleware: record every request (the body is buffered and handed on unchanged).
pub(crate) async fn record(AxState(state): AxState<State>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    let which = if state.alt_url.ends_with(&host) && !host.is_empty() { "alt" } else { "main" };
    if !parts.uri.path().starts_with("/_emulator") {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
        state.inner.lock().unwrap().requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: text,
            host: which.into(),
        });
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// `GET /_emulator/requests`: the request log, for tests in another process.
pub(crate) fn control_router() -> axum::Router<State> {
    axum::Router::new().route("/_emulator/requests", get(|AxState(s): AxState<State>| async move { Json(s.requests()) }))
}
