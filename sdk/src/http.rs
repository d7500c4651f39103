//! HTTP through the host: the host checks the allow-list, injects secrets and caps sizes.

use crate::Error;
use crate::__bindings::model::atelier::plugin::http as wit;

pub use wit::{HttpError, Request, Response};

/// The placeholder the host replaces with the secret `name` (only on requests to its hosts).
pub fn secret(name: &str) -> String {
    format!("{{{{secret:{name}}}}}")
}

/// Send a request through the host.
pub fn send(req: &Request) -> Result<Response, HttpError> {
    wit::send(req)
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: &str, url: &str) -> Self {
        Request { method: method.into(), url: url.into(), headers: vec![], body: vec![], timeout_ms: None }
    }
    /// A GET.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }
    /// A POST with a JSON body.
    pub fn post_json(url: &str, body: &serde_json::Value) -> Self {
        Self::new("POST", url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("a JSON value always serializes"))
    }
    /// The same request with one more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// The same request with this body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
    /// Send it.
    pub fn send(&self) -> Result<Response, HttpError> {
        send(self)
    }
}

impl Response {
    /// The first header of that name (names are lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The body parsed as JSON, or a `provider` error quoting what came back.
    pub fn json(&self) -> Result<serde_json::Value, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Provider(crate::ProviderError {
                code: format!("{}", self.status),
                message: format!("the provider answered with malformed JSON ({e}): {}", self.body_excerpt()),
            })
        })
    }
    /// The first 300 characters of the body, for messages.
    pub fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut s: String = text.chars().take(300).collect();
        if text.chars().count() > 300 {
            s.push('…');
        }
        s
    }
}

impl From<HttpError> for Error {
    /// Transport failures: a denial is the operator's to fix, the rest may pass.
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied(m) => Error::InvalidInput(format!("request denied by the host: {m}")),
            HttpError::Timeout(m) => Error::Unavailable(format!("timed out: {m}")),
            HttpError::TooLarge(m) => Error::Provider(crate::ProviderError { code: "too-large".into(), message: m }),
            HttpError::Connection(m) => Error::Unavailable(format!("could not connect: {m}")),
            HttpError::Invalid(m) => Error::Internal(format!("bad request built by the plugin: {m}")),
        }
    }
}

/// Parse a `Retry-After` header (seconds or milliseconds variants) into milliseconds.
pub fn retry_after_ms(resp: &Response) -> Option<u64> {
    if let Some(ms) = resp.header("retry-after-ms").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(ms);
    }
    resp.header("retry-after").and_then(|v| v.trim().parse::<f64>().ok()).map(|s| (s * 1000.0) as u64)
}
