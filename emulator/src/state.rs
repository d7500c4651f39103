//! What the emulator remembers: the keys it accepts, every request it saw, pending operations.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::StreamExt;
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
    /// The largest request body taken ([`MAX_BODY`] unless a test lowers it).
    pub max_body: usize,
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
        State { keys, base_url, alt_url, max_body: MAX_BODY, inner: Arc::default() }
    }
    /// The same state with another body limit (tests use a small one to stay fast).
    pub fn with_max_body(mut self, bytes: usize) -> State {
        self.max_body = bytes;
        self
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
    /// Take one of `limit` slots counted under `key` (a provider's active tasks), in one step
    /// under the lock so concurrent requests cannot both take the last one; false when all are taken.
    pub fn take_slot(&self, key: &str, limit: u64) -> bool {
        let mut g = self.inner.lock().unwrap();
        let taken = g.jobs.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        if taken >= limit {
            return false;
        }
        g.jobs.insert(key.into(), serde_json::json!(taken + 1));
        true
    }
    /// Give back a slot taken with [`State::take_slot`].
    pub fn free_slot(&self, key: &str) {
        let mut g = self.inner.lock().unwrap();
        let taken = g.jobs.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        g.jobs.insert(key.into(), serde_json::json!(taken.saturating_sub(1)));
    }
    /// Change a provider record in place; returns the new value.
    pub fn update_job(&self, id: &str, f: impl FnOnce(&mut serde_json::Value)) -> Option<serde_json::Value> {
        let mut g = self.inner.lock().unwrap();
        let v = g.jobs.get_mut(id)?;
        f(v);
        Some(v.clone())
    }
}

/// The largest request body the emulator takes, for every provider. A bigger one is answered
/// `413` in the provider's own error envelope ([`crate::too_large`]) and never reaches a handler.
pub const MAX_BODY: usize = 64 << 20;

/// How much of an oversized body is still read (and dropped) before answering, so the client is
/// reading when the 413 comes instead of writing into a closed connection.
const DRAIN_AT_MOST: u64 = 4 * MAX_BODY as u64;

/// How much of each body the log keeps.
const RECORDED_BODY: usize = 4096;

/// A request body as read by the recorder.
#[derive(Debug, PartialEq)]
enum ReadBody {
    /// All of it, within the limit.
    Whole(Bytes),
    /// Over the limit: the first bytes, for the log.
    TooLarge(Bytes),
    /// The client broke off (or the transfer failed) mid-body.
    Broken(String),
}

/// Read a body up to `limit` bytes; past it, keep only the head and drain the rest (bounded).
async fn read_body(body: Body, limit: usize) -> ReadBody {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    let mut seen: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return ReadBody::Broken(e.to_string()),
        };
        seen += chunk.len() as u64;
        if seen > limit as u64 {
            buf.truncate(RECORDED_BODY);
            buf.extend_from_slice(&chunk[..chunk.len().min(RECORDED_BODY - buf.len())]);
            while seen <= DRAIN_AT_MOST.max(limit as u64) {
                match stream.next().await {
                    Some(Ok(c)) => seen += c.len() as u64,
                    _ => break,
                }
            }
            return ReadBody::TooLarge(buf.freeze());
        }
        buf.extend_from_slice(&chunk);
    }
    ReadBody::Whole(buf.freeze())
}

/// Paths of the result stores (signed URLs on the other host): they take no API key.
const STORAGE_PATHS: [&str; 3] = ["/gemini-delivery/", "/ark-results/", "/bfl-delivery/"];

/// Middleware: record every request; a body within [`MAX_BODY`] is handed on unchanged, a bigger
/// or broken one is answered here (a handler never sees a truncated or empty stand-in).
pub(crate) async fn record(AxState(state): AxState<State>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let read = read_body(body, state.max_body).await;
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    let which = if state.alt_url.ends_with(&host) && !host.is_empty() { "alt" } else { "main" };
    if !parts.uri.path().starts_with("/_emulator") {
        let head = match &read {
            ReadBody::Whole(b) | ReadBody::TooLarge(b) => &b[..b.len().min(RECORDED_BODY)],
            ReadBody::Broken(_) => &[][..],
        };
        state.inner.lock().unwrap().requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: String::from_utf8_lossy(head).into_owned(),
            host: which.into(),
        });
    }
    // Storage hosts serve signed URLs: a provider key arriving there is a leak, refused loudly
    // (as a strict provider-side check would flag it) so a test sees it.
    if STORAGE_PATHS.iter().any(|p| parts.uri.path().starts_with(p)) {
        let keys = [&state.keys.gemini, &state.keys.ark, &state.keys.bfl, &state.keys.openai];
        let leaked = parts.headers.iter().any(|(_, v)| v.to_str().is_ok_and(|v| keys.iter().any(|k| v.contains(k.as_str()))));
        if leaked {
            return (StatusCode::BAD_REQUEST, "credential leak: a provider API key was sent to the storage host, which needs none").into_response();
        }
    }
    match read {
        ReadBody::Whole(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        ReadBody::TooLarge(_) => crate::too_large(&state, parts.uri.path(), state.max_body),
        ReadBody::Broken(e) => {
            (StatusCode::BAD_REQUEST, format!("the request body could not be read: {e}")).into_response()
        }
    }
}

/// `GET /_emulator/requests`: the request log, for tests in another process.
pub(crate) fn control_router() -> axum::Router<State> {
    axum::Router::new().route("/_emulator/requests", get(|AxState(s): AxState<State>| async move { Json(s.requests()) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[tokio::test]
    async fn bodies_are_read_whole_within_the_limit_and_cut_off_past_it() {
        assert_eq!(read_body(Body::from(vec![7u8; 100]), 100).await, ReadBody::Whole(Bytes::from(vec![7u8; 100])));
        assert_eq!(read_body(Body::from(vec![7u8; 10_000]), 9_999).await, ReadBody::TooLarge(Bytes::from(vec![7u8; RECORDED_BODY])));
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from_static(b"abc")), Err(std::io::Error::other("peer went away"))];
        let broken = read_body(Body::from_stream(futures_util::stream::iter(chunks)), 100).await;
        assert!(matches!(&broken, ReadBody::Broken(e) if e.contains("peer went away")), "{broken:?}");
    }

    /// An emulator on a free port with this body limit.
    async fn serve(max_body: usize) -> (String, State) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = State::new(Keys::default(), base.clone(), "http://127.0.0.1:1".into()).with_max_body(max_body);
        let app = crate::router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, state)
    }

    async fn post(url: String, body: Vec<u8>) -> (u16, Value) {
        let resp = reqwest::Client::new().post(url).header("content-type", "application/json").body(body).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    #[tokio::test]
    async fn an_oversized_body_gets_the_providers_413_and_never_reaches_a_handler() {
        let (base, state) = serve(1024).await;
        let big = || [b"{\"prompt\":\"".as_slice(), &[b'a'; 2000], b"\"}"].concat();

        let (status, body) = post(format!("{base}/v1beta/models/gemini-2.5-flash-image:generateContent"), big()).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["code"], 413, "{body}");
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{body}");
        assert_eq!(body["error"]["message"], "Request payload size exceeds the limit: 1024 bytes.", "{body}");

        let (status, body) = post(format!("{base}/api/v3/images/generations"), big()).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["code"], "RequestEntityTooLarge", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("Request id: "), "{body}");
        assert!(body["error"]["param"].is_string() && body["error"]["type"].is_string(), "{body}");

        let (status, body) = post(format!("{base}/v1/flux-kontext-pro"), big()).await;
        assert_eq!(status, 413, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("1024 bytes"), "{body}");

        let (status, body) = post(format!("{base}/v1/videos"), big()).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert!(body["error"]["param"].is_null() && body["error"]["code"] == "request_too_large", "{body}");

        // No provider owns this path: a plain 413.
        let (status, body) = post(format!("{base}/nowhere"), big()).await;
        assert_eq!((status, body), (413, Value::String("request body over 1024 bytes".into())));

        // Each was recorded (with the head of its body) and no handler ran: without a key a
        // handler would have answered 401/403 instead.
        let seen = state.requests();
        assert_eq!(seen.len(), 5);
        // The log keeps the first 4 KiB of what was sent, over the limit or not.
        let lengths: Vec<usize> = seen.iter().map(|r| r.body.len()).collect();
        assert_eq!(lengths, vec![2013; 5]);

        // At the limit, the handler gets the body (and refuses the missing key itself).
        let (status, body) = post(format!("{base}/v1/flux-kontext-pro"), vec![b' '; 1024]).await;
        assert_eq!((status, &body["detail"]), (403, &Value::String("Not authenticated".into())), "{body}");
    }

    #[tokio::test]
    async fn the_real_limit_is_64_mib_for_every_provider_gemini_included() {
        let (base, _) = serve(MAX_BODY).await;
        // 3 MB: past axum's own 2 MB extractor default, well within ours; Gemini's handler answers.
        let (status, body) = post(format!("{base}/v1beta/models/gemini-2.5-flash-image:generateContent"), vec![b' '; 3 << 20]).await;
        assert_eq!((status, body["error"]["status"].as_str()), (403, Some("PERMISSION_DENIED")), "{body}");
        // One byte over 64 MiB: the client still reads Google's 413 (the rest was drained).
        let (status, body) = post(format!("{base}/v1beta/models/gemini-2.5-flash-image:generateContent"), vec![b' '; MAX_BODY + 1]).await;
        assert_eq!((status, body["error"]["code"].as_u64()), (413, Some(413)), "{body}");
    }
}
