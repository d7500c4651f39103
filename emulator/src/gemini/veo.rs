//! Veo on the Gemini API: `predictLongRunning`, the operation, and the two-hop video download.

use super::models::VeoModel;
use super::{Markers, Reject, check_fields, check_key, field, google_error, invalid, not_found, ok_json, transport_fault};
use crate::State;
use axum::body::Body;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

const INSTANCE_FIELDS: &[&str] = &["prompt", "image", "lastFrame", "referenceImages", "video"];
const IMAGE_FIELDS: &[&str] = &["bytesBase64Encoded", "mimeType"];
const PARAMETER_FIELDS: &[&str] =
    &["aspectRatio", "resolution", "durationSeconds", "negativePrompt", "personGeneration", "sampleCount", "enhancePrompt"];
/// Parameters the SDK sends only to Vertex; the Gemini API refuses them.
const VERTEX_ONLY: &[&str] =
    &["seed", "fps", "generateAudio", "storageUri", "outputGcsUri", "pubsubTopic", "compressionQuality", "resizeMode"];
/// Default size of the emulated video.
const DEFAULT_VIDEO_BYTES: u64 = 4096;

/// Handle `predictLongRunning`.
pub(super) async fn predict_long_running(state: &State, model_id: &str, model: VeoModel, body: &[u8]) -> Response {
    let (prompt, params) = match parse_request(model, body) {
        Ok(v) => v,
        Err(rejection) => return rejection.into_response(),
    };
    let markers = Markers::parse(&prompt);
    if let Some(fault) = transport_fault(state, &markers, model_id, true).await {
        return fault;
    }
    let op = state.next_id("op").to_ascii_lowercase();
    let file = state.next_id("file").to_ascii_lowercase();
    let polls_needed = match markers.get("slow-op") {
        Some(Some(n)) => n.parse::<u64>().unwrap_or(2).max(1),
        _ => 2,
    };
    let outcome = if markers.has("rai") {
        "rai"
    } else if markers.has("op-error") {
        "error"
    } else {
        "ok"
    };
    let error_code = markers.get("op-error").flatten().and_then(|c| c.parse::<i64>().ok()).unwrap_or(13);
    let name = format!("models/{model_id}/operations/{op}");
    let poll_5xx = markers.get("poll-5xx").map(|arg| arg.and_then(|a| a.parse::<u16>().ok()).filter(|c| (500..600).contains(c)).unwrap_or(500));
    state.put_job(
        &format!("gemini-op:{op}"),
        json!({"name": name, "model": model_id, "polls": 0, "polls_needed": polls_needed, "outcome": outcome,
               "error_code": error_code, "file": file, "params": params,
               "poll_5xx": poll_5xx, "poll_404_once": markers.has("poll-404-once")}),
    );
    let size = markers.size_bytes().unwrap_or(DEFAULT_VIDEO_BYTES).max(64);
    if !markers.has("expired") {
        state.put_job(&format!("gemini-file:{file}"), json!({"size": size, "sig": signature(&file)}));
    }
    if markers.has("malformed") {
        // The operation runs (and would be billed); only the answer naming it is cut short.
        let text = json!({"name": name}).to_string();
        return (StatusCode::OK, [("content-type", "application/json; charset=UTF-8")], text[..text.len() / 2].to_string()).into_response();
    }
    ok_json(&json!({"name": name}))
}

/// Validate the Veo body; returns the prompt and the parameters as sent.
fn parse_request(model: VeoModel, body: &[u8]) -> Result<(String, Value), Reject> {
    let value: Value = serde_json::from_slice(body).map_err(|e| invalid(&format!("Invalid JSON payload received. {e}")))?;
    let top = value.as_object().ok_or_else(|| invalid("Invalid JSON payload received. Expected an object."))?;
    let instances = field(top, "instances").and_then(Value::as_array).filter(|i| !i.is_empty())
        .ok_or_else(|| invalid("instances must contain exactly one instance."))?;
    if instances.len() != 1 {
        return Err(invalid("instances must contain exactly one instance."));
    }
    let instance = instances[0].as_object().ok_or_else(|| invalid("Invalid value at 'instances[0]': expected an object"))?;
    check_fields(instance, INSTANCE_FIELDS, "instances[0]")?;
    let prompt = match field(instance, "prompt") {
        Some(p) => p.as_str().ok_or_else(|| invalid("Invalid value at 'instances[0].prompt' (TYPE_STRING)"))?.to_string(),
        None => String::new(),
    };
    if let Some(image) = field(instance, "image") {
        check_image(image, "image")?;
    }
    if let Some(frame) = field(instance, "lastFrame") {
        if field(instance, "image").is_none() {
            return Err(invalid("lastFrame requires image (the first frame)."));
        }
        if !matches!(model, VeoModel::Veo31 | VeoModel::Veo31Lite) {
            return Err(invalid("`lastFrame` isn't supported by this model."));
        }
        check_image(frame, "lastFrame")?;
    }
    if field(instance, "video").is_some() || field(instance, "referenceImages").is_some() {
        return Err(invalid("The emulator does not serve video extension or reference images."));
    }

    let empty = Map::new();
    let params = match field(top, "parameters") {
        Some(p) => p.as_object().ok_or_else(|| invalid("Invalid value at 'parameters': expected an object"))?,
        None => &empty,
    };
    for key in params.keys() {
        if VERTEX_ONLY.contains(&super::camel(key).as_str()) {
            return Err(invalid(&format!("`{key}` isn't supported by this model.")));
        }
    }
    check_fields(params, PARAMETER_FIELDS, "parameters")?;
    let duration = match field(params, "durationSeconds") {
        None => 8,
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| invalid("durationSeconds must be a whole number."))?,
        Some(_) => return Err(invalid("The value type for durationSeconds needs to be a number.")),
    };
    if !model.durations().contains(&duration) {
        return Err(invalid(&format!(
            "The number value for durationSeconds is out of bound. Supported values: {:?}.",
            model.durations()
        )));
    }
    let aspect = str_param(params, "aspectRatio")?.unwrap_or("16:9");
    if !matches!(aspect, "16:9" | "9:16") {
        return Err(invalid(&format!("Aspect ratio {aspect} is not supported. Supported values: 16:9, 9:16.")));
    }
    let resolution = str_param(params, "resolution")?.unwrap_or("720p");
    if !model.resolutions().contains(&resolution) {
        return Err(invalid(&format!(
            "Resolution {resolution} is not supported by this model. Supported values: {}.",
            model.resolutions().join(", ")
        )));
    }
    if resolution != "720p" && duration != 8 && model != VeoModel::Veo3 {
        return Err(invalid(&format!("Resolution {resolution} requires durationSeconds 8.")));
    }
    if model == VeoModel::Veo3 && resolution == "1080p" && aspect != "16:9" {
        return Err(invalid("1080p is only supported with aspect ratio 16:9 for this model."));
    }
    if let Some(person) = str_param(params, "personGeneration")?
        && !matches!(person, "allow_all" | "allow_adult" | "dont_allow")
    {
        return Err(invalid(&format!("personGeneration {person} is not supported. Supported values: allow_all, allow_adult, dont_allow.")));
    }
    if let Some(count) = field(params, "sampleCount")
        && count.as_i64().is_none_or(|c| c != 1)
    {
        return Err(invalid("sampleCount must be 1 for this model."));
    }
    str_param(params, "negativePrompt")?;
    Ok((prompt, json!({"durationSeconds": duration, "aspectRatio": aspect, "resolution": resolution})))
}

fn str_param<'a>(params: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Reject> {
    match field(params, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(&format!("Invalid value at 'parameters.{name}' (TYPE_STRING)"))),
    }
}

/// A Veo image is `{bytesBase64Encoded, mimeType}`; `inlineData` is refused, as live.
fn check_image(image: &Value, name: &str) -> Result<(), Reject> {
    let image = image.as_object().ok_or_else(|| invalid(&format!("Invalid value at 'instances[0].{name}'")))?;
    if field(image, "inlineData").is_some() {
        return Err(invalid("`inlineData` isn't supported by this model."));
    }
    if image.contains_key("gcsUri") {
        return Err(invalid("`gcsUri` isn't supported by this model."));
    }
    check_fields(image, IMAGE_FIELDS, &format!("instances[0].{name}"))?;
    let mime = field(image, "mimeType").and_then(Value::as_str).unwrap_or_default();
    if !matches!(mime, "image/png" | "image/jpeg" | "image/webp") {
        return Err(invalid(&format!("Unsupported MIME type: {mime}")));
    }
    let data = field(image, "bytesBase64Encoded").and_then(Value::as_str).unwrap_or_default();
    let bytes = STANDARD.decode(data).map_err(|_| invalid(&format!("Invalid value at 'instances[0].{name}.bytes_base64_encoded' (TYPE_BYTES), Base64 decoding failed")))?;
    if image::load_from_memory(&bytes).is_err() {
        return Err(invalid("Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"));
    }
    Ok(())
}

/// `GET /{ver}/models/{model}/operations/{op}`.
pub(super) async fn get_operation(
    AxState(state): AxState<State>,
    Path((model, op)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = check_key(&state, &headers, &query) {
        return denied.into_response();
    }
    let key = format!("gemini-op:{op}");
    let missing = || not_found(&format!("Operation models/{model}/operations/{op} not found.")).into_response();
    let Some(before) = state.job(&key).filter(|r| r["model"] == json!(model)) else {
        return missing();
    };
    if let Some(code) = before["poll_5xx"].as_u64() {
        let code = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match code.as_u16() {
            503 => "The service is currently unavailable.",
            504 => "Deadline exceeded.",
            _ => "Internal error encountered.",
        };
        return google_error(code, message, vec![]);
    }
    if before["poll_404_once"] == json!(true) {
        state.update_job(&key, |v| v["poll_404_once"] = json!(false));
        return missing();
    }
    let Some(record) = state.update_job(&key, |v| v["polls"] = json!(v["polls"].as_u64().unwrap_or(0) + 1)) else {
        return missing();
    };
    let name = record["name"].clone();
    let polls = record["polls"].as_u64().unwrap_or(0);
    if polls < record["polls_needed"].as_u64().unwrap_or(2) {
        // Google leaves `done` out while running at first, then sends `done: false`.
        return if polls == 1 { ok_json(&json!({"name": name})) } else { ok_json(&json!({"name": name, "done": false})) };
    }
    let response_type = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse";
    match record["outcome"].as_str() {
        Some("rai") => ok_json(&json!({"name": name, "done": true, "response": {"@type": response_type,
            "generateVideoResponse": {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [
                "Sorry, we can't create videos from input images containing celebrity or their likenesses. Please remove the reference and try again."]}}})),
        Some("error") => ok_json(&json!({"name": name, "done": true, "error": {
            "code": record["error_code"].as_i64().unwrap_or(13),
            "message": "Video generation failed: the audio could not be generated for this prompt. You have not been charged."}})),
        _ => {
            let version = if uri.path().starts_with("/v1/") { "v1" } else { "v1beta" };
            let uri = format!("{}/{version}/files/{}:download?alt=media", state.base_url, record["file"].as_str().unwrap_or_default());
            ok_json(&json!({"name": name, "done": true, "response": {"@type": response_type,
                "generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]}}}))
        }
    }
}

/// `GET /{ver}/files/{id}:download?alt=media`: needs the key, answers 302 to the other listener.
pub(super) async fn download(
    AxState(state): AxState<State>,
    Path(action): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = check_key(&state, &headers, &query) {
        return denied.into_response();
    }
    let Some(file) = action.strip_suffix(":download") else {
        return not_found(&format!("Method not found for files/{action}.")).into_response();
    };
    if query.get("alt").map(String::as_str) != Some("media") {
        return invalid("files.download requires alt=media.").into_response();
    }
    let Some(record) = state.job(&format!("gemini-file:{file}")) else {
        return google_error(StatusCode::NOT_FOUND, &format!("File files/{file} not found or expired."), vec![]);
    };
    let location = format!("{}/gemini-delivery/{file}?sig={}", state.alt_url, record["sig"].as_str().unwrap_or_default());
    (StatusCode::FOUND, [("location", location)]).into_response()
}

/// `GET /gemini-delivery/{id}?sig=...`: the storage hop; no key, the signature is the credential.
pub(super) async fn deliver(
    AxState(state): AxState<State>,
    Path(file): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(record) = state.job(&format!("gemini-file:{file}")) else {
        return (StatusCode::NOT_FOUND, "No such object.").into_response();
    };
    if query.get("sig") != record["sig"].as_str().map(String::from).as_ref() {
        return (StatusCode::FORBIDDEN, "Invalid signature.").into_response();
    }
    let size = record["size"].as_u64().unwrap_or(DEFAULT_VIDEO_BYTES);
    let stream = futures_util::stream::iter(mp4_chunks(size).map(Ok::<_, std::io::Error>));
    (StatusCode::OK, [("content-type", "video/mp4".to_string()), ("content-length", size.to_string())], Body::from_stream(stream))
        .into_response()
}

/// A stand-in for a signed storage URL's signature.
fn signature(file: &str) -> String {
    let hash = file.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    format!("{hash:016x}")
}

/// An MP4-shaped file of `size` bytes: an `ftyp` box, then one `mdat` box filling the rest,
/// produced lazily in 64 KiB chunks so a 50 MB file is never held in memory.
fn mp4_chunks(size: u64) -> impl Iterator<Item = bytes::Bytes> {
    let mut head = Vec::with_capacity(32);
    head.extend_from_slice(&24u32.to_be_bytes());
    head.extend_from_slice(b"ftypisom");
    head.extend_from_slice(&0x200u32.to_be_bytes());
    head.extend_from_slice(b"isommp41");
    let mdat_len = size - 24;
    if mdat_len <= u32::MAX as u64 {
        head.extend_from_slice(&(mdat_len as u32).to_be_bytes());
        head.extend_from_slice(b"mdat");
    } else {
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(b"mdat");
        head.extend_from_slice(&mdat_len.to_be_bytes());
    }
    let head_len = head.len() as u64;
    let chunk = 64 * 1024u64;
    let remaining = size.saturating_sub(head_len);
    let full = remaining / chunk;
    let last = remaining % chunk;
    std::iter::once(bytes::Bytes::from(head))
        .chain((0..full).map(move |_| bytes::Bytes::from(vec![0u8; chunk as usize])))
        .chain((last > 0).then(|| bytes::Bytes::from(vec![0u8; last as usize])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp4_has_the_requested_size_and_an_ftyp_box() {
        for size in [64u64, 4096, 200_000] {
            let bytes: Vec<u8> = mp4_chunks(size).flat_map(|b| b.to_vec()).collect();
            assert_eq!(bytes.len() as u64, size);
            assert_eq!(&bytes[4..8], b"ftyp");
            assert_eq!(&bytes[28..32], b"mdat");
        }
    }
}
