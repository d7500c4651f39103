//! `watermark`: a line of text (DejaVu Sans Bold, bundled, rasterised by `ab_glyph`) or a logo
//! image (decoded in the guest), composited with an opacity at a corner or the centre. Only the
//! mark's box is touched.

use super::{Rect, blend_over, check_image, resize};
use crate::color::Rgba;
use crate::params::Args;
use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use atelier_sdk::{Error, Image, Media};

/// DejaVu Sans Bold (Bitstream Vera licence, see `assets/DejaVuSans-Bold.LICENSE`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-Bold.ttf");

/// What is stamped.
#[derive(Clone, Debug)]
pub enum MarkSource {
    /// One line of text in a colour.
    Text {
        /// The text.
        text: String,
        /// Its colour; its alpha multiplies the opacity.
        color: Rgba,
    },
    /// A decoded logo, straight alpha.
    Picture(Image),
}

/// Where the mark goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// Top-left corner.
    TopLeft,
    /// Top-right corner.
    TopRight,
    /// Bottom-left corner.
    BottomLeft,
    /// Bottom-right corner.
    BottomRight,
    /// Centred.
    Center,
}

/// How tall the mark is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MarkHeight {
    /// A fraction of the image's shorter side.
    Fraction(f64),
    /// Pixels.
    Pixels(u32),
}

/// What `watermark` was asked for.
#[derive(Clone, Debug)]
pub struct WatermarkOptions {
    /// Text or picture.
    pub source: MarkSource,
    /// Corner or centre.
    pub position: Position,
    /// 0 invisible .. 1 opaque.
    pub opacity: f32,
    /// Mark height (shrunk further if the mark would not fit inside the margins).
    pub height: MarkHeight,
    /// Distance from the edges, as a fraction of the shorter side.
    pub margin: f64,
}

impl WatermarkOptions {
    /// Read `text` or `image`, `position`, `opacity`, `size`/`size_px`, `margin`, `color`.
    pub fn from_args(args: &Args) -> Result<Self, Error> {
        let source = match (args.text("text"), args.media("image")) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("`watermark` takes text= or image=, not both; use two watermark steps"));
            }
            (Some(text), None) => {
                // One line: newlines and other control characters would render as boxes.
                let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
                if text.trim().is_empty() {
                    return Err(Error::invalid("`watermark` text= is empty; give the words to stamp"));
                }
                MarkSource::Text { text, color: Rgba::parse(args.text("color").unwrap_or("white"))? }
            }
            (None, Some(media)) => MarkSource::Picture(decode(media)?),
            (None, None) => {
                return Err(Error::invalid("`watermark` needs text=\"...\" or image=<file> (a logo)"));
            }
        };
        let position = match args.text("position").unwrap_or("bottom-right") {
            "top-left" => Position::TopLeft,
            "top-right" => Position::TopRight,
            "bottom-left" => Position::BottomLeft,
            "center" => Position::Center,
            _ => Position::BottomRight,
        };
        let height = match args.side("size_px") {
            Some(px) => MarkHeight::Pixels(px),
            None => MarkHeight::Fraction(args.number("size").unwrap_or(0.05)),
        };
        Ok(WatermarkOptions {
            source,
            position,
            opacity: args.number("opacity").unwrap_or(0.5) as f32,
            height,
            margin: args.number("margin").unwrap_or(0.02),
        })
    }
}

/// Decode a logo the host loaded (PNG, JPEG, WebP or GIF) into straight-alpha RGBA.
fn decode(media: &Media) -> Result<Image, Error> {
    let decoded = image::load_from_memory(&media.bytes).map_err(|e| {
        Error::invalid(format!("the watermark image ({}, {} bytes) cannot be decoded: {e}; use a PNG, JPEG, WebP or GIF", media.mime, media.bytes.len()))
    })?;
    let rgba = decoded.to_rgba8();
    Ok(Image { width: rgba.width(), height: rgba.height(), pixels: rgba.into_raw() })
}

/// Run `watermark`.
pub fn watermark(mut image: Image, opts: &WatermarkOptions) -> Result<Image, Error> {
    check_image(&image)?;
    let mark = render_mark(&opts.source, opts, image.width, image.height)?;
    let rect = mark_box(opts, image.width, image.height, mark.width, mark.height);
    let stride = image.width as usize * 4;
    for (my, mark_row) in mark.pixels.chunks_exact(mark.width as usize * 4).enumerate() {
        let start = (rect.y as usize + my) * stride + rect.x as usize * 4;
        let row = &mut image.pixels[start..start + mark_row.len()];
        for (dst, src) in row.chunks_exact_mut(4).zip(mark_row.chunks_exact(4)) {
            blend_over(dst, [src[0], src[1], src[2]], src[3] as f32 / 255.0 * opts.opacity);
        }
    }
    Ok(image)
}

/// The margin in px for an image of `width` x `height`.
fn margin_px(opts: &WatermarkOptions, width: u32, height: u32) -> u32 {
    (opts.margin * width.min(height) as f64).round() as u32
}

/// Where a `mark_width` x `mark_height` mark lands in a `width` x `height` image.
pub fn mark_box(opts: &WatermarkOptions, width: u32, height: u32, mark_width: u32, mark_height: u32) -> Rect {
    let m = margin_px(opts, width, height);
    let (right, bottom) = (width - mark_width - m, height - mark_height - m);
    let (x, y) = match opts.position {
        Position::TopLeft => (m, m),
        Position::TopRight => (right, m),
        Position::BottomLeft => (m, bottom),
        Position::BottomRight => (right, bottom),
        Position::Center => ((width - mark_width) / 2, (height - mark_height) / 2),
    };
    Rect { x, y, width: mark_width, height: mark_height }
}

/// The mark as straight-alpha RGBA at its final size, no larger than the space inside the margins.
fn render_mark(source: &MarkSource, opts: &WatermarkOptions, width: u32, height: u32) -> Result<Image, Error> {
    let m = margin_px(opts, width, height);
    let (avail_w, avail_h) = (width.saturating_sub(2 * m), height.saturating_sub(2 * m));
    if avail_w == 0 || avail_h == 0 {
        return Err(Error::invalid(format!(
            "a {width}x{height} image leaves no room inside a margin of {m} px; lower margin="
        )));
    }
    let wanted = match opts.height {
        MarkHeight::Pixels(px) => px,
        MarkHeight::Fraction(f) => (f * width.min(height) as f64).round().max(1.0) as u32,
    }
    .min(avail_h);
    match source {
        MarkSource::Text { text, color } => {
            let font = FontRef::try_from_slice(FONT).map_err(|e| Error::Internal(format!("bundled font: {e}")))?;
            let mut px = wanted as f32;
            let natural = text_width(&font, text, px);
            if natural > avail_w as f32 {
                px = (px * avail_w as f32 / natural).floor();
            }
            if px < 1.0 {
                return Err(Error::invalid(format!(
                    "the text `{text}` does not fit across {avail_w} px; shorten it or lower margin="
                )));
            }
            Ok(render_text(&font, text, px, *color, avail_w))
        }
        MarkSource::Picture(logo) => {
            check_image(logo)?;
            let scale = (wanted as f64 / logo.height as f64).min(avail_w as f64 / logo.width as f64);
            let w = ((logo.width as f64 * scale).round() as u32).clamp(1, avail_w);
            let h = ((logo.height as f64 * scale).round() as u32).clamp(1, avail_h);
            resize::scale(logo.clone(), w, h, resize::Resample::Lanczos3)
        }
    }
}

/// Advance width of one line at `px`, kerning included.
fn text_width(font: &FontRef, text: &str, px: f32) -> f32 {
    let scaled = font.as_scaled(PxScale::from(px));
    let mut caret = 0.0;
    let mut previous = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            caret += scaled.kern(p, id);
        }
        caret += scaled.h_advance(id);
        previous = Some(id);
    }
    caret
}

/// Rasterise one line at `px` line height into a box at most `max_width` wide.
fn render_text(font: &FontRef, text: &str, px: f32, color: Rgba, max_width: u32) -> Image {
    let scaled = font.as_scaled(PxScale::from(px));
    let ascent = scaled.ascent();
    let height = (ascent - scaled.descent()).ceil().max(1.0) as u32;
    let width = (text_width(font, text, px).ceil() as u32).clamp(1, max_width);
    let mut coverage = vec![0f32; (width * height) as usize];
    let mut caret = 0.0;
    let mut previous = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(PxScale::from(px), point(caret, ascent));
        caret += scaled.h_advance(id);
        previous = Some(id);
        if let Some(outline) = font.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|x, y, cov| {
                let (gx, gy) = (bounds.min.x as i64 + x as i64, bounds.min.y as i64 + y as i64);
                if gx >= 0 && gy >= 0 && (gx as u32) < width && (gy as u32) < height {
                    let cell = &mut coverage[(gy as u32 * width + gx as u32) as usize];
                    *cell = (*cell + cov).min(1.0);
                }
            });
        }
    }
    let [r, g, b, a] = color.0;
    let pixels = coverage.iter().flat_map(|&c| [r, g, b, (c * a as f32 + 0.5) as u8]).collect();
    Image { width, height, pixels }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::solid;
    use crate::ops::testing::{pattern, px};
    use atelier_sdk::Param;

    fn options(params: &[Param]) -> WatermarkOptions {
        WatermarkOptions::from_args(&Args::new("watermark", params).unwrap()).unwrap()
    }

    fn changed_box(before: &Image, after: &Image) -> Option<Rect> {
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for y in 0..before.height {
            for x in 0..before.width {
                if px(before, x, y) != px(after, x, y) {
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                }
            }
        }
        (x0 != u32::MAX).then(|| Rect { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 })
    }

    fn inside(inner: Rect, outer: Rect) -> bool {
        inner.x >= outer.x
            && inner.y >= outer.y
            && inner.x + inner.width <= outer.x + outer.width
            && inner.y + inner.height <= outer.y + outer.height
    }

    #[test]
    fn text_changes_only_its_box_in_every_position() {
        let image = pattern(200, 120);
        for position in crate::params::POSITION_CHOICES {
            let opts = options(&[Param::new("text", "atelier"), Param::new("position", *position), Param::new("size", 0.2)]);
            let out = watermark(image.clone(), &opts).unwrap();
            let changed = changed_box(&image, &out).expect("the mark is visible");
            // The box the stamp was composited into, recomputed from the rendered mark.
            let mark = render_mark(&opts.source, &opts, 200, 120).unwrap();
            let expected = mark_box(&opts, 200, 120, mark.width, mark.height);
            assert!(inside(changed, expected), "{position}: {changed:?} outside {expected:?}");
            assert!(changed.height >= 15, "{position}: text too small: {changed:?}");
            match *position {
                "bottom-right" => assert!(expected.x + expected.width == 198 && expected.y + expected.height == 118),
                "top-left" => assert_eq!((expected.x, expected.y), (2, 2)),
                _ => {}
            }
        }
    }

    #[test]
    fn opacity_scales_the_mark() {
        let black = solid(120, 60, Rgba([0, 0, 0, 255]));
        let brightest = |opacity: f64| {
            let opts = options(&[Param::new("text", "HI"), Param::new("opacity", opacity), Param::new("size", 0.5)]);
            let out = watermark(black.clone(), &opts).unwrap();
            assert!(out.pixels.chunks_exact(4).all(|p| p[3] == 255 && p[0] == p[1] && p[1] == p[2]));
            out.pixels.chunks_exact(4).map(|p| p[0]).max().unwrap()
        };
        assert_eq!(brightest(1.0), 255);
        assert!((brightest(0.5) as i32 - 128).abs() <= 1, "{}", brightest(0.5));
        assert_eq!(brightest(0.0), 0);
    }

    #[test]
    fn logo_is_decoded_scaled_and_blended() {
        let mut png = Vec::new();
        let logo = image::RgbaImage::from_pixel(20, 10, image::Rgba([255, 0, 0, 255]));
        logo.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let media = Media { mime: "image/png".into(), bytes: png };
        let params = [
            Param { name: "image".into(), value: atelier_sdk::Value::Media(media) },
            Param::new("position", "top-left"),
            Param::new("size_px", 20i64),
            Param::new("margin", 0.0),
            Param::new("opacity", 0.5),
        ];
        let black = solid(100, 50, Rgba([0, 0, 0, 255]));
        let out = watermark(black.clone(), &options(&params)).unwrap();
        assert_eq!(changed_box(&black, &out), Some(Rect { x: 0, y: 0, width: 40, height: 20 }));
        assert_eq!(px(&out, 10, 10), [128, 0, 0, 255]);
    }

    #[test]
    fn missing_or_broken_marks_are_explained() {
        let err = WatermarkOptions::from_args(&Args::new("watermark", &[]).unwrap()).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("text=")), "{err:?}");
        let junk = Media { mime: "image/png".into(), bytes: b"not a png".to_vec() };
        let args = [Param { name: "image".into(), value: atelier_sdk::Value::Media(junk) }];
        let err = WatermarkOptions::from_args(&Args::new("watermark", &args).unwrap()).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("cannot be decoded")), "{err:?}");
    }

    #[test]
    fn long_text_shrinks_to_fit() {
        let image = pattern(60, 60);
        let opts = options(&[Param::new("text", "a very long watermark line indeed"), Param::new("size", 0.5)]);
        let out = watermark(image.clone(), &opts).unwrap();
        let changed = changed_box(&image, &out).unwrap();
        assert!(changed.x >= 1 && changed.x + changed.width <= 59, "{changed:?}");
    }
}
