//! Reading files with their type, size and header checked before the body is read; decoding with
//! limits checked before any pixel is decoded, the EXIF orientation applied and an embedded colour
//! profile converted to sRGB; encoding with provenance.

use crate::types::Image;
use anyhow::{Context, Result, bail};
use image::metadata::Orientation;
use serde::Serialize;
use std::io::{Cursor, Read};
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

/// Decode encoded bytes to RGBA8, refusing oversized images from their header alone; upright and
/// in sRGB (see [`decode_with_info`]).
pub fn decode(bytes: &[u8], limits: DecodeLimits, name: &str) -> Result<Image> {
    Ok(to_image(decode_dynamic(bytes, limits, name)?))
}

/// A decoded picture as RGBA8.
pub fn to_image(img: image::DynamicImage) -> Image {
    let (width, height) = (img.width(), img.height());
    let pixels = match img {
        // A JPEG's RGB, widened in one pass: `into_rgba8` goes through the general colour-cast
        // path, a float round per sample.
        image::DynamicImage::ImageRgb8(rgb) => {
            let mut out = Vec::with_capacity(rgb.len() / 3 * 4);
            for p in rgb.as_raw().chunks_exact(3) {
                out.extend_from_slice(&[p[0], p[1], p[2], 255]);
            }
            out
        }
        other => other.into_rgba8().into_raw(),
    };
    Image { width, height, pixels }
}

/// Decode encoded bytes in their own pixel format (8-bit RGBA when a colour profile was applied),
/// refusing oversized images from their header alone (for a GIF, its logical screen and every
/// frame's descriptor). The one decoding path for inputs and for everything a plugin returns.
pub fn decode_dynamic(bytes: &[u8], limits: DecodeLimits, name: &str) -> Result<image::DynamicImage> {
    let (img, info) = decode_with_info(bytes, limits, name)?;
    for w in info.warnings(name) {
        tracing::warn!("{w}");
    }
    Ok(img)
}

/// What decoding found besides the pixels, for provenance and warnings.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DecodeInfo {
    /// The EXIF orientation (2–8) that was applied to the pixels; `None` for a picture stored upright.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orientation: Option<u8>,
    /// The embedded ICC colour profile and what was done with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color_profile: Option<ColorProfileInfo>,
    /// Why the file looks cut short; it was decoded all the same, the decoder filling in what is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    /// The upright full size, when a shrinking caller had the JPEG decoded at a reduced DCT scale
    /// (shrink-on-load, [`decode_shrinking`]); the pixels are then smaller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrunk_on_load_from: Option<[u32; 2]>,
}

/// An embedded colour profile, as recorded in provenance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColorProfileInfo {
    /// The profile's own description (`Display P3`), when it has one.
    pub description: Option<String>,
    /// Whether the pixels were converted from it to sRGB.
    pub converted_to_srgb: bool,
    /// What was done, in words.
    pub note: String,
}

impl DecodeInfo {
    /// Whether there is nothing to record (upright, no profile, complete).
    pub fn is_plain(&self) -> bool {
        *self == DecodeInfo::default()
    }

    /// What the user should be told about the file `name`: a truncated file, a profile that could
    /// not be applied.
    pub fn warnings(&self, name: &str) -> Vec<String> {
        let mut w = vec![];
        if let Some(t) = &self.truncated {
            w.push(format!("{name}: {t}"));
        }
        if let Some(c) = self.color_profile.as_ref().filter(|c| !c.converted_to_srgb && !c.note.starts_with("already sRGB")) {
            w.push(format!("{name}: {}", c.note));
        }
        w
    }

    /// As JSON for provenance (`null` when plain).
    pub fn to_json(&self) -> serde_json::Value {
        if self.is_plain() { serde_json::Value::Null } else { serde_json::to_value(self).unwrap_or_default() }
    }
}

/// [`decode_dynamic`], also saying what was done to the pixels on the way (orientation, colour
/// profile) and whether the file looked cut short. Blocking: call it from `spawn_blocking` in
/// async code.
pub fn decode_with_info(bytes: &[u8], limits: DecodeLimits, name: &str) -> Result<(image::DynamicImage, DecodeInfo)> {
    decode_shrinking(bytes, limits, name, |_, _| None)
}

/// [`decode_with_info`] for a caller that shrinks the picture straight away: `shrink_to`, given the
/// upright full size, returns the upright size it will resize to, if any. A JPEG is then decoded at
/// the smallest DCT scale (1/8, 1/4 or 1/2) that still covers that size in both directions
/// (shrink-on-load, as libvips does), so the caller's resize starts from fewer pixels; the result
/// is never smaller than asked. Anything else, or a JPEG the scaled decoder cannot read, decodes in
/// full. Blocking.
pub fn decode_shrinking(
    bytes: &[u8],
    limits: DecodeLimits,
    name: &str,
    shrink_to: impl FnOnce(u32, u32) -> Option<(u32, u32)>,
) -> Result<(image::DynamicImage, DecodeInfo)> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .with_context(|| format!("{name}: cannot read"))?;
    let format = match reader.format() {
        None => bail!("{name}: not an image atelier can read (PNG, JPEG, WebP or GIF)"),
        Some(image::ImageFormat::Gif) => {
            check_gif(bytes, limits, name)?;
            image::ImageFormat::Gif
        }
        Some(f) => f,
    };
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
    let cannot = |e: image::ImageError| anyhow::anyhow!("{name}: cannot decode ({e}); the file may be truncated or corrupt");
    let mut decoder = reader.into_decoder().map_err(cannot)?;
    // Broken metadata is not fatal: the picture is then taken as stored.
    use image::ImageDecoder;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    // The size asked for is upright; the file stores the picture before its EXIF rotation.
    let turned = matches!(orientation, Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH);
    let upright = if turned { (h, w) } else { (w, h) };
    let scaled = match (format, shrink_to(upright.0, upright.1)) {
        (image::ImageFormat::Jpeg, Some((tw, th))) => decode_jpeg_scaled(bytes, if turned { (th, tw) } else { (tw, th) }, (w, h)),
        _ => None,
    };
    let mut img = match scaled {
        Some(img) => img,
        None => image::DynamicImage::from_decoder(decoder).map_err(cannot)?,
    };
    let mut info = DecodeInfo { truncated: truncation(bytes, format), ..DecodeInfo::default() };
    if (img.width(), img.height()) != (w, h) {
        info.shrunk_on_load_from = Some([upright.0, upright.1]);
    }
    if orientation != Orientation::NoTransforms {
        img.apply_orientation(orientation);
        info.orientation = Some(orientation.to_exif());
    }
    if let Some(icc) = icc.filter(|p| !p.is_empty()) {
        let (converted, c) = to_srgb(img, &icc);
        img = converted;
        info.color_profile = Some(c);
    }
    Ok((img, info))
}

/// A baseline or progressive RGB/grey JPEG decoded at the smallest DCT scale that still covers
/// `want` (stored orientation); `None` when no scale below `full` covers it, or for what the scaled
/// decoder does not handle (CMYK, 16-bit, arithmetic coding, a broken stream), which then decodes
/// in full through the one general path.
fn decode_jpeg_scaled(bytes: &[u8], want: (u32, u32), full: (u32, u32)) -> Option<image::DynamicImage> {
    // The smallest of the decoder's scales (n/8) that covers `want` in both directions; the
    // decoder's own choice is satisfied by either one, so it is asked for exactly this size.
    let scaled = |len: u32, n: u32| (len * n).div_ceil(8);
    let n = [1, 2, 4].into_iter().find(|&n| scaled(full.0, n) >= want.0 && scaled(full.1, n) >= want.1)?;
    let side = |v: u32| u16::try_from(v).ok();
    let mut d = jpeg_decoder::Decoder::new(bytes);
    let (w, h) = d.scale(side(scaled(full.0, n))?, side(scaled(full.1, n))?).ok()?;
    let (w, h) = (u32::from(w), u32::from(h));
    if (w, h) == full || w < want.0 || h < want.1 {
        return None;
    }
    let pixels = d.decode().ok()?;
    match d.info()?.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => image::RgbImage::from_raw(w, h, pixels).map(image::DynamicImage::ImageRgb8),
        jpeg_decoder::PixelFormat::L8 => image::GrayImage::from_raw(w, h, pixels).map(image::DynamicImage::ImageLuma8),
        _ => None,
    }
}

/// Convert pixels described by the ICC profile `icc` to sRGB (8-bit RGBA out), with what was done.
/// A profile that cannot be read or applied leaves the pixels as they are, and says so.
pub(crate) fn to_srgb(img: image::DynamicImage, icc: &[u8]) -> (image::DynamicImage, ColorProfileInfo) {
    use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};
    let profile = match ColorProfile::new_from_slice(icc) {
        Ok(p) => p,
        Err(e) => {
            let note = format!("its ICC colour profile is unreadable ({e}); the pixels were taken as sRGB, so colours may be off");
            return (img, ColorProfileInfo { description: None, converted_to_srgb: false, note });
        }
    };
    let description = profile.description.as_ref().and_then(profile_text);
    let info = |converted: bool, note: String| ColorProfileInfo { description: description.clone(), converted_to_srgb: converted, note };
    let srgb = ColorProfile::new_srgb();
    let gray_image = !img.color().has_color();
    let (src_layout, src): (Layout, Vec<u8>) = match profile.color_space {
        DataColorSpace::Rgb if is_srgb(&profile, &srgb, description.as_deref()) => return (img, info(false, "already sRGB; nothing to convert".into())),
        DataColorSpace::Rgb => (Layout::Rgba, img.to_rgba8().into_raw()),
        DataColorSpace::Gray if gray_image => (Layout::GrayAlpha, img.to_luma_alpha8().into_raw()),
        other => {
            let note = format!("its ICC colour profile describes {other:?} data, which atelier does not convert for this picture; the pixels were taken as sRGB, so colours may be off");
            return (img, info(false, note));
        }
    };
    let transform = match profile.create_transform_8bit(src_layout, &srgb, Layout::Rgba, TransformOptions::default()) {
        Ok(t) => t,
        Err(e) => return (img, info(false, format!("its ICC colour profile cannot be applied ({e}); the pixels were taken as sRGB, so colours may be off"))),
    };
    let (w, h) = (img.width(), img.height());
    drop(img);
    let mut out = vec![0u8; w as usize * h as usize * 4];
    if let Err(e) = transform.transform(&src, &mut out) {
        let back = match src_layout {
            Layout::Rgba => image::RgbaImage::from_raw(w, h, src).map(image::DynamicImage::ImageRgba8),
            _ => image::GrayAlphaImage::from_raw(w, h, src).map(image::DynamicImage::ImageLumaA8),
        };
        let note = format!("its ICC colour profile cannot be applied ({e}); the pixels were taken as sRGB, so colours may be off");
        return (back.unwrap_or_default(), info(false, note));
    }
    let rgba = image::RgbaImage::from_raw(w, h, out).expect("the buffer was sized for the image");
    (image::DynamicImage::ImageRgba8(rgba), info(true, "converted to sRGB on decode".into()))
}

/// An sRGB profile under another name would be converted to itself: skipped when it says it is
/// sRGB and its primaries are sRGB's.
fn is_srgb(p: &moxcms::ColorProfile, srgb: &moxcms::ColorProfile, description: Option<&str>) -> bool {
    let close = |a: &moxcms::Xyzd, b: &moxcms::Xyzd| (a.x - b.x).abs() < 2e-3 && (a.y - b.y).abs() < 2e-3 && (a.z - b.z).abs() < 2e-3;
    description.is_some_and(|d| d.to_ascii_lowercase().contains("srgb"))
        && close(&p.red_colorant, &srgb.red_colorant)
        && close(&p.green_colorant, &srgb.green_colorant)
        && close(&p.blue_colorant, &srgb.blue_colorant)
}

fn profile_text(t: &moxcms::ProfileText) -> Option<String> {
    let s = match t {
        moxcms::ProfileText::PlainString(s) => s.clone(),
        moxcms::ProfileText::Localizable(v) => v.iter().find(|l| l.language == "en").or(v.first())?.value.clone(),
        moxcms::ProfileText::Description(d) => d.ascii_string.clone(),
    };
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string();
    (!s.is_empty()).then(|| crate::text::printable(&s).to_string())
}

/// Why a file of `format` looks cut short, if it does, from its structure alone: a JPEG with no
/// end-of-image marker after its first scan, a PNG whose chunks stop before IEND, a WebP shorter
/// than its RIFF header says. Decoders often fill the missing part (grey) and report success.
pub(crate) fn truncation(bytes: &[u8], format: image::ImageFormat) -> Option<String> {
    let (complete, what) = match format {
        image::ImageFormat::Jpeg => (jpeg_complete(bytes), "the JPEG stops before its end-of-image marker (FFD9)"),
        image::ImageFormat::Png => (png_complete(bytes), "the PNG stops before its IEND chunk"),
        image::ImageFormat::WebP => (
            bytes.len() >= 12 && u64::from(u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])) + 8 <= bytes.len() as u64,
            "the WebP is shorter than its RIFF header says",
        ),
        _ => return None,
    };
    (!complete).then(|| format!("{what}: the file is cut short (an interrupted download or copy?) and the decoder filled in what is missing; get the whole file again"))
}

/// Walk the marker segments up to the first scan (an EXIF thumbnail in APP1, with its own EOI, is
/// skipped whole by its length), then look for EOI after it: inside entropy-coded data an FF byte
/// is always followed by 00 or a restart marker, so FFD9 there is the real end.
fn jpeg_complete(b: &[u8]) -> bool {
    if !b.starts_with(&[0xff, 0xd8]) {
        return false;
    }
    let mut at = 2;
    loop {
        while b.get(at) == Some(&0xff) && b.get(at + 1) == Some(&0xff) {
            at += 1;
        }
        let (Some(&0xff), Some(&m)) = (b.get(at), b.get(at + 1)) else { return false };
        match m {
            0xd9 => return true,
            0xda => break,
            0x01 | 0xd0..=0xd7 => at += 2,
            _ => {
                let Some(len) = b.get(at + 2..at + 4) else { return false };
                at += 2 + u16::from_be_bytes([len[0], len[1]]) as usize;
            }
        }
    }
    b[at..].windows(2).any(|w| w == [0xff, 0xd9])
}

/// Whether the PNG's chunks, walked by their lengths, reach IEND within the bytes.
fn png_complete(b: &[u8]) -> bool {
    let mut at = 8;
    while at + 8 <= b.len() {
        let len = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        if &b[at + 4..at + 8] == b"IEND" {
            return true;
        }
        at = match at.checked_add(12 + len) {
            Some(n) => n,
            None => return false,
        };
    }
    false
}

/// What [`read_file`] checks a file's first bytes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A picture atelier decodes (PNG, JPEG, WebP or GIF), by its magic number.
    Image,
    /// Any content (a provenance sidecar): only the file's type and size are checked.
    Any,
}

/// `[limits] max_input_mb` in bytes.
pub fn max_input_bytes(mb: u64) -> u64 {
    mb.saturating_mul(1 << 20)
}

/// Open a file the host was given and check it before its body is read: a regular file (not a
/// device such as `/dev/zero`, a FIFO or a folder), at most `max_bytes` long (a sparse 3 GB file
/// is refused from its size), and for [`FileKind::Image`] starting like a picture atelier reads.
/// Returns the open file, its length and the bytes read so far (up to 64).
fn open_checked(path: &Path, max_bytes: u64, kind: FileKind) -> Result<(std::fs::File, u64, Vec<u8>)> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("{shown}: cannot read"))?;
    check_file_type(&meta, path)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    // Not blocking, so a FIFO swapped in after the check cannot hang the open.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NONBLOCK);
    let file = opts.open(path).with_context(|| format!("{shown}: cannot read"))?;
    // What was opened is what counts.
    let meta = file.metadata().with_context(|| format!("{shown}: cannot read"))?;
    check_file_type(&meta, path)?;
    let len = meta.len();
    if len > max_bytes {
        bail!(
            "{shown}: {} is more than the {} input limit; refused before reading it (raise [limits] max_input_mb in atelier.toml if it is genuine)",
            mib(len),
            mib(max_bytes)
        );
    }
    let mut head = Vec::with_capacity(64);
    (&file).take(64).read_to_end(&mut head).with_context(|| format!("{shown}: cannot read"))?;
    if kind == FileKind::Image && !sniff_mime(&head).is_some_and(|m| m.starts_with("image/")) {
        bail!("{shown}: not an image atelier can read (PNG, JPEG, WebP or GIF; {}); refused before reading it", starts_with(&head));
    }
    Ok((file, len, head))
}

fn check_file_type(meta: &std::fs::Metadata, path: &Path) -> Result<()> {
    if meta.is_dir() {
        bail!("{}: is a folder, not a file", path.display());
    }
    if !meta.is_file() {
        bail!("{}: not a regular file (a device, FIFO or socket); refused before reading it. Give a file", path.display());
    }
    Ok(())
}

/// Check a file as [`read_file`] does, without reading its body (for a path a plugin parameter
/// will read).
pub fn check_file(path: &Path, max_bytes: u64, kind: FileKind) -> Result<()> {
    open_checked(path, max_bytes, kind).map(drop)
}

/// Read a file the host was given (an input, mask, reference, image parameter, recipe input,
/// provenance file): its type, size and first bytes are checked before the body is read
/// ([`open_checked`]), and the read stops at `max_bytes` even if the file grows meanwhile. The
/// one way the host reads a user's file.
pub fn read_file(path: &Path, max_bytes: u64, kind: FileKind) -> Result<Vec<u8>> {
    let (file, len, head) = open_checked(path, max_bytes, kind)?;
    let mut bytes = Vec::with_capacity(len as usize);
    bytes.extend_from_slice(&head);
    (&file).take(max_bytes.saturating_add(1) - head.len() as u64).read_to_end(&mut bytes).with_context(|| format!("{}: cannot read", path.display()))?;
    if bytes.len() as u64 > max_bytes {
        bail!("{}: grew past the {} input limit while it was read; refused (raise [limits] max_input_mb in atelier.toml if it is genuine)", path.display(), mib(max_bytes));
    }
    Ok(bytes)
}

fn mib(n: u64) -> String {
    if n >= 1 << 20 { format!("{} MiB", n >> 20) } else { format!("{n} bytes") }
}

/// A picture file read and decoded: RGBA8, upright, in sRGB.
pub struct Decoded {
    /// The pixels.
    pub image: Image,
    /// The file's bytes (for its hash).
    pub bytes: Vec<u8>,
    /// What decoding did and found.
    pub info: DecodeInfo,
}

/// Read ([`read_file`]) and decode ([`decode_with_info`]) a picture file. Blocking.
pub fn read(path: &Path, limits: DecodeLimits, max_bytes: u64) -> Result<Decoded> {
    decode_file_bytes(read_file(path, max_bytes, FileKind::Image)?, limits, &path.display().to_string())
}

/// Decode a picture file's bytes, already read ([`read_file`]); `name` is how errors call it. Blocking.
pub fn decode_file_bytes(bytes: Vec<u8>, limits: DecodeLimits, name: &str) -> Result<Decoded> {
    let (img, info) = decode_with_info(&bytes, limits, name)?;
    Ok(Decoded { image: to_image(img), bytes, info })
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

/// The JPEG quality written unless the user sets one (`filter --quality`): libvips' and most
/// photo tools' choice, where compression artefacts stay out of sight.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;

/// Encode in a given media type (PNG for anything unknown); JPEG at [`DEFAULT_JPEG_QUALITY`].
pub fn encode(img: &Image, mime: &str) -> Result<Vec<u8>> {
    encode_with_quality(img, mime, DEFAULT_JPEG_QUALITY)
}

/// [`encode`] with the JPEG quality (1–100; other formats ignore it). Alpha is dropped for JPEG.
pub fn encode_with_quality(img: &Image, mime: &str, jpeg_quality: u8) -> Result<Vec<u8>> {
    let expected = img.width as usize * img.height as usize * 4;
    if img.pixels.len() != expected {
        bail!("pixel buffer does not match {}x{}", img.width, img.height);
    }
    match mime {
        "image/jpeg" => encode_jpeg(img, jpeg_quality),
        "image/webp" => {
            let mut out = Cursor::new(Vec::new());
            image::codecs::webp::WebPEncoder::new_lossless(&mut out).encode(&img.pixels, img.width, img.height, image::ExtendedColorType::Rgba8)?;
            Ok(out.into_inner())
        }
        _ => encode_png(img, None),
    }
}

/// JPEG through `jpeg-encoder` (SIMD colour conversion and DCT, about twice the `image` crate's
/// encoder at quality 90), 4:2:0 chroma as before. It takes RGB: alpha is dropped here, in one pass.
fn encode_jpeg(img: &Image, quality: u8) -> Result<Vec<u8>> {
    if !(1..=100).contains(&quality) {
        bail!("JPEG quality {quality} is out of range; use 1–100 (--quality)");
    }
    let side = |v: u32| u16::try_from(v).map_err(|_| anyhow::anyhow!("{}x{} is too large for JPEG (at most 65535 a side); write .png instead", img.width, img.height));
    let (w, h) = (side(img.width)?, side(img.height)?);
    let mut rgb = Vec::with_capacity(img.pixels.len() / 4 * 3);
    for p in img.pixels.chunks_exact(4) {
        rgb.extend_from_slice(&p[..3]);
    }
    let mut out = Vec::with_capacity(rgb.len() / 8);
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| anyhow::anyhow!("cannot encode JPEG: {e}"))?;
    Ok(out)
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

    /// A JPEG of `w`×`h` with an EXIF APP1 segment (Orientation = `o`) spliced in after SOI.
    fn jpeg_with_orientation(w: u32, h: u32, o: u16) -> Vec<u8> {
        let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([40, 40, 40]));
        img.put_pixel(0, 0, image::Rgb([255, 255, 255]));
        let mut jpg = Cursor::new(Vec::new());
        img.write_to(&mut jpg, image::ImageFormat::Jpeg).unwrap();
        let jpg = jpg.into_inner();
        // TIFF, big-endian: one IFD with one entry, Orientation (0x0112), SHORT, count 1.
        let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
        tiff.extend_from_slice(&o.to_be_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpg[..2].to_vec();
        out.extend_from_slice(&[0xff, 0xe1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpg[2..]);
        out
    }

    #[test]
    fn exif_orientation_is_applied_and_reported() {
        let jpg = jpeg_with_orientation(8, 4, 6);
        let (img, info) = decode_with_info(&jpg, LIMITS, "portrait.jpg").unwrap();
        assert_eq!((img.width(), img.height()), (4, 8), "rotated 90° clockwise");
        assert_eq!(info.orientation, Some(6));
        // The top-left pixel of the stored picture is now at the top right.
        let rgba = img.to_rgba8();
        assert!(rgba.get_pixel(3, 0).0[0] > 200 && rgba.get_pixel(0, 0).0[0] < 100);
        assert!(info.truncated.is_none() && info.color_profile.is_none());
        let (_, plain) = decode_with_info(&jpeg_with_orientation(8, 4, 1), LIMITS, "upright.jpg").unwrap();
        assert!(plain.is_plain(), "{plain:?}");
    }

    #[test]
    fn a_shrinking_caller_gets_a_jpeg_at_a_reduced_scale_upright() {
        // Stored 64x32, bright left half, dark right half; Orientation 6 makes it a 32x64
        // portrait with the bright half on top.
        let stored = image::RgbImage::from_fn(64, 32, |x, _| if x < 32 { image::Rgb([230, 230, 230]) } else { image::Rgb([20, 20, 20]) });
        let mut jpg = Cursor::new(Vec::new());
        stored.write_to(&mut jpg, image::ImageFormat::Jpeg).unwrap();
        let plain = jpg.into_inner();
        let mut seen = None;
        let (img, info) = decode_shrinking(&plain, LIMITS, "t.jpg", |w, h| {
            seen = Some((w, h));
            Some((w / 4, h / 4))
        })
        .unwrap();
        assert_eq!(seen, Some((64, 32)));
        assert_eq!((img.width(), img.height()), (16, 8), "1/4 scale: exactly the size asked");
        assert_eq!(info, DecodeInfo { shrunk_on_load_from: Some([64, 32]), ..DecodeInfo::default() });
        // Turned: the size asked for is upright, the stored picture is scaled to match it.
        let mut turned = plain[..2].to_vec();
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0");
        turned.extend_from_slice(&[0xff, 0xe1]);
        turned.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        turned.extend_from_slice(&app1);
        turned.extend_from_slice(&plain[2..]);
        let (img, info) = decode_shrinking(&turned, LIMITS, "t.jpg", |w, h| {
            assert_eq!((w, h), (32, 64), "upright size");
            Some((15, 30))
        })
        .unwrap();
        assert_eq!(info.orientation, Some(6));
        assert_eq!((img.width(), img.height()), (16, 32), "1/2 scale, the smallest covering 15x30");
        let rgba = img.to_rgba8();
        assert!(rgba.get_pixel(8, 4).0[0] > 200 && rgba.get_pixel(8, 28).0[0] < 50, "bright half on top");
        // No DCT scale below full size covers 63x31: decoded in full. A PNG is always decoded in full.
        let (img, info) = decode_shrinking(&plain, LIMITS, "t.jpg", |w, h| Some((w - 1, h - 1))).unwrap();
        assert_eq!((img.width(), img.height()), (64, 32));
        assert!(info.is_plain(), "{info:?}");
        let png = encode_png(&to_image(image::DynamicImage::ImageRgb8(stored)), None).unwrap();
        let (img, _) = decode_shrinking(&png, LIMITS, "t.png", |w, h| Some((w / 4, h / 4))).unwrap();
        assert_eq!((img.width(), img.height()), (64, 32));
    }

    #[test]
    fn jpeg_is_written_at_the_quality_asked() {
        let img = to_image(image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x ^ y) * 4) as u8]))));
        let q90 = encode(&img, "image/jpeg").unwrap();
        let q30 = encode_with_quality(&img, "image/jpeg", 30).unwrap();
        assert!(q30.len() < q90.len(), "{} < {}", q30.len(), q90.len());
        let back = decode(&q90, LIMITS, "q90.jpg").unwrap();
        let err: u64 = back.pixels.iter().zip(&img.pixels).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
        assert!(err / (64 * 64 * 4) <= 3, "quality 90 stays close: {}", err / (64 * 64 * 4));
        assert!(encode_with_quality(&img, "image/jpeg", 0).unwrap_err().to_string().contains("1–100"));
    }

    #[test]
    fn truncation_is_seen_from_the_structure() {
        let jpg = jpeg_with_orientation(64, 64, 1);
        assert!(truncation(&jpg, image::ImageFormat::Jpeg).is_none());
        let cut = &jpg[..jpg.len() * 2 / 3];
        let t = truncation(cut, image::ImageFormat::Jpeg).expect("cut JPEG");
        assert!(t.contains("FFD9") && t.contains("cut short"), "{t}");
        // An EOI inside an APP segment (an EXIF thumbnail's) does not make a cut file whole.
        let mut with_thumb = jpg[..2].to_vec();
        with_thumb.extend_from_slice(&[0xff, 0xe1, 0, 8, b'E', b'x', 0xff, 0xd9, 0, 0]);
        with_thumb.extend_from_slice(&jpg[2..]);
        assert!(truncation(&with_thumb, image::ImageFormat::Jpeg).is_none());
        assert!(truncation(&with_thumb[..with_thumb.len() - 40], image::ImageFormat::Jpeg).is_some());
        let png = encode_png(&Image { width: 2, height: 2, pixels: vec![9; 16] }, None).unwrap();
        assert!(truncation(&png, image::ImageFormat::Png).is_none());
        assert!(truncation(&png[..png.len() - 12], image::ImageFormat::Png).unwrap().contains("IEND"));
    }

    #[test]
    fn display_p3_pixels_are_converted_to_srgb() {
        let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
        // Pure P3 red is outside sRGB: it comes out as sRGB red, clipped; mid grey stays grey.
        let img = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(2, 1, |x, _| if x == 0 { image::Rgba([255, 0, 0, 255]) } else { image::Rgba([128, 128, 128, 200]) }));
        let (out, info) = to_srgb(img, &p3);
        assert!(info.converted_to_srgb && info.description.as_deref() == Some("Display P3"), "{info:?}");
        let out = out.to_rgba8();
        let red = out.get_pixel(0, 0).0;
        assert!(red[0] == 255 && red[1] < 30 && red[2] < 30, "{red:?}");
        let grey = out.get_pixel(1, 0).0;
        assert!(grey[0].abs_diff(128) <= 2 && grey[0].abs_diff(grey[2]) <= 2 && grey[3] == 200, "{grey:?}");
        // A less saturated P3 green becomes a more saturated sRGB green.
        let g = image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(1, 1, image::Rgba([100, 200, 100, 255])));
        let g = to_srgb(g, &p3).0.to_rgba8().get_pixel(0, 0).0;
        assert!(g[1] > 200 && g[0] < 100, "{g:?}");
        // sRGB itself is left alone; junk is reported, not fatal.
        let srgb = moxcms::ColorProfile::new_srgb().encode().unwrap();
        let (_, i) = to_srgb(image::DynamicImage::new_rgba8(1, 1), &srgb);
        assert!(!i.converted_to_srgb && i.note.starts_with("already sRGB"), "{i:?}");
        let (_, i) = to_srgb(image::DynamicImage::new_rgba8(1, 1), b"not a profile");
        assert!(!i.converted_to_srgb && i.note.contains("unreadable"));
        assert_eq!(DecodeInfo { color_profile: Some(i), ..Default::default() }.warnings("x.png").len(), 1);
    }

    /// `cargo test -p atelier --lib colour_conversion_cost -- --ignored --nocapture`: the cost of
    /// converting a 12 MP Display-P3 picture to sRGB (a measurement, not a check).
    #[test]
    #[ignore]
    fn colour_conversion_cost() {
        let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
        let img = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(4000, 3000, |x, y| image::Rgba([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8, 255])));
        let t = std::time::Instant::now();
        let (_, info) = to_srgb(img, &p3);
        eprintln!("12 MP Display P3 → sRGB: {:?} ({info:?})", t.elapsed());
    }

    #[test]
    fn files_are_checked_before_their_body_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let png = encode_png(&Image { width: 1, height: 1, pixels: vec![0; 4] }, None).unwrap();
        let ok = dir.path().join("ok.png");
        std::fs::write(&ok, &png).unwrap();
        assert_eq!(read_file(&ok, 1 << 20, FileKind::Image).unwrap(), png);
        let e = read_file(&ok, 10, FileKind::Image).unwrap_err().to_string();
        assert!(e.contains("more than the 10 bytes input limit") && e.contains("[limits] max_input_mb"), "{e}");
        let sparse = dir.path().join("huge.png");
        std::fs::File::create(&sparse).unwrap().set_len(3 << 30).unwrap();
        let e = read_file(&sparse, max_input_bytes(512), FileKind::Image).unwrap_err().to_string();
        assert!(e.contains("3072 MiB is more than the 512 MiB input limit"), "{e}");
        let e = read_file(Path::new("/dev/zero"), max_input_bytes(512), FileKind::Image).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read_file(dir.path(), max_input_bytes(512), FileKind::Image).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        let text = dir.path().join("fake.png");
        std::fs::write(&text, "hello, not a picture").unwrap();
        let e = check_file(&text, max_input_bytes(512), FileKind::Image).unwrap_err().to_string();
        assert!(e.contains("not an image atelier can read") && e.contains("`hello, not a pic"), "{e}");
        assert!(read_file(&text, max_input_bytes(512), FileKind::Any).is_ok());
    }
}
