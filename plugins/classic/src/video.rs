//! Ken Burns video: a slow camera move (zoom and/or pan) over one still, rendered with separable
//! Catmull-Rom (bicubic) resampling of a sub-pixel crop per frame, and encoded as an animated GIF
//! with one global palette (median cut over the still + 4x4 ordered dither), so colours do not
//! flicker between frames and the dither pattern stays fixed on screen.

use image::imageops::{self, FilterType};
use image::RgbaImage;

use crate::ops::film::film_grain;
use crate::ops::noise::{purpose, SeededRng};
use crate::ops::quantize::{nearest, palette_for};
use crate::prompt::Motion;
use crate::raster::{smoothstep, FloatImage, Raster};

/// The camera's path: a crop window (as fractions of the still) from `t = 0` to `t = 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// The zoom, if any.
    pub zoom: Option<Motion>,
    /// The pan, if any.
    pub pan: Option<Motion>,
    /// How far it moves in: the tightest crop shows `1/factor` of each side.
    pub factor: f32,
    /// Where a zoom heads (0..1 across the room the crop has), per axis.
    pub focus: (f32, f32),
}

impl Camera {
    /// A camera for these moves (default: zoom in), with the zoom's focus jittered by the seed.
    pub fn new(motions: &[Motion], factor: f32, seed: u64) -> Camera {
        let zoom = motions.iter().copied().find(|m| m.is_zoom());
        let pan = motions.iter().copied().find(|m| !m.is_zoom());
        let zoom = if zoom.is_none() && pan.is_none() { Some(Motion::ZoomIn) } else { zoom };
        let mut rng = SeededRng::new(seed, purpose::CAMERA);
        let focus = (0.5 + rng.range(-0.3, 0.3), 0.5 + rng.range(-0.3, 0.3));
        Camera { zoom, pan, factor, focus }
    }

    /// The crop at time `t` (0..1): centre and size as fractions of the still's width and height.
    pub fn crop(&self, t: f32) -> (f32, f32, f32) {
        let e = smoothstep(0.0, 1.0, t);
        let tight = 1.0 / self.factor;
        let size = match self.zoom {
            Some(Motion::ZoomIn) => 1.0 + (tight - 1.0) * e,
            Some(Motion::ZoomOut) => tight + (1.0 - tight) * e,
            _ => tight,
        };
        let (mut ux, mut uy) = self.focus;
        match self.pan {
            Some(Motion::PanLeft) => ux = 1.0 - e,
            Some(Motion::PanRight) => ux = e,
            Some(Motion::PanUp) => uy = 1.0 - e,
            Some(Motion::PanDown) => uy = e,
            _ => {}
        }
        let room = 1.0 - size;
        (size / 2.0 + ux * room, size / 2.0 + uy * room, size)
    }
}

/// Frame size for a `w x h` still: its aspect, longest side at most `max_side`, never upscaled.
pub fn frame_size(w: usize, h: usize, max_side: u32) -> (usize, usize) {
    let longest = w.max(h) as f32;
    let k = (max_side as f32 / longest).min(1.0);
    (((w as f32 * k).round() as usize).max(1), ((h as f32 * k).round() as usize).max(1))
}

/// Number of frames for a clip.
pub fn frame_count(seconds: f32, fps: u32) -> usize {
    ((seconds * fps as f32).round() as usize).max(2)
}

/// Film grain added afresh to every frame: amount (0..1) and the variation's seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameGrain {
    /// Grain strength, as the `grain` parameter.
    pub amount: f32,
    /// The variation's seed; frame i uses its own stream of it.
    pub seed: u64,
}

/// Random-stream purposes at and above this are per-frame grain (`+ frame index`).
const FRAME_GRAIN_PURPOSE: u64 = 1 << 32;

/// Render and encode the clip as an animated GIF.
pub fn render_gif(still: &Raster, camera: &Camera, max_side: u32, seconds: f32, fps: u32, grain: Option<FrameGrain>) -> Result<Vec<u8>, String> {
    let (fw, fh) = frame_size(still.width, still.height, max_side);
    // Pre-shrink with a proper low-pass so the widest crop is sampled at about one source px per
    // output px; the per-frame bicubic then never aliases.
    let widest = if camera.zoom.is_some() { 1.0 } else { 1.0 / camera.factor };
    let k = ((fw as f32 / (widest * still.width as f32)).max(fh as f32 / (widest * still.height as f32))).min(1.0);
    let source = if k < 0.999 {
        let (sw, sh) = (((still.width as f32 * k).ceil() as u32).max(1), ((still.height as f32 * k).ceil() as u32).max(1));
        let img = RgbaImage::from_raw(still.width as u32, still.height as u32, still.px.clone()).ok_or("bad still buffer")?;
        let small = imageops::resize(&img, sw, sh, FilterType::CatmullRom);
        Raster { width: sw as usize, height: sh as usize, px: small.into_raw() }
    } else {
        still.clone()
    };
    // The palette must cover the grain's spread too, or quantisation would erase it.
    let palette = match grain {
        Some(g) => GifPalette::new(&with_grain(&source, g, FRAME_GRAIN_PURPOSE - 1)),
        None => GifPalette::new(&source),
    };
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, fw as u16, fh as u16, &palette.rgb_bytes()).map_err(|e| e.to_string())?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(|e| e.to_string())?;
        let frames = frame_count(seconds, fps);
        for i in 0..frames {
            let t = i as f32 / (frames - 1) as f32;
            let mut frame = render_frame(&source, camera.crop(t), fw, fh);
            if let Some(g) = grain {
                frame = with_grain(&frame, g, FRAME_GRAIN_PURPOSE + i as u64);
            }
            let indices = palette.index(&frame);
            // Delays are in 1/100 s; accumulate so the total length is exact.
            let delay = (((i + 1) * 100) as f32 / fps as f32).round() as u16 - ((i * 100) as f32 / fps as f32).round() as u16;
            let gif_frame = gif::Frame { width: fw as u16, height: fh as u16, delay, buffer: indices.into(), ..Default::default() };
            encoder.write_frame(&gif_frame).map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

/// `r` with film grain from random stream `stream` of the variation's seed.
fn with_grain(r: &Raster, g: FrameGrain, stream: u64) -> Raster {
    let mut f = FloatImage::from_raster(r);
    let size = 0.6 + 0.5 * crate::ops::detail_scale(&f);
    film_grain(&mut f, g.amount, size, &mut SeededRng::new(g.seed, stream));
    f.to_raster()
}

/// One frame: the crop `(cx, cy, size)` of `src`, resampled to `fw x fh` with Catmull-Rom, separably.
pub fn render_frame(src: &Raster, (cx, cy, size): (f32, f32, f32), fw: usize, fh: usize) -> Raster {
    let (sw, sh) = (src.width as f32, src.height as f32);
    let x0 = (cx - size / 2.0) * sw;
    let y0 = (cy - size / 2.0) * sh;
    let cols = taps(fw, x0, size * sw, src.width);
    let rows = taps(fh, y0, size * sh, src.height);
    // Horizontal pass over the source rows the vertical pass will read.
    let row_lo = rows.iter().map(|t| t.0).min().unwrap_or(0);
    let row_hi = rows.iter().map(|t| t.0 + 3).max().unwrap_or(0).min(src.height - 1);
    let mut mid = vec![[0.0f32; 4]; (row_hi - row_lo + 1) * fw];
    for y in row_lo..=row_hi {
        let line = &src.px[y * src.width * 4..(y + 1) * src.width * 4];
        for (x, &(start, w)) in cols.iter().enumerate() {
            let mut acc = [0.0f32; 4];
            for (k, wk) in w.iter().enumerate() {
                let sx = (start + k).min(src.width - 1);
                for c in 0..4 {
                    acc[c] += wk * line[sx * 4 + c] as f32;
                }
            }
            mid[(y - row_lo) * fw + x] = acc;
        }
    }
    let mut px = Vec::with_capacity(fw * fh * 4);
    for &(start, w) in &rows {
        for x in 0..fw {
            let mut acc = [0.0f32; 4];
            for (k, wk) in w.iter().enumerate() {
                let sy = (start + k).min(src.height - 1);
                let m = mid[(sy - row_lo) * fw + x];
                for c in 0..4 {
                    acc[c] += wk * m[c];
                }
            }
            px.extend(acc.map(|v| (v + 0.5).clamp(0.0, 255.0) as u8));
        }
    }
    Raster { width: fw, height: fh, px }
}

/// For each of `n` output samples over `[origin, origin + span)` of a source axis of length `len`:
/// the first of four source taps (clamped into range) and their Catmull-Rom weights.
fn taps(n: usize, origin: f32, span: f32, len: usize) -> Vec<(usize, [f32; 4])> {
    (0..n)
        .map(|i| {
            let s = origin + (i as f32 + 0.5) * span / n as f32 - 0.5;
            let base = s.floor();
            let f = s - base;
            let w = catmull_rom(f);
            // Fold taps that fall outside the source onto the edge pixel.
            let mut weights = [0.0f32; 4];
            let first = (base as isize - 1).clamp(0, len as isize - 1) as usize;
            let first = first.min(len.saturating_sub(4));
            for (k, wk) in w.iter().enumerate() {
                let pos = (base as isize - 1 + k as isize).clamp(0, len as isize - 1) as usize;
                let slot = pos.saturating_sub(first).min(3);
                weights[slot] += wk;
            }
            (first, weights)
        })
        .collect()
}

/// Catmull-Rom weights for the four taps around a sample at fraction `t` past the second one.
fn catmull_rom(t: f32) -> [f32; 4] {
    let (t2, t3) = (t * t, t * t * t);
    [
        0.5 * (-t3 + 2.0 * t2 - t),
        0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
        0.5 * (-3.0 * t3 + 4.0 * t2 + t),
        0.5 * (t3 - t2),
    ]
}

/// A 256-colour palette for the whole clip and a 32³ lookup table into it.
struct GifPalette {
    colors: Vec<[f32; 3]>,
    lookup: Vec<u8>,
}

impl GifPalette {
    fn new(still: &Raster) -> Self {
        let colors = palette_for(&FloatImage::from_raster(still), 256);
        let lookup = (0..32 * 32 * 32)
            .map(|i| {
                let c = [(i >> 10) & 31, (i >> 5) & 31, i & 31].map(|v| (v as f32 + 0.5) / 32.0);
                nearest(&colors, c) as u8
            })
            .collect();
        GifPalette { colors, lookup }
    }

    /// The palette as GIF wants it: RGB triples, padded to a power of two.
    fn rgb_bytes(&self) -> Vec<u8> {
        let mut bytes: Vec<u8> = self.colors.iter().flat_map(|c| c.map(crate::raster::to_byte)).collect();
        let entries = self.colors.len().next_power_of_two().max(2);
        bytes.resize(entries * 3, 0);
        bytes
    }

    /// Palette indices for a frame, with a 4x4 Bayer dither of one lookup step.
    fn index(&self, frame: &Raster) -> Vec<u8> {
        const BAYER: [[f32; 4]; 4] = [[0.0, 8.0, 2.0, 10.0], [12.0, 4.0, 14.0, 6.0], [3.0, 11.0, 1.0, 9.0], [15.0, 7.0, 13.0, 5.0]];
        let mut out = Vec::with_capacity(frame.len());
        for y in 0..frame.height {
            for x in 0..frame.width {
                let p = frame.get(x, y);
                let d = (BAYER[y % 4][x % 4] + 0.5) / 16.0 - 0.5;
                let q = [0, 1, 2].map(|c| ((p[c] as f32 / 8.0 + d).floor().clamp(0.0, 31.0)) as usize);
                out.push(self.lookup[(q[0] << 10) | (q[1] << 5) | q[2]]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::AnimationDecoder;

    fn still() -> Raster {
        Raster::from_fn(120, 80, |x, y| [(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8, 255])
    }

    #[test]
    fn gif_has_the_right_frame_count_size_and_timing() {
        let cam = Camera::new(&[], 1.3, 1);
        let gif_bytes = render_gif(&still(), &cam, 64, 2.0, 12, None).unwrap();
        assert!(gif_bytes.starts_with(b"GIF89a"));
        let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&gif_bytes)).unwrap();
        let frames = decoder.into_frames().collect_frames().unwrap();
        assert_eq!(frames.len(), 24);
        assert_eq!(frames[0].buffer().dimensions(), (64, 43));
        let total: u32 = frames.iter().map(|f| { let (n, d) = f.delay().numer_denom_ms(); n / d }).sum();
        assert!((1990..=2010).contains(&total), "total {total} ms");
        // The camera really moves: first and last frames differ.
        assert_ne!(frames[0].buffer().as_raw(), frames[23].buffer().as_raw());
    }

    #[test]
    fn grain_changes_from_frame_to_frame() {
        use image::AnimationDecoder;
        let flat = Raster::filled(64, 48, [128, 128, 128, 255]);
        let cam = Camera::new(&[Motion::ZoomIn], 1.05, 0);
        let bytes = render_gif(&flat, &cam, 64, 1.0, 5, Some(FrameGrain { amount: 0.8, seed: 3 })).unwrap();
        let frames = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&bytes)).unwrap().into_frames().collect_frames().unwrap();
        assert_eq!(frames.len(), 5);
        let (a, b) = (frames[1].buffer().as_raw(), frames[2].buffer().as_raw());
        let differing = a.iter().zip(b).filter(|(p, q)| p != q).count();
        assert!(differing > a.len() / 4, "grain should be new each frame: {differing}");
    }

    #[test]
    fn identity_crop_reproduces_the_source() {
        let src = still();
        let out = render_frame(&src, (0.5, 0.5, 1.0), 120, 80);
        let worst = out.px.iter().zip(&src.px).map(|(a, b)| (*a as i32 - *b as i32).abs()).max().unwrap();
        assert!(worst <= 1, "worst {worst}");
    }

    #[test]
    fn moves_go_the_way_they_are_named() {
        let zoom_in = Camera::new(&[Motion::ZoomIn], 1.5, 0);
        assert!(zoom_in.crop(0.0).2 > 0.99 && (zoom_in.crop(1.0).2 - 1.0 / 1.5).abs() < 1e-4);
        let zoom_out = Camera::new(&[Motion::ZoomOut], 1.5, 0);
        assert!(zoom_out.crop(0.0).2 < zoom_out.crop(1.0).2);
        let left = Camera::new(&[Motion::PanLeft], 1.5, 0);
        assert!(left.crop(0.0).0 > left.crop(1.0).0);
        let down = Camera::new(&[Motion::PanDown], 1.5, 0);
        assert!(down.crop(0.0).1 < down.crop(1.0).1);
        // Crops stay inside the still.
        for cam in [zoom_in, zoom_out, left, down] {
            for i in 0..=10 {
                let (cx, cy, s) = cam.crop(i as f32 / 10.0);
                assert!(cx - s / 2.0 >= -1e-5 && cx + s / 2.0 <= 1.0 + 1e-5 && cy - s / 2.0 >= -1e-5 && cy + s / 2.0 <= 1.0 + 1e-5);
            }
        }
    }
}
