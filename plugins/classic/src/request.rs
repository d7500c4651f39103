//! A request from start to finish without the WIT types: check it, decode the inputs, render every
//! seeded variation, encode the outputs. `lib.rs` only translates to and from the contract.

use std::collections::BTreeSet;
use std::io::Cursor;

use atelier_sdk::Param;
use image::ImageEncoder;

use crate::edit::Editor;
use crate::mask::FeatheredMask;
use crate::prompt::{self, Motion, Style};
use crate::settings::InpaintMethod;
use crate::raster::Raster;
use crate::settings::{Output, Settings};
use crate::video;

/// References accepted; only the first is edited, the rest are ignored.
pub const MAX_REFERENCES: u32 = 4;
/// Variations one submit renders.
pub const MAX_OUTPUTS: u32 = 16;
/// Longest side the host is asked to shrink references to, keeping memory and time bounded.
pub const MAX_SIDE: u32 = 2048;

/// `memory_mb` in this plugin's `plugin.toml` (a test keeps them equal): what a masked edit may
/// assume without asking the allocator.
pub const MEMORY_MB: u64 = 1024;
/// The most any plugin can have: wasm32 addresses 4 GiB.
const MAX_MEMORY_MB: u64 = 4096;
/// Each further output is kept, PNG-encoded, until all are done (noise-like images barely compress).
pub const MASKED_BYTES_PER_OUTPUT_PIXEL: u64 = 5;
/// The request's own encoded image and mask, held for the whole call.
const INPUT_BYTES_PER_PIXEL: u64 = 5;
/// The wasm allocator does not reuse freed memory perfectly, and code, stack and statics come on top.
const ALLOCATOR_SLACK_PERCENT: u64 = 25;
const FIXED_MIB: u64 = 32;

/// Peak heap of one masked edit (decode, mask, render, encode), in bytes per image pixel, set by
/// its heaviest step. Masked edits run at full size, so this bounds how big they may be.
/// `tests/memory.rs` measures every entry and fails when an operator outgrows it.
pub fn masked_bytes_per_pixel(styles: &BTreeSet<Style>, inpaint: InpaintMethod) -> u64 {
    let op = |s: &Style| -> u64 {
        match s {
            Style::OilPainting => 80,
            Style::Watercolor => 62,
            Style::Cartoon => 58,
            Style::PopArt => 55,
            Style::PencilSketch | Style::Posterize => 43,
            Style::Vintage | Style::FilmGrain => 35,
            Style::Remove => 0,
            _ => 30,
        }
    };
    let heaviest_op = styles.iter().map(op).max().unwrap_or(30);
    if !styles.contains(&Style::Remove) {
        return heaviest_op;
    }
    let fill = match inpaint {
        // The fill's working set grows with the hole: this is a hole covering nearly everything.
        InpaintMethod::PatchMatch => 110,
        InpaintMethod::Telea => 55,
    };
    // Telea's fill (4 B/px) stays alive while the other operators run.
    fill.max(heaviest_op + 4)
}

/// What a masked edit of `w`×`h` with `n` outputs needs in all, bytes.
pub fn masked_memory_need(w: u32, h: u32, n: u32, styles: &BTreeSet<Style>, inpaint: InpaintMethod) -> u64 {
    let px = w as u64 * h as u64;
    let per_px = masked_bytes_per_pixel(styles, inpaint) + INPUT_BYTES_PER_PIXEL + MASKED_BYTES_PER_OUTPUT_PIXEL * (n.max(1) as u64 - 1);
    px * per_px * (100 + ALLOCATOR_SLACK_PERCENT) / 100 + (FIXED_MIB << 20)
}

/// Refuse a masked edit too big for the memory this plugin may use, with the `memory_mb` line that
/// would let it run. Up to [`MEMORY_MB`] it is taken as given; above, `can_allocate(bytes)` asks
/// the allocator (the operator may have raised the limit, which a plugin cannot read).
fn check_masked_memory(w: u32, h: u32, n: u32, work: &Work, settings: &Settings, can_allocate: &dyn Fn(u64) -> bool) -> Result<(), String> {
    let need = masked_memory_need(w, h, n, &work.styles, settings.inpaint);
    if need <= MEMORY_MB << 20 || (need <= MAX_MEMORY_MB << 20 && can_allocate(need)) {
        return Ok(());
    }
    let need_mb = need.div_ceil(1 << 20);
    let ops: Vec<&str> = work.styles.iter().map(|s| s.name()).collect();
    // The largest image of this shape that fits in the manifest's memory.
    let fits = |budget_mb: u64| {
        let px_budget = ((budget_mb - FIXED_MIB) << 20) as f64 * 100.0 / (100 + ALLOCATOR_SLACK_PERCENT) as f64;
        let per_px = (need - (FIXED_MIB << 20)) as f64 * 100.0 / (100 + ALLOCATOR_SLACK_PERCENT) as f64 / (w as f64 * h as f64);
        let scale = (px_budget / per_px / (w as f64 * h as f64)).sqrt().min(1.0);
        format!("{}x{}", ((w as f64 * scale) as u32).max(1), ((h as f64 * scale) as u32).max(1))
    };
    let what = format!("a masked edit ({}) of a {w}x{h} image with {n} output(s) runs at full size and needs about {need_mb} MiB", ops.join("+"));
    if need_mb > MAX_MEMORY_MB {
        return Err(format!(
            "{what}, more than any plugin can have ({MAX_MEMORY_MB} MiB); shrink the image and the mask together to at most {} (or ask for fewer outputs)",
            fits(MAX_MEMORY_MB)
        ));
    }
    let raise_to = need_mb.div_ceil(256) * 256;
    Err(format!(
        "{what}, more than `classic` may use (its plugin.toml asks for {MEMORY_MB} MiB); raise it in atelier.toml:\n    [plugins.classic.limits]\n    memory_mb = {raise_to}\nor shrink the image and the mask together to at most {} (or ask for fewer outputs)",
        fits(MEMORY_MB)
    ))
}

/// Whether `bytes` more can be allocated right now (a probe, released at once).
pub fn can_allocate(bytes: u64) -> bool {
    let Ok(n) = usize::try_from(bytes) else { return false };
    Vec::<u8>::new().try_reserve_exact(n).is_ok()
}

/// The paragraph `describe()` shows.
pub fn description() -> String {
    format!(
        "Classical image operators running offline inside the plugin: no neural network, no network access, \
         deterministic for a given seed. It does not understand scenes or objects; it applies the operators \
         named by words in the prompt, in a fixed order: {}. Explicit parameters win over words (`style` \
         replaces the look words). With a mask (white = edit, same size as the first reference) edits stay \
         inside it with a `feather`-px soft edge and everything else is left byte-identical; \"remove\"/\"erase\" \
         needs a mask and fills it with texture from the rest of the image (multi-scale PatchMatch; \
         `inpaint=telea` for Telea's fast-marching diffusion). Only the first reference is used; up \
         to {} more are accepted and ignored. References are shrunk to {} px on the longest side, except with a mask: masked edits run at full size, \
         as large as the plugin's memory allows (at the default 1024 MiB: about 7 megapixels for \"remove\", 10 for oil painting, \
         over 20 for tonal adjustments). \
         With `output=video` it animates the first reference with a Ken Burns move ({}; default a slow \
         zoom in) as an animated GIF.",
        prompt::known_words(),
        MAX_REFERENCES - 1,
        MAX_SIDE,
        prompt::known_motion_words()
    )
}

/// What to do, from prompt and settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    /// Operators for the still, in order (may be empty for a plain video).
    pub styles: BTreeSet<Style>,
    /// Camera moves (video only).
    pub motions: Vec<Motion>,
}

/// Combine the prompt's words with the parameters, refusing what cannot work and saying why.
pub fn plan(prompt: &str, settings: &Settings, has_mask: bool) -> Result<Work, String> {
    let parsed = prompt::parse(prompt)?;
    let mut styles = parsed.styles;
    if let Some(style) = settings.style {
        styles.retain(|s| !s.is_look());
        styles.insert(style);
    }
    if styles.contains(&Style::Remove) && !has_mask {
        return Err("\"remove\"/\"erase\" fills a masked area: give a mask the size of the image (white = what to remove, black = keep)".into());
    }
    let motions = match settings.motion {
        Some(m) => vec![m],
        None => parsed.motions,
    };
    if settings.output == Output::Image && styles.is_empty() {
        let hint = if motions.is_empty() { "" } else { " Camera moves such as \"zoom in\" need `output=video`." };
        return Err(format!(
            "no operator named in the prompt \"{prompt}\". This offline model knows only these words: {}; \
             or set `style` (e.g. --param style=watercolor).{hint}",
            prompt::known_words()
        ));
    }
    Ok(Work { styles, motions })
}

/// The checks `prepare` runs before anything is decoded. `can_allocate` is [`can_allocate`] in the
/// plugin (tests pass a stand-in for the memory cap).
pub fn check(prompt: &str, references: &[(u32, u32)], has_mask: bool, n: u32, output: Output, params: &[Param], can_allocate: &dyn Fn(u64) -> bool) -> Result<(), String> {
    if references.is_empty() {
        return Err("give one image to edit (the first reference)".into());
    }
    if n == 0 || n > MAX_OUTPUTS {
        return Err(format!("n must be 1 to {MAX_OUTPUTS}, not {n}"));
    }
    let settings = Settings::from_params(params, output)?;
    let work = plan(prompt, &settings, has_mask)?;
    if has_mask {
        let (w, h) = references[0];
        check_masked_memory(w, h, n, &work, &settings, can_allocate)?;
    }
    Ok(())
}

/// The longest side the host should shrink references to: none with a mask, so the edit is made
/// at full size and everything outside the mask stays byte-identical (bounded by memory instead,
/// see [`masked_memory_need`]).
pub fn max_side(has_mask: bool) -> Option<u32> {
    if has_mask { None } else { Some(MAX_SIDE) }
}

/// A seed from the wall clock when the user gave none (SplitMix64 of the milliseconds, so nearby
/// times give unrelated seeds). It is recorded on every artifact, so the result stays reproducible.
pub fn seed_from_clock(wall_ms: u64) -> u64 {
    let mut z = wall_ms.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Everything `submit` needs, as plain data.
pub struct Job<'a> {
    /// The user's words.
    pub prompt: &'a str,
    /// The encoded first reference.
    pub first: Option<&'a [u8]>,
    /// The encoded mask, if any.
    pub mask: Option<&'a [u8]>,
    /// How many variations.
    pub n: u32,
    /// Seed of the first variation; variation i uses `base_seed + i`.
    pub base_seed: u64,
    /// Image (styled PNGs) or video (a Ken Burns GIF), from the request's typed output kind.
    pub output: Output,
    /// The parameters.
    pub params: &'a [Param],
}

/// One rendered variation.
pub struct Rendered {
    /// Encoded bytes.
    pub bytes: Vec<u8>,
    /// The seed that produced it.
    pub seed: u64,
}

/// A finished job.
pub struct Done {
    /// The variations, in seed order.
    pub outputs: Vec<Rendered>,
    /// Their media type.
    pub mime: &'static str,
    /// The operators applied, e.g. `oil-painting+vignette` (and the camera move for videos).
    pub operators: String,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Length of each video, for videos.
    pub video_seconds: Option<f32>,
}

/// Run a job: decode, render `n` variations, encode.
pub fn run(job: &Job) -> Result<Done, String> {
    let settings = Settings::from_params(job.params, job.output)?;
    if job.n == 0 || job.n > MAX_OUTPUTS {
        return Err(format!("n must be 1 to {MAX_OUTPUTS}, not {}", job.n));
    }
    let work = plan(job.prompt, &settings, job.mask.is_some())?;
    let original = decode(job.first.ok_or("give one image to edit (the first reference)")?, "the first reference")?;
    let mask = match job.mask {
        Some(bytes) => {
            let m = decode(bytes, "the mask")?;
            if (m.width, m.height) != (original.width, original.height) {
                return Err(format!(
                    "the mask is {}x{} but the first reference is {}x{}; give a mask of exactly the image's size",
                    m.width, m.height, original.width, original.height
                ));
            }
            let fm = FeatheredMask::new(&m, settings.feather);
            if fm.is_empty() {
                return Err("the mask is all black, so nothing would change; paint the area to edit white".into());
            }
            Some(fm)
        }
        None => None,
    };
    let editor = Editor::new(&original, mask.as_ref(), &work.styles, &settings)?;
    let mut operators: Vec<&str> = work.styles.iter().map(|s| s.name()).collect();
    let seeds = (0..job.n as u64).map(|i| job.base_seed.wrapping_add(i));
    match settings.output {
        Output::Image => {
            let outputs = seeds.map(|seed| Ok(Rendered { bytes: encode_png(&editor.render(seed))?, seed })).collect::<Result<_, String>>()?;
            Ok(Done {
                outputs,
                mime: "image/png",
                operators: operators.join("+"),
                width: original.width as u32,
                height: original.height as u32,
                video_seconds: None,
            })
        }
        Output::Video => {
            let mut outputs = vec![];
            let mut camera_names = String::new();
            for seed in seeds {
                // Grain belongs to each frame, not to the still, or it would sit on the picture like dust.
                let grain = editor.wants_grain().then_some(video::FrameGrain { amount: settings.grain, seed });
                let still = if work.styles.is_empty() { original.clone() } else { editor.render_with(seed, grain.is_none()) };
                let camera = video::Camera::new(&work.motions, settings.zoom, seed);
                camera_names = [camera.zoom, camera.pan].iter().flatten().map(|m| m.name()).collect::<Vec<_>>().join("+");
                let bytes = video::render_gif(&still, &camera, settings.max_side, settings.seconds, settings.fps, grain)?;
                outputs.push(Rendered { bytes, seed });
            }
            operators.push(&camera_names);
            let (w, h) = video::frame_size(original.width, original.height, settings.max_side);
            Ok(Done {
                outputs,
                mime: "image/gif",
                operators: operators.join("+"),
                width: w as u32,
                height: h as u32,
                video_seconds: Some(video::frame_count(settings.seconds, settings.fps) as f32 / settings.fps as f32),
            })
        }
    }
}

/// Decode PNG, JPEG, WebP or GIF into RGBA.
pub fn decode(bytes: &[u8], what: &str) -> Result<Raster, String> {
    let img = image::load_from_memory(bytes).map_err(|e| format!("{what} could not be decoded ({e}); give a PNG, JPEG, WebP or GIF"))?;
    let rgba = img.into_rgba8();
    Ok(Raster { width: rgba.width() as usize, height: rgba.height() as usize, px: rgba.into_raw() })
}

/// Encode as PNG (RGBA, 8-bit).
pub fn encode_png(r: &Raster) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(Cursor::new(&mut out))
        .write_image(&r.px, r.width as u32, r.height as u32, image::ExtendedColorType::Rgba8)
        .map_err(|e| format!("PNG encoding failed: {e}"))?;
    // Outputs wait for each other; the encoder's growth slack would double what each one keeps.
    out.shrink_to_fit();
    Ok(out)
}
