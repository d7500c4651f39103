//! `adjust` (brightness, contrast, saturation, gamma, temperature) and `grayscale`: per-pixel colour
//! changes, in place. Per-channel curves are folded into one lookup table per channel.

use super::{check_image, vector_loops};
use crate::params::Args;
use atelier_sdk::{Error, Image};

/// What `adjust` was asked for; [`AdjustOptions::NEUTRAL`] changes nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdjustOptions {
    /// Multiplier on every channel.
    pub brightness: f64,
    /// Multiplier on the distance from mid-grey.
    pub contrast: f64,
    /// Multiplier on the distance from the pixel's own grey.
    pub saturation: f64,
    /// Output = input^(1/gamma), on 0..1.
    pub gamma: f64,
    /// -1 cool .. +1 warm.
    pub temperature: f64,
}

impl AdjustOptions {
    /// The settings that leave every pixel as it is.
    pub const NEUTRAL: AdjustOptions =
        AdjustOptions { brightness: 1.0, contrast: 1.0, saturation: 1.0, gamma: 1.0, temperature: 0.0 };

    /// Read the five settings, defaulting to neutral.
    pub fn from_args(args: &Args) -> Self {
        let n = AdjustOptions::NEUTRAL;
        AdjustOptions {
            brightness: args.number("brightness").unwrap_or(n.brightness),
            contrast: args.number("contrast").unwrap_or(n.contrast),
            saturation: args.number("saturation").unwrap_or(n.saturation),
            gamma: args.number("gamma").unwrap_or(n.gamma),
            temperature: args.number("temperature").unwrap_or(n.temperature),
        }
    }

    /// The per-channel curve for red, green and blue.
    fn tables(&self) -> [[u8; 256]; 3] {
        // Warmth: red up and blue down by up to 20 %, the reverse for cool.
        let gains = [1.0 + 0.2 * self.temperature, 1.0, 1.0 - 0.2 * self.temperature];
        gains.map(|gain| {
            let mut table = [0u8; 256];
            for (i, out) in table.iter_mut().enumerate() {
                let mut v = i as f64 / 255.0;
                if self.gamma != 1.0 {
                    v = v.powf(1.0 / self.gamma);
                }
                v *= self.brightness;
                v = (v - 0.5) * self.contrast + 0.5;
                v *= gain;
                *out = (v * 255.0).round().clamp(0.0, 255.0) as u8;
            }
            table
        })
    }
}

/// Run `adjust`, in place; alpha is kept.
pub fn adjust(mut image: Image, opts: &AdjustOptions) -> Result<Image, Error> {
    check_image(&image)?;
    let [r, g, b] = opts.tables();
    // Fixed point, 8 fractional bits.
    let s = (opts.saturation * 256.0).round() as i32;
    // In blocks that stay in the L1 cache: the table lookups (scalar, they cannot vectorise), then
    // the saturation mix (which can).
    for block in image.pixels.chunks_mut(4 * 1024) {
        for p in block.chunks_exact_mut(4) {
            p[0] = r[p[0] as usize];
            p[1] = g[p[1] as usize];
            p[2] = b[p[2] as usize];
        }
        if opts.saturation != 1.0 {
            saturate(block, s);
        }
    }
    Ok(image)
}

/// Move each pixel's colour away from (s > 256) or towards (s < 256) its own grey, `s` being the
/// factor with 8 fractional bits; alpha kept.
fn saturate(pixels: &mut [u8], s: i32) {
    let done = if s.abs() <= 4096 && vector_loops() { vector::saturate(pixels, s) } else { 0 };
    for p in pixels[done..].chunks_exact_mut(4) {
        let grey = luma(p[0], p[1], p[2]) as i32;
        for c in &mut p[..3] {
            *c = (grey + ((*c as i32 - grey) * s + 128).div_euclid(256)).clamp(0, 255) as u8;
        }
    }
}

/// The vector version of [`saturate`] for this target; the scalar loop finishes what it leaves.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use simd as vector;
#[cfg(target_arch = "x86_64")]
use sse2 as vector;
/// No vector loops on this target: the scalar one does every pixel.
#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
mod vector {
    /// Does nothing (0 bytes).
    pub fn saturate(_: &mut [u8], _: i32) -> usize {
        0
    }
}

/// The wasm simd128 version of [`saturate`]: the same arithmetic, four pixels at a time.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    /// Returns how many leading bytes it did (a multiple of 16); `|s| <= 4096` so it fits i16.
    pub fn saturate(pixels: &mut [u8], s: i32) -> usize {
        let n = pixels.len() - pixels.len() % 16;
        let weights = i16x8(54, 183, 19, 0, 54, 183, 19, 0);
        let factor = i16x8_splat(s as i16);
        let round = i32x4_splat(128);
        let alpha = u32x4_splat(0xFF00_0000);
        // Two pixels (eight 16-bit channels) with their grey in every lane of the pixel.
        let mix = |c: v128, grey: v128| {
            let diff = i16x8_sub(c, grey);
            let lo = i32x4_shr(i32x4_add(i32x4_extmul_low_i16x8(diff, factor), round), 8);
            let hi = i32x4_shr(i32x4_add(i32x4_extmul_high_i16x8(diff, factor), round), 8);
            // Saturating: anything out of 0..=255 is clamped by the final narrow either way.
            i16x8_add_sat(grey, i16x8_narrow_i32x4(lo, hi))
        };
        for chunk in pixels[..n].chunks_exact_mut(16) {
            // SAFETY: the chunk is 16 bytes; loads and stores may be unaligned.
            unsafe {
                let v = v128_load(chunk.as_ptr() as *const v128);
                let (lo, hi) = (u16x8_extend_low_u8x16(v), u16x8_extend_high_u8x16(v));
                // 54r + 183g and 19b per pixel, summed pairwise, rounded: the luma of each pixel.
                let (dl, dh) = (i32x4_dot_i16x8(lo, weights), i32x4_dot_i16x8(hi, weights));
                let sums = i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(dl, dh), i32x4_shuffle::<1, 3, 5, 7>(dl, dh));
                let grey = u32x4_shr(i32x4_add(sums, round), 8);
                let grey_lo = i8x16_shuffle::<0, 1, 0, 1, 0, 1, 0, 1, 4, 5, 4, 5, 4, 5, 4, 5>(grey, grey);
                let grey_hi = i8x16_shuffle::<8, 9, 8, 9, 8, 9, 8, 9, 12, 13, 12, 13, 12, 13, 12, 13>(grey, grey);
                let out = u8x16_narrow_i16x8(mix(lo, grey_lo), mix(hi, grey_hi));
                v128_store(chunk.as_mut_ptr() as *mut v128, v128_bitselect(v, out, alpha));
            }
        }
        n
    }
}

/// The x86_64 SSE2 twin of the simd128 loop in `simd` (SSE2 is part of the x86_64 baseline): the same integer
/// operations, four pixels at a time, so native pixels equal wasm ones. Where SSE2 lacks a
/// simd128 instruction the equivalent sequence is noted.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use core::arch::x86_64::*;

    /// Returns how many leading bytes it did (a multiple of 16); `|s| <= 4096` so it fits i16.
    pub fn saturate(pixels: &mut [u8], s: i32) -> usize {
        let n = pixels.len() - pixels.len() % 16;
        // SAFETY: SSE2 is always present on x86_64; every load and store is of a 16-byte chunk
        // and unaligned.
        unsafe {
            let zero = _mm_setzero_si128();
            let weights = _mm_setr_epi16(54, 183, 19, 0, 54, 183, 19, 0);
            // diff * s + 128 as one multiply-add of (diff, 1) pairs by (s, 128) pairs: simd128's
            // extmul then add, exactly, in i32.
            let factor_round = _mm_unpacklo_epi16(_mm_set1_epi16(s as i16), _mm_set1_epi16(128));
            let ones = _mm_set1_epi16(1);
            let round = _mm_set1_epi32(128);
            let alpha = _mm_set1_epi32(0xFF00_0000u32 as i32);
            let mix = |c: __m128i, grey: __m128i| {
                let diff = _mm_sub_epi16(c, grey);
                let lo = _mm_srai_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(diff, ones), factor_round), 8);
                let hi = _mm_srai_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(diff, ones), factor_round), 8);
                _mm_adds_epi16(grey, _mm_packs_epi32(lo, hi))
            };
            // The luma of the two pixels in `half` (eight 16-bit channels), in every lane of its pixel.
            let grey_of = |half: __m128i| {
                // 54r + 183g and 19b per pixel, then the pair summed into the pixel's even lane.
                let dot = _mm_madd_epi16(half, weights);
                let sums = _mm_add_epi32(dot, _mm_srli_si128::<4>(dot));
                let grey = _mm_srli_epi32(_mm_add_epi32(sums, round), 8);
                // 16-bit lanes 0 and 4 hold the two greys: spread each over its pixel's four lanes.
                _mm_shufflehi_epi16::<0>(_mm_shufflelo_epi16::<0>(grey))
            };
            for chunk in pixels[..n].chunks_exact_mut(16) {
                let v = _mm_loadu_si128(chunk.as_ptr() as *const __m128i);
                let (lo, hi) = (_mm_unpacklo_epi8(v, zero), _mm_unpackhi_epi8(v, zero));
                let out = _mm_packus_epi16(mix(lo, grey_of(lo)), mix(hi, grey_of(hi)));
                // Alpha from the input, colour from `out`: simd128's bitselect.
                let kept = _mm_or_si128(_mm_and_si128(alpha, v), _mm_andnot_si128(alpha, out));
                _mm_storeu_si128(chunk.as_mut_ptr() as *mut __m128i, kept);
            }
        }
        n
    }
}

/// Rec. 709 luma on the stored (sRGB) values, weights summing to 256.
#[inline]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((54 * r as u32 + 183 * g as u32 + 19 * b as u32 + 128) >> 8) as u8
}

/// Run `grayscale`, in place: R = G = B = luma, alpha kept.
pub fn grayscale(mut image: Image) -> Result<Image, Error> {
    check_image(&image)?;
    for p in image.pixels.chunks_exact_mut(4) {
        let y = luma(p[0], p[1], p[2]);
        p[0] = y;
        p[1] = y;
        p[2] = y;
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{on_every_path, pattern, px};
    use atelier_sdk::Param;

    fn adjust_with(image: Image, params: &[Param]) -> Image {
        adjust(image, &AdjustOptions::from_args(&Args::new("adjust", params).unwrap())).unwrap()
    }

    #[test]
    fn neutral_adjust_is_identity() {
        let mut image = pattern(64, 48);
        image.pixels[3] = 17; // some alpha too
        assert_eq!(adjust_with(image.clone(), &[]).pixels, image.pixels);
        // Explicit neutral values, as the host passes them after filling defaults.
        let explicit = [
            Param::new("brightness", 1.0),
            Param::new("contrast", 1.0),
            Param::new("saturation", 1.0),
            Param::new("gamma", 1.0),
            Param::new("temperature", 0.0),
        ];
        assert_eq!(adjust_with(image.clone(), &explicit).pixels, image.pixels);
    }

    #[test]
    fn each_setting_moves_the_right_way() {
        let image = pattern(32, 32);
        let mean = |im: &Image, c: usize| im.pixels.chunks_exact(4).map(|p| p[c] as f64).sum::<f64>() / 1024.0;
        let brighter = adjust_with(image.clone(), &[Param::new("brightness", 1.3)]);
        assert!(mean(&brighter, 1) > mean(&image, 1));
        let warmer = adjust_with(image.clone(), &[Param::new("temperature", 0.5)]);
        assert!(mean(&warmer, 0) > mean(&image, 0) && mean(&warmer, 2) < mean(&image, 2));
        let lifted = adjust_with(image.clone(), &[Param::new("gamma", 2.0)]);
        assert!(mean(&lifted, 1) > mean(&image, 1));
        let flat = adjust_with(image.clone(), &[Param::new("contrast", 0.0)]);
        assert!(flat.pixels.chunks_exact(4).all(|p| p[..3] == [128, 128, 128]));
        let grey = adjust_with(image.clone(), &[Param::new("saturation", 0.0)]);
        assert!(grey.pixels.chunks_exact(4).all(|p| p[0] == p[1] && p[1] == p[2]));
        assert_eq!(px(&grey, 3, 3)[3], 255);
    }

    #[test]
    fn saturation_follows_the_fixed_point_formula() {
        let mut image = pattern(37, 11);
        image.pixels[11] = 40;
        on_every_path(|path| {
            for sat in [0.0, 0.5, 1.2, 4.0] {
                let out = adjust_with(image.clone(), &[Param::new("saturation", sat)]);
                let s = (sat * 256.0f64).round() as i32;
                for (o, p) in out.pixels.chunks_exact(4).zip(image.pixels.chunks_exact(4)) {
                    let grey = luma(p[0], p[1], p[2]) as i32;
                    let mix = |c: u8| (grey + ((c as i32 - grey) * s + 128).div_euclid(256)).clamp(0, 255) as u8;
                    assert_eq!(o, [mix(p[0]), mix(p[1]), mix(p[2]), p[3]], "saturation {sat}, {path}");
                }
            }
        });
    }

    #[test]
    fn grayscale_has_equal_channels_and_keeps_alpha() {
        let mut image = pattern(40, 30);
        image.pixels[7] = 99;
        let out = grayscale(image).unwrap();
        assert!(out.pixels.chunks_exact(4).all(|p| p[0] == p[1] && p[1] == p[2]));
        assert_eq!(out.pixels[7], 99);
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(0, 255, 0), 182);
    }
}
