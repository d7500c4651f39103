//! Veo's wire format on the Gemini API: the `predictLongRunning` body, the job token, and the
//! long-running operation's states.

use atelier_sdk::encoding::{base64_decode, base64_encode};
use atelier_sdk::Error;
use gemini_protocol::response::{excerpt, provider};
use serde_json::{Map, Value, json};

/// What one image-to-video call asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoRequest<'a> {
    /// The instruction (optional for image-to-video).
    pub prompt: &'a str,
    /// The first frame: full MIME type and bytes.
    pub image: (&'a str, &'a [u8]),
    /// `16:9` or `9:16`.
    pub aspect: &'a str,
    /// `720p`, `1080p` or `4k`.
    pub resolution: &'a str,
    /// Whole seconds.
    pub seconds: i64,
    /// What to avoid.
    pub negative_prompt: Option<&'a str>,
    /// `allow_adult`, `allow_all` or `dont_allow`; left out unless given (some regions refuse values).
    pub person_generation: Option<&'a str>,
}

/// The JSON body. The image is `{bytesBase64Encoded, mimeType}` — Veo refuses `inlineData` — and
/// `durationSeconds` is a JSON number (a string is refused live, though doc samples quote it).
pub fn predict_body(req: &VideoRequest<'_>) -> Value {
    let mut instance = Map::new();
    if !req.prompt.trim().is_empty() {
        instance.insert("prompt".into(), json!(req.prompt));
    }
    instance.insert("image".into(), json!({"bytesBase64Encoded": base64_encode(req.image.1), "mimeType": req.image.0}));
    let mut parameters = Map::new();
    parameters.insert("aspectRatio".into(), json!(req.aspect));
    parameters.insert("resolution".into(), json!(req.resolution));
    parameters.insert("durationSeconds".into(), json!(req.seconds));
    if let Some(negative) = req.negative_prompt {
        parameters.insert("negativePrompt".into(), json!(negative));
    }
    if let Some(person) = req.person_generation {
        parameters.insert("personGeneration".into(), json!(person));
    }
    json!({"instances": [Value::Object(instance)], "parameters": Value::Object(parameters)})
}

/// Everything `poll` needs, persisted by the host between processes.
#[derive(Clone, Debug, PartialEq)]
pub struct JobToken {
    /// The operation name, e.g. `models/veo-3.0-generate-001/operations/abc`.
    pub operation: String,
    /// The full URL to GET it.
    pub poll_url: String,
    /// The model id used, for provenance.
    pub model: String,
    /// Seconds of video asked for (usage).
    pub seconds: i64,
}

impl JobToken {
    /// The token as JSON text.
    pub fn encode(&self) -> String {
        json!({"v": 1, "operation": self.operation, "poll_url": self.poll_url, "model": self.model, "seconds": self.seconds})
            .to_string()
    }

    /// Read a token written by [`JobToken::encode`].
    pub fn decode(token: &str) -> Result<JobToken, Error> {
        let bad = |why: &str| Error::Internal(format!("not a veo-3 job token ({why}): {}", atelier_sdk::excerpt(token.as_bytes(), 200)));
        let v: Value = serde_json::from_str(token).map_err(|_| bad("not JSON"))?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(String::from).ok_or_else(|| bad(k));
        Ok(JobToken {
            operation: text("operation")?,
            poll_url: text("poll_url")?,
            model: text("model")?,
            seconds: v.get("seconds").and_then(Value::as_i64).ok_or_else(|| bad("seconds"))?,
        })
    }
}

/// The operation name from the `predictLongRunning` answer.
pub fn operation_name(answer: &Value) -> Result<String, Error> {
    // Google answered 2xx: the video job may be running (and billed) though we cannot poll it.
    answer
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .ok_or_else(|| Error::unreadable_submit("Google", 200, &format!("it names no operation: {}", excerpt(answer))))
}

/// Where the finished video is.
#[derive(Clone, Debug, PartialEq)]
pub enum Video {
    /// A `files/{id}:download?alt=media` URL (needs the key on the first hop, then redirects).
    Uri(String),
    /// Bytes sent inline (`encodedVideo`), with their type.
    Bytes(String, Vec<u8>),
}

/// A polled operation.
#[derive(Clone, Debug, PartialEq)]
pub enum OperationState {
    /// Not done (`done` absent or false).
    Running,
    /// Done with a video.
    Succeeded(Video),
    /// Done, but the safety filter removed the video.
    Filtered(Vec<String>),
    /// Done with `error{code, message}` (`code` is a gRPC code).
    Failed(i64, String),
}

/// Read an operation body.
pub fn parse_operation(op: &Value) -> Result<OperationState, Error> {
    if op.get("done").and_then(Value::as_bool) != Some(true) {
        return Ok(OperationState::Running);
    }
    if let Some(error) = op.get("error") {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(2);
        let message = error.get("message").and_then(Value::as_str).unwrap_or("no message").to_string();
        return Ok(OperationState::Failed(code, message));
    }
    let response = op.get("response").unwrap_or(&Value::Null);
    // Gemini API nests the result in `generateVideoResponse`; Vertex puts it in `response` itself.
    let result = response.get("generateVideoResponse").unwrap_or(response);
    let filtered = result.get("raiMediaFilteredCount").and_then(Value::as_u64).unwrap_or(0);
    let reasons: Vec<String> = result
        .get("raiMediaFilteredReasons")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default();
    let sample = result.get("generatedSamples").and_then(Value::as_array).and_then(|s| s.first());
    if let Some(video) = sample.and_then(|s| s.get("video")) {
        if let Some(uri) = video.get("uri").and_then(Value::as_str) {
            return Ok(OperationState::Succeeded(Video::Uri(uri.to_string())));
        }
        if let Some(encoded) = video.get("encodedVideo").and_then(Value::as_str) {
            let bytes = base64_decode(encoded).map_err(|e| provider("BAD_VIDEO", format!("Google sent a video that is not base64: {e}")))?;
            let mime = video.get("encoding").and_then(Value::as_str).unwrap_or("video/mp4").to_string();
            return Ok(OperationState::Succeeded(Video::Bytes(mime, bytes)));
        }
    }
    if filtered > 0 || !reasons.is_empty() {
        return Ok(OperationState::Filtered(reasons));
    }
    Err(provider("NO_VIDEO", format!("the video job finished without a video: {}", excerpt(op))))
}

/// The contract error for a failed operation (gRPC codes, not HTTP).
pub fn operation_error(code: i64, message: &str) -> Error {
    let name = match code {
        1 => "CANCELLED",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    let lower = message.to_ascii_lowercase();
    if lower.contains("safety") || lower.contains("responsible ai") || lower.contains("usage guidelines") {
        return Error::Moderated(format!("Veo refused the video ({name}): {message}"));
    }
    provider(name, format!("the video job failed (gRPC {code} {name}): {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_uses_bytes_base64_and_a_numeric_duration() {
        let req = VideoRequest {
            prompt: "the kitten stretches",
            image: ("image/png", b"\x89PNG"),
            aspect: "16:9",
            resolution: "720p",
            seconds: 8,
            negative_prompt: Some("cartoon"),
            person_generation: None,
        };
        let body = predict_body(&req);
        let image = &body["instances"][0]["image"];
        assert_eq!(image["bytesBase64Encoded"], base64_encode(b"\x89PNG"));
        assert_eq!(image["mimeType"], "image/png");
        assert!(image.get("inlineData").is_none());
        assert_eq!(body["parameters"]["durationSeconds"], json!(8));
        assert!(body["parameters"]["durationSeconds"].is_number());
        assert_eq!(body["parameters"]["negativePrompt"], "cartoon");
        assert!(body["parameters"].get("personGeneration").is_none());
        assert!(body["parameters"].get("sampleCount").is_none());
    }

    #[test]
    fn token_round_trips() {
        let t = JobToken { operation: "models/m/operations/x".into(), poll_url: "http://h/v1beta/models/m/operations/x".into(), model: "m".into(), seconds: 8 };
        assert_eq!(JobToken::decode(&t.encode()).unwrap(), t);
        assert!(JobToken::decode("nope").is_err());
    }

    #[test]
    fn operation_states() {
        assert_eq!(parse_operation(&json!({"name": "x"})).unwrap(), OperationState::Running);
        assert_eq!(parse_operation(&json!({"name": "x", "done": false})).unwrap(), OperationState::Running);
        let done = json!({"name": "x", "done": true, "response": {"@type": "t", "generateVideoResponse": {
            "generatedSamples": [{"video": {"uri": "https://g/v1beta/files/a:download?alt=media"}}]}}});
        assert_eq!(parse_operation(&done).unwrap(), OperationState::Succeeded(Video::Uri("https://g/v1beta/files/a:download?alt=media".into())));
        let rai = json!({"done": true, "response": {"generateVideoResponse": {"raiMediaFilteredCount": 1,
            "raiMediaFilteredReasons": ["celebrity likeness"]}}});
        assert_eq!(parse_operation(&rai).unwrap(), OperationState::Filtered(vec!["celebrity likeness".into()]));
        let failed = json!({"done": true, "error": {"code": 3, "message": "bad audio"}});
        assert_eq!(parse_operation(&failed).unwrap(), OperationState::Failed(3, "bad audio".into()));
        assert!(parse_operation(&json!({"done": true, "response": {"generateVideoResponse": {}}})).is_err());
    }

    #[test]
    fn an_answer_without_an_operation_may_still_be_a_job() {
        assert_eq!(operation_name(&json!({"name": "models/m/operations/o"})).unwrap(), "models/m/operations/o");
        match operation_name(&json!({"done": false})) {
            Err(Error::Provider(p)) => assert!(p.message.contains("could not be read") && p.message.contains("may exist at the provider"), "{}", p.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn operation_errors_are_typed() {
        assert!(matches!(operation_error(3, "bad"), Error::Provider(p) if p.code == "INVALID_ARGUMENT" && p.message.contains("bad")));
        assert!(matches!(operation_error(13, "violates our safety policy"), Error::Moderated(_)));
    }
}
