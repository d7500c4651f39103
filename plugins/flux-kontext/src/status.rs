//! BFL's answers: the submit response (→ token), `get_result` statuses (→ progress, outcome or
//! error), and HTTP error mapping.

use atelier_sdk::{excerpt, Artifact, Body, Download, Error, ErrorBody, Outcome, Progress, ProviderError, RateLimit, Request, Service, Status, Usage};
use provider_common::token_str;
use serde_json::{json, Value};

/// BFL as the retry table names it.
pub const BFL: Service = Service { name: "BFL", plugin_id: "flux-kontext", secret: "BFL_API_KEY" };

/// `result.sample` works for 10 minutes.
pub const DELIVERY_LIFETIME_MS: u64 = 10 * 60 * 1000;

/// The token for a submitted task: id, the `polling_url` exactly as BFL returned it, and what
/// the outcome needs (endpoint, output format, seed, cost).
pub fn token_from_submit(body: &Value, endpoint: &str, req: &Request) -> Result<Value, Error> {
    // BFL answered 2xx, so the task may exist (and be billed) even though we cannot poll it.
    let malformed = |what: &str| Error::unreadable_submit("BFL", 200, &format!("it has no {what}: {}", excerpt(body.to_string().as_bytes(), 300)));
    let id = body.get("id").and_then(Value::as_str).ok_or_else(|| malformed("`id`"))?;
    let polling_url = body.get("polling_url").and_then(Value::as_str).ok_or_else(|| malformed("`polling_url`"))?;
    let format = req.params.iter().find(|p| p.name == "output_format").and_then(|p| match &p.value {
        atelier_sdk::Value::Text(t) => Some(t.clone()),
        _ => None,
    });
    let mut token = json!({
        "v": 1,
        "id": id,
        "polling_url": polling_url,
        "endpoint": endpoint,
        "output_format": format.unwrap_or_else(|| "png".into()),
    });
    if let Some(seed) = req.seed {
        token["seed"] = json!(seed);
    }
    if let Some(cost) = body.get("cost").and_then(Value::as_f64) {
        token["cost"] = json!(cost);
    }
    Ok(token)
}

/// The delay a 429 asks for: `Retry-After` when sent, else the `retry_after` seconds some 429
/// bodies carry.
fn rate_limit_delay(retry_after_ms: Option<u64>, body: &[u8]) -> Option<u64> {
    let body_retry = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("retry_after").and_then(Value::as_f64));
    retry_after_ms.or(body_retry.filter(|s| s.is_finite() && *s >= 0.0).map(|s| (s * 1000.0) as u64))
}

/// A submit that did not get a 2xx: BFL's own cases, then the SDK's retry table.
pub fn map_submit_error(status: u16, retry_after_ms: Option<u64>, body: &[u8], endpoint: &str) -> Error {
    let e = ErrorBody::parse(body);
    match status {
        422 => Error::InvalidInput(format!("BFL rejected the request to /v1/{endpoint}: {}", e.message)),
        402 => Error::Provider(ProviderError { code: "402".into(), message: format!("BFL: insufficient credits ({}); top up your BFL account", e.message) }),
        404 => Error::Provider(ProviderError {
            code: "404".into(),
            message: format!("BFL has no endpoint /v1/{endpoint} ({}): check `model` / `fill_model` under [plugins.flux-kontext]", e.message),
        }),
        429 => Error::RateLimited(RateLimit {
            retry_after_ms: rate_limit_delay(retry_after_ms, body),
            message: format!("BFL: {} (at most 24 active tasks per key, 6 for flux-kontext-max)", e.message),
        }),
        _ => ErrorBody::parse(body).to_error(&BFL, status, retry_after_ms),
    }
}

/// Read a `get_result` answer. Only BFL saying the task failed (`Error`, moderation, an unknown
/// status) ends the job; an answer that says nothing about the task (5xx, 429, not JSON) and a
/// `Task not found` for a task BFL just accepted are transient, for the host to count and retry.
pub fn read_poll(token: &Value, status: u16, retry_after_ms: Option<u64>, body: &[u8], now_ms: u64, interval_ms: u64) -> Result<Status, Error> {
    let id = token_str(token, "id")?;
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let state = parsed.as_ref().and_then(|v| v.get("status")).and_then(Value::as_str).map(str::to_string);
    if status == 401 || status == 403 {
        let host = token_str(token, "polling_url").unwrap_or_default().split('/').take(3).collect::<Vec<_>>().join("/");
        let said = format!("HTTP {status}, polling {host}");
        return Err(Error::unauthorized_for(&BFL, &said, &ErrorBody::parse(body).message));
    }
    if status == 404 || state.as_deref() == Some("Task not found") {
        return Err(Error::not_found_yet(&BFL, &format!("task {id}"), "BFL answered `Task not found` (a task also expires, or may live in another region)"));
    }
    if status == 429 {
        return Err(ErrorBody::parse(body).to_poll_error(&BFL, status, rate_limit_delay(retry_after_ms, body)));
    }
    if !(200..300).contains(&status) {
        return Err(ErrorBody::parse(body).to_poll_error(&BFL, status, retry_after_ms));
    }
    let (Some(v), Some(state)) = (parsed, state) else {
        return Err(Error::Unavailable(format!("BFL answered the poll of task {id} with no readable status: {}; polling again", excerpt(body, 200))));
    };
    let details = v.get("details").filter(|d| !d.is_null()).map(|d| format!(" ({d})")).unwrap_or_default();
    match state.as_str() {
        "Pending" => {
            let fraction = v.get("progress").and_then(Value::as_f64).map(|p| if p > 1.0 { p / 100.0 } else { p } as f32);
            Ok(Status::Running(Progress { fraction, retry_after_ms: interval_ms, state: "Pending".into(), partials: vec![] }))
        }
        "Ready" => ready(token, &v, now_ms).map(Status::Done),
        "Request Moderated" => Err(Error::Moderated(format!(
            "BFL's moderation refused the request (prompt or input image) before generating{details}; change the prompt or image"
        ))),
        "Content Moderated" => Err(Error::Moderated(format!(
            "BFL generated the image but its output moderation withheld it{details}; rephrase or raise safety_tolerance"
        ))),
        "Error" => Err(Error::Provider(ProviderError { code: "Error".into(), message: format!("BFL task {id} failed{details}") })),
        // BFL's SDK treats an unknown status as a failure too.
        other => Err(Error::Provider(ProviderError { code: other.into(), message: format!("BFL task {id} ended with status `{other}`{details}") })),
    }
}

/// `Ready`: one artifact the host downloads from `result.sample` (no key, expires in 10 minutes).
fn ready(token: &Value, v: &Value, now_ms: u64) -> Result<Outcome, Error> {
    let result = v.get("result").filter(|r| r.is_object());
    let url = result.and_then(|r| r.get("sample")).and_then(Value::as_str).ok_or_else(|| Error::Provider(ProviderError {
        code: "malformed".into(),
        message: format!("BFL says Ready but gives no result.sample: {v}"),
    }))?;
    let mime = if token.get("output_format").and_then(Value::as_str) == Some("jpeg") { "image/jpeg" } else { "image/png" };
    let seed = result.and_then(|r| r.get("seed")).and_then(Value::as_u64).or_else(|| token.get("seed").and_then(Value::as_u64));
    let mut notes = vec![("bfl_task_id".to_string(), token_str(token, "id")?.to_string())];
    if let Some(endpoint) = token.get("endpoint").and_then(Value::as_str) {
        notes.push(("endpoint".into(), endpoint.into()));
    }
    if let Some(cost) = token.get("cost").and_then(Value::as_f64) {
        notes.push(("cost_credits".into(), cost.to_string()));
    }
    // BFL documents 10 minutes; a signed URL's own `se=` expiry wins when it says sooner.
    let expires = sas_expiry_ms(url).map_or(now_ms + DELIVERY_LIFETIME_MS, |se| se.min(now_ms + DELIVERY_LIFETIME_MS));
    let body = Body::Download(Download { url: url.into(), headers: vec![], expires_at_ms: Some(expires) });
    Ok(Outcome { artifacts: vec![Artifact { mime: mime.into(), body, seed, has_audio: false, notes }], failures: vec![], usage: Usage::none() })
}

/// The `se=` (signed expiry, ISO 8601 UTC such as `2026-11-26T22%3A10%3A00Z`) of an Azure
/// SAS-style delivery URL, in ms since the epoch.
pub fn sas_expiry_ms(url: &str) -> Option<u64> {
    let query = url.split_once('?')?.1;
    let se = query.split('&').find_map(|kv| kv.strip_prefix("se="))?;
    let se = se.replace("%3A", ":").replace("%3a", ":");
    let (date, time) = se.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|x| x.parse::<u64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next().flatten().unwrap_or(0));
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days >= 0).then(|| (days as u64 * 86_400 + hh * 3600 + mm * 60 + ss) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_sdk::Param;

    fn token() -> Value {
        json!({"v":1,"id":"t1","polling_url":"https://api.eu1.bfl.ai/v1/get_result?id=t1","endpoint":"flux-kontext-pro","output_format":"jpeg","seed":42,"cost":4.0})
    }

    #[test]
    fn token_keeps_polling_url_verbatim() {
        let req = Request { prompt: "p".into(), references: vec![], mask: None, n: 1, seed: Some(42), output: atelier_sdk::OutputKind::Image, aspect: None, size: None, params: vec![Param::new("output_format", "jpeg")] };
        let body = json!({"id":"t1","polling_url":"https://api.eu1.bfl.ai/v1/get_result?id=t1","cost":4.0});
        assert_eq!(token_from_submit(&body, "flux-kontext-pro", &req).unwrap(), token());
        match token_from_submit(&json!({"id":"x"}), "e", &req) {
            Err(Error::Provider(p)) => assert!(p.message.contains("could not be read") && p.message.contains("may exist at the provider"), "{}", p.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pending_and_ready() {
        let s = read_poll(&token(), 200, None, br#"{"id":"t1","status":"Pending","progress":0.4}"#, 0, 500).unwrap();
        assert!(matches!(s, Status::Running(p) if p.fraction == Some(0.4) && p.state == "Pending" && p.retry_after_ms == 500));
        let body = br#"{"id":"t1","status":"Ready","result":{"sample":"https://delivery-eu1.bfl.ai/r/sample.jpeg?se=1&sig=x","seed":42}}"#;
        match read_poll(&token(), 200, None, body, 1_000, 500).unwrap() {
            Status::Done(o) => {
                let a = &o.artifacts[0];
                assert_eq!(a.mime, "image/jpeg");
                assert_eq!(a.seed, Some(42));
                match &a.body {
                    Body::Download(d) => {
                        assert_eq!(d.url, "https://delivery-eu1.bfl.ai/r/sample.jpeg?se=1&sig=x");
                        assert!(d.headers.is_empty());
                        assert_eq!(d.expires_at_ms, Some(1_000 + DELIVERY_LIFETIME_MS));
                    }
                    b => panic!("{b:?}"),
                }
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn reads_sas_expiry() {
        assert_eq!(sas_expiry_ms("https://d.bfl.ai/s.png?se=2026-11-26T22%3A00%3A00Z&sig=x"), Some(1_795_730_400_000));
        assert_eq!(sas_expiry_ms("https://d.bfl.ai/s.png?se=1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(sas_expiry_ms("https://d.bfl.ai/s.png?sig=x"), None);
        assert_eq!(sas_expiry_ms("https://d.bfl.ai/s.png?se=garbage"), None);
        let body = br#"{"id":"t1","status":"Ready","result":{"sample":"https://d.bfl.ai/s.png?se=1970-01-01T00%3A00%3A05Z"}}"#;
        match read_poll(&token(), 200, None, body, 1_000, 500).unwrap() {
            Status::Done(o) => assert!(matches!(&o.artifacts[0].body, Body::Download(d) if d.expires_at_ms == Some(5_000))),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn terminal_states() {
        let t = token();
        let rm = read_poll(&t, 200, None, br#"{"id":"t1","status":"Request Moderated","details":{"Moderation Reasons":["x"]}}"#, 0, 500);
        let cm = read_poll(&t, 200, None, br#"{"id":"t1","status":"Content Moderated"}"#, 0, 500);
        match (rm, cm) {
            (Err(Error::Moderated(a)), Err(Error::Moderated(b))) => {
                assert!(a.contains("request") && a.contains("Moderation Reasons"));
                assert!(b.contains("output"));
                assert_ne!(a, b);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(read_poll(&t, 200, None, br#"{"id":"t1","status":"Error"}"#, 0, 500), Err(Error::Provider(p)) if p.code == "Error"));
        assert!(matches!(read_poll(&t, 200, None, br#"{"id":"t1","status":"Something new"}"#, 0, 500), Err(Error::Provider(p)) if p.code == "Something new"));
    }

    #[test]
    fn a_task_not_found_yet_is_transient() {
        let t = token();
        for (status, body) in [(200, &br#"{"id":"t1","status":"Task not found"}"#[..]), (404, br#"{"id":"t1","status":"Task not found"}"#), (404, b"{\"detail\":\"Not Found\"}")] {
            match read_poll(&t, status, None, body, 0, 500) {
                Err(Error::Unavailable(m)) => assert!(m.contains("not found (yet)") && m.contains("t1"), "{m}"),
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn failed_polls_report_their_kind_instead_of_running() {
        for status in [500, 502, 503, 504, 520] {
            match read_poll(&token(), status, None, br#"{"detail":"Internal Server Error"}"#, 0, 500) {
                Err(Error::Unavailable(m)) => assert!(m.contains(&status.to_string()) && m.contains("Internal Server Error"), "{m}"),
                other => panic!("{status}: {other:?}"),
            }
        }
        let rl = br#"{"error":"rate_limit_exceeded","message":"Too many","retry_after":5}"#;
        assert!(matches!(read_poll(&token(), 429, None, rl, 0, 500), Err(Error::RateLimited(r)) if r.retry_after_ms == Some(5000)));
        assert!(matches!(read_poll(&token(), 429, Some(700), rl, 0, 500), Err(Error::RateLimited(r)) if r.retry_after_ms == Some(700)));
        assert!(matches!(read_poll(&token(), 200, None, b"{\"id\": \"t1\", \"sta", 0, 500), Err(Error::Unavailable(m)) if m.contains("no readable status")));
        assert!(matches!(read_poll(&token(), 200, None, br#"{"id":"t1"}"#, 0, 500), Err(Error::Unavailable(_))));
        match read_poll(&token(), 403, None, br#"{"detail":"Not authenticated"}"#, 0, 500) {
            Err(Error::Unauthorized(m)) => assert!(m.contains("https://api.eu1.bfl.ai") && m.contains("[plugins.flux-kontext.secrets]"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn submit_errors() {
        let v = br#"{"detail":[{"loc":["body","aspect_ratio"],"msg":"bad ratio","type":"value_error"}]}"#;
        assert!(matches!(map_submit_error(422, None, v, "flux-kontext-pro"), Error::InvalidInput(m) if m.contains("body.aspect_ratio: bad ratio")));
        let rl = br#"{"error":"rate_limit_exceeded","message":"Too many concurrent requests","retry_after":5}"#;
        assert!(matches!(map_submit_error(429, None, rl, "x"), Error::RateLimited(r) if r.retry_after_ms == Some(5000)));
        assert!(matches!(map_submit_error(429, Some(1000), rl, "x"), Error::RateLimited(r) if r.retry_after_ms == Some(1000)));
        assert!(matches!(map_submit_error(403, None, br#"{"detail":"Not authenticated"}"#, "x"), Error::Unauthorized(_)));
        for status in [500, 502, 503, 504] {
            assert!(matches!(map_submit_error(status, None, br#"{"detail":"Internal Server Error"}"#, "x"), Error::Unavailable(_)), "{status}");
        }
        assert!(matches!(map_submit_error(403, None, b"{}", "x"), Error::Unauthorized(m) if m.contains("[plugins.flux-kontext.secrets]")));
        assert!(matches!(map_submit_error(402, None, b"{}", "x"), Error::Provider(p) if p.code == "402"));
    }
}
