//! Builders for the records plugins hand back most often.

use super::{
    Artifact, Body, Error, ImageUsage, Media, ModelInfo, Outcome, ParamKind, ParamSpec, Task, Usage,
    Value,
};

impl ModelInfo {
    /// An image-edit model taking one reference and giving one output, with no parameters yet.
    pub fn image_edit(id: &str, display_name: &str) -> Self {
        ModelInfo {
            id: id.into(),
            display_name: display_name.into(),
            description: String::new(),
            model: id.into(),
            task: Task::ImageEdit,
            max_references: 1,
            max_outputs: 1,
            aspect_ratios: vec![],
            sizes: vec![],
            supports_mask: false,
            supports_seed: false,
            supports_audio: false,
            params: vec![],
            input_mime: "image/png".into(),
        }
    }

    /// An image-to-video model taking one reference and giving one video.
    pub fn image_to_video(id: &str, display_name: &str) -> Self {
        ModelInfo { task: Task::ImageToVideo, ..Self::image_edit(id, display_name) }
    }
}

impl ParamSpec {
    fn new(name: &str, description: &str, kind: ParamKind) -> Self {
        ParamSpec {
            name: name.into(),
            description: description.into(),
            kind,
            default: None,
            min: None,
            max: None,
            choices: vec![],
            required: false,
        }
    }
    /// A whole-number parameter within `min..=max`.
    pub fn integer(name: &str, description: &str, min: i64, max: i64) -> Self {
        ParamSpec { min: Some(min as f64), max: Some(max as f64), ..Self::new(name, description, ParamKind::Integer) }
    }
    /// A real-number parameter within `min..=max`.
    pub fn number(name: &str, description: &str, min: f64, max: f64) -> Self {
        ParamSpec { min: Some(min), max: Some(max), ..Self::new(name, description, ParamKind::Number) }
    }
    /// A `true`/`false` parameter.
    pub fn boolean(name: &str, description: &str) -> Self {
        Self::new(name, description, ParamKind::Boolean)
    }
    /// A free-text parameter.
    pub fn text(name: &str, description: &str) -> Self {
        Self::new(name, description, ParamKind::Text)
    }
    /// A parameter taking one of `choices`.
    pub fn choice(name: &str, description: &str, choices: &[&str]) -> Self {
        ParamSpec {
            choices: choices.iter().map(|c| c.to_string()).collect(),
            ..Self::new(name, description, ParamKind::Choice)
        }
    }
    /// A parameter whose value is an image file the host loads.
    pub fn media(name: &str, description: &str) -> Self {
        Self::new(name, description, ParamKind::Media)
    }
    /// The same parameter with a default value.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }
    /// The same parameter, required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Number(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.into())
    }
}

impl Usage {
    /// No usage reported.
    pub fn none() -> Self {
        Usage { images: vec![], input_tokens: None, output_tokens: None, video_seconds: None }
    }
    /// `count` images of one size.
    pub fn images(width: u32, height: u32, count: u32) -> Self {
        Usage { images: vec![ImageUsage { width, height, count }], ..Self::none() }
    }
}

impl Artifact {
    /// An artifact whose bytes are in hand.
    pub fn inline(mime: &str, bytes: Vec<u8>) -> Self {
        Artifact { mime: mime.into(), body: Body::Inline(bytes), seed: None, notes: vec![] }
    }
}

impl Outcome {
    /// A finished job with these artifacts, no failures and no usage.
    pub fn new(artifacts: Vec<Artifact>) -> Self {
        Outcome { artifacts, failures: vec![], usage: Usage::none() }
    }
    /// A finished job that returns media as they are (what a "hello" model does).
    pub fn images(media: Vec<Media>) -> Self {
        Self::new(media.into_iter().map(|m| Artifact::inline(&m.mime, m.bytes)).collect())
    }
}

impl Error {
    /// An `invalid-input` error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }
}
