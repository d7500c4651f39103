//! Cartoon / comic: flatten colours with repeated edge-preserving smoothing, quantise them to a small
//! palette, and ink the outlines found by a difference of Gaussians (Winnemöller et al. 2006).

use super::blur::gaussian;
use super::noise::SeededRng;
use super::quantize::{palette_for, remap, saturate};
use super::smooth::smooth_colors;
use super::detail_scale;
use crate::raster::{smoothstep, FloatImage};

/// Cartoonise `img`. `strength` (0..1) flattens more and inks heavier lines; `colors` is the palette size.
/// The seed jitters the palette and the line threshold a little, so variations differ.
pub fn cartoon(img: &mut FloatImage, strength: f32, colors: usize, rng: &mut SeededRng) {
    let (w, h) = (img.width, img.height);
    let scale = detail_scale(img);
    let radius = ((2.0 + 4.0 * strength) * scale).round().max(1.0) as usize;
    smooth_colors(img, radius, 0.003 + 0.01 * strength, 3);

    let luma = img.luma();
    let sigma = 0.9 * scale.max(0.6);
    let narrow = gaussian(&luma, w, h, sigma);
    let wide = gaussian(&luma, w, h, 1.6 * sigma);
    let threshold = (0.003 + 0.004 * (1.0 - strength)) * rng.range(0.8, 1.25);

    let palette = palette_for(img, colors);
    let jitter = 0.025;
    let shown: Vec<[f32; 3]> = palette
        .iter()
        .map(|c| saturate([0, 1, 2].map(|i| (c[i] + rng.range(-jitter, jitter)).clamp(0.0, 1.0)), 1.25))
        .collect();
    remap(img, &palette, &shown);

    for i in 0..img.len() {
        // The DoG dips below zero on the dark side of every edge: that is where the ink goes.
        let ink = smoothstep(threshold, 2.5 * threshold, wide[i] - narrow[i]);
        for c in 0..3 {
            img.ch[c][i] *= 1.0 - 0.9 * ink;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::noise::purpose;
    use crate::raster::Raster;
    use std::collections::BTreeSet;

    #[test]
    fn cartoon_has_few_colours_and_inks_the_outline() {
        let raster = Raster::from_fn(96, 96, |x, y| {
            let shade = ((x + y) / 4) as u8;
            if (x as i32 - 48).pow(2) + (y as i32 - 48).pow(2) < 24 * 24 { [230, 120 + shade / 2, 40, 255] } else { [60 + shade, 150, 200, 255] }
        });
        let mut img = FloatImage::from_raster(&raster);
        cartoon(&mut img, 0.5, 8, &mut SeededRng::new(1, purpose::PALETTE));
        let out = img.to_raster();
        // Outline: somewhere on the circle's edge along the middle row there is a dark pixel.
        let darkest = (18..30).map(|x| out.get(x, 48)[0] as u32 + out.get(x, 48)[1] as u32).min().unwrap();
        assert!(darkest < 200, "no ink on the outline: {darkest}");
        // Away from lines the flats are few colours.
        let flats: BTreeSet<[u8; 3]> = out.px.chunks(4).filter(|p| p[0] as u32 + p[1] as u32 + p[2] as u32 > 300).map(|p| [p[0], p[1], p[2]]).collect();
        assert!(flats.len() < 60, "{} colours", flats.len());
    }
}
