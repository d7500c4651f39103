//! Seedream's documented limits, checked before any call so errors name the allowed values.

use atelier_sdk::{Error, Param, Params};
use provider_common::parse_wxh;

/// Most reference images one request may carry.
pub const MAX_REFERENCES: u32 = 14;
/// References plus outputs of one request.
pub const MAX_TOTAL_IMAGES: u32 = 15;
/// Longest reference side we send (keeps inputs under ModelArk's 10 MB and 6000×6000 limits).
pub const MAX_INPUT_SIDE: u32 = 4096;
const MAX_PIXELS: u64 = 4096 * 4096;
const MAX_INPUT_PIXELS: u64 = 6000 * 6000;
const MAX_RATIO: f64 = 16.0;

/// Which Seedream generation's size rules apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Version {
    /// Seedream 4.0: 1K/2K/4K or WxH with 1280×720 ≤ pixels ≤ 4096×4096.
    V40,
    /// Seedream 4.5: 2K/4K or WxH with 2560×1440 ≤ pixels ≤ 4096×4096.
    V45,
}

impl Version {
    /// From the `model_version` setting when given (`4.0`/`4.5`), else from the model id
    /// (`...-4-5-...`); endpoint ids (`ep-...`) without a setting get 4.0's wider rules.
    pub fn detect(model: &str, setting: Option<&str>) -> Version {
        let hint = setting.unwrap_or(model);
        if hint.contains("4-5") || hint.contains("4.5") { Version::V45 } else { Version::V40 }
    }
    fn name(self) -> &'static str {
        match self {
            Version::V40 => "Seedream 4.0",
            Version::V45 => "Seedream 4.5",
        }
    }
    fn presets(self) -> &'static [&'static str] {
        match self {
            Version::V40 => &["1K", "2K", "4K"],
            Version::V45 => &["2K", "4K"],
        }
    }
    fn min_pixels(self) -> (u64, &'static str) {
        match self {
            Version::V40 => (1280 * 720, "1280x720"),
            Version::V45 => (2560 * 1440, "2560x1440"),
        }
    }
}

/// `2k` → `2K`, ` 1280X720` → `1280x720`; anything else unchanged (checked by [`check_size`]).
pub fn normalize_size(size: &str) -> String {
    match parse_wxh(size) {
        Some((w, h)) => format!("{w}x{h}"),
        None => size.trim().to_ascii_uppercase(),
    }
}

/// The `size` value to send: a preset in uppercase or `WxH`, checked against `version`'s bounds.
pub fn check_size(version: Version, model: &str, size: &str) -> Result<String, Error> {
    let upper = size.trim().to_ascii_uppercase();
    if version.presets().contains(&upper.as_str()) {
        return Ok(upper);
    }
    let allowed = format!(
        "{} accepts size {} or WxH with {} ≤ width×height ≤ 4096x4096 and an aspect ratio between 1:16 and 16:1 \
         (e.g. 2048x2048, 2560x1440, 1440x2560, 2304x1728)",
        version.name(),
        version.presets().join(", "),
        version.min_pixels().1
    );
    let Some((w, h)) = parse_wxh(size) else {
        return Err(Error::invalid(format!("size `{size}` is not valid for {model}: {allowed}")));
    };
    let pixels = w as u64 * h as u64;
    let ratio = w.max(h) as f64 / w.min(h) as f64;
    if pixels < version.min_pixels().0 || pixels > MAX_PIXELS || ratio > MAX_RATIO {
        return Err(Error::invalid(format!("size `{size}` ({pixels} pixels) is out of range for {model}: {allowed}")));
    }
    Ok(format!("{w}x{h}"))
}

/// BytePlus's suggested pixel sizes, valid on 4.0 and 4.5 alike.
pub const SUGGESTED_SIZES: [&str; 8] = ["2048x2048", "2304x1728", "1728x2304", "2560x1440", "1440x2560", "2496x1664", "1664x2496", "3024x1296"];

/// The typed sizes `--size` takes on `version`: the presets (2K first, the default), then the
/// suggested pixel sizes. Other `WxH` within the bounds go through the `custom_size` parameter.
pub fn sizes(version: Version) -> Vec<&'static str> {
    // 4.0 also takes its smallest, 1280x720 (quick drafts).
    let presets: &[&str] = if version == Version::V45 { &["2K", "4K"] } else { &["2K", "1K", "4K", "1280x720"] };
    presets.iter().chain(SUGGESTED_SIZES.iter()).copied().collect()
}

/// The size to send: `--size` (one of [`sizes`]) or the `custom_size` parameter (`WxH`), not both.
pub fn requested_size<'a>(size: Option<&'a str>, params: &'a [Param]) -> Result<Option<&'a str>, Error> {
    match (size, params.text("custom_size")) {
        (Some(s), Some(c)) => Err(Error::invalid(format!("give --size {s} or --param custom_size={c}, not both"))),
        (s, c) => Ok(c.or(s)),
    }
}

/// Every check `prepare` makes: the request, then each reference's size.
#[allow(clippy::too_many_arguments)]
pub fn check(version: Version, model: &str, prompt: &str, references: &[(u32, u32)], has_mask: bool, n: u32, size: Option<&str>, params: &[Param]) -> Result<(), Error> {
    check_request(version, model, prompt, references.len(), has_mask, n, size, params)?;
    references.iter().enumerate().try_for_each(|(i, &dims)| check_reference(i, dims))
}

/// The checks that need no reference sizes (also made by `submit`, whose references may be in
/// formats we cannot size without decoding).
#[allow(clippy::too_many_arguments)]
pub fn check_request(version: Version, model: &str, prompt: &str, references: usize, has_mask: bool, n: u32, size: Option<&str>, params: &[Param]) -> Result<(), Error> {
    if prompt.trim().is_empty() {
        return Err(Error::invalid("Seedream needs a prompt: describe the edit or the images to make"));
    }
    if has_mask {
        return Err(Error::invalid("Seedream takes no mask: describe the region to change in the prompt, or use flux-kontext for masked edits"));
    }
    if references as u32 > MAX_REFERENCES {
        return Err(Error::invalid(format!("Seedream takes at most {MAX_REFERENCES} reference images; you gave {references}")));
    }
    let total = references as u32 + n;
    if total > MAX_TOTAL_IMAGES {
        return Err(Error::invalid(format!(
            "Seedream makes at most {MAX_TOTAL_IMAGES} images per request counting the references: {references} references + -n {n} = {total}. \
             Use -n {} or fewer, or fewer references",
            MAX_TOTAL_IMAGES.saturating_sub(references as u32).max(1)
        )));
    }
    if let Some(size) = requested_size(size, params)? {
        check_size(version, model, size)?;
    }
    if version == Version::V45 && params.text("prompt_mode") == Some("fast") {
        return Err(Error::invalid(format!("prompt_mode=fast is not available on {model} (Seedream 4.5 takes only `standard`)")));
    }
    Ok(())
}

/// ModelArk's input limits for reference `index` (0-based) of size `(w, h)`.
pub fn check_reference(index: usize, (w, h): (u32, u32)) -> Result<(), Error> {
    let n = index + 1;
    if w <= 14 || h <= 14 {
        return Err(Error::invalid(format!("reference {n} is {w}x{h}: Seedream needs width and height above 14 px")));
    }
    if w.max(h) as f64 / w.min(h) as f64 > MAX_RATIO {
        return Err(Error::invalid(format!("reference {n} is {w}x{h}: Seedream needs an aspect ratio between 1:16 and 16:1; crop it first")));
    }
    if w as u64 * h as u64 > MAX_INPUT_PIXELS {
        return Err(Error::invalid(format!("reference {n} is {w}x{h}: Seedream takes at most 6000x6000 pixels")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_versions() {
        assert_eq!(Version::detect("seedream-4-0-250828", None), Version::V40);
        assert_eq!(Version::detect("doubao-seedream-4-5-251128", None), Version::V45);
        assert_eq!(Version::detect("ep-2025", Some("4.5")), Version::V45);
        assert_eq!(Version::detect("ep-2025", None), Version::V40);
    }

    #[test]
    fn checks_sizes_per_version() {
        assert_eq!(check_size(Version::V40, "m", "1k").unwrap(), "1K");
        assert_eq!(check_size(Version::V40, "m", "1280x720").unwrap(), "1280x720");
        let e = check_size(Version::V45, "m", "1K").unwrap_err();
        assert!(matches!(&e, Error::InvalidInput(m) if m.contains("2K, 4K") && m.contains("2560x1440")), "{e:?}");
        assert!(check_size(Version::V45, "m", "1280x720").is_err());
        assert!(check_size(Version::V40, "m", "4097x4096").is_err());
        assert!(check_size(Version::V40, "m", "8000x400").is_err()); // ratio 20
        assert!(check_size(Version::V40, "m", "big").is_err());
    }

    #[test]
    fn checks_counts_and_references() {
        let ok = check(Version::V40, "m", "p", &[(100, 100); 3], false, 12, None, &[]);
        assert!(ok.is_ok());
        let e = check(Version::V40, "m", "p", &[(100, 100); 3], false, 13, None, &[]).unwrap_err();
        assert!(matches!(&e, Error::InvalidInput(m) if m.contains("-n 12")), "{e:?}");
        assert!(check(Version::V40, "m", "p", &[(10, 100)], false, 1, None, &[]).is_err());
        assert!(check(Version::V40, "m", "p", &[(100, 100)], true, 1, None, &[]).is_err());
        assert!(check(Version::V40, "m", " ", &[], false, 1, None, &[]).is_err());
        let fast = [Param::new("prompt_mode", "fast")];
        assert!(check(Version::V45, "m", "p", &[], false, 1, None, &fast).is_err());
        assert!(check(Version::V40, "m", "p", &[], false, 1, None, &fast).is_ok());
    }

    #[test]
    fn sizes_are_typed_and_custom_sizes_a_parameter() {
        assert_eq!(sizes(Version::V40)[..4], ["2K", "1K", "4K", "1280x720"]);
        assert_eq!(sizes(Version::V45)[..2], ["2K", "4K"]);
        for v in [Version::V40, Version::V45] {
            for s in sizes(v) {
                check_size(v, "m", s).unwrap_or_else(|e| panic!("{v:?} {s}: {e:?}"));
            }
        }
        let custom = [Param::new("custom_size", "3000x2000")];
        assert_eq!(requested_size(None, &custom).unwrap(), Some("3000x2000"));
        assert_eq!(requested_size(Some("2K"), &[]).unwrap(), Some("2K"));
        assert!(requested_size(Some("2K"), &custom).is_err());
        assert!(check(Version::V45, "m", "p", &[], false, 1, Some("1K"), &[]).is_err());
        assert!(check(Version::V40, "m", "p", &[], false, 1, None, &[Param::new("custom_size", "100x100")]).is_err());
    }
}
