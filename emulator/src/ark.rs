//! BytePlus ModelArk image generation (Seedream 4.x), strict.
//!
//! Routes:
//! - `POST /api/v3/images/generations` — `Authorization: Bearer <keys.ark>`; JSON body checked like
//!   the real API: `model` (`seedream-4-0-250828`, `seedream-4-5-251128`, their `doubao-` forms, or
//!   `ep-…`), `prompt`, `image` (string or array of 1–14 **lowercase** `data:image/<fmt>;base64,`
//!   URIs; `data:image/PNG` is rejected), `size` (`1K`/`2K`/`4K` — 4.5 only `2K`/`4K` — or `WxH`
//!   within the version's pixel bounds, ratio 1:16–16:1), `sequential_image_generation`
//!   (`auto`/`disabled`), `sequential_image_generation_options.max_images` (1–15, refs + max ≤ 15),
//!   `response_format` (`url` default / `b64_json`), `watermark`/`stream` booleans, `seed` integer
//!   (accepted, ignored), `optimize_prompt_options.mode` (`fast` not on 4.5). Errors use Ark's
//!   envelope `{"error":{"code","message","param","type"}}`.
//!   Results are JPEGs of the first reference, inverted and tinted per index, at the requested size
//!   (presets: K×1024 squared pixels at the first reference's aspect). `auto` makes exactly
//!   `max_images` images. URL results point at the other listener (`/ark-results/{id}.jpeg`).
//! - `GET /ark-results/{file}` — the result store (no auth, like a signed TOS URL).
//!
//! Markers in the prompt: `[fault:422]` → 400 `InvalidParameter` (Ark's validation error);
//! `[fault:429]` → 429 `RateLimitExceeded.EndpointRPMExceeded` with `retry-after: 1`, once;
//! `[fault:500]` → 500 `InternalServiceError`, once; `[fault:malformed]` → 200 with truncated JSON;
//! `[fault:hang]` → no answer; `[fault:moderated]` → 400 `InputTextSensitiveContentDetected`;
//! `[fault:moderated:content]` → 400 `OutputImageSensitiveContentDetected`;
//! `[fault:batch-partial]` → one item of the batch (index 1, or 0 for a single image) is
//! `{"error":{"code":"OutputImageSensitiveContentDetected",…}}`, the others are images.

pub mod imaging;
pub mod markers;

use crate::State;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::DynamicImage;
use markers::Faults;
use serde_json::{json, Value};

/// This provider's routes.
pub fn router() -> axum::Router<crate::State> {
    axum::Router::new()
        .route("/api/v3/images/generations", post(generate))
        .route("/ark-results/{file}", get(result_file))
}

/// Ark's error envelope.
fn ark_error(state: &State, status: StatusCode, code: &str, message: &str, param: &str) -> Response {
    let kind = match status.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        404 => "NotFound",
        413 => "RequestEntityTooLarge",
        429 => "TooManyRequests",
        _ => "InternalServerError",
    };
    let rid = state.next_id("021764");
    (status, axum::Json(json!({"error": {"code": code, "message": format!("{message} Request id: {rid}"), "param": param, "type": kind}})))
        .into_response()
}

/// The 413 for a body over `limit` bytes on an Ark route, in Ark's envelope. Ark's code catalogue
/// was not retrieved, so the code and type are this emulator's naming in Ark's style.
pub(crate) fn too_large(state: &State, path: &str, limit: usize) -> Option<Response> {
    path.starts_with("/api/v3/").then(|| {
        let message = format!("The request body exceeds the limit of {limit} bytes.");
        ark_error(state, StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", &message, "")
    })
}

fn invalid(state: &State, param: &str, message: &str) -> Response {
    ark_error(state, StatusCode::BAD_REQUEST, "InvalidParameter", &format!("The parameter `{param}` specified in the request is not valid: {message}."), param)
}

/// Which Seedream generation a model id is.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Version {
    V40,
    V45,
}

fn version_of(model: &str) -> Option<Version> {
    match model {
        "seedream-4-0-250828" | "doubao-seedream-4-0-250828" => Some(Version::V40),
        "seedream-4-5-251128" | "doubao-seedream-4-5-251128" => Some(Version::V45),
        m if m.starts_with("ep-") => Some(Version::V40),
        _ => None,
    }
}

const FORMATS: [&str; 6] = ["jpeg", "png", "webp", "bmp", "tiff", "gif"];

/// Decode one `image` entry: a lowercase base64 data URI of an accepted format.
fn decode_reference(uri: &str) -> Result<DynamicImage, String> {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Err("the image URL could not be downloaded (the emulator has no network; send a data URI)".into());
    }
    let rest = uri.strip_prefix("data:").ok_or("the image must be a URL or a data URI `data:image/<format>;base64,<data>`")?;
    let (head, data) = rest.split_once(',').ok_or("the data URI has no `,`")?;
    let fmt = head.strip_prefix("image/").and_then(|h| h.strip_suffix(";base64")).ok_or("the data URI must be `data:image/<format>;base64,...`")?;
    if fmt != fmt.to_ascii_lowercase() {
        return Err(format!("the image format `{fmt}` in the data URI must be lowercase (e.g. data:image/png;base64,...)"));
    }
    if !FORMATS.contains(&fmt) {
        return Err(format!("the image format `{fmt}` is not supported; use one of {}", FORMATS.join(", ")));
    }
    let bytes = STANDARD.decode(data).map_err(|e| format!("the base64 data is invalid: {e}"))?;
    let img = imaging::decode(&bytes)?;
    let (w, h) = (img.width(), img.height());
    if w <= 14 || h <= 14 {
        return Err(format!("the image is {w}x{h}; width and height must be greater than 14"));
    }
    if w.max(h) as f64 / w.min(h) as f64 > 16.0 {
        return Err(format!("the image is {w}x{h}; its aspect ratio must be within [1/16, 16]"));
    }
    Ok(img)
}

/// The output size for `size`, or why it is invalid for this version.
fn output_size(version: Version, size: &str, first: Option<&DynamicImage>) -> Result<(u32, u32), String> {
    let presets: &[(&str, f64)] = match version {
        Version::V40 => &[("1K", 1024.0), ("2K", 2048.0), ("4K", 4096.0)],
        Version::V45 => &[("2K", 2048.0), ("4K", 4096.0)],
    };
    if let Some((_, side)) = presets.iter().find(|(p, _)| *p == size) {
        let (rw, rh) = first.map(|i| (i.width() as f64, i.height() as f64)).unwrap_or((1.0, 1.0));
        let mp = side * side / 1_048_576.0;
        return Ok(imaging::size_for_ratio(rw, rh, mp));
    }
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|&(w, h)| w > 0 && h > 0)
        .ok_or_else(|| format!("`{size}` is neither {} nor WxH", presets.iter().map(|p| p.0).collect::<Vec<_>>().join("/")))?;
    let px = w as u64 * h as u64;
    let min = if version == Version::V45 { 2560 * 1440 } else { 1280 * 720 };
    if px < min || px > 4096 * 4096 {
        return Err(format!("total pixels of `{size}` must be within [{min}, 16777216]"));
    }
    if w.max(h) as f64 / w.min(h) as f64 > 16.0 {
        return Err(format!("the aspect ratio of `{size}` must be within [1/16, 16]"));
    }
    Ok((w, h))
}

async fn generate(AxState(state): AxState<State>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if auth != format!("Bearer {}", state.keys.ark) {
        return ark_error(&state, StatusCode::UNAUTHORIZED, "AuthenticationError", "The API key or AK/SK in the request is missing or invalid.", "");
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return invalid(&state, "body", "the request body must be a JSON object");
    };
    let Some(prompt) = req.get("prompt").and_then(Value::as_str).filter(|p| !p.trim().is_empty()) else {
        return invalid(&state, "prompt", "a non-empty string is required");
    };
    let faults = Faults::of(prompt);
    if faults.has("hang") {
        markers::hang().await;
    }
    if faults.has("429") && markers::once(&state, "ark", "429", &body) {
        let mut r = ark_error(&state, StatusCode::TOO_MANY_REQUESTS, "RateLimitExceeded.EndpointRPMExceeded", "Request rate limit exceeded, please try again later.", "");
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    if faults.has("500") && markers::once(&state, "ark", "500", &body) {
        return ark_error(&state, StatusCode::INTERNAL_SERVER_ERROR, "InternalServiceError", "The service encountered an unexpected internal error.", "");
    }
    if faults.has("422") {
        return invalid(&state, "prompt", "rejected by [fault:422]");
    }
    if faults.has("moderated") {
        let (code, msg) = if faults.arg("moderated") == Some("content") {
            ("OutputImageSensitiveContentDetected", "The request failed because the output image may contain sensitive information.")
        } else {
            ("InputTextSensitiveContentDetected", "The request failed because the input text may contain sensitive information.")
        };
        return ark_error(&state, StatusCode::BAD_REQUEST, code, msg, "");
    }
    let Some(model) = req.get("model").and_then(Value::as_str) else {
        return invalid(&state, "model", "a string is required");
    };
    let Some(version) = version_of(model) else {
        return ark_error(&state, StatusCode::NOT_FOUND, "InvalidEndpointOrModel.NotFound", &format!("The model or endpoint {model} does not exist or you do not have access to it."), "model");
    };
    // References.
    let uris: Vec<&str> = match req.get("image") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => {
            let mut v = Vec::new();
            for item in a {
                match item.as_str() {
                    Some(s) => v.push(s),
                    None => return invalid(&state, "image", "every entry must be a string"),
                }
            }
            if v.is_empty() || v.len() > 14 {
                return invalid(&state, "image", &format!("between 1 and 14 images are allowed, got {}", v.len()));
            }
            v
        }
        Some(_) => return invalid(&state, "image", "must be a string or an array of strings"),
    };
    let mut refs = Vec::new();
    for (i, uri) in uris.iter().enumerate() {
        match decode_reference(uri) {
            Ok(img) => refs.push(img),
            Err(e) => return invalid(&state, "image", &format!("image {i}: {e}")),
        }
    }
    // Scalars, typed.
    for key in ["watermark", "stream"] {
        if req.get(key).is_some_and(|v| !v.is_boolean()) {
            return invalid(&state, key, "must be a boolean");
        }
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        return invalid(&state, "stream", "streaming is not supported by this emulator");
    }
    if req.get("seed").is_some_and(|v| !v.is_i64()) {
        return invalid(&state, "seed", "must be an integer");
    }
    let format = match req.get("response_format") {
        None => "url",
        Some(v) => match v.as_str() {
            Some(f @ ("url" | "b64_json")) => f,
            _ => return invalid(&state, "response_format", "must be `url` or `b64_json`"),
        },
    };
    if let Some(opt) = req.get("optimize_prompt_options") {
        match opt.get("mode").and_then(Value::as_str) {
            Some("standard") | None => {}
            Some("fast") if version == Version::V40 => {}
            Some(m) => return invalid(&state, "optimize_prompt_options.mode", &format!("`{m}` is not supported by {model}")),
        }
    }
    let size = match req.get("size") {
        None => "2048x2048",
        Some(v) => match v.as_str() {
            Some(s) => s,
            None => return invalid(&state, "size", "must be a string"),
        },
    };
    let (width, height) = match output_size(version, size, refs.first()) {
        Ok(s) => s,
        Err(e) => return invalid(&state, "size", &e),
    };
    let count = match req.get("sequential_image_generation").map(|v| v.as_str()) {
        None | Some(Some("disabled")) => 1,
        Some(Some("auto")) => {
            let max = req.get("sequential_image_generation_options").and_then(|o| o.get("max_images"));
            match max {
                None => 15u32.saturating_sub(refs.len() as u32).max(1),
                Some(v) => match v.as_u64().filter(|m| (1..=15).contains(m)) {
                    Some(m) if refs.len() as u64 + m <= 15 => m as u32,
                    Some(m) => {
                        return invalid(&state, "sequential_image_generation_options.max_images", &format!(
                            "the number of input images ({}) plus max_images ({m}) must not exceed 15", refs.len()
                        ))
                    }
                    None => return invalid(&state, "sequential_image_generation_options.max_images", "must be an integer in [1, 15]"),
                },
            }
        }
        _ => return invalid(&state, "sequential_image_generation", "must be `auto` or `disabled`"),
    };
    let failing = faults.has("batch-partial").then_some(if count > 1 { 1 } else { 0 });
    let first = refs.into_iter().next();
    let images = tokio::task::spawn_blocking(move || {
        (0..count)
            .map(|i| (Some(i) != failing).then(|| imaging::encode(&imaging::render(first.as_ref(), width, height, i), "jpeg")))
            .collect::<Vec<_>>()
    })
    .await
    .expect("rendering does not panic");
    let mut data = Vec::new();
    let mut made = 0u64;
    for jpeg in images {
        let Some(jpeg) = jpeg else {
            data.push(json!({"error": {"code": "OutputImageSensitiveContentDetected", "message": "The generated image may contain sensitive information and was filtered."}}));
            continue;
        };
        made += 1;
        let size_text = format!("{width}x{height}");
        if format == "url" {
            let id = state.next_id("seedream-");
            state.put_job(&format!("ark-result:{id}"), json!({"jpeg": STANDARD.encode(&jpeg)}));
            data.push(json!({"url": format!("{}/ark-results/{id}.jpeg", state.alt_url), "size": size_text}));
        } else {
            data.push(json!({"b64_json": STANDARD.encode(&jpeg), "size": size_text}));
        }
    }
    let tokens = made * (width as u64 * height as u64) / 256;
    let answer = json!({
        "model": model,
        "created": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "data": data,
        "usage": {"generated_images": made, "output_tokens": tokens, "total_tokens": tokens},
    });
    if faults.has("malformed") {
        let text = answer.to_string();
        return (StatusCode::OK, [("content-type", "application/json")], text[..text.len() / 2].to_string()).into_response();
    }
    (StatusCode::OK, axum::Json(answer)).into_response()
}

async fn result_file(AxState(state): AxState<State>, Path(file): Path<String>) -> Response {
    let id = file.trim_end_matches(".jpeg");
    match state.job(&format!("ark-result:{id}")).and_then(|j| j.get("jpeg").and_then(Value::as_str).and_then(|b| STANDARD.decode(b).ok())) {
        Some(bytes) => (StatusCode::OK, [("content-type", "image/jpeg")], bytes).into_response(),
        None => (StatusCode::NOT_FOUND, [("content-type", "application/xml")], "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_version() {
        assert_eq!(output_size(Version::V40, "1280x720", None), Ok((1280, 720)));
        assert!(output_size(Version::V45, "1280x720", None).is_err());
        assert!(output_size(Version::V45, "1K", None).is_err());
        assert_eq!(output_size(Version::V40, "1K", None), Ok((1024, 1024)));
        assert!(output_size(Version::V40, "4096x4097", None).is_err());
    }

    #[test]
    fn data_uris_must_be_lowercase() {
        assert!(decode_reference("data:image/PNG;base64,AAAA").unwrap_err().contains("lowercase"));
        assert!(decode_reference("https://x/a.png").is_err());
    }
}
