//! `blur` (Gaussian) and `sharpen` (unsharp mask). Both are separable: each output row is the
//! vertical pass over a small ring of horizontally blurred rows (one kernel's height), handed to the
//! caller, so blur writes it back and sharpen mixes it with the original row. No image-sized scratch
//! buffer: in wasm every fresh page of memory faults, which cost as much as the arithmetic.
//!
//! Small sigmas use an exact fixed-point Gaussian kernel; large ones use three box passes
//! (running sums, cost independent of sigma), which approximate a Gaussian closely.
//!
//! The inner loops have explicit vector versions, simd128 in wasm and SSE2 on x86_64, and a
//! portable scalar one that finishes their tails (and does everything on other targets); all do
//! the same integer arithmetic, so native and wasm give the same pixels.

use super::{check_image, is_opaque, premultiply, unpremultiply, vector_loops};
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
        separable(&mut image.pixels, w, &gaussian_kernel(sigma), |row, blurred| row.copy_from_slice(blurred));
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
    let width = image.width as usize;
    // Fixed point, 8 fractional bits; at most 10 * 256, so every product fits 32 bits and every
    // correction 16.
    let gain = (opts.amount * 256.0).round() as i32;
    let threshold = opts.threshold as i32;
    separable(&mut image.pixels, width, &gaussian_kernel(opts.sigma), |row, blurred| {
        unsharp_row(row, blurred, gain, threshold)
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

/// Convolve the rows of `pixels` (RGBA, `width` pixels a row) with `kernel` across then down,
/// edges extended, handing each image row and its blurred version to `emit(row, blurred)`.
///
/// Horizontally blurred rows live in a ring of `kernel.len()` rows: output row y needs rows
/// y - r ..= y + r, and a row is blurred across before `emit` reaches (and may overwrite) it.
fn separable(pixels: &mut [u8], width: usize, kernel: &[u16], mut emit: impl FnMut(&mut [u8], &[u8])) {
    let stride = width * 4;
    let height = pixels.len() / stride;
    let taps = kernel.len();
    let r = taps / 2;
    let mut ring = vec![0u8; taps * stride];
    let mut padded = vec![0u8; stride + 8 * r];
    let mut blurred = vec![0u8; stride];
    let mut next = 0;
    for y in 0..height {
        while next <= (y + r).min(height - 1) {
            let slot = next % taps;
            let row = &pixels[next * stride..(next + 1) * stride];
            horizontal_row(row, &mut padded, &mut ring[slot * stride..(slot + 1) * stride], kernel);
            next += 1;
        }
        let rows: Vec<&[u8]> = (0..taps)
            .map(|k| {
                let slot = ((y + k).saturating_sub(r).min(height - 1)) % taps;
                &ring[slot * stride..(slot + 1) * stride]
            })
            .collect();
        weighted_sum(&rows, kernel, &mut blurred);
        emit(&mut pixels[y * stride..(y + 1) * stride], &blurred);
    }
}

/// Convolve one row with `kernel` into `out`, edges extended, via `padded` (row + 2r pixels).
fn horizontal_row(row: &[u8], padded: &mut [u8], out: &mut [u8], kernel: &[u16]) {
    let r = kernel.len() / 2;
    let stride = row.len();
    // Pad with copies of the edge pixels, so the taps need no bounds checks.
    let (first, last) = ([row[0], row[1], row[2], row[3]], [row[stride - 4], row[stride - 3], row[stride - 2], row[stride - 1]]);
    for i in 0..r {
        padded[i * 4..i * 4 + 4].copy_from_slice(&first);
        padded[4 * r + stride + i * 4..4 * r + stride + i * 4 + 4].copy_from_slice(&last);
    }
    padded[4 * r..4 * r + stride].copy_from_slice(row);
    let shifted: Vec<&[u8]> = (0..kernel.len()).map(|k| &padded[4 * k..4 * k + stride]).collect();
    weighted_sum(&shifted, kernel, out);
}

/// `out[i] = round(sum over taps t of kernel[t] * rows[t][i] / 2^SHIFT)`: the inner loop of both passes.
/// Sums fit `u16` (the weights sum to 256), so 16-bit lanes suffice.
fn weighted_sum(rows: &[&[u8]], kernel: &[u16], out: &mut [u8]) {
    let n = out.len();
    assert!(rows.len() == kernel.len() && rows.iter().all(|r| r.len() >= n));
    let done = if vector_loops() { vector::weighted_sum(rows, kernel, out) } else { 0 };
    // Scalar, in blocks small enough that the accumulators stay in registers.
    const BLOCK: usize = 32;
    let mut start = done;
    while start < n {
        let end = (start + BLOCK).min(n);
        let mut acc = [1u16 << (SHIFT - 1); BLOCK];
        let acc = &mut acc[..end - start];
        for (row, &weight) in rows.iter().zip(kernel) {
            for (a, &s) in acc.iter_mut().zip(&row[start..end]) {
                *a += weight * s as u16;
            }
        }
        for (o, &a) in out[start..end].iter_mut().zip(acc.iter()) {
            *o = (a >> SHIFT) as u8;
        }
        start = end;
    }
}

/// Unsharp-mask one row in place: px += gain * (px - blurred) / 256 where |px - blurred| >=
/// threshold, colour channels only, clamped to 0..=255.
fn unsharp_row(row: &mut [u8], blurred: &[u8], gain: i32, threshold: i32) {
    assert!(blurred.len() >= row.len() && row.len().is_multiple_of(4));
    // The vector loops multiply in 16-bit lanes; `amount` is at most 10 (gain 2560) when it comes
    // through the params, and a larger one given directly is done by the scalar loop.
    let done = if gain.abs() <= 4096 && vector_loops() { vector::unsharp_row(row, blurred, gain, threshold) } else { 0 };
    for (px, bl) in row[done..].chunks_exact_mut(4).zip(blurred[done..].chunks_exact(4)) {
        for c in 0..3 {
            let diff = px[c] as i32 - bl[c] as i32;
            if diff.abs() >= threshold {
                px[c] = (px[c] as i32 + ((diff * gain + 128) >> 8)).clamp(0, 255) as u8;
            }
        }
    }
}

/// The vector versions of the inner loops for this target; the scalar loops finish what they leave.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use simd as vector;
#[cfg(target_arch = "x86_64")]
use sse2 as vector;
/// No vector loops on this target: the scalar ones do every byte.
#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
mod vector {
    /// Does nothing (0 bytes).
    pub fn weighted_sum(_: &[&[u8]], _: &[u16], _: &mut [u8]) -> usize {
        0
    }

    /// Does nothing (0 bytes).
    pub fn unsharp_row(_: &mut [u8], _: &[u8], _: i32, _: i32) -> usize {
        0
    }
}

/// The wasm simd128 versions of the inner loops: the same arithmetic as the scalar code, 16 bytes
/// at a time. Each returns how many leading bytes it did; the scalar code finishes the rest.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use super::SHIFT;
    use core::arch::wasm32::*;

    /// See [`super::weighted_sum`]; the caller checked every row has at least `out.len()` bytes.
    pub fn weighted_sum(rows: &[&[u8]], kernel: &[u16], out: &mut [u8]) -> usize {
        let n = out.len() - out.len() % 32;
        let round = u16x8_splat(1 << (SHIFT - 1));
        let mut i = 0;
        while i < n {
            let (mut a0, mut a1, mut a2, mut a3) = (round, round, round, round);
            for (row, &weight) in rows.iter().zip(kernel) {
                let w = u16x8_splat(weight);
                // SAFETY: i + 32 <= n <= row.len() (checked by the caller); loads may be unaligned.
                let (v0, v1) = unsafe {
                    let p = row.as_ptr().add(i);
                    (v128_load(p as *const v128), v128_load(p.add(16) as *const v128))
                };
                a0 = i16x8_add(a0, i16x8_mul(u16x8_extend_low_u8x16(v0), w));
                a1 = i16x8_add(a1, i16x8_mul(u16x8_extend_high_u8x16(v0), w));
                a2 = i16x8_add(a2, i16x8_mul(u16x8_extend_low_u8x16(v1), w));
                a3 = i16x8_add(a3, i16x8_mul(u16x8_extend_high_u8x16(v1), w));
            }
            let lo = u8x16_narrow_i16x8(u16x8_shr(a0, SHIFT), u16x8_shr(a1, SHIFT));
            let hi = u8x16_narrow_i16x8(u16x8_shr(a2, SHIFT), u16x8_shr(a3, SHIFT));
            let o = &mut out[i..i + 32];
            // SAFETY: `o` is 32 bytes.
            unsafe {
                v128_store(o.as_mut_ptr() as *mut v128, lo);
                v128_store(o.as_mut_ptr().add(16) as *mut v128, hi);
            }
            i += 32;
        }
        n
    }

    /// See [`super::unsharp_row`].
    pub fn unsharp_row(row: &mut [u8], blurred: &[u8], gain: i32, threshold: i32) -> usize {
        let n = row.len() - row.len() % 16;
        // Alpha lanes get no gain; the caller keeps |gain| <= 4096, so it fits i16.
        let g = gain as i16;
        let gains = i16x8(g, g, g, 0, g, g, g, 0);
        let limit = i16x8_splat(threshold as i16);
        let round = i32x4_splat(128);
        let half = |p: v128, b: v128| {
            let diff = i16x8_sub(p, b);
            let gain = v128_and(gains, i16x8_ge(i16x8_abs(diff), limit));
            let lo = i32x4_shr(i32x4_add(i32x4_extmul_low_i16x8(diff, gain), round), 8);
            let hi = i32x4_shr(i32x4_add(i32x4_extmul_high_i16x8(diff, gain), round), 8);
            // |correction| <= 255 * 4096 / 256: no saturation here; the final narrow clamps to 0..=255.
            i16x8_add(p, i16x8_narrow_i32x4(lo, hi))
        };
        for (px, bl) in row[..n].chunks_exact_mut(16).zip(blurred.chunks_exact(16)) {
            // SAFETY: both chunks are 16 bytes; loads and stores may be unaligned.
            unsafe {
                let p = v128_load(px.as_ptr() as *const v128);
                let b = v128_load(bl.as_ptr() as *const v128);
                let lo = half(u16x8_extend_low_u8x16(p), u16x8_extend_low_u8x16(b));
                let hi = half(u16x8_extend_high_u8x16(p), u16x8_extend_high_u8x16(b));
                v128_store(px.as_mut_ptr() as *mut v128, u8x16_narrow_i16x8(lo, hi));
            }
        }
        n
    }
}

/// The x86_64 SSE2 twins of the simd128 loops in `simd` (SSE2 is part of the x86_64 baseline): the same
/// integer operations, so native pixels equal wasm ones. Where SSE2 lacks a simd128 instruction
/// the equivalent sequence is noted.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::SHIFT;
    use core::arch::x86_64::*;

    /// See [`super::weighted_sum`]; the caller checked every row has at least `out.len()` bytes.
    pub fn weighted_sum(rows: &[&[u8]], kernel: &[u16], out: &mut [u8]) -> usize {
        let n = out.len() - out.len() % 32;
        // SAFETY: SSE2 is always present on x86_64. Loads read row[i..i + 32] with
        // i + 32 <= n <= row.len() (checked by the caller); stores write out[i..i + 32]; both
        // may be unaligned.
        unsafe {
            let zero = _mm_setzero_si128();
            let round = _mm_set1_epi16(1 << (SHIFT - 1));
            let mut i = 0;
            while i < n {
                let (mut a0, mut a1, mut a2, mut a3) = (round, round, round, round);
                for (row, &weight) in rows.iter().zip(kernel) {
                    let w = _mm_set1_epi16(weight as i16);
                    let p = row.as_ptr().add(i);
                    let (v0, v1) = (_mm_loadu_si128(p as *const __m128i), _mm_loadu_si128(p.add(16) as *const __m128i));
                    a0 = _mm_add_epi16(a0, _mm_mullo_epi16(_mm_unpacklo_epi8(v0, zero), w));
                    a1 = _mm_add_epi16(a1, _mm_mullo_epi16(_mm_unpackhi_epi8(v0, zero), w));
                    a2 = _mm_add_epi16(a2, _mm_mullo_epi16(_mm_unpacklo_epi8(v1, zero), w));
                    a3 = _mm_add_epi16(a3, _mm_mullo_epi16(_mm_unpackhi_epi8(v1, zero), w));
                }
                const S: i32 = SHIFT as i32;
                let lo = _mm_packus_epi16(_mm_srli_epi16::<S>(a0), _mm_srli_epi16::<S>(a1));
                let hi = _mm_packus_epi16(_mm_srli_epi16::<S>(a2), _mm_srli_epi16::<S>(a3));
                let o = out.as_mut_ptr().add(i);
                _mm_storeu_si128(o as *mut __m128i, lo);
                _mm_storeu_si128(o.add(16) as *mut __m128i, hi);
                i += 32;
            }
        }
        n
    }

    /// See [`super::unsharp_row`].
    pub fn unsharp_row(row: &mut [u8], blurred: &[u8], gain: i32, threshold: i32) -> usize {
        let n = row.len() - row.len() % 16;
        // SAFETY: SSE2 is always present on x86_64; every load and store is of a 16-byte chunk
        // and unaligned.
        unsafe {
            let zero = _mm_setzero_si128();
            // Alpha lanes get no gain; the caller keeps |gain| <= 4096, so it fits i16.
            let g = gain as i16;
            let gains = _mm_setr_epi16(g, g, g, 0, g, g, g, 0);
            let limit = _mm_set1_epi16(threshold as i16);
            let (ones, round) = (_mm_set1_epi16(1), _mm_set1_epi16(128));
            let half = |p: __m128i, b: __m128i| {
                let diff = _mm_sub_epi16(p, b);
                // |diff| as max(diff, -diff), and `>=` as not `<`: simd128's abs and ge.
                let abs = _mm_max_epi16(diff, _mm_sub_epi16(zero, diff));
                let gain = _mm_andnot_si128(_mm_cmpgt_epi16(limit, abs), gains);
                // diff * gain + 128 as one multiply-add of (diff, 1) pairs by (gain, 128) pairs:
                // simd128's extmul then add, exactly, in i32.
                let lo = _mm_srai_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(diff, ones), _mm_unpacklo_epi16(gain, round)), 8);
                let hi = _mm_srai_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(diff, ones), _mm_unpackhi_epi16(gain, round)), 8);
                // |correction| <= 255 * 4096 / 256: no saturation here; the final pack clamps to 0..=255.
                _mm_add_epi16(p, _mm_packs_epi32(lo, hi))
            };
            for (px, bl) in row[..n].chunks_exact_mut(16).zip(blurred.chunks_exact(16)) {
                let p = _mm_loadu_si128(px.as_ptr() as *const __m128i);
                let b = _mm_loadu_si128(bl.as_ptr() as *const __m128i);
                let lo = half(_mm_unpacklo_epi8(p, zero), _mm_unpacklo_epi8(b, zero));
                let hi = half(_mm_unpackhi_epi8(p, zero), _mm_unpackhi_epi8(b, zero));
                _mm_storeu_si128(px.as_mut_ptr() as *mut __m128i, _mm_packus_epi16(lo, hi));
            }
        }
        n
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
    use crate::ops::testing::{on_every_path, pattern, px, variance};
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

    /// The separable convolution written the plain way: every tap's pixel found by clamped
    /// coordinates, rounding to bytes between the passes.
    fn direct_blur(image: &Image, kernel: &[u16]) -> Vec<u8> {
        let (w, h) = (image.width as i64, image.height as i64);
        let r = kernel.len() as i64 / 2;
        let at = |p: &[u8], x: i64, y: i64, c: usize| p[((y.clamp(0, h - 1) * w + x.clamp(0, w - 1)) * 4) as usize + c] as u32;
        let pass = |src: &[u8], dx: i64, dy: i64| {
            let mut out = vec![0u8; src.len()];
            for y in 0..h {
                for x in 0..w {
                    for c in 0..4 {
                        let sum: u32 = (0..kernel.len() as i64)
                            .map(|k| kernel[k as usize] as u32 * at(src, x + (k - r) * dx, y + (k - r) * dy, c))
                            .sum();
                        out[((y * w + x) * 4) as usize + c] = ((sum + 128) >> SHIFT) as u8;
                    }
                }
            }
            out
        };
        pass(&pass(&image.pixels, 1, 0), 0, 1)
    }

    #[test]
    fn blur_matches_a_direct_convolution_at_any_height() {
        // Heights below, at and above the kernel's, widths with and without a whole SIMD block.
        on_every_path(|path| {
            for (w, h) in [(37, 1), (8, 2), (45, 5), (64, 19), (33, 40)] {
                for sigma in [0.5, 1.0, 3.0] {
                    let mut image = pattern(w, h);
                    image.pixels[7] = 100; // translucent pixels blur too (premultiplied)
                    let opaque = pattern(w, h);
                    let out = blur(opaque.clone(), &BlurOptions { sigma }).unwrap();
                    assert_eq!(out.pixels, direct_blur(&opaque, &gaussian_kernel(sigma)), "{w}x{h} sigma {sigma}, {path}");
                    blur(image, &BlurOptions { sigma }).unwrap();
                }
            }
        });
    }

    #[test]
    fn sharpen_matches_the_unsharp_formula() {
        let image = pattern(53, 17);
        let kernel = gaussian_kernel(1.0);
        let blurred = direct_blur(&image, &kernel);
        on_every_path(|path| {
            for (amount, threshold) in [(0.8f32, 0u8), (10.0, 0), (1.5, 20)] {
                let out = sharpen(image.clone(), &SharpenOptions { amount, sigma: 1.0, threshold }).unwrap();
                let gain = (amount * 256.0).round() as i32;
                for (i, (&o, (&p, &b))) in out.pixels.iter().zip(image.pixels.iter().zip(&blurred)).enumerate() {
                    let diff = p as i32 - b as i32;
                    let expected = if i % 4 == 3 || diff.abs() < threshold as i32 {
                        p
                    } else {
                        (p as i32 + ((diff * gain + 128) >> 8)).clamp(0, 255) as u8
                    };
                    assert_eq!(o, expected, "byte {i}, amount {amount}, threshold {threshold}, {path}");
                }
            }
        });
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
