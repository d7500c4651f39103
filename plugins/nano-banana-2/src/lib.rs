//! Nano Banana 2: image edits with Gemini 3.1 Flash Image (`generateContent`): up to 14
//! references, output size `512`/`1K`/`2K`/`4K`, wide aspect ratios, a thinking level.
//!
//! Limits follow the configured model id (e.g. `gemini-3-pro-image` has no `512`, no extra-wide
//! ratios and no thinking level), so pointing `model` at a sibling keeps the checks honest.
//! One image per call (`max-outputs = 1`): the host fans `-n N` out into N calls.

use atelier_sdk::*;
use gemini_protocol::image_models::{ImageFamily, ImageModelSpec};
use gemini_protocol::image_params::{check_allowed, check_references, edit_request, reference_plan, text_param};
use gemini_protocol::{Endpoint, image_edit};

/// The plugin id, as in `plugin.toml`.
const ID: &str = "nano-banana-2";

#[derive(Default)]
struct NanoBanana2;

/// The configured model id and its limits (3.1 Flash Image rules for unknown ids).
fn configured() -> (String, ImageModelSpec) {
    let model = config::get("model").unwrap_or_default();
    let spec = ImageModelSpec::for_model(&model, ImageFamily::Flash31);
    (model, spec)
}

/// The output size classes (uppercase K; 4K costs more and takes longer), the default first.
fn sizes(spec: &ImageModelSpec) -> Vec<String> {
    let mut sizes: Vec<String> = spec.sizes.iter().map(|s| s.to_string()).collect();
    if let Some(at) = spec.default_size.and_then(|d| sizes.iter().position(|s| s == d)) {
        let default = sizes.remove(at);
        sizes.insert(0, default);
    }
    sizes
}

/// The parameters the configured model takes besides the typed aspect ratio and size.
fn params(spec: &ImageModelSpec) -> Vec<ParamSpec> {
    let mut params = vec![];
    if !spec.thinking_levels.is_empty() {
        params.push(ParamSpec::choice(
            "thinking",
            "How much the model reasons before drawing (Google's default is minimal; high is slower, better on complex edits)",
            spec.thinking_levels,
        ));
    }
    params
}

impl Model for NanoBanana2 {
    fn describe(&self) -> ModelInfo {
        let (model, spec) = configured();
        ModelInfo {
            description: "Google's Gemini 3.1 Flash Image: edits and compositions from up to 14 references (up to \
                          10 objects and 4 characters), output from 512 px to 4K, aspect ratios up to 8:1. No mask \
                          (describe the region in the prompt). Every output carries a SynthID watermark."
                .into(),
            model,
            max_references: spec.max_references,
            max_outputs: 1,
            // Typed `--aspect`; when left out Google matches the first reference.
            aspect_ratios: spec.aspect_ratios.iter().map(|r| r.to_string()).collect(),
            sizes: sizes(&spec),
            // Gemini draws from the prompt alone too.
            generates_without_input: true,
            params: params(&spec),
            ..ModelInfo::image_edit(ID, "Nano Banana 2 (Gemini 3.1 Flash Image)")
        }
    }

    fn prepare(&self, d: &Draft) -> Result<InputPlan, Error> {
        let (model, spec) = configured();
        check_references(&spec, d.references.len(), d.has_mask, &model)?;
        if let Some(aspect) = d.aspect.as_deref() {
            check_allowed("aspect", aspect, spec.aspect_ratios, &model, ID)?;
        }
        if let Some(size) = d.size.as_deref() {
            check_allowed("size", size, spec.sizes, &model, ID)?;
        }
        if let Some(level) = text_param(&d.params, "thinking") {
            check_allowed("thinking", &level.to_ascii_lowercase(), spec.thinking_levels, &model, ID)?;
        }
        Ok(reference_plan(d.references.len()))
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let endpoint = Endpoint::from_config()?;
        let (_, spec) = configured();
        // Without `--size` the model's default is sent, as before sizes were typed.
        let size = req.size.as_deref().or(spec.default_size);
        let call = edit_request(&req, req.aspect.as_deref(), size, text_param(&req.params, "thinking"));
        Ok(Submission::Done(image_edit::run(&endpoint, ID, &call)?))
    }
}

register_model!(NanoBanana2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_params_follow_the_model_family() {
        let flash = ImageFamily::Flash31.spec();
        let names: Vec<String> = params(&flash).iter().map(|p| p.name.clone()).collect();
        assert_eq!(names, ["thinking"]);
        let flash_sizes = sizes(&flash);
        assert_eq!(flash_sizes[0], "1K", "the default first");
        assert!(flash_sizes.contains(&"512".to_string()));
        assert!(flash.aspect_ratios.contains(&"8:1"));

        let pro = ImageFamily::Pro3.spec();
        assert!(params(&pro).is_empty());
        assert!(!sizes(&pro).contains(&"512".to_string()));
        assert!(!pro.aspect_ratios.contains(&"8:1"));
    }
}
