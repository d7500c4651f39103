//! Black Forest Labs API (FLUX.1 Kontext [pro]/[max], FLUX.1 Fill [pro]), strict.
//!
//! Routes (both listeners serve them; URLs handed out point at the other listener, `alt_url`,
//! playing BFL's regional API host and its delivery host):
//! - `POST /v1/flux-kontext-pro`, `POST /v1/flux-kontext-max` — `x-key: <keys.bfl>` (else 403
//!   `{"detail":"Not authenticated"}`); JSON checked like FastAPI does (422 `{"detail":[{loc,msg,type}]}`):
//!   `prompt` string (required), `input_image`, `input_image_2..4` raw base64 (or null), `seed` int,
//!   `aspect_ratio` `W:H` between 21:9 and 9:21, `output_format` jpeg/png/webp (default png),
//!   `safety_tolerance` int 0–6, `prompt_upsampling` bool. At most 24 active tasks per model (6 for
//!   kontext-max), else 429. Answer: `{"id","polling_url":"{alt_url}/v1/get_result?id=…","cost",
//!   "input_mp","output_mp"}`. Output: the input's size when no aspect ratio is given (1024x1024
//!   without input), else ~1 MP at that ratio (multiples of 32); inverted and tinted.
//! - `POST /v1/flux-pro-1.0-fill` — `image` (required) and `mask` (raw base64, same size as the
//!   image, white = repaint), `steps` 15–50, `guidance` 1.5–100, `output_format` (default jpeg),
//!   `safety_tolerance`, `seed`, `prompt_upsampling`. Output: the image with the masked area inverted.
//! - `GET /v1/get_result?id=…` — `x-key` required. `Pending` (progress rising) until the task's
//!   poll count is reached (2 by default), then `Ready` with `result.sample` =
//!   `{alt_url}/bfl-delivery/{id}/sample.{ext}?se=<ISO expiry>&sp=r&sv=…&sr=b&sig=<sig>` (an Azure
//!   SAS-style URL), valid 10 minutes.
//!   Unknown ids → `{"id","status":"Task not found"}`.
//! - `GET /bfl-delivery/{id}/{file}?se=&sig=` — no key needed. Expired → 403 with Azure Blob
//!   Storage's XML `AuthenticationFailed` body; bad signature → 403 `AuthenticationFailed`;
//!   unknown → 404 `BlobNotFound`.
//!
//! Markers in the prompt: `[fault:422]` → 422 detail list; `[fault:429]` → 429 with
//! `Retry-After: 1`, once; `[fault:500]` → the first poll of the task answers 500;
//! `[fault:submit-500]` → the submit answers 500 `{"detail":"Internal Server Error"}` once per
//! request body, before any task is made (what FastAPI answers when a handler raises);
//! `[fault:poll-5xx]` / `[fault:poll-5xx:503]` → every poll of the task answers 500 (or the given
//! 5xx) with FastAPI's `{"detail": …}`, forever; `[fault:poll-404-once]` → the first poll answers
//! 404 `{"id","status":"Task not found",…}` (a regional host that has not seen the task yet), later
//! polls are normal; `[fault:malformed]` → submit answers 200 with truncated JSON, the task
//! exists and can be polled by its id; `[fault:hang]` → submit never answers; `[fault:moderated]` →
//! `Request Moderated`; `[fault:moderated:content]` → `Content Moderated` (when it would be Ready);
//! `[fault:failed]` → `Error`; `[fault:slow:N]` → Ready on the Nth poll; `[fault:expired]` → the
//! sample URL is already expired when handed out; `[fault:expired:MS]` → it expires after MS ms.

use crate::ark::{imaging, markers, markers::Faults};
use crate::State;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// How long `result.sample` works.
const DELIVERY_LIFETIME_MS: u64 = 10 * 60 * 1000;
/// Polls before a task is Ready, unless `[fault:slow:N]`.
const DEFAULT_POLLS: u64 = 2;

/// This provider's routes.
pub fn router() -> axum::Router<crate::State> {
    axum::Router::new()
        .route("/v1/flux-kontext-pro", post(|s, h, b| submit(s, h, b, "flux-kontext-pro")))
        .route("/v1/flux-kontext-max", post(|s, h, b| submit(s, h, b, "flux-kontext-max")))
        .route("/v1/flux-pro-1.0-fill", post(|s, h, b| submit(s, h, b, "flux-pro-1.0-fill")))
        .route("/v1/get_result", get(get_result))
        .route("/bfl-delivery/{id}/{file}", get(delivery))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The 413 for a body over `limit` bytes on a BFL API route: FastAPI's `{"detail": …}`.
pub(crate) fn too_large(path: &str, limit: usize) -> Option<Response> {
    let ours = path.starts_with("/v1/flux-") || path.starts_with("/v1/get_result");
    ours.then(|| detail(StatusCode::PAYLOAD_TOO_LARGE, &format!("Request body too large: the limit is {limit} bytes")))
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"detail": text}))).into_response()
}

/// One FastAPI validation item.
fn item(field: &str, kind: &str, msg: &str, input: &Value) -> Value {
    json!({"type": kind, "loc": ["body", field], "msg": msg, "input": input})
}

fn check_key(state: &State, headers: &HeaderMap) -> Option<Response> {
    match headers.get("x-key").and_then(|v| v.to_str().ok()) {
        None => Some(detail(StatusCode::FORBIDDEN, "Not authenticated")),
        Some(k) if k != state.keys.bfl => Some(detail(StatusCode::FORBIDDEN, "Not authenticated - Invalid Authentication")),
        Some(_) => None,
    }
}

/// Decode a raw-base64 image field, adding a validation item when it is not one.
fn image_field(body: &Map<String, Value>, field: &str, errors: &mut Vec<Value>) -> Option<image::DynamicImage> {
    let v = body.get(field)?;
    if v.is_null() {
        return None;
    }
    let Some(text) = v.as_str() else {
        errors.push(item(field, "string_type", "Input should be a valid string", v));
        return None;
    };
    if text.starts_with("http://") || text.starts_with("https://") {
        errors.push(item(field, "value_error", "Value error, could not download the image URL (the emulator has no network)", &json!(text)));
        return None;
    }
    let decoded = STANDARD.decode(text).map_err(|e| e.to_string()).and_then(|b| imaging::decode(&b));
    match decoded {
        Ok(img) => Some(img),
        Err(e) => {
            errors.push(item(field, "value_error", &format!("Value error, invalid base64 image: {e}"), &json!("<image>")));
            None
        }
    }
}

fn int_field(body: &Map<String, Value>, field: &str, range: Option<(i64, i64)>, errors: &mut Vec<Value>) -> Option<i64> {
    let v = body.get(field).filter(|v| !v.is_null())?;
    let Some(i) = v.as_i64() else {
        errors.push(item(field, "int_type", "Input should be a valid integer", v));
        return None;
    };
    if let Some((lo, hi)) = range {
        if i < lo {
            errors.push(item(field, "greater_than_equal", &format!("Input should be greater than or equal to {lo}"), v));
        } else if i > hi {
            errors.push(item(field, "less_than_equal", &format!("Input should be less than or equal to {hi}"), v));
        }
    }
    Some(i)
}

/// The concurrency counter of one endpoint: +1 on submit, −1 when a task leaves Pending.
fn active_key(endpoint: &str) -> String {
    format!("bfl:active:{endpoint}")
}

fn signature(id: &str, expiry: u64) -> String {
    let mut h = DefaultHasher::new();
    (id, expiry, "emulator-delivery-secret").hash(&mut h);
    format!("{:016x}", h.finish())
}

async fn submit(AxState(state): AxState<State>, headers: HeaderMap, body: Bytes, endpoint: &'static str) -> Response {
    if let Some(r) = check_key(&state, &headers) {
        return r;
    }
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let Ok(Value::Object(req)) = parsed else {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error", "input": {}}]}))).into_response();
    };
    let fill = endpoint.ends_with("fill");
    let mut errors = Vec::new();
    let prompt = match req.get("prompt") {
        Some(Value::String(p)) => p.clone(),
        None | Some(Value::Null) if fill => String::new(),
        None => {
            errors.push(json!({"type": "missing", "loc": ["body", "prompt"], "msg": "Field required", "input": Value::Object(req.clone())}));
            String::new()
        }
        Some(v) => {
            errors.push(item("prompt", "string_type", "Input should be a valid string", v));
            String::new()
        }
    };
    let faults = Faults::of(&prompt);
    if faults.has("hang") {
        markers::hang().await;
    }
    if faults.has("429") && markers::once(&state, "bfl", "429", &body) {
        let mut r = detail(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded: too many active tasks. Wait for a task to finish.");
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    if faults.has("submit-500") && markers::once(&state, "bfl", "submit-500", &body) {
        return detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    if faults.has("422") {
        errors.push(item("prompt", "value_error", "Value error, rejected by [fault:422]", &json!(prompt)));
    }
    let seed = int_field(&req, "seed", None, &mut errors);
    int_field(&req, "safety_tolerance", Some((0, 6)), &mut errors);
    if let Some(v) = req.get("prompt_upsampling").filter(|v| !v.is_null() && !v.is_boolean()) {
        errors.push(item("prompt_upsampling", "bool_type", "Input should be a valid boolean", v));
    }
    let output_format = match req.get("output_format") {
        None | Some(Value::Null) => if fill { "jpeg" } else { "png" }.to_string(),
        Some(Value::String(f)) if ["jpeg", "png", "webp"].contains(&f.as_str()) => f.clone(),
        Some(v) => {
            errors.push(item("output_format", "enum", "Input should be 'jpeg', 'png' or 'webp'", v));
            "png".into()
        }
    };
    let (source, size, mask) = if fill {
        let image = image_field(&req, "image", &mut errors);
        if image.is_none() && !req.contains_key("image") {
            errors.push(json!({"type": "missing", "loc": ["body", "image"], "msg": "Field required", "input": {}}));
        }
        let mask = image_field(&req, "mask", &mut errors);
        if let (Some(i), Some(m)) = (&image, &mask)
            && (i.width(), i.height()) != (m.width(), m.height())
        {
            errors.push(item("mask", "value_error", &format!(
                "Value error, mask is {}x{} but image is {}x{}: they must have the same dimensions", m.width(), m.height(), i.width(), i.height()
            ), &json!("<image>")));
        }
        int_field(&req, "steps", Some((15, 50)), &mut errors);
        if let Some(g) = req.get("guidance").filter(|v| !v.is_null()) {
            match g.as_f64() {
                Some(x) if (1.5..=100.0).contains(&x) => {}
                Some(_) => errors.push(item("guidance", "value_error", "Input should be between 1.5 and 100", g)),
                None => errors.push(item("guidance", "float_type", "Input should be a valid number", g)),
            }
        }
        let size = image.as_ref().map(|i| (i.width(), i.height())).unwrap_or((1024, 1024));
        (image, size, mask)
    } else {
        let mut images = Vec::new();
        for field in ["input_image", "input_image_2", "input_image_3", "input_image_4"] {
            if let Some(img) = image_field(&req, field, &mut errors) {
                images.push(img);
            }
        }
        let first = images.into_iter().next();
        let size = match req.get("aspect_ratio") {
            None | Some(Value::Null) => first.as_ref().map(|i| (i.width(), i.height())).unwrap_or((1024, 1024)),
            Some(v) => {
                let ratio = v.as_str().and_then(|s| s.split_once(':')).and_then(|(a, b)| Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?)));
                match ratio.filter(|&(a, b)| a > 0.0 && b > 0.0 && a / b <= 21.0 / 9.0 + 1e-9 && b / a <= 21.0 / 9.0 + 1e-9) {
                    Some((a, b)) => imaging::size_for_ratio(a, b, 1.0),
                    None => {
                        errors.push(item("aspect_ratio", "value_error", "Value error, aspect ratio must be between 21:9 and 9:21", v));
                        (1024, 1024)
                    }
                }
            }
        };
        (first, size, None)
    };
    if !errors.is_empty() {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({"detail": errors}))).into_response();
    }
    let limit = if endpoint == "flux-kontext-max" { 6 } else { 24 };
    if !state.take_slot(&active_key(endpoint), limit) {
        let mut r = detail(StatusCode::TOO_MANY_REQUESTS, &format!("You have reached the maximum of {limit} active tasks. Wait for a task to finish."));
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    // Render now (unless the task is doomed) so polls are quick.
    let doomed = faults.has("failed") || (faults.has("moderated") && faults.arg("moderated") != Some("content"));
    let format = output_format.clone();
    let in_mp = source.as_ref().map_or(0.0, |i| ((i.width() as f64 * i.height() as f64) / 1e6 * 100.0).round() / 100.0);
    let picture = if doomed {
        None
    } else {
        let (w, h) = size;
        Some(tokio::task::spawn_blocking(move || {
            let out = match (&source, &mask) {
                (Some(src), Some(m)) => {
                    // Fill: invert only where the mask is white.
                    let mut base = src.to_rgb8();
                    let m = m.to_luma8();
                    for (x, y, p) in base.enumerate_pixels_mut() {
                        if m.get_pixel(x, y).0[0] >= 128 {
                            p.0 = [255 - p.0[0], 255 - p.0[1], 255 - p.0[2]];
                        }
                    }
                    base
                }
                _ => imaging::render(source.as_ref(), w, h, 0),
            };
            imaging::encode(&out, &format)
        })
        .await
        .expect("rendering does not panic"))
    };
    let id = state.next_id("bfl-task-");
    let out_mp = ((size.0 as f64 * size.1 as f64) / 1e6 * 100.0).round() / 100.0;
    state.put_job(&format!("bfl:{id}"), json!({
        "endpoint": endpoint,
        "prompt": prompt,
        "seed": seed,
        "polls": 0,
        "polls_needed": faults.slow().map(u64::from).unwrap_or(DEFAULT_POLLS).max(1),
        "output_format": output_format,
        "picture": picture.map(|b| STANDARD.encode(b)),
        "fault_500": faults.has("500"),
        "poll_5xx": faults.has("poll-5xx").then(|| faults.arg("poll-5xx").and_then(|a| a.parse::<u16>().ok()).filter(|c| (500..600).contains(c)).unwrap_or(500)),
        "poll_404_once": faults.has("poll-404-once"),
        "request_moderated": faults.has("moderated") && faults.arg("moderated") != Some("content"),
        "content_moderated": faults.arg("moderated") == Some("content"),
        "failed": faults.has("failed"),
        "expired": faults.has("expired"),
        "expire_after_ms": faults.arg("expired").and_then(|a| a.parse::<u64>().ok()),
        "active": true,
        "sample": null,
    }));
    let cost = match endpoint {
        "flux-kontext-max" => 8.0,
        "flux-pro-1.0-fill" => 5.0,
        _ => 4.0,
    };
    let answer = json!({"id": id, "polling_url": format!("{}/v1/get_result?id={id}", state.alt_url), "cost": cost, "input_mp": in_mp, "output_mp": out_mp});
    if faults.has("malformed") {
        let text = answer.to_string();
        return (StatusCode::OK, [("content-type", "application/json")], text[..text.len() / 2].to_string()).into_response();
    }
    (StatusCode::OK, axum::Json(answer)).into_response()
}

fn result(id: &str, status: &str, result: Value, progress: Value, details: Value) -> Response {
    (StatusCode::OK, axum::Json(json!({"id": id, "status": status, "result": result, "progress": progress, "details": details, "preview": null}))).into_response()
}

/// Leave Pending: free the task's concurrency slot once.
fn finish(state: &State, key: &str, task: &Value) {
    // Flipped under the lock: of two polls that see the end at once, one frees the slot.
    let mut was_active = false;
    state.update_job(key, |t| {
        was_active = t.get("active").and_then(Value::as_bool) == Some(true);
        t["active"] = json!(false);
    });
    if was_active {
        state.free_slot(&active_key(task.get("endpoint").and_then(Value::as_str).unwrap_or_default()));
    }
}

async fn get_result(AxState(state): AxState<State>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(r) = check_key(&state, &headers) {
        return r;
    }
    let Some(id) = q.get("id") else {
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({"detail": [{"type": "missing", "loc": ["query", "id"], "msg": "Field required", "input": null}]}))).into_response();
    };
    let key = format!("bfl:{id}");
    let Some(task) = state.job(&key) else {
        return result(id, "Task not found", Value::Null, Value::Null, Value::Null);
    };
    if let Some(code) = task["poll_5xx"].as_u64() {
        return detail(StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), "Internal Server Error");
    }
    if task["poll_404_once"].as_bool() == Some(true) {
        state.update_job(&key, |t| t["poll_404_once"] = json!(false));
        let mut r = result(id, "Task not found", Value::Null, Value::Null, Value::Null);
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    }
    if task["fault_500"].as_bool() == Some(true) {
        state.update_job(&key, |t| t["fault_500"] = json!(false));
        return detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    let task = state.update_job(&key, |t| t["polls"] = json!(t["polls"].as_u64().unwrap_or(0) + 1)).unwrap_or(task);
    if task["request_moderated"].as_bool() == Some(true) {
        finish(&state, &key, &task);
        return result(id, "Request Moderated", Value::Null, Value::Null, json!({"Moderation Reasons": ["Emulator: [fault:moderated]"]}));
    }
    let (polls, needed) = (task["polls"].as_u64().unwrap_or(1), task["polls_needed"].as_u64().unwrap_or(DEFAULT_POLLS));
    if polls < needed {
        return result(id, "Pending", Value::Null, json!((polls as f64 / needed as f64 * 100.0).round() / 100.0), Value::Null);
    }
    finish(&state, &key, &task);
    if task["failed"].as_bool() == Some(true) {
        return result(id, "Error", Value::Null, Value::Null, json!({"error": "Emulator: the task failed ([fault:failed])"}));
    }
    if task["content_moderated"].as_bool() == Some(true) {
        return result(id, "Content Moderated", Value::Null, Value::Null, json!({"Moderation Reasons": ["Emulator: [fault:moderated:content]"]}));
    }
    let sample = match task["sample"].as_str() {
        Some(s) => s.to_string(),
        None => {
            let expiry = if task["expired"].as_bool() == Some(true) {
                now_ms().saturating_sub(1000) + task["expire_after_ms"].as_u64().map(|ms| ms + 1000).unwrap_or(0)
            } else {
                now_ms() + DELIVERY_LIFETIME_MS
            };
            let ext = task["output_format"].as_str().unwrap_or("png");
            let se = iso_time(expiry).replace(':', "%3A");
            let url = format!("{}/bfl-delivery/{id}/sample.{ext}?se={se}&sp=r&sv=2024-11-04&sr=b&sig={}", state.alt_url, signature(id, expiry));
            state.update_job(&key, |t| {
                t["sample"] = json!(url);
                t["sample_expiry_ms"] = json!(expiry);
            });
            url
        }
    };
    result(id, "Ready", json!({"sample": sample, "prompt": task["prompt"], "seed": task["seed"]}), Value::Null, Value::Null)
}

/// (year, month, day, hour, minute, second, weekday index 0 = Thursday) of a Unix time in ms.
fn civil(ms: u64) -> (i64, i64, i64, u64, u64, u64, usize) {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, d, h, m, s, days.rem_euclid(7) as usize)
}

/// An RFC 1123 date (`Thu, 26 Nov 2026 22:00:00 GMT`) for Azure-style error bodies.
fn http_date(ms: u64) -> String {
    let (year, month, d, h, m, s, wd) = civil(ms);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][wd];
    let mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][(month - 1) as usize];
    format!("{weekday}, {d:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
}

/// An ISO 8601 UTC time (`2026-11-26T22:00:00Z`), as Azure SAS `se=` carries it.
fn iso_time(ms: u64) -> String {
    let (year, month, d, h, m, s, _) = civil(ms);
    format!("{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

fn blob_error(status: StatusCode, code: &str, message: &str, detail: Option<String>) -> Response {
    let rid = format!("{:08x}-0000-0000-0000-000000000000", now_ms() as u32);
    let detail = detail.map(|d| format!("<AuthenticationErrorDetail>{d}</AuthenticationErrorDetail>")).unwrap_or_default();
    let body = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:{rid}\nTime:{}</Message>{detail}</Error>",
        http_date(now_ms())
    );
    (status, [("content-type", "application/xml"), ("x-ms-error-code", code)], body).into_response()
}

async fn delivery(AxState(state): AxState<State>, Path((id, file)): Path<(String, String)>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(task) = state.job(&format!("bfl:{id}")) else {
        return blob_error(StatusCode::NOT_FOUND, "BlobNotFound", "The specified blob does not exist.", None);
    };
    // The signature covers the id and the expiry the task was given; `se` must say that expiry.
    let expiry = task["sample_expiry_ms"].as_u64();
    let sig_ok = expiry.is_some_and(|e| {
        q.get("se").map(String::as_str) == Some(iso_time(e).as_str()) && q.get("sig").map(String::as_str) == Some(signature(&id, e).as_str())
    });
    if !sig_ok {
        return blob_error(StatusCode::FORBIDDEN, "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
            Some("Signature did not match.".into()));
    }
    let expiry = expiry.unwrap_or(0);
    let now = now_ms();
    if now >= expiry {
        return blob_error(StatusCode::FORBIDDEN, "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
            Some(format!("Signed expiry time [{}] must be after signed start time [{}]", http_date(expiry), http_date(now))));
    }
    let Some(bytes) = task["picture"].as_str().and_then(|b| STANDARD.decode(b).ok()) else {
        return blob_error(StatusCode::NOT_FOUND, "BlobNotFound", "The specified blob does not exist.", None);
    };
    let mime = if file.ends_with(".jpeg") { "image/jpeg" } else if file.ends_with(".webp") { "image/webp" } else { "image/png" };
    (StatusCode::OK, [("content-type", mime)], bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_730_400_000), "Thu, 26 Nov 2026 22:00:00 GMT");
        assert_eq!(iso_time(1_795_730_400_000), "2026-11-26T22:00:00Z");
    }
}
