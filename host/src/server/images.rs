//! `POST /v1/images/edits` (multipart, or JSON with data: URLs) and `POST /v1/images/generations`
//! (JSON): the CLI's `edit` pipeline, answered as OpenAI's `ImagesResponse`.

use super::auth::Caller;
use super::errors::{ApiError, ApiResult};
use super::form::Form;
use super::models::{self, Chosen, Want};
use super::admission::Turn;
use super::{App, cancel, new_id, now_s, request};
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
/// refers to it any more), kept for `[server] keep_results_h` when it holds `url` results. The
/// jobs' raw artifacts in `<state>/jobs/` go in any case: the results carry their provenance,
/// and the jobs' rows in jobs.sqlite stay as the record of what was made.
struct Scratch {
    app: Arc<App>,
    id: String,
    dir: PathBuf,
    keep: bool,
    /// Jobs whose folders go with the request.
    jobs: Vec<String>,
    /// Set once the pipeline has returned; a request dropped before that lost its client.
    ran: bool,
    /// The pipeline's task, and whether its model works in this process.
    task: Option<(tokio::task::AbortHandle, bool)>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut dirs: Vec<PathBuf> = self.jobs.iter().map(|j| self.app.runner.db.job_dir(j)).collect();
        if !self.keep {
            dirs.push(self.dir.clone());
        }
        let remove = move || {
            for d in dirs {
                let _ = std::fs::remove_dir_all(d);
            }
        };
        // No runtime only outside the server (nothing to stop then).
        let Ok(h) = tokio::runtime::Handle::try_current() else { return remove() };
        match self.task.take().filter(|_| !self.ran) {
            // The client left while the pipeline ran: stop it and its jobs, then clean up.
            Some((task, offline)) => {
                let (app, dir, id) = (self.app.clone(), self.dir.clone(), self.id.clone());
                h.spawn(async move {
                    tracing::info!(target: "atelier::server", "{id}: the client left before the answer; stopping its jobs");
                    cancel::stop(&app, &task, dir, offline, "cancelled: the client closed the connection before the answer").await;
                    let _ = tokio::task::spawn_blocking(remove).await;
                });
            }
            None => drop(h.spawn_blocking(remove)),
        }
    }
}

fn scratch(app: &Arc<App>) -> Scratch {
    let id = new_id("img_");
    Scratch { app: app.clone(), dir: app.dir.join("images").join(&id), id, keep: false, jobs: vec![], ran: false, task: None }
}

/// `size`: the model's own size when it lists this one (or takes a `size` parameter), else an
/// exact `fit` after the model.
async fn apply_size(app: &App, c: &Chosen, size: Option<(u32, u32)>, params: &mut Vec<(String, String)>, post: &mut Vec<String>) -> ApiResult<()> {
    let Some((w, h)) = size else { return Ok(()) };
    let exact = format!("{w}x{h}");
    if c.info.sizes.contains(&exact) || c.info.params.iter().any(|p| p.name == "size") {
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

/// The checks the CLI makes, with 400s for what the caller can fix (before a place in line is taken).
fn check(c: &Chosen, req: &EditRequest) -> ApiResult<()> {
    check_request(&c.plugin, &c.info, req).map_err(|e| ApiError::bad(format!("{e:#}")))?;
    if let Some(name) = c.plugin.grants.missing_secrets().first() {
        // The operator's setup, not the caller's request.
        return Err(ApiError::internal(format!("model `{}` is not set up on this server: {}", c.plugin.id(), c.plugin.grants.missing_secret_message(name))));
    }
    Ok(())
}

/// Run the pipeline in its own task, which keeps the model's turn until it ends: if the client
/// leaves, [`Scratch`]'s drop stops it and its jobs (see [`cancel::stop`]).
async fn run(app: &Arc<App>, s: &mut Scratch, c: &Chosen, req: &EditRequest, turn: Turn) -> ApiResult<EditResult> {
    let (a, r) = (app.clone(), req.clone());
    let task = tokio::spawn(async move {
        let _turn = turn;
        edit_named(&a.rt, &a.runner, &r, Some("image")).await
    });
    s.task = Some((task.abort_handle(), super::admission::works_in_process(&c.plugin)));
    let r = task.await.map_err(|e| ApiError::internal(format!("the request's pipeline stopped: {e}")))?;
    s.ran = true;
    // A failed request's job folders stay until the janitor's sweep (keep_results_h): what a
    // failure after the model kept may be needed to see why it failed.
    let r = r.map_err(|e| ApiError::from_run(&e))?;
    s.jobs = r.jobs.clone();
    let pngs: Vec<PathBuf> = r.outputs.iter().filter(|o| o.mime == "image/png").map(|o| o.path.clone()).collect();
    tokio::task::spawn_blocking(move || {
        for p in pngs {
            hide_server_paths(&p).map_err(|e| ApiError::internal(format!("{}: cannot rewrite the provenance: {e:#}", p.display())))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| ApiError::internal(format!("rewriting the provenance stopped: {e}")))??;
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
async fn answer(base: &str, s: &mut Scratch, r: &EditResult, url: bool) -> ApiResult<Json<Value>> {
    let mut outputs: Vec<_> = r.outputs.iter().filter(|o| o.mime.starts_with("image/")).collect();
    outputs.sort_by_key(|o| o.index);
    let data: Vec<Value> = if url {
        // Results sit in `images/<request>/out/` of the artifact store (the state dir, or the
        // bucket: then any front end serves them); the URL names the request and the file.
        let mut data = vec![];
        for o in &outputs {
            let name = o.path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let key = crate::storage::image_result_key(&s.id, name);
            let size = s.app.artifacts.publish(&key, &o.path).await.map_err(|e| ApiError::internal(format!("cannot store the result: {e:#}")))?;
            if s.app.artifacts.is_remote() {
                tracing::info!(target: "atelier::server", "{}: stored {key} ({size} bytes) in {}", s.id, s.app.artifacts.location());
            }
            data.push(json!({"url": format!("{base}/v1/images/files/{}/{name}", s.id)}));
        }
        data
    } else {
        let paths: Vec<PathBuf> = outputs.iter().map(|o| o.path.clone()).collect();
        // Reading and base64 of big results is codec work: the blocking pool.
        tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .map(|p| {
                    let bytes = std::fs::read(p).map_err(|e| ApiError::internal(format!("{}: cannot read the result: {e}", p.display())))?;
                    Ok(json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(bytes)}))
                })
                .collect::<ApiResult<Vec<Value>>>()
        })
        .await
        .map_err(|e| ApiError::internal(format!("encoding the results stopped: {e}")))??
    };
    // Kept on disk only when the disk is where `url` results are served from.
    s.keep = url && !s.app.artifacts.is_remote();
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
    let mut form = Form::read(req, app.max_body, app.body_timeout).await?;
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
    request::pictures_only(&params, &c)?;
    drop(form);
    // Everything that can be refused from headers alone is, before a place in line is taken.
    let count = images.len();
    let field = |i: usize| if count == 1 { "image".to_string() } else { format!("image[{i}]") };
    let mut heads = vec![];
    for (i, up) in images.iter().enumerate() {
        heads.push(request::image_header(&app, &field(i), &up.bytes)?);
    }
    let mask_head = masks.first().map(|m| request::image_header(&app, "mask", &m.bytes)).transpose()?;
    let mut post = vec![];
    apply_size(&app, &c, common.size, &mut params, &mut post).await?;
    let mut s = scratch(&app);
    let inputs: Vec<PathBuf> = heads.iter().enumerate().map(|(i, (_, ext))| s.dir.join(format!("in-{:02}.{ext}", i + 1))).collect();
    let mask = mask_head.as_ref().map(|_| s.dir.join("mask.png"));
    let mut req = EditRequest { inputs, prompt, model: c.plugin.id().to_string(), n: common.n, seed, params, mask, post, out_dir: s.dir.join("out"), ..Default::default() };
    check(&c, &req)?;
    let place = app.admission.enter(&c.plugin)?;
    // Waiting requests hold no image bytes: the uploads go to disk first.
    for (i, up) in images.into_iter().enumerate() {
        request::save(&s.dir, &format!("in-{:02}.{}", i + 1, heads[i].1), &up.bytes).await?;
    }
    let raw_mask = match (masks.into_iter().next(), &mask_head) {
        (Some(m), Some((_, ext))) => Some(request::save(&s.dir, &format!("mask-openai.{ext}"), &m.bytes).await?),
        _ => None,
    };
    let turn = place.turn().await;
    let mut decoded = vec![];
    for (i, p) in req.inputs.iter().enumerate() {
        decoded.push(request::read_decoded(&app, &field(i), p).await?);
    }
    req.decoded_inputs = crate::pipeline::edit::DecodedInputs::new(decoded);
    if let Some(raw) = raw_mask {
        let bytes = tokio::fs::read(&raw).await.map_err(|e| ApiError::internal(format!("{}: cannot read the mask back: {e}", raw.display())))?;
        let png = openai_mask(&app, bytes.into(), heads[0].0).await?;
        request::save(&s.dir, "mask.png", &png).await?;
    }
    tracing::info!(target: "atelier::server", "{}: edit by {} with {} (n={})", s.id, caller.0, req.model, req.n);
    let r = run(&app, &mut s, &c, &req, turn).await?;
    answer(&base, &mut s, &r, common.url).await
}

/// `POST /v1/images/generations`: only models whose `prepare()` accepts a request without an input
/// image can serve it; for the others the 400 says which can.
pub async fn generations(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>, req: Request) -> ApiResult<Json<Value>> {
    let base = base_url(&app, req.headers());
    let mut form = Form::read(req, app.max_body, app.body_timeout).await?;
    let prompt = request::prompt(&mut form)?;
    let common = common(&mut form)?;
    let seed = request::seed(&mut form)?;
    let c = models::choose(&app, common.model.as_deref(), Want::Generate).await?;
    openai_defaults(&mut form, &c)?;
    let mut params = request::model_params(&mut form, &c)?;
    request::pictures_only(&params, &c)?;
    let mut post = vec![];
    apply_size(&app, &c, common.size, &mut params, &mut post).await?;
    let mut s = scratch(&app);
    // No input image: the pipeline lets a server request (named, unmasked) through without one.
    let req = EditRequest { prompt, model: c.plugin.id().to_string(), n: common.n, seed, params, post, out_dir: s.dir.join("out"), ..Default::default() };
    check(&c, &req)?;
    let turn = app.admission.enter(&c.plugin)?.turn().await;
    tracing::info!(target: "atelier::server", "{}: generation by {} with {} (n={})", s.id, caller.0, req.model, req.n);
    let r = run(&app, &mut s, &c, &req, turn).await?;
    answer(&base, &mut s, &r, common.url).await
}

/// OpenAI masks mark the area to edit with fully transparent pixels; atelier's are white = edit.
/// The mask must match the first image's size.
async fn openai_mask(app: &App, bytes: bytes::Bytes, (w, h): (u32, u32)) -> ApiResult<Vec<u8>> {
    let img = request::decode(app, "mask", bytes).await?;
    tokio::task::spawn_blocking(move || convert_mask(img, (w, h))).await.map_err(|e| ApiError::internal(format!("converting the mask stopped: {e}")))?
}

fn convert_mask(img: crate::types::Image, (w, h): (u32, u32)) -> ApiResult<Vec<u8>> {
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
    crate::imageio::encode_png(&crate::types::Image { width: w, height: h, pixels: out }, None).map_err(|e| ApiError::internal(format!("cannot encode the mask: {e:#}")))
}

/// `GET /v1/images/files/{request}/{name}`: a `url` result, for `[server] keep_results_h`.
pub async fn file(State(app): State<Arc<App>>, Path((request, name)): Path<(String, String)>) -> Response {
    let safe = |s: &str| !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let gone = || ApiError::not_found(format!("no such image: result URLs expire {} after they are made; make the request again", shown_age(app.keep_results))).into_response();
    if !safe(&request) || !request.starts_with("img_") || !safe(&name) || !name.ends_with(".png") {
        return gone();
    }
    let key = crate::storage::image_result_key(&request, &name);
    let a = match app.artifacts.read(&key).await {
        Ok(Some(a)) => a,
        Ok(None) => return gone(),
        Err(e) => return ApiError::internal(format!("cannot read the result: {e:#}")).into_response(),
    };
    if !a.modified.elapsed().is_ok_and(|age| age < app.keep_results) {
        return gone();
    }
    let headers = [(axum::http::header::CONTENT_TYPE, "image/png".to_string()), (axum::http::header::CONTENT_LENGTH, a.size.to_string())];
    (headers, axum::body::Body::from_stream(a.stream)).into_response()
}

/// Delete `url` results, and what failed or interrupted requests left (their folders and their
/// jobs' raw artifacts), once older than `[server] keep_results_h`.
pub fn start_janitor(app: &Arc<App>) {
    let a = app.clone();
    // Often enough that nothing outlives its time by more than a tenth of it.
    let every = (app.keep_results / 10).clamp(Duration::from_secs(1), Duration::from_secs(300));
    app.spawn(async move {
        loop {
            let b = a.clone();
            let _ = tokio::task::spawn_blocking(move || sweep(&b)).await;
            // `url` results in a bucket expire there too (every front end sweeps; deletes are idempotent).
            if a.artifacts.is_remote()
                && let Err(e) = a.artifacts.delete_older_than("images", a.keep_results).await
            {
                tracing::warn!(target: "atelier::server", "cannot remove expired results: {e:#}");
            }
            tokio::time::sleep(every).await;
        }
    });
}

fn sweep(app: &App) {
    let old = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a > app.keep_results);
    let images = app.dir.join("images");
    for e in std::fs::read_dir(&images).into_iter().flatten().flatten() {
        if old(&e.path()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    // Job folders of the server's image requests (never those of videos: they live until DELETE).
    let jobs = app.runner.db.job_dir("");
    for e in std::fs::read_dir(&jobs).into_iter().flatten().flatten() {
        if !old(&e.path()) {
            continue;
        }
        let Some(id) = e.file_name().to_str().map(str::to_string) else { continue };
        if let Ok(Some(j)) = app.runner.db.get(&id)
            && j.state.is_final()
            && cancel::job_is_under(&j, &images)
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// "1 h", "5 min", "30 s": how long results are kept, for messages.
pub(crate) fn shown_age(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{} s", d.as_secs_f64())
    }
}
