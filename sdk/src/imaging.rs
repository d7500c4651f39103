//! Decode references and masks, encode PNG: the codecs a provider plugin needs, so it does not add
//! its own (feature `image`; re-exports the [`image`] crate for anything more).
//!
//! **The mask a plugin receives** (`Request::mask`, when the model sets `supports_mask`): a PNG the
//! host encodes from the user's mask after the input plan, so it is exactly the size of the first
//! reference as sent. It is 8-bit RGBA; the meaning is in the colour, **white = edit, black =
//! keep**, and its alpha is whatever the user's file had (no meaning). [`decode_mask`] reads it as
//! luminance (a pixel is "edit" when its grey level is at least 128); [`mask_as_transparency`]
//! turns it into the convention of OpenAI's image edits (transparent = edit).

pub use image;

use crate::{Error, Image, Media};
use image::{GrayImage, ImageFormat, RgbaImage};

/// The grey level from which a mask pixel means "edit".
pub const MASK_THRESHOLD: u8 = 128;

/// Decode an encoded image (PNG, JPEG, WebP, GIF) to RGBA8.
pub fn decode(media: &Media) -> Result<RgbaImage, Error> {
    let format = ImageFormat::from_mime_type(&media.mime);
    let decoded = match format {
        Some(f) => image::load_from_memory_with_format(&media.bytes, f).or_else(|_| image::load_from_memory(&media.bytes)),
        None => image::load_from_memory(&media.bytes),
    };
    decoded
        .map(|i| i.into_rgba8())
        .map_err(|e| Error::Internal(format!("cannot decode the {} image the host sent ({} bytes): {e}", media.mime, media.bytes.len())))
}

/// Decode a mask to its grey levels (white = edit): Rec. 601 luminance of each pixel.
pub fn decode_mask(media: &Media) -> Result<GrayImage, Error> {
    let rgba = decode(media)?;
    Ok(GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, _] = rgba.get_pixel(x, y).0;
        image::Luma([((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8])
    }))
}

/// The mask as a PNG in OpenAI's convention: fully transparent where atelier's mask is white
/// (edit), opaque black elsewhere.
pub fn mask_as_transparency(media: &Media) -> Result<Vec<u8>, Error> {
    let grey = decode_mask(media)?;
    let rgba = RgbaImage::from_fn(grey.width(), grey.height(), |x, y| {
        if grey.get_pixel(x, y).0[0] >= MASK_THRESHOLD { image::Rgba([0, 0, 0, 0]) } else { image::Rgba([0, 0, 0, 255]) }
    });
    encode_png(&rgba)
}

/// Encode RGBA8 as PNG.
pub fn encode_png(img: &RgbaImage) -> Result<Vec<u8>, Error> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).map_err(|e| Error::Internal(format!("cannot encode a {}x{} PNG: {e}", img.width(), img.height())))?;
    Ok(out.into_inner())
}

/// A contract [`Image`] (what a filter receives) as an [`RgbaImage`], checking its length.
pub fn to_rgba(img: Image) -> Result<RgbaImage, Error> {
    let (w, h, len) = (img.width, img.height, img.pixels.len());
    RgbaImage::from_raw(w, h, img.pixels).ok_or_else(|| Error::invalid(format!("a {w}x{h} image needs {} RGBA bytes, got {len}", w as u64 * h as u64 * 4)))
}

/// An [`RgbaImage`] as a contract [`Image`].
pub fn from_rgba(img: RgbaImage) -> Image {
    Image { width: img.width(), height: img.height(), pixels: img.into_raw() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: &RgbaImage) -> Media {
        Media { mime: "image/png".into(), bytes: encode_png(img).unwrap() }
    }

    #[test]
    fn masks_read_as_luminance_and_convert_to_transparency() {
        // Left pixel white (edit), right pixel black (keep); alpha carries no meaning.
        let mask = RgbaImage::from_raw(2, 1, vec![255, 255, 255, 0, 0, 0, 0, 255]).unwrap();
        let grey = decode_mask(&png(&mask)).unwrap();
        assert_eq!(grey.as_raw(), &vec![255, 0]);
        let openai = decode(&Media { mime: "image/png".into(), bytes: mask_as_transparency(&png(&mask)).unwrap() }).unwrap();
        assert_eq!(openai.as_raw(), &vec![0, 0, 0, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn decode_names_what_failed_and_rgba_checks_length() {
        let e = decode(&Media { mime: "image/png".into(), bytes: b"not a png".to_vec() }).unwrap_err();
        assert!(matches!(e, Error::Internal(m) if m.contains("image/png") && m.contains("9 bytes")));
        assert!(to_rgba(Image { width: 2, height: 2, pixels: vec![0; 15] }).is_err());
        let img = to_rgba(Image { width: 1, height: 1, pixels: vec![1, 2, 3, 4] }).unwrap();
        assert_eq!(from_rgba(img).pixels, [1, 2, 3, 4]);
    }
}
