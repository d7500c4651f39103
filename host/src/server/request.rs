//! Turning a request's fields into pipeline inputs: uploads checked against the host's limits and
//! stored as files, atelier's own extras (`seed`, model parameters), and OpenAI fields atelier does
//! not implement refused unless they ask for the default.

use super::App;
use super::errors::{ApiError, ApiResult};
use super::form::Form;
use super::models::Chosen;
use crate::imageio::{self, DecodeLimits};
use crate::types::Image;
use std::path::{Path, PathBuf};

/// The host's decode limits (`[limits]` in atelier.toml).
pub fn limits(app: &App) -> DecodeLimits {
    DecodeLimits { max_pixels: app.rt.settings.limits.max_pixels, max_dimension: app.rt.settings.limits.max_dimension }
}

/// The cheap checks of an uploaded image (`field` names it in errors), from its first bytes only:
/// a format atelier reads, within the limits (413 if not). Returns its size and the file
/// extension it should carry. No pixels are decoded: that waits for the request's turn.
pub fn image_header(app: &App, field: &str, bytes: &[u8]) -> ApiResult<((u32, u32), &'static str)> {
    let Some(mime) = imageio::sniff_mime(bytes).filter(|m| m.starts_with("image/")) else {
        return Err(ApiError::field(field, format!("`{field}` is not an image atelier can read; send a PNG, JPEG, WebP or GIF file")).with_code("invalid_image_format"));
    };
    let dims = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().ok().and_then(|r| r.into_dimensions().ok());
    let Some((w, h)) = dims else {
        return Err(ApiError::field(field, format!("`{field}`: the image header is unreadable or truncated; send the whole file")));
    };
    if let Err(e) = imageio::check_size(w, h, limits(app), &format!("`{field}`")) {
        return Err(ApiError::too_large(Some(field), format!("{e:#}")));
    }
    Ok(((w, h), imageio::extension(mime)))
}

/// Decode an image (after [`image_header`]) on the blocking pool: a 400 naming `field` if the
/// pixels are broken.
pub async fn decode(app: &App, field: &str, bytes: bytes::Bytes) -> ApiResult<Image> {
    let (lim, f) = (limits(app), field.to_string());
    tokio::task::spawn_blocking(move || imageio::decode(&bytes, lim, &format!("`{f}`")).map_err(|e| ApiError::field(&f, format!("{e:#}"))))
        .await
        .map_err(|e| ApiError::internal(format!("decoding `{field}` stopped: {e}")))?
}

/// A file saved earlier, read back and decoded as [`decode`] does: a bad picture is refused by its
/// field name; the pipeline then takes the pixels instead of decoding the file again.
pub async fn read_decoded(app: &App, field: &str, path: &Path) -> ApiResult<imageio::Decoded> {
    // The upload was written by the server itself, within max_body_mb; it is read back through the
    // host's one checked reader all the same (a regular picture file within max_input_mb).
    let (p, max, lim, f) = (path.to_path_buf(), imageio::max_input_bytes(app.rt.settings.limits.max_input_mb), limits(app), field.to_string());
    tokio::task::spawn_blocking(move || {
        let bytes = imageio::read_file(&p, max, imageio::FileKind::Image).map_err(|e| ApiError::field(&f, format!("{e:#}")))?;
        imageio::decode_file_bytes(bytes, lim, &format!("`{f}`")).map_err(|e| ApiError::field(&f, format!("{e:#}")))
    })
    .await
    .map_err(|e| ApiError::internal(format!("decoding `{field}` stopped: {e}")))?
}

/// Write bytes into a request's folder.
pub async fn save(dir: &Path, name: &str, bytes: &[u8]) -> ApiResult<PathBuf> {
    tokio::fs::create_dir_all(dir).await.map_err(|e| ApiError::internal(format!("{}: cannot create the folder: {e}; check the state dir's permissions and free space", dir.display())))?;
    let p = dir.join(name);
    tokio::fs::write(&p, bytes).await.map_err(|e| ApiError::internal(format!("{}: cannot write: {e}; check the state dir's free space", p.display())))?;
    Ok(p)
}

/// OpenAI fields atelier does not implement: accepted only with the value that changes nothing.
pub fn defaults_only(form: &mut Form, fields: &[(&str, &[&str])]) -> ApiResult<()> {
    for (name, ok) in fields {
        if let Some(v) = form.text(name)? {
            if !ok.iter().any(|o| o.eq_ignore_ascii_case(v.trim())) {
                return Err(ApiError::field(
                    name,
                    format!("`{name}={v}` is not supported by atelier's engines; omit `{name}`{}", if ok.is_empty() { String::new() } else { format!(" or use {}", ok.join(" / ")) }),
                )
                .with_code("unsupported_value"));
            }
        }
    }
    Ok(())
}

/// `seed` (atelier's extra): output i gets seed + i.
pub fn seed(form: &mut Form) -> ApiResult<Option<u64>> {
    form.number("seed", 0, u32::MAX as u64)
}

/// Every remaining field must be one of the model's parameters (atelier's extras, e.g. `levels=5`
/// for classic) or one of its typed fields (`aspect`, `output`); anything else is refused so
/// nothing the caller meant is silently dropped.
pub fn model_params(form: &mut Form, c: &Chosen) -> ApiResult<Vec<(String, String)>> {
    let mut out = vec![];
    let mut unknown = vec![];
    for name in form.leftovers() {
        if let Some(spec) = c.info.params.iter().find(|p| p.name == name) {
            // An image parameter is a file path to the CLI; a remote caller must never make the
            // server read (and hand a plugin) a file from the server's own disk.
            if spec.kind() == crate::types::ParamKind::Media {
                return Err(ApiError::field(
                    &name,
                    format!("`{name}` takes an image, which the server does not read from its own disk; send the image as `image` or `image[]`, or use the CLI (atelier edit --param {name}=FILE)"),
                )
                .with_code("unsupported_parameter"));
            }
            if let Some(v) = form.text(&name)? {
                out.push((name, v));
            }
        } else if crate::pipeline::edit::is_typed_field(&c.info, &name) {
            // `aspect`/`output` as typed fields of the model: the request check holds them to its lists.
            if let Some(v) = form.text(&name)? {
                out.push((name, v));
            }
        } else {
            unknown.push(name);
        }
    }
    if let Some(first) = unknown.first() {
        let names: Vec<&str> = c.info.params.iter().map(|p| p.name.as_str()).collect();
        return Err(ApiError::field(
            first,
            format!(
                "unknown field{} {}: not an OpenAI field atelier takes, nor a parameter of model `{}` (its parameters: {}); remove {}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", "),
                c.plugin.id(),
                if names.is_empty() { "none".into() } else { names.join(", ") },
                if unknown.len() > 1 { "them" } else { "it" },
            ),
        )
        .with_code("unknown_parameter"));
    }
    Ok(out)
}

/// The images endpoints answer pictures: a model parameter asking for a video (classic's
/// `output=video`) belongs to `POST /v1/videos`.
pub fn pictures_only(params: &[(String, String)], c: &Chosen) -> ApiResult<()> {
    match params.iter().find(|(k, v)| k == "output" && v.trim().eq_ignore_ascii_case("video")) {
        Some(_) => Err(ApiError::field(
            "output",
            format!("`output=video` makes a video, and the images endpoints answer pictures; create it with POST /v1/videos (model `{}`) instead", c.plugin.id()),
        )
        .with_code("unsupported_value")),
        None => Ok(()),
    }
}

/// A required, non-empty `prompt`.
pub fn prompt(form: &mut Form) -> ApiResult<String> {
    match form.text("prompt")? {
        Some(p) if !p.trim().is_empty() => {
            if p.chars().count() > 32_000 {
                return Err(ApiError::field("prompt", "`prompt` is longer than 32000 characters; shorten it"));
            }
            Ok(p)
        }
        _ => Err(ApiError::field("prompt", "`prompt` is required: say what to make or change")),
    }
}
