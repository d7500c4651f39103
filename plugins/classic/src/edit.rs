//! One still edit: run the planned operators in order on the first reference, with the seed's own
//! random streams, and confine the result to the mask when there is one.

use std::collections::BTreeSet;

use crate::{inpaint, patchmatch};
use crate::mask::FeatheredMask;
use crate::ops::noise::{purpose, SeededRng};
use crate::ops::{cartoon, detail_scale, film, paint, pixel, quantize, sketch, tone};
use crate::prompt::Style;
use crate::raster::{FloatImage, Raster};
use crate::settings::{InpaintMethod, Settings};

/// Palette size of the cartoon look (flat enough to read as cel shading, rich enough for faces).
const CARTOON_COLORS: usize = 12;

/// An edit of one image, ready to render any number of seeded variations.
pub struct Editor<'a> {
    original: &'a Raster,
    mask: Option<&'a FeatheredMask>,
    styles: &'a BTreeSet<Style>,
    settings: &'a Settings,
    /// Telea's fill is the same for every seed, so it is computed once.
    inpainted: Option<Raster>,
}

impl<'a> Editor<'a> {
    /// Prepare an edit. `remove` needs a mask; anything else works with or without one.
    pub fn new(original: &'a Raster, mask: Option<&'a FeatheredMask>, styles: &'a BTreeSet<Style>, settings: &'a Settings) -> Result<Self, String> {
        let inpainted = if styles.contains(&Style::Remove) {
            let m = mask.ok_or("\"remove\"/\"erase\" needs a mask: give one (white = what to remove, black = keep)")?;
            // Checked once here even for PatchMatch (which redoes it per seed), so errors come early.
            Some(inpaint::telea(original, &m.inside, settings.inpaint_radius)?)
        } else {
            None
        };
        Ok(Editor { original, mask, styles, settings, inpainted })
    }

    /// Render the variation for `seed`. The same seed always gives the same bytes.
    pub fn render(&self, seed: u64) -> Raster {
        self.render_with(seed, true)
    }

    /// Whether the plan adds film grain (film grain or vintage), which a video animates per frame.
    pub fn wants_grain(&self) -> bool {
        self.styles.contains(&Style::FilmGrain) || self.styles.contains(&Style::Vintage)
    }

    /// Render the variation for `seed`, leaving film grain out when `grain` is false (a video adds
    /// fresh grain to every frame instead, as real film does).
    pub fn render_with(&self, seed: u64, grain: bool) -> Raster {
        let s = self.settings;
        // Only a fill makes a new full-size start; otherwise the planes are read off the original
        // directly (no copy of it: masked edits of big images are bounded by memory).
        let filled = match (&self.inpainted, self.mask, s.inpaint) {
            (Some(filled), Some(m), InpaintMethod::PatchMatch) => {
                // Its only failure (nothing known) was ruled out by Editor::new; Telea's fill is the fallback.
                Some(patchmatch::inpaint(self.original, &m.inside, filled, &mut SeededRng::new(seed, purpose::INPAINT)).unwrap_or_else(|_| filled.clone()))
            }
            (Some(filled), Some(m), InpaintMethod::Telea) => {
                Some(inpaint::match_grain(self.original, filled, &m.inside, s.inpaint_radius, &mut SeededRng::new(seed, purpose::INPAINT)))
            }
            _ => None,
        };
        let mut img = FloatImage::from_raster(filled.as_ref().unwrap_or(self.original));
        drop(filled);
        // Tonal amounts vary ±15 % between variations, so even plain adjustments give a choice.
        let mut amounts = SeededRng::new(seed, purpose::AMOUNTS);
        let strength = s.strength;
        let scale = detail_scale(&img);
        for &style in self.styles {
            let k = amounts.range(0.85, 1.15);
            match style {
                Style::Remove => {}
                Style::OilPainting => paint::oil_painting(&mut img, strength, &mut SeededRng::new(seed, purpose::STROKES)),
                Style::Watercolor => paint::watercolor(&mut img, strength, &mut SeededRng::new(seed, purpose::PAPER)),
                Style::Cartoon => cartoon::cartoon(&mut img, strength, CARTOON_COLORS, &mut SeededRng::new(seed, purpose::PALETTE)),
                Style::PencilSketch => sketch::pencil_sketch(&mut img, strength, &mut SeededRng::new(seed, purpose::STROKES)),
                Style::PopArt => quantize::pop_art(&mut img, s.levels, &mut SeededRng::new(seed, purpose::PALETTE)),
                Style::Posterize => quantize::posterize(&mut img, s.levels, 0.04, &mut SeededRng::new(seed, purpose::PALETTE)),
                Style::PixelArt => pixel::pixel_art(&mut img, s.pixel_size, s.pixel_colors, &mut SeededRng::new(seed, purpose::GRID)),
                Style::Noir => {
                    tone::monochrome(&mut img);
                    tone::contrast(&mut img, (0.45 + 0.4 * strength) * k);
                    film::vignette(&mut img, 0.45 * k);
                }
                Style::BlackAndWhite => {
                    tone::monochrome(&mut img);
                    tone::contrast(&mut img, 0.15 * k);
                }
                Style::Sepia => tone::sepia(&mut img, (0.6 + 0.4 * strength).min(1.0)),
                Style::Vintage => {
                    tone::sepia(&mut img, 0.55 * k);
                    tone::fade(&mut img, 0.07);
                    film::vignette(&mut img, 0.35 * k);
                    if grain {
                        film::film_grain(&mut img, s.grain, 0.6 + 0.5 * scale, &mut SeededRng::new(seed, purpose::GRAIN));
                    }
                }
                Style::Warmer => tone::white_balance(&mut img, strength * k),
                Style::Cooler => tone::white_balance(&mut img, -strength * k),
                Style::Brighter => tone::brightness(&mut img, 0.5 * strength * k),
                Style::Darker => tone::brightness(&mut img, -0.5 * strength * k),
                Style::MoreContrast => tone::contrast(&mut img, (0.2 + 0.5 * strength) * k),
                Style::Vignette => film::vignette(&mut img, (0.3 + 0.5 * strength) * k),
                Style::FilmGrain => {
                    // Vintage already added grain with the same stream; do not double it.
                    if grain && !self.styles.contains(&Style::Vintage) {
                        film::film_grain(&mut img, s.grain, 0.6 + 0.5 * scale, &mut SeededRng::new(seed, purpose::GRAIN));
                    }
                }
            }
        }
        img.clamp();
        match self.mask {
            // Blended straight from the planes: no full-size 8-bit copy of the edit in between.
            Some(m) => m.composite_planes(self.original, &img),
            None => img.to_raster(),
        }
    }
}
