//! Linear-time blurs on one float plane: sliding-sum box filters, and Gaussians built from them.
//! Borders clamp to the edge pixel, so flat images stay exactly flat.

/// Mean over a `(2r+1) x (2r+1)` window, separable, O(pixels) whatever the radius. Both passes
/// walk memory row by row (the vertical one keeps a running sum per column), so it stays cache-friendly.
pub fn box_mean(src: &[f32], width: usize, height: usize, r: usize) -> Vec<f32> {
    if r == 0 || src.is_empty() {
        return src.to_vec();
    }
    let norm = 1.0 / (2 * r + 1) as f32;
    let mut rows = vec![0.0; src.len()];
    for y in 0..height {
        sliding_mean(&src[y * width..(y + 1) * width], r, &mut rows[y * width..(y + 1) * width]);
    }
    let row = |y: isize| {
        let y = y.clamp(0, height as isize - 1) as usize;
        &rows[y * width..(y + 1) * width]
    };
    let mut sums = vec![0.0f32; width];
    for dy in -(r as isize)..=r as isize {
        for (s, v) in sums.iter_mut().zip(row(dy)) {
            *s += v;
        }
    }
    let mut out = vec![0.0; src.len()];
    for y in 0..height {
        for (o, s) in out[y * width..(y + 1) * width].iter_mut().zip(&sums) {
            *o = s * norm;
        }
        let (add, sub) = (row(y as isize + r as isize + 1), row(y as isize - r as isize));
        for ((s, a), b) in sums.iter_mut().zip(add).zip(sub) {
            *s += a - b;
        }
    }
    out
}

/// One-dimensional clamped-edge moving average of radius `r`.
fn sliding_mean(src: &[f32], r: usize, dst: &mut [f32]) {
    let n = src.len();
    let last = n as isize - 1;
    let at = |i: isize| src[i.clamp(0, last) as usize];
    let mut sum: f32 = (-(r as isize)..=r as isize).map(at).sum();
    let norm = 1.0 / (2 * r + 1) as f32;
    for (i, d) in dst.iter_mut().enumerate() {
        *d = sum * norm;
        let i = i as isize;
        sum += at(i + r as isize + 1) - at(i - r as isize);
    }
}

/// Gaussian blur of standard deviation `sigma`: an exact separable kernel for small sigmas,
/// three successive box filters (the usual O(pixels) approximation) for larger ones.
pub fn gaussian(src: &[f32], width: usize, height: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 || src.is_empty() {
        return src.to_vec();
    }
    if sigma <= 2.5 {
        return gaussian_exact(src, width, height, sigma);
    }
    let mut out = src.to_vec();
    for r in box_radii_for_gaussian(sigma) {
        out = box_mean(&out, width, height, r);
    }
    out
}

/// Radii of three box filters whose succession approximates a Gaussian (Kovesi's method).
fn box_radii_for_gaussian(sigma: f32) -> [usize; 3] {
    let n = 3.0f32;
    let w_ideal = (12.0 * sigma * sigma / n + 1.0).sqrt();
    let mut wl = w_ideal.floor() as i64;
    if wl % 2 == 0 {
        wl -= 1;
    }
    let wu = wl + 2;
    let m_ideal = (12.0 * sigma * sigma - n * (wl * wl) as f32 - 4.0 * n * wl as f32 - 3.0 * n) / (-4.0 * wl as f32 - 4.0);
    let m = m_ideal.round() as i64;
    let mut radii = [0usize; 3];
    for (i, r) in radii.iter_mut().enumerate() {
        let w = if (i as i64) < m { wl } else { wu };
        *r = ((w - 1) / 2).max(0) as usize;
    }
    radii
}

fn gaussian_exact(src: &[f32], width: usize, height: usize, sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil() as isize;
    let mut k: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    let (w, h) = (width as isize, height as isize);
    let mut tmp = vec![0.0; src.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let xx = (x + j as isize - r).clamp(0, w - 1);
                acc += kv * src[(y * w + xx) as usize];
            }
            tmp[(y * w + x) as usize] = acc;
        }
    }
    let mut out = vec![0.0; src.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (j, kv) in k.iter().enumerate() {
                let yy = (y + j as isize - r).clamp(0, h - 1);
                acc += kv * tmp[(yy * w + x) as usize];
            }
            out[(y * w + x) as usize] = acc;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_mean_matches_brute_force_and_keeps_flat_flat() {
        let (w, h) = (9, 7);
        let src: Vec<f32> = (0..w * h).map(|i| ((i * 37) % 11) as f32).collect();
        let fast = box_mean(&src, w, h, 2);
        for y in 0..h as isize {
            for x in 0..w as isize {
                let mut s = 0.0;
                for dy in -2..=2isize {
                    for dx in -2..=2isize {
                        let xx = (x + dx).clamp(0, w as isize - 1);
                        let yy = (y + dy).clamp(0, h as isize - 1);
                        s += src[(yy * w as isize + xx) as usize];
                    }
                }
                assert!((fast[(y * w as isize + x) as usize] - s / 25.0).abs() < 1e-4);
            }
        }
        let flat = vec![0.25; 30];
        assert!(gaussian(&flat, 6, 5, 4.0).iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn gaussian_spreads_an_impulse_with_the_right_width() {
        let (w, h) = (61, 61);
        let mut src = vec![0.0; w * h];
        src[30 * w + 30] = 1.0;
        for sigma in [1.5f32, 5.0] {
            let out = gaussian(&src, w, h, sigma);
            let total: f32 = out.iter().sum();
            assert!((total - 1.0).abs() < 1e-3);
            let var: f32 = (0..w).map(|x| out[30 * w + x] * ((x as f32 - 30.0).powi(2))).sum::<f32>()
                / (0..w).map(|x| out[30 * w + x]).sum::<f32>();
            assert!((var.sqrt() - sigma).abs() < 0.25 * sigma, "sigma {sigma} measured {}", var.sqrt());
        }
    }
}
