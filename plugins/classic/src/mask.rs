//! Masks: white = edit. A mask pixel counts as "in" when its grey level is at least 128. The edit is
//! blended back with a feathered edge outside the mask: the edit's weight falls linearly from 1 on the
//! mask to 0 at `feather` px from it (exact Euclidean distance transform). Every pixel `feather` px or
//! more from the mask keeps the original bytes exactly; `feather = 0` means a hard edge.

use crate::raster::{to_byte, FloatImage, Raster};

/// A binary mask and the blend weight of every pixel.
#[derive(Clone, Debug)]
pub struct FeatheredMask {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Whether each pixel is inside the mask proper.
    pub inside: Vec<bool>,
    /// How much of the edit shows at each pixel, 0..=1 (1 inside, 0 beyond the feather band).
    pub weight: Vec<f32>,
}

impl FeatheredMask {
    /// Read a mask image (white = edit) and feather it by `feather` px outward.
    pub fn new(mask: &Raster, feather: usize) -> Self {
        let inside: Vec<bool> =
            mask.px.chunks_exact(4).map(|p| 299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32 >= 128_000).collect();
        Self::from_inside(mask.width, mask.height, inside, feather)
    }

    /// Feather an already binary mask.
    pub fn from_inside(width: usize, height: usize, inside: Vec<bool>, feather: usize) -> Self {
        let d2 = squared_distance_to(&inside, width, height);
        let weight = d2
            .iter()
            .map(|&d| {
                let d = d.sqrt();
                if d == 0.0 {
                    1.0
                } else if feather == 0 {
                    0.0
                } else {
                    (1.0 - d / feather as f32).max(0.0)
                }
            })
            .collect();
        FeatheredMask { width, height, inside, weight }
    }

    /// Whether the mask selects nothing.
    pub fn is_empty(&self) -> bool {
        !self.inside.iter().any(|&b| b)
    }

    /// The edit where the weight is 1, the original where it is 0 (byte for byte), a blend between.
    pub fn composite(&self, original: &Raster, edited: &Raster) -> Raster {
        self.blend(original, |i, c| edited.px[i * 4 + c])
    }

    /// [`FeatheredMask::composite`] of an edit still in float planes, with the same bytes as
    /// compositing `edited.to_raster()`, without that full-size copy.
    pub fn composite_planes(&self, original: &Raster, edited: &FloatImage) -> Raster {
        self.blend(original, |i, c| if c < 3 { to_byte(edited.ch[c][i]) } else { edited.alpha[i] })
    }

    /// The original with `edited(pixel, channel)` blended in by weight.
    fn blend(&self, original: &Raster, edited: impl Fn(usize, usize) -> u8) -> Raster {
        let mut out = original.clone();
        for (i, &w) in self.weight.iter().enumerate() {
            if w <= 0.0 {
                continue;
            }
            for c in 0..4 {
                let (a, b) = (original.px[i * 4 + c] as f32, edited(i, c) as f32);
                out.px[i * 4 + c] = (a + (b - a) * w + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
        out
    }
}

/// Squared Euclidean distance from every pixel to the nearest `true` pixel (Felzenszwalb &
/// Huttenlocher's linear-time transform, columns then rows). Far from everything = a large number.
pub fn squared_distance_to(seeds: &[bool], width: usize, height: usize) -> Vec<f32> {
    const FAR: f32 = 1e12;
    let mut grid: Vec<f32> = seeds.iter().map(|&s| if s { 0.0 } else { FAR }).collect();
    let mut line = vec![0.0; width.max(height)];
    let mut out = vec![0.0; width.max(height)];
    for x in 0..width {
        for y in 0..height {
            line[y] = grid[y * width + x];
        }
        distance_1d(&line[..height], &mut out[..height]);
        for y in 0..height {
            grid[y * width + x] = out[y];
        }
    }
    for y in 0..height {
        line[..width].copy_from_slice(&grid[y * width..(y + 1) * width]);
        distance_1d(&line[..width], &mut out[..width]);
        grid[y * width..(y + 1) * width].copy_from_slice(&out[..width]);
    }
    grid
}

/// One-dimensional squared distance transform of sampled function `f` (lower envelope of parabolas).
fn distance_1d(f: &[f32], d: &mut [f32]) {
    let n = f.len();
    if n == 0 {
        return;
    }
    let mut v = vec![0usize; n];
    let mut z = vec![0.0f64; n + 1];
    let mut k = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    let cross = |q: usize, p: usize| {
        ((f[q] as f64 + (q * q) as f64) - (f[p] as f64 + (p * p) as f64)) / (2.0 * q as f64 - 2.0 * p as f64)
    };
    for q in 1..n {
        let mut s = cross(q, v[k]);
        // z[0] is -inf, so this stops at k = 0 at the latest.
        while s <= z[k] {
            k -= 1;
            s = cross(q, v[k]);
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        *dq = ((q as f64 - p as f64).powi(2) + f[p] as f64) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_transform_matches_brute_force() {
        let (w, h) = (23, 17);
        let seeds: Vec<bool> = (0..w * h).map(|i| i % 37 == 5 || i == 100).collect();
        let d = squared_distance_to(&seeds, w, h);
        for y in 0..h {
            for x in 0..w {
                let mut best = f32::MAX;
                for (j, &s) in seeds.iter().enumerate() {
                    if s {
                        let (sx, sy) = ((j % w) as f32, (j / w) as f32);
                        best = best.min((sx - x as f32).powi(2) + (sy - y as f32).powi(2));
                    }
                }
                assert!((d[y * w + x] - best).abs() < 1e-3, "({x},{y}) {} vs {best}", d[y * w + x]);
            }
        }
    }

    #[test]
    fn composite_is_byte_identical_outside_mask_and_feather() {
        let (w, h) = (60, 40);
        let mask = Raster::from_fn(w, h, |x, y| if (20..30).contains(&x) && (10..20).contains(&y) { [255; 4] } else { [0, 0, 0, 255] });
        let original = Raster::from_fn(w, h, |x, y| [(x * 3) as u8, (y * 5) as u8, 77, 255]);
        let edited = Raster::filled(w, h, [250, 10, 10, 255]);
        let m = FeatheredMask::new(&mask, 5);
        let out = m.composite(&original, &edited);
        for y in 0..h {
            for x in 0..w {
                let dx = if x < 20 { 20 - x } else { x.saturating_sub(29) };
                let dy = if y < 10 { 10 - y } else { y.saturating_sub(19) };
                let d = ((dx * dx + dy * dy) as f32).sqrt();
                if d == 0.0 {
                    assert_eq!(out.get(x, y), edited.get(x, y));
                } else if d >= 5.0 {
                    assert_eq!(out.get(x, y), original.get(x, y), "({x},{y}) changed outside the band");
                } else {
                    assert_ne!(out.get(x, y), original.get(x, y), "({x},{y}) in the band should blend");
                }
            }
        }
        // From float planes: the very same bytes, without the 8-bit copy.
        let planes = FloatImage::from_raster(&edited);
        assert_eq!(m.composite_planes(&original, &planes), out);
    }
}
