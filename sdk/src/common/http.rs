//! HTTP through the host: the host checks the allow-list, injects secrets and caps sizes.

use super::Error;
use super::wit_http as wit;

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
    /// The same request with a `multipart/form-data` body (OpenAI's image edits, `/v1/videos`),
    /// replacing any `content-type` header with the form's (it carries the boundary).
    pub fn multipart(mut self, form: crate::multipart::Form) -> Self {
        let (content_type, body) = form.finish();
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        self.headers.push(("content-type".into(), content_type));
        self.body = body;
        self
    }
    /// The same request with a time limit tighter than the host's.
    pub fn timeout(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
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
            Error::Provider(super::ProviderError {
                code: format!("{}", self.status),
                message: format!("the provider answered with malformed JSON ({e}): {}", self.body_excerpt()),
            })
        })
    }
    /// The body of a 2xx answer to a submit, parsed as JSON. When it cannot be read, the
    /// provider took the call and may hold (and bill) the job, so the error says so: it is
    /// not a reason to send the submit again.
    pub fn submit_json(&self, provider: &str) -> Result<serde_json::Value, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::unreadable_submit(provider, self.status, &format!("malformed JSON ({e}): {}", self.body_excerpt())))
    }
    /// The body of a 2xx answer to a poll, parsed as JSON. An answer that cannot be read says
    /// nothing about the job, and asking again is safe: `unavailable`, so the host polls again.
    pub fn poll_json(&self, provider: &str) -> Result<serde_json::Value, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Unavailable(format!(
                "{provider} answered the poll {} with malformed JSON ({e}): {}; polling again",
                self.status,
                self.body_excerpt()
            ))
        })
    }
    /// The first 300 characters of the body, for messages ([`super::retry::excerpt`]).
    pub fn body_excerpt(&self) -> String {
        super::retry::excerpt(&self.body, 300)
    }
}

impl Error {
    /// The provider answered a submit with a 2xx but the answer cannot be read (`what`): the
    /// job may exist at the provider, so the message says so and names what to check.
    pub fn unreadable_submit(provider: &str, status: u16, what: &str) -> Error {
        Error::Provider(super::ProviderError {
            code: "unreadable-answer".into(),
            message: format!(
                "{provider} answered {status} but the answer could not be read: {what}; the job may exist at the provider \
                 (and be billed): check its dashboard before trying again"
            ),
        })
    }
}

impl From<HttpError> for Error {
    /// Transport failures: a denial is the operator's to fix, the rest may pass.
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied(m) => Error::InvalidInput(format!("request denied by the host: {m}")),
            HttpError::Timeout(m) => Error::Unavailable(format!("timed out: {m}")),
            HttpError::TooLarge(m) => Error::Provider(super::ProviderError { code: "too-large".into(), message: m }),
            HttpError::Connection(m) => Error::Unavailable(format!("could not connect: {m}")),
            HttpError::Invalid(m) => Error::Internal(format!("bad request built by the plugin: {m}")),
        }
    }
}

/// How long the provider asked to wait, in milliseconds: `retry-after-ms` (OpenAI's), else
/// `Retry-After` as delta-seconds or an HTTP-date ([`super::retry::parse_retry_after`]).
pub fn retry_after_ms(resp: &Response) -> Option<u64> {
    retry_after_ms_at(resp, super::clock::wall_ms)
}

/// [`retry_after_ms`] with the current time from `now_ms` (called only for an HTTP-date).
pub fn retry_after_ms_at(resp: &Response, now_ms: impl FnOnce() -> u64) -> Option<u64> {
    if let Some(ms) = resp.header("retry-after-ms").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(ms);
    }
    let value = resp.header("retry-after")?;
    // Delta-seconds need no clock; only an HTTP-date is counted from now.
    let now = if value.trim().parse::<f64>().is_ok() { 0 } else { now_ms() };
    super::retry::parse_retry_after(value, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(headers: &[(&str, &str)]) -> Response {
        Response { status: 429, headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), body: b"{}".to_vec() }
    }

    #[test]
    fn retry_after_headers() {
        let never = || -> u64 { panic!("no clock needed for seconds") };
        assert_eq!(retry_after_ms_at(&resp(&[("retry-after", "2")]), never), Some(2000));
        assert_eq!(retry_after_ms_at(&resp(&[("retry-after-ms", "300"), ("retry-after", "1")]), never), Some(300));
        assert_eq!(retry_after_ms_at(&resp(&[]), never), None);
        let date = resp(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after_ms_at(&date, || 1_445_412_480_000 - 4_000), Some(4_000));
    }

    #[test]
    fn submit_and_poll_answers_that_cannot_be_read() {
        let r = Response { status: 200, headers: vec![], body: b"{\"id\": \"a".to_vec() };
        match r.submit_json("BFL") {
            Err(Error::Provider(p)) => {
                assert_eq!(p.code, "unreadable-answer");
                assert!(p.message.starts_with("BFL answered 200 but the answer could not be read: malformed JSON"), "{}", p.message);
                assert!(p.message.contains("the job may exist at the provider") && p.message.contains("{\"id\": \"a"), "{}", p.message);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.poll_json("BFL"), Err(Error::Unavailable(m)) if m.contains("malformed")));
        let ok = Response { status: 200, headers: vec![], body: b"{\"id\": 1}".to_vec() };
        assert_eq!(ok.submit_json("BFL").unwrap()["id"], 1);
    }

    #[test]
    fn multipart_sets_the_body_and_its_content_type() {
        let form = crate::multipart::Form::new(1).text("prompt", "a cat");
        let r = Request::new("POST", "https://x/v1/images/edits").header("authorization", "k").multipart(form);
        let ct: Vec<&str> = r.headers.iter().filter(|(k, _)| k == "content-type").map(|(_, v)| v.as_str()).collect();
        assert_eq!(ct, ["multipart/form-data; boundary=atelier-boundary-0000000000000001"]);
        assert!(String::from_utf8(r.body).unwrap().contains("name=\"prompt\"\r\n\r\na cat\r\n"));
    }
}
