//! FLUX.1 Kontext [pro]/[max] through BFL's API, with FLUX.1 Fill [pro] for masked edits.
//!
//! `submit` POSTs `{base_url}/v1/{model}` (or `/v1/{fill_model}` with a mask) with `x-key`, and
//! returns a pending token holding the task id and the `polling_url` BFL returned, verbatim (it
//! names the regional host that took the job). `poll` GETs that URL; `Ready` yields a download of
//! `result.sample`, a signed URL that needs no key and expires 10 minutes after it is issued.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub mod request;
pub mod status;

use atelier_sdk::*;
use provider_common::{decode_token, encode_token, trim_base};

/// The FLUX Kontext backend.
#[derive(Default)]
pub struct FluxKontext;

/// Aspect ratios Kontext takes (the API accepts 21:9 to 9:21).
pub const ASPECT_RATIOS: [&str; 11] = ["21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21"];

fn setting(key: &str, default: &str) -> String {
    config::get(key).unwrap_or_else(|| default.into())
}

fn poll_interval_ms() -> u64 {
    setting("poll_interval_ms", "500").parse().unwrap_or(500)
}

impl Model for FluxKontext {
    fn describe(&self) -> ModelInfo {
        ModelInfo {
            description: "Black Forest Labs FLUX.1 Kontext: edits an image by instruction, keeping what the prompt does \
                          not mention; up to 3 extra references (experimental). With a mask it uses FLUX.1 Fill [pro] \
                          (white = repaint). One image per job; a seed makes results repeatable."
                .into(),
            model: setting("model", "flux-kontext-pro"),
            max_references: 4,
            max_outputs: 1,
            // Typed: `--aspect` (default: the input's); not with a mask.
            aspect_ratios: ASPECT_RATIOS.iter().map(|s| s.to_string()).collect(),
            supports_mask: true,
            supports_seed: true,
            params: vec![
                ParamSpec::choice("output_format", "Output encoding", &["png", "jpeg"]).default("png"),
                ParamSpec::integer("safety_tolerance", "Moderation strictness, 0 (strictest) to 6", 0, 6).default(2i64),
                ParamSpec::boolean("prompt_upsampling", "Let BFL rewrite the prompt for more detail").default(false),
                ParamSpec::integer("steps", "Diffusion steps, masked edits (FLUX Fill) only", 15, 50),
                ParamSpec::number("guidance", "Prompt adherence, masked edits (FLUX Fill) only", 1.5, 100.0),
            ],
            input_mime: "image/png".into(),
            ..ModelInfo::image_edit("flux-kontext", "FLUX.1 Kontext (BFL)")
        }
    }

    fn prepare(&self, d: &Draft) -> Result<InputPlan, Error> {
        request::check(&d.prompt, d.references.len(), d.has_mask, d.aspect.as_deref(), &d.params)?;
        Ok(request::input_plan(d.has_mask))
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        request::check(&req.prompt, req.references.len(), req.mask.is_some(), req.aspect.as_deref(), &req.params)?;
        let endpoint = if req.mask.is_some() { setting("fill_model", "flux-pro-1.0-fill") } else { setting("model", "flux-kontext-pro") };
        let body = if req.mask.is_some() { request::fill_body(&req) } else { request::kontext_body(&req) };
        let url = format!("{}/v1/{endpoint}", trim_base(&setting("base_url", "https://api.bfl.ai")));
        let resp = http::Request::post_json(&url, &body)
            .header("x-key", &http::secret("BFL_API_KEY"))
            .header("accept", "application/json")
            .send()?;
        if !resp.is_success() {
            return Err(status::map_submit_error(resp.status, http::retry_after_ms(&resp), &resp.body, &endpoint));
        }
        let token = status::token_from_submit(&resp.submit_json("BFL")?, &endpoint, &req)?;
        Ok(Submission::Pending(Pending { token: encode_token(&token), retry_after_ms: poll_interval_ms() }))
    }

    fn poll(&self, token: &str) -> Result<Status, Error> {
        let token = decode_token(token)?;
        let polling_url = provider_common::token_str(&token, "polling_url")?;
        // A lost answer is `unavailable` (the SDK's transport mapping): the host counts it and polls again.
        let resp = http::Request::get(polling_url)
            .header("x-key", &http::secret("BFL_API_KEY"))
            .header("accept", "application/json")
            .send()?;
        status::read_poll(&token, resp.status, http::retry_after_ms(&resp), &resp.body, clock::wall_ms(), poll_interval_ms())
    }
}

register_model!(FluxKontext);
