//! What each Veo model accepts on the Gemini API, by configured model id (provider notes §4.2).

/// The limits of one Veo model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VeoSpec {
    /// Human name of the family, for messages.
    pub family: &'static str,
    /// Accepted `durationSeconds`.
    pub durations: &'static [i64],
    /// Accepted `resolution` values.
    pub resolutions: &'static [&'static str],
    /// Whether resolutions above 720p need 8 s.
    pub hd_needs_8s: bool,
    /// Whether 1080p is limited to 16:9.
    pub hd_landscape_only: bool,
    /// Whether the video has an audio track.
    pub audio: bool,
}

/// Aspect ratios every Veo model takes.
pub const ASPECTS: &[&str] = &["16:9", "9:16"];

/// Every resolution any Veo model takes (the param's choices; `prepare` narrows per model).
pub const ALL_RESOLUTIONS: &[&str] = &["720p", "1080p", "4k"];

impl VeoSpec {
    /// The limits for a model id; unknown ids get Veo 3's.
    pub fn for_model(model: &str) -> VeoSpec {
        let id = model.trim_start_matches("models/");
        if id.starts_with("veo-3.1-lite") {
            VeoSpec { family: "Veo 3.1 Lite", durations: &[4, 6, 8], resolutions: &["720p", "1080p"], hd_needs_8s: true, hd_landscape_only: false, audio: true }
        } else if id.starts_with("veo-3.1") {
            VeoSpec { family: "Veo 3.1", durations: &[4, 6, 8], resolutions: &["720p", "1080p", "4k"], hd_needs_8s: true, hd_landscape_only: false, audio: true }
        } else if id.starts_with("veo-2") {
            VeoSpec { family: "Veo 2", durations: &[5, 6, 7, 8], resolutions: &["720p"], hd_needs_8s: false, hd_landscape_only: false, audio: false }
        } else {
            VeoSpec { family: "Veo 3", durations: &[8], resolutions: &["720p", "1080p"], hd_needs_8s: false, hd_landscape_only: true, audio: true }
        }
    }

    /// Check a combination; the error lists what is allowed and where the model is set.
    pub fn check(&self, model: &str, seconds: i64, resolution: &str, aspect: &str) -> Result<(), String> {
        let hint = "(the model is set by `model` under [plugins.veo-3] in atelier.toml)";
        if !self.durations.contains(&seconds) {
            let allowed: Vec<String> = self.durations.iter().map(|d| d.to_string()).collect();
            return Err(format!("seconds={seconds} is not available on `{model}` ({}); allowed: {} {hint}", self.family, allowed.join(", ")));
        }
        if !self.resolutions.contains(&resolution) {
            return Err(format!(
                "resolution `{resolution}` is not available on `{model}` ({}); allowed: {} {hint}",
                self.family,
                self.resolutions.join(", ")
            ));
        }
        if !ASPECTS.contains(&aspect) {
            return Err(format!("aspect `{aspect}` is not available on Veo; allowed: {}", ASPECTS.join(", ")));
        }
        if self.hd_needs_8s && resolution != "720p" && seconds != 8 {
            return Err(format!("resolution `{resolution}` needs seconds=8 on {}; use seconds=8 or resolution=720p", self.family));
        }
        if self.hd_landscape_only && resolution == "1080p" && aspect != "16:9" {
            return Err(format!("1080p is only available in 16:9 on {}; use aspect=16:9 or resolution=720p", self.family));
        }
        Ok(())
    }
}

/// The frame size the first image is fitted to: the video's own size, capped at 1080p (a 4K
/// first frame only makes the upload bigger; Veo scales it).
pub fn first_frame_size(resolution: &str, aspect: &str) -> (u32, u32) {
    let (w, h) = match resolution {
        "720p" => (1280, 720),
        _ => (1920, 1080),
    };
    if aspect == "9:16" { (h, w) } else { (w, h) }
}

/// The aspect to use when none is given: the first reference's orientation.
pub fn aspect_for(width: u32, height: u32) -> &'static str {
    if height > width { "9:16" } else { "16:9" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_model_id() {
        let veo3 = VeoSpec::for_model("veo-3.0-generate-001");
        assert!(veo3.check("veo-3.0-generate-001", 8, "1080p", "16:9").is_ok());
        let err = veo3.check("veo-3.0-generate-001", 4, "720p", "16:9").unwrap_err();
        assert!(err.contains("allowed: 8") && err.contains("[plugins.veo-3]"), "{err}");
        assert!(veo3.check("veo-3.0-generate-001", 8, "1080p", "9:16").is_err());
        assert!(veo3.check("veo-3.0-generate-001", 8, "4k", "16:9").is_err());
        let veo31 = VeoSpec::for_model("veo-3.1-generate-preview");
        assert!(veo31.check("m", 4, "720p", "9:16").is_ok());
        assert!(veo31.check("m", 6, "4k", "16:9").unwrap_err().contains("seconds=8"));
        assert!(veo31.check("m", 8, "4k", "16:9").is_ok());
        assert_eq!(VeoSpec::for_model("veo-3.1-lite-generate-preview").family, "Veo 3.1 Lite");
        assert!(!VeoSpec::for_model("veo-2.0-generate-001").audio);
    }

    #[test]
    fn first_frame_follows_resolution_and_orientation() {
        assert_eq!(first_frame_size("720p", "16:9"), (1280, 720));
        assert_eq!(first_frame_size("1080p", "9:16"), (1080, 1920));
        assert_eq!(first_frame_size("4k", "16:9"), (1920, 1080));
        assert_eq!(aspect_for(600, 800), "9:16");
        assert_eq!(aspect_for(800, 800), "16:9");
    }
}
