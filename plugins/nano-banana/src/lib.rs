//! Nano Banana: image edits with Gemini 2.5 Flash Image (`generateContent`), up to 3 references.
//!
//! The wire protocol lives in `gemini-protocol`; this crate says what the model accepts and maps
//! the contract's request onto it. One image per call (`max-outputs = 1`): Google rejects
//! `candidateCount > 1`, so the host fans `-n N` out into N calls.

use atelier_sdk::*;
use gemini_protocol::image_models::{ImageFamily, ImageModelSpec};
use gemini_protocol::image_params::{check_allowed, check_references, edit_request, reference_plan};
use gemini_protocol::{Endpoint, image_edit};

/// The plugin id, as in `plugin.toml`.
const ID: &str = "nano-banana";

#[derive(Default)]
struct NanoBanana;

/// The configured model id and its limits (2.5 Flash Image rules for unknown ids).
fn configured() -> (String, ImageModelSpec) {
    let model = config::get("model").unwrap_or_default();
    let spec = ImageModelSpec::for_model(&model, ImageFamily::Flash25);
    (model, spec)
}

impl Model for NanoBanana {
    fn describe(&self) -> ModelInfo {
        let (model, spec) = configured();
        ModelInfo {
            description: "Google's Gemini 2.5 Flash Image: conversational edits, style transfer and composing up to \
                          3 reference images (the first is the one edited). ~1 megapixel output in the chosen aspect \
                          ratio; no mask (describe the region in the prompt). Every output carries a SynthID watermark."
                .into(),
            model,
            max_references: spec.max_references,
            max_outputs: 1,
            // Typed `--aspect`; when left out Google matches the first reference.
            aspect_ratios: spec.aspect_ratios.iter().map(|r| r.to_string()).collect(),
            // Gemini draws from the prompt alone too.
            generates_without_input: true,
            ..ModelInfo::image_edit(ID, "Nano Banana (Gemini 2.5 Flash Image)")
        }
    }

    fn prepare(&self, d: &Draft) -> Result<InputPlan, Error> {
        let (model, spec) = configured();
        check_references(&spec, d.references.len(), d.has_mask, &model)?;
        if let Some(aspect) = d.aspect.as_deref() {
            check_allowed("aspect", aspect, spec.aspect_ratios, &model, ID)?;
        }
        Ok(reference_plan(d.references.len()))
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let endpoint = Endpoint::from_config()?;
        let call = edit_request(&req, req.aspect.as_deref(), None, None);
        Ok(Submission::Done(image_edit::run(&endpoint, ID, &call)?))
    }
}

register_model!(NanoBanana);
