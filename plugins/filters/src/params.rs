//! The parameter specs of every filter (what `describe()` returns), and [`Args`], which reads a
//! step's parameters against those specs. The host has already checked kinds, ranges and choices and
//! filled in defaults; `Args` checks again and falls back to the same defaults, so native callers
//! (tests, benchmarks) get the same behaviour and the same errors.

use atelier_sdk::{Error, FilterInfo, Media, Param, ParamSpec, ParamType, Value};

/// Largest width or height a step may ask for (64k keeps `w * h * 4` far from overflow on wasm32).
pub const MAX_SIDE: i64 = 65_535;

/// Resampling filters offered by `resize` and `fit`.
pub const RESAMPLE_CHOICES: &[&str] = &["lanczos3", "catmull-rom", "triangle", "nearest", "gaussian"];

/// Anchors for `crop`'s `gravity`.
pub const GRAVITY_CHOICES: &[&str] =
    &["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"];

/// Corners and centre for `watermark`'s `position`.
pub const POSITION_CHOICES: &[&str] = &["top-left", "top-right", "bottom-left", "bottom-right", "center"];

/// Every filter this component provides, with its parameters.
pub fn filter_infos() -> Vec<FilterInfo> {
    FILTER_NAMES.iter().map(|name| info(name).expect("every listed filter has specs")).collect()
}

/// Names of the filters, in the order `describe()` lists them.
pub const FILTER_NAMES: &[&str] =
    &["resize", "crop", "fit", "rotate", "flip", "adjust", "blur", "sharpen", "grayscale", "watermark"];

/// The description and parameters of one filter, or `None` for an unknown name.
pub fn info(name: &str) -> Option<FilterInfo> {
    let side = |n: &str, d: &str| ParamSpec::integer(n, d, 1, MAX_SIDE);
    let (description, params) = match name {
        "resize" => (
            "Scale to width and/or height (aspect kept when only one is given) or to a longest side",
            vec![
                side("width", "Output width in px; alone, the height follows the aspect ratio"),
                side("height", "Output height in px; alone, the width follows the aspect ratio"),
                side("max", "Shrink so the longer side is at most this many px, keeping aspect (never enlarges)"),
                ParamSpec::choice("filter", "Resampling filter", RESAMPLE_CHOICES).default("lanczos3"),
            ],
        ),
        "crop" => (
            "Cut out a width x height region at x,y from the gravity anchor (top-left by default)",
            vec![
                side("width", "Region width in px").required(),
                side("height", "Region height in px").required(),
                ParamSpec::integer("x", "Offset in px from the anchor, inwards (rightwards for top/center/bottom)", 0, MAX_SIDE)
                    .default(0i64),
                ParamSpec::integer("y", "Offset in px from the anchor, inwards (downwards for left/center/right)", 0, MAX_SIDE)
                    .default(0i64),
                ParamSpec::choice("gravity", "Which part of the image x,y are measured from", GRAVITY_CHOICES)
                    .default("top-left"),
            ],
        ),
        "fit" => (
            "Make the image exactly an aspect ratio (aspect=16:9) or a size (width+height), by centre crop, pad or blurred pad",
            vec![
                ParamSpec::text("aspect", "Target ratio W:H such as 16:9, 4:5 or 1.91:1; alone, the image is cropped or padded without scaling"),
                side("width", "Exact output width in px (with height, or with aspect)"),
                side("height", "Exact output height in px (with width, or with aspect)"),
                ParamSpec::choice("mode", "crop: fill and cut the overflow; pad: fit inside on `color`; blur: fit inside on a blurred copy", &["crop", "pad", "blur"])
                    .default("crop"),
                ParamSpec::text("color", "Padding colour for mode=pad: a name, #rgb, #rrggbb or #rrggbbaa").default("black"),
                ParamSpec::choice("filter", "Resampling filter", RESAMPLE_CHOICES).default("lanczos3"),
            ],
        ),
        "rotate" => (
            "Rotate clockwise; multiples of 90 are exact, other angles resample onto `color`",
            vec![
                ParamSpec::number("degrees", "Clockwise angle; negative turns counter-clockwise", -360.0, 360.0).default(90.0),
                ParamSpec::boolean("expand", "For angles that are not multiples of 90: grow the canvas to keep the corners").default(true),
                ParamSpec::text("color", "Fill for areas the rotated image does not cover").default("black"),
            ],
        ),
        "flip" => (
            "Mirror the image",
            vec![ParamSpec::choice("direction", "horizontal mirrors left-right, vertical top-bottom", &["horizontal", "vertical"])
                .default("horizontal")],
        ),
        "adjust" => (
            "Brightness, contrast, saturation, gamma and colour temperature; the defaults change nothing",
            vec![
                ParamSpec::number("brightness", "Multiplier: 1 unchanged, 0.8 darker, 1.2 brighter", 0.0, 4.0).default(1.0),
                ParamSpec::number("contrast", "Multiplier around mid-grey: 1 unchanged, 0 flat grey", 0.0, 4.0).default(1.0),
                ParamSpec::number("saturation", "Multiplier: 1 unchanged, 0 grey, 2 vivid", 0.0, 4.0).default(1.0),
                ParamSpec::number("gamma", "Gamma: 1 unchanged, above 1 lifts shadows, below 1 deepens them", 0.1, 10.0).default(1.0),
                ParamSpec::number("temperature", "Colour temperature: 0 unchanged, positive warmer, negative cooler", -1.0, 1.0)
                    .default(0.0),
            ],
        ),
        "blur" => (
            "Gaussian blur",
            vec![ParamSpec::number("sigma", "Standard deviation in px (radius ~ 3 sigma)", 0.1, 200.0).default(2.0)],
        ),
        "sharpen" => (
            "Unsharp mask: add back `amount` times the detail a Gaussian blur removes",
            vec![
                ParamSpec::number("amount", "Strength: 0 nothing, 1 doubles fine detail", 0.0, 10.0).default(1.0),
                ParamSpec::number("sigma", "Size of the detail to sharpen, in px", 0.1, 20.0).default(1.0),
                ParamSpec::integer("threshold", "Leave alone differences smaller than this (0-255 levels); raises it to spare noise", 0, 255)
                    .default(0i64),
            ],
        ),
        "grayscale" => ("Convert to grey (Rec. 709 luma); alpha kept", vec![]),
        "watermark" => (
            "Stamp a text or a logo image in a corner or the centre",
            vec![
                ParamSpec::text("text", "Text to stamp (give this or image)"),
                ParamSpec::media("image", "Logo image file to stamp, transparency respected (give this or text)"),
                ParamSpec::choice("position", "Where to put the mark", POSITION_CHOICES).default("bottom-right"),
                ParamSpec::number("opacity", "0 invisible, 1 fully opaque", 0.0, 1.0).default(0.5),
                ParamSpec::number("size", "Mark height as a fraction of the image's shorter side", 0.005, 1.0).default(0.05),
                ParamSpec::integer("size_px", "Mark height in px; overrides size", 1, MAX_SIDE),
                ParamSpec::number("margin", "Distance from the edges as a fraction of the shorter side", 0.0, 0.5).default(0.02),
                ParamSpec::text("color", "Text colour: a name, #rgb, #rrggbb or #rrggbbaa").default("white"),
            ],
        ),
        _ => return None,
    };
    Some(FilterInfo { name: name.into(), description: description.into(), params })
}

/// A step's parameters, read against its filter's specs: declared names only, kinds and ranges
/// checked, declared defaults filled in.
pub struct Args<'a> {
    filter: String,
    params: &'a [Param],
    specs: Vec<ParamSpec>,
    /// The declared defaults, as values.
    defaults: Vec<Param>,
}

impl<'a> Args<'a> {
    /// Check `params` against the specs of filter `name`.
    pub fn new(name: &str, params: &'a [Param]) -> Result<Self, Error> {
        let info = info(name).ok_or_else(|| {
            Error::invalid(format!("unknown filter `{name}`; this plugin provides {}", FILTER_NAMES.join(", ")))
        })?;
        let defaults = info.params.iter().filter_map(|s| Some(Param { name: s.name.clone(), value: s.default_value()? })).collect();
        let args = Args { filter: info.name, params, specs: info.params, defaults };
        for param in params {
            let spec = args.spec(&param.name).ok_or_else(|| {
                let known: Vec<&str> = args.specs.iter().map(|s| s.name.as_str()).collect();
                Error::invalid(format!(
                    "`{}` has no parameter `{}`; it takes: {}",
                    args.filter,
                    param.name,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ))
            })?;
            args.check(spec, &param.value)?;
        }
        for spec in args.specs.iter().filter(|s| s.required) {
            if args.value(&spec.name).is_none() {
                return Err(Error::invalid(format!(
                    "`{}` needs `{}` ({})",
                    args.filter, spec.name, spec.description
                )));
            }
        }
        Ok(args)
    }

    /// The filter these arguments are for.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    fn spec(&self, name: &str) -> Option<&ParamSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// The given value, else the declared default.
    fn value(&self, name: &str) -> Option<&Value> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .or_else(|| self.defaults.iter().find(|p| p.name == name))
            .map(|p| &p.value)
    }

    fn check(&self, spec: &ParamSpec, value: &Value) -> Result<(), Error> {
        let wrong_kind = || {
            Error::invalid(format!(
                "`{}` parameter `{}` must be {}, got {}",
                self.filter,
                spec.name,
                kind_name(&spec.type_),
                value_kind(value)
            ))
        };
        let out_of_range = |n: &dyn std::fmt::Display, min: Option<String>, max: Option<String>| {
            Error::invalid(format!(
                "`{}` parameter `{}` = {n} is outside {}..={}",
                self.filter,
                spec.name,
                min.unwrap_or_default(),
                max.unwrap_or_default(),
            ))
        };
        match (&spec.type_, value) {
            (ParamType::Integer(s), Value::Integer(i)) => {
                if s.min.is_some_and(|m| *i < m) || s.max.is_some_and(|m| *i > m) {
                    return Err(out_of_range(i, s.min.map(|m| m.to_string()), s.max.map(|m| m.to_string())));
                }
            }
            (ParamType::Number(s), Value::Number(_) | Value::Integer(_)) => {
                let n = match value {
                    Value::Integer(i) => *i as f64,
                    Value::Number(n) => *n,
                    _ => unreachable!(),
                };
                if !n.is_finite() || s.min.is_some_and(|m| n < m) || s.max.is_some_and(|m| n > m) {
                    return Err(out_of_range(&n, s.min.map(|m| m.to_string()), s.max.map(|m| m.to_string())));
                }
            }
            (ParamType::Boolean(_), Value::Boolean(_)) | (ParamType::Text(_), Value::Text(_)) | (ParamType::Media, Value::Media(_)) => {}
            (ParamType::Choice(c), Value::Text(t)) => {
                if !c.choices.iter().any(|x| x == t) {
                    return Err(Error::invalid(format!(
                        "`{}` parameter `{}` is `{t}`; choose one of {}",
                        self.filter,
                        spec.name,
                        c.choices.join(", ")
                    )));
                }
            }
            _ => return Err(wrong_kind()),
        }
        Ok(())
    }

    /// A whole-number parameter.
    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            Value::Integer(i) => Some(*i),
            Value::Number(n) => Some(*n as i64),
            _ => None,
        }
    }

    /// A side length in px (an integer parameter bounded by [`MAX_SIDE`]).
    pub fn side(&self, name: &str) -> Option<u32> {
        self.integer(name).map(|v| v.clamp(0, MAX_SIDE) as u32)
    }

    /// A real-number parameter.
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.value(name)? {
            Value::Number(n) => Some(*n),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// A boolean parameter.
    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.value(name)? {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// A text or choice parameter.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.value(name)? {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// A media parameter (encoded bytes the host loaded).
    pub fn media(&self, name: &str) -> Option<&Media> {
        match self.value(name)? {
            Value::Media(m) => Some(m),
            _ => None,
        }
    }
}

/// How a type reads in an error message.
fn kind_name(kind: &ParamType) -> &'static str {
    match kind {
        ParamType::Boolean(_) => "true or false",
        ParamType::Integer(_) => "a whole number",
        ParamType::Number(_) => "a number",
        ParamType::Text(_) => "text",
        ParamType::Choice(_) => "one of its choices",
        ParamType::Media => "an image file",
    }
}

/// What a given value is, for error messages.
fn value_kind(value: &Value) -> String {
    match value {
        Value::Boolean(b) => format!("`{b}`"),
        Value::Integer(i) => format!("`{i}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::Text(t) => format!("the text `{t}`"),
        Value::Media(m) => format!("a {} file", m.mime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_has_specs_with_valid_defaults() {
        for info in filter_infos() {
            for spec in &info.params {
                if let Some(default) = spec.default_value() {
                    let params = vec![Param { name: spec.name.clone(), value: default.clone() }];
                    // Required params have no default, so a lone default is checked in isolation.
                    let args = Args { filter: info.name.clone(), params: &params, specs: info.params.clone(), defaults: vec![] };
                    args.check(spec, &default).unwrap_or_else(|e| panic!("{}.{}: {e:?}", info.name, spec.name));
                }
            }
        }
    }

    #[test]
    fn unknown_names_and_bad_values_are_explained() {
        let err = Args::new("resize", &[Param::new("widht", 10i64)]).err().unwrap();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("widht") && m.contains("width, height, max")), "{err:?}");
        let err = Args::new("resize", &[Param::new("width", 0i64)]).err().unwrap();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("outside 1..=65535")), "{err:?}");
        let err = Args::new("flip", &[Param::new("direction", "sideways")]).err().unwrap();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("horizontal, vertical")), "{err:?}");
        let err = Args::new("blur", &[Param::new("sigma", "soft")]).err().unwrap();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("must be a number, got the text `soft`")), "{err:?}");
        let err = Args::new("emboss", &[]).err().unwrap();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("unknown filter `emboss`")), "{err:?}");
        let err = Args::new("crop", &[Param::new("width", 5i64)]).err().unwrap();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("needs `height`")), "{err:?}");
    }

    #[test]
    fn defaults_fill_in() {
        let params = [Param::new("contrast", 1.5)];
        let args = Args::new("adjust", &params).unwrap();
        assert_eq!(args.number("contrast"), Some(1.5));
        assert_eq!(args.number("brightness"), Some(1.0));
        assert_eq!(args.integer("missing"), None);
    }
}
