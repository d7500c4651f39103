//! OpenAI Videos API (Sora 2), strict. OpenAI shut it down on 2026-09-24; this keeps the contract
//! for compatible gateways and tests.
//!
//! Routes (all need `Authorization: Bearer <keys.openai>`, else 401 with OpenAI's envelope
//! `{"error":{"message","type","param","code"}}`):
//! - `POST /v1/videos` — `multipart/form-data` (the SDKs' encoding) or JSON. Fields: `prompt`
//!   (required, 1–32000 chars), `model` (`sora-2` default, `sora-2-pro`, their snapshots), `seconds`
//!   (a STRING: `"4"` default, `"8"`, `"12"`, `"16"`, `"20"`; a JSON number is `invalid_type`),
//!   `size` (`sora-2`: 720x1280 default, 1280x720; `sora-2-pro` adds 1024x1792, 1792x1024,
//!   1080x1920, 1920x1080), `input_reference` (a file part, or JSON `{"image_url": data URL}`;
//!   text where a file is expected → 400 `invalid_type`; an image not exactly `size` → 400
//!   "Inpaint image must match the requested width and height"). Unknown fields → 400
//!   `unknown_parameter`. Answers a `queued` video object with header `openai-poll-after-ms: 150`.
//! - `GET /v1/videos/{id}` — `queued` → `in_progress` (progress rising) → `completed` on the 2nd
//!   poll (or the Nth with `[fault:slow:N]`); `openai-poll-after-ms: 150` on every answer.
//! - `GET /v1/videos/{id}/content` — the MP4 (small, valid `ftyp` box), streamed in chunks;
//!   404 before completion.
//! - `DELETE /v1/videos/{id}` — `{"id","object":"video.deleted","deleted":true}`.
//!
//! Markers in the prompt: `[fault:422]` → 400 `invalid_request_error` (OpenAI's validation error);
//! `[fault:429]` → 429 `rate_limit_exceeded` with `retry-after-ms: 300` and `retry-after: 1`, once;
//! `[fault:500]` → 500 `server_error`, once (no video made); `[fault:malformed]` → 200 with
//! truncated JSON (the video exists and can be polled by its id);
//! `[fault:poll-5xx]` / `[fault:poll-5xx:503]` → every `GET /v1/videos/{id}` answers 500
//! `server_error` (or the given 5xx), forever; `[fault:poll-404-once]` → the first
//! `GET /v1/videos/{id}` answers 404 "Video with id … not found." (as a replica that has not seen
//! the new video yet), later ones are normal and the 404 does not count as a poll;
//! `[fault:hang]` → no answer; `[fault:moderated]` → 400 `moderation_blocked` at create;
//! `[fault:moderated:content]` → the video ends `failed` with `moderation_blocked`;
//! `[fault:failed]` → the video ends `failed` with `video_generation_failed`;
//! `[fault:model-not-found]` → 404 `model_not_found` (what the retired API answers);
//! `[fault:slow:N]` → completed on the Nth poll.

pub mod multipart;

use crate::ark::{imaging, markers, markers::Faults};
use crate::State;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The poll interval the emulator asks for.
pub const POLL_AFTER_MS: &str = "150";
const MODELS: [&str; 5] = ["sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08"];
const SECONDS: [&str; 5] = ["4", "8", "12", "16", "20"];
const SIZES: [&str; 2] = ["720x1280", "1280x720"];
const PRO_SIZES: [&str; 6] = ["720x1280", "1280x720", "1024x1792", "1792x1024", "1080x1920", "1920x1080"];
const FIELDS: [&str; 5] = ["prompt", "model", "seconds", "size", "input_reference"];

/// This provider's routes.
pub fn router() -> axum::Router<crate::State> {
    axum::Router::new()
        .route("/v1/videos", post(create))
        .route("/v1/videos/{id}", get(retrieve).delete(delete))
        .route("/v1/videos/{id}/content", get(content))
}

/// The 413 for a body over `limit` bytes on an OpenAI route, in OpenAI's envelope.
pub(crate) fn too_large(path: &str, limit: usize) -> Option<Response> {
    path.starts_with("/v1/videos").then(|| {
        let message = format!("The request body is too large; the limit is {limit} bytes.");
        oa_error(StatusCode::PAYLOAD_TOO_LARGE, &message, "invalid_request_error", None, Some("request_too_large"))
    })
}

fn oa_error(status: StatusCode, message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": kind, "param": param, "code": code}}))).into_response()
}

fn bad(message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    oa_error(StatusCode::BAD_REQUEST, message, "invalid_request_error", param, code)
}

fn quoted_list(items: &[&str]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    match q.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{}, and {last}", rest.join(", ")),
        _ => q.join(""),
    }
}

fn check_auth(state: &State, headers: &HeaderMap) -> Option<Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    match auth.and_then(|a| a.strip_prefix("Bearer ")) {
        None => Some(oa_error(StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error", None, None)),
        Some(k) if k != state.keys.openai => {
            let shown: String = k.chars().take(4).collect();
            Some(oa_error(StatusCode::UNAUTHORIZED, &format!("Incorrect API key provided: {shown}****. You can find your API key at https://platform.openai.com/account/api-keys."),
                "invalid_request_error", None, Some("invalid_api_key")))
        }
        Some(_) => None,
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn with_poll_header(mut r: Response) -> Response {
    r.headers_mut().insert("openai-poll-after-ms", POLL_AFTER_MS.parse().unwrap());
    r
}

/// A field of the create request: text, or a file's bytes.
enum Field {
    Text(String),
    File(Vec<u8>),
}

/// Read the create body into fields, or answer why not.
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself, built once per request
fn read_fields(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, Field>, Response> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut fields = HashMap::new();
    if let Some(b) = multipart::boundary(ct) {
        let parts = multipart::parse(body, &b).map_err(|e| bad(&format!("Could not parse multipart form: {e}"), None, None))?;
        for p in parts {
            let f = if p.filename.is_some() { Field::File(p.data) } else { Field::Text(String::from_utf8_lossy(&p.data).into_owned()) };
            fields.insert(p.name, f);
        }
    } else if ct.starts_with("application/json") {
        let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) else {
            return Err(bad("We could not parse the JSON body of your request.", None, None));
        };
        for (k, v) in o {
            let f = match (k.as_str(), &v) {
                (_, Value::String(s)) => Field::Text(s.clone()),
                ("input_reference", Value::Object(r)) => {
                    let url = r.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                        bad("Invalid input_reference: exactly one of 'image_url' or 'file_id' is required; the emulator supports 'image_url' data URLs.", Some("input_reference"), Some("invalid_value"))
                    })?;
                    let data = url.split_once(";base64,").filter(|(h, _)| h.starts_with("data:image/")).and_then(|(_, d)| STANDARD.decode(d).ok());
                    Field::File(data.ok_or_else(|| bad("input_reference.image_url must be a base64 data URL (the emulator has no network).", Some("input_reference"), Some("invalid_value")))?)
                }
                ("seconds", Value::Number(_)) => {
                    return Err(bad(&format!("Invalid type for 'seconds': expected one of {}, but got an integer instead.", quoted_list(&SECONDS)), Some("seconds"), Some("invalid_type")));
                }
                (k, _) => return Err(bad(&format!("Invalid type for '{k}': expected a string."), Some(k), Some("invalid_type"))),
            };
            fields.insert(k, f);
        }
    } else {
        return Err(bad("Invalid Content-Type header: use multipart/form-data or application/json.", None, None));
    }
    Ok(fields)
}

#[allow(clippy::result_large_err)] // `text` below answers with the HTTP error itself
async fn create(AxState(state): AxState<State>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = check_auth(&state, &headers) {
        return r;
    }
    let fields = match read_fields(&headers, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return bad(&format!("Unknown parameter: '{unknown}'."), Some(unknown), Some("unknown_parameter"));
    }
    let text = |k: &str| -> Result<Option<&str>, Response> {
        match fields.get(k) {
            None => Ok(None),
            Some(Field::Text(t)) => Ok(Some(t.as_str())),
            Some(Field::File(_)) => Err(bad(&format!("Invalid type for '{k}': expected a string, but got a file instead."), Some(k), Some("invalid_type"))),
        }
    };
    let prompt = match text("prompt") {
        Ok(Some(p)) if !p.is_empty() && p.chars().count() <= 32000 => p.to_string(),
        Ok(Some(_)) => return bad("Invalid 'prompt': string must be between 1 and 32000 characters.", Some("prompt"), Some("invalid_value")),
        Ok(None) => return bad("Missing required parameter: 'prompt'.", Some("prompt"), Some("missing_required_parameter")),
        Err(r) => return r,
    };
    let faults = Faults::of(&prompt);
    if faults.has("hang") {
        markers::hang().await;
    }
    if faults.has("429") && markers::once(&state, "openai", "429", &body) {
        let mut r = oa_error(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached for videos per minute. Please try again later.", "requests", None, Some("rate_limit_exceeded"));
        r.headers_mut().insert("retry-after-ms", "300".parse().unwrap());
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    if faults.has("500") && markers::once(&state, "openai", "500", &body) {
        return oa_error(StatusCode::INTERNAL_SERVER_ERROR, "The server had an error while processing your request. Sorry about that!", "server_error", None, None);
    }
    let model = match text("model") {
        Ok(m) => m.unwrap_or("sora-2").to_string(),
        Err(r) => return r,
    };
    if faults.has("model-not-found") {
        return oa_error(StatusCode::NOT_FOUND, &format!("The model `{model}` does not exist or you do not have access to it."), "invalid_request_error", None, Some("model_not_found"));
    }
    if !MODELS.contains(&model.as_str()) {
        return bad(&format!("Invalid value: '{model}'. Supported values are: {}.", quoted_list(&MODELS)), Some("model"), Some("invalid_value"));
    }
    if faults.has("422") {
        return bad("Invalid request: rejected by [fault:422].", Some("prompt"), Some("invalid_value"));
    }
    if faults.has("moderated") && faults.arg("moderated") != Some("content") {
        return bad("Your request was blocked by our moderation system.", None, Some("moderation_blocked"));
    }
    let seconds = match text("seconds") {
        Ok(s) => s.unwrap_or("4").to_string(),
        Err(r) => return r,
    };
    if !SECONDS.contains(&seconds.as_str()) {
        return bad(&format!("Invalid value: '{seconds}'. Supported values are: {}.", quoted_list(&SECONDS)), Some("seconds"), Some("invalid_value"));
    }
    let sizes: &[&str] = if model.starts_with("sora-2-pro") { &PRO_SIZES } else { &SIZES };
    let size = match text("size") {
        Ok(s) => s.unwrap_or("720x1280").to_string(),
        Err(r) => return r,
    };
    if !sizes.contains(&size.as_str()) {
        return bad(&format!("Invalid value: '{size}'. Supported values are: {}.", quoted_list(sizes)), Some("size"), Some("invalid_value"));
    }
    let (w, h) = size.split_once('x').map(|(a, b)| (a.parse::<u32>().unwrap_or(0), b.parse::<u32>().unwrap_or(0))).unwrap_or((0, 0));
    match fields.get("input_reference") {
        None => {}
        Some(Field::Text(_)) => {
            return bad("Invalid type for 'input_reference': expected a file, but got a string instead.", Some("input_reference"), Some("invalid_type"));
        }
        Some(Field::File(bytes)) => match imaging::decode(bytes) {
            Err(e) => return bad(&format!("Invalid input_reference: {e}."), Some("input_reference"), Some("invalid_image")),
            Ok(img) if (img.width(), img.height()) != (w, h) => {
                return bad("Inpaint image must match the requested width and height", None, None);
            }
            Ok(_) => {}
        },
    }
    let id = state.next_id("video_");
    let video = json!({
        "id": id, "object": "video", "model": model, "status": "queued", "progress": 0,
        "created_at": now_s(), "completed_at": null, "expires_at": null, "prompt": prompt,
        "size": size, "seconds": seconds, "remixed_from_video_id": null, "error": null,
    });
    let outcome = if faults.has("failed") {
        "failed"
    } else if faults.arg("moderated") == Some("content") {
        "moderated"
    } else {
        "completed"
    };
    state.put_job(&format!("openai:{id}"), json!({
        "video": video, "polls": 0, "polls_needed": faults.slow().unwrap_or(2).max(1), "outcome": outcome, "deleted": false,
        "poll_5xx": faults.has("poll-5xx").then(|| faults.arg("poll-5xx").and_then(|a| a.parse::<u16>().ok()).filter(|c| (500..600).contains(c)).unwrap_or(500)),
        "poll_404_once": faults.has("poll-404-once"),
    }));
    if faults.has("malformed") {
        let t = video.to_string();
        return with_poll_header((StatusCode::OK, [("content-type", "application/json")], t[..t.len() / 2].to_string()).into_response());
    }
    with_poll_header((StatusCode::OK, axum::Json(video)).into_response())
}

fn not_found(id: &str) -> Response {
    oa_error(StatusCode::NOT_FOUND, &format!("Video with id '{id}' not found."), "invalid_request_error", None, None)
}

fn record(state: &State, id: &str) -> Option<Value> {
    state.job(&format!("openai:{id}")).filter(|r| r["deleted"] != json!(true))
}

async fn retrieve(AxState(state): AxState<State>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = check_auth(&state, &headers) {
        return r;
    }
    let Some(before) = record(&state, &id) else {
        return not_found(&id);
    };
    if let Some(code) = before["poll_5xx"].as_u64() {
        let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return oa_error(status, "The server had an error while processing your request. Sorry about that!", "server_error", None, None);
    }
    if before["poll_404_once"] == json!(true) {
        state.update_job(&format!("openai:{id}"), |r| r["poll_404_once"] = json!(false));
        return not_found(&id);
    }
    let rec = state
        .update_job(&format!("openai:{id}"), |r| {
            let status = r["video"]["status"].as_str().unwrap_or("").to_string();
            if status == "completed" || status == "failed" {
                return;
            }
            let polls = r["polls"].as_u64().unwrap_or(0) + 1;
            let needed = r["polls_needed"].as_u64().unwrap_or(2);
            r["polls"] = json!(polls);
            if polls < needed {
                r["video"]["status"] = json!("in_progress");
                r["video"]["progress"] = json!((polls * 100 / needed).min(99));
                return;
            }
            match r["outcome"].as_str() {
                Some("failed") => {
                    r["video"]["status"] = json!("failed");
                    r["video"]["error"] = json!({"code": "video_generation_failed", "message": "Video generation failed ([fault:failed])."});
                }
                Some("moderated") => {
                    r["video"]["status"] = json!("failed");
                    r["video"]["error"] = json!({"code": "moderation_blocked", "message": "The generated video was blocked by our moderation system."});
                }
                _ => {
                    r["video"]["status"] = json!("completed");
                    r["video"]["progress"] = json!(100);
                    r["video"]["completed_at"] = json!(now_s());
                    r["video"]["expires_at"] = json!(now_s() + 3600);
                }
            }
        })
        .expect("checked above");
    with_poll_header((StatusCode::OK, axum::Json(rec["video"].clone())).into_response())
}

/// A small MP4: `ftyp` (isom), `free`, and an `mdat` whose payload names the video.
pub fn mp4_bytes(id: &str, seconds: &str, size: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&24u32.to_be_bytes());
    out.extend_from_slice(b"ftypisom");
    out.extend_from_slice(&0x200u32.to_be_bytes());
    out.extend_from_slice(b"isomiso2");
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend_from_slice(b"free");
    let mut payload = format!("atelier emulator video {id} {seconds}s {size}\n").into_bytes();
    while payload.len() < 4096 {
        payload.extend_from_within(..payload.len().min(4096 - payload.len()));
    }
    out.extend_from_slice(&(8 + payload.len() as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    out.extend_from_slice(&payload);
    out
}

async fn content(AxState(state): AxState<State>, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(r) = check_auth(&state, &headers) {
        return r;
    }
    let Some(rec) = record(&state, &id) else { return not_found(&id) };
    if let Some(v) = q.get("variant").filter(|v| v.as_str() != "video") {
        return bad(&format!("Invalid value: '{v}'. The emulator serves only the 'video' variant."), Some("variant"), Some("invalid_value"));
    }
    if rec["video"]["status"] != "completed" {
        return oa_error(StatusCode::NOT_FOUND, &format!("Video '{id}' is not ready yet; poll GET /v1/videos/{id} until its status is 'completed'."), "invalid_request_error", None, None);
    }
    let bytes = mp4_bytes(&id, rec["video"]["seconds"].as_str().unwrap_or("4"), rec["video"]["size"].as_str().unwrap_or(""));
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes.chunks(1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let stream = futures_util::stream::iter(chunks);
    (StatusCode::OK, [("content-type", "video/mp4")], Body::from_stream(stream)).into_response()
}

async fn delete(AxState(state): AxState<State>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = check_auth(&state, &headers) {
        return r;
    }
    if record(&state, &id).is_none() {
        return not_found(&id);
    }
    state.update_job(&format!("openai:{id}"), |r| r["deleted"] = json!(true));
    (StatusCode::OK, axum::Json(json!({"id": id, "object": "video.deleted", "deleted": true}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp4_has_an_ftyp_box() {
        let b = mp4_bytes("video_1", "4", "720x1280");
        assert_eq!(&b[4..8], b"ftyp");
        assert!(b.len() > 4096);
        assert_eq!(quoted_list(&["4", "8", "12"]), "'4', '8', and '12'");
    }
}
