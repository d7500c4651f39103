//! From the user's words to a plan: which operators to run (in a fixed order) and, for videos, which
//! camera move. Matching is case-insensitive on whole words and phrases; punctuation is ignored.

use std::collections::BTreeSet;

/// One operator the prompt (or the `style` parameter) asked for. The declaration order is the order
/// they are applied in: removal first, then one painterly look, then tone, then finishing touches,
/// grain last so nothing smooths it away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Style {
    /// Inpaint the masked area away.
    Remove,
    /// Kuwahara patches with brush relief.
    OilPainting,
    /// Washes, pooled pigment, paper.
    Watercolor,
    /// Flat colours with inked outlines.
    Cartoon,
    /// Dodge-blend pencil drawing with hatching.
    PencilSketch,
    /// Few saturated, hue-shifted flat colours.
    PopArt,
    /// A few representative flat colours.
    Posterize,
    /// Blocks of a small palette.
    PixelArt,
    /// High-contrast black and white with a vignette.
    Noir,
    /// Plain black and white.
    BlackAndWhite,
    /// Sepia toning.
    Sepia,
    /// Faded sepia print with grain and vignette.
    Vintage,
    /// Warmer white balance.
    Warmer,
    /// Cooler white balance.
    Cooler,
    /// Brighter (gamma).
    Brighter,
    /// Darker (gamma).
    Darker,
    /// An S-curve.
    MoreContrast,
    /// Darkened corners.
    Vignette,
    /// Seeded film grain.
    FilmGrain,
}

impl Style {
    /// The name used by the `style` parameter and in notes.
    pub fn name(self) -> &'static str {
        match self {
            Style::Remove => "remove",
            Style::OilPainting => "oil-painting",
            Style::Watercolor => "watercolor",
            Style::Cartoon => "cartoon",
            Style::PencilSketch => "sketch",
            Style::PopArt => "pop-art",
            Style::Posterize => "posterize",
            Style::PixelArt => "pixel-art",
            Style::Noir => "noir",
            Style::BlackAndWhite => "black-and-white",
            Style::Sepia => "sepia",
            Style::Vintage => "vintage",
            Style::Warmer => "warmer",
            Style::Cooler => "cooler",
            Style::Brighter => "brighter",
            Style::Darker => "darker",
            Style::MoreContrast => "contrast",
            Style::Vignette => "vignette",
            Style::FilmGrain => "film-grain",
        }
    }

    /// Every style, in application order.
    pub const ALL: [Style; 19] = [
        Style::Remove, Style::OilPainting, Style::Watercolor, Style::Cartoon, Style::PencilSketch, Style::PopArt,
        Style::Posterize, Style::PixelArt, Style::Noir, Style::BlackAndWhite, Style::Sepia, Style::Vintage,
        Style::Warmer, Style::Cooler, Style::Brighter, Style::Darker, Style::MoreContrast, Style::Vignette,
        Style::FilmGrain,
    ];

    /// A style by its parameter name.
    pub fn from_name(name: &str) -> Option<Style> {
        Style::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether this is a "look" that the `style` parameter replaces (as opposed to an adjustment that
    /// combines with whatever look is chosen).
    pub fn is_look(self) -> bool {
        matches!(
            self,
            Style::OilPainting | Style::Watercolor | Style::Cartoon | Style::PencilSketch | Style::PopArt
                | Style::Posterize | Style::PixelArt | Style::Noir | Style::BlackAndWhite | Style::Sepia | Style::Vintage
        )
    }
}

/// The phrases the prompt may use for each style; the first is the one shown to users.
const STYLE_WORDS: &[(Style, &[&str])] = &[
    (Style::Remove, &["remove", "erase", "delete", "get rid of"]),
    (Style::OilPainting, &["oil painting", "oil paint", "oil painted", "impasto"]),
    (Style::Watercolor, &["watercolor", "watercolour", "water color", "aquarelle"]),
    (Style::Cartoon, &["cartoon", "comic", "toon", "cel shaded"]),
    (Style::PencilSketch, &["pencil sketch", "sketch", "pencil drawing", "pencil"]),
    (Style::PopArt, &["pop art", "warhol"]),
    (Style::Posterize, &["posterize", "posterise", "poster"]),
    (Style::PixelArt, &["pixel art", "pixelate", "pixelated", "8 bit"]),
    (Style::Noir, &["noir"]),
    (Style::BlackAndWhite, &["black and white", "monochrome", "grayscale", "greyscale"]),
    (Style::Sepia, &["sepia"]),
    (Style::Vintage, &["vintage", "retro", "old photo"]),
    (Style::Warmer, &["warmer", "warm", "warmth"]),
    (Style::Cooler, &["cooler", "cool", "colder"]),
    (Style::Brighter, &["brighter", "brighten", "lighter", "lighten"]),
    (Style::Darker, &["darker", "darken"]),
    (Style::MoreContrast, &["more contrast", "contrast", "punchier"]),
    (Style::Vignette, &["vignette"]),
    (Style::FilmGrain, &["film grain", "grain", "grainy"]),
];

/// A camera move for the Ken Burns video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Motion {
    /// Move closer.
    ZoomIn,
    /// Move away.
    ZoomOut,
    /// Pan toward the left edge.
    PanLeft,
    /// Pan toward the right edge.
    PanRight,
    /// Pan toward the top edge.
    PanUp,
    /// Pan toward the bottom edge.
    PanDown,
}

impl Motion {
    /// The name used by the `motion` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Motion::ZoomIn => "zoom-in",
            Motion::ZoomOut => "zoom-out",
            Motion::PanLeft => "pan-left",
            Motion::PanRight => "pan-right",
            Motion::PanUp => "pan-up",
            Motion::PanDown => "pan-down",
        }
    }

    /// A motion by its parameter name.
    pub fn from_name(name: &str) -> Option<Motion> {
        MOTION_WORDS.iter().map(|(m, _)| *m).find(|m| m.name() == name)
    }

    /// Whether this is a zoom (as opposed to a pan).
    pub fn is_zoom(self) -> bool {
        matches!(self, Motion::ZoomIn | Motion::ZoomOut)
    }
}

const MOTION_WORDS: &[(Motion, &[&str])] = &[
    (Motion::ZoomIn, &["zoom in", "zoom into", "zooming in", "push in", "dolly in"]),
    (Motion::ZoomOut, &["zoom out", "zooming out", "pull out", "pull back", "dolly out"]),
    (Motion::PanLeft, &["pan left", "panning left", "pan to the left"]),
    (Motion::PanRight, &["pan right", "panning right", "pan to the right"]),
    (Motion::PanUp, &["pan up", "tilt up", "panning up"]),
    (Motion::PanDown, &["pan down", "tilt down", "panning down"]),
];

/// What the prompt asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Operators, in application order.
    pub styles: BTreeSet<Style>,
    /// Camera moves named (a zoom and a pan may combine).
    pub motions: Vec<Motion>,
}

/// Lower-case words of the prompt, with `&` read as "and".
fn words(prompt: &str) -> Vec<String> {
    prompt
        .to_lowercase()
        .replace('&', " and ")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether the word sequence `phrase` occurs in `words`.
fn contains_phrase(words: &[String], phrase: &str) -> bool {
    let p: Vec<&str> = phrase.split(' ').collect();
    words.windows(p.len()).any(|w| w.iter().zip(&p).all(|(a, b)| a == b))
}

/// Read the prompt. Contradictory pairs (warmer and cooler, brighter and darker, zoom in and out,
/// opposite pans) are refused because no single result can honour both.
pub fn parse(prompt: &str) -> Result<Plan, String> {
    let words = words(prompt);
    let mut plan = Plan::default();
    for (style, phrases) in STYLE_WORDS {
        if phrases.iter().any(|p| contains_phrase(&words, p)) {
            plan.styles.insert(*style);
        }
    }
    for (motion, phrases) in MOTION_WORDS {
        if phrases.iter().any(|p| contains_phrase(&words, p)) {
            plan.motions.push(*motion);
        }
    }
    for (a, b) in [(Style::Warmer, Style::Cooler), (Style::Brighter, Style::Darker)] {
        if plan.styles.contains(&a) && plan.styles.contains(&b) {
            return Err(format!("the prompt asks for both \"{}\" and \"{}\"; keep one", a.name(), b.name()));
        }
    }
    let zooms: Vec<_> = plan.motions.iter().filter(|m| m.is_zoom()).collect();
    let pans: Vec<_> = plan.motions.iter().filter(|m| !m.is_zoom()).collect();
    if zooms.len() > 1 || pans.len() > 1 {
        let named: Vec<_> = plan.motions.iter().map(|m| m.name()).collect();
        return Err(format!("the prompt names conflicting camera moves ({}); use at most one zoom and one pan", named.join(", ")));
    }
    Ok(plan)
}

/// The words this model understands, for error messages and the description.
pub fn known_words() -> String {
    STYLE_WORDS.iter().map(|(_, p)| format!("\"{}\"", p.join("\"/\""))).collect::<Vec<_>>().join(", ")
}

/// The camera words, for error messages and the description.
pub fn known_motion_words() -> String {
    MOTION_WORDS.iter().map(|(_, p)| format!("\"{}\"", p[0])).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_words_and_phrases_case_insensitively() {
        let p = parse("Make it an OIL PAINTING, warmer, with a Vignette!").unwrap();
        assert_eq!(p.styles.iter().copied().collect::<Vec<_>>(), vec![Style::OilPainting, Style::Warmer, Style::Vignette]);
        let p = parse("black & white film-grain look").unwrap();
        assert!(p.styles.contains(&Style::BlackAndWhite) && p.styles.contains(&Style::FilmGrain));
        assert!(parse("a pencil sketch").unwrap().styles.contains(&Style::PencilSketch));
    }

    #[test]
    fn does_not_match_inside_other_words() {
        // "coolant" is not "cool", "sketchy" is not "sketch".
        assert!(parse("coolant sketchy").unwrap().styles.is_empty());
    }

    #[test]
    fn reads_camera_moves() {
        let p = parse("slowly zoom in and pan left").unwrap();
        assert_eq!(p.motions, vec![Motion::ZoomIn, Motion::PanLeft]);
        assert!(parse("zoom in then zoom out").is_err());
    }

    #[test]
    fn refuses_contradictions() {
        assert!(parse("warmer but cooler").unwrap_err().contains("warmer"));
    }

    #[test]
    fn style_names_round_trip() {
        for s in Style::ALL {
            assert_eq!(Style::from_name(s.name()), Some(s));
        }
        assert!(known_words().contains("\"pop art\""));
    }
}
