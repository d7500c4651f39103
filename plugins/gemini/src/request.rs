//! The `generateContent` request body for image editing (camelCase, as the SDKs send it).

use atelier_sdk::encoding::base64_encode;
use atelier_sdk::{Error, sniff};
use serde_json::{Map, Value, json};

/// Input image types the Gemini API accepts in `inlineData`.
pub const ACCEPTED_INPUT_MIMES: &[&str] = &["image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"];

/// One input image.
#[derive(Clone, Debug)]
pub struct InlineImage<'a> {
    /// The type the caller declared (may be wrong or bare, e.g. `png`; the bytes decide).
    pub mime: &'a str,
    /// Encoded bytes.
    pub bytes: &'a [u8],
}

/// An image-edit call: the prompt, the references and the image settings.
#[derive(Clone, Debug, Default)]
pub struct ImageEditRequest<'a> {
    /// The user's instruction.
    pub prompt: &'a str,
    /// References in the user's order (the first is the one being edited).
    pub images: Vec<InlineImage<'a>>,
    /// `imageConfig.aspectRatio`, e.g. `16:9`; `None` lets Google match the input.
    pub aspect_ratio: Option<&'a str>,
    /// `imageConfig.imageSize`, e.g. `2K` (3.x models only).
    pub image_size: Option<&'a str>,
    /// `thinkingConfig.thinkingLevel`, e.g. `high` (3.1 Flash Image only); sent uppercase.
    pub thinking_level: Option<&'a str>,
    /// `generationConfig.seed`.
    pub seed: Option<u64>,
}

/// The full MIME type of an input image: what the bytes are, else the declared type made complete.
pub fn input_mime(image: &InlineImage<'_>) -> Result<&'static str, Error> {
    let declared = image.mime.trim().to_ascii_lowercase();
    let declared = if declared.contains('/') { declared } else { format!("image/{declared}") };
    let declared = if declared == "image/jpg" { "image/jpeg".to_string() } else { declared };
    let declared_accepted = ACCEPTED_INPUT_MIMES.iter().copied().find(|m| *m == declared);
    let mime = match sniff::mime_of(image.bytes) {
        // HEIF files are ISO-BMFF too, so the sniffer calls them video/mp4.
        Some("video/mp4") if declared.starts_with("image/hei") => declared_accepted.unwrap_or(""),
        Some(real) => real,
        None => declared_accepted.unwrap_or(""),
    };
    if ACCEPTED_INPUT_MIMES.contains(&mime) {
        Ok(mime)
    } else {
        Err(Error::invalid(format!(
            "a reference image is `{}`, which Gemini does not accept; use one of: {}",
            if mime.is_empty() { declared.as_str() } else { mime },
            ACCEPTED_INPUT_MIMES.join(", ")
        )))
    }
}

/// The JSON body of `models/{model}:generateContent`.
///
/// Text first, then the images as `inlineData` with full MIME types. Modalities are TEXT+IMAGE so
/// a refusal comes back as text we can quote. Never sets `candidateCount` (Google rejects > 1 for
/// image models; the host makes one call per output instead).
pub fn generate_content_body(req: &ImageEditRequest<'_>) -> Result<Value, Error> {
    let mut parts = Vec::with_capacity(req.images.len() + 1);
    if !req.prompt.trim().is_empty() {
        parts.push(json!({"text": req.prompt}));
    }
    for image in &req.images {
        parts.push(json!({"inlineData": {"mimeType": input_mime(image)?, "data": base64_encode(image.bytes)}}));
    }
    if parts.is_empty() {
        return Err(Error::invalid("give a prompt or at least one reference image"));
    }

    let mut image_config = Map::new();
    if let Some(ratio) = req.aspect_ratio {
        image_config.insert("aspectRatio".into(), json!(ratio));
    }
    if let Some(size) = req.image_size {
        image_config.insert("imageSize".into(), json!(size));
    }
    let mut generation_config = Map::new();
    generation_config.insert("responseModalities".into(), json!(["TEXT", "IMAGE"]));
    if !image_config.is_empty() {
        generation_config.insert("imageConfig".into(), Value::Object(image_config));
    }
    if let Some(level) = req.thinking_level {
        generation_config.insert("thinkingConfig".into(), json!({"thinkingLevel": level.to_ascii_uppercase()}));
    }
    if let Some(seed) = req.seed {
        // `seed` is an int32 on the wire.
        generation_config.insert("seed".into(), json!(seed % (i32::MAX as u64 + 1)));
    }
    Ok(json!({
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": Value::Object(generation_config),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10";
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10];

    #[test]
    fn body_is_camel_case_with_full_mime_types() {
        let req = ImageEditRequest {
            prompt: "make it blue",
            images: vec![InlineImage { mime: "png", bytes: PNG }, InlineImage { mime: "image/png", bytes: JPEG }],
            aspect_ratio: Some("16:9"),
            image_size: Some("2K"),
            thinking_level: Some("high"),
            seed: Some(7),
        };
        let body = generate_content_body(&req).unwrap();
        let parts = &body["contents"][0]["parts"];
        assert_eq!(parts[0]["text"], "make it blue");
        assert_eq!(parts[1]["inlineData"]["mimeType"], "image/png");
        // declared png, bytes are JPEG: the bytes win
        assert_eq!(parts[2]["inlineData"]["mimeType"], "image/jpeg");
        assert_eq!(parts[1]["inlineData"]["data"], base64_encode(PNG));
        let config = &body["generationConfig"];
        assert_eq!(config["responseModalities"], json!(["TEXT", "IMAGE"]));
        assert_eq!(config["imageConfig"], json!({"aspectRatio": "16:9", "imageSize": "2K"}));
        assert_eq!(config["thinkingConfig"], json!({"thinkingLevel": "HIGH"}));
        assert_eq!(config["seed"], 7);
        let text = body.to_string();
        assert!(!text.contains("candidateCount") && !text.contains("inline_data") && !text.contains("mime_type"));
    }

    #[test]
    fn optional_settings_are_left_out() {
        let req = ImageEditRequest { prompt: "x", images: vec![InlineImage { mime: "image/png", bytes: PNG }], ..Default::default() };
        let body = generate_content_body(&req).unwrap();
        let config = body["generationConfig"].as_object().unwrap();
        assert_eq!(config.keys().collect::<Vec<_>>(), ["responseModalities"]);
    }

    #[test]
    fn unknown_bytes_need_a_declared_accepted_type() {
        let heic = InlineImage { mime: "heic", bytes: b"\0\0\0\x18ftypheic" };
        assert_eq!(input_mime(&heic).unwrap(), "image/heic");
        let mp4 = InlineImage { mime: "video/mp4", bytes: b"\0\0\0\x18ftypisom" };
        assert!(input_mime(&mp4).is_err());
        let unknown = InlineImage { mime: "image/webp", bytes: b"????" };
        assert_eq!(input_mime(&unknown).unwrap(), "image/webp");
        let gif = InlineImage { mime: "image/gif", bytes: b"GIF89a...." };
        let err = input_mime(&gif).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(m) if m.contains("image/gif") && m.contains("image/png")));
    }
}
