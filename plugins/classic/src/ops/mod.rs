//! The image operators, one module per family. All are pure functions over [`FloatImage`]s.

pub mod blur;
pub mod cartoon;
pub mod film;
pub mod kuwahara;
pub mod noise;
pub mod paint;
pub mod pixel;
pub mod quantize;
pub mod sketch;
pub mod smooth;
pub mod tone;

use crate::raster::FloatImage;

/// How much larger than a 512 px image this one is, so stylistic radii look the same at any size.
pub fn detail_scale(img: &FloatImage) -> f32 {
    (img.width.max(img.height) as f32 / 512.0).clamp(0.35, 4.0)
}
