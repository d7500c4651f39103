//! Sora 2 image-to-video through the OpenAI Videos API.
//!
//! `submit` POSTs `multipart/form-data` to `{base_url}/v1/videos` (`model`, `prompt`, `seconds` as a
//! string, `size`, and the first frame as `input_reference`, which must be exactly `size`: `prepare`
//! asks the host to fit it). `poll` GETs `/v1/videos/{id}` and waits as long as the
//! `openai-poll-after-ms` header says; a completed video is a host download of
//! `/v1/videos/{id}/content` with the bearer placeholder.
//!
//! OpenAI shut the Sora API down on 2026-09-24; the plugin stays for compatible gateways.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub mod rules;
pub mod wire;

use atelier_sdk::*;
use provider_common::{decode_token, encode_token, token_str, trim_base};

/// The Sora 2 backend.
#[derive(Default)]
pub struct Sora2;

/// Poll interval when the API sends no `openai-poll-after-ms` (the SDK's own default).
const DEFAULT_POLL_MS: u64 = 1000;

fn model_id() -> String {
    config::get("model").unwrap_or_else(|| "sora-2".into())
}

fn base_url() -> String {
    trim_base(&config::get("base_url").unwrap_or_else(|| "https://api.openai.com".into()))
}

fn choices() -> rules::Choices {
    rules::Choices::for_model(&model_id(), config::get("sizes").as_deref(), config::get("seconds").as_deref())
}

fn bearer() -> String {
    format!("Bearer {}", http::secret("OPENAI_API_KEY"))
}

/// How long the API asked us to wait before the next poll.
fn poll_after_ms(resp: &http::Response) -> u64 {
    resp.header("openai-poll-after-ms").and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_POLL_MS)
}

impl Model for Sora2 {
    fn describe(&self) -> ModelInfo {
        let c = choices();
        let seconds: Vec<&str> = c.seconds.iter().map(String::as_str).collect();
        ModelInfo {
            description: "OpenAI Sora 2: a video with audio from one first-frame image and a prompt. The image is fitted \
                          to the chosen size exactly. OpenAI retired the Sora API on 2026-09-24; use a compatible gateway."
                .into(),
            model: model_id(),
            max_references: 1,
            max_outputs: 1,
            // `--size`, WxH, the first the default; the image is fitted to it.
            sizes: c.sizes.clone(),
            video_audio: true,
            params: vec![
                ParamSpec::choice("seconds", "Duration in seconds", &seconds).default(if seconds.contains(&"4") { "4" } else { seconds.first().copied().unwrap_or("4") }),
            ],
            input_mime: "image/png".into(),
            ..ModelInfo::image_to_video("sora-2", "Sora 2 (OpenAI Videos)")
        }
    }

    fn prepare(&self, d: &Draft) -> Result<InputPlan, Error> {
        let size = rules::check(&model_id(), &choices(), &d.prompt, d.references.len(), d.has_mask, d.size.as_deref(), &d.params)?;
        Ok(InputPlan { exact_size: Some(size), max_side: None })
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let model = model_id();
        let (w, h) = rules::check(&model, &choices(), &req.prompt, req.references.len(), req.mask.is_some(), req.size.as_deref(), &req.params)?;
        let reference = &req.references[0];
        if let Some(dims) = sniff::dimensions(&reference.bytes).filter(|&d| d != (w, h)) {
            return Err(Error::invalid(format!("the image is {}x{} but Sora needs exactly {w}x{h}; fit it first", dims.0, dims.1)));
        }
        let size = format!("{w}x{h}");
        let seconds = req.params.text("seconds").unwrap_or("4").to_string();
        let base = base_url();
        let form = wire::create_form(&wire::Create {
            model: &model,
            prompt: &req.prompt,
            seconds: &seconds,
            size: &size,
            reference: &reference.bytes,
            boundary_seed: req.seed.unwrap_or(0),
        });
        let resp = http::Request::new("POST", &format!("{base}/v1/videos"))
            .header("authorization", &bearer())
            .header("accept", "application/json")
            .multipart(form)
            .send()?;
        if !resp.is_success() {
            return Err(wire::map_error(resp.status, http::retry_after_ms(&resp), &resp.body, &base, &model));
        }
        let video = resp.submit_json("OpenAI")?;
        let token = wire::token(&video, &base, &model, &seconds, &size)?;
        // A create answer that already failed (e.g. input moderation) ends the job now. One whose
        // status cannot be read is polled like any other: it has an id, and sending the create
        // again could make (and bill) a second video.
        match wire::read_video(&token, &video, poll_after_ms(&resp)) {
            Ok(Status::Done(outcome)) => return Ok(Submission::Done(outcome)),
            Ok(Status::Running(_)) | Err(Error::Unavailable(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(Submission::Pending(Pending { token: encode_token(&token), retry_after_ms: poll_after_ms(&resp) }))
    }

    fn poll(&self, token: &str) -> Result<Status, Error> {
        let token = decode_token(token)?;
        let (id, base) = (token_str(&token, "id")?, token_str(&token, "base_url")?);
        // A lost answer is `unavailable` (the SDK's transport mapping): the host counts it and polls again.
        let resp = http::Request::get(&format!("{base}/v1/videos/{id}")).header("authorization", &bearer()).send()?;
        if !resp.is_success() {
            return Err(wire::map_poll_error(resp.status, http::retry_after_ms(&resp), &resp.body, id));
        }
        wire::read_video(&token, &resp.poll_json("OpenAI")?, poll_after_ms(&resp))
    }

    fn cancel(&self, token: &str) -> Result<(), Error> {
        let token = decode_token(token)?;
        let (id, base) = (token_str(&token, "id")?, token_str(&token, "base_url")?);
        let resp = http::Request::new("DELETE", &format!("{base}/v1/videos/{id}")).header("authorization", &bearer()).send()?;
        if resp.is_success() || resp.status == 404 {
            return Ok(());
        }
        Err(wire::map_error(resp.status, http::retry_after_ms(&resp), &resp.body, base, token_str(&token, "model").unwrap_or("?")))
    }
}

register_model!(Sora2);
