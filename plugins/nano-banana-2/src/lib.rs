//! Nano Banana 2: image edits with Gemini 3.1 Flash Image (`generateContent`): up to 14
//! references, output size `512`/`1K`/`2K`/`4K`, wide aspect ratios, a thinking level.
//!
//! Limits follow the configured model id (e.g. `gemini-3-pro-image` has no `512`, no extra-wide
//! ratios and no thinking level), so pointing `model` at a sibling keeps the checks honest.
//! One image per call (`max-outputs = 1`): the host fans `-n N` out into N calls.

use atelier_sdk::v0_1::*;
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

/// The parameters the configured model takes.
fn params(spec: &ImageModelSpec) -> Vec<ParamSpec> {
    let mut params = vec![ParamSpec::choice(
        "aspect",
        "Output aspect ratio; when left out Google matches the first reference",
        spec.aspect_ratios,
    )];
    if !spec.sizes.is_empty() {
        let size = ParamSpec::choice("size", "Output size class (uppercase K); 4K costs more and takes longer", spec.sizes);
        params.push(match spec.default_size {
            Some(default) => size.default(default),
            None => size,
        });
    }
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
            aspect_ratios: spec.aspect_ratios.iter().map(|r| r.to_string()).collect(),
            sizes: spec.sizes.iter().map(|s| s.to_string()).collect(),
            params: params(&spec),
            ..ModelInfo::image_edit(ID, "Nano Banana 2 (Gemini 3.1 Flash Image)")
        }
    }

    fn prepare(
        &self,
        _prompt: &str,
        references: &[(u32, u32)],
        has_mask: bool,
        _n: u32,
        params: &[Param],
    ) -> Result<InputPlan, Error> {
        let (model, spec) = configured();
        check_references(&spec, references.len(), has_mask, &model)?;
        if let Some(aspect) = text_param(params, "aspect") {
            check_allowed("aspect", aspect, spec.aspect_ratios, &model, ID)?;
        }
        if let Some(size) = text_param(params, "size") {
            check_allowed("size", size, spec.sizes, &model, ID)?;
        }
        if let Some(level) = text_param(params, "thinking") {
            check_allowed("thinking", &level.to_ascii_lowercase(), spec.thinking_levels, &model, ID)?;
        }
        Ok(reference_plan(references.len()))
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let endpoint = Endpoint::from_config()?;
        let call = edit_request(
            &req,
            text_param(&req.params, "aspect"),
            text_param(&req.params, "size"),
            text_param(&req.params, "thinking"),
        );
        Ok(Submission::Done(image_edit::run(&endpoint, ID, &call)?))
    }
}

register_model!(NanoBanana2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_follow_the_model_family() {
        let flash = params(&ImageFamily::Flash31.spec());
        let names: Vec<&str> = flash.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["aspect", "size", "thinking"]);
        assert!(flash[1].choices.contains(&"512".to_string()));
        assert!(matches!(&flash[1].default, Some(Value::Text(d)) if d == "1K"));
        assert!(flash[0].choices.contains(&"8:1".to_string()));

        let pro = params(&ImageFamily::Pro3.spec());
        let names: Vec<&str> = pro.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["aspect", "size"]);
        assert!(!pro[1].choices.contains(&"512".to_string()));
        assert!(!pro[0].choices.contains(&"8:1".to_string()));
    }
}
