//! `resize` (to a size, one side, or a longest side) and `fit` (to an exact aspect ratio or size by
//! crop, pad or blurred pad). Resampling is `fast_image_resize`: SSE4.1/AVX2 natively, simd128 in wasm.

use super::{Rect, blur, check_image, geometry, paste, solid};
use crate::color::Rgba;
use crate::params::{Args, MAX_SIDE};
use atelier_sdk::{Error, Image};
use fast_image_resize as fr;

/// A resampling filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    /// Lanczos, 3 lobes: sharpest, the default.
    Lanczos3,
    /// Catmull-Rom bicubic.
    CatmullRom,
    /// Linear (tent) filter.
    Triangle,
    /// Nearest neighbour: blocky, keeps pixel art crisp.
    Nearest,
    /// Gaussian: soft.
    Gaussian,
}

impl Resample {
    /// From a `filter` choice; unknown names (already rejected by `Args`) fall back to Lanczos3.
    pub fn from_name(name: &str) -> Self {
        match name {
            "catmull-rom" => Resample::CatmullRom,
            "triangle" => Resample::Triangle,
            "nearest" => Resample::Nearest,
            "gaussian" => Resample::Gaussian,
            _ => Resample::Lanczos3,
        }
    }

    fn algorithm(self) -> fr::ResizeAlg {
        match self {
            Resample::Lanczos3 => fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3),
            Resample::CatmullRom => fr::ResizeAlg::Convolution(fr::FilterType::CatmullRom),
            Resample::Triangle => fr::ResizeAlg::Convolution(fr::FilterType::Bilinear),
            Resample::Gaussian => fr::ResizeAlg::Convolution(fr::FilterType::Gaussian),
            Resample::Nearest => fr::ResizeAlg::Nearest,
        }
    }
}

/// What `resize` was asked for.
#[derive(Clone, Copy, Debug)]
pub struct ResizeOptions {
    /// Output width.
    pub width: Option<u32>,
    /// Output height.
    pub height: Option<u32>,
    /// Longest side limit.
    pub max: Option<u32>,
    /// Resampling filter.
    pub filter: Resample,
}

impl ResizeOptions {
    /// Read `width`, `height`, `max`, `filter`.
    pub fn from_args(args: &Args) -> Result<Self, Error> {
        let opts = ResizeOptions {
            width: args.side("width"),
            height: args.side("height"),
            max: args.side("max"),
            filter: Resample::from_name(args.text("filter").unwrap_or("lanczos3")),
        };
        match opts {
            ResizeOptions { width: None, height: None, max: None, .. } => Err(Error::invalid(
                "`resize` needs a target: width=, height= (the other side follows the aspect ratio), both, or max= (longest side)",
            )),
            ResizeOptions { max: Some(_), width, height, .. } if width.is_some() || height.is_some() => Err(
                Error::invalid("`resize` takes either max= or width=/height=, not both; drop one of them"),
            ),
            _ => Ok(opts),
        }
    }

    /// The output size for an input of `width` x `height`.
    pub fn target(&self, width: u32, height: u32) -> (u32, u32) {
        let scaled = |side: u32, num: u32, den: u32| {
            ((side as f64 * num as f64 / den as f64).round() as i64).clamp(1, MAX_SIDE) as u32
        };
        match (self.width, self.height, self.max) {
            (Some(w), Some(h), _) => (w, h),
            (Some(w), None, _) => (w, scaled(height, w, width)),
            (None, Some(h), _) => (scaled(width, h, height), h),
            (None, None, Some(max)) if width.max(height) > max => {
                if width >= height { (max, scaled(height, max, width)) } else { (scaled(width, max, height), max) }
            }
            _ => (width, height),
        }
    }
}

/// Run `resize`.
pub fn resize(image: Image, opts: &ResizeOptions) -> Result<Image, Error> {
    let (w, h) = opts.target(image.width, image.height);
    super::check_output_size("resize", w, h)?;
    scale(image, w, h, opts.filter)
}

/// [`resize`] reading a borrowed, packed RGBA buffer (the native tier's input, which is then never
/// copied at full size): the same pixels, with fresh buffers where [`resize`] reuses its input's.
pub fn resize_borrowed(src_w: u32, src_h: u32, src: &[u8], opts: &ResizeOptions) -> Result<Image, Error> {
    let (width, height) = opts.target(src_w, src_h);
    super::check_output_size("resize", width, height)?;
    if (width, height) == (src_w, src_h) {
        return Ok(Image { width, height, pixels: src.to_vec() });
    }
    let filter = opts.filter;
    if width != src_w && height != src_h && filter != Resample::Nearest && super::is_opaque(src) {
        let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("resize {src_w}x{src_h} -> {width}x{height}: {e}"));
        let options = fr::ResizeOptions::new().resize_alg(filter.algorithm()).use_alpha(false);
        let mut resizer = fr::Resizer::new();
        let src = fr::images::ImageRef::new(src_w, src_h, src, fr::PixelType::U8x4).map_err(|e| internal(&e))?;
        let mut tall = fr::images::Image::new(src_w, height, fr::PixelType::U8x4);
        resizer.resize(&src, &mut tall, &options).map_err(|e| internal(&e))?;
        let mut out = fr::images::Image::new(width, height, fr::PixelType::U8x4);
        resizer.resize(&tall, &mut out, &options).map_err(|e| internal(&e))?;
        return Ok(Image { width, height, pixels: out.into_vec() });
    }
    resample_from(src_w, src_h, src, width, height, filter, None)
}

/// Scale to exactly `width` x `height` (aspect not kept). Returns the image itself when the size is unchanged.
pub fn scale(image: Image, width: u32, height: u32, filter: Resample) -> Result<Image, Error> {
    if (width, height) == (image.width, image.height) {
        return Ok(image);
    }
    if width != image.width && height != image.height && filter != Resample::Nearest && super::is_opaque(&image.pixels) {
        return resample_in_two_passes(image, width, height, filter);
    }
    resample(&image, width, height, filter, None)
}

/// Scale an opaque image on both axes as two single-axis passes (down the columns into a
/// `image.width` x `height` buffer, then across the rows), giving the same pixels as one
/// two-axis resize (which also rounds to bytes between its passes) but with less fresh memory:
/// the source buffer is free after the first pass, so the second writes into it. In wasm every
/// new page of linear memory faults on first touch, and a one-call resize needs a scratch buffer
/// and an output buffer on top of the source.
fn resample_in_two_passes(image: Image, width: u32, height: u32, filter: Resample) -> Result<Image, Error> {
    check_image(&image)?;
    let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("resize {}x{} -> {width}x{height}: {e}", image.width, image.height));
    let options = fr::ResizeOptions::new().resize_alg(filter.algorithm()).use_alpha(false);
    let mut resizer = fr::Resizer::new();
    let src = fr::images::ImageRef::new(image.width, image.height, &image.pixels, fr::PixelType::U8x4)
        .map_err(|e| internal(&e))?;
    let mut tall = fr::images::Image::new(image.width, height, fr::PixelType::U8x4);
    resizer.resize(&src, &mut tall, &options).map_err(|e| internal(&e))?;
    let mut pixels = image.pixels;
    // Every byte is overwritten; resizing only sets the length (and grows when enlarging).
    pixels.resize(width as usize * height as usize * 4, 0);
    let mut out = fr::images::Image::from_vec_u8(width, height, pixels, fr::PixelType::U8x4).map_err(|e| internal(&e))?;
    resizer.resize(&tall, &mut out, &options).map_err(|e| internal(&e))?;
    Ok(Image { width, height, pixels: out.into_vec() })
}

/// Scale to cover `width` x `height` and cut the overflow evenly from both sides, in one resampling pass.
pub fn scale_cover(image: &Image, width: u32, height: u32, filter: Resample) -> Result<Image, Error> {
    resample(image, width, height, filter, Some((0.5, 0.5)))
}

fn resample(
    image: &Image,
    width: u32,
    height: u32,
    filter: Resample,
    cover: Option<(f64, f64)>,
) -> Result<Image, Error> {
    check_image(image)?;
    resample_from(image.width, image.height, &image.pixels, width, height, filter, cover)
}

fn resample_from(
    src_w: u32,
    src_h: u32,
    pixels: &[u8],
    width: u32,
    height: u32,
    filter: Resample,
    cover: Option<(f64, f64)>,
) -> Result<Image, Error> {
    let internal = |e: &dyn std::fmt::Display| Error::Internal(format!("resize {src_w}x{src_h} -> {width}x{height}: {e}"));
    let src = fr::images::ImageRef::new(src_w, src_h, pixels, fr::PixelType::U8x4).map_err(|e| internal(&e))?;
    let mut dst = fr::images::Image::new(width, height, fr::PixelType::U8x4);
    let mut options = fr::ResizeOptions::new()
        .resize_alg(filter.algorithm())
        // Alpha-weighting is needed only when some pixel is translucent; skipping it saves two passes.
        .use_alpha(!super::is_opaque(pixels));
    if let Some(centering) = cover {
        options = options.fit_into_destination(Some(centering));
    }
    fr::Resizer::new().resize(&src, &mut dst, &options).map_err(|e| internal(&e))?;
    Ok(Image { width, height, pixels: dst.into_vec() })
}

/// How `fit` reaches the target shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitMode {
    /// Fill the target and cut the overflow (centre crop).
    Crop,
    /// Fit inside the target on a solid colour.
    Pad,
    /// Fit inside the target on a blurred, enlarged copy of the image.
    Blur,
}

/// The target of `fit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitTarget {
    /// An exact size.
    Size(u32, u32),
    /// An exact ratio, reduced (16:9, never 32:18); the size follows the image.
    Ratio(u32, u32),
}

/// What `fit` was asked for.
#[derive(Clone, Copy, Debug)]
pub struct FitOptions {
    /// Target size or ratio.
    pub target: FitTarget,
    /// How to get there.
    pub mode: FitMode,
    /// Padding colour for [`FitMode::Pad`].
    pub color: Rgba,
    /// Resampling filter.
    pub filter: Resample,
}

impl FitOptions {
    /// Read `aspect`, `width`, `height`, `mode`, `color`, `filter`.
    pub fn from_args(args: &Args) -> Result<Self, Error> {
        let aspect = args.text("aspect").map(parse_aspect).transpose()?;
        let side = |n: u32, d: u32, s: u32| ((s as f64 * n as f64 / d as f64).round() as i64).clamp(1, MAX_SIDE) as u32;
        let target = match (aspect, args.side("width"), args.side("height")) {
            (Some(_), Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "`fit` takes aspect= or width= and height=, not all three; drop aspect= or one side",
                ));
            }
            (Some((a, b)), Some(w), None) => FitTarget::Size(w, side(b, a, w)),
            (Some((a, b)), None, Some(h)) => FitTarget::Size(side(a, b, h), h),
            (Some((a, b)), None, None) => FitTarget::Ratio(a, b),
            (None, Some(w), Some(h)) => FitTarget::Size(w, h),
            _ => {
                return Err(Error::invalid(
                    "`fit` needs aspect= (e.g. aspect=16:9) or both width= and height=; to scale by one side use `resize`",
                ));
            }
        };
        let mode = match args.text("mode").unwrap_or("crop") {
            "pad" => FitMode::Pad,
            "blur" => FitMode::Blur,
            _ => FitMode::Crop,
        };
        Ok(FitOptions {
            target,
            mode,
            color: Rgba::parse(args.text("color").unwrap_or("black"))?,
            filter: Resample::from_name(args.text("filter").unwrap_or("lanczos3")),
        })
    }
}

/// Parse `W:H` (whole or decimal numbers, e.g. `16:9`, `1.91:1`) or a bare ratio (`1.5`) into a
/// reduced whole-number ratio.
pub fn parse_aspect(text: &str) -> Result<(u32, u32), Error> {
    let bad = || {
        Error::invalid(format!(
            "aspect `{text}` is not a ratio; write W:H with positive numbers, e.g. 16:9, 4:5 or 1.91:1"
        ))
    };
    // A decimal as numerator / 10^decimals, so 1.91 becomes 191/100 exactly.
    let decimal = |s: &str| -> Option<(u64, u64)> {
        let s = s.trim();
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() && frac.is_empty() || frac.len() > 4 || !(int.chars().chain(frac.chars())).all(|c| c.is_ascii_digit()) {
            return None;
        }
        let den = 10u64.pow(frac.len() as u32);
        let num = format!("{int}{frac}").parse::<u64>().ok()?;
        (num > 0 && num < 1_000_000_000).then_some((num, den))
    };
    let (w, h) = match text.split_once(':') {
        Some((w, h)) => (decimal(w).ok_or_else(bad)?, decimal(h).ok_or_else(bad)?),
        None => (decimal(text).ok_or_else(bad)?, (1, 1)),
    };
    // w.0/w.1 : h.0/h.1  ==  w.0*h.1 : h.0*w.1
    let (mut a, mut b) = (w.0 * h.1, h.0 * w.1);
    let g = gcd(a, b);
    a /= g;
    b /= g;
    if a > MAX_SIDE as u64 || b > MAX_SIDE as u64 {
        return Err(Error::invalid(format!("aspect `{text}` reduces to {a}:{b}, which is too fine; round it (e.g. 1.91:1)")));
    }
    Ok((a as u32, b as u32))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// The size `fit` produces for an input of `width` x `height`.
pub fn fit_size(opts: &FitOptions, width: u32, height: u32) -> Result<(u32, u32), Error> {
    match opts.target {
        FitTarget::Size(w, h) => Ok((w, h)),
        FitTarget::Ratio(a, b) => {
            let (w, h, a, b) = (width as u64, height as u64, a as u64, b as u64);
            let k = match opts.mode {
                // The largest a:b box inside the image.
                FitMode::Crop => (w / a).min(h / b),
                // The smallest a:b box around the image.
                FitMode::Pad | FitMode::Blur => w.div_ceil(a).max(h.div_ceil(b)),
            };
            let (out_w, out_h) = (k * a, k * b);
            if k == 0 {
                Err(Error::invalid(format!(
                    "a {width}x{height} image is too small to crop to {a}:{b}; use mode=pad or a simpler ratio"
                )))
            } else if out_w > MAX_SIDE as u64 || out_h > MAX_SIDE as u64 {
                Err(Error::invalid(format!(
                    "padding {width}x{height} to {a}:{b} needs {out_w}x{out_h}, larger than {MAX_SIDE} px; use mode=crop"
                )))
            } else {
                Ok((out_w as u32, out_h as u32))
            }
        }
    }
}

/// Run `fit`: the output is exactly the target size, or exactly the target ratio.
pub fn fit(image: Image, opts: &FitOptions) -> Result<Image, Error> {
    check_image(&image)?;
    let (w, h) = fit_size(opts, image.width, image.height)?;
    super::check_output_size("fit", w, h)?;
    if (w, h) == (image.width, image.height) {
        return Ok(image);
    }
    let resizes = matches!(opts.target, FitTarget::Size(..));
    match opts.mode {
        FitMode::Crop if resizes => scale_cover(&image, w, h, opts.filter),
        FitMode::Crop => {
            let rect = Rect { x: (image.width - w) / 2, y: (image.height - h) / 2, width: w, height: h };
            Ok(geometry::crop_rect(image, rect))
        }
        FitMode::Pad | FitMode::Blur => {
            let (iw, ih) = if resizes { contain(image.width, image.height, w, h) } else { (image.width, image.height) };
            let mut canvas = match opts.mode {
                FitMode::Pad => solid(w, h, opts.color),
                _ => {
                    let mut background = scale_cover(&image, w, h, opts.filter)?;
                    // Strong enough that the copy reads as a backdrop, not as a second picture.
                    blur::gaussian_blur(&mut background, (w.max(h) as f32 / 40.0).max(4.0));
                    background
                }
            };
            let inner = scale(image, iw, ih, opts.filter)?;
            paste(&mut canvas, &inner, (w - iw) / 2, (h - ih) / 2);
            Ok(canvas)
        }
    }
}

/// The largest size of the image's aspect that fits inside `w` x `h`.
fn contain(width: u32, height: u32, w: u32, h: u32) -> (u32, u32) {
    if width as u64 * h as u64 >= height as u64 * w as u64 {
        (w, ((height as f64 * w as f64 / width as f64).round() as u32).clamp(1, h))
    } else {
        (((width as f64 * h as f64 / height as f64).round() as u32).clamp(1, w), h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{pattern, px};
    use atelier_sdk::Param;

    fn resize_with(image: Image, params: &[Param]) -> Result<Image, Error> {
        resize(image, &ResizeOptions::from_args(&Args::new("resize", params)?)?)
    }

    fn fit_with(image: Image, params: &[Param]) -> Result<Image, Error> {
        fit(image, &FitOptions::from_args(&Args::new("fit", params)?)?)
    }

    #[test]
    fn resize_gives_exact_sizes() {
        let out = resize_with(pattern(200, 100), &[Param::new("width", 64i64), Param::new("height", 99i64)]).unwrap();
        assert_eq!((out.width, out.height, out.pixels.len()), (64, 99, 64 * 99 * 4));
        let out = resize_with(pattern(200, 100), &[Param::new("width", 50i64)]).unwrap();
        assert_eq!((out.width, out.height), (50, 25));
        let out = resize_with(pattern(200, 100), &[Param::new("height", 33i64)]).unwrap();
        assert_eq!((out.width, out.height), (66, 33));
        let out = resize_with(pattern(100, 200), &[Param::new("max", 50i64)]).unwrap();
        assert_eq!((out.width, out.height), (25, 50));
        // max never enlarges
        let out = resize_with(pattern(40, 30), &[Param::new("max", 50i64)]).unwrap();
        assert_eq!((out.width, out.height), (40, 30));
        // upscaling to exact sizes, every filter
        for f in crate::params::RESAMPLE_CHOICES {
            let out = resize_with(pattern(30, 20), &[Param::new("width", 91i64), Param::new("filter", *f)]).unwrap();
            assert_eq!((out.width, out.height, out.pixels.len()), (91, 61, 91 * 61 * 4), "{f}");
        }
    }

    #[test]
    fn two_passes_give_the_same_pixels_as_one_resize() {
        for filter in [Resample::Lanczos3, Resample::CatmullRom, Resample::Triangle, Resample::Gaussian] {
            for (w, h) in [(64, 48), (17, 91), (300, 7), (1, 1), (250, 180)] {
                let image = pattern(97, 61);
                let one = resample(&image, w, h, filter, None).unwrap();
                let two = resample_in_two_passes(image, w, h, filter).unwrap();
                assert_eq!((two.width, two.height), (w, h));
                assert!(one.pixels == two.pixels, "{filter:?} to {w}x{h}");
            }
        }
    }

    #[test]
    fn resize_keeps_a_flat_colour() {
        let image = solid(64, 48, Rgba([10, 200, 30, 255]));
        let out = resize_with(image, &[Param::new("width", 17i64)]).unwrap();
        assert!(out.pixels.chunks_exact(4).all(|p| p == [10, 200, 30, 255]));
    }

    #[test]
    fn resize_without_target_or_with_both_is_refused() {
        let err = resize_with(pattern(10, 10), &[]).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("needs a target")), "{err:?}");
        let err = resize_with(pattern(10, 10), &[Param::new("max", 5i64), Param::new("width", 5i64)]).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("not both")), "{err:?}");
        let err = resize_with(pattern(10, 10), &[Param::new("width", 65535i64)]).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("65535x65535") && m.contains("limit")), "{err:?}");
    }

    #[test]
    fn aspect_parses_to_reduced_whole_ratio() {
        assert_eq!(parse_aspect("16:9").unwrap(), (16, 9));
        assert_eq!(parse_aspect("32:18").unwrap(), (16, 9));
        assert_eq!(parse_aspect("1.91:1").unwrap(), (191, 100));
        assert_eq!(parse_aspect("1.5").unwrap(), (3, 2));
        for bad in ["", "16:", "a:b", "0:1", "-1:2", "16x9"] {
            let err = parse_aspect(bad).unwrap_err();
            assert!(matches!(&err, Error::InvalidInput(m) if m.contains("W:H")), "{bad}: {err:?}");
        }
    }

    #[test]
    fn fit_to_a_size_is_exact_in_every_mode() {
        for mode in ["crop", "pad", "blur"] {
            for (w, h) in [(64i64, 36i64), (30, 90), (200, 201)] {
                let out = fit_with(pattern(120, 80), &[Param::new("width", w), Param::new("height", h), Param::new("mode", mode)])
                    .unwrap();
                assert_eq!((out.width as i64, out.height as i64, out.pixels.len() as i64), (w, h, w * h * 4), "{mode}");
            }
        }
        let out = fit_with(pattern(120, 80), &[Param::new("aspect", "16:9"), Param::new("width", 1280i64)]).unwrap();
        assert_eq!((out.width, out.height), (1280, 720));
    }

    #[test]
    fn fit_to_a_ratio_is_exact() {
        let out = fit_with(pattern(100, 100), &[Param::new("aspect", "16:9")]).unwrap();
        assert_eq!((out.width, out.height), (96, 54));
        let out = fit_with(pattern(100, 100), &[Param::new("aspect", "16:9"), Param::new("mode", "pad")]).unwrap();
        assert_eq!((out.width, out.height), (192, 108));
        assert_eq!(out.width * 9, out.height * 16);
    }

    #[test]
    fn fit_pad_centres_the_image_on_the_colour() {
        let image = solid(40, 20, Rgba([255, 255, 255, 255]));
        let out = fit_with(image, &[Param::new("aspect", "1:1"), Param::new("mode", "pad"), Param::new("color", "#ff0000")])
            .unwrap();
        assert_eq!((out.width, out.height), (40, 40));
        assert_eq!(px(&out, 20, 0), [255, 0, 0, 255]);
        assert_eq!(px(&out, 20, 20), [255, 255, 255, 255]);
        assert_eq!(px(&out, 20, 39), [255, 0, 0, 255]);
    }

    #[test]
    fn fit_without_target_is_refused() {
        let err = fit_with(pattern(10, 10), &[Param::new("width", 5i64)]).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("aspect=")), "{err:?}");
        let err = fit_with(pattern(10, 10), &[Param::new("aspect", "191:100")]).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("too small")), "{err:?}");
    }
}
