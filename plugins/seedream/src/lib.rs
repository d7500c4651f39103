//! Seedream 4.0 / 4.5 through BytePlus ModelArk (`POST {base_url}/api/v3/images/generations`).
//!
//! The call is synchronous: `submit` returns the images (inline for `b64_json`, as host downloads
//! for `url`). `-n N` asks for a batch (`sequential_image_generation = "auto"`, `max_images = N`);
//! items of a batch that failed are reported in `Outcome.failures` while the good ones are kept.
//!
//! No partial results (contract 0.2's `progress.partials`): ModelArk reports images one by one only
//! over SSE (`stream: true`), and the host's `http.send` returns a whole body, so the batch arrives
//! in one answer to `submit`, which never leaves a job pending to poll.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub mod request;
pub mod response;
pub mod rules;

use atelier_sdk::*;
use provider_common::trim_base;

/// The Seedream backend.
#[derive(Default)]
pub struct Seedream;

/// The configured model id.
fn model_id() -> String {
    config::get("model").unwrap_or_else(|| "seedream-4-0-250828".into())
}

/// The size rules of the configured model (from `model_version`, else the model id).
fn version() -> rules::Version {
    rules::Version::detect(&model_id(), config::get("model_version").as_deref())
}

impl Model for Seedream {
    fn describe(&self) -> ModelInfo {
        let model = model_id();
        let sizes = rules::sizes(version());
        ModelInfo {
            description: "ByteDance Seedream 4.x on BytePlus ModelArk: edits and blends up to 14 reference images, \
                          returns up to 15 images per request (references + outputs ≤ 15). Output is JPEG. \
                          No mask and no reproducible seed."
                .into(),
            model,
            max_references: rules::MAX_REFERENCES,
            max_outputs: rules::MAX_TOTAL_IMAGES,
            // `--size`: the presets (2K first) and BytePlus's suggested pixel sizes; without it
            // ModelArk makes 2048x2048.
            sizes: sizes.iter().map(|s| s.to_string()).collect(),
            // ModelArk draws from the prompt alone too.
            generates_without_input: true,
            params: vec![
                ParamSpec::text("custom_size", "WxH within the model's pixel bounds (4.0: 1280x720 to 4096x4096 pixels; 4.5: from 2560x1440), instead of --size"),
                ParamSpec::boolean("watermark", "Add ModelArk's \"AI generated\" mark at the bottom right (provider default: on)")
                    .default(true),
                ParamSpec::choice("response_format", "b64_json: images come back in the response; url: the host downloads them", &[
                    "b64_json", "url",
                ])
                .default("b64_json"),
                ParamSpec::choice("prompt_mode", "Prompt optimisation: standard, or fast (4.0 only)", &["standard", "fast"]),
            ],
            input_mime: "image/png".into(),
            ..ModelInfo::image_edit("seedream", "Seedream 4 (BytePlus ModelArk)")
        }
    }

    fn prepare(&self, d: &Draft) -> Result<InputPlan, Error> {
        rules::check(version(), &model_id(), &d.prompt, &d.references, d.has_mask, d.n, d.size.as_deref(), &d.params)?;
        Ok(InputPlan { exact_size: None, max_side: Some(rules::MAX_INPUT_SIDE) })
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let model = model_id();
        rules::check_request(version(), &model, &req.prompt, req.references.len(), req.mask.is_some(), req.n, req.size.as_deref(), &req.params)?;
        for (i, m) in req.references.iter().enumerate() {
            if let Some(dims) = sniff::dimensions(&m.bytes) {
                rules::check_reference(i, dims)?;
            }
        }
        let job = request::Job::from_request(&model, &req)?;
        let url = format!("{}/api/v3/images/generations", trim_base(&config::get("base_url").unwrap_or_else(|| {
            "https://ark.ap-southeast.bytepluses.com".into()
        })));
        let http_req = http::Request::post_json(&url, &job.body())
            .header("authorization", &format!("Bearer {}", http::secret("ARK_API_KEY")))
            .header("accept", "application/json");
        let resp = http_req.send()?;
        if !resp.is_success() {
            return Err(response::map_error(resp.status, http::retry_after_ms(&resp), &resp.body));
        }
        let body = resp.submit_json("ModelArk")?;
        let outcome = response::parse(&body, job.n, job.response_format, clock::wall_ms())?;
        Ok(Submission::Done(outcome))
    }
}

register_model!(Seedream);
