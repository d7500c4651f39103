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

/// The media type of encoded bytes, by magic number (images via the `image` crate, plus MP4 and
/// WebM). An ISO-BMFF file whose brand is a still-image one (HEIC, AVIF) is not taken for an MP4.
pub fn sniff_mime(bytes: &[u8]) -> Option<&'static str> {
    match image::guess_format(bytes) {
        Ok(image::ImageFormat::Png) => Some("image/png"),
        Ok(image::ImageFormat::Jpeg) => Some("image/jpeg"),
        Ok(image::ImageFormat::WebP) => Some("image/webp"),
        Ok(image::ImageFormat::Gif) => Some("image/gif"),
        _ if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" => {
            const STILL: [&[u8; 4]; 9] = [b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"];
            (!STILL.iter().any(|b| &bytes[8..12] == *b)).then_some("video/mp4")
        }
        _ if bytes.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) => Some("video/webm"),
        _ => None,
    }
}

/// Whether the bytes of an artifact are what the plugin labelled them, given the first bytes
/// (64 are plenty). `Ok`: the media type to store them as. Images and videos are the two kinds:
/// within a kind the bytes win (providers mix up PNG and JPEG labels, and a GIF passes as either),
/// a generic label (`application/octet-stream`, none) takes what the bytes are, anything else is
/// refused. `Err`: the rest of a sentence "labelled X, but …" saying what the bytes are instead.
pub fn check_claimed(claimed: &str, head: &[u8]) -> std::result::Result<&'static str, String> {
    let label = claimed.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (kind, formats) = if label.starts_with("image/") {
        ("an image", "PNG, JPEG, WebP or GIF")
    } else if label.starts_with("video/") {
        ("a video", "MP4, WebM or GIF")
    } else if label.is_empty() || label == "application/octet-stream" || label == "binary/octet-stream" {
        ("any media type atelier writes", "PNG, JPEG, WebP, GIF, MP4 or WebM")
    } else {
        return Err(format!(
            "that is not a media type atelier writes (images: PNG, JPEG, WebP, GIF; videos: MP4, WebM; {})",
            sniff_mime(head).map(|m| format!("the bytes are {m}")).unwrap_or_else(|| starts_with(head))
        ));
    };
    match sniff_mime(head) {
        None => Err(format!("its bytes are not {kind} ({}; atelier writes {formats})", starts_with(head))),
        Some(m) if m != "image/gif" && label.starts_with("video/") && m.starts_with("image/") => Err(format!("its bytes are a still image ({m}), not a video")),
        Some(m) if label.starts_with("image/") && m.starts_with("video/") => Err(format!("its bytes are a video ({m}), not an image")),
        Some(m) => Ok(m),
    }
}

/// `they start with `<html><bo`` for a refusal message: up to 16 bytes, printable ASCII as is,
/// anything else as `\xNN`, so binary junk cannot garble a terminal.
fn starts_with(head: &[u8]) -> String {
    if head.is_empty() {
        return "they are empty".into();
    }
    let shown: String = head
        .iter()
        .take(16)
        .map(|&b| if (0x20..0x7f).contains(&b) && b != b'`' { (b as char).to_string() } else { format!("\\x{b:02x}") })
        .collect();
    format!("they start with `{shown}`")
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
    let rgba = decode_dynamic(bytes, limits, name)?.into_rgba8();
    Ok(Image { width: rgba.width(), height: rgba.height(), pixels: rgba.into_raw() })
}

/// Decode encoded bytes in their own pixel format, refusing oversized images from their header
/// alone (for a GIF, its logical screen and every frame's descriptor). The one decoding path for
/// inputs and for everything a plugin returns.
pub fn decode_dynamic(bytes: &[u8], limits: DecodeLimits, name: &str) -> Result<image::DynamicImage> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .with_context(|| format!("{name}: cannot read"))?;
    match reader.format() {
        None => bail!("{name}: not an image atelier can read (PNG, JPEG, WebP or GIF)"),
        Some(image::ImageFormat::Gif) => check_gif(bytes, limits, name)?,
        Some(_) => {}
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
    reader.decode().map_err(|e| anyhow::anyhow!("{name}: cannot decode ({e}); the file may be truncated or corrupt"))
}

/// Read and decode a file.
pub fn read(path: &Path, limits: DecodeLimits) -> Result<(Image, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let img = decode(&bytes, limits, &path.display().to_string())?;
    Ok((img, bytes))
}

/// Which limit a `w`×`h` picture breaks, if any: how (to follow "is") and the `[limits]` key that
/// governs it. In `u64`, `w × h` of two `u32`s cannot overflow.
fn over_limit(w: u32, h: u32, limits: DecodeLimits) -> Option<(String, &'static str)> {
    if w > limits.max_dimension || h > limits.max_dimension {
        return Some((format!("larger than the {} px side limit", limits.max_dimension), "max_dimension"));
    }
    let px = u64::from(w) * u64::from(h);
    (px > limits.max_pixels).then(|| (format!("{}, more than the {} limit", pixels(px), pixels(limits.max_pixels)), "max_pixels"))
}

/// `121 Mpx`, or `4000 px` under a megapixel (so a small test limit is not shown as 0 Mpx).
fn pixels(n: u64) -> String {
    if n >= 1_000_000 { format!("{} Mpx", n / 1_000_000) } else { format!("{n} px") }
}

/// Refuse sizes over the limits, naming the setting that raises them.
pub fn check_size(w: u32, h: u32, limits: DecodeLimits, name: &str) -> Result<()> {
    if w == 0 || h == 0 {
        bail!("{name}: the image is empty ({w}x{h})");
    }
    if let Some((what, key)) = over_limit(w, h, limits) {
        bail!("{name}: {w}x{h} is {what}; refused before decoding (raise [limits] {key} in atelier.toml if it is genuine)");
    }
    Ok(())
}

/// Refuse an input size a model asked for in `prepare` (`who` names it) when no image of that
/// size could be made within the limits; nothing has been sent yet.
pub fn check_asked_size(w: u32, h: u32, limits: DecodeLimits, who: &str) -> Result<()> {
    if w == 0 || h == 0 {
        bail!("{who} asked for inputs of exactly {w}x{h}, an empty size; nothing was sent (a bug in the plugin: report it to its author)");
    }
    if let Some((what, key)) = over_limit(w, h, limits) {
        bail!("{who} asked for inputs of exactly {w}x{h}, which is {what}; nothing was sent (raise [limits] {key} in atelier.toml if such sizes are genuine, else report it to the plugin's author)");
    }
    Ok(())
}

/// Check an RGBA image a plugin handed back (a filter's result) before any pixel is used: its size
/// against the host's limits, then that it really carries `width × height × 4` bytes — with
/// checked arithmetic, so 2^31 × 2^31 with no pixels cannot pass by wrapping to 0. `who` names
/// the plugin, e.g. "filter plugin `x` (step `lie`)".
pub fn check_image(img: &Image, limits: DecodeLimits, who: &str) -> Result<()> {
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 {
        bail!("{who} returned an empty image ({w}x{h}); it was refused (a bug in the plugin: report it to its author)");
    }
    if let Some((what, key)) = over_limit(w, h, limits) {
        bail!("{who} returned a {w}x{h} image, which is {what}; it was refused (raise [limits] {key} in atelier.toml if such images are genuine)");
    }
    let expected = (w as usize).checked_mul(h as usize).and_then(|p| p.checked_mul(4));
    if expected != Some(img.pixels.len()) {
        bail!(
            "{who} returned a malformed image: {w}x{h} needs {} bytes of RGBA but it carries {}; it was refused (a bug in the plugin: report it to its author)",
            expected.map_or("more".to_string(), |n| n.to_string()),
            img.pixels.len()
        );
    }
    Ok(())
}

/// Check a GIF's logical screen and every frame's size against the limits by walking its blocks
/// (no LZW data is decompressed): a frame may claim far more than the screen it sits on.
/// A truncated file passes with what it has; the decoder reports the truncation itself.
pub fn check_gif(bytes: &[u8], limits: DecodeLimits, name: &str) -> Result<()> {
    let b = bytes;
    if b.len() < 13 || !(b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a")) {
        bail!("{name}: not a GIF (no GIF87a/GIF89a header)");
    }
    let le = |at: usize| u32::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let (w, h) = (le(6), le(8));
    if w == 0 || h == 0 {
        bail!("{name}: the GIF's logical screen is empty ({w}x{h})");
    }
    if let Some((what, key)) = over_limit(w, h, limits) {
        bail!("{name}: the GIF's logical screen ({w}x{h}) is {what}; refused before decoding (raise [limits] {key} in atelier.toml if it is genuine)");
    }
    let table = |packed: u8| if packed & 0x80 != 0 { 3usize << ((packed & 7) + 1) } else { 0 };
    let mut at = 13 + table(b[10]);
    let mut frame = 0u64;
    loop {
        match b.get(at) {
            None | Some(0x3b) => return Ok(()),
            // Extension: introducer, label, then data sub-blocks.
            Some(0x21) => at = skip_sub_blocks(b, at + 2),
            Some(0x2c) => {
                if at + 10 > b.len() {
                    return Ok(());
                }
                frame += 1;
                let (w, h) = (le(at + 5), le(at + 7));
                if let Some((what, key)) = over_limit(w, h, limits) {
                    bail!("{name}: GIF frame {frame} ({w}x{h}) is {what}; refused before decoding (raise [limits] {key} in atelier.toml if it is genuine)");
                }
                // Descriptor, local colour table, LZW minimum code size, then the data sub-blocks.
                at = skip_sub_blocks(b, at + 10 + table(b[at + 9]) + 1);
            }
            Some(other) => bail!("{name}: not a well-formed GIF (unexpected block 0x{other:02x} at byte {at}); refused"),
        }
    }
}

/// The position after a run of GIF data sub-blocks (each a length byte and that many bytes,
/// ended by a zero length) starting at `at`.
fn skip_sub_blocks(b: &[u8], mut at: usize) -> usize {
    while let Some(&len) = b.get(at) {
        at += 1 + len as usize;
        if len == 0 {
            break;
        }
    }
    at
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

    /// A 1×1-pixel GIF whose logical screen and only frame claim the given sizes.
    fn gif(screen: (u16, u16), frame: (u16, u16)) -> Vec<u8> {
        let mut g = b"GIF89a".to_vec();
        g.extend_from_slice(&screen.0.to_le_bytes());
        g.extend_from_slice(&screen.1.to_le_bytes());
        g.extend_from_slice(&[0x80, 0, 0, 0xff, 0xff, 0xff, 0, 0, 0]);
        g.extend_from_slice(&[0x21, 0xf9, 4, 0, 0, 0, 0, 0]); // a graphic control extension to skip
        g.extend_from_slice(&[0x2c, 0, 0, 0, 0]);
        g.extend_from_slice(&frame.0.to_le_bytes());
        g.extend_from_slice(&frame.1.to_le_bytes());
        g.extend_from_slice(&[0, 2, 2, 0x44, 0x01, 0, 0x3b]);
        g
    }

    const LIMITS: DecodeLimits = DecodeLimits { max_pixels: 100_000_000, max_dimension: 32768 };

    #[test]
    fn gif_screen_and_frames_are_checked_before_decoding() {
        assert_eq!(decode(&gif((1, 1), (1, 1)), LIMITS, "ok.gif").unwrap().pixels, vec![255, 255, 255, 255]);
        let e = decode(&gif((11000, 11000), (1, 1)), LIMITS, "screen.gif").unwrap_err().to_string();
        assert!(e.contains("screen.gif: the GIF's logical screen (11000x11000) is 121 Mpx, more than the 100 Mpx limit") && e.contains("[limits] max_pixels"), "{e}");
        let e = check_gif(&gif((1, 1), (11000, 11000)), LIMITS, "frame.gif").unwrap_err().to_string();
        assert!(e.contains("GIF frame 1 (11000x11000) is 121 Mpx") && e.contains("refused before decoding"), "{e}");
        let small = DecodeLimits { max_pixels: 1000, max_dimension: 50 };
        let e = check_gif(&gif((10, 10), (60, 1)), small, "wide.gif").unwrap_err().to_string();
        assert!(e.contains("larger than the 50 px side limit") && e.contains("max_dimension"), "{e}");
        assert!(check_gif(b"GIF89a", LIMITS, "short.gif").is_err());
        // Truncated after the screen: every size present was checked; the decoder reports the rest.
        assert!(check_gif(&gif((1, 1), (1, 1))[..13], LIMITS, "cut.gif").is_ok());
    }

    #[test]
    fn returned_images_are_checked_without_wrapping() {
        let who = "filter plugin `big`";
        let huge = Image { width: 1 << 31, height: 1 << 31, pixels: vec![] };
        let e = check_image(&huge, LIMITS, who).unwrap_err().to_string();
        assert!(e.contains("filter plugin `big` returned a 2147483648x2147483648 image, which is larger than the 32768 px side limit") && e.contains("[limits] max_dimension"), "{e}");
        // No limit in the way: the size still has to match the pixels, without wrapping to 0.
        let open = DecodeLimits { max_pixels: u64::MAX, max_dimension: u32::MAX };
        let e = check_image(&huge, open, who).unwrap_err().to_string();
        assert!(e.contains("malformed image") && e.contains("carries 0"), "{e}");
        let short = Image { width: 4, height: 4, pixels: vec![0; 60] };
        let e = check_image(&short, LIMITS, who).unwrap_err().to_string();
        assert!(e.contains("4x4 needs 64 bytes of RGBA but it carries 60"), "{e}");
        assert!(check_image(&Image { width: 0, height: 3, pixels: vec![] }, LIMITS, who).unwrap_err().to_string().contains("empty"));
        let ok = Image { width: 4, height: 4, pixels: vec![0; 64] };
        check_image(&ok, LIMITS, who).unwrap();
        let e = check_asked_size(1 << 31, 1 << 31, LIMITS, "model `m`").unwrap_err().to_string();
        assert!(e.contains("model `m` asked for inputs of exactly 2147483648x2147483648, which is larger than the 32768 px side limit; nothing was sent"), "{e}");
        assert!(check_asked_size(0, 8, LIMITS, "model `m`").is_err() && check_asked_size(640, 480, LIMITS, "model `m`").is_ok());
        let e = check_image(&ok, DecodeLimits { max_pixels: 10, max_dimension: 100 }, who).unwrap_err().to_string();
        assert!(e.contains("4x4 image, which is 16 px, more than the 10 px limit") && e.contains("[limits] max_pixels"), "{e}");
    }

    #[test]
    fn bytes_must_be_what_they_are_labelled() {
        let png = encode_png(&Image { width: 1, height: 1, pixels: vec![0; 4] }, None).unwrap();
        let mp4 = b"\0\0\0\x18ftypisom\0\0\0\0";
        let html = b"<html><body>503</body></html>";
        assert_eq!(check_claimed("image/png", &png), Ok("image/png"));
        assert_eq!(check_claimed("image/jpeg", &png), Ok("image/png"), "within images the bytes win");
        assert_eq!(check_claimed("application/octet-stream", mp4), Ok("video/mp4"));
        assert_eq!(check_claimed("Video/MP4; codecs=avc1", mp4), Ok("video/mp4"));
        assert_eq!(check_claimed("video/webm", &[0x1a, 0x45, 0xdf, 0xa3, 1, 2]), Ok("video/webm"));
        assert_eq!(check_claimed("video/mp4", &gif((1, 1), (1, 1))), Ok("image/gif"), "a GIF passes as a video");
        let e = check_claimed("image/gif", html).unwrap_err();
        assert_eq!(e, "its bytes are not an image (they start with `<html><body>503<`; atelier writes PNG, JPEG, WebP or GIF)");
        let e = check_claimed("text/html", html).unwrap_err();
        assert_eq!(e, "that is not a media type atelier writes (images: PNG, JPEG, WebP, GIF; videos: MP4, WebM; they start with `<html><body>503<`)");
        assert!(check_claimed("text/html", &png).unwrap_err().ends_with("; the bytes are image/png)"));
        assert!(check_claimed("video/mp4", &png).unwrap_err().contains("still image (image/png), not a video"));
        assert!(check_claimed("image/png", mp4).unwrap_err().contains("a video (video/mp4), not an image"));
        assert!(check_claimed("image/heic", b"\0\0\0\x18ftypheic\0\0\0\0").unwrap_err().contains("its bytes are not an image"), "HEIC is not an MP4");
        assert!(check_claimed("image/png", b"\x1b[2J`x").unwrap_err().contains("`\\x1b[2J\\x60x`"), "control bytes are escaped");
        assert!(check_claimed("image/png", b"").unwrap_err().contains("they are empty"));
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
