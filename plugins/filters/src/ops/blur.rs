//! `blur` (Gaussian) and `sharpen` (unsharp mask). Both are separable: a horizontal pass into one
//! scratch buffer, then a vertical pass that hands each finished row to the caller, so blur writes
//! it back and sharpen mixes it with the original row: one extra image-sized buffer either way.
//!
//! Small sigmas use an exact fixed-point Gaussian kernel; large ones use three box passes
//! (running sums, cost independent of sigma), which approximate a Gaussian closely.

use super::{check_image, is_opaque, premultiply, unpremultiply};
use crate::params::Args;
use atelier_sdk::{Error, Image};

/// Above this sigma, three box blurs replace the exact kernel (which would need > 25 taps a pass).
const EXACT_SIGMA_LIMIT: f32 = 4.0;

/// Kernel weights are fixed point with this many fractional bits; they sum to exactly `1 << SHIFT`.
/// Eight bits keep every sum within `u16` (255 * 256 < 65536), so the multiply-adds run on 16-bit
/// lanes: twice the lanes of 32-bit ones, and a native multiply in SSE2 and simd128.
const SHIFT: u32 = 8;

/// What `blur` was asked for.
#[derive(Clone, Copy, Debug)]
pub struct BlurOptions {
    /// Standard deviation in px.
    pub sigma: f32,
}

impl BlurOptions {
    /// Read `sigma`.
    pub fn from_args(args: &Args) -> Self {
        BlurOptions { sigma: args.number("sigma").unwrap_or(2.0) as f32 }
    }
}

/// What `sharpen` was asked for.
#[derive(Clone, Copy, Debug)]
pub struct SharpenOptions {
    /// How much of the removed detail to add back.
    pub amount: f32,
    /// Sigma of the blur that defines "detail".
    pub sigma: f32,
    /// Differences below this many levels are left alone.
    pub threshold: u8,
}

impl SharpenOptions {
    /// Read `amount`, `sigma`, `threshold`.
    pub fn from_args(args: &Args) -> Self {
        SharpenOptions {
            amount: args.number("amount").unwrap_or(1.0) as f32,
            sigma: args.number("sigma").unwrap_or(1.0) as f32,
            threshold: args.integer("threshold").unwrap_or(0).clamp(0, 255) as u8,
        }
    }
}

/// Run `blur`.
pub fn blur(mut image: Image, opts: &BlurOptions) -> Result<Image, Error> {
    check_image(&image)?;
    gaussian_blur(&mut image, opts.sigma);
    Ok(image)
}

/// Blur in place. Translucent images are blurred premultiplied, so transparent pixels' hidden
/// colour does not bleed into their neighbours.
pub fn gaussian_blur(image: &mut Image, sigma: f32) {
    let (w, h) = (image.width as usize, image.height as usize);
    let translucent = !is_opaque(&image.pixels);
    if translucent {
        premultiply(&mut image.pixels);
    }
    if sigma <= EXACT_SIGMA_LIMIT {
        let kernel = gaussian_kernel(sigma);
        let mut across = vec![0u8; image.pixels.len()];
        horizontal(&image.pixels, &mut across, w, &kernel);
        let stride = w * 4;
        vertical(&across, w, h, &kernel, |y, row| image.pixels[y * stride..(y + 1) * stride].copy_from_slice(row));
    } else {
        let sizes = box_sizes(sigma);
        let mut padded = Vec::new();
        for row in image.pixels.chunks_exact_mut(w * 4) {
            for &size in &sizes {
                box_row(row, size, &mut padded);
            }
        }
        let mut other = vec![0u8; image.pixels.len()];
        for &size in &sizes {
            box_columns(&image.pixels, &mut other, w, h, size);
            std::mem::swap(&mut image.pixels, &mut other);
        }
    }
    if translucent {
        unpremultiply(&mut image.pixels);
    }
}

/// Run `sharpen`: out = orig + amount * (orig - blurred) where |orig - blurred| >= threshold; alpha kept.
pub fn sharpen(mut image: Image, opts: &SharpenOptions) -> Result<Image, Error> {
    check_image(&image)?;
    if opts.amount == 0.0 {
        return Ok(image);
    }
    let (w, h) = (image.width as usize, image.height as usize);
    let kernel = gaussian_kernel(opts.sigma);
    let mut across = vec![0u8; image.pixels.len()];
    horizontal(&image.pixels, &mut across, w, &kernel);
    let stride = w * 4;
    let amount = (opts.amount * 256.0).round() as i32;
    // Alpha gets a zero amount: written as four uniform lanes, the loop vectorises.
    let lanes = [amount, amount, amount, 0];
    let threshold = opts.threshold as i32;
    vertical(&across, w, h, &kernel, |y, blurred| {
        let row = &mut image.pixels[y * stride..(y + 1) * stride];
        for (px, bl) in row.chunks_exact_mut(4).zip(blurred.chunks_exact(4)) {
            for c in 0..4 {
                let diff = px[c] as i32 - bl[c] as i32;
                let gain = if diff.abs() >= threshold { lanes[c] } else { 0 };
                px[c] = (px[c] as i32 + ((diff * gain + 128) >> 8)).clamp(0, 255) as u8;
            }
        }
    });
    Ok(image)
}

/// A normalised Gaussian of radius ceil(3 sigma), fixed point summing to exactly `1 << SHIFT`.
fn gaussian_kernel(sigma: f32) -> Vec<u16> {
    let radius = (3.0 * sigma).ceil().max(1.0) as usize;
    let raw: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let d = i as f64 - radius as f64;
            (-(d * d) / (2.0 * sigma as f64 * sigma as f64)).exp()
        })
        .collect();
    let total: f64 = raw.iter().sum();
    let mut kernel: Vec<u16> = raw.iter().map(|v| (v / total * (1u64 << SHIFT) as f64).round() as u16).collect();
    // Rounding leaves the sum a few units off; the centre absorbs it so flat areas stay exactly flat.
    let sum: i64 = kernel.iter().map(|&k| k as i64).sum();
    kernel[radius] = (kernel[radius] as i64 + (1i64 << SHIFT) - sum) as u16;
    kernel
}

/// acc[i] += weight * src[i]: the inner loop of both passes, written so it vectorises
/// (SSE/AVX natively, simd128 in wasm when built with `+simd128`).
#[inline]
fn multiply_add(acc: &mut [u16], src: &[u8], weight: u16) {
    for (a, &s) in acc.iter_mut().zip(src) {
        *a += weight * s as u16;
    }
}

/// Round fixed-point sums back to bytes.
#[inline]
fn finish(acc: &[u16], out: &mut [u8]) {
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = ((a + (1 << (SHIFT - 1))) >> SHIFT) as u8;
    }
}

/// Convolve every row of `src` with `kernel` into `dst`, edges extended.
fn horizontal(src: &[u8], dst: &mut [u8], width: usize, kernel: &[u16]) {
    let r = kernel.len() / 2;
    let stride = width * 4;
    let mut padded = vec![0u8; stride + 8 * r];
    let mut acc = vec![0u16; stride];
    for (row, out) in src.chunks_exact(stride).zip(dst.chunks_exact_mut(stride)) {
        // Pad with copies of the edge pixels, so the taps need no bounds checks.
        for i in 0..r {
            padded[i * 4..i * 4 + 4].copy_from_slice(&row[..4]);
            padded[4 * (r + width + i)..4 * (r + width + i) + 4].copy_from_slice(&row[stride - 4..]);
        }
        padded[4 * r..4 * r + stride].copy_from_slice(row);
        acc.fill(0);
        for (k, &weight) in kernel.iter().enumerate() {
            multiply_add(&mut acc, &padded[4 * k..4 * k + stride], weight);
        }
        finish(&acc, out);
    }
}

/// Convolve the columns of `src` with `kernel`, handing each finished row to `emit(y, row)`.
fn vertical(src: &[u8], width: usize, height: usize, kernel: &[u16], mut emit: impl FnMut(usize, &[u8])) {
    let r = kernel.len() as isize / 2;
    let stride = width * 4;
    let mut acc = vec![0u16; stride];
    let mut out = vec![0u8; stride];
    for y in 0..height {
        acc.fill(0);
        for (k, &weight) in kernel.iter().enumerate() {
            let sy = (y as isize + k as isize - r).clamp(0, height as isize - 1) as usize;
            multiply_add(&mut acc, &src[sy * stride..(sy + 1) * stride], weight);
        }
        finish(&acc, &mut out);
        emit(y, &out);
    }
}

/// Widths of three box blurs whose sequence approximates a Gaussian of `sigma`
/// (W. Jarosz / P. Kovesi's "fast almost-Gaussian filtering").
fn box_sizes(sigma: f32) -> [usize; 3] {
    let n = 3.0f64;
    let s = sigma as f64;
    let ideal = (12.0 * s * s / n + 1.0).sqrt();
    let mut lower = ideal.floor() as i64;
    if lower % 2 == 0 {
        lower -= 1;
    }
    let upper = lower + 2;
    let l = lower as f64;
    let m = ((12.0 * s * s - n * l * l - 4.0 * n * l - 3.0 * n) / (-4.0 * l - 4.0)).round() as i64;
    [0, 1, 2].map(|i| if i < m { lower as usize } else { upper as usize })
}

/// Multiplier so that `(sum * reciprocal) >> 32` divides by `size` with rounding.
fn reciprocal(size: usize) -> u64 {
    (1u64 << 32).div_ceil(size as u64)
}

/// One box blur of width `size` (odd) along a row, in place, edges extended.
fn box_row(row: &mut [u8], size: usize, padded: &mut Vec<u8>) {
    let r = size / 2;
    let width = row.len() / 4;
    padded.clear();
    for _ in 0..r {
        padded.extend_from_slice(&row[..4]);
    }
    padded.extend_from_slice(row);
    for _ in 0..r {
        padded.extend_from_slice(&row[row.len() - 4..]);
    }
    let inv = reciprocal(size);
    let mut sum = [0u64; 4];
    for k in 0..size {
        for c in 0..4 {
            sum[c] += padded[k * 4 + c] as u64;
        }
    }
    for x in 0..width {
        for c in 0..4 {
            row[x * 4 + c] = ((sum[c] * inv + (1 << 31)) >> 32) as u8;
            if x + 1 < width {
                sum[c] += padded[(x + size) * 4 + c] as u64;
                sum[c] -= padded[x * 4 + c] as u64;
            }
        }
    }
}

/// One box blur of width `size` (odd) down the columns of `src` into `dst`, edges extended,
/// with a running sum per column kept as a row.
fn box_columns(src: &[u8], dst: &mut [u8], width: usize, height: usize, size: usize) {
    let r = (size / 2) as isize;
    let stride = width * 4;
    let row = |y: isize| {
        let y = y.clamp(0, height as isize - 1) as usize;
        &src[y * stride..(y + 1) * stride]
    };
    let inv = reciprocal(size);
    let mut sum = vec![0u32; stride];
    for k in -r..=r {
        for (s, &v) in sum.iter_mut().zip(row(k)) {
            *s += v as u32;
        }
    }
    for (y, out) in dst.chunks_exact_mut(stride).enumerate() {
        for (o, &s) in out.iter_mut().zip(&sum) {
            *o = ((s as u64 * inv + (1 << 31)) >> 32) as u8;
        }
        let (incoming, outgoing) = (row(y as isize + r + 1), row(y as isize - r));
        for ((s, &i), &o) in sum.iter_mut().zip(incoming).zip(outgoing) {
            *s = *s + i as u32 - o as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{pattern, px, variance};
    use atelier_sdk::Param;

    /// Left half one grey, right half another.
    fn step_edge(width: u32, height: u32, left: u8, right: u8) -> Image {
        let mut pixels = Vec::new();
        for _ in 0..height {
            for x in 0..width {
                let v = if x < width / 2 { left } else { right };
                pixels.extend_from_slice(&[v, v, v, 255]);
            }
        }
        Image { width, height, pixels }
    }

    #[test]
    fn kernel_sums_to_one_and_is_symmetric() {
        for sigma in [0.1, 0.5, 1.0, 2.5, 4.0] {
            let k = gaussian_kernel(sigma);
            assert_eq!(k.iter().map(|&w| w as u32).sum::<u32>(), 1 << SHIFT);
            assert!(k.iter().eq(k.iter().rev()));
        }
        for sigma in [4.5, 10.0, 50.0, 200.0] {
            let sizes = box_sizes(sigma);
            assert!(sizes.iter().all(|s| s % 2 == 1));
            // Three boxes of width w have variance 3 (w^2 - 1) / 12 ~ sigma^2.
            let var: f64 = sizes.iter().map(|&w| ((w * w) as f64 - 1.0) / 12.0).sum();
            assert!((var.sqrt() - sigma as f64).abs() / (sigma as f64) < 0.1, "{sigma}: {sizes:?}");
        }
    }

    #[test]
    fn blur_reduces_variance_and_keeps_flat_colour() {
        for sigma in [1.0, 3.0, 12.0] {
            let image = pattern(96, 64);
            let before = variance(&image);
            let out = blur(image, &BlurOptions { sigma }).unwrap();
            assert_eq!((out.width, out.height), (96, 64));
            assert!(variance(&out) < before * 0.9, "sigma {sigma}: {} vs {before}", variance(&out));
            let flat = super::super::solid(40, 30, crate::color::Rgba([37, 200, 90, 255]));
            let out = blur(flat.clone(), &BlurOptions { sigma }).unwrap();
            assert_eq!(out.pixels, flat.pixels, "sigma {sigma}");
        }
    }

    #[test]
    fn blur_does_not_bleed_hidden_colour_of_transparent_pixels() {
        let mut image = super::super::solid(32, 8, crate::color::Rgba([0, 0, 255, 255]));
        for p in image.pixels.chunks_exact_mut(4).step_by(2) {
            p.copy_from_slice(&[255, 0, 0, 0]);
        }
        let out = blur(image, &BlurOptions { sigma: 2.0 }).unwrap();
        assert!(out.pixels.chunks_exact(4).all(|p| p[0] <= 2 && p[2] >= 250), "{:?}", &out.pixels[..16]);
    }

    #[test]
    fn sharpen_increases_edge_contrast() {
        let image = step_edge(40, 10, 100, 150);
        let params = [Param::new("amount", 1.5), Param::new("sigma", 1.0)];
        let args = Args::new("sharpen", &params).unwrap();
        let out = sharpen(image.clone(), &SharpenOptions::from_args(&args)).unwrap();
        assert!(px(&out, 19, 5)[0] < 100 && px(&out, 20, 5)[0] > 150, "{:?} {:?}", px(&out, 19, 5), px(&out, 20, 5));
        // Far from the edge nothing changes, and alpha never does.
        assert_eq!(px(&out, 2, 5), [100, 100, 100, 255]);
        assert_eq!(px(&out, 37, 5), [150, 150, 150, 255]);
        // A threshold above the edge's local difference leaves it alone.
        let params = [Param::new("threshold", 60i64)];
        let args = Args::new("sharpen", &params).unwrap();
        let kept = sharpen(image.clone(), &SharpenOptions::from_args(&args)).unwrap();
        assert_eq!(kept.pixels, image.pixels);
    }
}
