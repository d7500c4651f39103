//! Object removal by inpainting: Telea's fast marching method (A. Telea, "An Image Inpainting Technique
//! Based on the Fast Marching Method", 2004), then grain matching.
//!
//! The hole is filled from its boundary inward in order of arrival time `T` (the distance to the
//! boundary, solved by fast marching). Each new pixel is a weighted average of first-order estimates
//! `I(q) + ∇I(q)·(p−q)` from already known pixels `q` within `radius`, weighted by direction (along
//! the normal of the front), distance, and level-set closeness. Telea's fill is smooth; natural
//! images have grain, so afterwards seeded noise with the high-frequency deviation measured in a
//! ring around the hole is added inside it, so the patch does not look smeared.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::mask::squared_distance_to;
use crate::ops::blur::gaussian;
use crate::ops::noise::SeededRng;
use crate::raster::Raster;

const KNOWN: u8 = 0;
const BAND: u8 = 1;
const INSIDE: u8 = 2;
const FAR_TIME: f32 = 1.0e6;

/// Fill the pixels where `hole` is true (all four channels), then re-add matching grain.
pub fn remove(img: &Raster, hole: &[bool], radius: usize, rng: &mut SeededRng) -> Result<Raster, String> {
    let filled = telea(img, hole, radius)?;
    Ok(match_grain(img, &filled, hole, radius, rng))
}

/// Telea's fast-marching inpainting of the `hole` pixels of `img`.
pub fn telea(img: &Raster, hole: &[bool], radius: usize) -> Result<Raster, String> {
    let (w, h) = (img.width, img.height);
    assert_eq!(hole.len(), w * h);
    if hole.iter().all(|&b| b) {
        return Err("the mask covers the whole image, so there is nothing around it to fill from; paint only the object white".into());
    }
    let radius = radius.max(1) as isize;
    let mut values = structure(img, hole);
    let mut flags: Vec<u8> = hole.iter().map(|&b| if b { INSIDE } else { KNOWN }).collect();
    let mut time: Vec<f32> = hole.iter().map(|&b| if b { FAR_TIME } else { 0.0 }).collect();
    let mut heap = BinaryHeap::new();
    // The narrow band starts as the known pixels touching the hole.
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if flags[i] == KNOWN && neighbours(x, y, w, h).any(|n| hole[n]) {
                flags[i] = BAND;
                heap.push(Reverse((0f32.to_bits(), i as u32)));
            }
        }
    }
    let (wi, hi) = (w as isize, h as isize);
    while let Some(Reverse((_, i))) = heap.pop() {
        let i = i as usize;
        flags[i] = KNOWN;
        let (x, y) = (i % w, i / w);
        for n in neighbours(x, y, w, h).collect::<Vec<_>>() {
            if flags[n] != INSIDE {
                continue;
            }
            let (nx, ny) = ((n % w) as isize, (n / w) as isize);
            let at = |xx: isize, yy: isize| -> Option<usize> {
                (xx >= 0 && yy >= 0 && xx < wi && yy < hi).then(|| (yy * wi + xx) as usize)
            };
            let t = [(0, -1), (0, 1)]
                .iter()
                .flat_map(|&(_, dy)| [(-1isize, dy), (1, dy)])
                .map(|(dx, dy)| solve(at(nx + dx, ny), at(nx, ny + dy), &flags, &time))
                .fold(FAR_TIME, f32::min);
            time[n] = t;
            values[n] = estimate(nx, ny, w, h, radius, &flags, &time, &values);
            flags[n] = BAND;
            heap.push(Reverse((t.to_bits(), n as u32)));
        }
    }
    let mut out = img.clone();
    for (i, v) in values.iter().enumerate() {
        if hole[i] {
            for c in 0..4 {
                out.px[i * 4 + c] = (v[c] + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(out)
}

/// Width of the structure layer's Gaussian, px.
const STRUCTURE_SIGMA: f32 = 1.5;

/// The structure layer: a Gaussian blur of the known pixels only (normalised convolution), so the
/// hole's content never bleeds in. Hole pixels get whatever reaches them (overwritten by the march).
fn structure(img: &Raster, hole: &[bool]) -> Vec<[f32; 4]> {
    let (w, h) = (img.width, img.height);
    let known: Vec<f32> = hole.iter().map(|&b| if b { 0.0 } else { 1.0 }).collect();
    let den = gaussian(&known, w, h, STRUCTURE_SIGMA);
    let mut out = vec![[0.0f32; 4]; w * h];
    for c in 0..4 {
        let num: Vec<f32> = (0..w * h).map(|i| img.px[i * 4 + c] as f32 * known[i]).collect();
        let num = gaussian(&num, w, h, STRUCTURE_SIGMA);
        for i in 0..w * h {
            out[i][c] = if den[i] > 1e-4 { num[i] / den[i] } else { img.px[i * 4 + c] as f32 };
        }
    }
    out
}

/// The 4-neighbours of (x, y) inside a `w x h` grid, as indices.
fn neighbours(x: usize, y: usize, w: usize, h: usize) -> impl Iterator<Item = usize> {
    let mut out = [usize::MAX; 4];
    if x > 0 { out[0] = y * w + x - 1; }
    if x + 1 < w { out[1] = y * w + x + 1; }
    if y > 0 { out[2] = (y - 1) * w + x; }
    if y + 1 < h { out[3] = (y + 1) * w + x; }
    out.into_iter().filter(|&i| i != usize::MAX)
}

/// Solve |∇T| = 1 at a pixel from one horizontal and one vertical neighbour (either may be missing).
fn solve(a: Option<usize>, b: Option<usize>, flags: &[u8], time: &[f32]) -> f32 {
    let known = |n: Option<usize>| n.filter(|&n| flags[n] != INSIDE).map(|n| time[n]);
    match (known(a), known(b)) {
        (Some(t1), Some(t2)) => {
            if (t1 - t2).abs() >= 1.0 {
                1.0 + t1.min(t2)
            } else {
                (t1 + t2 + (2.0 - (t1 - t2) * (t1 - t2)).sqrt()) * 0.5
            }
        }
        (Some(t1), None) => 1.0 + t1,
        (None, Some(t2)) => 1.0 + t2,
        (None, None) => FAR_TIME,
    }
}

/// Telea's weighted first-order estimate of pixel (x, y) from known pixels within `radius`.
#[allow(clippy::too_many_arguments)]
fn estimate(x: isize, y: isize, w: usize, h: usize, radius: isize, flags: &[u8], time: &[f32], values: &[[f32; 4]]) -> [f32; 4] {
    let (wi, hi) = (w as isize, h as isize);
    let idx = |xx: isize, yy: isize| (yy * wi + xx) as usize;
    let known = |xx: isize, yy: isize| xx >= 0 && yy >= 0 && xx < wi && yy < hi && flags[idx(xx, yy)] != INSIDE;
    let p = idx(x, y);
    // ∇T at p from whichever neighbours are known (central when both are).
    let grad_t = |dx: isize, dy: isize| -> f32 {
        let (fwd, back) = (known(x + dx, y + dy), known(x - dx, y - dy));
        match (fwd, back) {
            (true, true) => (time[idx(x + dx, y + dy)] - time[idx(x - dx, y - dy)]) * 0.5,
            (true, false) => time[idx(x + dx, y + dy)] - time[p],
            (false, true) => time[p] - time[idx(x - dx, y - dy)],
            (false, false) => 0.0,
        }
    };
    let (gtx, gty) = (grad_t(1, 0), grad_t(0, 1));
    let gt_len = (gtx * gtx + gty * gty).sqrt();

    let mut acc = [0.0f32; 4];
    let mut weight_sum = 0.0f32;
    let mut lo = [f32::MAX; 4];
    let mut hi_v = [f32::MIN; 4];
    for qy in (y - radius).max(0)..=(y + radius).min(hi - 1) {
        for qx in (x - radius).max(0)..=(x + radius).min(wi - 1) {
            let (rx, ry) = ((x - qx) as f32, (y - qy) as f32);
            let len2 = rx * rx + ry * ry;
            if len2 == 0.0 || len2 > (radius * radius) as f32 || !known(qx, qy) {
                continue;
            }
            let q = idx(qx, qy);
            let len = len2.sqrt();
            let direction = if gt_len > 0.0 { ((rx * gtx + ry * gty) / (len * gt_len)).abs().max(0.01) } else { 1.0 };
            let distance = 1.0 / len2;
            let level = 1.0 / (1.0 + (time[q] - time[p]).abs());
            let wgt = direction * distance * level;
            for c in 0..4 {
                // ∇I at q from known neighbours only.
                let gi = |dx: isize, dy: isize| -> f32 {
                    match (known(qx + dx, qy + dy), known(qx - dx, qy - dy)) {
                        (true, true) => (values[idx(qx + dx, qy + dy)][c] - values[idx(qx - dx, qy - dy)][c]) * 0.5,
                        (true, false) => values[idx(qx + dx, qy + dy)][c] - values[q][c],
                        (false, true) => values[q][c] - values[idx(qx - dx, qy - dy)][c],
                        (false, false) => 0.0,
                    }
                };
                let v = values[q][c];
                acc[c] += wgt * (v + gi(1, 0) * rx + gi(0, 1) * ry);
                lo[c] = lo[c].min(v);
                hi_v[c] = hi_v[c].max(v);
            }
            weight_sum += wgt;
        }
    }
    if weight_sum <= 0.0 {
        return values[p];
    }
    // The gradient term extrapolates; keep it within what the neighbourhood actually holds.
    [0, 1, 2, 3].map(|c| (acc[c] / weight_sum).clamp(lo[c], hi_v[c]))
}

/// Add seeded noise inside the hole with the per-channel high-frequency deviation measured on a
/// ring of known pixels around it (2·radius + 2 px wide). A smooth surround adds nothing.
pub fn match_grain(original: &Raster, filled: &Raster, hole: &[bool], radius: usize, rng: &mut SeededRng) -> Raster {
    let (w, h) = (original.width, original.height);
    let d2 = squared_distance_to(hole, w, h);
    let ring_width = (2 * radius + 2) as f32;
    // Ring pixels whose whole 5x5 window is outside the hole (Euclidean > 2√2 px implies that), so
    // the hole's own content never leaks into the measurement.
    let ring: Vec<usize> = (0..w * h).filter(|&i| !hole[i] && d2[i] <= ring_width * ring_width).collect();
    if ring.len() < 16 {
        return filled.clone();
    }
    let smooth = structure(original, hole);
    // The residual against a Gaussian of the same pixel undercounts white noise by the kernel's
    // centre weight (1 - 2·k0 + Σk²); undo that bias.
    let k0 = 1.0 / (std::f64::consts::TAU * (STRUCTURE_SIGMA as f64).powi(2));
    let bias = 1.0 - 2.0 * k0 + k0 / 2.0;
    let mut sigma = [0.0f32; 3];
    for (c, s) in sigma.iter_mut().enumerate() {
        let var: f64 = ring.iter().map(|&i| ((original.px[i * 4 + c] as f32 - smooth[i][c]) as f64).powi(2)).sum::<f64>() / ring.len() as f64;
        *s = (var / bias).sqrt() as f32;
    }
    let mut out = filled.clone();
    if sigma.iter().all(|&s| s < 0.5) {
        return out;
    }
    for (i, &in_hole) in hole.iter().enumerate() {
        if in_hole {
            let n = rng.normal();
            for c in 0..3 {
                out.px[i * 4 + c] = (out.px[i * 4 + c] as f32 + n * sigma[c] + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::noise::purpose;

    fn stats(img: &Raster, pick: impl Fn(usize, usize) -> bool, c: usize) -> (f64, f64) {
        let mut vals = vec![];
        for y in 0..img.height {
            for x in 0..img.width {
                if pick(x, y) {
                    vals.push(img.get(x, y)[c] as f64);
                }
            }
        }
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let sd = (vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / vals.len() as f64).sqrt();
        (m, sd)
    }

    #[test]
    fn fills_a_square_on_a_gradient_with_no_hole_and_matching_statistics() {
        let (w, h) = (96, 80);
        let grad = Raster::from_fn(w, h, |x, y| [(40 + x * 2) as u8, (30 + y * 2) as u8, 120, 255]);
        // Punch a black hole, so an unfilled pixel would stand out.
        let in_hole = |x: usize, y: usize| (36..60).contains(&x) && (28..52).contains(&y);
        let mut damaged = grad.clone();
        for y in 0..h {
            for x in 0..w {
                if in_hole(x, y) {
                    damaged.px[(y * w + x) * 4..(y * w + x) * 4 + 3].copy_from_slice(&[0, 0, 0]);
                }
            }
        }
        let hole: Vec<bool> = (0..w * h).map(|i| in_hole(i % w, i / w)).collect();
        let out = remove(&damaged, &hole, 5, &mut SeededRng::new(1, purpose::INPAINT)).unwrap();
        // Outside the hole nothing moved.
        for i in 0..w * h {
            if !hole[i] {
                assert_eq!(&out.px[i * 4..i * 4 + 4], &damaged.px[i * 4..i * 4 + 4]);
            }
        }
        // No pixel of the hole is left dark, and each is close to the true gradient.
        for y in 28..52 {
            for x in 36..60 {
                let p = out.get(x, y);
                let t = grad.get(x, y);
                assert!(p[0] > 60 && p[1] > 50, "hole left at ({x},{y}): {p:?}");
                assert!((p[0] as i32 - t[0] as i32).abs() < 20 && (p[1] as i32 - t[1] as i32).abs() < 20, "({x},{y}) {p:?} vs {t:?}");
            }
        }
        // Filled mean and spread resemble the surroundings'.
        let ring = |x: usize, y: usize| (30..66).contains(&x) && (22..58).contains(&y) && !in_hole(x, y);
        for c in 0..2 {
            let (fm, fs) = stats(&out, in_hole, c);
            let (tm, ts) = stats(&grad, in_hole, c);
            let (rm, rs) = stats(&out, ring, c);
            assert!((fm - tm).abs() < 4.0, "channel {c}: filled mean {fm} vs true {tm}");
            assert!((fm - rm).abs() < 10.0, "channel {c}: filled mean {fm} vs ring {rm}");
            assert!(fs > 0.6 * ts && fs < 1.4 * ts, "channel {c}: filled sd {fs} vs true {ts} (ring {rs})");
        }
    }

    #[test]
    fn regrains_a_hole_in_a_noisy_surface() {
        let (w, h) = (64, 64);
        let mut rng = SeededRng::new(9, 0);
        let noisy = Raster::from_fn(w, h, |_, _| {
            let v = (128.0 + 20.0 * rng.normal()).clamp(0.0, 255.0) as u8;
            [v, v, v, 255]
        });
        let in_hole = |x: usize, y: usize| (20..44).contains(&x) && (20..44).contains(&y);
        let hole: Vec<bool> = (0..w * h).map(|i| in_hole(i % w, i / w)).collect();
        let out = remove(&noisy, &hole, 4, &mut SeededRng::new(1, purpose::INPAINT)).unwrap();
        let (fm, fs) = stats(&out, in_hole, 0);
        let (rm, rs) = stats(&noisy, |x, y| !in_hole(x, y), 0);
        assert!((fm - rm).abs() < 6.0, "mean {fm} vs {rm}");
        assert!(fs > 0.6 * rs && fs < 1.5 * rs, "sd {fs} vs {rs}");
    }

    #[test]
    fn a_full_mask_is_refused() {
        let img = Raster::filled(8, 8, [1, 2, 3, 255]);
        assert!(telea(&img, &[true; 64], 3).unwrap_err().contains("whole image"));
    }
}
