//! Exemplar-based inpainting: multi-scale PatchMatch with expectation-maximisation voting
//! (Barnes et al. 2009, "PatchMatch"; Wexler et al. 2007, "Space-Time Completion of Video").
//!
//! At every level of an image pyramid, each 7x7 patch that touches the hole is matched to the most
//! similar patch lying wholly in the known part of the image (PatchMatch: random start, propagation
//! from neighbours, random search in shrinking windows). Every hole pixel then becomes the average of
//! what the overlapping matches say it should be. Repeating this converges on a fill made of real
//! texture from the image. The coarsest level starts from Telea's fill; each finer level starts from
//! the coarser result. The seed picks the random matches, so different seeds give different fills.

use crate::inpaint::telea;
use crate::ops::noise::SeededRng;
use crate::raster::Raster;

/// Patch half-size: patches are 7x7.
const R: isize = 3;
/// Smallest pyramid level side.
const MIN_SIDE: usize = 32;
/// At most this many levels.
const MAX_LEVELS: usize = 6;

/// One pyramid level: RGB samples, which pixels are hole, size.
#[derive(Clone)]
struct Level {
    w: usize,
    h: usize,
    rgb: Vec<[f32; 3]>,
    hole: Vec<bool>,
}

impl Level {
    fn half(&self) -> Level {
        let (w, h) = (self.w.div_ceil(2), self.h.div_ceil(2));
        let mut rgb = vec![[0.0; 3]; w * h];
        let mut hole = vec![false; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0.0f32; 3];
                let mut n = 0.0;
                let mut any_hole = false;
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (sx, sy) = ((2 * x + dx).min(self.w - 1), (2 * y + dy).min(self.h - 1));
                    let i = sy * self.w + sx;
                    if self.hole[i] {
                        any_hole = true;
                    } else {
                        for c in 0..3 {
                            acc[c] += self.rgb[i][c];
                        }
                        n += 1.0;
                    }
                }
                rgb[y * w + x] = if n > 0.0 { acc.map(|v| v / n) } else { [0.0; 3] };
                hole[y * w + x] = any_hole;
            }
        }
        Level { w, h, rgb, hole }
    }
}

/// Fill the `hole` pixels of `img`: colour by PatchMatch, alpha (and any level PatchMatch cannot
/// work on) from `base`, Telea's fill of the same hole, which the caller computes once for all seeds.
pub fn inpaint(img: &Raster, hole: &[bool], base: &Raster, rng: &mut SeededRng) -> Result<Raster, String> {
    let finest = Level {
        w: img.width,
        h: img.height,
        rgb: img.px.chunks_exact(4).map(|p| [p[0] as f32, p[1] as f32, p[2] as f32]).collect(),
        hole: hole.to_vec(),
    };
    let mut pyramid = vec![finest];
    while pyramid.len() < MAX_LEVELS {
        let last = pyramid.last().expect("not empty");
        if last.w.min(last.h) / 2 < MIN_SIDE {
            break;
        }
        let next = last.half();
        if !next.hole.iter().any(|&b| !b) {
            break;
        }
        pyramid.push(next);
    }
    // The coarsest level starts from Telea's fill at that scale.
    let coarsest = pyramid.last().expect("not empty").clone();
    let mut current: Vec<[f32; 3]> = {
        let raster = Raster {
            width: coarsest.w,
            height: coarsest.h,
            px: coarsest.rgb.iter().flat_map(|c| [c[0], c[1], c[2], 255.0].map(|v| (v + 0.5).clamp(0.0, 255.0) as u8)).collect(),
        };
        telea(&raster, &coarsest.hole, 5)?.px.chunks_exact(4).map(|p| [p[0] as f32, p[1] as f32, p[2] as f32]).collect()
    };
    for li in (0..pyramid.len()).rev() {
        let level = &pyramid[li];
        if li + 1 < pyramid.len() {
            // Start from the coarser result, enlarged (nearest), in the hole only.
            let coarse_w = pyramid[li + 1].w;
            let mut start = level.rgb.clone();
            for y in 0..level.h {
                for x in 0..level.w {
                    if level.hole[y * level.w + x] {
                        start[y * level.w + x] = current[(y / 2) * coarse_w + x / 2];
                    }
                }
            }
            current = start;
        } else {
            let mut start = level.rgb.clone();
            for (i, &b) in level.hole.iter().enumerate() {
                if b {
                    start[i] = current[i];
                }
            }
            current = start;
        }
        // The coarsest level decides the layout and is cheap: more iterations, both scan orders each.
        // Finer levels refine: fewer iterations, one scan order each, alternating.
        let coarsest_level = li + 1 == pyramid.len();
        let iterations = if coarsest_level { 6 } else if li == 0 { 2 } else { 3 };
        let passes = if coarsest_level { 2 } else { 1 };
        // With no whole known patch at this scale, the level keeps what it has (Telea's fill at worst).
        complete_level(level, &mut current, iterations, passes, rng);
    }
    let mut out = base.clone();
    for (i, &b) in hole.iter().enumerate() {
        if b {
            for c in 0..3 {
                out.px[i * 4 + c] = (current[i][c] + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(out)
}

/// EM iterations at one level: match every patch touching the hole, then vote. Returns false when
/// no patch lies wholly in the known area, leaving `img` as it was.
fn complete_level(level: &Level, img: &mut [[f32; 3]], iterations: usize, passes: usize, rng: &mut SeededRng) -> bool {
    let (w, h) = (level.w as isize, level.h as isize);
    // Valid sources: patch centres whose whole patch is inside the image and outside the hole.
    let hole_near = dilate(&level.hole, level.w, level.h);
    let sources: Vec<(isize, isize)> = (R..h - R)
        .flat_map(|y| (R..w - R).map(move |x| (x, y)))
        .filter(|&(x, y)| !hole_near[(y * w + x) as usize])
        .collect();
    if sources.is_empty() {
        return false;
    }
    let is_source = |x: isize, y: isize| x >= R && y >= R && x < w - R && y < h - R && !hole_near[(y * w + x) as usize];
    // Targets: every patch centre whose patch touches the hole.
    let targets: Vec<(isize, isize)> = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).filter(|&(x, y)| hole_near[(y * w + x) as usize]).collect();
    let mut nnf: Vec<(isize, isize)> = targets.iter().map(|_| sources[(rng.uniform() * sources.len() as f32) as usize % sources.len()]).collect();
    let index_of = {
        let mut map = vec![usize::MAX; level.w * level.h];
        for (k, &(x, y)) in targets.iter().enumerate() {
            map[(y * w + x) as usize] = k;
        }
        map
    };
    let distance = |img: &[[f32; 3]], t: (isize, isize), s: (isize, isize), cap: f32| -> f32 {
        let mut d = 0.0;
        for dy in -R..=R {
            let ty = t.1 + dy;
            if ty < 0 || ty >= h {
                continue;
            }
            for dx in -R..=R {
                let tx = t.0 + dx;
                if tx < 0 || tx >= w {
                    continue;
                }
                let a = img[(ty * w + tx) as usize];
                let b = img[((s.1 + dy) * w + s.0 + dx) as usize];
                d += (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2);
            }
            if d >= cap {
                return d;
            }
        }
        d
    };
    for iteration in 0..iterations {
        let mut cost: Vec<f32> = targets.iter().zip(&nnf).map(|(&t, &s)| distance(img, t, s, f32::MAX)).collect();
        for pass in iteration * passes..(iteration + 1) * passes {
            let order: Box<dyn Iterator<Item = usize>> = if pass % 2 == 0 { Box::new(0..targets.len()) } else { Box::new((0..targets.len()).rev()) };
            let step: isize = if pass % 2 == 0 { 1 } else { -1 };
            for k in order {
                let t = targets[k];
                // Propagation: a neighbour's match, shifted by one, is often good here too.
                for (nx, ny) in [(t.0 - step, t.1), (t.0, t.1 - step)] {
                    if nx < 0 || ny < 0 || nx >= w || ny >= h {
                        continue;
                    }
                    let nk = index_of[(ny * w + nx) as usize];
                    if nk == usize::MAX {
                        continue;
                    }
                    let cand = (nnf[nk].0 + (t.0 - nx), nnf[nk].1 + (t.1 - ny));
                    if is_source(cand.0, cand.1) {
                        let d = distance(img, t, cand, cost[k]);
                        if d < cost[k] {
                            cost[k] = d;
                            nnf[k] = cand;
                        }
                    }
                }
                // Random search in windows halving from the whole image down to one pixel.
                let mut radius = w.max(h) as f32;
                while radius >= 1.0 {
                    let best = nnf[k];
                    let cand = (
                        (best.0 as f32 + rng.range(-radius, radius)).round() as isize,
                        (best.1 as f32 + rng.range(-radius, radius)).round() as isize,
                    );
                    if is_source(cand.0, cand.1) {
                        let d = distance(img, t, cand, cost[k]);
                        if d < cost[k] {
                            cost[k] = d;
                            nnf[k] = cand;
                        }
                    }
                    radius /= 2.0;
                }
            }
        }
        // Voting: each hole pixel averages what every overlapping match proposes for it.
        let mut acc = vec![[0.0f32; 4]; level.w * level.h];
        for (k, &t) in targets.iter().enumerate() {
            let s = nnf[k];
            for dy in -R..=R {
                for dx in -R..=R {
                    let (px, py) = (t.0 + dx, t.1 + dy);
                    if px < 0 || py < 0 || px >= w || py >= h || !level.hole[(py * w + px) as usize] {
                        continue;
                    }
                    let v = img[((s.1 + dy) * w + s.0 + dx) as usize];
                    let a = &mut acc[(py * w + px) as usize];
                    for c in 0..3 {
                        a[c] += v[c];
                    }
                    a[3] += 1.0;
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            if level.hole[i] && a[3] > 0.0 {
                img[i] = [a[0] / a[3], a[1] / a[3], a[2] / a[3]];
            }
        }
    }
    true
}

/// Pixels within the patch half-size (Chebyshev) of a hole pixel: patches centred there touch the hole.
fn dilate(hole: &[bool], w: usize, h: usize) -> Vec<bool> {
    let r = R as usize;
    let mut rows = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            rows[y * w + x] = (x.saturating_sub(r)..=(x + r).min(w - 1)).any(|xx| hole[y * w + xx]);
        }
    }
    let mut out = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = (y.saturating_sub(r)..=(y + r).min(h - 1)).any(|yy| rows[yy * w + x]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::noise::purpose;

    #[test]
    fn continues_stripes_and_leaves_no_hole() {
        // Vertical stripes, 4 px period: a texture Telea would blur into grey.
        let (w, h) = (80, 64);
        let stripes = Raster::from_fn(w, h, |x, _| if (x / 2) % 2 == 0 { [230, 40, 40, 255] } else { [30, 30, 200, 255] });
        let in_hole = |x: usize, y: usize| (30..50).contains(&x) && (22..42).contains(&y);
        let mut damaged = stripes.clone();
        for y in 0..h {
            for x in 0..w {
                if in_hole(x, y) {
                    damaged.px[(y * w + x) * 4..(y * w + x) * 4 + 3].copy_from_slice(&[0, 255, 0]);
                }
            }
        }
        let hole: Vec<bool> = (0..w * h).map(|i| in_hole(i % w, i / w)).collect();
        let base = telea(&damaged, &hole, 5).unwrap();
        let out = inpaint(&damaged, &hole, &base, &mut SeededRng::new(1, purpose::INPAINT)).unwrap();
        let mut close = 0;
        let mut total = 0;
        for y in 22..42 {
            for x in 30..50 {
                let p = out.get(x, y);
                assert!(p[1] < 120, "hole left at ({x},{y}): {p:?}");
                // Pure stripe colours, not a blend: one channel clearly dominates.
                let t = stripes.get(x, y);
                total += 1;
                if (p[0] as i32 - t[0] as i32).abs() < 60 && (p[2] as i32 - t[2] as i32).abs() < 60 {
                    close += 1;
                }
            }
        }
        assert!(close * 10 >= total * 8, "stripes not continued: {close}/{total}");
        for i in 0..w * h {
            if !hole[i] {
                assert_eq!(&out.px[i * 4..i * 4 + 4], &damaged.px[i * 4..i * 4 + 4]);
            }
        }
    }
}
