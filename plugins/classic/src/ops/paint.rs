//! Painterly styles: watercolour (edge-preserving washes, pigment pooling at edges, seeded paper and
//! turbulence textures) and oil painting (Kuwahara patches plus seeded brush-stroke relief).

use super::kuwahara::kuwahara;
use super::noise::{grain_plane, stroke_texture, SeededRng};
use super::quantize::{palette_for, remap};
use super::smooth::smooth_colors;
use super::{blur, detail_scale, tone};
use crate::raster::FloatImage;

/// Watercolour after Bousseau et al. 2006: abstract into washes (guided filter, then a soft pull
/// toward a 24-colour palette so washes get boundaries), wobble the boundaries with a low-frequency
/// displacement, then vary pigment density with edge darkening, turbulence and paper grain, and
/// lighten toward the paper. All three textures come from the seed.
pub fn watercolor(img: &mut FloatImage, strength: f32, rng: &mut SeededRng) {
    let (w, h) = (img.width, img.height);
    let scale = detail_scale(img);
    let radius = ((3.0 + 5.0 * strength) * scale).round().max(1.0) as usize;
    smooth_colors(img, radius, 0.004 + 0.02 * strength, 2);
    let mut washes = img.clone();
    let palette = palette_for(&washes, 24);
    remap(&mut washes, &palette, &palette);
    for c in 0..3 {
        for i in 0..img.len() {
            img.ch[c][i] = 0.35 * img.ch[c][i] + 0.65 * washes.ch[c][i];
        }
    }
    wobble(img, 2.0 * scale, 10.0 * scale, rng);

    let soft = blur::gaussian(&img.luma(), w, h, 1.2 * scale);
    let turbulence = grain_plane(w, h, 14.0 * scale, rng);
    let paper = grain_plane(w, h, 0.8, rng);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let gx = soft[y * w + (x + 1).min(w - 1)] - soft[y * w + x.saturating_sub(1)];
            let gy = soft[(y + 1).min(h - 1) * w + x] - soft[y.saturating_sub(1) * w + x];
            let edge = ((gx * gx + gy * gy).sqrt() * 8.0).min(1.0);
            // Density > 1 means more pigment: darker where it pools at edges and in turbulent blotches.
            let density = 1.0 + 1.2 * edge + 0.2 * turbulence[i] + 0.1 * paper[i];
            for c in 0..3 {
                let v = img.ch[c][i];
                let pigmented = v - (v - v * v) * (density - 1.0);
                img.ch[c][i] = (0.14 + 0.86 * pigmented).clamp(0.0, 1.0);
            }
        }
    }
    tone::saturation(img, 1.1);
}

/// Displace every pixel by a smooth random field of `amplitude` px (feature size `sigma` px), with
/// bilinear sampling, so straight boundaries become hand-made.
fn wobble(img: &mut FloatImage, amplitude: f32, sigma: f32, rng: &mut SeededRng) {
    let (w, h) = (img.width, img.height);
    let dx = grain_plane(w, h, sigma, rng);
    let dy = grain_plane(w, h, sigma, rng);
    let src = img.clone();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let sx = (x as f32 + amplitude * dx[i]).clamp(0.0, (w - 1) as f32);
            let sy = (y as f32 + amplitude * dy[i]).clamp(0.0, (h - 1) as f32);
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
            for c in 0..3 {
                let p = &src.ch[c];
                let top = p[y0 * w + x0] * (1.0 - fx) + p[y0 * w + x1] * fx;
                let bottom = p[y1 * w + x0] * (1.0 - fx) + p[y1 * w + x1] * fx;
                img.ch[c][i] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
}

/// Oil painting: a Kuwahara filter whose radius grows with `strength`, slightly richer colour and a
/// brush-stroke relief in one seeded direction.
pub fn oil_painting(img: &mut FloatImage, strength: f32, rng: &mut SeededRng) {
    let scale = detail_scale(img);
    let radius = ((2.0 + 5.0 * strength) * scale).round().max(1.0) as usize;
    *img = kuwahara(img, radius);
    let angle = rng.range(0.0, std::f32::consts::PI);
    let strokes = stroke_texture(img.width, img.height, angle, radius + 2, rng);
    let relief = 0.015 + 0.025 * strength;
    for (i, s) in strokes.iter().enumerate() {
        let k = 1.0 + relief * s.clamp(-2.0, 2.0);
        for c in 0..3 {
            img.ch[c][i] = (img.ch[c][i] * k).clamp(0.0, 1.0);
        }
    }
    tone::saturation(img, 1.15);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::noise::purpose;
    use crate::raster::Raster;

    fn scene() -> FloatImage {
        FloatImage::from_raster(&Raster::from_fn(80, 60, |x, y| {
            let n = ((x * 7 + y * 13) % 9) as u8 * 3;
            if x < 40 { [40 + n, 90 + n, 160, 255] } else { [220, 180 + n, 60 + n, 255] }
        }))
    }

    #[test]
    fn watercolor_is_lighter_and_seed_dependent() {
        let base = scene();
        let mut a = base.clone();
        let mut b = base.clone();
        watercolor(&mut a, 0.6, &mut SeededRng::new(1, purpose::PAPER));
        watercolor(&mut b, 0.6, &mut SeededRng::new(2, purpose::PAPER));
        assert_ne!(a.to_raster(), b.to_raster());
        // Dark blues get lifted toward paper.
        assert!(a.ch[2][30 * 80 + 10] >= base.ch[2][30 * 80 + 10] - 0.05);
        assert!(a.luma()[30 * 80 + 10] > base.luma()[30 * 80 + 10]);
    }

    #[test]
    fn oil_painting_keeps_halves_apart() {
        let mut img = scene();
        oil_painting(&mut img, 0.5, &mut SeededRng::new(1, purpose::STROKES));
        let l = img.luma();
        assert!(l[30 * 80 + 36] < 0.5 && l[30 * 80 + 43] > 0.6);
    }
}
