//! Decoding with limits checked before any pixel is decoded, and encoding with provenance.

use crate::wit_types::Image;
use anyhow::{Context, Result, bail};
use std::io::Cursor;
use std::path::Path;

/// Limits on what the host decodes.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Most pixels (width × height).
    pub max_pixels: u64,
    /// Most pixels along one side.
    pub max_dimension: u32,
}

/// The media type of encoded bytes, by magic number (images via the `image` crate, plus MP4).
pub fn sniff_mime(bytes: &[u8]) -> Option<&'static str> {
    match image::guess_format(bytes) {
        Ok(image::ImageFormat::Png) => Some("image/png"),
        Ok(image::ImageFormat::Jpeg) => Some("image/jpeg"),
        Ok(image::ImageFormat::WebP) => Some("image/webp"),
        Ok(image::ImageFormat::Gif) => Some("image/gif"),
        _ if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" => Some("video/mp4"),
        _ => None,
    }
}

/// The usual file extension of a media type.
pub fn extension(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        _ => "bin",
    }
}

/// Decode encoded bytes to RGBA8, refusing oversized images from their header alone.
pub fn decode(bytes: &[u8], limits: DecodeLimits, name: &str) -> Result<Image> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .with_context(|| format!("{name}: cannot read"))?;
    if reader.format().is_none() {
        bail!("{name}: not an image atelier can read (PNG, JPEG, WebP or GIF)");
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| anyhow::anyhow!("{name}: unreadable or truncated image header: {e}"))?;
    check_size(w, h, limits, name)?;
    let mut reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_dimension);
    l.max_image_height = Some(limits.max_dimension);
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(64 << 20));
    reader.limits(l);
    let img = reader.decode().map_err(|e| anyhow::anyhow!("{name}: cannot decode ({e}); the file may be truncated or corrupt"))?;
    let rgba = img.into_rgba8();
    Ok(Image { width: rgba.width(), height: rgba.height(), pixels: rgba.into_raw() })
}

/// Read and decode a file.
pub fn read(path: &Path, limits: DecodeLimits) -> Result<(Image, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let img = decode(&bytes, limits, &path.display().to_string())?;
    Ok((img, bytes))
}

/// Refuse sizes over the limits, naming the setting that raises them.
pub fn check_size(w: u32, h: u32, limits: DecodeLimits, name: &str) -> Result<()> {
    if w == 0 || h == 0 {
        bail!("{name}: the image is empty ({w}x{h})");
    }
    if w > limits.max_dimension || h > limits.max_dimension {
        bail!(
            "{name}: {w}x{h} is larger than the {} px side limit; refused before decoding (raise [limits] max_dimension in atelier.toml if it is genuine)",
            limits.max_dimension
        );
    }
    if w as u64 * h as u64 > limits.max_pixels {
        bail!(
            "{name}: {w}x{h} = {} Mpx is more than the {} Mpx limit; refused before decoding (raise [limits] max_pixels in atelier.toml if it is genuine)",
            (w as u64 * h as u64) / 1_000_000,
            limits.max_pixels / 1_000_000
        );
    }
    Ok(())
}

/// Encode RGBA8 as PNG, with an optional `atelier` iTXt chunk (the provenance JSON).
pub fn encode_png(img: &Image, provenance: Option<&str>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, img.width, img.height);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        if let Some(p) = provenance {
            enc.add_itxt_chunk("atelier".into(), p.into())?;
        }
        let mut w = enc.write_header()?;
        w.write_image_data(&img.pixels)?;
        w.finish()?;
    }
    Ok(out)
}

/// Encode in a given media type (PNG for anything unknown).
pub fn encode(img: &Image, mime: &str) -> Result<Vec<u8>> {
    let buf = image::RgbaImage::from_raw(img.width, img.height, img.pixels.clone())
        .ok_or_else(|| anyhow::anyhow!("pixel buffer does not match {}x{}", img.width, img.height))?;
    let mut out = Cursor::new(Vec::new());
    match mime {
        "image/jpeg" => image::DynamicImage::ImageRgba8(buf).into_rgb8().write_to(&mut out, image::ImageFormat::Jpeg)?,
        "image/webp" => buf.write_to(&mut out, image::ImageFormat::WebP)?,
        _ => return encode_png(img, None),
    }
    Ok(out.into_inner())
}

/// The `atelier` text chunk of a PNG, if present.
pub fn read_png_provenance(bytes: &[u8]) -> Option<String> {
    let decoder = png::Decoder::new(Cursor::new(bytes));
    let reader = decoder.read_info().ok()?;
    let info = reader.info();
    info.utf8_text.iter().find(|c| c.keyword == "atelier").and_then(|c| c.get_text().ok())
}

/// The same PNG with its `atelier` provenance chunk replaced by `text` (added before the image
/// data if it had none). Chunk surgery, so the pixels are not decoded and re-encoded.
pub fn replace_png_provenance(bytes: &[u8], text: &str) -> Result<Vec<u8>> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    anyhow::ensure!(bytes.starts_with(SIGNATURE), "not a PNG");
    let mut itxt = b"atelier\0\0\0\0\0".to_vec(); // keyword, uncompressed, no language, no translation
    itxt.extend_from_slice(text.as_bytes());
    let mut out = Vec::with_capacity(bytes.len() + itxt.len());
    out.extend_from_slice(SIGNATURE);
    let (mut at, mut written) = (SIGNATURE.len(), false);
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into()?) as usize;
        let end = at + 12 + len;
        anyhow::ensure!(end <= bytes.len(), "a PNG chunk runs past the end of the file");
        let (kind, data) = (&bytes[at + 4..at + 8], &bytes[at + 8..at + 8 + len]);
        if !written && (kind == b"IDAT" || kind == b"IEND") {
            out.extend_from_slice(&(itxt.len() as u32).to_be_bytes());
            let start = out.len();
            out.extend_from_slice(b"iTXt");
            out.extend_from_slice(&itxt);
            let crc = crc32fast::hash(&out[start..]);
            out.extend_from_slice(&crc.to_be_bytes());
            written = true;
        }
        if !(kind == b"iTXt" && data.starts_with(b"atelier\0")) {
            out.extend_from_slice(&bytes[at..end]);
        }
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_is_replaced_without_touching_the_pixels() {
        let img = Image { width: 3, height: 2, pixels: (0..24).map(|v| v as u8 * 10).collect() };
        let bytes = encode_png(&img, Some("{\"path\":\"/secret/dir/in.png\"}")).unwrap();
        let new = replace_png_provenance(&bytes, "{\"path\":\"in.png\"}").unwrap();
        assert_eq!(read_png_provenance(&new).as_deref(), Some("{\"path\":\"in.png\"}"));
        assert!(!String::from_utf8_lossy(&new).contains("/secret/dir"));
        let limits = DecodeLimits { max_pixels: 100, max_dimension: 10 };
        assert_eq!(decode(&new, limits, "t").unwrap().pixels, img.pixels);
        // A PNG without one gets one.
        let plain = encode_png(&img, None).unwrap();
        assert_eq!(read_png_provenance(&replace_png_provenance(&plain, "{}").unwrap()).as_deref(), Some("{}"));
        assert!(replace_png_provenance(b"GIF89a", "{}").is_err());
    }

    #[test]
    fn png_round_trips_with_provenance() {
        let img = Image { width: 2, height: 1, pixels: vec![255, 0, 0, 255, 0, 255, 0, 255] };
        let bytes = encode_png(&img, Some("{\"engine\":\"x\"}")).unwrap();
        let back = decode(&bytes, DecodeLimits { max_pixels: 100, max_dimension: 10 }, "t").unwrap();
        assert_eq!(back.pixels, img.pixels);
        assert_eq!(read_png_provenance(&bytes).unwrap(), "{\"engine\":\"x\"}");
    }

    #[test]
    fn bomb_header_is_refused_before_decoding() {
        // A real 1x1 PNG whose header (with a valid CRC) claims 100000x100000.
        let mut png = encode_png(&Image { width: 1, height: 1, pixels: vec![0; 4] }, None).unwrap();
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32fast::hash(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = decode(&png, DecodeLimits { max_pixels: 100_000_000, max_dimension: 32768 }, "bomb.png").unwrap_err();
        assert!(e.to_string().contains("refused before decoding"), "{e}");
    }
}
