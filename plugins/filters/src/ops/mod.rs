//! The filters, one module per family, as pure functions over an RGBA8 [`Image`] so they run the
//! same natively and in wasm. Each module has an options struct read from [`crate::params::Args`]
//! and functions that take the image by value and work in place where the operation allows.

pub mod blur;
pub mod geometry;
pub mod resize;
pub mod tone;
pub mod watermark;

use crate::color::Rgba;
use atelier_sdk::{Error, Image};

/// A rectangle in pixels, `x`/`y` being its top-left corner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Check that an image's buffer matches its size and that it has pixels at all.
pub fn check_image(image: &Image) -> Result<(), Error> {
    if image.width == 0 || image.height == 0 {
        return Err(Error::invalid(format!("the image is empty ({}x{})", image.width, image.height)));
    }
    let expected = image.width as u64 * image.height as u64 * 4;
    if image.pixels.len() as u64 != expected {
        return Err(Error::invalid(format!(
            "the image claims {}x{} RGBA ({expected} bytes) but carries {} bytes",
            image.width,
            image.height,
            image.pixels.len()
        )));
    }
    Ok(())
}

/// The most pixels a step may create (256 MiB of RGBA): beyond this a guest under the manifest's
/// memory limit would abort mid-step instead of explaining.
pub const MAX_OUTPUT_PIXELS: u64 = 64 * 1024 * 1024;

/// Refuse an output size that would not fit in memory, naming the size and the limit.
pub fn check_output_size(filter: &str, width: u32, height: u32) -> Result<(), Error> {
    let pixels = width as u64 * height as u64;
    if pixels > MAX_OUTPUT_PIXELS {
        return Err(Error::invalid(format!(
            "`{filter}` would make a {width}x{height} image ({:.0} MP); the limit is {} MP, so ask for a smaller size",
            pixels as f64 / 1e6,
            MAX_OUTPUT_PIXELS / 1_000_000
        )));
    }
    Ok(())
}

/// An image of one colour.
pub fn solid(width: u32, height: u32, color: Rgba) -> Image {
    let pixels = color.0.repeat(width as usize * height as usize);
    Image { width, height, pixels }
}

/// Whether every pixel has alpha 255, so alpha-aware work can be skipped.
pub fn is_opaque(pixels: &[u8]) -> bool {
    // AND whole pixels together in blocks (a branch-free loop that vectorises; a per-pixel early
    // exit does not, and cost as much as the resize's vertical pass in wasm), stopping at the
    // first block with a translucent pixel.
    // Sixteen pixels a step into sixteen independent lanes, so several loads are in flight.
    pixels.chunks(16 * 1024).all(|block| {
        let mut lanes = [u32::MAX; 16];
        let sixteen = block.chunks_exact(64);
        let rest = sixteen.remainder();
        for group in sixteen {
            for (lane, p) in lanes.iter_mut().zip(group.chunks_exact(4)) {
                *lane &= u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
            }
        }
        let all = rest.chunks_exact(4).fold(lanes.iter().fold(u32::MAX, |a, &l| a & l), |acc, p| {
            acc & u32::from_le_bytes([p[0], p[1], p[2], p[3]])
        });
        all >> 24 == 0xFF
    })
}

/// Whether the explicit vector inner loops (simd128 in wasm, SSE2 on x86_64) run, leaving only
/// the tail to the portable scalar loops. Always so in use; tests switch them off per thread, so
/// the same formula checks also cover the scalar loops (the whole job on other architectures).
#[inline(always)]
pub(crate) fn vector_loops() -> bool {
    #[cfg(test)]
    return testing::VECTOR_LOOPS.with(|on| on.get());
    #[cfg(not(test))]
    true
}

/// Scale colour by alpha, so that filtering does not bleed the colour of transparent pixels.
pub fn premultiply(pixels: &mut [u8]) {
    for p in pixels.chunks_exact_mut(4) {
        let a = p[3] as u32;
        for c in &mut p[..3] {
            *c = ((*c as u32 * a + 127) / 255) as u8;
        }
    }
}

/// Undo [`premultiply`].
pub fn unpremultiply(pixels: &mut [u8]) {
    for p in pixels.chunks_exact_mut(4) {
        let a = p[3] as u32;
        if a != 0 && a != 255 {
            for c in &mut p[..3] {
                *c = ((*c as u32 * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
}

/// Copy `src` into `dst` with its top-left corner at (`x`, `y`); `src` must fit inside `dst`.
pub fn paste(dst: &mut Image, src: &Image, x: u32, y: u32) {
    debug_assert!(x + src.width <= dst.width && y + src.height <= dst.height);
    let row = src.width as usize * 4;
    for (i, src_row) in src.pixels.chunks_exact(row).enumerate() {
        let start = ((y as usize + i) * dst.width as usize + x as usize) * 4;
        dst.pixels[start..start + row].copy_from_slice(src_row);
    }
}

/// Source-over of one straight-alpha colour onto one straight-alpha pixel, with `alpha` in 0..=1
/// already including the source's own alpha.
#[inline]
pub fn blend_over(dst: &mut [u8], src: [u8; 3], alpha: f32) {
    if alpha <= 0.0 {
        return;
    }
    let dst_a = dst[3] as f32 / 255.0;
    let out_a = alpha + dst_a * (1.0 - alpha);
    if out_a <= 0.0 {
        return;
    }
    for c in 0..3 {
        let v = (src[c] as f32 * alpha + dst[c] as f32 * dst_a * (1.0 - alpha)) / out_a;
        dst[c] = (v + 0.5).clamp(0.0, 255.0) as u8;
    }
    dst[3] = (out_a * 255.0 + 0.5) as u8;
}

#[cfg(test)]
pub(crate) mod testing {
    //! Small synthetic images for the filter tests, and a switch between the inner loops.
    use atelier_sdk::Image;
    use std::cell::Cell;

    thread_local! {
        /// See [`super::vector_loops`].
        pub static VECTOR_LOOPS: Cell<bool> = const { Cell::new(true) };
    }

    /// Run `check` once with the vector inner loops and once with the scalar ones only, passing
    /// the name of the path for assertion messages.
    pub fn on_every_path(mut check: impl FnMut(&str)) {
        for (on, path) in [(true, "vector loops"), (false, "scalar loops")] {
            VECTOR_LOOPS.with(|v| v.set(on));
            check(path);
        }
        VECTOR_LOOPS.with(|v| v.set(true));
    }

    /// A deterministic, textured, opaque test image.
    pub fn pattern(width: u32, height: u32) -> Image {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 4);
        for y in 0..height {
            for x in 0..width {
                let checker = if (x / 8 + y / 8) % 2 == 0 { 60 } else { 0 };
                pixels.extend_from_slice(&[
                    (x * 255 / width.max(1)) as u8,
                    (y * 255 / height.max(1)) as u8,
                    ((x * 7 + y * 13) % 196) as u8 + checker,
                    255,
                ]);
            }
        }
        Image { width, height, pixels }
    }

    /// The RGBA of pixel (x, y).
    pub fn px(image: &Image, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * image.width + x) * 4) as usize;
        image.pixels[i..i + 4].try_into().unwrap()
    }

    /// Variance of the luma-ish sum of channels, a measure of detail.
    pub fn variance(image: &Image) -> f64 {
        let values: Vec<f64> =
            image.pixels.chunks_exact(4).map(|p| (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0).collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premultiply_round_trips_opaque_and_keeps_alpha() {
        let mut p = vec![200, 100, 50, 255, 200, 100, 50, 128, 9, 9, 9, 0];
        premultiply(&mut p);
        assert_eq!(&p[..4], &[200, 100, 50, 255]);
        assert_eq!(&p[4..8], &[100, 50, 25, 128]);
        unpremultiply(&mut p);
        assert_eq!(&p[..4], &[200, 100, 50, 255]);
        assert!((p[4] as i32 - 200).abs() <= 2 && p[7] == 128);
    }

    #[test]
    fn opacity_is_seen_in_any_pixel() {
        let mut p = vec![255u8; 4 * 10_003];
        assert!(is_opaque(&p));
        for i in [3, 4 * 15 + 3, 4 * 4095 + 3, 4 * 4096 + 3, 4 * 9_999 + 3, 4 * 10_002 + 3] {
            p[i] = 254;
            assert!(!is_opaque(&p), "alpha at byte {i}");
            p[i] = 255;
        }
        // Colour bytes never count.
        p[0] = 0;
        assert!(is_opaque(&p));
    }

    #[test]
    fn oversized_outputs_are_refused() {
        assert!(check_output_size("resize", 8192, 8192).is_ok());
        let err = check_output_size("resize", 20000, 20000).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("20000x20000") && m.contains("limit")), "{err:?}");
    }

    #[test]
    fn check_image_rejects_wrong_buffer() {
        let err = check_image(&Image { width: 2, height: 2, pixels: vec![0; 15] }).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("2x2")), "{err:?}");
    }
}
