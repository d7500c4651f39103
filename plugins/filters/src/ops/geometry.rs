//! `crop`, `rotate` and `flip`: moving pixels without changing them (except for rotations by
//! angles that are not multiples of 90, which resample bilinearly).

use super::{Rect, check_image};
use crate::color::Rgba;
use crate::params::{Args, MAX_SIDE};
use atelier_sdk::{Error, Image};

/// What `crop` was asked for.
#[derive(Clone, Debug)]
pub struct CropOptions {
    /// Region width.
    pub width: u32,
    /// Region height.
    pub height: u32,
    /// Offset from the anchor, inwards.
    pub x: u32,
    /// Offset from the anchor, inwards.
    pub y: u32,
    /// The anchor, one of [`crate::params::GRAVITY_CHOICES`].
    pub gravity: String,
}

impl CropOptions {
    /// Read `width`, `height`, `x`, `y`, `gravity`.
    pub fn from_args(args: &Args) -> Result<Self, Error> {
        let required = |name: &str| {
            args.side(name).ok_or_else(|| Error::invalid(format!("`crop` needs {name}= (the region's size in px)")))
        };
        Ok(CropOptions {
            width: required("width")?,
            height: required("height")?,
            x: args.side("x").unwrap_or(0),
            y: args.side("y").unwrap_or(0),
            gravity: args.text("gravity").unwrap_or("top-left").to_string(),
        })
    }

    /// The region in an image of `width` x `height`, or an error naming the image size when it reaches outside.
    pub fn region(&self, width: u32, height: u32) -> Result<Rect, Error> {
        let (w, h, dx, dy) = (self.width as i64, self.height as i64, self.x as i64, self.y as i64);
        let (iw, ih) = (width as i64, height as i64);
        let g = self.gravity.as_str();
        // Offsets push inwards from the anchored edge; centred axes move right/down.
        let left = if g.ends_with("right") {
            iw - w - dx
        } else if g.ends_with("left") {
            dx
        } else {
            (iw - w) / 2 + dx
        };
        let top = if g.starts_with("bottom") {
            ih - h - dy
        } else if g.starts_with("top") {
            dy
        } else {
            (ih - h) / 2 + dy
        };
        if left < 0 || top < 0 || left + w > iw || top + h > ih {
            return Err(Error::invalid(format!(
                "crop {w}x{h} at x={dx},y={dy} from {g} reaches outside the {width}x{height} image \
                 (it would span x {left}..{}, y {top}..{}); make it smaller or move it inside",
                left + w,
                top + h
            )));
        }
        Ok(Rect { x: left as u32, y: top as u32, width: self.width, height: self.height })
    }
}

/// Run `crop`.
pub fn crop(image: Image, opts: &CropOptions) -> Result<Image, Error> {
    check_image(&image)?;
    let rect = opts.region(image.width, image.height)?;
    Ok(crop_rect(image, rect))
}

/// Keep only `rect` (which must lie inside the image), moving rows down the same buffer.
pub fn crop_rect(mut image: Image, rect: Rect) -> Image {
    let stride = image.width as usize * 4;
    let row = rect.width as usize * 4;
    for i in 0..rect.height as usize {
        let from = (rect.y as usize + i) * stride + rect.x as usize * 4;
        // Row i lands at or before where it is read from, and earlier rows are done: no overlap is lost.
        image.pixels.copy_within(from..from + row, i * row);
    }
    image.pixels.truncate(row * rect.height as usize);
    Image { width: rect.width, height: rect.height, pixels: image.pixels }
}

/// What `rotate` was asked for.
#[derive(Clone, Copy, Debug)]
pub struct RotateOptions {
    /// Clockwise angle in degrees.
    pub degrees: f64,
    /// Grow the canvas so no corner is cut (arbitrary angles only).
    pub expand: bool,
    /// Fill for uncovered areas (arbitrary angles only).
    pub color: Rgba,
}

impl RotateOptions {
    /// Read `degrees`, `expand`, `color`.
    pub fn from_args(args: &Args) -> Result<Self, Error> {
        Ok(RotateOptions {
            degrees: args.number("degrees").unwrap_or(90.0),
            expand: args.boolean("expand").unwrap_or(true),
            color: Rgba::parse(args.text("color").unwrap_or("black"))?,
        })
    }
}

/// Run `rotate`.
pub fn rotate(image: Image, opts: &RotateOptions) -> Result<Image, Error> {
    check_image(&image)?;
    let degrees = opts.degrees.rem_euclid(360.0);
    let quarter = (degrees / 90.0).round();
    if (degrees - quarter * 90.0).abs() < 1e-9 {
        return Ok(match quarter as u32 % 4 {
            0 => image,
            1 => rotate_quarter(&image, true),
            2 => rotate_half(image),
            _ => rotate_quarter(&image, false),
        });
    }
    rotate_any(&image, degrees, opts.expand, opts.color)
}

/// Rotate by 90 degrees (clockwise when `clockwise`), in cache-friendly tiles.
fn rotate_quarter(image: &Image, clockwise: bool) -> Image {
    let (w, h) = (image.width as usize, image.height as usize);
    let src = image.pixels.as_chunks::<4>().0;
    let mut out = vec![[0u8; 4]; w * h];
    const TILE: usize = 64;
    // Output is h wide and w tall. Clockwise: out(x', y') = in(y', h-1-x').
    for ty in (0..h).step_by(TILE) {
        for tx in (0..w).step_by(TILE) {
            for y in ty..(ty + TILE).min(h) {
                for x in tx..(tx + TILE).min(w) {
                    let (ox, oy) = if clockwise { (h - 1 - y, x) } else { (y, w - 1 - x) };
                    out[oy * h + ox] = src[y * w + x];
                }
            }
        }
    }
    Image { width: image.height, height: image.width, pixels: out.into_flattened() }
}

/// Rotate by 180 degrees in place: the pixel order reversed.
fn rotate_half(mut image: Image) -> Image {
    image.pixels.as_chunks_mut::<4>().0.reverse();
    image
}

/// Rotate by any angle with bilinear sampling; areas outside the source take `fill`, and edges are
/// anti-aliased against it.
fn rotate_any(image: &Image, degrees: f64, expand: bool, fill: Rgba) -> Result<Image, Error> {
    let (w, h) = (image.width as f64, image.height as f64);
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (out_w, out_h) = if expand {
        let side = |v: f64| (v - 1e-6).ceil().max(1.0);
        (side(w * cos.abs() + h * sin.abs()), side(w * sin.abs() + h * cos.abs()))
    } else {
        (w, h)
    };
    if out_w > MAX_SIDE as f64 || out_h > MAX_SIDE as f64 {
        return Err(Error::invalid(format!(
            "rotating {}x{} by {degrees} degrees needs a {out_w}x{out_h} canvas, larger than {MAX_SIDE} px; use expand=false",
            image.width, image.height
        )));
    }
    super::check_output_size("rotate", out_w as u32, out_h as u32)?;
    let (ow, oh) = (out_w as usize, out_h as usize);
    let src = image.pixels.as_chunks::<4>().0;
    let (iw, ih) = (image.width as i64, image.height as i64);
    // Premultiplied fill, so blending transparent fill does not darken edges.
    let fa = fill.0[3] as f32 / 255.0;
    let fill_pm = [fill.0[0] as f32 * fa, fill.0[1] as f32 * fa, fill.0[2] as f32 * fa, fill.0[3] as f32];
    let tap = |x: i64, y: i64| -> [f32; 4] {
        if x < 0 || y < 0 || x >= iw || y >= ih {
            return fill_pm;
        }
        let p = src[(y * iw + x) as usize];
        let a = p[3] as f32 / 255.0;
        [p[0] as f32 * a, p[1] as f32 * a, p[2] as f32 * a, p[3] as f32]
    };
    let mut out = Vec::with_capacity(ow * oh * 4);
    let (cx, cy, ocx, ocy) = (w / 2.0, h / 2.0, out_w / 2.0, out_h / 2.0);
    for oy in 0..oh {
        let dy = oy as f64 + 0.5 - ocy;
        for ox in 0..ow {
            let dx = ox as f64 + 0.5 - ocx;
            // Inverse of the clockwise rotation (screen coordinates, y down), to pixel-centre space.
            let sx = dx * cos + dy * sin + cx - 0.5;
            let sy = -dx * sin + dy * cos + cy - 0.5;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (p00, p10, p01, p11) = (tap(x0, y0), tap(x0 + 1, y0), tap(x0, y0 + 1), tap(x0 + 1, y0 + 1));
            let mut v = [0f32; 4];
            for c in 0..4 {
                let top = p00[c] + (p10[c] - p00[c]) * fx;
                let bottom = p01[c] + (p11[c] - p01[c]) * fx;
                v[c] = top + (bottom - top) * fy;
            }
            let a = v[3];
            let un = |c: f32| if a > 0.0 { (c * 255.0 / a + 0.5).clamp(0.0, 255.0) as u8 } else { 0 };
            out.extend_from_slice(&[un(v[0]), un(v[1]), un(v[2]), (a + 0.5).clamp(0.0, 255.0) as u8]);
        }
    }
    Ok(Image { width: ow as u32, height: oh as u32, pixels: out })
}

/// Which way `flip` mirrors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlipDirection {
    /// Left-right.
    Horizontal,
    /// Top-bottom.
    Vertical,
}

impl FlipDirection {
    /// Read `direction`.
    pub fn from_args(args: &Args) -> Self {
        match args.text("direction") {
            Some("vertical") => FlipDirection::Vertical,
            _ => FlipDirection::Horizontal,
        }
    }
}

/// Run `flip`, in place.
pub fn flip(mut image: Image, direction: FlipDirection) -> Result<Image, Error> {
    check_image(&image)?;
    let stride = image.width as usize * 4;
    match direction {
        FlipDirection::Horizontal => {
            for row in image.pixels.chunks_exact_mut(stride) {
                row.as_chunks_mut::<4>().0.reverse();
            }
        }
        FlipDirection::Vertical => {
            let h = image.height as usize;
            for y in 0..h / 2 {
                let (top, bottom) = image.pixels.split_at_mut((h - 1 - y) * stride);
                top[y * stride..(y + 1) * stride].swap_with_slice(&mut bottom[..stride]);
            }
        }
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{pattern, px};
    use atelier_sdk::Param;

    fn crop_with(image: Image, params: &[Param]) -> Result<Image, Error> {
        crop(image, &CropOptions::from_args(&Args::new("crop", params)?)?)
    }

    fn rotate_by(image: Image, degrees: f64) -> Image {
        let params = [Param::new("degrees", degrees)];
        let args = Args::new("rotate", &params).unwrap();
        rotate(image, &RotateOptions::from_args(&args).unwrap()).unwrap()
    }

    #[test]
    fn crop_gives_exact_size_and_pixels() {
        let image = pattern(50, 40);
        let out = crop_with(
            image.clone(),
            &[Param::new("width", 20i64), Param::new("height", 10i64), Param::new("x", 5i64), Param::new("y", 7i64)],
        )
        .unwrap();
        assert_eq!((out.width, out.height, out.pixels.len()), (20, 10, 800));
        assert_eq!(px(&out, 0, 0), px(&image, 5, 7));
        assert_eq!(px(&out, 19, 9), px(&image, 24, 16));
    }

    #[test]
    fn crop_gravity_anchors_the_region() {
        let image = pattern(50, 40);
        let sized = |g: &str, x: i64| {
            vec![Param::new("width", 10i64), Param::new("height", 10i64), Param::new("gravity", g), Param::new("x", x)]
        };
        let out = crop_with(image.clone(), &sized("center", 0)).unwrap();
        assert_eq!(px(&out, 0, 0), px(&image, 20, 15));
        let out = crop_with(image.clone(), &sized("bottom-right", 2)).unwrap();
        assert_eq!(px(&out, 9, 9), px(&image, 47, 39));
    }

    #[test]
    fn crop_outside_the_image_names_its_size() {
        let err = crop_with(pattern(50, 40), &[Param::new("width", 30i64), Param::new("height", 10i64), Param::new("x", 25i64)])
            .unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("50x40 image") && m.contains("x 25..55")), "{err:?}");
        let err = crop_with(pattern(50, 40), &[Param::new("width", 10i64)]).unwrap_err();
        assert!(matches!(&err, Error::InvalidInput(m) if m.contains("height")), "{err:?}");
    }

    #[test]
    fn quarter_turns_are_exact() {
        let image = pattern(30, 20);
        let cw = rotate_by(image.clone(), 90.0);
        assert_eq!((cw.width, cw.height), (20, 30));
        // The top-left corner goes to the top-right.
        assert_eq!(px(&cw, 19, 0), px(&image, 0, 0));
        assert_eq!(px(&cw, 0, 0), px(&image, 0, 19));
        let ccw = rotate_by(image.clone(), -90.0);
        assert_eq!((ccw.width, ccw.height), (20, 30));
        assert_eq!(px(&ccw, 0, 29), px(&image, 0, 0));
        assert_eq!(rotate_by(image.clone(), 270.0).pixels, ccw.pixels);
        let half = rotate_by(image.clone(), 180.0);
        assert_eq!((half.width, half.height), (30, 20));
        assert_eq!(px(&half, 29, 19), px(&image, 0, 0));
        assert_eq!(rotate_by(image.clone(), 360.0).pixels, image.pixels);
        assert_eq!(rotate_by(rotate_by(image.clone(), 90.0), 270.0).pixels, image.pixels);
    }

    #[test]
    fn arbitrary_angle_expands_and_fills() {
        let image = super::super::solid(40, 20, Rgba([255, 255, 255, 255]));
        let out = rotate_by(image.clone(), 45.0);
        let side = (60.0 / 2f64.sqrt()).ceil() as u32; // (40 + 20) * sin 45
        assert_eq!((out.width, out.height), (side, side));
        assert_eq!(px(&out, 0, 0), [0, 0, 0, 255]);
        assert_eq!(px(&out, side / 2, side / 2), [255, 255, 255, 255]);
        let params = [Param::new("degrees", 30.0), Param::new("expand", false)];
        let args = Args::new("rotate", &params).unwrap();
        let kept = rotate(image, &RotateOptions::from_args(&args).unwrap()).unwrap();
        assert_eq!((kept.width, kept.height), (40, 20));
    }

    #[test]
    fn flips_mirror() {
        let image = pattern(7, 5);
        let h = flip(image.clone(), FlipDirection::Horizontal).unwrap();
        assert_eq!(px(&h, 0, 1), px(&image, 6, 1));
        let v = flip(image.clone(), FlipDirection::Vertical).unwrap();
        assert_eq!(px(&v, 3, 0), px(&image, 3, 4));
        assert_eq!(px(&v, 3, 2), px(&image, 3, 2));
        assert_eq!(flip(v, FlipDirection::Vertical).unwrap().pixels, image.pixels);
    }
}
