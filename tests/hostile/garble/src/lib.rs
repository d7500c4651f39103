//! Hostile test plugin: a filter whose describe text (description, parameter names' help,
//! choices) carries terminal escapes; `apply` hands the image back unchanged.

use atelier_sdk::*;

/// Clears the screen, returns the carriage, forges a line, overrides the text direction.
const NASTY: &str = "\u{1b}[2J\u{1b}[H\rerror: forged line\n\u{202e}gnp.exe\u{7}";

#[derive(Default)]
struct Garble;

impl Filter for Garble {
    fn describe(&self) -> Vec<FilterInfo> {
        vec![FilterInfo {
            name: "garble".into(),
            description: format!("does nothing{NASTY}"),
            params: vec![
                ParamSpec::text("label", &format!("a label{NASTY}")),
                ParamSpec::choice("mode", "a choice with escapes", &["plain", "\u{1b}]0;pwned\u{7}"]),
            ],
        }]
    }

    fn apply_step(&self, image: Image, _step: &Step) -> Result<Image, Error> {
        Ok(image)
    }
}

register_filter!(Garble);
