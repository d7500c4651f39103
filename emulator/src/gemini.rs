//! Google's Gemini API (image models on `generateContent`) and Veo (`predictLongRunning`), strict.
//!
//! # Routes (`{ver}` is `v1beta` or `v1`)
//! - `POST /{ver}/models/{model}:generateContent` — image edit; answers with a real image: the
//!   first input image inverted and cover-fitted to the model's output size for the requested
//!   `aspectRatio`/`imageSize` (PNG; the ratio closest to the input when none is given).
//! - `POST /{ver}/models/{model}:predictLongRunning` — Veo; answers `{"name": "models/{model}/operations/{id}"}`.
//! - `GET /{ver}/models/{model}/operations/{id}` — the operation: `{"name"}` on the first poll,
//!   `{"name", "done": false}` after, `done: true` on the 2nd poll by default.
//! - `GET /{ver}/files/{id}:download?alt=media` — needs the key; `302` to
//!   `{alt_url}/gemini-delivery/{id}?sig=...` on the other listener, which needs no key and
//!   streams `video/mp4` bytes (an `ftyp` box, then an `mdat` box; 4 KiB unless `[size:...]`).
//!
//! Auth: header `x-goog-api-key` (or `?key=`) must equal `State::keys.gemini`; a wrong key gets
//! `400 INVALID_ARGUMENT` with `ErrorInfo.reason = API_KEY_INVALID`, a missing one
//! `403 PERMISSION_DENIED` (what Google answers for unregistered callers).
//!
//! # What is rejected (Google's error envelope, `error.{code,message,status,details}`)
//! Unknown model → 404 NOT_FOUND ("is not found for API version"), retired preview ids → 404
//! ("is no longer available"), a model on the wrong method → 404; bare MIME types (`png`) →
//! 400 "Unsupported MIME type: png"; bad base64 or undecodable images; `candidateCount > 1`;
//! aspect ratios, `imageSize` values (case-sensitive) and thinking levels the model lacks; more
//! images than the model takes (3 on 2.5 Flash Image, 14 on 3.x); unknown fields inside parts and
//! configs (proto-JSON is strict there; unknown top-level keys are ignored, as Google does);
//! Veo: `inlineData` images, a string `durationSeconds`, durations/resolutions/ratios the model
//! lacks, 1080p/4k under 8 s, Vertex-only parameters (`seed`, `generateAudio`, ...).
//!
//! # Fault markers, anywhere in the prompt text
//! - `[fault:429]` / `[fault:429:0.2s]` — once per distinct prompt, `429 RESOURCE_EXHAUSTED` with
//!   QuotaFailure + `RetryInfo.retryDelay` (default `"1s"`), then success.
//! - `[fault:429-always]` / `[fault:429-always:0.2s]` — always 429.
//! - `[fault:429-daily]` — always 429 for a per-day quota: QuotaFailure `...PerDay...`, no
//!   `RetryInfo` (retrying before midnight Pacific is futile).
//! - `[fault:503]` (once per prompt) / `[fault:503-always]` — `503 UNAVAILABLE` "The model is overloaded".
//! - `[fault:500]` (once per prompt) — `500 INTERNAL` "Internal error encountered.", nothing started.
//! - `[fault:504]` (once per prompt) — `504 DEADLINE_EXCEEDED` "Deadline exceeded.", nothing started.
//! - `[fault:malformed]` — `200` with a body that is not JSON. On `predictLongRunning` the
//!   operation IS started first (it runs and can be polled by its name, as a billed job would);
//!   the answer is the first half of `{"name": ...}`.
//! - `[fault:hang]` — never answers (sleeps 600 s; both methods).
//! - `[fault:blocked]` — `200` with `promptFeedback.blockReason = "PROHIBITED_CONTENT"`, no candidates.
//! - `[fault:image-safety]` — `200`, candidate `finishReason: IMAGE_SAFETY`, no content.
//! - `[fault:text-only]` — `200`, one text part and `finishReason: STOP`, no image.
//! - `[fault:thought]` — thought text and a 64×64 thought image (`"thought": true`) before the real one.
//! - `[fault:jpeg-as-png]` — the image is JPEG bytes declared `image/png`.
//! - Veo: `[fault:rai]` (done, `raiMediaFilteredCount`/`Reasons`, no sample),
//!   `[fault:op-error]` / `[fault:op-error:3]` (done with `error{code: 13|3, message}`),
//!   `[fault:slow-op:N]` (done on poll N), `[fault:expired]` (the download answers 404, as after
//!   Google's 2-day retention), `[size:50MB]` (video size; `KB`/`MB`/`GB` are powers of 1000,
//!   `KiB`/`MiB`/`GiB` of 1024),
//!   `[fault:poll-5xx]` / `[fault:poll-5xx:503]` (every GET of the operation answers `500 INTERNAL`,
//!   or the given 5xx in Google's envelope — `503 UNAVAILABLE`, `504 DEADLINE_EXCEEDED` — forever;
//!   the operation never advances), `[fault:poll-404-once]` (the first GET of the operation
//!   answers `404 NOT_FOUND` "Operation ... not found.", as right after the start on an eventually
//!   consistent backend; later polls are normal and the 404 does not count as a poll).
//!
//! "Once" faults are counted per fault kind and prompt text in [`State`] (`put_job`), so the
//! retry of the same request succeeds.

mod images;
mod models;
mod veo;

use crate::State;
use axum::Router;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The API versions served.
const VERSIONS: &[&str] = &["v1beta", "v1"];

/// This provider's routes.
pub fn router() -> Router<State> {
    let mut router = Router::new().route("/gemini-delivery/{file}", get(veo::deliver));
    for ver in VERSIONS {
        router = router
            .route(&format!("/{ver}/models/{{action}}"), post(model_action))
            .route(&format!("/{ver}/models/{{model}}/operations/{{op}}"), get(veo::get_operation))
            .route(&format!("/{ver}/files/{{action}}"), get(veo::download));
    }
    router
}

/// `POST /{ver}/models/{model}:{method}`: dispatch on the method after checking key and model.
async fn model_action(
    AxState(state): AxState<State>,
    Path(action): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(denied) = check_key(&state, &headers, &query) {
        return denied.into_response();
    }
    let Some((model, method)) = action.split_once(':') else {
        return not_found(&format!("models/{action} is not found for API version v1beta, or is not supported for this method.")).into_response();
    };
    let found = models::lookup(model);
    match (method, found) {
        (_, models::Lookup::Retired) => {
            not_found(&format!("models/{model} is no longer available. Please migrate to a newer model.")).into_response()
        }
        ("generateContent", models::Lookup::Image(m)) => images::generate_content(&state, model, m, &body).await,
        ("predictLongRunning", models::Lookup::Video(m)) => veo::predict_long_running(&state, model, m, &body).await,
        ("generateContent" | "predictLongRunning", _) => not_found(&format!(
            "models/{model} is not found for API version v1beta, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."
        ))
        .into_response(),
        _ => not_found(&format!("Method {method} is not found for models/{model}.")).into_response(),
    }
}

/// Check `x-goog-api-key` (or `?key=`) against the emulator's Gemini key.
pub(crate) fn check_key(state: &State, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<(), Reject> {
    let given = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query.get("key").cloned());
    match given {
        Some(key) if key == state.keys.gemini => Ok(()),
        Some(_) => Err(Reject {
            code: StatusCode::BAD_REQUEST,
            message: "API key not valid. Please pass a valid API key.".into(),
            details: vec![json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}})],
        }),
        None => Err(Reject {
            code: StatusCode::FORBIDDEN,
            message: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.".into(),
            details: vec![],
        }),
    }
}

/// The 413 for a body over `limit` bytes on a Gemini/Veo route: Google's envelope with the
/// message its front end gives for oversized payloads.
pub(crate) fn too_large(path: &str, limit: usize) -> Option<Response> {
    let ours = VERSIONS.iter().any(|v| path.starts_with(&format!("/{v}/models/")) || path.starts_with(&format!("/{v}/files/")));
    ours.then(|| google_error(StatusCode::PAYLOAD_TOO_LARGE, &format!("Request payload size exceeds the limit: {limit} bytes."), vec![]))
}

/// Google's error envelope with the canonical status string for the HTTP code.
pub(crate) fn google_error(code: StatusCode, message: &str, details: Vec<Value>) -> Response {
    let status = match code.as_u16() {
        // google.rpc has no code of its own for 413; an oversized payload is an invalid argument.
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    let mut error = json!({"code": code.as_u16(), "message": message, "status": status});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    (code, [("content-type", "application/json; charset=UTF-8")], json!({"error": error}).to_string()).into_response()
}

/// A refusal in Google's envelope; small, so validation can pass it around with `?`.
pub(crate) struct Reject {
    code: StatusCode,
    message: String,
    details: Vec<Value>,
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        google_error(self.code, &self.message, self.details)
    }
}

/// `400 INVALID_ARGUMENT`.
pub(crate) fn invalid(message: &str) -> Reject {
    Reject { code: StatusCode::BAD_REQUEST, message: message.to_string(), details: vec![] }
}

/// `404 NOT_FOUND`.
pub(crate) fn not_found(message: &str) -> Reject {
    Reject { code: StatusCode::NOT_FOUND, message: message.to_string(), details: vec![] }
}

/// A JSON `200`.
pub(crate) fn ok_json(value: &Value) -> Response {
    (StatusCode::OK, [("content-type", "application/json; charset=UTF-8")], value.to_string()).into_response()
}

/// The `[fault:...]` and `[size:...]` markers of a prompt.
pub(crate) struct Markers {
    /// `(kind, argument)` of each `[fault:kind]` / `[fault:kind:arg]`.
    faults: Vec<(String, Option<String>)>,
    /// The prompt text, the key for "once" faults.
    prompt: String,
}

impl Markers {
    /// Read the markers out of a prompt.
    pub(crate) fn parse(prompt: &str) -> Markers {
        let mut faults = Vec::new();
        let mut rest = prompt;
        while let Some(start) = rest.find("[fault:") {
            let after = &rest[start + "[fault:".len()..];
            let Some(end) = after.find(']') else { break };
            let body = &after[..end];
            let (kind, arg) = match body.split_once(':') {
                Some((k, a)) => (k.to_string(), Some(a.to_string())),
                None => (body.to_string(), None),
            };
            faults.push((kind, arg));
            rest = &after[end..];
        }
        Markers { faults, prompt: prompt.to_string() }
    }

    /// Whether `[fault:kind...]` is present, and its argument.
    pub(crate) fn get(&self, kind: &str) -> Option<Option<&str>> {
        self.faults.iter().find(|(k, _)| k == kind).map(|(_, a)| a.as_deref())
    }

    /// Whether `kind` is present (with or without an argument).
    pub(crate) fn has(&self, kind: &str) -> bool {
        self.get(kind).is_some()
    }

    /// For a "once" fault: true the first time this prompt carries it, false after.
    pub(crate) fn first_time(&self, state: &State, kind: &str) -> bool {
        let key = format!("gemini-fault:{kind}:{}", self.prompt);
        if state.update_job(&key, |v| *v = json!(v.as_u64().unwrap_or(0) + 1)).is_some() {
            return false;
        }
        state.put_job(&key, json!(1));
        true
    }

    /// `[size:50MB]` in bytes.
    pub(crate) fn size_bytes(&self) -> Option<u64> {
        let start = self.prompt.find("[size:")? + "[size:".len();
        let end = self.prompt[start..].find(']')? + start;
        parse_size(&self.prompt[start..end])
    }
}

/// `50MB` → 50_000_000, `2MiB` → 2_097_152, `4096` → 4096.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let number: f64 = text[..digits_end].parse().ok()?;
    let unit = match text[digits_end..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * unit) as u64)
}

/// The transport faults shared by both methods, checked before the request is processed
/// (`long_running`: `predictLongRunning`, whose malformed answer comes after the operation starts).
/// `None` when the request should proceed.
pub(crate) async fn transport_fault(state: &State, markers: &Markers, model: &str, long_running: bool) -> Option<Response> {
    if markers.has("hang") {
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        return Some(google_error(StatusCode::GATEWAY_TIMEOUT, "Deadline exceeded.", vec![]));
    }
    for (kind, always) in [("429-always", true), ("429", false)] {
        if let Some(arg) = markers.get(kind)
            && (always || markers.first_time(state, kind))
        {
            return Some(rate_limited(model, arg.unwrap_or("1s")));
        }
    }
    if markers.has("429-daily") {
        return Some(daily_quota_exhausted(model));
    }
    for (kind, always) in [("503-always", true), ("503", false)] {
        if markers.has(kind) && (always || markers.first_time(state, kind)) {
            return Some(google_error(StatusCode::SERVICE_UNAVAILABLE, "The model is overloaded. Please try again later.", vec![]));
        }
    }
    if markers.has("500") && markers.first_time(state, "500") {
        return Some(google_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error encountered.", vec![]));
    }
    if markers.has("504") && markers.first_time(state, "504") {
        return Some(google_error(StatusCode::GATEWAY_TIMEOUT, "Deadline exceeded.", vec![]));
    }
    // Veo answers its malformed 200 after starting the operation (see `veo::predict_long_running`).
    if markers.has("malformed") && !long_running {
        return Some((StatusCode::OK, [("content-type", "application/json; charset=UTF-8")], "{\"candidates\": [{\"content\": ").into_response());
    }
    None
}

/// The 429 Google sends for a per-minute quota, with `RetryInfo`.
fn rate_limited(model: &str, delay: &str) -> Response {
    google_error(
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. Please retry in {delay}."
        ),
        vec![
            json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": "10"}]}),
            json!({"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}),
            json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}),
        ],
    )
}

/// The 429 of a used-up per-day quota: no `RetryInfo`, only the quota and a help link.
fn daily_quota_exhausted(model: &str) -> Response {
    google_error(
        StatusCode::TOO_MANY_REQUESTS,
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
        vec![
            json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
                "quotaId": "GenerateRequestsPerDayPerProjectPerModel",
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": "250"}]}),
            json!({"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}),
        ],
    )
}

/// Proto-JSON accepts both `lowerCamel` and `snake_case` field names; normalise to camel.
pub(crate) fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Reject fields a message does not have, the way Google's proto-JSON parser does.
pub(crate) fn check_fields(object: &serde_json::Map<String, Value>, known: &[&str], at: &str) -> Result<(), Reject> {
    for key in object.keys() {
        if !known.contains(&camel(key).as_str()) {
            return Err(invalid(&format!(
                "Invalid JSON payload received. Unknown name \"{key}\" at '{at}': Cannot find field."
            )));
        }
    }
    Ok(())
}

/// A field by its camel or snake name.
pub(crate) fn field<'a>(object: &'a serde_json::Map<String, Value>, camel_name: &str) -> Option<&'a Value> {
    object.get(camel_name).or_else(|| {
        let snake: String = camel_name
            .chars()
            .flat_map(|c| if c.is_ascii_uppercase() { vec!['_', c.to_ascii_lowercase()] } else { vec![c] })
            .collect();
        object.get(&snake)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_sizes_parse() {
        let m = Markers::parse("a cat [fault:429:0.2s] [fault:thought] [size:50MB]");
        assert_eq!(m.get("429"), Some(Some("0.2s")));
        assert_eq!(m.get("thought"), Some(None));
        assert!(!m.has("503"));
        assert_eq!(m.size_bytes(), Some(50_000_000));
        assert_eq!(parse_size("2MiB"), Some(2 * 1024 * 1024));
        assert_eq!(parse_size("12 parsecs"), None);
    }

    #[test]
    fn field_names_normalise() {
        assert_eq!(camel("inline_data"), "inlineData");
        assert_eq!(camel("mimeType"), "mimeType");
        let o = json!({"mime_type": "image/png"});
        assert_eq!(field(o.as_object().unwrap(), "mimeType"), Some(&json!("image/png")));
    }
}
