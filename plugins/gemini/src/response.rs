//! Walking a `generateContent` answer: the final images (thoughts skipped, bytes sniffed), or a
//! typed error when Google blocked the prompt, filtered the output or answered with text only.

use atelier_sdk::encoding::base64_decode;
use atelier_sdk::{Error, ProviderError, sniff};
use serde_json::Value;

/// One final image from the answer.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedImage {
    /// The type the bytes really are (sniffed).
    pub mime: &'static str,
    /// The type Google declared, when it differs from `mime`.
    pub declared_mime: Option<String>,
    /// Encoded bytes.
    pub bytes: Vec<u8>,
    /// Pixel size read from the header.
    pub width: u32,
    /// Pixel size read from the header.
    pub height: u32,
}

/// Token counts from `usageMetadata`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TokenUsage {
    /// `promptTokenCount`.
    pub input: Option<u64>,
    /// `candidatesTokenCount` + `thoughtsTokenCount` (thoughts are billed as output).
    pub output: Option<u64>,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedContent {
    /// The final images, in answer order.
    pub images: Vec<GeneratedImage>,
    /// The non-thought text parts (often a caption).
    pub text: Vec<String>,
    /// Tokens used.
    pub usage: TokenUsage,
    /// `modelVersion`.
    pub model_version: Option<String>,
    /// `responseId`.
    pub response_id: Option<String>,
}

/// Finish reasons that mean a safety system removed the output.
const MODERATION_REASONS: &[&str] = &[
    "SAFETY",
    "IMAGE_SAFETY",
    "PROHIBITED_CONTENT",
    "IMAGE_PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "RECITATION",
    "IMAGE_RECITATION",
];

/// Read a `GenerateContentResponse`.
pub fn parse_generate_content(answer: &Value) -> Result<GeneratedContent, Error> {
    if let Some(feedback) = answer.get("promptFeedback")
        && let Some(reason) = feedback.get("blockReason").and_then(Value::as_str)
    {
        let detail = feedback.get("blockReasonMessage").and_then(Value::as_str).map(|m| format!(": {m}")).unwrap_or_default();
        return Err(Error::Moderated(format!("Google blocked the prompt (blockReason {reason}){detail}")));
    }
    let candidate = answer
        .get("candidates")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| provider("NO_CANDIDATES", format!("Google answered without a candidate: {}", excerpt(answer))))?;
    let finish_reason = candidate.get("finishReason").and_then(Value::as_str).unwrap_or("");
    let finish_message = candidate.get("finishMessage").and_then(Value::as_str).unwrap_or("");

    let mut images = Vec::new();
    let mut text = Vec::new();
    let parts = candidate.pointer("/content/parts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    for part in parts {
        // Thoughts (text and interim images) are the model's drafts, not output.
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = part.get("text").and_then(Value::as_str)
            && !t.trim().is_empty()
        {
            text.push(t.to_string());
        }
        if let Some(inline) = part.get("inlineData").or_else(|| part.get("inline_data")) {
            images.push(read_image(inline)?);
        }
    }

    if images.is_empty() {
        return Err(no_image_error(finish_reason, finish_message, &text));
    }
    Ok(GeneratedContent {
        images,
        text,
        usage: read_usage(answer),
        model_version: answer.get("modelVersion").and_then(Value::as_str).map(String::from),
        response_id: answer.get("responseId").and_then(Value::as_str).map(String::from),
    })
}

/// Decode an `inlineData` part; the bytes decide the type, not `mimeType`.
fn read_image(inline: &Value) -> Result<GeneratedImage, Error> {
    let declared = inline.get("mimeType").or_else(|| inline.get("mime_type")).and_then(Value::as_str).unwrap_or("");
    let data = inline.get("data").and_then(Value::as_str).unwrap_or("");
    let bytes = base64_decode(data).map_err(|e| provider("BAD_IMAGE", format!("Google sent an image part that is not base64: {e}")))?;
    let mime = sniff::mime_of(&bytes).filter(|m| m.starts_with("image/")).ok_or_else(|| {
        provider("BAD_IMAGE", format!("Google sent {} bytes declared `{declared}` that are not a known image format", bytes.len()))
    })?;
    let (width, height) = sniff::dimensions(&bytes)
        .ok_or_else(|| provider("BAD_IMAGE", format!("Google sent a {mime} image whose size cannot be read")))?;
    let declared_mime = (declared != mime).then(|| declared.to_string());
    Ok(GeneratedImage { mime, declared_mime, bytes, width, height })
}

/// Why an answer has no image, as the error the host should report.
fn no_image_error(finish_reason: &str, finish_message: &str, text: &[String]) -> Error {
    let said = if !text.is_empty() {
        format!(" The model said: \"{}\"", atelier_sdk::excerpt(text.join(" ").as_bytes(), 500))
    } else if !finish_message.is_empty() {
        format!(" Google said: \"{finish_message}\"")
    } else {
        String::new()
    };
    if MODERATION_REASONS.contains(&finish_reason) || finish_reason.starts_with("IMAGE_SAFETY") {
        return Error::Moderated(format!("Google's safety filter removed the image (finishReason {finish_reason}).{said}"));
    }
    match finish_reason {
        // The model chose to answer in words (asked a question, refused politely): rephrase.
        "" | "STOP" | "NO_IMAGE" if !text.is_empty() => Error::InvalidInput(format!(
            "the model answered with text instead of an image (finishReason {}).{said} Rephrase the prompt as an explicit image edit.",
            if finish_reason.is_empty() { "none" } else { finish_reason }
        )),
        _ => provider(
            if finish_reason.is_empty() { "NO_IMAGE" } else { finish_reason },
            format!("Google returned no image (finishReason {}).{said}", if finish_reason.is_empty() { "none" } else { finish_reason }),
        ),
    }
}

/// `usageMetadata` token counts.
fn read_usage(answer: &Value) -> TokenUsage {
    let meta = answer.get("usageMetadata");
    let count = |name: &str| meta.and_then(|m| m.get(name)).and_then(Value::as_u64);
    let output = match (count("candidatesTokenCount"), count("thoughtsTokenCount")) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    TokenUsage { input: count("promptTokenCount"), output }
}

/// A `provider` error with Google's (or our) code.
pub fn provider(code: &str, message: String) -> Error {
    Error::Provider(ProviderError { code: code.into(), message })
}

/// The first 300 characters of a JSON answer, for messages ([`atelier_sdk::excerpt`]).
pub fn excerpt(v: &Value) -> String {
    atelier_sdk::excerpt(v.to_string().as_bytes(), 300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_sdk::encoding::base64_encode;
    use serde_json::json;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0]);
        b
    }

    fn jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00];
        b.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        b
    }

    #[test]
    fn skips_thoughts_and_reads_the_final_image() {
        let answer = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Planning the composition", "thought": true},
                {"inlineData": {"mimeType": "image/png", "data": base64_encode(&png(64, 64))}, "thought": true},
                {"text": "Here you go."},
                {"inlineData": {"mimeType": "image/png", "data": base64_encode(&png(1024, 768))}, "thoughtSignature": "c2ln"}
            ]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 15, "candidatesTokenCount": 1290, "thoughtsTokenCount": 100, "totalTokenCount": 1405},
            "modelVersion": "gemini-3.1-flash-image",
            "responseId": "abc"
        });
        let got = parse_generate_content(&answer).unwrap();
        assert_eq!(got.images.len(), 1);
        assert_eq!((got.images[0].width, got.images[0].height), (1024, 768));
        assert_eq!(got.images[0].mime, "image/png");
        assert_eq!(got.images[0].declared_mime, None);
        assert_eq!(got.text, ["Here you go."]);
        assert_eq!(got.usage, TokenUsage { input: Some(15), output: Some(1390) });
        assert_eq!(got.response_id.as_deref(), Some("abc"));
    }

    #[test]
    fn jpeg_declared_as_png_is_detected() {
        let answer = json!({"candidates": [{"content": {"parts": [
            {"inlineData": {"mimeType": "image/png", "data": base64_encode(&jpeg(300, 200))}}]}, "finishReason": "STOP"}]});
        let got = parse_generate_content(&answer).unwrap();
        assert_eq!(got.images[0].mime, "image/jpeg");
        assert_eq!(got.images[0].declared_mime.as_deref(), Some("image/png"));
        assert_eq!((got.images[0].width, got.images[0].height), (300, 200));
    }

    #[test]
    fn block_reason_is_moderated() {
        let answer = json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "safetyRatings": []},
                            "usageMetadata": {"promptTokenCount": 5}});
        match parse_generate_content(&answer) {
            Err(Error::Moderated(m)) => assert!(m.contains("PROHIBITED_CONTENT")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn image_safety_finish_is_moderated() {
        let answer = json!({"candidates": [{"finishReason": "IMAGE_SAFETY", "finishMessage": "Unable to show the generated image."}]});
        match parse_generate_content(&answer) {
            Err(Error::Moderated(m)) => assert!(m.contains("IMAGE_SAFETY") && m.contains("Unable to show")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_only_answer_is_an_error_quoting_the_model() {
        let answer = json!({"candidates": [{"content": {"parts": [{"text": "Which kite do you mean?"}]}, "finishReason": "STOP"}]});
        match parse_generate_content(&answer) {
            Err(Error::InvalidInput(m)) => assert!(m.contains("\"Which kite do you mean?\""), "{m}"),
            other => panic!("{other:?}"),
        }
        let answer = json!({"candidates": [{"finishReason": "MAX_TOKENS"}]});
        assert!(matches!(parse_generate_content(&answer), Err(Error::Provider(p)) if p.code == "MAX_TOKENS"));
        assert!(matches!(parse_generate_content(&json!({})), Err(Error::Provider(_))));
    }

    #[test]
    fn bytes_that_are_no_image_are_an_error() {
        let answer = json!({"candidates": [{"content": {"parts": [
            {"inlineData": {"mimeType": "image/png", "data": base64_encode(b"not an image")}}]}}]});
        assert!(matches!(parse_generate_content(&answer), Err(Error::Provider(p)) if p.code == "BAD_IMAGE"));
    }
}
