//! The model's parameters: their declarations for `describe()` and their typed reading. Kept in one
//! place so a default can never differ between what is advertised and what is used.

use atelier_sdk::{Param, ParamSpec, ParamType, Params, Value};

use crate::prompt::{Motion, Style};

/// Still image or Ken Burns video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// One PNG per variation.
    Image,
    /// One animated GIF per variation.
    Video,
}

/// How "remove" fills the mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InpaintMethod {
    /// Exemplar patches from the rest of the image (multi-scale PatchMatch); seed-dependent.
    PatchMatch,
    /// Telea's fast marching plus matched grain; smooth, best on smooth backgrounds.
    Telea,
}

/// Every parameter, typed, with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `output`: image or video.
    pub output: Output,
    /// `style`: an explicit look that replaces the prompt's look words (`None` = `auto`).
    pub style: Option<Style>,
    /// `strength`: overall intensity, 0..1.
    pub strength: f32,
    /// `levels`: palette size for posterize and pop art.
    pub levels: usize,
    /// `pixel_size`: block size for pixel art.
    pub pixel_size: usize,
    /// `pixel_colors`: palette size for pixel art.
    pub pixel_colors: usize,
    /// `grain`: film grain amount, 0..1.
    pub grain: f32,
    /// `feather`: mask edge softening, px outward.
    pub feather: usize,
    /// `inpaint_radius`: neighbourhood used by the inpainting, px.
    pub inpaint_radius: usize,
    /// `inpaint`: which inpainting method "remove" uses.
    pub inpaint: InpaintMethod,
    /// `seconds`: video length.
    pub seconds: f32,
    /// `fps`: video frame rate.
    pub fps: u32,
    /// `max_side`: longest side of the video frames.
    pub max_side: u32,
    /// `motion`: explicit camera move (`None` = from the prompt).
    pub motion: Option<Motion>,
    /// `zoom`: how far a zoom or pan moves in (1.3 = the final frame shows 1/1.3 of the width).
    pub zoom: f32,
}

const STYLE_CHOICES: [&str; 20] = [
    "auto", "watercolor", "sketch", "cartoon", "oil-painting", "pop-art", "posterize", "pixel-art", "noir",
    "black-and-white", "sepia", "vintage", "film-grain", "warmer", "cooler", "brighter", "darker", "contrast",
    "vignette", "remove",
];
const MOTION_CHOICES: [&str; 7] = ["auto", "zoom-in", "zoom-out", "pan-left", "pan-right", "pan-up", "pan-down"];

/// The parameter declarations `describe()` advertises.
pub fn specs() -> Vec<ParamSpec> {
    vec![
        ParamSpec::choice("style", "A look that replaces the prompt's look words (adjustment words still apply); auto = from the prompt", &STYLE_CHOICES).default("auto"),
        ParamSpec::number("strength", "Overall intensity: smoothing radius, Kuwahara radius, tone amounts", 0.0, 1.0).default(0.6),
        ParamSpec::integer("levels", "Colours for posterize / pop art", 2, 32).default(6i64),
        ParamSpec::integer("pixel_size", "Block size in px for pixel art", 2, 64).default(8i64),
        ParamSpec::integer("pixel_colors", "Palette size for pixel art", 2, 64).default(16i64),
        ParamSpec::number("grain", "Film grain amount for film grain / vintage", 0.0, 1.0).default(0.35),
        ParamSpec::integer("feather", "With a mask: the edit fades out over this many px outside the mask", 0, 64).default(8i64),
        ParamSpec::choice("inpaint", "Remove/erase method: patchmatch copies texture from the image, telea diffuses smoothly inward", &["patchmatch", "telea"]).default("patchmatch"),
        ParamSpec::integer("inpaint_radius", "Remove/erase with telea: neighbourhood radius in px the fill draws from", 2, 15).default(5i64),
        ParamSpec::number("seconds", "Video length in seconds", 1.0, 10.0).default(3.0),
        ParamSpec::integer("fps", "Video frames per second", 5, 30).default(20i64),
        ParamSpec::integer("max_side", "Video frame size: longest side in px (never larger than the source)", 64, 1024).default(512i64),
        ParamSpec::choice("motion", "Video camera move; auto = from the prompt's words, else a slow zoom in", &MOTION_CHOICES).default("auto"),
        ParamSpec::number("zoom", "Video: how far zooms and pans move in (1.3 = end frame shows 1/1.3 of the width)", 1.05, 2.5).default(1.3),
    ]
}

impl Settings {
    /// Read the parameters, filling defaults for missing ones (the host normally fills them already)
    /// and refusing unknown names, wrong kinds and out-of-range values with the allowed range.
    /// `output` is the request's typed output kind (image = styled PNGs; video = a Ken Burns animated
    /// GIF of the first reference).
    pub fn from_params(params: &[Param], output: Output) -> Result<Settings, String> {
        let specs = specs();
        for p in params {
            let Some(spec) = specs.iter().find(|s| s.name == p.name) else {
                let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
                return Err(format!("unknown parameter `{}`; this model takes: {}", p.name, names.join(", ")));
            };
            check(spec, &p.value)?;
        }
        let default = |name: &str| specs.iter().find(|s| s.name == name).and_then(|s| s.default_value()).expect("every parameter has a default");
        let value = |name: &str| params.value(name).cloned().unwrap_or_else(|| default(name));
        let text = |name: &str| match value(name) { Value::Text(t) => t, _ => unreachable!("checked above") };
        let number = |name: &str| match value(name) { Value::Number(n) => n, Value::Integer(i) => i as f64, _ => unreachable!("checked above") };
        Ok(Settings {
            output,
            style: Style::from_name(&text("style")),
            strength: number("strength") as f32,
            levels: number("levels") as usize,
            pixel_size: number("pixel_size") as usize,
            pixel_colors: number("pixel_colors") as usize,
            grain: number("grain") as f32,
            feather: number("feather") as usize,
            inpaint_radius: number("inpaint_radius") as usize,
            inpaint: if text("inpaint") == "telea" { InpaintMethod::Telea } else { InpaintMethod::PatchMatch },
            seconds: number("seconds") as f32,
            fps: number("fps") as u32,
            max_side: number("max_side") as u32,
            motion: Motion::from_name(&text("motion")),
            zoom: number("zoom") as f32,
        })
    }
}

/// Check one value against its declaration.
fn check(spec: &ParamSpec, value: &Value) -> Result<(), String> {
    let name = &spec.name;
    let (n, lo, hi) = match (&spec.type_, value) {
        (ParamType::Choice(c), Value::Text(t)) => {
            return if c.choices.contains(t) { Ok(()) } else { Err(format!("`{name}` must be one of {}, not `{t}`", c.choices.join(", "))) };
        }
        (ParamType::Integer(s), Value::Integer(i)) => (*i as f64, s.min.map_or(f64::MIN, |m| m as f64), s.max.map_or(f64::MAX, |m| m as f64)),
        (ParamType::Number(s), Value::Number(x)) => (*x, s.min.unwrap_or(f64::MIN), s.max.unwrap_or(f64::MAX)),
        (ParamType::Number(s), Value::Integer(i)) => (*i as f64, s.min.unwrap_or(f64::MIN), s.max.unwrap_or(f64::MAX)),
        (ParamType::Integer(_), _) => return Err(format!("`{name}` has the wrong kind of value; it takes a whole number")),
        (ParamType::Number(_), _) => return Err(format!("`{name}` has the wrong kind of value; it takes a number")),
        _ => return Err(format!("`{name}` has the wrong kind of value")),
    };
    if !(lo..=hi).contains(&n) || n.is_nan() {
        return Err(format!("`{name}` must be between {lo} and {hi}, not {n}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_declarations() {
        let s = Settings::from_params(&[], Output::Image).unwrap();
        assert_eq!(s.output, Output::Image);
        assert_eq!(s.style, None);
        assert_eq!((s.levels, s.feather, s.fps, s.max_side), (6, 8, 20, 512));
        assert_eq!(s.motion, None);
    }

    #[test]
    fn explicit_values_are_read_and_checked() {
        let s = Settings::from_params(&[Param::new("style", "cartoon"), Param::new("levels", 4i64)], Output::Video).unwrap();
        assert_eq!((s.style, s.levels, s.output), (Some(Style::Cartoon), 4, Output::Video));
        assert!(Settings::from_params(&[Param::new("levels", 99i64)], Output::Image).unwrap_err().contains("between 2 and 32"));
        assert!(Settings::from_params(&[Param::new("style", "cubism")], Output::Image).unwrap_err().contains("watercolor"));
        assert!(Settings::from_params(&[Param::new("colour", 1i64)], Output::Image).unwrap_err().contains("unknown parameter"));
    }

    #[test]
    fn style_and_motion_choices_all_parse() {
        for c in STYLE_CHOICES.iter().skip(1) {
            assert!(Style::from_name(c).is_some(), "{c}");
        }
        for c in MOTION_CHOICES.iter().skip(1) {
            assert!(Motion::from_name(c).is_some(), "{c}");
        }
    }
}
