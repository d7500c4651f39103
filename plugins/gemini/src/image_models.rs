//! What each Gemini image model accepts, by configured model id (ids churn; families don't).
//!
//! Source: `/work/shared/providers/google-gemini-veo.md` §2–3. Unknown ids fall back to the family
//! the plugin is built for, so a renamed model keeps working.

/// A family of Gemini image models sharing one set of limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFamily {
    /// Gemini 2.5 Flash Image (Nano Banana): ~1 MP output, no `imageSize`, no thinking level.
    Flash25,
    /// Gemini 3 Pro Image (Nano Banana Pro): 1K/2K/4K, thinking always on.
    Pro3,
    /// Gemini 3.1 Flash Image (Nano Banana 2, also its Lite): 512/1K/2K/4K, extra-wide ratios.
    Flash31,
    /// Nano Banana 2.1 (`gemini-nano-banana-2.1`): as 3.1 Flash Image but no `512`.
    NanoBanana21,
}

/// The ten ratios every Gemini image model takes.
const STANDARD_RATIOS: &[&str] = &["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"];
/// The standard ratios plus the extra-wide ones of 3.1 Flash Image.
const WIDE_RATIOS: &[&str] =
    &["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8", "8:1"];

/// The limits of one image model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageModelSpec {
    /// The family the model id belongs to.
    pub family: ImageFamily,
    /// Accepted `imageConfig.aspectRatio` values.
    pub aspect_ratios: &'static [&'static str],
    /// Accepted `imageConfig.imageSize` values (empty: the field is not sent).
    pub sizes: &'static [&'static str],
    /// The size Google uses when none is sent.
    pub default_size: Option<&'static str>,
    /// Most reference images one request should carry.
    pub max_references: u32,
    /// Accepted thinking levels, lowercase (empty: not settable).
    pub thinking_levels: &'static [&'static str],
}

impl ImageFamily {
    /// The family of a model id, or `fallback` when the id is not recognised.
    pub fn of_model(model: &str, fallback: ImageFamily) -> ImageFamily {
        let id = model.trim_start_matches("models/");
        if id.starts_with("gemini-2.5-flash-image") {
            ImageFamily::Flash25
        } else if id.starts_with("gemini-3-pro-image") {
            ImageFamily::Pro3
        } else if id.starts_with("gemini-3.1-flash") && id.contains("image") {
            ImageFamily::Flash31
        } else if id.starts_with("gemini-nano-banana-2") {
            ImageFamily::NanoBanana21
        } else {
            fallback
        }
    }

    /// The family's limits.
    pub fn spec(self) -> ImageModelSpec {
        match self {
            ImageFamily::Flash25 => ImageModelSpec {
                family: self,
                aspect_ratios: STANDARD_RATIOS,
                sizes: &[],
                default_size: None,
                // "works best with up to 3 images as input"
                max_references: 3,
                thinking_levels: &[],
            },
            ImageFamily::Pro3 => ImageModelSpec {
                family: self,
                aspect_ratios: STANDARD_RATIOS,
                sizes: &["1K", "2K", "4K"],
                default_size: Some("1K"),
                max_references: 14,
                thinking_levels: &[],
            },
            ImageFamily::Flash31 => ImageModelSpec {
                family: self,
                aspect_ratios: WIDE_RATIOS,
                sizes: &["512", "1K", "2K", "4K"],
                default_size: Some("1K"),
                max_references: 14,
                thinking_levels: &["minimal", "high"],
            },
            ImageFamily::NanoBanana21 => ImageModelSpec {
                family: self,
                aspect_ratios: WIDE_RATIOS,
                sizes: &["1K", "2K", "4K"],
                default_size: Some("1K"),
                max_references: 14,
                thinking_levels: &["minimal", "high"],
            },
        }
    }
}

impl ImageModelSpec {
    /// The limits for a configured model id.
    pub fn for_model(model: &str, fallback: ImageFamily) -> Self {
        ImageFamily::of_model(model, fallback).spec()
    }
}

/// `a, b, c` for messages.
pub fn list(values: &[&str]) -> String {
    values.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_follow_the_model_id() {
        assert_eq!(ImageFamily::of_model("gemini-2.5-flash-image", ImageFamily::Flash31), ImageFamily::Flash25);
        assert_eq!(ImageFamily::of_model("models/gemini-3-pro-image", ImageFamily::Flash25), ImageFamily::Pro3);
        assert_eq!(ImageFamily::of_model("gemini-3.1-flash-lite-image", ImageFamily::Flash25), ImageFamily::Flash31);
        assert_eq!(ImageFamily::of_model("gemini-nano-banana-2.1", ImageFamily::Flash25), ImageFamily::NanoBanana21);
        assert_eq!(ImageFamily::of_model("something-new", ImageFamily::Flash31), ImageFamily::Flash31);
    }

    #[test]
    fn size_512_only_on_flash_31() {
        assert!(ImageFamily::Flash31.spec().sizes.contains(&"512"));
        assert!(!ImageFamily::Pro3.spec().sizes.contains(&"512"));
        assert!(!ImageFamily::NanoBanana21.spec().sizes.contains(&"512"));
        assert!(ImageFamily::Flash25.spec().sizes.is_empty());
    }
}
