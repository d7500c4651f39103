//! A provider plugin written with the SDK's helpers: OpenAI `gpt-image-1` image edits
//! (`POST /v1/images/edits`, multipart), the example in `docs/writing-plugins.md`.
//!
//! Built natively by `cargo test -p atelier-sdk --features image` (the wasm export glue is compiled
//! out), so the documented code always compiles. As a plugin it is a `cdylib` crate with this file
//! as `src/lib.rs` (without `main`), built with `atelier plugins build`.

use atelier_sdk::multipart::Form;
use atelier_sdk::*;

/// Who answers, for the retry table's messages: the secret is named in `unauthorized` errors
/// together with the `[plugins.gpt-image-edit.secrets]` line that assigns it.
const OPENAI: Service = Service { name: "OpenAI", plugin_id: "gpt-image-edit", secret: "OPENAI_API_KEY" };

#[derive(Default)]
struct GptImageEdit;

impl Model for GptImageEdit {
    fn describe(&self) -> ModelInfo {
        ModelInfo::new("gpt-image-edit", "GPT Image edits (OpenAI)")
            .description("OpenAI gpt-image-1: edits up to 16 images by instruction; a mask (white = edit) limits the change.")
            .model(&config::get("model").unwrap_or_else(|| "gpt-image-1".into()))
            .max_references(16)
            .max_outputs(10)
            .supports_mask(true)
            // Typed `--size`; the host refuses anything else before calling the plugin.
            .sizes(&["auto", "1024x1024", "1536x1024", "1024x1536"])
            .param(ParamSpec::choice("quality", "Rendering quality", &["auto", "low", "medium", "high"]).default("auto"))
    }

    fn prepare(&self, draft: &Draft) -> Result<InputPlan, Error> {
        if draft.references.is_empty() {
            return Err(Error::invalid("give at least one image to edit"));
        }
        // 50 MB per image is OpenAI's cap; 4096 px PNGs stay well under it.
        Ok(InputPlan::max_side(4096))
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let model = config::get("model").unwrap_or_else(|| "gpt-image-1".into());
        let mut form = Form::new(clock::wall_ms())
            .text("model", &model)
            .text("prompt", &req.prompt)
            .text("n", &req.n.to_string())
            .text("size", req.size.as_deref().unwrap_or("auto"))
            .text("quality", req.params.text("quality").unwrap_or("auto"));
        for (i, image) in req.references.iter().enumerate() {
            form = form.file("image[]", &format!("image-{i}.png"), &image.mime, &image.bytes);
        }
        if let Some(mask) = &req.mask {
            // atelier's masks are white = edit; OpenAI's are transparent = edit.
            form = form.file("mask", "mask.png", "image/png", &imaging::mask_as_transparency(mask)?);
        }
        let base = config::get("base_url").unwrap_or_else(|| "https://api.openai.com".into());
        let resp = http::Request::new("POST", &format!("{base}/v1/images/edits"))
            .header("authorization", &format!("Bearer {}", http::secret("OPENAI_API_KEY")))
            .multipart(form)
            .send()?;
        if !resp.is_success() {
            // 429 → rate-limited (Retry-After), 5xx → unavailable, 401/403 → unauthorized, ...
            return Err(Error::from_response(&OPENAI, &resp));
        }
        let answer = resp.submit_json("OpenAI")?;
        let mut artifacts = vec![];
        for item in answer["data"].as_array().into_iter().flatten() {
            let b64 = item["b64_json"].as_str().ok_or_else(|| {
                Error::unreadable_submit("OpenAI", resp.status, &format!("an image without b64_json: {}", excerpt(item.to_string().as_bytes(), 200)))
            })?;
            let bytes = encoding::base64_decode(b64).map_err(|e| Error::unreadable_submit("OpenAI", resp.status, &e))?;
            let (w, h) = sniff::dimensions(&bytes).unwrap_or((0, 0));
            artifacts.push((Artifact::inline(sniff::mime_of(&bytes).unwrap_or("image/png"), bytes), w, h));
        }
        let usage = match artifacts.first() {
            Some((_, w, h)) => Usage::images(*w, *h, artifacts.len() as u32),
            None => Usage::none(),
        };
        let usage = Usage { output_tokens: answer["usage"]["output_tokens"].as_u64(), ..usage };
        let artifacts = artifacts.into_iter().map(|(a, _, _)| a.note("model", model.clone())).collect();
        Ok(Submission::Done(Outcome::new(artifacts).usage(usage)))
    }
}

register_model!(GptImageEdit);

/// A plugin has no `main`; this example is built as a binary so `cargo test` compiles it.
fn main() {}
