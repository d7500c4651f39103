//! Seeded randomness: a ChaCha8 stream per purpose, Gaussian samples, film-style noise planes and
//! directional "brush stroke" textures. Everything here is a pure function of the seed, so the same
//! seed reproduces the same bytes on every platform.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use super::blur;

/// A reproducible random stream for one purpose of one variation.
pub struct SeededRng(ChaCha8Rng);

impl SeededRng {
    /// The stream for `seed`, separated by `purpose` so adding a use never shifts another's numbers.
    pub fn new(seed: u64, purpose: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(purpose);
        SeededRng(rng)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f32 {
        (self.0.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.0.next_u32() >> 8) as f32 + 0.5) / (1u32 << 24) as f32;
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
}

/// Purposes, one random stream each.
pub mod purpose {
    /// Film grain pixels.
    pub const GRAIN: u64 = 1;
    /// Brush/pencil stroke textures.
    pub const STROKES: u64 = 2;
    /// Palette jitter for quantising styles.
    pub const PALETTE: u64 = 3;
    /// Amount jitter for tonal adjustments.
    pub const AMOUNTS: u64 = 4;
    /// Paper and pigment textures.
    pub const PAPER: u64 = 5;
    /// Texture re-synthesis in inpainted areas.
    pub const INPAINT: u64 = 6;
    /// Camera path jitter for videos.
    pub const CAMERA: u64 = 7;
    /// Pixel-art grid phase.
    pub const GRID: u64 = 8;
}

/// White Gaussian noise, blurred to a grain size of `sigma` px and renormalised to unit deviation.
pub fn grain_plane(width: usize, height: usize, sigma: f32, rng: &mut SeededRng) -> Vec<f32> {
    let white: Vec<f32> = (0..width * height).map(|_| rng.normal()).collect();
    let mut soft = blur::gaussian(&white, width, height, sigma);
    normalise(&mut soft);
    soft
}

/// Strokes: white noise smeared along one direction (`angle` radians) over `length` px, so it reads as
/// parallel brush or pencil marks. Zero mean, unit deviation. Long strokes are computed on a coarser
/// grid (at most 8 taps each way) and bilinearly enlarged, so the cost stays O(pixels · 17).
pub fn stroke_texture(width: usize, height: usize, angle: f32, length: usize, rng: &mut SeededRng) -> Vec<f32> {
    let cell = (length / 8).max(1);
    let (sw, sh) = (width.div_ceil(cell), height.div_ceil(cell));
    let steps = (length / cell).max(1) as isize;
    let white: Vec<f32> = (0..sw * sh).map(|_| rng.uniform() - 0.5).collect();
    let offsets: Vec<(isize, isize)> =
        (-steps..=steps).map(|t| ((angle.cos() * t as f32).round() as isize, (angle.sin() * t as f32).round() as isize)).collect();
    let (w, h) = (sw as isize, sh as isize);
    let mut small = vec![0.0; sw * sh];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for &(dx, dy) in &offsets {
                acc += white[((y + dy).clamp(0, h - 1) * w + (x + dx).clamp(0, w - 1)) as usize];
            }
            small[(y * w + x) as usize] = acc;
        }
    }
    let mut out = if cell == 1 { small } else { enlarge(&small, sw, sh, width, height, cell) };
    normalise(&mut out);
    out
}

/// Bilinear enlargement of a coarse `sw x sh` plane by `cell` to `width x height`.
fn enlarge(small: &[f32], sw: usize, sh: usize, width: usize, height: usize, cell: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        let fy = ((y as f32 + 0.5) / cell as f32 - 0.5).max(0.0);
        let (y0, ty) = ((fy as usize).min(sh - 1), fy.fract());
        let y1 = (y0 + 1).min(sh - 1);
        for x in 0..width {
            let fx = ((x as f32 + 0.5) / cell as f32 - 0.5).max(0.0);
            let (x0, tx) = ((fx as usize).min(sw - 1), fx.fract());
            let x1 = (x0 + 1).min(sw - 1);
            let top = small[y0 * sw + x0] * (1.0 - tx) + small[y0 * sw + x1] * tx;
            let bottom = small[y1 * sw + x0] * (1.0 - tx) + small[y1 * sw + x1] * tx;
            out.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    out
}

/// Shift and scale a plane to zero mean and unit standard deviation (left alone when flat).
pub fn normalise(v: &mut [f32]) {
    if v.is_empty() {
        return;
    }
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt();
    if sd < 1e-9 {
        return;
    }
    for x in v.iter_mut() {
        *x = ((*x as f64 - mean) / sd) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_other_seed_other_numbers() {
        let a: Vec<u32> = { let mut r = SeededRng::new(7, purpose::GRAIN); (0..8).map(|_| r.0.next_u32()).collect() };
        let b: Vec<u32> = { let mut r = SeededRng::new(7, purpose::GRAIN); (0..8).map(|_| r.0.next_u32()).collect() };
        let c: Vec<u32> = { let mut r = SeededRng::new(8, purpose::GRAIN); (0..8).map(|_| r.0.next_u32()).collect() };
        let d: Vec<u32> = { let mut r = SeededRng::new(7, purpose::STROKES); (0..8).map(|_| r.0.next_u32()).collect() };
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn normal_samples_have_unit_variance() {
        let mut r = SeededRng::new(1, 0);
        let xs: Vec<f32> = (0..20000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / xs.len() as f32;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
    }

    #[test]
    fn strokes_are_correlated_along_their_direction_only() {
        let (w, h) = (64, 64);
        let t = stroke_texture(w, h, 0.0, 6, &mut SeededRng::new(3, purpose::STROKES));
        let corr = |dx: usize, dy: usize| {
            let mut s = 0.0;
            let mut n = 0.0;
            for y in 8..h - 8 {
                for x in 8..w - 8 {
                    s += t[y * w + x] * t[(y + dy) * w + x + dx];
                    n += 1.0;
                }
            }
            s / n
        };
        assert!(corr(2, 0) > 0.6, "along: {}", corr(2, 0));
        assert!(corr(0, 2).abs() < 0.2, "across: {}", corr(0, 2));
    }
}
