//! The model ids the emulator serves and what each accepts (per the provider notes, §2–4).

/// An image model family on `generateContent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageModel {
    /// `gemini-2.5-flash-image`: 10 ratios, fixed ~1 MP output, no `imageSize`, no thinking level.
    Flash25,
    /// `gemini-3-pro-image`: 10 ratios, `1K`/`2K`/`4K`.
    Pro3,
    /// `gemini-3.1-flash-image` (and its Lite): 14 ratios, `512`/`1K`/`2K`/`4K`.
    Flash31,
    /// `gemini-nano-banana-2.1`: 14 ratios, `1K`/`2K`/`4K`.
    NanoBanana21,
}

/// A Veo model on `predictLongRunning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VeoModel {
    /// Veo 3 / 3 Fast: 8 s, 720p or 1080p (1080p only 16:9).
    Veo3,
    /// Veo 3.1 / 3.1 Fast: 4/6/8 s, 720p, 1080p, 4k (1080p and 4k need 8 s).
    Veo31,
    /// Veo 3.1 Lite: 4/6/8 s, 720p or 1080p (1080p needs 8 s).
    Veo31Lite,
    /// Veo 2: 5–8 s, 720p, silent.
    Veo2,
}

/// What a model id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// An image model.
    Image(ImageModel),
    /// A video model.
    Video(VeoModel),
    /// A model that existed and was shut down.
    Retired,
    /// Never existed.
    Unknown,
}

/// Resolve a model id.
pub fn lookup(model: &str) -> Lookup {
    match model {
        "gemini-2.5-flash-image" => Lookup::Image(ImageModel::Flash25),
        "gemini-3-pro-image" => Lookup::Image(ImageModel::Pro3),
        "gemini-3.1-flash-image" | "gemini-3.1-flash-lite-image" => Lookup::Image(ImageModel::Flash31),
        "gemini-nano-banana-2.1" => Lookup::Image(ImageModel::NanoBanana21),
        "veo-3.0-generate-001" | "veo-3.0-fast-generate-001" => Lookup::Video(VeoModel::Veo3),
        "veo-3.1-generate-preview" | "veo-3.1-fast-generate-preview" => Lookup::Video(VeoModel::Veo31),
        "veo-3.1-lite-generate-preview" => Lookup::Video(VeoModel::Veo31Lite),
        "veo-2.0-generate-001" => Lookup::Video(VeoModel::Veo2),
        "gemini-2.5-flash-image-preview"
        | "gemini-3-pro-image-preview"
        | "gemini-3.1-flash-image-preview"
        | "veo-3.0-generate-preview"
        | "veo-3.0-fast-generate-preview" => Lookup::Retired,
        _ => Lookup::Unknown,
    }
}

const STANDARD_RATIOS: &[&str] = &["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"];
const WIDE_RATIOS: &[&str] =
    &["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8", "8:1"];

/// 2.5 Flash Image output sizes by ratio.
const FLASH25_PIXELS: &[(&str, u32, u32)] = &[
    ("1:1", 1024, 1024),
    ("2:3", 832, 1248),
    ("3:2", 1248, 832),
    ("3:4", 864, 1184),
    ("4:3", 1184, 864),
    ("4:5", 896, 1152),
    ("5:4", 1152, 896),
    ("9:16", 768, 1344),
    ("16:9", 1344, 768),
    ("21:9", 1536, 672),
];

/// 3.x output sizes at `512`; `1K`, `2K`, `4K` are 2×, 4×, 8× these.
const GEMINI3_PIXELS_512: &[(&str, u32, u32)] = &[
    ("1:1", 512, 512),
    ("16:9", 688, 384),
    ("9:16", 384, 688),
    ("4:3", 600, 448),
    ("3:4", 448, 600),
    ("3:2", 632, 424),
    ("2:3", 424, 632),
    ("5:4", 576, 464),
    ("4:5", 464, 576),
    ("21:9", 792, 336),
    ("4:1", 1024, 256),
    ("1:4", 256, 1024),
    ("8:1", 1536, 192),
    ("1:8", 192, 1536),
];

impl ImageModel {
    /// Accepted `aspectRatio` values.
    pub fn aspect_ratios(self) -> &'static [&'static str] {
        match self {
            ImageModel::Flash25 | ImageModel::Pro3 => STANDARD_RATIOS,
            ImageModel::Flash31 | ImageModel::NanoBanana21 => WIDE_RATIOS,
        }
    }
    /// Accepted `imageSize` values (empty: the field is refused).
    pub fn sizes(self) -> &'static [&'static str] {
        match self {
            ImageModel::Flash25 => &[],
            ImageModel::Pro3 | ImageModel::NanoBanana21 => &["1K", "2K", "4K"],
            ImageModel::Flash31 => &["512", "1K", "2K", "4K"],
        }
    }
    /// Most input images.
    pub fn max_images(self) -> usize {
        match self {
            ImageModel::Flash25 => 3,
            _ => 14,
        }
    }
    /// Accepted thinking levels (uppercase; empty: refused).
    pub fn thinking_levels(self) -> &'static [&'static str] {
        match self {
            ImageModel::Flash25 => &[],
            ImageModel::Pro3 => &["LOW", "HIGH"],
            ImageModel::Flash31 | ImageModel::NanoBanana21 => &["MINIMAL", "HIGH"],
        }
    }
    /// Output tokens billed per image.
    pub fn tokens_per_image(self, size: &str) -> u64 {
        match (self, size) {
            (ImageModel::Flash25, _) => 1290,
            (_, "512") => 747,
            (_, "4K") => 2000,
            _ => 1120,
        }
    }
    /// Output pixel size for a ratio and size (both already validated).
    pub fn output_size(self, ratio: &str, size: &str) -> (u32, u32) {
        let table = if self == ImageModel::Flash25 { FLASH25_PIXELS } else { GEMINI3_PIXELS_512 };
        let (_, w, h) = table.iter().find(|(r, _, _)| *r == ratio).copied().unwrap_or(table[0]);
        let scale = match (self, size) {
            (ImageModel::Flash25, _) => 1,
            (_, "512") => 1,
            (_, "2K") => 4,
            (_, "4K") => 8,
            _ => 2,
        };
        (w * scale, h * scale)
    }
    /// The model's ratio closest to an input's shape (Google matches the input when none is given).
    pub fn closest_ratio(self, width: u32, height: u32) -> &'static str {
        let target = (width as f64 / height.max(1) as f64).ln();
        self.aspect_ratios()
            .iter()
            .copied()
            .min_by(|a, b| {
                let d = |r: &str| (ratio_value(r).ln() - target).abs();
                d(a).total_cmp(&d(b))
            })
            .unwrap_or("1:1")
    }
}

fn ratio_value(ratio: &str) -> f64 {
    let (w, h) = ratio.split_once(':').unwrap_or(("1", "1"));
    w.parse::<f64>().unwrap_or(1.0) / h.parse::<f64>().unwrap_or(1.0)
}

impl VeoModel {
    /// Accepted `durationSeconds`.
    pub fn durations(self) -> &'static [i64] {
        match self {
            VeoModel::Veo3 => &[8],
            VeoModel::Veo31 | VeoModel::Veo31Lite => &[4, 6, 8],
            VeoModel::Veo2 => &[5, 6, 7, 8],
        }
    }
    /// Accepted `resolution`.
    pub fn resolutions(self) -> &'static [&'static str] {
        match self {
            VeoModel::Veo3 | VeoModel::Veo31Lite => &["720p", "1080p"],
            VeoModel::Veo31 => &["720p", "1080p", "4k"],
            VeoModel::Veo2 => &["720p"],
        }
    }
}
