//! The two pixel buffers every operator works on: 8-bit RGBA for input/output and planar float RGB
//! for arithmetic. Keeping them plain structs makes every operator a pure, natively testable function.

/// An 8-bit RGBA image, row-major, no padding (`px.len() == width * height * 4`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Raster {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// RGBA samples, four bytes a pixel.
    pub px: Vec<u8>,
}

impl Raster {
    /// A raster filled with one colour.
    pub fn filled(width: usize, height: usize, rgba: [u8; 4]) -> Self {
        let mut px = Vec::with_capacity(width * height * 4);
        for _ in 0..width * height {
            px.extend_from_slice(&rgba);
        }
        Raster { width, height, px }
    }

    /// A raster whose pixel (x, y) is `f(x, y)`.
    pub fn from_fn(width: usize, height: usize, mut f: impl FnMut(usize, usize) -> [u8; 4]) -> Self {
        let mut px = Vec::with_capacity(width * height * 4);
        for y in 0..height {
            for x in 0..width {
                px.extend_from_slice(&f(x, y));
            }
        }
        Raster { width, height, px }
    }

    /// The pixel at (x, y).
    pub fn get(&self, x: usize, y: usize) -> [u8; 4] {
        let i = (y * self.width + x) * 4;
        [self.px[i], self.px[i + 1], self.px[i + 2], self.px[i + 3]]
    }

    /// Number of pixels.
    pub fn len(&self) -> usize {
        self.width * self.height
    }

    /// Whether the raster has no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Planar RGB in `0.0..=1.0` (gamma-encoded sRGB values, as stored), with the alpha bytes carried along.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Red, green and blue planes.
    pub ch: [Vec<f32>; 3],
    /// Alpha, untouched by the colour operators.
    pub alpha: Vec<u8>,
}

impl FloatImage {
    /// Split an RGBA raster into float planes.
    pub fn from_raster(r: &Raster) -> Self {
        let n = r.len();
        let mut ch = [Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n)];
        let mut alpha = Vec::with_capacity(n);
        for p in r.px.chunks_exact(4) {
            for c in 0..3 {
                ch[c].push(p[c] as f32 / 255.0);
            }
            alpha.push(p[3]);
        }
        FloatImage { width: r.width, height: r.height, ch, alpha }
    }

    /// Back to RGBA bytes, rounding and clamping.
    pub fn to_raster(&self) -> Raster {
        let n = self.len();
        let mut px = Vec::with_capacity(n * 4);
        for i in 0..n {
            for c in 0..3 {
                px.push(to_byte(self.ch[c][i]));
            }
            px.push(self.alpha[i]);
        }
        Raster { width: self.width, height: self.height, px }
    }

    /// Number of pixels.
    pub fn len(&self) -> usize {
        self.width * self.height
    }

    /// Whether the image has no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Rec. 601 luma plane (what "brightness" means to the operators).
    pub fn luma(&self) -> Vec<f32> {
        (0..self.len()).map(|i| luma(self.ch[0][i], self.ch[1][i], self.ch[2][i])).collect()
    }

    /// Apply `f` to every pixel's RGB triple.
    pub fn map_rgb(&mut self, mut f: impl FnMut([f32; 3]) -> [f32; 3]) {
        for i in 0..self.len() {
            let out = f([self.ch[0][i], self.ch[1][i], self.ch[2][i]]);
            for c in 0..3 {
                self.ch[c][i] = out[c];
            }
        }
    }

    /// Clamp every sample into `0..=1`.
    pub fn clamp(&mut self) {
        for plane in &mut self.ch {
            for v in plane.iter_mut() {
                *v = v.clamp(0.0, 1.0);
            }
        }
    }
}

/// Rec. 601 luma of a gamma-encoded RGB triple.
pub fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// A `0..=1` sample as a byte, rounded and clamped.
pub fn to_byte(v: f32) -> u8 {
    (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8
}

/// Hermite smoothstep between `e0` and `e1`.
pub fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}
