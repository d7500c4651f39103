//! Colours as users write them in parameters: a few names, `#rgb`, `#rrggbb` or `#rrggbbaa`.

use atelier_sdk::Error;

/// An sRGB colour with straight (not premultiplied) alpha.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgba(pub [u8; 4]);

const NAMED: &[(&str, [u8; 4])] = &[
    ("black", [0, 0, 0, 255]),
    ("white", [255, 255, 255, 255]),
    ("gray", [128, 128, 128, 255]),
    ("grey", [128, 128, 128, 255]),
    ("red", [255, 0, 0, 255]),
    ("green", [0, 128, 0, 255]),
    ("blue", [0, 0, 255, 255]),
    ("yellow", [255, 255, 0, 255]),
    ("transparent", [0, 0, 0, 0]),
];

impl Rgba {
    /// Parse `name`, `#rgb`, `#rrggbb` or `#rrggbbaa` (the `#` may be left out of hex forms).
    pub fn parse(text: &str) -> Result<Rgba, Error> {
        let t = text.trim().to_ascii_lowercase();
        if let Some((_, rgba)) = NAMED.iter().find(|(name, _)| *name == t) {
            return Ok(Rgba(*rgba));
        }
        let hex = t.strip_prefix('#').unwrap_or(&t);
        let digit = |i: usize| u8::from_str_radix(&hex[i..i + 1], 16).ok();
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        let parsed = if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            None
        } else {
            match hex.len() {
                3 => (|| Some([digit(0)? * 17, digit(1)? * 17, digit(2)? * 17, 255]))(),
                6 => (|| Some([byte(0)?, byte(2)?, byte(4)?, 255]))(),
                8 => (|| Some([byte(0)?, byte(2)?, byte(4)?, byte(6)?]))(),
                _ => None,
            }
        };
        parsed.map(Rgba).ok_or_else(|| {
            let names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
            Error::invalid(format!(
                "colour `{text}` is not understood; use #rgb, #rrggbb, #rrggbbaa (e.g. #ff8800cc) or one of {}",
                names.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_hex() {
        assert_eq!(Rgba::parse("White").unwrap(), Rgba([255, 255, 255, 255]));
        assert_eq!(Rgba::parse("#f80").unwrap(), Rgba([255, 136, 0, 255]));
        assert_eq!(Rgba::parse("#102030").unwrap(), Rgba([16, 32, 48, 255]));
        assert_eq!(Rgba::parse("10203080").unwrap(), Rgba([16, 32, 48, 128]));
        let err = Rgba::parse("#12345").unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("#rrggbb")), "{err:?}");
        assert!(Rgba::parse("#ééé").is_err());
    }
}
