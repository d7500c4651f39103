//! Which sizes and durations each Sora model takes, and the checks made before a job is sent.

use atelier_sdk::{Error, Param, Params};
use provider_common::parse_wxh;

/// Sizes Sora 2 takes (portrait first: the API's default is 720x1280).
pub const SORA2_SIZES: [&str; 2] = ["720x1280", "1280x720"];
/// Sizes Sora 2 Pro takes.
pub const SORA2_PRO_SIZES: [&str; 6] = ["720x1280", "1280x720", "1024x1792", "1792x1024", "1080x1920", "1920x1080"];
/// Durations in seconds, sent as strings.
pub const SECONDS: [&str; 5] = ["4", "8", "12", "16", "20"];

/// The allowed sizes and durations for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Choices {
    /// `WxH` values.
    pub sizes: Vec<String>,
    /// Seconds as text.
    pub seconds: Vec<String>,
}

impl Choices {
    /// From the model id (`sora-2-pro*` or else `sora-2`), overridden by the `sizes` / `seconds`
    /// settings (comma lists) for gateways serving other models.
    pub fn for_model(model: &str, sizes: Option<&str>, seconds: Option<&str>) -> Choices {
        let list = |s: &str| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect::<Vec<_>>();
        let default_sizes: &[&str] = if model.starts_with("sora-2-pro") { &SORA2_PRO_SIZES } else { &SORA2_SIZES };
        Choices {
            sizes: sizes.map(list).unwrap_or_else(|| default_sizes.iter().map(|s| s.to_string()).collect()),
            seconds: seconds.map(list).unwrap_or_else(|| SECONDS.iter().map(|s| s.to_string()).collect()),
        }
    }
}

/// Check a request and return the exact (width, height) the reference must have.
/// `size` is the typed `--size` (one of `choices.sizes`; the first when not given).
pub fn check(model: &str, choices: &Choices, prompt: &str, references: usize, has_mask: bool, size: Option<&str>, params: &[Param]) -> Result<(u32, u32), Error> {
    if prompt.trim().is_empty() {
        return Err(Error::invalid("Sora needs a prompt: describe the motion and the scene"));
    }
    if references != 1 {
        return Err(Error::invalid(format!("Sora image-to-video takes exactly one image (the first frame); you gave {references}")));
    }
    if has_mask {
        return Err(Error::invalid("Sora takes no mask"));
    }
    let size = size.unwrap_or(choices.sizes.first().map(String::as_str).unwrap_or("720x1280"));
    if !choices.sizes.iter().any(|s| s == size) {
        return Err(Error::invalid(format!("size `{size}` is not available on {model}: use one of {}", choices.sizes.join(", "))));
    }
    let seconds = params.text("seconds").unwrap_or("4");
    if !choices.seconds.iter().any(|s| s == seconds) {
        return Err(Error::invalid(format!("seconds `{seconds}` is not available on {model}: use one of {}", choices.seconds.join(", "))));
    }
    parse_wxh(size).ok_or_else(|| Error::invalid(format!("size `{size}` is not WxH")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_follow_the_model_and_overrides() {
        assert_eq!(Choices::for_model("sora-2", None, None).sizes, SORA2_SIZES);
        assert_eq!(Choices::for_model("sora-2-pro-2025-10-06", None, None).sizes, SORA2_PRO_SIZES);
        let c = Choices::for_model("veo-ish", Some("640x480, 480x640"), Some("5,10"));
        assert_eq!((c.sizes, c.seconds), (vec!["640x480".to_string(), "480x640".into()], vec!["5".to_string(), "10".into()]));
    }

    #[test]
    fn checks_size_seconds_and_references() {
        let c = Choices::for_model("sora-2", None, None);
        let p = [Param::new("seconds", "8")];
        assert_eq!(check("sora-2", &c, "go", 1, false, Some("1280x720"), &p).unwrap(), (1280, 720));
        let e = check("sora-2", &c, "go", 1, false, Some("1792x1024"), &[]).unwrap_err();
        assert!(matches!(&e, Error::InvalidInput(m) if m.contains("720x1280, 1280x720")), "{e:?}");
        assert!(check("sora-2", &c, "go", 1, false, None, &[Param::new("seconds", "5")]).is_err());
        assert!(check("sora-2", &c, "go", 0, false, None, &[]).is_err());
        assert!(check("sora-2", &c, "go", 1, true, None, &[]).is_err());
        assert_eq!(check("sora-2", &c, "go", 1, false, None, &[]).unwrap(), (720, 1280));
    }
}
