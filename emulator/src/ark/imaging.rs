//! Real result images for the emulator: the input, resized to the requested size and visibly
//! transformed (inverted, then tinted per output index), encoded as the provider would.

use image::{imageops::FilterType, DynamicImage, ImageFormat, RgbImage};
use std::io::Cursor;

/// Decode an encoded image, or say why not.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    image::load_from_memory(bytes).map_err(|e| format!("cannot decode image: {e}"))
}

/// A `width`×`height` result from `source` (or a gradient when there is none), inverted and
/// tinted by `variant` so outputs of one batch differ.
pub fn render(source: Option<&DynamicImage>, width: u32, height: u32, variant: u32) -> RgbImage {
    let mut img = match source {
        // Nearest keeps the emulator fast in debug builds; fidelity of pixels is not the point.
        Some(src) => src.resize_exact(width, height, FilterType::Nearest).to_rgb8(),
        None => RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, 128])),
    };
    let tint = (variant as u8).wrapping_mul(40);
    for p in img.pixels_mut() {
        p.0 = [(255 - p.0[0]).wrapping_add(tint), 255 - p.0[1], 255 - p.0[2]];
    }
    img
}

/// Encode as `png`, `jpeg` or `webp` (lossless); anything else is PNG.
pub fn encode(img: &RgbImage, format: &str) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let fmt = match format {
        "jpeg" | "jpg" => ImageFormat::Jpeg,
        "webp" => ImageFormat::WebP,
        _ => ImageFormat::Png,
    };
    img.write_to(&mut out, fmt).expect("encoding an RGB image in memory cannot fail");
    out.into_inner()
}

/// Roughly `megapixels` at `ratio_w:ratio_h`, both sides multiples of 32.
pub fn size_for_ratio(ratio_w: f64, ratio_h: f64, megapixels: f64) -> (u32, u32) {
    let pixels = megapixels * 1_048_576.0;
    let w = (pixels * ratio_w / ratio_h).sqrt();
    let h = w * ratio_h / ratio_w;
    let round32 = |v: f64| ((v / 32.0).round().max(1.0) * 32.0) as u32;
    (round32(w), round32(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_requested_size() {
        let src = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 4, image::Rgb([10, 20, 30])));
        let out = render(Some(&src), 16, 9, 0);
        assert_eq!(out.dimensions(), (16, 9));
        assert_eq!(out.get_pixel(0, 0).0, [245, 235, 225]);
        let png = encode(&out, "png");
        assert_eq!(decode(&png).unwrap().width(), 16);
        assert!(encode(&out, "jpeg").starts_with(&[0xFF, 0xD8, 0xFF]));
        assert_eq!(size_for_ratio(1.0, 1.0, 1.0), (1024, 1024));
    }
}
