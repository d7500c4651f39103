//! `models/{model}:generateContent` for the image models: strict validation, then a real image
//! derived from the first input (inverted, fitted to the model's output size).

use super::models::ImageModel;
use super::{Markers, Reject, check_fields, field, invalid, ok_json, transport_fault};
use crate::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::{Map, Value, json};
use std::io::Cursor;

/// MIME types Google accepts in `inlineData` for images.
const INPUT_MIMES: &[&str] = &["image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"];

const PART_FIELDS: &[&str] =
    &["text", "inlineData", "fileData", "thought", "thoughtSignature", "functionCall", "functionResponse", "videoMetadata", "executableCode", "codeExecutionResult", "mediaResolution"];
const BLOB_FIELDS: &[&str] = &["mimeType", "data", "displayName"];
const CONTENT_FIELDS: &[&str] = &["role", "parts"];
const GENERATION_CONFIG_FIELDS: &[&str] = &[
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities", "candidateCount",
    "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs",
    "logprobs", "enableEnhancedCivicAnswers", "speechConfig", "thinkingConfig", "imageConfig", "mediaResolution",
];
const IMAGE_CONFIG_FIELDS: &[&str] = &["aspectRatio", "imageSize"];
const THINKING_CONFIG_FIELDS: &[&str] = &["thinkingLevel", "thinkingBudget", "includeThoughts"];

/// A validated request.
struct EditRequest {
    prompt: String,
    images: Vec<Vec<u8>>,
    aspect_ratio: Option<String>,
    image_size: Option<String>,
}

/// Handle `generateContent` for an image model.
pub(super) async fn generate_content(state: &State, model_id: &str, model: ImageModel, body: &[u8]) -> Response {
    let request = match parse_request(model_id, model, body) {
        Ok(r) => r,
        Err(rejection) => return rejection.into_response(),
    };
    let markers = Markers::parse(&request.prompt);
    if let Some(fault) = transport_fault(state, &markers, model_id, false).await {
        return fault;
    }
    let response_id = state.next_id("emu");
    let usage = |output: u64| json!({"promptTokenCount": 20 + 258 * request.images.len() as u64,
                                      "candidatesTokenCount": output, "totalTokenCount": output + 20});
    if markers.has("blocked") {
        return ok_json(&json!({
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 20, "totalTokenCount": 20},
            "modelVersion": model_id, "responseId": response_id}));
    }
    if markers.has("image-safety") {
        return ok_json(&json!({
            "candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0,
                "finishMessage": "Unable to show the generated image. The image was filtered out because it violated Google's Generative AI Prohibited Use policy."}],
            "usageMetadata": usage(0), "modelVersion": model_id, "responseId": response_id}));
    }
    if markers.has("text-only") {
        return ok_json(&json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "I'm not sure which kite you mean. Could you describe the change you want?"}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage(18), "modelVersion": model_id, "responseId": response_id}));
    }

    let ratio = match (&request.aspect_ratio, request.images.first()) {
        (Some(r), _) => r.clone(),
        (None, Some(first)) => match image::load_from_memory(first) {
            Ok(img) => model.closest_ratio(img.width(), img.height()).to_string(),
            Err(_) => "1:1".to_string(),
        },
        (None, None) => "1:1".to_string(),
    };
    let size = request.image_size.clone().unwrap_or_else(|| "1K".to_string());
    let (width, height) = model.output_size(&ratio, &size);
    let as_jpeg = markers.has("jpeg-as-png");
    let first = request.images.first().cloned();
    let encoded = tokio::task::spawn_blocking(move || render(first.as_deref(), width, height, as_jpeg)).await;
    let Ok(encoded) = encoded else {
        return super::google_error(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "Internal error encountered.", vec![]);
    };

    let mut parts = Vec::new();
    if markers.has("thought") {
        parts.push(json!({"text": "**Planning the edit**\n\nI'll invert the colours and keep the composition.", "thought": true}));
        let draft = render(None, 64, 64, false);
        parts.push(json!({"inlineData": {"mimeType": "image/png", "data": STANDARD.encode(draft)}, "thought": true}));
    }
    parts.push(json!({"text": "Here is the edited image."}));
    // Google declares image/png whatever it sends (seen live with JPEG bytes).
    parts.push(json!({"inlineData": {"mimeType": "image/png", "data": STANDARD.encode(&encoded)}, "thoughtSignature": "ZW11LXNpZ25hdHVyZQ=="}));
    let tokens = model.tokens_per_image(&size);
    let mut usage = usage(tokens + 8);
    usage["candidatesTokensDetails"] = json!([{"modality": "IMAGE", "tokenCount": tokens}, {"modality": "TEXT", "tokenCount": 8}]);
    if markers.has("thought") {
        usage["thoughtsTokenCount"] = json!(120);
    }
    ok_json(&json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": model_id,
        "responseId": response_id,
    }))
}

/// Validate the body the way Google does; the first problem wins.
fn parse_request(model_id: &str, model: ImageModel, body: &[u8]) -> Result<EditRequest, Reject> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(&format!("Invalid JSON payload received. {e}")))?;
    let top = value.as_object().ok_or_else(|| invalid("Invalid JSON payload received. Expected an object."))?;
    let contents = field(top, "contents").and_then(Value::as_array).filter(|c| !c.is_empty())
        .ok_or_else(|| invalid("* GenerateContentRequest.contents: contents is not specified"))?;

    let mut prompt = Vec::new();
    let mut images = Vec::new();
    for (ci, content) in contents.iter().enumerate() {
        let content = content.as_object().ok_or_else(|| invalid(&format!("Invalid value at 'contents[{ci}]': expected an object")))?;
        check_fields(content, CONTENT_FIELDS, &format!("contents[{ci}]"))?;
        let parts = field(content, "parts").and_then(Value::as_array).filter(|p| !p.is_empty())
            .ok_or_else(|| invalid(&format!("* GenerateContentRequest.contents[{ci}].parts: contents.parts must not be empty.")))?;
        for (pi, part) in parts.iter().enumerate() {
            let at = format!("contents[{ci}].parts[{pi}]");
            let part = part.as_object().ok_or_else(|| invalid(&format!("Invalid value at '{at}': expected an object")))?;
            check_fields(part, PART_FIELDS, &at)?;
            if let Some(text) = field(part, "text") {
                prompt.push(text.as_str().ok_or_else(|| invalid(&format!("Invalid value at '{at}.text' (TYPE_STRING)")))?.to_string());
            }
            if let Some(blob) = field(part, "inlineData") {
                images.push(read_blob(blob, &format!("{at}.inline_data"))?);
            }
            if field(part, "fileData").is_some() {
                return Err(invalid("The emulator serves no Files API uploads; send images as inlineData."));
            }
        }
    }
    if images.len() > model.max_images() {
        return Err(invalid(&format!(
            "Too many images in the request: {} given, models/{model_id} accepts at most {}.",
            images.len(),
            model.max_images()
        )));
    }

    let mut aspect_ratio = None;
    let mut image_size = None;
    if let Some(config) = field(top, "generationConfig") {
        let config = config.as_object().ok_or_else(|| invalid("Invalid value at 'generation_config': expected an object"))?;
        check_fields(config, GENERATION_CONFIG_FIELDS, "generation_config")?;
        if let Some(count) = field(config, "candidateCount")
            && count.as_i64().is_none_or(|c| c > 1)
        {
            return Err(invalid(&format!("Multiple candidates is not enabled for models/{model_id}")));
        }
        if let Some(modalities) = field(config, "responseModalities") {
            for m in modalities.as_array().ok_or_else(|| invalid("Invalid value at 'generation_config.response_modalities'"))? {
                if !matches!(m.as_str(), Some("TEXT" | "IMAGE")) {
                    return Err(invalid(&format!(
                        "Invalid value at 'generation_config.response_modalities' (type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig.Modality), {m}"
                    )));
                }
            }
        }
        if let Some(image_config) = field(config, "imageConfig") {
            let image_config = image_config.as_object().ok_or_else(|| invalid("Invalid value at 'generation_config.image_config'"))?;
            check_fields(image_config, IMAGE_CONFIG_FIELDS, "generation_config.image_config")?;
            if let Some(ratio) = field(image_config, "aspectRatio") {
                let ratio = ratio.as_str().unwrap_or_default();
                if !model.aspect_ratios().contains(&ratio) {
                    return Err(invalid(&format!(
                        "Unsupported aspect ratio: {ratio}. Supported values for models/{model_id}: {}.",
                        model.aspect_ratios().join(", ")
                    )));
                }
                aspect_ratio = Some(ratio.to_string());
            }
            if let Some(size) = field(image_config, "imageSize") {
                let size = size.as_str().unwrap_or_default();
                if model.sizes().is_empty() {
                    return Err(invalid(&format!("Image size is not supported for models/{model_id}.")));
                }
                if !model.sizes().contains(&size) {
                    return Err(invalid(&format!(
                        "Unsupported image size: {size}. Supported values for models/{model_id}: {}.",
                        model.sizes().join(", ")
                    )));
                }
                image_size = Some(size.to_string());
            }
        }
        if let Some(thinking) = field(config, "thinkingConfig") {
            let thinking = thinking.as_object().ok_or_else(|| invalid("Invalid value at 'generation_config.thinking_config'"))?;
            check_fields(thinking, THINKING_CONFIG_FIELDS, "generation_config.thinking_config")?;
            if let Some(level) = field(thinking, "thinkingLevel") {
                let level = level.as_str().unwrap_or_default().to_ascii_uppercase();
                if model.thinking_levels().is_empty() {
                    return Err(invalid(&format!("Thinking level is not supported for models/{model_id}.")));
                }
                if !model.thinking_levels().contains(&level.as_str()) {
                    return Err(invalid(&format!(
                        "Unsupported thinking level: {level}. Supported values for models/{model_id}: {}.",
                        model.thinking_levels().join(", ")
                    )));
                }
            }
        }
    }
    Ok(EditRequest { prompt: prompt.join("\n"), images, aspect_ratio, image_size })
}

/// Validate an `inlineData` blob and return its bytes (which must decode as the declared image).
fn read_blob(blob: &Value, at: &str) -> Result<Vec<u8>, Reject> {
    let blob: &Map<String, Value> = blob.as_object().ok_or_else(|| invalid(&format!("Invalid value at '{at}': expected an object")))?;
    check_fields(blob, BLOB_FIELDS, at)?;
    let mime = field(blob, "mimeType").and_then(Value::as_str).unwrap_or_default();
    if mime.is_empty() {
        return Err(invalid(&format!("* GenerateContentRequest.{at}.mime_type: mime_type is not specified")));
    }
    if !INPUT_MIMES.contains(&mime) {
        return Err(invalid(&format!("Unsupported MIME type: {mime}")));
    }
    let data = field(blob, "data").and_then(Value::as_str).unwrap_or_default();
    let bytes = STANDARD.decode(data).map_err(|_| {
        invalid(&format!("Invalid value at '{at}.data' (TYPE_BYTES), Base64 decoding failed for \"{}\"", data.chars().take(40).collect::<String>()))
    })?;
    let decodable = matches!(mime, "image/png" | "image/jpeg" | "image/webp");
    let format_matches = match image::guess_format(&bytes) {
        Ok(ImageFormat::Png) => mime == "image/png",
        Ok(ImageFormat::Jpeg) => mime == "image/jpeg",
        Ok(ImageFormat::WebP) => mime == "image/webp",
        _ => !decodable,
    };
    if bytes.is_empty() || !format_matches || (decodable && image::load_from_memory(&bytes).is_err()) {
        return Err(invalid("Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"));
    }
    Ok(bytes)
}

/// The output image: the input inverted and cover-fitted to `width`×`height` (a gradient when
/// there is no decodable input), as PNG or JPEG bytes.
fn render(input: Option<&[u8]>, width: u32, height: u32, jpeg: bool) -> Vec<u8> {
    let source = input.and_then(|b| image::load_from_memory(b).ok());
    let mut rgb: RgbImage = match source {
        Some(img) => img.resize_to_fill(width, height, image::imageops::FilterType::Nearest).to_rgb8(),
        None => RgbImage::from_fn(width, height, |x, y| Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, 128])),
    };
    image::imageops::invert(&mut rgb);
    let mut out = Cursor::new(Vec::new());
    let image = DynamicImage::ImageRgb8(rgb);
    if jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&image).expect("JPEG encoding to memory");
    } else {
        let encoder = image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::NoFilter,
        );
        image.write_with_encoder(encoder).expect("PNG encoding to memory");
    }
    out.into_inner()
}
