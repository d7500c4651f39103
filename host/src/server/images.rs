//! `POST /v1/images/edits` (multipart, or JSON with data: URLs) and `POST /v1/images/generations`
//! (JSON): the CLI's `edit` pipeline, answered as OpenAI's `ImagesResponse`.

use super::auth::Caller;
use super::errors::{ApiError, ApiResult};
use super::form::Form;
use super::models::{self, Chosen, Want};
use super::{App, new_id, now_s, request};
use crate::pipeline::edit::{EditRequest, check_request, edit_named};
use crate::pipeline::{Catalog, EditResult};
use axum::Json;
use axum::extract::{Extension, Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long `url` results stay fetchable (OpenAI's URLs lived 60 minutes).
pub const URL_LIFETIME: Duration = Duration::from_secs(3600);

/// OpenAI image fields atelier has no engine for, with the values that change nothing.
const DEFAULT_ONLY: &[(&str, &[&str])] = &[
    ("quality", &["auto"]),
    ("background", &["auto"]),
    ("output_format", &["png"]),
    ("moderation", &["auto"]),
    ("stream", &["false"]),
    ("partial_images", &["0"]),
    ("input_fidelity", &[]),
    ("output_compression", &["100"]),
    ("style", &[]),
];

/// The fields edits and generations share.
struct Common {
    model: Option<String>,
    n: u32,
    size: Option<(u32, u32)>,
    url: bool,
}

fn common(form: &mut Form) -> ApiResult<Common> {
    let model = form.text("model")?;
    let n = form.number("n", 1, 10)?.unwrap_or(1) as u32;
    let size = match form.text("size")? {
        None => None,
        Some(s) if s.trim().eq_ignore_ascii_case("auto") => None,
        Some(s) => Some(parse_size(&s).ok_or_else(|| ApiError::field("size", format!("`size` must be WIDTHxHEIGHT (e.g. 1024x1024) or auto, not `{s}`")))?),
    };
    let url = match form.text("response_format")?.as_deref().map(str::trim) {
        None | Some("b64_json") => false,
        Some("url") => true,
        Some(other) => return Err(ApiError::field("response_format", format!("`response_format` must be b64_json or url, not `{other}`"))),
    };
    // `user` / `safety_identifier` identify the end user for abuse tracking; atelier logs them.
    for k in ["user", "safety_identifier"] {
        if let Some(u) = form.text(k)? {
            tracing::info!(target: "atelier::server", "{k}: {u}");
        }
    }
    Ok(Common { model, n, size, url })
}

/// The OpenAI fields of [`DEFAULT_ONLY`], except those the model declares as its own parameters
/// (classic's `style`): those go to the model.
fn openai_defaults(form: &mut Form, c: &Chosen) -> ApiResult<()> {
    let fields: Vec<(&str, &[&str])> = DEFAULT_ONLY.iter().copied().filter(|(name, _)| !c.info.params.iter().any(|p| p.name == *name)).collect();
    request::defaults_only(form, &fields)
}

fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.trim().split_once(['x', 'X'])?;
    let (w, h) = (w.parse().ok()?, h.parse().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// A request's folder under `<state>/server/images/`; removed when the answer is b64 (nothing
/// refers to it any more), kept for an hour when it holds `url` results.
struct Scratch {
    id: String,
    dir: PathBuf,
    keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn scratch(app: &App) -> Scratch {
    let id = new_id("img_");
    Scratch { dir: app.dir.join("images").join(&id), id, keep: false }
}

/// `size`: the model's own `size` parameter when it has one, else an exact `fit` after the model.
async fn apply_size(app: &App, c: &Chosen, size: Option<(u32, u32)>, params: &mut Vec<(String, String)>, post: &mut Vec<String>) -> ApiResult<()> {
    let Some((w, h)) = size else { return Ok(()) };
    if c.info.params.iter().any(|p| p.name == "size") {
        if params.iter().any(|(k, _)| k == "size") {
            return Err(ApiError::field("size", "`size` is given twice"));
        }
        params.push(("size".into(), format!("{w}x{h}")));
        return Ok(());
    }
    let has_fit = Catalog::load(&app.rt).await.map(|c| c.has("fit")).unwrap_or(false);
    if !has_fit {
        return Err(ApiError::field(
            "size",
            format!("model `{}` keeps the input's size and resizing takes the `fit` filter, which is not installed; omit `size` (or use auto)", c.plugin.id()),
        ));
    }
    let limits = request::limits(app);
    if w > limits.max_dimension || h > limits.max_dimension || w as u64 * h as u64 > limits.max_pixels {
        return Err(ApiError::field("size", format!("`size` {w}x{h} is over the server's [limits]; ask for a smaller size")));
    }
    post.push(format!("fit:width={w},height={h},mode=crop"));
    Ok(())
}

/// Run the pipeline after the same checks the CLI makes, with 400s for what the caller can fix.
async fn run(app: &App, c: &Chosen, req: &EditRequest) -> ApiResult<EditResult> {
    check_request(&c.plugin, &c.info, req).map_err(|e| ApiError::bad(format!("{e:#}")))?;
    if let Some(name) = c.plugin.grants.missing_secrets().first() {
        // The operator's setup, not the caller's request.
        return Err(ApiError::internal(format!("model `{}` is not set up on this server: {}", c.plugin.id(), c.plugin.grants.missing_secret_message(name))));
    }
    let r = edit_named(&app.rt, &app.runner, req, Some("image")).await.map_err(|e| ApiError::from_run(&e))?;
    for o in r.outputs.iter().filter(|o| o.mime == "image/png") {
        hide_server_paths(&o.path).map_err(|e| ApiError::internal(format!("{}: cannot rewrite the provenance: {e:#}", o.path.display())))?;
    }
    Ok(r)
}

/// Results keep their provenance (prompt, engine, seed, steps, input hashes), but the server's own
/// file paths are its business: every `path` in it becomes a bare file name.
fn hide_server_paths(png: &std::path::Path) -> anyhow::Result<()> {
    fn redact(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match x {
                        Value::String(p) if k == "path" => *p = std::path::Path::new(p.as_str()).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                        _ => redact(x),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(redact),
            _ => {}
        }
    }
    let bytes = std::fs::read(png)?;
    let Some(text) = crate::imageio::read_png_provenance(&bytes) else { return Ok(()) };
    let mut prov: Value = serde_json::from_str(&text)?;
    redact(&mut prov);
    crate::pipeline::outputs::write_atomic(png, &crate::imageio::replace_png_provenance(&bytes, &prov.to_string())?)
}

/// `ImagesResponse` from the files the pipeline wrote.
fn answer(base: &str, s: &mut Scratch, r: &EditResult, url: bool) -> ApiResult<Json<Value>> {
    let mut outputs: Vec<_> = r.outputs.iter().filter(|o| o.mime.starts_with("image/")).collect();
    outputs.sort_by_key(|o| o.index);
    let mut data = vec![];
    for o in &outputs {
        if url {
            // Results sit in `<request>/out/`; the URL names the request and the file.
            let name = o.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            data.push(json!({"url": format!("{base}/v1/images/files/{}/{name}", s.id)}));
        } else {
            let bytes = std::fs::read(&o.path).map_err(|e| ApiError::internal(format!("{}: cannot read the result: {e}", o.path.display())))?;
            data.push(json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(bytes)}));
        }
    }
    s.keep = url;
    for f in &r.failures {
        tracing::warn!(target: "atelier::server", "{}: one output failed: {f}", s.id);
    }
    let mut body = json!({"created": now_s(), "data": data, "output_format": "png"});
    if let Some(o) = outputs.first() {
        if let (Some(w), Some(h)) = (o.width, o.height) {
            body["size"] = json!(format!("{w}x{h}"));
        }
    }
    let (mut input, mut output) = (0u64, 0u64);
    for u in &r.usage {
        input += u["input_tokens"].as_u64().unwrap_or(0);
        output += u["output_tokens"].as_u64().unwrap_or(0);
    }
    if input + output > 0 {
        body["usage"] = json!({"input_tokens": input, "output_tokens": output, "total_tokens": input + output});
    }
    Ok(Json(body))
}

/// The base of `url` results: `[server] public_url`, else what the caller used to reach us.
fn base_url(app: &App, headers: &HeaderMap) -> String {
    if let Some(u) = &app.public_url {
        return u.clone();
    }
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// `POST /v1/images/edits`.
pub async fn edits(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>, req: Request) -> ApiResult<Json<Value>> {
    let base = base_url(&app, req.headers());
    let mut form = Form::read(req, app.max_body).await?;
    let images = form.files(&["image", "image[]", "images"])?;
    let masks = form.files(&["mask"])?;
    let prompt = request::prompt(&mut form)?;
    let common = common(&mut form)?;
    let seed = request::seed(&mut form)?;
    if images.is_empty() {
        return Err(ApiError::field("image", "`image` is required: upload the picture to edit as a file part named `image` (several: `image[]`)"));
    }
    if masks.len() > 1 {
        return Err(ApiError::field("mask", "give at most one `mask`"));
    }
    let c = models::choose(&app, common.model.as_deref(), Want::Edit).await?;
    openai_defaults(&mut form, &c)?;
    let mut params = request::model_params(&mut form, &c)?;
    let mut s = scratch(&app);
    let mut inputs = vec![];
    let mut first = (0, 0);
    for (i, up) in images.iter().enumerate() {
        let field = if images.len() == 1 { "image".to_string() } else { format!("image[{i}]") };
        let (img, ext) = request::image(&app, &field, &up.bytes)?;
        if i == 0 {
            first = (img.width, img.height);
        }
        inputs.push(request::save(&s.dir, &format!("in-{:02}.{ext}", i + 1), &up.bytes)?);
    }
    let mask = match masks.first() {
        None => None,
        Some(m) => Some(request::save(&s.dir, "mask.png", &openai_mask(&app, &m.bytes, first)?)?),
    };
    let mut post = vec![];
    apply_size(&app, &c, common.size, &mut params, &mut post).await?;
    let req = EditRequest { inputs, prompt, model: c.plugin.id().to_string(), n: common.n, seed, params, mask, post, out_dir: s.dir.join("out"), ..Default::default() };
    tracing::info!(target: "atelier::server", "{}: edit by {} with {} (n={})", s.id, caller.0, req.model, req.n);
    let r = run(&app, &c, &req).await?;
    answer(&base, &mut s, &r, common.url)
}

/// `POST /v1/images/generations`: only models whose `prepare()` accepts a request without an input
/// image can serve it; for the others the 400 says which can.
pub async fn generations(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>, req: Request) -> ApiResult<Json<Value>> {
    let base = base_url(&app, req.headers());
    let mut form = Form::read(req, app.max_body).await?;
    let prompt = request::prompt(&mut form)?;
    let common = common(&mut form)?;
    let seed = request::seed(&mut form)?;
    let c = models::choose(&app, common.model.as_deref(), Want::Generate).await?;
    openai_defaults(&mut form, &c)?;
    let mut params = request::model_params(&mut form, &c)?;
    let mut post = vec![];
    apply_size(&app, &c, common.size, &mut params, &mut post).await?;
    let mut s = scratch(&app);
    // No input image: the pipeline lets a server request (named, unmasked) through without one.
    let req = EditRequest { prompt, model: c.plugin.id().to_string(), n: common.n, seed, params, post, out_dir: s.dir.join("out"), ..Default::default() };
    tracing::info!(target: "atelier::server", "{}: generation by {} with {} (n={})", s.id, caller.0, req.model, req.n);
    let r = run(&app, &c, &req).await?;
    answer(&base, &mut s, &r, common.url)
}

/// OpenAI masks mark the area to edit with fully transparent pixels; atelier's are white = edit.
/// The mask must match the first image's size.
fn openai_mask(app: &App, bytes: &[u8], (w, h): (u32, u32)) -> ApiResult<Vec<u8>> {
    let (img, _) = request::image(app, "mask", bytes)?;
    if (img.width, img.height) != (w, h) {
        return Err(ApiError::field("mask", format!("`mask` is {}x{} but `image` is {w}x{h}; they must be the same size", img.width, img.height)));
    }
    let mut out = Vec::with_capacity(img.pixels.len());
    let mut any = false;
    for px in img.pixels.chunks_exact(4) {
        let edit = px[3] == 0;
        any |= edit;
        let v = if edit { 255 } else { 0 };
        out.extend_from_slice(&[v, v, v, 255]);
    }
    if !any {
        return Err(ApiError::field("mask", "`mask` has no fully transparent pixels, so there is nothing to edit; make the area to change transparent (alpha 0) in a PNG with an alpha channel"));
    }
    crate::imageio::encode_png(&crate::wit_types::Image { width: w, height: h, pixels: out }, None).map_err(|e| ApiError::internal(format!("cannot encode the mask: {e:#}")))
}

/// `GET /v1/images/files/{request}/{name}`: a `url` result, for an hour.
pub async fn file(State(app): State<Arc<App>>, Path((request, name)): Path<(String, String)>) -> Response {
    let safe = |s: &str| !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let gone = || ApiError::not_found("no such image: result URLs expire an hour after they are made; make the request again").into_response();
    if !safe(&request) || !request.starts_with("img_") || !safe(&name) || !name.ends_with(".png") {
        return gone();
    }
    let path = app.dir.join("images").join(&request).join("out").join(&name);
    let fresh = std::fs::metadata(&path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age < URL_LIFETIME);
    if !fresh {
        return gone();
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, "image/png")], bytes).into_response(),
        Err(_) => gone(),
    }
}

/// Delete `url` results (and any folder a crash left) once they are older than [`URL_LIFETIME`].
pub fn start_janitor(app: &Arc<App>) {
    let dir = app.dir.join("images");
    app.spawn(async move {
        loop {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a > URL_LIFETIME);
                    if old {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(300)).await;
        }
    });
}
