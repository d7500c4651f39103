//! Reading ModelArk's answer: images (inline or URL), per-item failures, usage, and error envelopes.

use crate::request::ResponseFormat;
use atelier_sdk::{Artifact, Body, Download, Error, ErrorBody, ImageUsage, ItemFailure, Outcome, ProviderError, Service, Usage};
use provider_common::parse_wxh;

/// ModelArk as the retry table names it.
pub const ARK: Service = Service { name: "ModelArk", plugin_id: "seedream", secret: "ARK_API_KEY" };
use serde_json::Value;

/// Result URLs live 24 hours.
const URL_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;

/// The error for a non-2xx answer.
pub fn map_error(status: u16, retry_after_ms: Option<u64>, body: &[u8]) -> Error {
    let e = ErrorBody::parse(body);
    let code = e.code.clone().unwrap_or_default();
    if let Some(m) = moderation(&code, &e.message) {
        return m;
    }
    // ModelArk bills successful images only, so a 5xx made nothing: the table's `unavailable` is safe to retry.
    match status {
        404 => Error::Provider(ProviderError {
            code: if code.is_empty() { "404".into() } else { code },
            message: format!("{} — check `model` (and `base_url`) under [plugins.seedream] in atelier.toml", e.message),
        }),
        _ => ErrorBody::parse(body).to_error(&ARK, status, retry_after_ms),
    }
}

/// ModelArk's content-filter codes (`InputTextSensitiveContentDetected`, `OutputImageSensitiveContentDetected`, ...).
fn moderation(code: &str, message: &str) -> Option<Error> {
    code.contains("SensitiveContent").then(|| Error::Moderated(format!("ModelArk's content filter refused it ({code}): {message}")))
}

/// The error of one failed item of a batch.
fn item_error(e: &Value) -> Error {
    let code = e.get("code").and_then(Value::as_str).unwrap_or("error").to_string();
    let message = e.get("message").and_then(Value::as_str).unwrap_or("the provider gave no message").to_string();
    moderation(&code, &message).unwrap_or(Error::Provider(ProviderError { code, message }))
}

/// Turn a 200 body into an outcome. Items with `error` become failures at their index; when the
/// model made fewer images than asked, the missing ones are failures too (ModelArk's `auto`
/// batch mode lets the model stop early). All items failing is an error.
pub fn parse(body: &Value, n: u32, format: ResponseFormat, now_ms: u64) -> Result<Outcome, Error> {
    if let Some(err) = body.get("error").filter(|e| e.is_object()) {
        return Err(item_error(err));
    }
    // A 200 without `data`: images may have been made (and billed) that we cannot see.
    let data = body.get("data").and_then(Value::as_array).ok_or_else(|| {
        Error::unreadable_submit("ModelArk", 200, &format!("it has no `data` list: {}", atelier_sdk::excerpt(body.to_string().as_bytes(), 300)))
    })?;
    let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut artifacts = Vec::new();
    let mut failures = Vec::new();
    let mut sizes: Vec<ImageUsage> = Vec::new();
    for (index, item) in data.iter().enumerate() {
        let index = index as u32;
        if let Some(e) = item.get("error").filter(|e| !e.is_null()) {
            failures.push(ItemFailure { index, error: item_error(e) });
            continue;
        }
        let body = if let Some(b64) = item.get("b64_json").and_then(Value::as_str) {
            match atelier_sdk::encoding::base64_decode(b64) {
                Ok(bytes) => Body::Inline(bytes),
                Err(e) => {
                    failures.push(ItemFailure { index, error: malformed(&format!("item {index}: {e}")) });
                    continue;
                }
            }
        } else if let Some(url) = item.get("url").and_then(Value::as_str) {
            Body::Download(Download { url: url.into(), headers: vec![], expires_at_ms: Some(now_ms + URL_LIFETIME_MS) })
        } else {
            let wanted = if format == ResponseFormat::Url { "url" } else { "b64_json" };
            failures.push(ItemFailure { index, error: malformed(&format!("item {index} has neither `{wanted}` nor `error`")) });
            continue;
        };
        let mut art = Artifact { mime: "image/jpeg".into(), body, seed: None, has_audio: false, notes: vec![] };
        if !model.is_empty() {
            art.notes.push(("model".into(), model.clone()));
        }
        if let Some(size) = item.get("size").and_then(Value::as_str) {
            art.notes.push(("size".into(), size.into()));
            if let Some((width, height)) = parse_wxh(size) {
                match sizes.iter_mut().find(|u| u.width == width && u.height == height) {
                    Some(u) => u.count += 1,
                    None => sizes.push(ImageUsage { width, height, count: 1 }),
                }
            }
        }
        artifacts.push(art);
    }
    for index in data.len() as u32..n {
        failures.push(ItemFailure {
            index,
            error: Error::Provider(ProviderError {
                code: "fewer-images".into(),
                message: format!(
                    "ModelArk made {} of the {n} images asked for: in batch mode the model decides how many to make \
                     (up to max_images); say the number of images in the prompt or run again for the rest",
                    data.len()
                ),
            }),
        });
    }
    if artifacts.is_empty() {
        return Err(failures.into_iter().next().map(|f| f.error).unwrap_or_else(|| malformed("ModelArk returned no images")));
    }
    let usage = body.get("usage");
    let output_tokens = usage.and_then(|u| u.get("output_tokens")).and_then(Value::as_u64);
    Ok(Outcome { artifacts, failures, usage: Usage { images: sizes, input_tokens: None, output_tokens, video_seconds: None } })
}

fn malformed(message: &str) -> Error {
    Error::Provider(ProviderError { code: "malformed".into(), message: message.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_inline_batch_with_a_failed_item() {
        let body = json!({"model":"seedream-4-0-250828","created":1,
            "data":[{"b64_json":"/9j/","size":"1280x720"},
                    {"error":{"code":"OutputImageSensitiveContentDetected","message":"filtered"}},
                    {"b64_json":"/9j/","size":"1280x720"}],
            "usage":{"generated_images":2,"output_tokens":7200,"total_tokens":7200}});
        let out = parse(&body, 3, ResponseFormat::B64Json, 0).unwrap();
        assert_eq!(out.artifacts.len(), 2);
        assert!(matches!(&out.artifacts[0].body, Body::Inline(b) if b == &[0xFF, 0xD8, 0xFF]));
        assert_eq!(out.failures.len(), 1);
        assert_eq!(out.failures[0].index, 1);
        assert!(matches!(&out.failures[0].error, Error::Moderated(m) if m.contains("filtered")));
        assert_eq!(out.usage.output_tokens, Some(7200));
        let u = &out.usage.images;
        assert_eq!((u.len(), u[0].width, u[0].height, u[0].count), (1, 1280, 720, 2));
    }

    #[test]
    fn urls_become_downloads_and_missing_items_failures() {
        let body = json!({"data":[{"url":"https://x.bytepluses.com/a.jpeg","size":"2048x2048"}],"usage":{"output_tokens":16384}});
        let out = parse(&body, 2, ResponseFormat::Url, 1000).unwrap();
        match &out.artifacts[0].body {
            Body::Download(d) => {
                assert_eq!(d.url, "https://x.bytepluses.com/a.jpeg");
                assert!(d.headers.is_empty(), "no key on result downloads");
                assert_eq!(d.expires_at_ms, Some(1000 + URL_LIFETIME_MS));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.failures.len(), 1);
        assert_eq!(out.failures[0].index, 1);
        assert!(matches!(&out.failures[0].error, Error::Provider(p) if p.code == "fewer-images"));
    }

    #[test]
    fn all_failed_is_an_error() {
        let body = json!({"data":[{"error":{"code":"InternalServiceError","message":"boom"}}]});
        assert!(matches!(parse(&body, 1, ResponseFormat::B64Json, 0), Err(Error::Provider(p)) if p.code == "InternalServiceError"));
        assert!(matches!(parse(&json!({"nope":1}), 1, ResponseFormat::B64Json, 0), Err(Error::Provider(p)) if p.code == "unreadable-answer" && p.message.contains("may exist at the provider")));
    }

    #[test]
    fn maps_http_errors() {
        let bad = br#"{"error":{"code":"InvalidParameter","message":"size invalid. Request id: 1","param":"size","type":"BadRequest"}}"#;
        assert!(matches!(map_error(400, None, bad), Error::InvalidInput(m) if m.contains("InvalidParameter") && m.contains("size invalid")));
        let sens = br#"{"error":{"code":"InputTextSensitiveContentDetected","message":"sensitive","type":"BadRequest"}}"#;
        assert!(matches!(map_error(400, None, sens), Error::Moderated(_)));
        let auth = br#"{"error":{"code":"AuthenticationError","message":"bad key","type":"Unauthorized"}}"#;
        assert!(matches!(map_error(401, None, auth), Error::Unauthorized(m) if m.contains("ARK_API_KEY") && m.contains("[plugins.seedream.secrets]")));
        assert!(matches!(map_error(429, Some(1000), b"{}"), Error::RateLimited(r) if r.retry_after_ms == Some(1000)));
        for status in [500, 502, 503, 504] {
            assert!(matches!(map_error(status, None, b"{}"), Error::Unavailable(_)), "{status}");
        }
        let nf = br#"{"error":{"code":"InvalidEndpointOrModel.NotFound","message":"no such model"}}"#;
        assert!(matches!(map_error(404, None, nf), Error::Provider(p) if p.message.contains("[plugins.seedream]")));
    }
}
