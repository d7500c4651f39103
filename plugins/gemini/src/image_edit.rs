//! One image-edit call end to end: build, send, read, and hand back the contract's outcome.

use crate::client::post_json;
use crate::endpoint::Endpoint;
use crate::errors::ErrorContext;
use crate::request::{ImageEditRequest, generate_content_body};
use crate::response::{GeneratedContent, parse_generate_content};
use atelier_sdk::{Artifact, Error, ImageUsage, Outcome, Usage};

/// Call `generateContent` and return the final images as inline artifacts.
pub fn run(endpoint: &Endpoint, plugin_id: &str, req: &ImageEditRequest<'_>) -> Result<Outcome, Error> {
    let ctx = ErrorContext {
        plugin_id: plugin_id.to_string(),
        model: endpoint.model.clone(),
        api_version: endpoint.api_version.clone(),
        resource: None,
    };
    let body = generate_content_body(req)?;
    let answer = post_json(&endpoint.method_url("generateContent"), &body, &ctx)?;
    Ok(to_outcome(parse_generate_content(&answer)?, &endpoint.model, req.seed))
}

/// The contract's outcome for a successful answer: inline artifacts with the sniffed type, usage
/// by image size plus tokens, and provenance notes.
pub fn to_outcome(content: GeneratedContent, model: &str, seed: Option<u64>) -> Outcome {
    let mut usage = Usage { input_tokens: content.usage.input, output_tokens: content.usage.output, ..Usage::none() };
    let mut artifacts = Vec::with_capacity(content.images.len());
    for image in content.images {
        match usage.images.iter_mut().find(|u| u.width == image.width && u.height == image.height) {
            Some(u) => u.count += 1,
            None => usage.images.push(ImageUsage { width: image.width, height: image.height, count: 1 }),
        }
        let mut artifact = Artifact::inline(image.mime, image.bytes);
        artifact.seed = seed;
        artifact.notes.push(("model".into(), content.model_version.clone().unwrap_or_else(|| model.to_string())));
        if let Some(id) = &content.response_id {
            artifact.notes.push(("response_id".into(), id.clone()));
        }
        if let Some(declared) = image.declared_mime {
            artifact.notes.push(("declared_mime".into(), declared));
        }
        if !content.text.is_empty() {
            artifact.notes.push(("model_text".into(), content.text.join("\n")));
        }
        artifacts.push(artifact);
    }
    Outcome { usage, ..Outcome::new(artifacts) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::{GeneratedImage, TokenUsage};
    use atelier_sdk::Body;

    #[test]
    fn outcome_counts_images_by_size_and_keeps_provenance() {
        let image = |w, h| GeneratedImage { mime: "image/jpeg", declared_mime: Some("image/png".into()), bytes: vec![1], width: w, height: h };
        let content = GeneratedContent {
            images: vec![image(10, 20), image(10, 20), image(5, 5)],
            text: vec!["done".into()],
            usage: TokenUsage { input: Some(3), output: Some(4) },
            model_version: None,
            response_id: Some("r1".into()),
        };
        let out = to_outcome(content, "gemini-2.5-flash-image", Some(9));
        assert_eq!(out.artifacts.len(), 3);
        assert_eq!(out.artifacts[0].mime, "image/jpeg");
        assert!(matches!(&out.artifacts[0].body, Body::Inline(b) if b == &vec![1]));
        assert_eq!(out.artifacts[0].seed, Some(9));
        assert!(out.artifacts[0].notes.contains(&("declared_mime".into(), "image/png".into())));
        assert!(out.artifacts[0].notes.contains(&("model".into(), "gemini-2.5-flash-image".into())));
        assert_eq!(out.usage.images.len(), 2);
        assert_eq!(out.usage.images[0].count, 2);
        assert_eq!(out.usage.input_tokens, Some(3));
    }
}
