//! Photographic effects: seeded film grain and a lens vignette.

use super::noise::{grain_plane, SeededRng};
use crate::raster::{luma, smoothstep, FloatImage};

/// Add monochrome film grain of strength `amount` (0..1; 1 ≈ ±12 % at mid-grey), clumped to
/// `size` px. Grain is strongest in the mid-tones and fades toward pure black and white, as on film.
pub fn film_grain(img: &mut FloatImage, amount: f32, size: f32, rng: &mut SeededRng) {
    let noise = grain_plane(img.width, img.height, size, rng);
    for (i, n) in noise.iter().enumerate() {
        let l = luma(img.ch[0][i], img.ch[1][i], img.ch[2][i]);
        let midtone = 0.25 + 3.0 * l * (1.0 - l);
        let d = n * amount * 0.12 * midtone;
        for c in 0..3 {
            img.ch[c][i] = (img.ch[c][i] + d).clamp(0.0, 1.0);
        }
    }
}

/// Darken toward the corners: full brightness inside 35 % of the half-diagonal (elliptical, following
/// the frame), falling smoothly to `1 - amount` at the corners.
pub fn vignette(img: &mut FloatImage, amount: f32) {
    let (w, h) = (img.width as f32, img.height as f32);
    let (cx, cy) = ((w - 1.0) / 2.0, (h - 1.0) / 2.0);
    for y in 0..img.height {
        for x in 0..img.width {
            let dx = (x as f32 - cx) / (w / 2.0).max(1.0);
            let dy = (y as f32 - cy) / (h / 2.0).max(1.0);
            let d = (dx * dx + dy * dy).sqrt() / std::f32::consts::SQRT_2;
            let k = 1.0 - amount * smoothstep(0.35, 1.0, d);
            let i = y * img.width + x;
            for c in 0..3 {
                img.ch[c][i] *= k;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::noise::purpose;
    use crate::raster::Raster;

    fn grey() -> FloatImage {
        FloatImage::from_raster(&Raster::filled(40, 30, [128, 128, 128, 255]))
    }

    #[test]
    fn grain_is_seeded_and_has_the_promised_strength() {
        let mut a = grey();
        let mut b = grey();
        let mut c = grey();
        film_grain(&mut a, 0.5, 0.8, &mut SeededRng::new(1, purpose::GRAIN));
        film_grain(&mut b, 0.5, 0.8, &mut SeededRng::new(1, purpose::GRAIN));
        film_grain(&mut c, 0.5, 0.8, &mut SeededRng::new(2, purpose::GRAIN));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.ch[0].iter().sum::<f32>() / a.len() as f32;
        let sd = (a.ch[0].iter().map(|v| (v - mean).powi(2)).sum::<f32>() / a.len() as f32).sqrt();
        assert!((mean - 128.0 / 255.0).abs() < 0.01);
        assert!((0.04..0.08).contains(&sd), "sd {sd}");
    }

    #[test]
    fn vignette_darkens_corners_not_centre() {
        let mut img = grey();
        vignette(&mut img, 0.6);
        let centre = img.ch[0][15 * 40 + 20];
        let corner = img.ch[0][0];
        assert!((centre - 128.0 / 255.0).abs() < 1e-4);
        assert!(corner < 0.5 * centre, "corner {corner}");
    }
}
