//! Palette quantisation: median cut (Heckbert 1982) refined by a few k-means (Lloyd) steps, then
//! every pixel mapped to its nearest palette colour. Used by posterize, pop art, cartoon and pixel art.

use super::noise::SeededRng;
use crate::raster::{luma, FloatImage};

/// Most pixels looked at when building a palette; larger images are sampled on a regular stride.
const MAX_SAMPLES: usize = 1 << 16;

/// A palette of up to `k` colours that represents `img` well.
pub fn palette_for(img: &FloatImage, k: usize) -> Vec<[f32; 3]> {
    let n = img.len();
    let step = n.div_ceil(MAX_SAMPLES).max(1);
    let samples: Vec<[f32; 3]> = (0..n).step_by(step).map(|i| [img.ch[0][i], img.ch[1][i], img.ch[2][i]]).collect();
    let mut palette = median_cut(&samples, k);
    kmeans_refine(&samples, &mut palette, 4);
    palette
}

/// Median cut: split the box with the widest channel range at its median until there are `k` boxes;
/// each box's mean is a palette colour.
pub fn median_cut(samples: &[[f32; 3]], k: usize) -> Vec<[f32; 3]> {
    if samples.is_empty() || k == 0 {
        return vec![];
    }
    let mut boxes: Vec<Vec<[f32; 3]>> = vec![samples.to_vec()];
    while boxes.len() < k {
        // The box with the widest spread on any channel, weighted by its population.
        let mut best: Option<(usize, usize, f32)> = None;
        for (bi, b) in boxes.iter().enumerate() {
            if b.len() < 2 {
                continue;
            }
            for c in 0..3 {
                let (lo, hi) = b.iter().fold((f32::MAX, f32::MIN), |(lo, hi), p| (lo.min(p[c]), hi.max(p[c])));
                let score = (hi - lo) * (b.len() as f32).sqrt();
                if hi > lo && best.is_none_or(|(_, _, s)| score > s) {
                    best = Some((bi, c, score));
                }
            }
        }
        let Some((bi, c, _)) = best else { break };
        let mut b = boxes.swap_remove(bi);
        b.sort_by(|p, q| p[c].total_cmp(&q[c]));
        let upper = b.split_off(b.len() / 2);
        boxes.push(b);
        boxes.push(upper);
    }
    boxes.iter().map(|b| mean(b)).collect()
}

fn mean(points: &[[f32; 3]]) -> [f32; 3] {
    let mut s = [0.0f64; 3];
    for p in points {
        for c in 0..3 {
            s[c] += p[c] as f64;
        }
    }
    let n = points.len().max(1) as f64;
    [(s[0] / n) as f32, (s[1] / n) as f32, (s[2] / n) as f32]
}

/// Lloyd iterations: move every palette colour to the mean of the samples nearest to it.
fn kmeans_refine(samples: &[[f32; 3]], palette: &mut [[f32; 3]], iterations: usize) {
    for _ in 0..iterations {
        let mut sums = vec![[0.0f64; 4]; palette.len()];
        for p in samples {
            let j = nearest(palette, *p);
            for c in 0..3 {
                sums[j][c] += p[c] as f64;
            }
            sums[j][3] += 1.0;
        }
        for (col, s) in palette.iter_mut().zip(&sums) {
            if s[3] > 0.0 {
                *col = [(s[0] / s[3]) as f32, (s[1] / s[3]) as f32, (s[2] / s[3]) as f32];
            }
        }
    }
}

/// Index of the palette colour nearest to `p` (squared RGB distance; first wins ties).
pub fn nearest(palette: &[[f32; 3]], p: [f32; 3]) -> usize {
    let mut best = (f32::MAX, 0);
    for (j, q) in palette.iter().enumerate() {
        let d = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2);
        if d < best.0 {
            best = (d, j);
        }
    }
    best.1
}

/// Replace every pixel by the nearest colour of `palette`. The colour chosen is looked up with the
/// original colours, then written from `shown` (the same palette, possibly recoloured).
pub fn remap(img: &mut FloatImage, palette: &[[f32; 3]], shown: &[[f32; 3]]) {
    img.map_rgb(|p| shown[nearest(palette, p)]);
}

/// Posterize: reduce `img` to `k` representative colours, each nudged by up to ±`jitter` per channel
/// (different per seed, so variations differ while staying faithful).
pub fn posterize(img: &mut FloatImage, k: usize, jitter: f32, rng: &mut SeededRng) {
    let palette = palette_for(img, k);
    let shown: Vec<[f32; 3]> = palette
        .iter()
        .map(|c| [0, 1, 2].map(|i| (c[i] + rng.range(-jitter, jitter)).clamp(0.0, 1.0)))
        .collect();
    remap(img, &palette, &shown);
}

/// Pop art: a few flat colours, pushed to full saturation and hue-rotated by a seeded angle, the way a
/// screen print re-inks the same picture in different colour sets.
pub fn pop_art(img: &mut FloatImage, k: usize, rng: &mut SeededRng) {
    // Flatten first, so the print has big areas of ink rather than speckle.
    let radius = (3.0 * super::detail_scale(img)).round().max(1.0) as usize;
    super::smooth::smooth_colors(img, radius, 0.01, 2);
    let palette = palette_for(img, k);
    let angle = rng.range(0.0, std::f32::consts::TAU);
    let shown: Vec<[f32; 3]> = palette.iter().map(|&c| saturate(hue_rotate(c, angle), 1.8)).collect();
    remap(img, &palette, &shown);
}

/// Rotate a colour's hue by `angle` radians around the grey axis (luma-preserving matrix).
pub fn hue_rotate(c: [f32; 3], angle: f32) -> [f32; 3] {
    let (cos, sin) = (angle.cos(), angle.sin());
    // The standard hue-rotation matrix (as in SVG feColorMatrix type="hueRotate").
    let m = [
        [0.213 + cos * 0.787 - sin * 0.213, 0.715 - cos * 0.715 - sin * 0.715, 0.072 - cos * 0.072 + sin * 0.928],
        [0.213 - cos * 0.213 + sin * 0.143, 0.715 + cos * 0.285 + sin * 0.140, 0.072 - cos * 0.072 - sin * 0.283],
        [0.213 - cos * 0.213 - sin * 0.787, 0.715 - cos * 0.715 + sin * 0.715, 0.072 + cos * 0.928 + sin * 0.072],
    ];
    [0, 1, 2].map(|r| (m[r][0] * c[0] + m[r][1] * c[1] + m[r][2] * c[2]).clamp(0.0, 1.0))
}

/// Scale a colour's distance from its own grey by `factor`.
pub fn saturate(c: [f32; 3], factor: f32) -> [f32; 3] {
    let l = luma(c[0], c[1], c[2]);
    c.map(|v| (l + (v - l) * factor).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::Raster;
    use std::collections::BTreeSet;

    fn colourful() -> FloatImage {
        FloatImage::from_raster(&Raster::from_fn(64, 48, |x, y| {
            [(x * 4) as u8, (y * 5) as u8, ((x * y) % 256) as u8, 255]
        }))
    }

    #[test]
    fn posterize_leaves_at_most_k_colours() {
        for k in [2usize, 5, 8] {
            let mut img = colourful();
            posterize(&mut img, k, 0.03, &mut SeededRng::new(1, 3));
            let colours: BTreeSet<[u8; 3]> = img.to_raster().px.chunks(4).map(|p| [p[0], p[1], p[2]]).collect();
            assert!(colours.len() <= k && colours.len() >= 2, "k={k}: {} colours", colours.len());
        }
    }

    #[test]
    fn median_cut_finds_well_separated_clusters() {
        let mut samples = vec![];
        for i in 0..50 {
            let d = i as f32 * 0.001;
            samples.push([0.1 + d, 0.1, 0.1]);
            samples.push([0.9, 0.2 + d, 0.2]);
            samples.push([0.2, 0.3, 0.9 - d]);
        }
        let mut p = median_cut(&samples, 3);
        kmeans_refine(&samples, &mut p, 3);
        for target in [[0.1, 0.1, 0.1], [0.9, 0.2, 0.2], [0.2, 0.3, 0.9]] {
            let j = nearest(&p, target);
            assert!((0..3).all(|c| (p[j][c] - target[c]).abs() < 0.06), "{:?} vs {target:?}", p[j]);
        }
    }

    #[test]
    fn hue_rotation_by_zero_is_identity_and_keeps_grey() {
        let c = [0.3, 0.6, 0.2];
        let r = hue_rotate(c, 0.0);
        assert!((0..3).all(|i| (r[i] - c[i]).abs() < 1e-5));
        let g = hue_rotate([0.5, 0.5, 0.5], 2.0);
        assert!((0..3).all(|i| (g[i] - 0.5).abs() < 1e-3));
    }
}
