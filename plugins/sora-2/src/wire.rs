//! OpenAI Videos on the wire: the multipart create body, the video object (→ progress, outcome or
//! error) and the error envelope (→ [`Error`]).

use atelier_sdk::multipart::Form;
use atelier_sdk::{excerpt, sniff, Artifact, ErrorBody, Body, Download, Error, Outcome, Progress, ProviderError, Service, Status, Usage};
use provider_common::token_str;
use serde_json::{json, Value};

/// OpenAI as the retry table names it.
pub const OPENAI: Service = Service { name: "OpenAI", plugin_id: "sora-2", secret: "OPENAI_API_KEY" };

/// When the Sora API was shut down, for the message a retired endpoint gets.
pub const RETIRED_ON: &str = "2026-09-24";

/// What the create call sends.
#[derive(Debug, Clone)]
pub struct Create<'a> {
    /// Model id.
    pub model: &'a str,
    /// The prompt.
    pub prompt: &'a str,
    /// Duration, as the string the API wants (`"4"`, `"8"`, ...).
    pub seconds: &'a str,
    /// `WxH`.
    pub size: &'a str,
    /// The first frame, already `size` exactly.
    pub reference: &'a [u8],
    /// Seeds the multipart boundary so bodies are reproducible.
    pub boundary_seed: u64,
}

/// The `multipart/form-data` body of `POST /v1/videos` (set with `http::Request::multipart`).
pub fn create_form(c: &Create) -> Form {
    let mime = sniff::mime_of(c.reference).unwrap_or("image/png");
    let ext = match mime {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        _ => "png",
    };
    Form::new(c.boundary_seed)
        .text("model", c.model)
        .text("prompt", c.prompt)
        .text("seconds", c.seconds)
        .text("size", c.size)
        .file("input_reference", &format!("input_reference.{ext}"), mime, c.reference)
}

/// The job token: the video id and where to poll it (the base URL at submit time, so a
/// changed config does not strand running jobs), plus what usage needs.
pub fn token(video: &Value, base_url: &str, model: &str, seconds: &str, size: &str) -> Result<Value, Error> {
    // The create call was answered 2xx: the video may exist (and be billed) though it has no id we can poll.
    let id = video.get("id").and_then(Value::as_str).ok_or_else(|| {
        Error::unreadable_submit("OpenAI", 200, &format!("the video object has no `id`: {}", excerpt(video.to_string().as_bytes(), 300)))
    })?;
    Ok(json!({"v": 1, "id": id, "base_url": base_url, "model": model, "seconds": seconds, "size": size}))
}

/// A non-2xx answer to a create or a delete: OpenAI's special cases, then the SDK's retry table.
pub fn map_error(status: u16, retry_after_ms: Option<u64>, body: &[u8], base_url: &str, model: &str) -> Error {
    let e = ErrorBody::parse(body);
    let code = e.code.clone().unwrap_or_default();
    if status == 404 && code == "model_not_found" {
        return Error::Provider(ProviderError {
            code,
            message: format!(
                "{base_url} does not serve `{model}` ({}). OpenAI retired the Sora API (/v1/videos) on {RETIRED_ON}; \
                 point this plugin at a compatible gateway with `[plugins.sora-2] base_url = \"https://your-gateway\"` \
                 (and `model = \"...\"`) in atelier.toml, and allow that host",
                e.message
            ),
        });
    }
    if code.contains("moderation") {
        return Error::Moderated(format!("OpenAI's moderation blocked the request: {}", e.message));
    }
    match status {
        400 | 422 => Error::InvalidInput(match e.param {
            Some(p) => format!("the videos API rejected `{p}`: {}", e.message),
            None => format!("the videos API rejected the request: {}", e.message),
        }),
        // A 5xx on create means no job was made (OpenAI's own SDK retries these): the table says `unavailable`.
        _ => ErrorBody::parse(body).to_error(&OPENAI, status, retry_after_ms),
    }
}

/// A non-2xx answer to `GET /v1/videos/{id}`. Nothing here ends the job: a 404 for a video the
/// API just created is "not found (yet)", a 5xx or 429 says nothing about the video; all are
/// transient for the host to count. Only the video object's own `failed` status ends it.
pub fn map_poll_error(status: u16, retry_after_ms: Option<u64>, body: &[u8], id: &str) -> Error {
    if status == 404 {
        return Error::not_found_yet(&OPENAI, &format!("video {id}"), &ErrorBody::parse(body).message);
    }
    ErrorBody::parse(body).to_poll_error(&OPENAI, status, retry_after_ms)
}

/// A video object from `GET /v1/videos/{id}` (or the create answer): running, done or failed.
pub fn read_video(token: &Value, video: &Value, poll_after_ms: u64) -> Result<Status, Error> {
    let id = token_str(token, "id")?;
    let state = video.get("status").and_then(Value::as_str).unwrap_or("");
    match state {
        "queued" | "in_progress" => Ok(Status::Running(Progress {
            fraction: video.get("progress").and_then(Value::as_f64).map(|p| (p / 100.0).clamp(0.0, 1.0) as f32),
            retry_after_ms: poll_after_ms,
            state: state.into(),
            // The videos API shows no frame before the end.
            partials: vec![],
        })),
        "completed" => Ok(Status::Done(completed(token, video)?)),
        "failed" => {
            let err = video.get("error").filter(|e| e.is_object());
            let code = err.and_then(|e| e.get("code")).and_then(Value::as_str).unwrap_or("failed").to_string();
            let message = err.and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or("no reason given").to_string();
            if code.contains("moderation") {
                return Err(Error::Moderated(format!("video {id} was blocked by OpenAI's moderation: {message}")));
            }
            Err(Error::Provider(ProviderError { code, message: format!("video {id} failed: {message}") }))
        }
        // An object without a status says nothing about the video: poll again.
        "" => Err(Error::Unavailable(format!("the videos API answered for video {id} without a status: {}; polling again", excerpt(video.to_string().as_bytes(), 200)))),
        other => Err(Error::Provider(ProviderError { code: other.into(), message: format!("video {id} has unknown status `{other}`") })),
    }
}

/// `completed`: the host downloads `/v1/videos/{id}/content` with the bearer placeholder.
fn completed(token: &Value, video: &Value) -> Result<Outcome, Error> {
    let id = token_str(token, "id")?;
    let base = token_str(token, "base_url")?;
    let url = format!("{base}/v1/videos/{id}/content");
    let headers = vec![
        ("authorization".to_string(), format!("Bearer {}", atelier_sdk::http::secret("OPENAI_API_KEY"))),
        ("accept".to_string(), "application/binary".to_string()),
    ];
    let expires_at_ms = video.get("expires_at").and_then(Value::as_u64).map(|s| s * 1000);
    let seconds = video.get("seconds").and_then(Value::as_str).or_else(|| token.get("seconds").and_then(Value::as_str));
    let mut notes = vec![("video_id".to_string(), id.to_string())];
    for key in ["model", "size"] {
        if let Some(v) = video.get(key).and_then(Value::as_str).or_else(|| token.get(key).and_then(Value::as_str)) {
            notes.push((key.into(), v.into()));
        }
    }
    // Sora 2 videos carry a soundtrack; the file is large, so the host downloads it itself.
    let artifact = Artifact { mime: "video/mp4".into(), body: Body::Download(Download { url, headers, expires_at_ms }), seed: None, has_audio: true, notes };
    let usage = Usage { video_seconds: seconds.and_then(|s| s.parse::<f32>().ok()), ..Usage::none() };
    Ok(Outcome { artifacts: vec![artifact], failures: vec![], usage })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> Value {
        json!({"v":1,"id":"video_1","base_url":"https://gw.example","model":"sora-2","seconds":"8","size":"1280x720"})
    }

    #[test]
    fn form_has_exact_fields() {
        let png = b"\x89PNG\r\n\x1a\nrest".to_vec();
        let (ct, body) = create_form(&Create { model: "sora-2", prompt: "a cat", seconds: "8", size: "1280x720", reference: &png, boundary_seed: 3 }).finish();
        let b = "atelier-boundary-0000000000000003";
        assert_eq!(ct, format!("multipart/form-data; boundary={b}"));
        let mut expected = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nsora-2\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"seconds\"\r\n\r\n8\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"size\"\r\n\r\n1280x720\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"input_reference\"; filename=\"input_reference.png\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .into_bytes();
        expected.extend_from_slice(&png);
        expected.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        assert_eq!(String::from_utf8_lossy(&body), String::from_utf8_lossy(&expected));
    }

    #[test]
    fn running_and_completed() {
        let s = read_video(&tok(), &json!({"id":"video_1","status":"in_progress","progress":42}), 750).unwrap();
        assert!(matches!(s, Status::Running(p) if p.fraction == Some(0.42) && p.retry_after_ms == 750 && p.state == "in_progress"));
        let done = json!({"id":"video_1","status":"completed","progress":100,"seconds":"8","size":"1280x720","model":"sora-2","expires_at":1700000000});
        match read_video(&tok(), &done, 1000).unwrap() {
            Status::Done(o) => {
                assert_eq!(o.usage.video_seconds, Some(8.0));
                let a = &o.artifacts[0];
                assert_eq!(a.mime, "video/mp4");
                match &a.body {
                    Body::Download(d) => {
                        assert_eq!(d.url, "https://gw.example/v1/videos/video_1/content");
                        assert_eq!(d.headers[0], ("authorization".to_string(), "Bearer {{secret:OPENAI_API_KEY}}".to_string()));
                        assert_eq!(d.expires_at_ms, Some(1_700_000_000_000));
                    }
                    b => panic!("{b:?}"),
                }
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn failed_videos_are_typed() {
        let failed = json!({"id":"video_1","status":"failed","error":{"code":"video_generation_failed","message":"GPU on fire"}});
        assert!(matches!(read_video(&tok(), &failed, 1), Err(Error::Provider(p)) if p.code == "video_generation_failed" && p.message.contains("GPU on fire")));
        let blocked = json!({"id":"video_1","status":"failed","error":{"code":"moderation_blocked","message":"no"}});
        assert!(matches!(read_video(&tok(), &blocked, 1), Err(Error::Moderated(_))));
        assert!(matches!(read_video(&tok(), &json!({"id":"video_1"}), 1), Err(Error::Unavailable(_))));
    }

    #[test]
    fn polls_never_fail_on_a_transient_answer() {
        let nf = br#"{"error":{"message":"Video with id 'video_1' not found.","type":"invalid_request_error","param":null,"code":null}}"#;
        match map_poll_error(404, None, nf, "video_1") {
            Error::Unavailable(m) => assert!(m.contains("not found (yet)") && m.contains("video_1"), "{m}"),
            e => panic!("{e:?}"),
        }
        let se = br#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#;
        for status in [500, 502, 503, 504, 520] {
            assert!(matches!(map_poll_error(status, None, se, "video_1"), Error::Unavailable(m) if m.contains("The server had an error")), "{status}");
        }
        assert!(matches!(map_poll_error(429, Some(300), b"{}", "video_1"), Error::RateLimited(r) if r.retry_after_ms == Some(300)));
        assert!(matches!(map_poll_error(401, None, b"{}", "video_1"), Error::Unauthorized(_)));
    }

    #[test]
    fn a_create_answer_without_an_id_may_still_be_a_job() {
        match token(&json!({"object": "video"}), "b", "m", "4", "720x1280") {
            Err(Error::Provider(p)) => assert!(p.message.contains("could not be read") && p.message.contains("may exist at the provider"), "{}", p.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn maps_errors() {
        let nf = br#"{"error":{"message":"The model `sora-2` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        match map_error(404, None, nf, "https://api.openai.com", "sora-2") {
            Error::Provider(p) => {
                assert_eq!(p.code, "model_not_found");
                assert!(p.message.contains("2026-09-24") && p.message.contains("[plugins.sora-2] base_url"), "{}", p.message);
            }
            e => panic!("{e:?}"),
        }
        let size = br#"{"error":{"message":"Inpaint image must match the requested width and height","type":"invalid_request_error","param":null,"code":null}}"#;
        assert!(matches!(map_error(400, None, size, "b", "m"), Error::InvalidInput(m) if m.contains("Inpaint image must match")));
        assert!(matches!(map_error(401, None, b"{}", "b", "m"), Error::Unauthorized(m) if m.contains("OPENAI_API_KEY")));
        assert!(matches!(map_error(429, Some(300), b"{}", "b", "m"), Error::RateLimited(r) if r.retry_after_ms == Some(300)));
        assert!(matches!(map_error(500, None, b"{}", "b", "m"), Error::Unavailable(_)));
        assert!(matches!(map_error(504, None, b"{}", "b", "m"), Error::Unavailable(_)));
        assert!(matches!(map_error(401, None, b"{}", "b", "m"), Error::Unauthorized(m) if m.contains("[plugins.sora-2.secrets]")));
        let mb = br#"{"error":{"message":"blocked","type":"invalid_request_error","param":null,"code":"moderation_blocked"}}"#;
        assert!(matches!(map_error(400, None, mb, "b", "m"), Error::Moderated(_)));
    }
}
