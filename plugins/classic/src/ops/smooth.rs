//! Edge-preserving smoothing: the guided filter (He, Sun & Tang 2010), each channel guiding itself.
//! Flat regions get averaged over a `(2r+1)²` window while edges whose local variance is well above
//! `eps` survive. Built on box means, so it is O(pixels) whatever the radius.

use super::blur::box_mean;
use crate::raster::FloatImage;

/// Self-guided filter of one plane: `q = mean(a)·p + mean(b)` with `a = var/(var+eps)`, `b = (1-a)·mean`.
pub fn guided_self(p: &[f32], width: usize, height: usize, r: usize, eps: f32) -> Vec<f32> {
    let mean_p = box_mean(p, width, height, r);
    let sq: Vec<f32> = p.iter().map(|v| v * v).collect();
    let mean_pp = box_mean(&sq, width, height, r);
    let mut a = vec![0.0; p.len()];
    let mut b = vec![0.0; p.len()];
    for i in 0..p.len() {
        let var = (mean_pp[i] - mean_p[i] * mean_p[i]).max(0.0);
        a[i] = var / (var + eps);
        b[i] = (1.0 - a[i]) * mean_p[i];
    }
    let mean_a = box_mean(&a, width, height, r);
    let mean_b = box_mean(&b, width, height, r);
    (0..p.len()).map(|i| mean_a[i] * p[i] + mean_b[i]).collect()
}

/// Smooth every colour channel with the self-guided filter, `passes` times.
pub fn smooth_colors(img: &mut FloatImage, r: usize, eps: f32, passes: usize) {
    let (w, h) = (img.width, img.height);
    for plane in img.ch.iter_mut() {
        for _ in 0..passes {
            *plane = guided_self(plane, w, h, r, eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooths_noise_but_keeps_a_step() {
        let (w, h) = (40, 20);
        // A step from 0.2 to 0.8 at x = 20, plus a ±0.03 checker "noise".
        let p: Vec<f32> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let base = if x < 20 { 0.2 } else { 0.8 };
                base + if (x + y) % 2 == 0 { 0.03 } else { -0.03 }
            })
            .collect();
        let q = guided_self(&p, w, h, 3, 0.01);
        let row = 10 * w;
        // Noise is gone inside the flats...
        assert!((q[row + 5] - q[row + 6]).abs() < 0.02);
        // ...and the step is still a step.
        assert!(q[row + 18] < 0.3 && q[row + 21] > 0.7, "{} {}", q[row + 18], q[row + 21]);
    }
}
