//! Global colour and tone adjustments: sepia, black and white, white balance, brightness, contrast,
//! saturation and faded blacks. Each is a per-pixel curve or matrix; `amount` is 0 (no change) to 1.

use crate::raster::{luma, FloatImage};

/// The classic sepia matrix (as in CSS `sepia()`), blended with the original by `amount`.
pub fn sepia(img: &mut FloatImage, amount: f32) {
    img.map_rgb(|p| {
        let [r, g, b] = p;
        let s = [
            0.393 * r + 0.769 * g + 0.189 * b,
            0.349 * r + 0.686 * g + 0.168 * b,
            0.272 * r + 0.534 * g + 0.131 * b,
        ];
        [0, 1, 2].map(|i| (p[i] + (s[i].min(1.0) - p[i]) * amount).clamp(0.0, 1.0))
    });
}

/// Black and white: every channel set to luma.
pub fn monochrome(img: &mut FloatImage) {
    img.map_rgb(|[r, g, b]| {
        let l = luma(r, g, b);
        [l, l, l]
    });
}

/// White-balance shift in linear light: positive `amount` warms (more red, less blue), negative cools.
/// `amount` = 1 is a strong shift (red ×1.25, blue ×0.75).
pub fn white_balance(img: &mut FloatImage, amount: f32) {
    let gains = [1.0 + 0.25 * amount, 1.0 + 0.04 * amount, 1.0 - 0.25 * amount];
    let decode = srgb_decode_table();
    img.map_rgb(|p| [0, 1, 2].map(|c| linear_to_srgb(srgb_to_linear_fast(&decode, p[c]) * gains[c])));
}

/// Brightness as a gamma curve, so nothing clips: `amount` > 0 brightens, < 0 darkens (±1 = gamma 2).
pub fn brightness(img: &mut FloatImage, amount: f32) {
    let gamma = 2.0f32.powf(-amount);
    for plane in &mut img.ch {
        for v in plane.iter_mut() {
            *v = v.clamp(0.0, 1.0).powf(gamma);
        }
    }
}

/// Contrast as a normalised sigmoid S-curve through mid-grey, slope from `amount` (0 = none, 1 = strong).
pub fn contrast(img: &mut FloatImage, amount: f32) {
    if amount <= 0.0 {
        return;
    }
    let k = 10.0 * amount;
    let s = |x: f32| 1.0 / (1.0 + (-k * (x - 0.5)).exp());
    let (lo, hi) = (s(0.0), s(1.0));
    for plane in &mut img.ch {
        for v in plane.iter_mut() {
            *v = (s(v.clamp(0.0, 1.0)) - lo) / (hi - lo);
        }
    }
}

/// Scale colourfulness around each pixel's own grey by `factor` (1 = unchanged).
pub fn saturation(img: &mut FloatImage, factor: f32) {
    img.map_rgb(|[r, g, b]| {
        let l = luma(r, g, b);
        [r, g, b].map(|v| (l + (v - l) * factor).clamp(0.0, 1.0))
    });
}

/// Lift blacks and lower whites, as old prints fade: output range becomes `lift..=1-lift`.
pub fn fade(img: &mut FloatImage, lift: f32) {
    for plane in &mut img.ch {
        for v in plane.iter_mut() {
            *v = lift + *v * (1.0 - 2.0 * lift);
        }
    }
}

fn srgb_decode_table() -> Vec<f32> {
    (0..=1024).map(|i| srgb_to_linear(i as f32 / 1024.0)).collect()
}

fn srgb_to_linear_fast(table: &[f32], v: f32) -> f32 {
    let x = v.clamp(0.0, 1.0) * 1024.0;
    let i = (x as usize).min(1023);
    let t = x - i as f32;
    table[i] * (1.0 - t) + table[i + 1] * t
}

/// sRGB transfer function, decoding.
pub fn srgb_to_linear(v: f32) -> f32 {
    if v <= 0.04045 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
}

/// sRGB transfer function, encoding (clamps).
pub fn linear_to_srgb(v: f32) -> f32 {
    let v = v.clamp(0.0, 1.0);
    if v <= 0.0031308 { v * 12.92 } else { 1.055 * v.powf(1.0 / 2.4) - 0.055 }
}

/// Hue in degrees (0..360) and saturation (0..1) of an RGB triple, HSV-style.
pub fn hue_saturation(c: [f32; 3]) -> (f32, f32) {
    let max = c[0].max(c[1]).max(c[2]);
    let min = c[0].min(c[1]).min(c[2]);
    let d = max - min;
    if d <= 1e-6 {
        return (0.0, 0.0);
    }
    let h = if max == c[0] {
        60.0 * (((c[1] - c[2]) / d).rem_euclid(6.0))
    } else if max == c[1] {
        60.0 * ((c[2] - c[0]) / d + 2.0)
    } else {
        60.0 * ((c[0] - c[1]) / d + 4.0)
    };
    (h, d / max.max(1e-6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::Raster;

    fn ramp() -> FloatImage {
        FloatImage::from_raster(&Raster::from_fn(32, 8, |x, y| [(x * 8) as u8, (255 - x * 8) as u8, (y * 30) as u8, 255]))
    }

    #[test]
    fn sepia_hues_sit_in_the_sepia_range() {
        let mut img = ramp();
        sepia(&mut img, 1.0);
        let mut checked = 0;
        for i in 0..img.len() {
            let c = [img.ch[0][i], img.ch[1][i], img.ch[2][i]];
            let (h, s) = hue_saturation(c);
            if s > 0.05 && c[0] < 0.99 {
                assert!((25.0..=45.0).contains(&h), "hue {h} for {c:?}");
                checked += 1;
            }
        }
        assert!(checked > 100);
    }

    #[test]
    fn warm_raises_red_over_blue_and_cool_the_reverse() {
        let grey = || FloatImage::from_raster(&Raster::filled(4, 4, [128, 128, 128, 255]));
        let mut warm = grey();
        white_balance(&mut warm, 0.6);
        assert!(warm.ch[0][0] > 0.52 && warm.ch[2][0] < 0.48, "{:?}", (warm.ch[0][0], warm.ch[2][0]));
        let mut cool = grey();
        white_balance(&mut cool, -0.6);
        assert!(cool.ch[0][0] < 0.48 && cool.ch[2][0] > 0.52);
    }

    #[test]
    fn brightness_and_contrast_move_the_right_way() {
        let mut img = ramp();
        let before = img.clone();
        brightness(&mut img, 0.5);
        assert!((0..img.len()).all(|i| img.ch[0][i] >= before.ch[0][i]));
        let mut c = before.clone();
        contrast(&mut c, 0.6);
        // Dark gets darker, light gets lighter, the ends stay put.
        let x = |img: &FloatImage, col: usize| img.ch[0][col];
        assert!(x(&c, 6) < x(&before, 6) && x(&c, 26) > x(&before, 26));
        assert!(x(&c, 0).abs() < 1e-5);
    }
}
