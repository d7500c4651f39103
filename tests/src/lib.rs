//! Shared helpers for the end-to-end tests and benchmarks: a runtime over the staged test plugins,
//! requests with a tiny image, reading an outcome's notes, and a local HTTP server that records
//! every request it sees.

use atelier::types::{OutputKind, Request, Submission};
use atelier::types::Media;
use atelier::{Runtime, RuntimeOptions, Settings};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Where `tests/build.rs` staged every plugin component (`<dir>/<id>/plugin.{wasm,toml}`).
pub fn plugins_dir() -> PathBuf {
    PathBuf::from(env!("ATELIER_TEST_PLUGINS"))
}

/// The compile cache shared by every test binary, so each component compiles once.
pub fn cache_dir() -> PathBuf {
    root().join("target/test-cache")
}

/// A runtime over the staged test plugins with this operator config (`atelier.toml` text).
pub fn test_runtime(config_toml: &str) -> Runtime {
    runtime_over(vec![plugins_dir()], config_toml, cache_dir())
}

/// A runtime over the given plugin directories, with this config and compile cache.
pub fn runtime_over(plugin_dirs: Vec<PathBuf>, config_toml: &str, cache_dir: PathBuf) -> Runtime {
    let settings = Settings::parse(config_toml, None).expect("the test's operator config parses");
    Runtime::new(settings, RuntimeOptions { plugin_dirs, only_given_dirs: true, cache_dir: Some(cache_dir), ..Default::default() })
        .expect("the runtime starts")
}

/// An 8×8 PNG, the smallest reference every test plugin accepts.
pub fn tiny_png() -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(8, 8, image::Rgba([200, 100, 50, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encoding a PNG in memory");
    out.into_inner()
}

/// A one-output request with this prompt and one tiny PNG reference.
pub fn request(prompt: &str) -> Request {
    Request {
        prompt: prompt.to_string(),
        references: vec![Media { mime: "image/png".into(), bytes: tiny_png() }],
        mask: None,
        n: 1,
        seed: None,
        output: OutputKind::Image,
        aspect: None,
        size: None,
        params: vec![],
    }
}

/// A draft for `prepare`: this prompt, references of these sizes, one image output.
pub fn draft(prompt: &str, references: &[(u32, u32)]) -> atelier::types::Draft {
    atelier::types::Draft {
        prompt: prompt.to_string(),
        references: references.to_vec(),
        has_mask: false,
        n: 1,
        output: OutputKind::Image,
        aspect: None,
        size: None,
        params: vec![],
    }
}

/// The notes of the first artifact of a finished submission; panics on anything else.
pub fn notes(sub: &Submission) -> BTreeMap<String, String> {
    match sub {
        Submission::Done(o) => {
            let a = o.artifacts.first().expect("the outcome has an artifact");
            a.notes.iter().cloned().collect()
        }
        Submission::Pending(p) => panic!("expected a finished job, got pending token {}", p.token),
    }
}

/// Run one `hello` submit on `rt` and check it echoed the image: the host still serves jobs.
pub async fn assert_hello_works(rt: &Runtime) {
    assert_echoes(rt, "hello").await
}

/// Run one submit of model `id` (a copy of `hello`) and check it echoed the image.
pub async fn assert_echoes(rt: &Runtime, id: &str) {
    let hello = rt.model(id).unwrap_or_else(|e| panic!("{id} loads: {e:#}"));
    let sub = hello
        .submit("job-hello", &request("hi"))
        .await
        .unwrap_or_else(|e| panic!("{id}'s call failed: {e:#}"))
        .value
        .unwrap_or_else(|e| panic!("{id}'s submit failed: {e:?}"));
    match &sub {
        Submission::Done(o) => {
            assert_eq!(o.artifacts.len(), 1);
            match &o.artifacts[0].body {
                atelier::types::Body::Inline(b) => assert_eq!(b, &tiny_png(), "{id} echoes its input"),
                other => panic!("{id} returned {other:?}"),
            }
        }
        Submission::Pending(_) => panic!("hello never goes pending"),
    }
}

/// One request a [`TestServer`] received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Path and query, e.g. `/bytes/10`.
    pub path: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
}

/// A local HTTP server on 127.0.0.1 (a random port) that records every request.
///
/// Routes: `/bytes/N` answers N bytes of `x`; `/sleep/MS` answers after MS milliseconds;
/// `/redirect?to=URL` answers 302 to URL; anything else answers 200 `ok <path>`.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    /// Start serving on the current tokio runtime.
    pub async fn start() -> TestServer {
        use axum::http::{StatusCode, header};
        use axum::response::IntoResponse;
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let log = log.clone();
            async move {
                let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect();
                log.lock().unwrap().push(Seen { path: path.clone(), headers });
                if let Some(n) = req.uri().path().strip_prefix("/bytes/") {
                    let n: usize = n.parse().unwrap_or(0);
                    return vec![b'x'; n].into_response();
                }
                if let Some(ms) = req.uri().path().strip_prefix("/sleep/") {
                    tokio::time::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0))).await;
                    return "slept".into_response();
                }
                if req.uri().path() == "/redirect" {
                    let to = req.uri().query().and_then(|q| q.strip_prefix("to=")).unwrap_or("/").to_string();
                    return (StatusCode::FOUND, [(header::LOCATION, to)], "").into_response();
                }
                format!("ok {path}").into_response()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a local port");
        let addr = listener.local_addr().expect("a bound listener has an address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestServer { addr, seen }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// The paths received so far.
    pub fn paths(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|s| s.path.clone()).collect()
    }

    /// Whether any received header value contains `needle`.
    pub fn saw_header_containing(&self, needle: &str) -> bool {
        self.seen.lock().unwrap().iter().any(|s| s.headers.iter().any(|(_, v)| v.contains(needle)))
    }
}
