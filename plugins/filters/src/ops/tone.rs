//! `adjust` (brightness, contrast, saturation, gamma, temperature) and `grayscale`: per-pixel colour
//! changes, in place. Per-channel curves are folded into one lookup table per channel.

use super::check_image;
use crate::params::Args;
use atelier_sdk::{Error, Image};

/// What `adjust` was asked for; [`AdjustOptions::NEUTRAL`] changes nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdjustOptions {
    /// Multiplier on every channel.
    pub brightness: f64,
    /// Multiplier on the distance from mid-grey.
    pub contrast: f64,
    /// Multiplier on the distance from the pixel's own grey.
    pub saturation: f64,
    /// Output = input^(1/gamma), on 0..1.
    pub gamma: f64,
    /// -1 cool .. +1 warm.
    pub temperature: f64,
}

impl AdjustOptions {
    /// The settings that leave every pixel as it is.
    pub const NEUTRAL: AdjustOptions =
        AdjustOptions { brightness: 1.0, contrast: 1.0, saturation: 1.0, gamma: 1.0, temperature: 0.0 };

    /// Read the five settings, defaulting to neutral.
    pub fn from_args(args: &Args) -> Self {
        let n = AdjustOptions::NEUTRAL;
        AdjustOptions {
            brightness: args.number("brightness").unwrap_or(n.brightness),
            contrast: args.number("contrast").unwrap_or(n.contrast),
            saturation: args.number("saturation").unwrap_or(n.saturation),
            gamma: args.number("gamma").unwrap_or(n.gamma),
            temperature: args.number("temperature").unwrap_or(n.temperature),
        }
    }

    /// The per-channel curve for red, green and blue.
    fn tables(&self) -> [[u8; 256]; 3] {
        // Warmth: red up and blue down by up to 20 %, the reverse for cool.
        let gains = [1.0 + 0.2 * self.temperature, 1.0, 1.0 - 0.2 * self.temperature];
        gains.map(|gain| {
            let mut table = [0u8; 256];
            for (i, out) in table.iter_mut().enumerate() {
                let mut v = i as f64 / 255.0;
                if self.gamma != 1.0 {
                    v = v.powf(1.0 / self.gamma);
                }
                v *= self.brightness;
                v = (v - 0.5) * self.contrast + 0.5;
                v *= gain;
                *out = (v * 255.0).round().clamp(0.0, 255.0) as u8;
            }
            table
        })
    }
}

/// Run `adjust`, in place; alpha is kept.
pub fn adjust(mut image: Image, opts: &AdjustOptions) -> Result<Image, Error> {
    check_image(&image)?;
    let [r, g, b] = opts.tables();
    let saturate = opts.saturation != 1.0;
    // Fixed point, 8 fractional bits.
    let s = (opts.saturation * 256.0).round() as i32;
    for p in image.pixels.chunks_exact_mut(4) {
        let (mut pr, mut pg, mut pb) = (r[p[0] as usize], g[p[1] as usize], b[p[2] as usize]);
        if saturate {
            let grey = luma(pr, pg, pb) as i32;
            let mix = |c: u8| (grey + ((c as i32 - grey) * s + 128).div_euclid(256)).clamp(0, 255) as u8;
            (pr, pg, pb) = (mix(pr), mix(pg), mix(pb));
        }
        p[0] = pr;
        p[1] = pg;
        p[2] = pb;
    }
    Ok(image)
}

/// Rec. 709 luma on the stored (sRGB) values, weights summing to 256.
#[inline]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((54 * r as u32 + 183 * g as u32 + 19 * b as u32 + 128) >> 8) as u8
}

/// Run `grayscale`, in place: R = G = B = luma, alpha kept.
pub fn grayscale(mut image: Image) -> Result<Image, Error> {
    check_image(&image)?;
    for p in image.pixels.chunks_exact_mut(4) {
        let y = luma(p[0], p[1], p[2]);
        p[0] = y;
        p[1] = y;
        p[2] = y;
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{pattern, px};
    use atelier_sdk::Param;

    fn adjust_with(image: Image, params: &[Param]) -> Image {
        adjust(image, &AdjustOptions::from_args(&Args::new("adjust", params).unwrap())).unwrap()
    }

    #[test]
    fn neutral_adjust_is_identity() {
        let mut image = pattern(64, 48);
        image.pixels[3] = 17; // some alpha too
        assert_eq!(adjust_with(image.clone(), &[]).pixels, image.pixels);
        // Explicit neutral values, as the host passes them after filling defaults.
        let explicit = [
            Param::new("brightness", 1.0),
            Param::new("contrast", 1.0),
            Param::new("saturation", 1.0),
            Param::new("gamma", 1.0),
            Param::new("temperature", 0.0),
        ];
        assert_eq!(adjust_with(image.clone(), &explicit).pixels, image.pixels);
    }

    #[test]
    fn each_setting_moves_the_right_way() {
        let image = pattern(32, 32);
        let mean = |im: &Image, c: usize| im.pixels.chunks_exact(4).map(|p| p[c] as f64).sum::<f64>() / 1024.0;
        let brighter = adjust_with(image.clone(), &[Param::new("brightness", 1.3)]);
        assert!(mean(&brighter, 1) > mean(&image, 1));
        let warmer = adjust_with(image.clone(), &[Param::new("temperature", 0.5)]);
        assert!(mean(&warmer, 0) > mean(&image, 0) && mean(&warmer, 2) < mean(&image, 2));
        let lifted = adjust_with(image.clone(), &[Param::new("gamma", 2.0)]);
        assert!(mean(&lifted, 1) > mean(&image, 1));
        let flat = adjust_with(image.clone(), &[Param::new("contrast", 0.0)]);
        assert!(flat.pixels.chunks_exact(4).all(|p| p[..3] == [128, 128, 128]));
        let grey = adjust_with(image.clone(), &[Param::new("saturation", 0.0)]);
        assert!(grey.pixels.chunks_exact(4).all(|p| p[0] == p[1] && p[1] == p[2]));
        assert_eq!(px(&grey, 3, 3)[3], 255);
    }

    #[test]
    fn grayscale_has_equal_channels_and_keeps_alpha() {
        let mut image = pattern(40, 30);
        image.pixels[7] = 99;
        let out = grayscale(image).unwrap();
        assert!(out.pixels.chunks_exact(4).all(|p| p[0] == p[1] && p[1] == p[2]));
        assert_eq!(out.pixels[7], 99);
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(0, 255, 0), 182);
    }
}
