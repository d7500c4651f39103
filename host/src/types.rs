//! The host's own data model: what it reasons about (images, parameters and their specs, model
//! info, requests, outcomes, artifacts, plugin errors). Each contract version's bindings convert
//! to and from these at the boundary (`wasm::since_v0_1`, `wasm::since_v0_2`); nothing above
//! `plugin.rs` sees a generated type, so a new contract version touches only its binding module.

use std::path::PathBuf;

/// An encoded image or video, e.g. `image/png` bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Media {
    /// The IANA media type (`image/png`).
    pub mime: String,
    /// The encoded bytes.
    pub bytes: Vec<u8>,
}

/// A decoded image: 8-bit RGBA, row-major, no padding.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RGBA8 samples, four bytes a pixel.
    pub pixels: Vec<u8>,
}

impl Image {
    /// Whether the pixel buffer holds exactly `width * height * 4` bytes.
    pub fn is_consistent(&self) -> bool {
        (self.width as u64).checked_mul(self.height as u64).and_then(|n| n.checked_mul(4)) == Some(self.pixels.len() as u64)
    }
}

/// A parameter value, typed.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `true` / `false`.
    Boolean(bool),
    /// A whole number.
    Integer(i64),
    /// A real number.
    Number(f64),
    /// Free text, or one of a parameter's choices.
    Text(String),
    /// An encoded image the host loaded (a parameter of type media).
    Media(Media),
}

/// A named parameter, checked against its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// The parameter's name as declared.
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// The kind of a parameter, without its bounds (for tables and JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// `true`/`false`.
    Boolean,
    /// A whole number.
    Integer,
    /// A real number.
    Number,
    /// Free text.
    Text,
    /// One of a list.
    Choice,
    /// An image file the host reads.
    Media,
}

/// The type of a parameter with what the host checks for that type.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamType {
    /// `true`/`false`, with its default.
    Boolean(Option<bool>),
    /// A whole number: default and inclusive bounds.
    Integer { default: Option<i64>, min: Option<i64>, max: Option<i64> },
    /// A real number: default and inclusive bounds.
    Number { default: Option<f64>, min: Option<f64>, max: Option<f64> },
    /// Free text: default and the longest accepted value in bytes.
    Text { default: Option<String>, max_len: Option<u32> },
    /// One of `choices`; the default is one of them.
    Choice { default: Option<String>, choices: Vec<String> },
    /// A path the user gives; the host reads it and passes the encoded image.
    Media,
}

/// A parameter a plugin accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Name, lowercase with `_`.
    pub name: String,
    /// One line for tables.
    pub description: String,
    /// Its type, bounds and default.
    pub ty: ParamType,
    /// Whether the user must give it.
    pub required: bool,
}

impl ParamSpec {
    /// Its kind, without bounds.
    pub fn kind(&self) -> ParamKind {
        match self.ty {
            ParamType::Boolean(_) => ParamKind::Boolean,
            ParamType::Integer { .. } => ParamKind::Integer,
            ParamType::Number { .. } => ParamKind::Number,
            ParamType::Text { .. } => ParamKind::Text,
            ParamType::Choice { .. } => ParamKind::Choice,
            ParamType::Media => ParamKind::Media,
        }
    }

    /// The inclusive lower bound of a number, as a real.
    pub fn min(&self) -> Option<f64> {
        match self.ty {
            ParamType::Integer { min, .. } => min.map(|v| v as f64),
            ParamType::Number { min, .. } => min,
            _ => None,
        }
    }

    /// The inclusive upper bound of a number, as a real.
    pub fn max(&self) -> Option<f64> {
        match self.ty {
            ParamType::Integer { max, .. } => max.map(|v| v as f64),
            ParamType::Number { max, .. } => max,
            _ => None,
        }
    }

    /// The allowed values of a choice (empty for other types).
    pub fn choices(&self) -> &[String] {
        match &self.ty {
            ParamType::Choice { choices, .. } => choices,
            _ => &[],
        }
    }

    /// The default, as a value.
    pub fn default_value(&self) -> Option<Value> {
        match &self.ty {
            ParamType::Boolean(d) => d.map(Value::Boolean),
            ParamType::Integer { default, .. } => default.map(Value::Integer),
            ParamType::Number { default, .. } => default.map(Value::Number),
            ParamType::Text { default, .. } | ParamType::Choice { default, .. } => default.clone().map(Value::Text),
            ParamType::Media => None,
        }
    }

    /// A spec from the flat shape contract 0.1 and the native ABI use (a kind plus optional
    /// default, bounds and choices), checked: a default of the wrong type, a default outside
    /// the choices or bounds, bounds that are not whole for an integer or are reversed, and a
    /// choice with no choices are refused. Choices given to another kind are dropped.
    #[allow(clippy::too_many_arguments)]
    pub fn from_flat(
        name: String,
        description: String,
        kind: ParamKind,
        default: Option<Value>,
        min: Option<f64>,
        max: Option<f64>,
        choices: Vec<String>,
        required: bool,
    ) -> Result<ParamSpec, String> {
        let bad_default = |d: &Value| format!("parameter `{name}`: default {d:?} does not fit its kind {kind:?}");
        let whole = |x: Option<f64>| -> Result<Option<i64>, String> {
            match x {
                None => Ok(None),
                Some(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(Some(v as i64)),
                Some(v) => Err(format!("parameter `{name}`: bound {v} of a whole-number parameter is not a whole number")),
            }
        };
        let ty = match kind {
            ParamKind::Boolean => ParamType::Boolean(match default {
                None => None,
                Some(Value::Boolean(b)) => Some(b),
                Some(d) => return Err(bad_default(&d)),
            }),
            ParamKind::Integer => ParamType::Integer {
                default: match default {
                    None => None,
                    Some(Value::Integer(i)) => Some(i),
                    Some(d) => return Err(bad_default(&d)),
                },
                min: whole(min)?,
                max: whole(max)?,
            },
            ParamKind::Number => ParamType::Number {
                default: match default {
                    None => None,
                    Some(Value::Number(n)) => Some(n),
                    Some(Value::Integer(i)) => Some(i as f64),
                    Some(d) => return Err(bad_default(&d)),
                },
                min,
                max,
            },
            ParamKind::Text => ParamType::Text {
                default: match default {
                    None => None,
                    Some(Value::Text(t)) => Some(t),
                    Some(d) => return Err(bad_default(&d)),
                },
                max_len: None,
            },
            ParamKind::Choice => ParamType::Choice {
                default: match default {
                    None => None,
                    Some(Value::Text(t)) => Some(t),
                    Some(d) => return Err(bad_default(&d)),
                },
                choices,
            },
            ParamKind::Media => match default {
                None => ParamType::Media,
                Some(d) => return Err(bad_default(&d)),
            },
        };
        let spec = ParamSpec { name, description, ty, required };
        spec.check()?;
        Ok(spec)
    }

    /// Refuse a spec the host could not check against: no name, reversed or non-finite bounds,
    /// a default outside them, a choice without choices or with a default not among them.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty() {
            return Err("a parameter without a name".into());
        }
        fn bounds<T: PartialOrd + Copy + std::fmt::Display>(name: &str, d: Option<T>, a: Option<T>, b: Option<T>) -> Result<(), String> {
            if let (Some(a), Some(b)) = (a, b) {
                if a > b {
                    return Err(format!("parameter `{name}`: its minimum {a} is above its maximum {b}"));
                }
            }
            if let Some(d) = d {
                if a.is_some_and(|a| d < a) || b.is_some_and(|b| d > b) {
                    return Err(format!("parameter `{name}`: its default {d} is outside its bounds"));
                }
            }
            Ok(())
        }
        match &self.ty {
            ParamType::Integer { default, min, max } => bounds(name, *default, *min, *max),
            ParamType::Number { default, min, max } => {
                if [*default, *min, *max].iter().flatten().any(|v| !v.is_finite()) {
                    return Err(format!("parameter `{name}`: a default or bound is not a finite number"));
                }
                bounds(name, *default, *min, *max)
            }
            ParamType::Choice { default, choices } => {
                if choices.is_empty() {
                    return Err(format!("parameter `{name}`: a choice with no choices"));
                }
                match default {
                    Some(d) if !choices.contains(d) => Err(format!("parameter `{name}`: its default `{d}` is not one of its choices ({})", choices.join(", "))),
                    _ => Ok(()),
                }
            }
            ParamType::Text { default: Some(d), max_len: Some(m) } if d.len() > *m as usize => {
                Err(format!("parameter `{name}`: its default is longer than its max_len {m}"))
            }
            _ => Ok(()),
        }
    }
}

/// Why a plugin's call failed, in terms the host can act on.
#[derive(Clone, Debug, PartialEq)]
pub enum PluginError {
    /// The request cannot succeed as given. Not retried.
    InvalidInput(String),
    /// The provider refused the credentials. Not retried.
    Unauthorized(String),
    /// Too many requests: wait and retry.
    RateLimited(RateLimit),
    /// The provider's safety system refused. Not retried.
    Moderated(String),
    /// The provider is down or overloaded and did not accept the call. Retried with backoff.
    Unavailable(String),
    /// Any other provider answer, with its code.
    Provider(ProviderError),
    /// A fault inside the plugin.
    Internal(String),
}

/// Details of a rate limit.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    /// How long the provider asked to wait.
    pub retry_after_ms: Option<u64>,
    /// The provider's message.
    pub message: String,
}

/// A provider error that fits no other case.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderError {
    /// The provider's code.
    pub code: String,
    /// The provider's message.
    pub message: String,
}

/// Images of one size that a call produced or was billed for.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageUsage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// How many.
    pub count: u32,
}

/// What a call used.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// Images produced, by size.
    pub images: Vec<ImageUsage>,
    /// Input tokens.
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Seconds of video produced.
    pub video_seconds: Option<f32>,
}

/// What a model produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Still images.
    Image,
    /// A video clip.
    Video,
}

impl OutputKind {
    /// `image` / `video`.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Image => "image",
            OutputKind::Video => "video",
        }
    }
}

/// What a model accepts, so the host checks a request before anything is sent.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// The plugin id.
    pub id: String,
    /// Human name.
    pub display_name: String,
    /// One paragraph.
    pub description: String,
    /// The provider's model id in use.
    pub model: String,
    /// What it can produce; the first is the default. Never empty.
    pub outputs: Vec<OutputKind>,
    /// Whether it generates from a prompt alone. `None`: the plugin's contract (0.1) does not
    /// say; its `prepare` is asked with no reference instead.
    pub generates_without_input: Option<bool>,
    /// Whether `submit` has effects outside the host (always true for contract 0.1).
    pub effects_outside_host: bool,
    /// Most reference images one request may carry.
    pub max_references: u32,
    /// Most outputs one request may ask for.
    pub max_outputs: u32,
    /// Accepted aspect ratios; the first is the default. Empty: `--aspect` is refused.
    pub aspect_ratios: Vec<String>,
    /// Accepted sizes; the first is the default. Empty: `--size` is refused.
    pub sizes: Vec<String>,
    /// Whether a mask is supported.
    pub supports_mask: bool,
    /// Whether a seed makes results repeatable.
    pub supports_seed: bool,
    /// Whether its videos carry an audio track.
    pub video_audio: bool,
    /// Every other parameter.
    pub params: Vec<ParamSpec>,
    /// The media type references are sent in.
    pub input_mime: String,
}

impl ModelInfo {
    /// Whether it can make `kind`.
    pub fn makes(&self, kind: OutputKind) -> bool {
        self.outputs.contains(&kind)
    }

    /// What it makes when nothing is asked (the first of `outputs`).
    pub fn default_output(&self) -> OutputKind {
        self.outputs.first().copied().unwrap_or(OutputKind::Image)
    }
}

/// What the host knows of a request before it loads the images, for `prepare`.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    /// The instruction.
    pub prompt: String,
    /// (width, height) of each reference, in order.
    pub references: Vec<(u32, u32)>,
    /// Whether a mask comes with it.
    pub has_mask: bool,
    /// How many outputs.
    pub n: u32,
    /// What to produce.
    pub output: OutputKind,
    /// An aspect ratio from `ModelInfo::aspect_ratios`, when given.
    pub aspect: Option<String>,
    /// A size from `ModelInfo::sizes`, when given.
    pub size: Option<String>,
    /// Checked parameters, defaults filled in.
    pub params: Vec<Param>,
}

/// How the host must shape the inputs before `submit`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputPlan {
    /// Fit every reference (and the mask) to exactly this size.
    pub exact_size: Option<(u32, u32)>,
    /// Shrink references whose longer side exceeds this.
    pub max_side: Option<u32>,
}

/// One generation request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The instruction.
    pub prompt: String,
    /// Reference images; the first is the one edited.
    pub references: Vec<Media>,
    /// White = edit, black = keep.
    pub mask: Option<Media>,
    /// How many outputs.
    pub n: u32,
    /// The seed, when given.
    pub seed: Option<u64>,
    /// What to produce.
    pub output: OutputKind,
    /// An aspect ratio from `ModelInfo::aspect_ratios`, when given.
    pub aspect: Option<String>,
    /// A size from `ModelInfo::sizes`, when given.
    pub size: Option<String>,
    /// Checked parameters, defaults filled in.
    pub params: Vec<Param>,
}

/// A result the host downloads itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Download {
    /// Where to fetch it (checked against the allow-list).
    pub url: String,
    /// Headers, may hold `{{secret:NAME}}` placeholders.
    pub headers: Vec<(String, String)>,
    /// When the URL stops working (ms since epoch), when known.
    pub expires_at_ms: Option<u64>,
}

/// The content of an artifact.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// Bytes in hand.
    Inline(Vec<u8>),
    /// A URL for the host to fetch.
    Download(Download),
    /// A file the host already holds (a stream the plugin wrote through `artifacts`); the
    /// outputs code moves or copies it, never reads a video into memory.
    File(PathBuf),
}

/// One output.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    /// Claimed media type (the host sniffs and trusts the bytes).
    pub mime: String,
    /// The content.
    pub body: Body,
    /// The seed that produced it.
    pub seed: Option<u64>,
    /// Whether a video carries audio.
    pub has_audio: bool,
    /// Provider facts for provenance.
    pub notes: Vec<(String, String)>,
}

/// One output of a batch that failed while others succeeded.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemFailure {
    /// Position in the batch.
    pub index: u32,
    /// Why.
    pub error: PluginError,
}

/// A finished job.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The outputs.
    pub artifacts: Vec<Artifact>,
    /// Outputs that failed.
    pub failures: Vec<ItemFailure>,
    /// What the job used.
    pub usage: Usage,
}

/// A job the provider accepted but has not finished.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// What polls and cancels it later; persisted.
    pub token: String,
    /// When to poll first.
    pub retry_after_ms: u64,
}

/// The answer to `submit`.
#[derive(Clone, Debug, PartialEq)]
pub enum Submission {
    /// Finished in the same call.
    Done(Outcome),
    /// Accepted; poll with the token.
    Pending(Pending),
}

/// An output ready before the whole job is.
#[derive(Clone, Debug, PartialEq)]
pub struct Partial {
    /// Position in the batch.
    pub index: u32,
    /// A preview to be replaced by the final output.
    pub preview: bool,
    /// The output.
    pub artifact: Artifact,
}

/// Progress of a pending job.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// 0.0 to 1.0, when known.
    pub fraction: Option<f32>,
    /// When to poll next.
    pub retry_after_ms: u64,
    /// The provider's status word.
    pub state: String,
    /// Outputs ready since the last poll (always empty for contract 0.1).
    pub partials: Vec<Partial>,
}

/// The answer to `poll`.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Still working.
    Running(Progress),
    /// Finished.
    Done(Outcome),
}

/// One filter of a family.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterInfo {
    /// Step name.
    pub name: String,
    /// One line.
    pub description: String,
    /// Its parameters.
    pub params: Vec<ParamSpec>,
}

/// One step of a filter chain, parameters checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// A name from the family's `describe`.
    pub name: String,
    /// Its parameters.
    pub params: Vec<Param>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_specs_are_checked() {
        let ok = ParamSpec::from_flat("n".into(), String::new(), ParamKind::Integer, Some(Value::Integer(3)), Some(1.0), Some(10.0), vec![], false).unwrap();
        assert_eq!(ok.ty, ParamType::Integer { default: Some(3), min: Some(1), max: Some(10) });
        // Choices on an integer are dropped, not kept as a second meaning.
        let dropped = ParamSpec::from_flat("n".into(), String::new(), ParamKind::Integer, None, None, None, vec!["a".into()], false).unwrap();
        assert!(dropped.choices().is_empty());
        let bad = [
            ParamSpec::from_flat("n".into(), String::new(), ParamKind::Integer, Some(Value::Text("x".into())), None, None, vec![], false),
            ParamSpec::from_flat("n".into(), String::new(), ParamKind::Integer, None, Some(1.5), None, vec![], false),
            ParamSpec::from_flat("n".into(), String::new(), ParamKind::Number, None, Some(5.0), Some(1.0), vec![], false),
            ParamSpec::from_flat("n".into(), String::new(), ParamKind::Number, Some(Value::Number(f64::NAN)), None, None, vec![], false),
            ParamSpec::from_flat("c".into(), String::new(), ParamKind::Choice, Some(Value::Text("z".into())), None, None, vec!["a".into()], false),
            ParamSpec::from_flat("c".into(), String::new(), ParamKind::Choice, None, None, None, vec![], false),
            ParamSpec::from_flat(String::new(), String::new(), ParamKind::Text, None, None, None, vec![], false),
        ];
        for b in bad {
            assert!(b.is_err(), "{b:?}");
        }
    }
}
