//! Test plugin: a filter whose result lies about its size. Step `lie:width=W,height=H,pixels=P`
//! returns a W×H image with P = `none` (no pixels at all), `short` (one pixel too few), or `full`
//! (exactly W×H×4 bytes, an honest image that may still be over the host's limits). 2^31 × 2^31
//! with no pixels is the case whose `w*h*4` wraps to 0 on a 64-bit host.

use atelier_sdk::*;

#[derive(Default)]
struct BigFilter;

impl Filter for BigFilter {
    fn describe(&self) -> Vec<FilterInfo> {
        vec![FilterInfo {
            name: "lie".into(),
            description: "Returns an image of the given size with none, too few or all of its pixels".into(),
            params: vec![
                ParamSpec::integer("width", "Width claimed", 0, u32::MAX as i64).required(),
                ParamSpec::integer("height", "Height claimed", 0, u32::MAX as i64).required(),
                ParamSpec::choice("pixels", "How many pixel bytes to return", &["none", "short", "full"]).default("none"),
            ],
        }]
    }

    fn apply_step(&self, _image: Image, step: &Step) -> Result<Image, Error> {
        let width = step.params.integer("width").ok_or(Error::invalid("width"))? as u32;
        let height = step.params.integer("height").ok_or(Error::invalid("height"))? as u32;
        let full = (width as usize).checked_mul(height as usize).and_then(|p| p.checked_mul(4));
        let len = match step.params.text("pixels").unwrap_or("none") {
            "none" => 0,
            "short" => full.ok_or(Error::invalid("too big for `short`"))?.saturating_sub(4),
            _ => full.ok_or(Error::invalid("too big for `full`"))?,
        };
        Ok(Image { width, height, pixels: vec![128; len] })
    }
}

register_filter!(BigFilter);
