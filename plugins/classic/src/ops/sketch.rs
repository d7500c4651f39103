//! Pencil sketch by dodge blending: greyscale, invert, Gaussian-blur the inverse, colour-dodge it over
//! the greyscale. Flat areas burn out to paper white and only edges keep graphite; seeded hatching
//! strokes then shade the darker parts of the original along one pencil direction.

use super::blur::gaussian;
use super::noise::{stroke_texture, SeededRng};
use super::detail_scale;
use crate::raster::FloatImage;

/// Turn `img` into a grey pencil drawing. `strength` (0..1) widens the dodge blur (bolder lines) and
/// deepens the hatching.
pub fn pencil_sketch(img: &mut FloatImage, strength: f32, rng: &mut SeededRng) {
    let (w, h) = (img.width, img.height);
    let scale = detail_scale(img);
    let grey = img.luma();
    let inverse: Vec<f32> = grey.iter().map(|g| 1.0 - g).collect();
    let blurred = gaussian(&inverse, w, h, (2.0 + 6.0 * strength) * scale);
    let angle = rng.range(0.15, 0.85) * std::f32::consts::PI;
    let strokes = stroke_texture(w, h, angle, (5.0 * scale).round() as usize + 2, rng);
    for i in 0..img.len() {
        // Colour dodge: base / (1 - blend), capped at white.
        let dodge = (grey[i] / (1.0 - blurred[i]).max(1e-4)).min(1.0);
        let line = dodge.powf(1.0 + 1.5 * strength);
        // Hatching only where the original is dark; strokes are zero-mean so paper stays paper.
        let shade = (0.6 - grey[i]).max(0.0) * (0.35 + 0.4 * strength);
        let hatch = 1.0 - shade * (0.5 + 0.5 * strokes[i].clamp(-1.0, 1.0));
        let v = (line * hatch).clamp(0.0, 1.0);
        for c in 0..3 {
            img.ch[c][i] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::noise::purpose;
    use crate::raster::Raster;

    #[test]
    fn sketch_is_grey_white_in_flats_and_dark_on_edges() {
        // A mid-red square on a pale blue ground.
        let raster = Raster::from_fn(96, 96, |x, y| {
            if (30..66).contains(&x) && (30..66).contains(&y) { [200, 60, 50, 255] } else { [190, 210, 235, 255] }
        });
        let mut img = FloatImage::from_raster(&raster);
        pencil_sketch(&mut img, 0.5, &mut SeededRng::new(5, purpose::STROKES));
        let out = img.to_raster();
        for p in out.px.chunks(4) {
            assert!(p[0] == p[1] && p[1] == p[2], "not grey: {p:?}");
        }
        let at = |x: usize, y: usize| out.get(x, y)[0];
        assert!(at(8, 8) > 225, "background should be paper: {}", at(8, 8));
        assert!(at(48, 48) > 200, "flat interior should be light: {}", at(48, 48));
        let edge = (28..33).map(|x| at(x, 48)).min().unwrap();
        assert!(edge < 150, "edge should be drawn: {edge}");
    }
}
