//! Veo 3: one image animated into a video through the Gemini API's `predictLongRunning`.
//!
//! `submit` starts the operation and returns a token (JSON: operation name, poll URL, model,
//! seconds); `poll` GETs the operation; when done, the video is handed to the host as a download
//! of `files/{id}:download?alt=media` with the key placeholder (the first hop needs the key and
//! answers 302 to Google storage, which the manifest also asks for). Protocol details shared with
//! the image plugins (URL, auth, error envelope) come from `gemini-protocol`.

mod capabilities;
mod wire;

use atelier_sdk::*;
use capabilities::{ALL_RESOLUTIONS, ASPECTS, VeoSpec, aspect_for, first_frame_size};
use gemini_protocol::client::{get_json, post_json};
use gemini_protocol::{Endpoint, ErrorContext};
use wire::{JobToken, OperationState, Video, VideoRequest};

/// The plugin id, as in `plugin.toml`.
const ID: &str = "veo-3";
/// Google keeps generated videos for two days.
const VIDEO_LIFETIME_MS: u64 = 2 * 24 * 3600 * 1000;

#[derive(Default)]
struct Veo3;

/// The configured model id and its limits.
fn configured() -> (String, VeoSpec) {
    let model = config::get("model").unwrap_or_default();
    let spec = VeoSpec::for_model(&model);
    (model, spec)
}

/// How long to wait between polls (`poll_interval_ms`, default 10 s as Google's samples do).
fn poll_interval_ms() -> u64 {
    config::get("poll_interval_ms").and_then(|v| v.trim().parse().ok()).unwrap_or(10_000)
}

fn error_context(model: &str, api_version: &str, resource: Option<&str>) -> ErrorContext {
    ErrorContext { plugin_id: ID.into(), model: model.into(), api_version: api_version.into(), resource: resource.map(String::from) }
}

/// The settings of one request, defaults applied.
struct Settings<'a> {
    seconds: i64,
    resolution: &'a str,
    aspect: &'a str,
}

/// `aspect` and `resolution` are the typed `--aspect` and `--size`.
fn settings<'a>(params: &[Param], aspect: Option<&'a str>, resolution: Option<&'a str>, first_reference: Option<(u32, u32)>) -> Settings<'a> {
    let aspect = aspect.filter(|a| !a.is_empty());
    Settings {
        seconds: params.integer("seconds").unwrap_or(8),
        resolution: resolution.unwrap_or("720p"),
        aspect: aspect.unwrap_or_else(|| first_reference.map(|(w, h)| aspect_for(w, h)).unwrap_or("16:9")),
    }
}

impl Model for Veo3 {
    fn describe(&self) -> ModelInfo {
        let (model, spec) = configured();
        let resolutions: Vec<&str> = ALL_RESOLUTIONS.iter().copied().filter(|r| spec.resolutions.contains(r)).collect();
        ModelInfo {
            description: format!(
                "Google's {} on the Gemini API: animates one image (the first frame) into a 24 fps MP4{}. \
                 Takes 11 s to several minutes; videos are kept by Google for 2 days. SynthID-watermarked.",
                spec.family,
                if spec.audio { " with native audio" } else { "" }
            ),
            model,
            max_references: 1,
            max_outputs: 1,
            // `--aspect`: 16:9 or 9:16; when left out, the first image's orientation.
            aspect_ratios: ASPECTS.iter().map(|a| a.to_string()).collect(),
            // `--size` is the resolution, 720p first (the default); above 720p needs 8 s.
            sizes: resolutions.iter().map(|r| r.to_string()).collect(),
            video_audio: spec.audio,
            params: vec![
                ParamSpec::integer("seconds", "Video length in seconds (Veo 3: 8; Veo 3.1: 4, 6 or 8)", 4, 8).default(8i64),
                ParamSpec::text("negative_prompt", "What the video should not show (describe it, don't write \"no ...\")"),
                ParamSpec::choice(
                    "person_generation",
                    "Whether people may be generated; image-to-video allows allow_adult (EU/UK/CH/MENA: only that)",
                    &["allow_adult", "allow_all", "dont_allow"],
                ),
            ],
            ..ModelInfo::image_to_video(ID, "Veo 3 (Gemini API)")
        }
    }

    fn prepare(&self, d: &Draft) -> Result<InputPlan, Error> {
        if d.has_mask {
            return Err(Error::invalid("Veo takes no mask; give only the first-frame image"));
        }
        if d.references.len() != 1 {
            return Err(Error::invalid(format!("Veo animates exactly one image (the first frame); {} given", d.references.len())));
        }
        let (model, spec) = configured();
        let s = settings(&d.params, d.aspect.as_deref(), d.size.as_deref(), d.references.first().copied());
        spec.check(&model, s.seconds, s.resolution, s.aspect).map_err(Error::invalid)?;
        Ok(InputPlan { exact_size: Some(first_frame_size(s.resolution, s.aspect)), max_side: None })
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let endpoint = Endpoint::from_config()?;
        let first = req.references.first().ok_or_else(|| Error::invalid("give the image to animate"))?;
        let mime = sniff::mime_of(&first.bytes).filter(|m| m.starts_with("image/")).unwrap_or("image/png");
        let s = settings(&req.params, req.aspect.as_deref(), req.size.as_deref(), sniff::dimensions(&first.bytes));
        let spec = VeoSpec::for_model(&endpoint.model);
        spec.check(&endpoint.model, s.seconds, s.resolution, s.aspect).map_err(Error::invalid)?;
        let body = wire::predict_body(&VideoRequest {
            prompt: &req.prompt,
            image: (mime, &first.bytes),
            aspect: s.aspect,
            resolution: s.resolution,
            seconds: s.seconds,
            negative_prompt: req.params.text("negative_prompt").filter(|t| !t.trim().is_empty()),
            person_generation: req.params.text("person_generation").filter(|t| !t.is_empty()),
        });
        let ctx = error_context(&endpoint.model, &endpoint.api_version, None);
        let answer = post_json(&endpoint.method_url("predictLongRunning"), &body, &ctx)?;
        let operation = wire::operation_name(&answer)?;
        let token = JobToken {
            poll_url: endpoint.resource_url(&operation),
            operation,
            model: endpoint.model.clone(),
            seconds: s.seconds,
        };
        log::info(&format!("Veo operation {} started", token.operation));
        Ok(Submission::Pending(Pending { token: token.encode(), retry_after_ms: poll_interval_ms() }))
    }

    fn poll(&self, token: &str) -> Result<Status, Error> {
        let token = JobToken::decode(token)?;
        let api_version = config::get("api_version").unwrap_or_default();
        let op = get_json(&token.poll_url, &error_context(&token.model, &api_version, Some(&token.operation)))?;
        match wire::parse_operation(&op)? {
            // The operation shows no preview frame before it is done.
            OperationState::Running => Ok(Status::Running(Progress::running("running", poll_interval_ms()))),
            OperationState::Succeeded(video) => Ok(Status::Done(outcome(video, &token, clock::wall_ms())?)),
            OperationState::Filtered(reasons) => Err(Error::Moderated(if reasons.is_empty() {
                "Veo's safety filter removed the video (no reason given); you were not charged".into()
            } else {
                format!("Veo's safety filter removed the video: {}", reasons.join(" "))
            })),
            OperationState::Failed(code, message) => Err(wire::operation_error(code, &message)),
        }
    }
}

/// The finished job: one video the host downloads itself (with the key on the first hop), or,
/// when Google sent the bytes inline, streamed to the host in chunks. Veo 3 videos carry audio.
fn outcome(video: Video, token: &JobToken, now_ms: u64) -> Result<Outcome, Error> {
    let artifact = match video {
        Video::Uri(url) => {
            let (name, value) = gemini_protocol::auth_header();
            Artifact::download("video/mp4", Download { url, headers: vec![(name, value)], expires_at_ms: Some(now_ms + VIDEO_LIFETIME_MS) })
        }
        Video::Bytes(_, bytes) => ArtifactStream::from_bytes("video/mp4", &bytes)?,
    };
    let artifact = artifact
        .audio(VeoSpec::for_model(&token.model).audio)
        .note("operation", token.operation.clone())
        .note("model", token.model.clone());
    Ok(Outcome::new(vec![artifact]).usage(Usage { video_seconds: Some(token.seconds as f32), ..Usage::none() }))
}

register_model!(Veo3);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_carries_the_key_placeholder_and_expiry() {
        let token = JobToken { operation: "models/m/operations/o".into(), poll_url: "u".into(), model: "m".into(), seconds: 8 };
        let out = outcome(Video::Uri("https://g/v1beta/files/a:download?alt=media".into()), &token, 1_000).unwrap();
        match &out.artifacts[0].body {
            Body::Download(d) => {
                assert_eq!(d.url, "https://g/v1beta/files/a:download?alt=media");
                assert_eq!(d.headers, vec![("x-goog-api-key".to_string(), "{{secret:GEMINI_API_KEY}}".to_string())]);
                assert_eq!(d.expires_at_ms, Some(1_000 + VIDEO_LIFETIME_MS));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.artifacts[0].mime, "video/mp4");
        assert!(out.artifacts[0].has_audio, "Veo 3 videos carry audio");
        assert_eq!(out.usage.video_seconds, Some(8.0));
    }

    #[test]
    fn settings_default_to_the_image_orientation() {
        let s = settings(&[], None, None, Some((720, 1280)));
        assert_eq!((s.seconds, s.resolution, s.aspect), (8, "720p", "9:16"));
        let params = vec![Param::new("seconds", 6i64)];
        let s = settings(&params, Some("16:9"), Some("1080p"), Some((720, 1280)));
        assert_eq!((s.seconds, s.resolution, s.aspect), (6, "1080p", "16:9"));
    }
}
