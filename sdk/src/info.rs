//! Builders for the records plugins hand back most often (contract 0.2).

use crate::{
    Artifact, Body, ChoiceSpec, Download, Error, ImageUsage, InputPlan, IntegerSpec, Media, ModelInfo, NumberSpec,
    Outcome, OutputKind, ParamSpec, ParamType, Partial, Progress, TextSpec, Usage, Value,
};

impl ModelInfo {
    /// An image model: one reference, one output, no aspect ratios, sizes or parameters, needs an
    /// input image, and (the safe default) a submit with effects outside the host.
    pub fn new(id: &str, display_name: &str) -> Self {
        ModelInfo {
            id: id.into(),
            display_name: display_name.into(),
            description: String::new(),
            model: id.into(),
            outputs: vec![OutputKind::Image],
            generates_without_input: false,
            effects_outside_host: true,
            max_references: 1,
            max_outputs: 1,
            aspect_ratios: vec![],
            sizes: vec![],
            supports_mask: false,
            supports_seed: false,
            video_audio: false,
            params: vec![],
            input_mime: "image/png".into(),
        }
    }
    /// An image-edit model ([`ModelInfo::new`]).
    pub fn image_edit(id: &str, display_name: &str) -> Self {
        Self::new(id, display_name)
    }
    /// An image-to-video model: [`ModelInfo::new`] producing video.
    pub fn image_to_video(id: &str, display_name: &str) -> Self {
        Self::new(id, display_name).outputs(&[OutputKind::Video])
    }
    /// With this description (one paragraph: what it is good for, what it is not).
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }
    /// With the provider's model id in use.
    pub fn model(mut self, model: &str) -> Self {
        self.model = model.into();
        self
    }
    /// What it produces; the first is the default. Panics when empty (the contract forbids it).
    pub fn outputs(mut self, kinds: &[OutputKind]) -> Self {
        assert!(!kinds.is_empty(), "ModelInfo::outputs: a model produces at least one kind of output");
        self.outputs = kinds.to_vec();
        self
    }
    /// Accepted aspect ratios (`16:9`); the first is the default. None: the host refuses `--aspect`.
    pub fn aspect_ratios(mut self, ratios: &[&str]) -> Self {
        self.aspect_ratios = ratios.iter().map(|r| r.to_string()).collect();
        self
    }
    /// Accepted sizes (`1K`, `1280x720`); the first is the default. None: the host refuses `--size`.
    pub fn sizes(mut self, sizes: &[&str]) -> Self {
        self.sizes = sizes.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Whether it generates from a prompt alone, with no input image.
    pub fn generates_without_input(mut self, yes: bool) -> Self {
        self.generates_without_input = yes;
        self
    }
    /// Whether `submit` has effects outside the host (a provider call, possibly billed). `false`
    /// lets the host re-run a cut-off job, when the operator's grants agree.
    pub fn effects_outside_host(mut self, yes: bool) -> Self {
        self.effects_outside_host = yes;
        self
    }
    /// Whether a seed makes results repeatable (the host refuses `--seed` otherwise).
    pub fn supports_seed(mut self, yes: bool) -> Self {
        self.supports_seed = yes;
        self
    }
    /// Whether a mask (white = edit) is supported.
    pub fn supports_mask(mut self, yes: bool) -> Self {
        self.supports_mask = yes;
        self
    }
    /// Whether its videos carry an audio track.
    pub fn video_audio(mut self, yes: bool) -> Self {
        self.video_audio = yes;
        self
    }
    /// Most reference images one request may carry.
    pub fn max_references(mut self, n: u32) -> Self {
        self.max_references = n;
        self
    }
    /// Most outputs one request may ask for (`-n`).
    pub fn max_outputs(mut self, n: u32) -> Self {
        self.max_outputs = n;
        self
    }
    /// With one more parameter.
    pub fn param(mut self, spec: ParamSpec) -> Self {
        self.params.push(spec);
        self
    }
    /// With these parameters (replacing any).
    pub fn params(mut self, specs: Vec<ParamSpec>) -> Self {
        self.params = specs;
        self
    }
    /// The media type references should be sent in (`image/png`, `image/jpeg`).
    pub fn input_mime(mut self, mime: &str) -> Self {
        self.input_mime = mime.into();
        self
    }
}

impl InputPlan {
    /// References as the user gave them.
    pub fn as_given() -> Self {
        InputPlan { exact_size: None, max_side: None }
    }
    /// Every reference (and the mask) cover-cropped to exactly `width`x`height`.
    pub fn exact(width: u32, height: u32) -> Self {
        InputPlan { exact_size: Some((width, height)), max_side: None }
    }
    /// References whose longer side exceeds `side` shrunk to it, keeping aspect.
    pub fn max_side(side: u32) -> Self {
        InputPlan { exact_size: None, max_side: Some(side) }
    }
}

impl ParamSpec {
    fn new(name: &str, description: &str, kind: ParamType) -> Self {
        ParamSpec { name: name.into(), description: description.into(), type_: kind, required: false }
    }
    /// A whole number within `min..=max`.
    pub fn integer(name: &str, description: &str, min: i64, max: i64) -> Self {
        Self::new(name, description, ParamType::Integer(IntegerSpec { default: None, min: Some(min), max: Some(max) }))
    }
    /// A real number within `min..=max`.
    pub fn number(name: &str, description: &str, min: f64, max: f64) -> Self {
        Self::new(name, description, ParamType::Number(NumberSpec { default: None, min: Some(min), max: Some(max) }))
    }
    /// `true` / `false`.
    pub fn boolean(name: &str, description: &str) -> Self {
        Self::new(name, description, ParamType::Boolean(None))
    }
    /// Free text.
    pub fn text(name: &str, description: &str) -> Self {
        Self::new(name, description, ParamType::Text(TextSpec { default: None, max_len: None }))
    }
    /// One of `choices`.
    pub fn choice(name: &str, description: &str, choices: &[&str]) -> Self {
        let choices = choices.iter().map(|c| c.to_string()).collect();
        Self::new(name, description, ParamType::Choice(ChoiceSpec { default: None, choices }))
    }
    /// An image file the host checks, reads and passes encoded.
    pub fn media(name: &str, description: &str) -> Self {
        Self::new(name, description, ParamType::Media)
    }
    /// The same parameter with a default, which must fit its type (an integer for `integer`, one
    /// of the choices for `choice`, ...). A default that does not fit is a bug in the plugin, so
    /// this panics with the parameter's name rather than describe a parameter the host would refuse.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        let value = value.into();
        let fits = match (&mut self.type_, value) {
            (ParamType::Boolean(d), Value::Boolean(b)) => {
                *d = Some(b);
                true
            }
            (ParamType::Integer(s), Value::Integer(i)) => {
                s.default = Some(i);
                true
            }
            (ParamType::Number(s), Value::Number(n)) => {
                s.default = Some(n);
                true
            }
            (ParamType::Number(s), Value::Integer(i)) => {
                s.default = Some(i as f64);
                true
            }
            (ParamType::Text(s), Value::Text(t)) => {
                s.default = Some(t);
                true
            }
            (ParamType::Choice(s), Value::Text(t)) => {
                let ok = s.choices.contains(&t);
                s.default = Some(t);
                ok
            }
            _ => false,
        };
        assert!(fits, "ParamSpec `{}`: the default does not fit the parameter's type or choices", self.name);
        self
    }
    /// The declared default as a [`Value`], when there is one.
    pub fn default_value(&self) -> Option<Value> {
        match &self.type_ {
            ParamType::Boolean(d) => d.map(Value::Boolean),
            ParamType::Integer(s) => s.default.map(Value::Integer),
            ParamType::Number(s) => s.default.map(Value::Number),
            ParamType::Text(s) => s.default.clone().map(Value::Text),
            ParamType::Choice(s) => s.default.clone().map(Value::Text),
            ParamType::Media => None,
        }
    }
    /// The same text parameter, limited to `bytes` bytes.
    pub fn max_len(mut self, bytes: u32) -> Self {
        if let ParamType::Text(s) = &mut self.type_ {
            s.max_len = Some(bytes);
        }
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
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
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
    /// An artifact whose bytes are in hand (for large outputs, see [`crate::ArtifactStream`]).
    pub fn inline(mime: &str, bytes: Vec<u8>) -> Self {
        Self::with_body(mime, Body::Inline(bytes))
    }
    /// An artifact the host downloads itself.
    pub fn download(mime: &str, download: Download) -> Self {
        Self::with_body(mime, Body::Download(download))
    }
    /// An artifact with this body, no seed, no audio, no notes.
    pub fn with_body(mime: &str, body: Body) -> Self {
        Artifact { mime: mime.into(), body, seed: None, has_audio: false, notes: vec![] }
    }
    /// The same artifact, saying whether its video carries an audio track.
    pub fn audio(mut self, has_audio: bool) -> Self {
        self.has_audio = has_audio;
        self
    }
    /// The same artifact with one more provenance note.
    pub fn note(mut self, key: &str, value: impl Into<String>) -> Self {
        self.notes.push((key.into(), value.into()));
        self
    }
}

impl Download {
    /// A URL to fetch with no extra headers and no known expiry.
    pub fn url(url: &str) -> Self {
        Download { url: url.into(), headers: vec![], expires_at_ms: None }
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
    /// The same outcome with this usage.
    pub fn usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }
}

impl Progress {
    /// A job still running, in the provider's `state`, to be polled again after `retry_after_ms`.
    pub fn running(state: &str, retry_after_ms: u64) -> Self {
        Progress { fraction: None, retry_after_ms, state: state.into(), partials: vec![] }
    }
    /// The same progress with a fraction done (clamped to 0..=1).
    pub fn fraction(mut self, fraction: f32) -> Self {
        self.fraction = Some(fraction.clamp(0.0, 1.0));
        self
    }
    /// The same progress with one more partial result.
    pub fn partial(mut self, partial: Partial) -> Self {
        self.partials.push(partial);
        self
    }
}

impl Partial {
    /// Output `index` of the batch, final: the host keeps it as it is.
    pub fn ready(index: u32, artifact: Artifact) -> Self {
        Partial { index, preview: false, artifact }
    }
    /// A preview of output `index` (a video's frame is index 0), replaced by the final output.
    pub fn preview(index: u32, artifact: Artifact) -> Self {
        Partial { index, preview: true, artifact }
    }
}

impl Error {
    /// An `invalid-input` error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_fill_the_typed_fields() {
        let info = ModelInfo::image_to_video("veo", "Veo")
            .aspect_ratios(&["16:9", "9:16"])
            .sizes(&["720p", "1080p"])
            .video_audio(true)
            .generates_without_input(true)
            .param(ParamSpec::integer("seconds", "Length", 4, 8).default(8i64));
        assert_eq!(info.outputs, [OutputKind::Video]);
        assert_eq!((info.aspect_ratios[0].as_str(), info.sizes[1].as_str()), ("16:9", "1080p"));
        assert!(info.video_audio && info.generates_without_input && info.effects_outside_host);
        match &info.params[0].type_ {
            ParamType::Integer(s) => assert_eq!((s.default, s.min, s.max), (Some(8), Some(4), Some(8))),
            t => panic!("{t:?}"),
        }
        let choice = ParamSpec::choice("quality", "How good", &["low", "high"]).default("high");
        assert!(matches!(choice.type_, ParamType::Choice(ChoiceSpec { default: Some(ref d), .. }) if d == "high"));
        let n = ParamSpec::number("amount", "How much", 0.0, 1.0).default(1i64);
        assert!(matches!(n.type_, ParamType::Number(NumberSpec { default: Some(1.0), .. })));
    }

    #[test]
    #[should_panic(expected = "ParamSpec `quality`")]
    fn a_default_outside_the_choices_is_a_bug_named() {
        let _ = ParamSpec::choice("quality", "How good", &["low", "high"]).default("medium");
    }

    #[test]
    #[should_panic(expected = "ParamSpec `levels`")]
    fn a_default_of_the_wrong_type_is_a_bug_named() {
        let _ = ParamSpec::integer("levels", "Levels", 2, 8).default("four");
    }
}
