//! The one retry table: how a provider's HTTP answer becomes an [`Error`] the host acts on.
//!
//! The host retries a submit only after `rate-limited` or `unavailable`, and treats those two as
//! transient on a poll (it backs off and counts them); every other error ends the job. So which
//! statuses land in those two kinds decides whether a billed job survives a provider's bad minute.
//! Every provider plugin decides it here, once:
//!
//! | status | kind |
//! |---|---|
//! | 429 | `rate-limited`, with the `Retry-After` delay (seconds or HTTP-date; `retry-after-ms` first) |
//! | 408, 500, 502, 503, 504 | `unavailable` (any 5xx on a poll: a GET is safe to repeat) |
//! | 401, 403 | `unauthorized`, naming the secret and the `[plugins.<id>.secrets]` line |
//! | 400, 413, 422 | `invalid-input`, with the provider's message |
//! | anything else | `provider`, with the provider's code (or the status) and message |
//!
//! [`Error::from_response`] (and [`Error::from_poll_response`] for a poll) read the answer's
//! status, its `Retry-After` and the provider's error envelope ([`ErrorBody::parse`]: Google's
//! `error.status`, OpenAI's and ModelArk's `error.code`, FastAPI's `detail`, loose
//! `{"message": ...}`), and apply the table. A plugin handles its provider's special cases first
//! (moderation codes, a model id that does not exist) and hands the rest over. Providers whose
//! envelope is none of these parse it themselves and call [`Error::from_status`] with its code and
//! message. [`excerpt`] is the one way to quote a body in a message.

use super::http::Response;
use super::{Error, ProviderError, RateLimit};
use serde_json::Value as Json;

/// Who answered, for messages: the provider's name, the plugin that called it and the secret it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service<'a> {
    /// The provider as users know it (`BFL`, `Google`, `OpenAI`, `ModelArk`).
    pub name: &'a str,
    /// The plugin id, as in its `plugin.toml`: the operator assigns secrets under `[plugins.<id>.secrets]`.
    pub plugin_id: &'a str,
    /// The secret the plugin sends (`BFL_API_KEY`), as declared in its manifest.
    pub secret: &'a str,
}

/// Whether the host may send a submit again after this status: the provider answered and did
/// not take the call (overload, a gateway that lost its upstream, a rate limit).
pub fn is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The reason phrase of the statuses the table names, for messages.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// `HTTP 503 Service Unavailable`, or `HTTP 503 UNAVAILABLE` when the provider gave a code.
fn label(status: u16, code: Option<&str>) -> String {
    match code.filter(|c| !c.is_empty() && *c != status.to_string()) {
        Some(code) => format!("HTTP {status} {code}"),
        None if reason(status).is_empty() => format!("HTTP {status}"),
        None => format!("HTTP {status} {}", reason(status)),
    }
}

/// What a provider said in an error body, whatever envelope it used.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorBody {
    /// The provider's code (`InvalidParameter`, `model_not_found`, `RESOURCE_EXHAUSTED`), when it gave one.
    pub code: Option<String>,
    /// The provider's message (or the body [`excerpt`] when no envelope was recognised); never empty
    /// unless the body was.
    pub message: String,
    /// The offending parameter, when named.
    pub param: Option<String>,
    /// The error type (`invalid_request_error`, `BadRequest`, ...), when given.
    pub kind: Option<String>,
}

impl ErrorBody {
    /// Parse the envelopes providers use: Google `{"error":{"code":403,"message","status"}}`
    /// (the status word is the code), OpenAI / ModelArk `{"error":{"code","message","param","type"}}`,
    /// FastAPI `{"detail": "..."}` or `{"detail":[{"loc":[...],"msg":"..."}]}`, and the loose
    /// `{"error":"code","message":"..."}` / `{"message":"..."}` shapes. Anything else: the body excerpt.
    pub fn parse(body: &[u8]) -> ErrorBody {
        let fallback = || ErrorBody { message: excerpt(body, 300), ..ErrorBody::default() };
        let Ok(v) = serde_json::from_slice::<Json>(body) else { return fallback() };
        let text = |v: &Json| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        if let Some(e) = v.get("error").filter(|e| e.is_object()) {
            return ErrorBody {
                // Google puts its word in `status` and the HTTP status in `code`.
                code: e.get("status").and_then(text).or_else(|| e.get("code").and_then(text)),
                message: e.get("message").and_then(text).unwrap_or_else(|| excerpt(body, 300)),
                param: e.get("param").and_then(text),
                kind: e.get("type").and_then(text),
            };
        }
        if let Some(d) = v.get("detail") {
            if let Some(s) = d.as_str() {
                return ErrorBody { message: s.to_string(), ..ErrorBody::default() };
            }
            if let Some(items) = d.as_array() {
                let msgs: Vec<String> = items.iter().map(validation_item).collect();
                let param = items.first().and_then(|i| i.get("loc")).and_then(|l| l.as_array()).and_then(|l| l.last()).and_then(text);
                return ErrorBody { message: msgs.join("; "), param, kind: Some("validation".into()), ..ErrorBody::default() };
            }
        }
        let code = v.get("error").and_then(text);
        match v.get("message").and_then(text) {
            Some(message) => ErrorBody { code, message, ..ErrorBody::default() },
            None => match code {
                Some(c) => ErrorBody { message: c.clone(), code: Some(c), ..ErrorBody::default() },
                None => fallback(),
            },
        }
    }
}

impl ErrorBody {
    /// This body's code and message through the table for a submit ([`Error::from_status`]).
    pub fn to_error(&self, service: &Service, status: u16, retry_after_ms: Option<u64>) -> Error {
        Error::from_status(service, status, retry_after_ms, self.code.as_deref(), &self.message)
    }
    /// This body's code and message through the table for a poll ([`Error::from_poll_status`]).
    pub fn to_poll_error(&self, service: &Service, status: u16, retry_after_ms: Option<u64>) -> Error {
        Error::from_poll_status(service, status, retry_after_ms, self.code.as_deref(), &self.message)
    }
}

/// `body.field: message` for one FastAPI validation item.
fn validation_item(item: &Json) -> String {
    let loc = item
        .get("loc")
        .and_then(|l| l.as_array())
        .map(|l| l.iter().map(|p| p.as_str().map(str::to_string).unwrap_or_else(|| p.to_string())).collect::<Vec<_>>().join("."))
        .unwrap_or_default();
    let msg = item.get("msg").and_then(|m| m.as_str()).unwrap_or("invalid");
    if loc.is_empty() { msg.to_string() } else { format!("{loc}: {msg}") }
}

impl Error {
    /// The error for a non-2xx answer to a submit (or a cancel): its status, `Retry-After`
    /// ([`retry_after_ms`](super::http::retry_after_ms)) and error envelope ([`ErrorBody::parse`])
    /// through the one table ([`Error::from_status`]).
    pub fn from_response(service: &Service, resp: &Response) -> Error {
        ErrorBody::parse(&resp.body).to_error(service, resp.status, super::http::retry_after_ms(resp))
    }

    /// The error for a non-2xx answer to a poll: [`Error::from_response`], except that every 5xx is
    /// `unavailable` ([`Error::from_poll_status`]). A plugin handles a poll's 404 itself, usually
    /// with [`Error::not_found_yet`].
    pub fn from_poll_response(service: &Service, resp: &Response) -> Error {
        ErrorBody::parse(&resp.body).to_poll_error(service, resp.status, super::http::retry_after_ms(resp))
    }

    /// The error for a non-2xx answer to a submit (or any call that is not a poll), by the table
    /// in [`super::retry`]. `code` and `message` are what the provider's envelope said (the body
    /// [`excerpt`] when it had none); `retry_after_ms` is [`retry_after_ms`](super::http::retry_after_ms)
    /// of the answer, or a delay the body named.
    pub fn from_status(service: &Service, status: u16, retry_after_ms: Option<u64>, code: Option<&str>, message: &str) -> Error {
        let name = service.name;
        let said = label(status, code);
        match status {
            401 | 403 => Error::unauthorized_for(service, &said, message),
            429 => Error::RateLimited(RateLimit { retry_after_ms, message: format!("{name} ({said}): {message}") }),
            408 | 500 | 502 | 503 | 504 => Error::Unavailable(format!("{name} answered {said}: {message}")),
            400 | 413 | 422 => Error::InvalidInput(format!("{name} rejected the request ({said}): {message}")),
            _ => Error::Provider(ProviderError {
                code: code.filter(|c| !c.is_empty()).map_or_else(|| status.to_string(), str::to_string),
                message: format!("{name} answered {said}: {message}"),
            }),
        }
    }

    /// The error for a non-2xx answer to a poll (a GET of a job the provider accepted): the
    /// table of [`Error::from_status`], except that every 5xx is `unavailable`, since asking
    /// again cannot start or bill anything. A plugin handles a poll's 404 itself, usually with
    /// [`Error::not_found_yet`].
    pub fn from_poll_status(service: &Service, status: u16, retry_after_ms: Option<u64>, code: Option<&str>, message: &str) -> Error {
        if status >= 500 {
            return Error::Unavailable(format!("{} could not answer the poll ({}): {message}", service.name, label(status, code)));
        }
        Error::from_status(service, status, retry_after_ms, code, message)
    }

    /// A poll found no such job: `unavailable`, because a provider may not know a job it
    /// accepted a moment ago (eventual consistency, another region); the host keeps polling
    /// within its budget, so a lasting 404 ends as a stall that `atelier jobs resume` can pick up.
    pub fn not_found_yet(service: &Service, job: &str, message: &str) -> Error {
        Error::Unavailable(format!(
            "{} says {job} was not found (yet): a job it just accepted may take a while to appear, so atelier polls again; {message}",
            service.name
        ))
    }

    /// `unauthorized`, naming the secret and where the operator assigns it.
    pub fn unauthorized_for(service: &Service, said: &str, message: &str) -> Error {
        let (name, id, secret) = (service.name, service.plugin_id, service.secret);
        Error::Unauthorized(format!(
            "{name} refused the credentials ({said}): {message}. Check the secret {secret}: assign it to this plugin in \
             atelier.toml under [plugins.{id}.secrets] (e.g. {secret} = \"env:{secret}\") and make sure it is bound to this host"
        ))
    }
}

/// A `Retry-After` value in milliseconds: delta-seconds (`120`, also `1.5`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, or the obsolete RFC 850 and asctime forms) counted from
/// `now_ms` (a date in the past is 0). `None` for anything else.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).min(u64::MAX as f64) as u64);
    }
    http_date_ms(value).map(|at| at.saturating_sub(now_ms))
}

/// An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, RFC 850 or asctime) in ms since the Unix epoch.
pub fn http_date_ms(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let tokens: Vec<&str> = text.split([' ', ',', '-']).filter(|t| !t.is_empty()).collect();
    let month_at = tokens.iter().position(|t| MONTHS.contains(&t.to_ascii_lowercase().as_str()))?;
    let month = MONTHS.iter().position(|m| *m == tokens[month_at].to_ascii_lowercase())? as i64 + 1;
    let time = tokens.iter().find(|t| t.contains(':'))?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    // The numbers other than the time: day and year, in an order that depends on the form.
    let numbers: Vec<(usize, &str)> =
        tokens.iter().enumerate().filter(|(_, t)| !t.contains(':') && t.chars().all(|c| c.is_ascii_digit())).map(|(i, t)| (i, *t)).collect();
    let [(ia, a), (ib, b)] = numbers.as_slice() else { return None };
    // A 4-digit year anywhere (IMF-fixdate, asctime), else RFC 850's day-month-year (06-Nov-94).
    let (day, year) = if a.len() == 4 {
        (b, a)
    } else if b.len() == 4 || (*ia < month_at && *ib > month_at) {
        (a, b)
    } else {
        return None;
    };
    let mut year: i64 = year.parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let day: i64 = day.parse().ok()?;
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days >= 0).then(|| (days as u64 * 86_400 + h * 3600 + m * 60 + s) * 1000)
}

/// The first `max` characters of a body (lossy UTF-8, `…` when cut), for error messages.
/// The one body excerpt every plugin uses.
pub fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut s: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const BFL: Service = Service { name: "BFL", plugin_id: "flux-kontext", secret: "BFL_API_KEY" };

    fn kind(e: &Error) -> &'static str {
        match e {
            Error::InvalidInput(_) => "invalid-input",
            Error::Unauthorized(_) => "unauthorized",
            Error::RateLimited(_) => "rate-limited",
            Error::Moderated(_) => "moderated",
            Error::Unavailable(_) => "unavailable",
            Error::Provider(_) => "provider",
            Error::Internal(_) => "internal",
        }
    }

    #[test]
    fn every_status_has_its_kind() {
        let table = [
            (400, "invalid-input"),
            (401, "unauthorized"),
            (402, "provider"),
            (403, "unauthorized"),
            (404, "provider"),
            (408, "unavailable"),
            (409, "provider"),
            (413, "invalid-input"),
            (418, "provider"),
            (422, "invalid-input"),
            (429, "rate-limited"),
            (500, "unavailable"),
            (501, "provider"),
            (502, "unavailable"),
            (503, "unavailable"),
            (504, "unavailable"),
            (505, "provider"),
            (524, "provider"),
        ];
        for (status, want) in table {
            let e = Error::from_status(&BFL, status, None, None, "said so");
            assert_eq!(kind(&e), want, "HTTP {status}: {e:?}");
            assert_eq!(is_transient(status), matches!(want, "unavailable" | "rate-limited"), "HTTP {status}");
        }
    }

    #[test]
    fn messages_keep_the_providers_words_and_code() {
        match Error::from_status(&BFL, 422, None, Some("validation"), "body.prompt: Field required") {
            Error::InvalidInput(m) => assert_eq!(m, "BFL rejected the request (HTTP 422 validation): body.prompt: Field required"),
            e => panic!("{e:?}"),
        }
        match Error::from_status(&BFL, 404, None, Some("model_not_found"), "no such model") {
            Error::Provider(p) => assert!(p.code == "model_not_found" && p.message.contains("no such model"), "{p:?}"),
            e => panic!("{e:?}"),
        }
        match Error::from_status(&BFL, 402, None, None, "no credits") {
            Error::Provider(p) => assert!(p.code == "402" && p.message.contains("HTTP 402 Payment Required: no credits"), "{p:?}"),
            e => panic!("{e:?}"),
        }
        match Error::from_status(&BFL, 504, None, Some("DEADLINE_EXCEEDED"), "Deadline exceeded.") {
            Error::Unavailable(m) => assert!(m.contains("HTTP 504 DEADLINE_EXCEEDED") && m.contains("Deadline exceeded."), "{m}"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn rate_limits_carry_the_delay() {
        match Error::from_status(&BFL, 429, Some(1500), None, "slow down") {
            Error::RateLimited(r) => assert!(r.retry_after_ms == Some(1500) && r.message.contains("slow down")),
            e => panic!("{e:?}"),
        }
        assert!(matches!(Error::from_status(&BFL, 429, None, None, ""), Error::RateLimited(RateLimit { retry_after_ms: None, .. })));
        assert!(matches!(Error::from_poll_status(&BFL, 429, Some(7), None, ""), Error::RateLimited(RateLimit { retry_after_ms: Some(7), .. })));
    }

    #[test]
    fn unauthorized_names_the_secret_and_the_config_line() {
        for status in [401, 403] {
            match Error::from_status(&BFL, status, None, None, "Not authenticated") {
                Error::Unauthorized(m) => {
                    assert!(m.contains("BFL_API_KEY") && m.contains("[plugins.flux-kontext.secrets]") && m.contains("Not authenticated"), "{m}");
                    assert!(!m.contains("atelier.toml [secrets]"), "the old hint named a section that assigns nothing: {m}");
                }
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn polls_treat_every_5xx_as_transient_and_404_as_not_yet() {
        for status in [500, 501, 502, 503, 504, 505, 520, 524, 599] {
            assert_eq!(kind(&Error::from_poll_status(&BFL, status, None, None, "x")), "unavailable", "HTTP {status}");
        }
        assert_eq!(kind(&Error::from_poll_status(&BFL, 408, None, None, "x")), "unavailable");
        assert_eq!(kind(&Error::from_poll_status(&BFL, 403, None, None, "x")), "unauthorized");
        assert_eq!(kind(&Error::from_poll_status(&BFL, 400, None, None, "x")), "invalid-input");
        match Error::not_found_yet(&BFL, "task t1", "Task not found") {
            Error::Unavailable(m) => assert!(m.contains("not found (yet)") && m.contains("task t1"), "{m}"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        assert_eq!(parse_retry_after(" 1.5 ", 0), Some(1500));
        assert_eq!(parse_retry_after("0", 0), Some(0));
        assert_eq!(parse_retry_after("-3", 0), None);
        assert_eq!(parse_retry_after("soon", 0), None);
        let at = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(http_date_ms("Wed, 21 Oct 2015 07:28:00 GMT"), Some(at));
        assert_eq!(http_date_ms("Wednesday, 21-Oct-15 07:28:00 GMT"), Some(at));
        assert_eq!(http_date_ms("Wed Oct 21 07:28:00 2015"), Some(at));
        assert_eq!(http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at - 30_000), Some(30_000));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at + 5_000), Some(0), "a date in the past: now");
        assert_eq!(http_date_ms("Wed, 32 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(http_date_ms("Wed, 21 Foo 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn parses_google_openai_ark_and_fastapi_envelopes() {
        let ark = br#"{"error":{"code":"InvalidParameter","message":"bad size. Request id: 1","param":"size","type":"BadRequest"}}"#;
        let e = ErrorBody::parse(ark);
        assert_eq!((e.code.as_deref(), e.param.as_deref(), e.kind.as_deref()), (Some("InvalidParameter"), Some("size"), Some("BadRequest")));
        let oa = br#"{"error":{"message":"nope","type":"invalid_request_error","param":null,"code":null}}"#;
        let e = ErrorBody::parse(oa);
        assert_eq!((e.code, e.message.as_str(), e.param), (None, "nope", None));
        let google = br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#;
        let e = ErrorBody::parse(google);
        assert_eq!((e.code.as_deref(), e.message.as_str()), (Some("RESOURCE_EXHAUSTED"), "Quota exceeded"));
        let v = br#"{"detail":[{"loc":["body","safety_tolerance"],"msg":"Input should be less than or equal to 6","type":"less_than_equal"}]}"#;
        let e = ErrorBody::parse(v);
        assert_eq!(e.message, "body.safety_tolerance: Input should be less than or equal to 6");
        assert_eq!(e.param.as_deref(), Some("safety_tolerance"));
        assert_eq!(ErrorBody::parse(br#"{"detail":"Not authenticated"}"#).message, "Not authenticated");
        let rl = ErrorBody::parse(br#"{"error":"rate_limit_exceeded","message":"Too many"}"#);
        assert_eq!((rl.code.as_deref(), rl.message.as_str()), (Some("rate_limit_exceeded"), "Too many"));
        assert_eq!(ErrorBody::parse(b"<html>oops</html>").message, "<html>oops</html>");
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
        Response { status, headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), body: body.to_vec() }
    }

    #[test]
    fn from_response_reads_status_retry_after_and_envelope() {
        match Error::from_response(&BFL, &answer(429, &[("retry-after", "3")], br#"{"detail":"slow down"}"#)) {
            Error::RateLimited(r) => assert!(r.retry_after_ms == Some(3000) && r.message.contains("slow down"), "{r:?}"),
            e => panic!("{e:?}"),
        }
        for status in [500, 502, 503, 504] {
            assert_eq!(kind(&Error::from_response(&BFL, &answer(status, &[], b"busy"))), "unavailable", "HTTP {status}");
        }
        match Error::from_response(&BFL, &answer(403, &[], br#"{"error":{"code":"forbidden","message":"bad key"}}"#)) {
            Error::Unauthorized(m) => assert!(m.contains("BFL_API_KEY") && m.contains("[plugins.flux-kontext.secrets]") && m.contains("bad key"), "{m}"),
            e => panic!("{e:?}"),
        }
        let body = br#"{"error":{"code":"InvalidParameter","message":"m"}}"#;
        assert!(matches!(Error::from_response(&BFL, &answer(409, &[], body)), Error::Provider(p) if p.code == "InvalidParameter" && p.message.ends_with(": m")));
        assert_eq!(kind(&Error::from_response(&BFL, &answer(501, &[], b"{}"))), "provider");
        assert_eq!(kind(&Error::from_poll_response(&BFL, &answer(501, &[], b"{}"))), "unavailable");
    }

    #[test]
    fn excerpts_are_cut_and_marked() {
        assert_eq!(excerpt(b"  short \n", 300), "short");
        assert_eq!(excerpt("héllo wörld".as_bytes(), 5), "héllo…");
        assert_eq!(excerpt(&[0xff, b'a'], 10), "\u{fffd}a");
    }
}
