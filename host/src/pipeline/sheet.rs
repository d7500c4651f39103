//! The contact sheet for n > 1: a grid of thumbnails with index and seed under each.

use crate::imageio::{self, DecodeLimits};
use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use anyhow::{Context, Result};
use image::{Rgba, RgbaImage, imageops};
use std::path::{Path, PathBuf};

/// The label font (DejaVu Sans Bold, shipped with the filters plugin; licence beside it).
static FONT: &[u8] = include_bytes!("../../../plugins/filters/assets/DejaVuSans-Bold.ttf");

/// One cell.
pub struct Tile<'a> {
    /// The output.
    pub image: &'a RgbaImage,
    /// Text under it, e.g. `#2  seed 1235`.
    pub label: String,
}

/// Lay out tiles in a near-square grid, each thumbnail at most `cell` px on its longer side.
pub fn contact_sheet(tiles: &[Tile<'_>], cell: u32) -> RgbaImage {
    let n = tiles.len().max(1) as u32;
    let cols = (n as f64).sqrt().ceil() as u32;
    let rows = n.div_ceil(cols);
    let (pad, label_h) = (12u32, 26u32);
    let (w, h) = (cols * (cell + pad) + pad, rows * (cell + label_h + pad) + pad);
    let mut sheet = RgbaImage::from_pixel(w, h, Rgba([24, 24, 24, 255]));
    let font = FontRef::try_from_slice(FONT).expect("the bundled font parses");
    for (i, t) in tiles.iter().enumerate() {
        let (c, r) = (i as u32 % cols, i as u32 / cols);
        let (x0, y0) = (pad + c * (cell + pad), pad + r * (cell + label_h + pad));
        let (tw, th) = fit(t.image.width(), t.image.height(), cell);
        // Thumbnails made by `thumbnail` already fit; only other images are resized here.
        let resized;
        let thumb = if (tw, th) == t.image.dimensions() {
            t.image
        } else {
            resized = imageops::resize(t.image, tw, th, imageops::FilterType::Triangle);
            &resized
        };
        // Bottom-aligned, so each label sits right under its picture.
        imageops::overlay(&mut sheet, thumb, (x0 + (cell - tw) / 2) as i64, (y0 + cell - th) as i64);
        draw_text(&mut sheet, &font, &t.label, x0 + 2, y0 + cell + 4, 16.0);
    }
    sheet
}

/// A file decoded with the host's limits and shrunk at once to at most `cell` px on its longer side;
/// the full-size buffer is dropped before this returns.
pub fn thumbnail(path: &Path, limits: DecodeLimits, cell: u32) -> Result<RgbaImage> {
    // The run's own outputs: no size cap beyond the pixel limits, but still only a regular file.
    let bytes = imageio::read_file(path, u64::MAX, imageio::FileKind::Image).with_context(|| format!("{}: cannot read for the contact sheet", path.display()))?;
    let full = imageio::decode_dynamic(&bytes, limits, &path.display().to_string())?;
    drop(bytes);
    Ok(full.thumbnail(cell, cell).into_rgba8())
}

/// The contact sheet of picture files with their labels, read one at a time and kept only as
/// thumbnails: memory holds one full-size picture plus `n` small ones, never `n` full ones.
/// Blocking (decoding): call it from `spawn_blocking`.
pub fn from_files(files: &[(PathBuf, String)], limits: DecodeLimits, cell: u32) -> Result<RgbaImage> {
    let mut thumbs = Vec::with_capacity(files.len());
    for (path, label) in files {
        thumbs.push((thumbnail(path, limits, cell)?, label.clone()));
    }
    let tiles: Vec<Tile> = thumbs.iter().map(|(image, label)| Tile { image, label: label.clone() }).collect();
    Ok(contact_sheet(&tiles, cell))
}

fn fit(w: u32, h: u32, cell: u32) -> (u32, u32) {
    let s = cell as f64 / w.max(h) as f64;
    (((w as f64 * s).round() as u32).max(1), ((h as f64 * s).round() as u32).max(1))
}

fn draw_text(img: &mut RgbaImage, font: &FontRef<'_>, text: &str, x: u32, y: u32, px: f32) {
    let scaled = font.as_scaled(PxScale::from(px));
    let mut caret = x as f32;
    let baseline = y as f32 + scaled.ascent();
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        let glyph = id.with_scale_and_position(PxScale::from(px), ab_glyph::point(caret, baseline));
        caret += scaled.h_advance(id);
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, cov| {
                let (px_, py_) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                if px_ >= 0 && py_ >= 0 && (px_ as u32) < img.width() && (py_ as u32) < img.height() {
                    let p = img.get_pixel_mut(px_ as u32, py_ as u32);
                    let a = cov.clamp(0.0, 1.0);
                    for k in 0..3 {
                        p.0[k] = (p.0[k] as f32 * (1.0 - a) + 235.0 * a) as u8;
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_holds_every_tile_and_draws_labels() {
        let img = RgbaImage::from_pixel(40, 20, Rgba([200, 0, 0, 255]));
        let tiles: Vec<Tile> = (0..3).map(|i| Tile { image: &img, label: format!("#{} seed {}", i + 1, 7 + i) }).collect();
        let s = contact_sheet(&tiles, 64);
        assert_eq!((s.width(), s.height()), (2 * 76 + 12, 2 * (64 + 26 + 12) + 12));
        // Label pixels are light on the dark background.
        let light = s.pixels().filter(|p| p.0[1] > 150).count();
        assert!(light > 20, "labels drawn: {light}");
    }

    #[test]
    fn sheets_from_files_hold_thumbnails_and_keep_to_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let limits = DecodeLimits { max_pixels: 1_000_000, max_dimension: 4096 };
        let mut files = vec![];
        for i in 0..3 {
            let p = dir.path().join(format!("{i}.png"));
            RgbaImage::from_pixel(600, 300, Rgba([0, 200, 0, 255])).save(&p).unwrap();
            files.push((p, format!("#{i}")));
        }
        let t = thumbnail(&files[0].0, limits, 64).unwrap();
        assert_eq!(t.dimensions(), (64, 32), "shrunk as soon as it is decoded");
        let s = from_files(&files, limits, 64).unwrap();
        assert_eq!((s.width(), s.height()), (2 * 76 + 12, 2 * (64 + 26 + 12) + 12));
        // An output whose header claims more than the limits is refused, never decoded.
        let bomb = dir.path().join("bomb.png");
        RgbaImage::from_pixel(2000, 1000, Rgba([0, 0, 0, 255])).save(&bomb).unwrap();
        files.push((bomb, "#4".into()));
        let e = from_files(&files, limits, 64).unwrap_err().to_string();
        assert!(e.contains("bomb.png") && e.contains("[limits] max_pixels"), "{e}");
    }
}
