//! Pixel art: average the picture over a grid of `size`-px cells, reduce the cells to a small palette,
//! and draw each cell as one flat block. The seed shifts the grid phase, so variations differ.

use super::noise::SeededRng;
use super::quantize::{palette_for, remap};
use super::tone;
use crate::raster::FloatImage;

/// Pixelate `img` into `size`-px blocks of at most `colors` colours.
pub fn pixel_art(img: &mut FloatImage, size: usize, colors: usize, rng: &mut SeededRng) {
    let (w, h) = (img.width, img.height);
    let size = size.max(1);
    let ox = (rng.uniform() * size as f32) as usize % size;
    let oy = (rng.uniform() * size as f32) as usize % size;
    // Cell (cx, cy) covers x in [cx*size - ox, (cx+1)*size - ox), clipped to the image.
    let cells_x = (w + ox).div_ceil(size);
    let cells_y = (h + oy).div_ceil(size);
    let mut cells = FloatImage {
        width: cells_x,
        height: cells_y,
        ch: [vec![0.0; cells_x * cells_y], vec![0.0; cells_x * cells_y], vec![0.0; cells_x * cells_y]],
        alpha: vec![255; cells_x * cells_y],
    };
    let mut counts = vec![0u32; cells_x * cells_y];
    for y in 0..h {
        for x in 0..w {
            let cell = ((y + oy) / size) * cells_x + (x + ox) / size;
            for c in 0..3 {
                cells.ch[c][cell] += img.ch[c][y * w + x];
            }
            counts[cell] += 1;
        }
    }
    for (cell, &n) in counts.iter().enumerate() {
        for c in 0..3 {
            cells.ch[c][cell] /= n.max(1) as f32;
        }
    }
    tone::saturation(&mut cells, 1.15);
    let palette = palette_for(&cells, colors);
    remap(&mut cells, &palette, &palette);
    for y in 0..h {
        for x in 0..w {
            let cell = ((y + oy) / size) * cells_x + (x + ox) / size;
            for c in 0..3 {
                img.ch[c][y * w + x] = cells.ch[c][cell];
            }
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
    fn blocks_are_flat_and_palette_is_small() {
        let raster = Raster::from_fn(64, 40, |x, y| [(x * 4) as u8, (y * 6) as u8, 128, 255]);
        let mut img = FloatImage::from_raster(&raster);
        pixel_art(&mut img, 8, 6, &mut SeededRng::new(0, purpose::GRID));
        let out = img.to_raster();
        let colours: BTreeSet<[u8; 3]> = out.px.chunks(4).map(|p| [p[0], p[1], p[2]]).collect();
        assert!(colours.len() <= 6);
        // Horizontal runs of equal colour are whole cells (8 px) except at the clipped borders.
        let row: Vec<[u8; 4]> = (0..64).map(|x| out.get(x, 20)).collect();
        let changes = row.windows(2).filter(|p| p[0] != p[1]).count();
        assert!(changes <= 64 / 8 + 1);
    }
}
