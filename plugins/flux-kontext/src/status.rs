//! BFL's answers: the submit response (→ token), `get_result` statuses (→ progress, outcome or
//! error), and HTTP error mapping.

use atelier_sdk::{Artifact, Body, Download, Error, Outcome, Progress, ProviderError, RateLimit, Request, Status, Usage};
use provider_common::{map_status, parse_error_body, poll_again, token_str};
use serde_json::{json, Value};

/// `result.sample` works for 10 minutes.
pub const DELIVERY_LIFETIME_MS: u64 = 10 * 60 * 1000;

/// The token for a submitted task: id, the `polling_url` exactly as BFL returned it, and what
/// the outcome needs (endpoint, output format, seed, cost).
pub fn token_from_submit(body: &Value, endpoint: &str, req: &Request) -> Result<Value, Error> {
    let malformed = |what: &str| Error::Provider(ProviderError { code: "malformed".into(), message: format!("BFL's submit answer has no {what}: {body}") });
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

/// A submit that did not get a 2xx.
pub fn map_submit_error(status: u16, retry_after_ms: Option<u64>, body: &[u8], endpoint: &str) -> Error {
    let e = parse_error_body(body);
    match status {
        422 => Error::InvalidInput(format!("BFL rejected the request to /v1/{endpoint}: {}", e.message)),
        402 => Error::Provider(ProviderError { code: "402".into(), message: format!("BFL: insufficient credits ({}); top up your BFL account", e.message) }),
        404 => Error::Provider(ProviderError {
            code: "404".into(),
            message: format!("BFL has no endpoint /v1/{endpoint} ({}): check `model` / `fill_model` under [plugins.flux-kontext]", e.message),
        }),
        429 => {
            // Retry-After when sent, else the `retry_after` seconds some 429 bodies carry.
            let body_retry = serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("retry_after").and_then(Value::as_f64));
            Error::RateLimited(RateLimit {
                retry_after_ms: retry_after_ms.or(body_retry.map(|s| (s * 1000.0) as u64)),
                message: format!(
                    "BFL: {} (at most 24 active tasks per key, 6 for flux-kontext-max)",
                    e.message
                ),
            })
        }
        _ => map_status("BFL", "BFL_API_KEY", status, retry_after_ms, body),
    }
}

/// Read a `get_result` answer.
pub fn read_poll(token: &Value, status: u16, retry_after_ms: Option<u64>, body: &[u8], now_ms: u64, interval_ms: u64) -> Result<Status, Error> {
    let id = token_str(token, "id")?;
    if status == 429 || status >= 500 {
        return Ok(poll_again(&format!("HTTP {status}"), retry_after_ms.unwrap_or(interval_ms).max(interval_ms)));
    }
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let state = parsed.as_ref().and_then(|v| v.get("status")).and_then(Value::as_str).map(str::to_string);
    if !(200..300).contains(&status) && state.is_none() {
        if status == 401 || status == 403 {
            let host = token_str(token, "polling_url").unwrap_or_default().split('/').take(3).collect::<Vec<_>>().join("/");
            return Err(Error::Unauthorized(format!(
                "BFL refused the key while polling {host} (HTTP {status}: {}): BFL_API_KEY must be bound to that host \
                 (add it to the secret's hosts in atelier.toml)",
                parse_error_body(body).message
            )));
        }
        return Err(map_status("BFL", "BFL_API_KEY", status, retry_after_ms, body));
    }
    let v = parsed.clone().ok_or_else(|| Error::Provider(ProviderError {
        code: "malformed".into(),
        message: format!("BFL's poll answer is not JSON: {}", provider_common::excerpt(body, 200)),
    }))?;
    let details = v.get("details").filter(|d| !d.is_null()).map(|d| format!(" ({d})")).unwrap_or_default();
    match state.as_deref().unwrap_or("") {
        "Pending" => {
            let fraction = v.get("progress").and_then(Value::as_f64).map(|p| if p > 1.0 { p / 100.0 } else { p } as f32);
            Ok(Status::Running(Progress { fraction, retry_after_ms: interval_ms, state: "Pending".into() }))
        }
        "Ready" => ready(token, &v, now_ms).map(Status::Done),
        "Request Moderated" => Err(Error::Moderated(format!(
            "BFL's moderation refused the request (prompt or input image) before generating{details}; change the prompt or image"
        ))),
        "Content Moderated" => Err(Error::Moderated(format!(
            "BFL generated the image but its output moderation withheld it{details}; rephrase or raise safety_tolerance"
        ))),
        "Task not found" => Err(Error::Provider(ProviderError {
            code: "task-not-found".into(),
            message: format!("BFL does not know task {id} (it may have expired, or was sent to another region)"),
        })),
        "Error" => Err(Error::Provider(ProviderError { code: "Error".into(), message: format!("BFL task {id} failed{details}") })),
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
    Ok(Outcome { artifacts: vec![Artifact { mime: mime.into(), body, seed, notes }], failures: vec![], usage: Usage::none() })
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
        let req = Request { prompt: "p".into(), references: vec![], mask: None, n: 1, seed: Some(42), params: vec![Param::new("output_format", "jpeg")] };
        let body = json!({"id":"t1","polling_url":"https://api.eu1.bfl.ai/v1/get_result?id=t1","cost":4.0});
        assert_eq!(token_from_submit(&body, "flux-kontext-pro", &req).unwrap(), token());
        assert!(token_from_submit(&json!({"id":"x"}), "e", &req).is_err());
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
        assert!(matches!(read_poll(&t, 200, None, br#"{"id":"t1","status":"Task not found"}"#, 0, 500), Err(Error::Provider(p)) if p.code == "task-not-found"));
        assert!(matches!(read_poll(&t, 404, None, br#"{"id":"t1","status":"Task not found"}"#, 0, 500), Err(Error::Provider(p)) if p.code == "task-not-found"));
    }

    #[test]
    fn transient_poll_failures_retry() {
        assert!(matches!(read_poll(&token(), 500, None, b"oops", 0, 500), Ok(Status::Running(p)) if p.state.contains("500")));
        assert!(matches!(read_poll(&token(), 403, None, br#"{"detail":"Not authenticated"}"#, 0, 500), Err(Error::Unauthorized(m)) if m.contains("https://api.eu1.bfl.ai")));
    }

    #[test]
    fn submit_errors() {
        let v = br#"{"detail":[{"loc":["body","aspect_ratio"],"msg":"bad ratio","type":"value_error"}]}"#;
        assert!(matches!(map_submit_error(422, None, v, "flux-kontext-pro"), Error::InvalidInput(m) if m.contains("body.aspect_ratio: bad ratio")));
        let rl = br#"{"error":"rate_limit_exceeded","message":"Too many concurrent requests","retry_after":5}"#;
        assert!(matches!(map_submit_error(429, None, rl, "x"), Error::RateLimited(r) if r.retry_after_ms == Some(5000)));
        assert!(matches!(map_submit_error(429, Some(1000), rl, "x"), Error::RateLimited(r) if r.retry_after_ms == Some(1000)));
        assert!(matches!(map_submit_error(403, None, br#"{"detail":"Not authenticated"}"#, "x"), Error::Unauthorized(_)));
        assert!(matches!(map_submit_error(500, None, b"{}", "x"), Error::Provider(p) if p.code == "500"));
        assert!(matches!(map_submit_error(402, None, b"{}", "x"), Error::Provider(p) if p.code == "402"));
    }
}
