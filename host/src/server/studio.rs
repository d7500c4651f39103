//! The studio: a web page served by `atelier serve` itself (`/studio/`) for the explore → refine →
//! edit → animate path, and the atelier-specific JSON it needs beside OpenAI's API:
//!
//! - `GET /v1/atelier/models`: every model's `describe()` (references, outputs, sizes, mask,
//!   video, param specs) and every filter step, as JSON;
//! - `POST /v1/atelier/inspect`: what the server decodes from an image (size, EXIF orientation,
//!   colour profile, provenance, its cost), and the upright sRGB picture when decoding changed it;
//! - `POST /v1/atelier/estimate` and `POST /v1/atelier/cost`: the operator's price table before
//!   and after a request;
//! - `POST /v1/atelier/filter?step=...`: filter steps (a stage's pre and post steps) on one image;
//! - `POST /v1/atelier/recipe`: the path taken, as a recipe TOML that `atelier run` replays
//!   (checked with the same parser and validation as `atelier run`);
//! - `GET /v1/atelier/videos/{id}/provenance`: a finished video's provenance.
//!
//! The page's files are compiled into the binary; they load without a token (they hold no caller
//! data) and the page sends the caller's token with every API call.

use super::App;
use super::auth::Caller;
use super::errors::{ApiError, ApiResult};
use super::request;
use crate::manifest::Kind;
use crate::types;
use crate::params::{kind_name, to_json};
use crate::types::ParamSpec;
use crate::workflow::cost::{self, PriceTable};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("../../studio/index.html");
const STUDIO_JS: &str = include_str!("../../studio/studio.js");
const STUDIO_CSS: &str = include_str!("../../studio/studio.css");

/// The page may load only its own files and talk only to this server: no CDN, no beacon.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The page's routes, without a token (static files only).
pub(crate) fn pages() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/studio/") }))
        .route("/studio", get(|| async { Redirect::to("/studio/") }))
        .route("/studio/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/studio/studio.js", get(|| async { asset("text/javascript; charset=utf-8", STUDIO_JS) }))
        .route("/studio/studio.css", get(|| async { asset("text/css; charset=utf-8", STUDIO_CSS) }))
}

/// The JSON routes, to be put behind the token like the rest of `/v1`.
pub(crate) fn api() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/atelier/models", get(models))
        .route("/v1/atelier/inspect", post(inspect))
        .route("/v1/atelier/estimate", post(estimate))
        .route("/v1/atelier/cost", post(cost_of))
        .route("/v1/atelier/filter", post(filter))
        .route("/v1/atelier/recipe", post(recipe))
        .route("/v1/atelier/videos/{id}/provenance", get(video_provenance))
}

fn asset(mime: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The files change with the binary: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn spec_json(s: &ParamSpec) -> Value {
    json!({"name": s.name, "description": s.description, "kind": kind_name(s.kind()), "min": s.min(), "max": s.max(),
           "choices": s.choices(), "default": s.default_value().as_ref().map(to_json), "required": s.required})
}

fn prices(app: &App) -> ApiResult<PriceTable> {
    PriceTable::from_config(&app.rt.settings.raw, &app.rt.settings.shown_path()).map_err(|e| ApiError::internal(format!("the operator's [prices] table: {e:#}")))
}

/// `GET /v1/atelier/models`: each model's `describe()` with what the page needs to choose one,
/// and the filter steps for pre/post.
async fn models(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let prices = prices(&app)?;
    let ids: Vec<String> = app.rt.manifests().filter(|m| m.kind == Kind::Model).map(|m| m.id.clone()).collect();
    let mut data = vec![];
    let mut problems = vec![];
    for id in ids {
        let c = match app.models.get(&app, &id).await {
            Ok(c) => c,
            Err(e) => {
                problems.push(json!({"id": id, "message": format!("{e:#}")}));
                continue;
            }
        };
        let i = &c.info;
        let offline = c.plugin.manifest.hosts.is_empty();
        let missing = c.plugin.grants.missing_secrets();
        let price = prices.price(&id, &i.model);
        data.push(json!({
            "id": id, "display_name": i.display_name, "description": i.description, "model": i.model,
            "task": match i.default_output() { types::OutputKind::Image => "image-edit", types::OutputKind::Video => "image-to-video" },
            "outputs": i.outputs, "generates_without_input": i.generates_without_input, "effects_outside_host": i.effects_outside_host,
            "max_references": i.max_references, "max_outputs": i.max_outputs, "aspect_ratios": i.aspect_ratios,
            "sizes": i.sizes, "supports_mask": i.supports_mask, "supports_seed": i.supports_seed, "supports_audio": i.video_audio,
            "makes_video": super::models::makes_video(i), "makes_images": i.makes(types::OutputKind::Image),
            "offline": offline, "priced": offline || price.is_some(),
            // A model whose secrets the operator did not set up cannot run here; the page says why.
            "ready": missing.is_empty(),
            "not_ready_because": missing.first().map(|n| c.plugin.grants.missing_secret_message(n)),
            "params": i.params.iter().map(spec_json).collect::<Vec<_>>(),
        }));
    }
    let mut filters = vec![];
    for p in app.rt.filter_plugins().map_err(|e| ApiError::internal(format!("{e:#}")))? {
        match p.describe_filters().await {
            Ok(fs) => filters.extend(fs.iter().map(|f| json!({"name": f.name, "plugin": p.id(), "description": f.description, "params": f.params.iter().map(spec_json).collect::<Vec<_>>()}))),
            Err(e) => problems.push(json!({"id": p.id(), "message": format!("{e:#}")})),
        }
    }
    Ok(Json(json!({"object": "list", "data": data, "filters": filters, "currency": prices.currency, "problems": problems})))
}

/// `POST /v1/atelier/inspect`: the body is an image file. What the server reads from it: stored
/// and upright size, format, EXIF orientation, colour profile, truncation, the `atelier`
/// provenance of a PNG (with its cost from the price table), and — when decoding changed the
/// pixels (rotation, colour conversion) — the picture as the engines will see it, as a PNG.
async fn inspect(State(app): State<Arc<App>>, body: Bytes) -> ApiResult<Json<Value>> {
    if body.is_empty() {
        return Err(ApiError::bad("send the image file as the request body (Content-Type: image/png, image/jpeg, image/webp or image/gif)"));
    }
    let ((sw, sh), ext) = request::image_header(&app, "body", &body)?;
    let mime = crate::imageio::sniff_mime(&body).unwrap_or("application/octet-stream");
    let limits = request::limits(&app);
    let bytes = body.clone();
    let (info, upright, prov) = tokio::task::spawn_blocking(move || -> ApiResult<_> {
        let (img, info) = crate::imageio::decode_with_info(&bytes, limits, "the image").map_err(|e| ApiError::field("body", format!("{e:#}")))?;
        let (w, h) = (img.width(), img.height());
        // Only a picture decoding changed is sent back: the page then works on what the engines see.
        let changed = info.orientation.is_some() || info.color_profile.as_ref().is_some_and(|c| c.converted_to_srgb);
        let png = if changed {
            let png = crate::imageio::encode_png(&crate::imageio::to_image(img), None).map_err(|e| ApiError::internal(format!("cannot encode the upright picture: {e:#}")))?;
            Some(base64::engine::general_purpose::STANDARD.encode(png))
        } else {
            None
        };
        let prov = if mime == "image/png" { crate::imageio::read_png_provenance(&bytes).and_then(|t| serde_json::from_str::<Value>(&t).ok()) } else { None };
        Ok((info, (w, h, png), prov))
    })
    .await
    .map_err(|e| ApiError::internal(format!("decoding stopped: {e}")))??;
    let (w, h, png) = upright;
    let mut notes = vec![];
    if let Some(o) = info.orientation {
        notes.push(format!("EXIF orientation {o} applied: stored {sw}×{sh}, shown and sent upright as {w}×{h}"));
    }
    if let Some(c) = &info.color_profile {
        notes.push(format!("colour profile {}: {}", c.description.clone().unwrap_or_else(|| "(unnamed)".into()), c.note));
    } else {
        notes.push("no colour profile: taken as sRGB".into());
    }
    if let Some(t) = &info.truncated {
        notes.push(format!("the file looks cut short: {t}"));
    }
    let cost = match &prov {
        Some(p) => Some(cost_from_provenance(&app, p, (w, h))?),
        None => None,
    };
    Ok(Json(json!({
        "width": w, "height": h, "stored_width": sw, "stored_height": sh, "mime": mime, "extension": ext, "bytes": body.len(),
        "orientation": info.orientation, "color_profile": info.color_profile, "truncated": info.truncated, "notes": notes,
        "upright_png_b64": png, "provenance": prov, "cost": cost,
    })))
}

/// The cost of one output from its provenance (engine, model id, usage, seconds).
fn cost_from_provenance(app: &App, p: &Value, (w, h): (u32, u32)) -> ApiResult<Value> {
    let engine = p["engine"].as_str().unwrap_or_default().to_string();
    let model = p["model"].as_str().unwrap_or_default().to_string();
    let video = p["video"].as_bool().unwrap_or(false);
    let usage = if p["usage"].is_null() { vec![] } else { vec![p["usage"].clone()] };
    priced(app, &engine, &model, &usage, if video { vec![] } else { vec![(w, h)] }, u32::from(video), &p["params"])
}

fn priced(app: &App, engine: &str, model: &str, usage: &[Value], images: Vec<(u32, u32)>, videos: u32, params: &Value) -> ApiResult<Value> {
    let prices = prices(app)?;
    let offline = app.rt.model(engine).map(|p| p.manifest.hosts.is_empty()).unwrap_or(false);
    let params = params_from_json(params);
    let c = cost::actual(prices.price(engine, model).as_ref(), offline, usage, &images, videos, &params);
    Ok(cost_json(&prices, &c))
}

fn cost_json(prices: &PriceTable, c: &cost::Cost) -> Value {
    json!({"amount": c.amount, "basis": c.basis, "currency": prices.currency,
           "shown": c.amount.map(|a| prices.show(a)).unwrap_or_else(|| c.basis.clone())})
}

/// `{"seconds": 3, "size": "2K"}` (or provenance's `params`) as resolved parameters for the price logic.
fn params_from_json(v: &Value) -> Vec<crate::types::Param> {
    use crate::types::{Param, Value as V};
    let Some(m) = v.as_object() else { return vec![] };
    m.iter()
        .filter_map(|(k, v)| {
            let value = match v {
                Value::Bool(b) => V::Boolean(*b),
                Value::Number(n) if n.is_i64() => V::Integer(n.as_i64()?),
                Value::Number(n) => V::Number(n.as_f64()?),
                Value::String(s) => V::Text(s.clone()),
                _ => return None,
            };
            Some(Param { name: k.clone(), value })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EstimateBody {
    model: String,
    #[serde(default = "one")]
    n: u32,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    video: bool,
}

fn one() -> u32 {
    1
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("the body must be JSON for {what}: {e}")))
}

/// `POST /v1/atelier/estimate` `{"model", "n", "params": {name: text}, "video"}`: what the
/// operator's price table expects the request to cost, with the model's defaults filled in.
async fn estimate(State(app): State<Arc<App>>, body: Bytes) -> ApiResult<Json<Value>> {
    let b: EstimateBody = json_body(&body, "an estimate: {\"model\": \"classic\", \"n\": 3, \"params\": {}}")?;
    let c = app.models.get(&app, &b.model).await.map_err(|e| ApiError::field("model", format!("{e:#}")).with_code("model_not_found"))?;
    let mut given: Vec<(String, String)> = b.params.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect();
    let video = b.video || c.info.default_output() == types::OutputKind::Video;
    if b.video && c.info.params.iter().any(|p| p.name == "output") && !given.iter().any(|(k, _)| k == "output") {
        given.push(("output".into(), "video".into()));
    }
    // `aspect`/`size`/`output` that are typed fields of the model (not parameters of it) are
    // checked as such and still reach the price logic, which reads `size`.
    let (typed, given): (Vec<_>, Vec<_>) = given.into_iter().partition(|(k, _)| matches!(k.as_str(), "aspect" | "size" | "output") && !c.info.params.iter().any(|p| p.name == *k));
    for (k, v) in &typed {
        let allowed = match k.as_str() {
            "aspect" => &c.info.aspect_ratios,
            "size" => &c.info.sizes,
            _ => continue,
        };
        if !allowed.contains(v) {
            return Err(ApiError::field("params", format!("model `{}` does not take {k} {v}; allowed: {}", b.model, allowed.join(", "))));
        }
    }
    let mut params = crate::params::resolve(&format!("model `{}`", b.model), &c.info.params, &given).map_err(|e| ApiError::field("params", format!("{e:#}")))?;
    params.extend(typed.into_iter().map(|(name, v)| crate::types::Param { name, value: crate::types::Value::Text(v) }));
    let prices = prices(&app)?;
    let offline = c.plugin.manifest.hosts.is_empty();
    let est = cost::estimate(prices.price(&b.model, &c.info.model).as_ref(), offline, video, b.n.max(1), &params);
    Ok(Json(cost_json(&prices, &est)))
}

/// `POST /v1/atelier/filter?step=STEP[&step=STEP...][&keep=provenance]`, the body an image: the
/// steps run in order (the same catalog and code as `--pre`/`--post`), answered as a PNG. With
/// `keep=provenance` a PNG's `atelier` provenance is carried over with the steps added to its
/// `post`, so a result filtered after the model still says how it was made.
async fn filter(State(app): State<Arc<App>>, axum::extract::RawQuery(q): axum::extract::RawQuery, body: Bytes) -> ApiResult<Response> {
    let mut steps = vec![];
    let mut keep = false;
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("step", s) if !s.trim().is_empty() => steps.push(s.trim().to_string()),
            ("step", _) => {}
            ("keep", "provenance") => keep = true,
            (k, _) => return Err(ApiError::field(k, format!("unknown query parameter `{k}`; give step=NAME[:k=v,...] (repeated) and optionally keep=provenance"))),
        }
    }
    if steps.is_empty() {
        return Err(ApiError::field("step", "give at least one step=NAME[:k=v,...] (see GET /v1/atelier/models `filters`)"));
    }
    request::image_header(&app, "body", &body)?;
    let catalog = crate::pipeline::Catalog::load(&app.rt).await.map_err(|e| ApiError::internal(format!("cannot load the filter plugins: {e:#}")))?;
    let parsed = catalog.parse_all_remote(&steps).map_err(|e| ApiError::field("step", format!("{e:#}")))?;
    let prov = if keep { crate::imageio::read_png_provenance(&body) } else { None };
    // Shrink-on-load when the chain starts by shrinking, as `atelier filter` does.
    let lim = request::limits(&app);
    let (img, _, run_steps) = tokio::task::spawn_blocking(move || crate::pipeline::steps::decode_for(&body, lim, "`body`", &parsed))
        .await
        .map_err(|e| ApiError::internal(format!("decoding `body` stopped: {e}")))?
        .map_err(|e| ApiError::field("body", format!("{e:#}")))?;
    let img = crate::pipeline::steps::run(&super::new_id("studio_filter_"), img, &run_steps).await.map_err(|e| ApiError::bad(format!("{e:#}")))?;
    let prov = prov.and_then(|t| serde_json::from_str::<Value>(&t).ok()).map(|mut p| {
        let mut post: Vec<Value> = p["post"].as_array().cloned().unwrap_or_default();
        post.extend(steps.iter().map(|s| json!(s)));
        p["post"] = json!(post);
        p["output"]["width"] = json!(img.width);
        p["output"]["height"] = json!(img.height);
        p.to_string()
    });
    let png = tokio::task::spawn_blocking(move || crate::imageio::encode_png(&img, prov.as_deref()))
        .await
        .map_err(|e| ApiError::internal(format!("encoding stopped: {e}")))?
        .map_err(|e| ApiError::internal(format!("cannot encode the result: {e:#}")))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CostBody {
    engine: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Vec<Value>,
    #[serde(default)]
    images: Vec<(u32, u32)>,
    #[serde(default)]
    videos: u32,
    #[serde(default)]
    params: Value,
}

/// `POST /v1/atelier/cost` `{"engine", "model", "usage": [...], "images": [[w, h]], "videos", "params"}`:
/// what reported usage costs (for outputs whose provenance the page already read).
async fn cost_of(State(app): State<Arc<App>>, body: Bytes) -> ApiResult<Json<Value>> {
    let b: CostBody = json_body(&body, "a cost: {\"engine\": \"classic\", \"usage\": [...], \"images\": [[w, h]]}")?;
    Ok(Json(priced(&app, &b.engine, &b.model, &b.usage, b.images, b.videos, &b.params)?))
}

/// One stage of the path taken in the studio.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StudioStage {
    name: String,
    #[serde(default)]
    description: Option<String>,
    engine: String,
    prompt: String,
    #[serde(default = "one")]
    n: u32,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    pre: Vec<String>,
    #[serde(default)]
    post: Vec<String>,
    /// The candidate picked to continue (1-based).
    #[serde(default)]
    pick: Option<u32>,
    /// An OpenAI mask (alpha 0 = edit) as a `data:` URL; written as a white = edit PNG.
    #[serde(default)]
    mask: Option<String>,
    /// `@input`, `@STAGE`, or a `data:` URL of a picture (written beside the recipe).
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    animate: bool,
    /// Where its picture came from: `input` or an earlier stage's name (none: the previous stage).
    #[serde(default)]
    from: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    stages: Vec<StudioStage>,
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_list(v: &[String]) -> String {
    format!("[{}]", v.iter().map(|s| toml_str(s)).collect::<Vec<_>>().join(", "))
}

/// A name fit for files and stage names: letters, digits, `-`, `_`.
fn slug(s: &str, fallback: &str) -> String {
    let t: String = s.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' }).collect();
    let t = t.trim_matches('-').chars().take(48).collect::<String>();
    if t.is_empty() { fallback.to_string() } else { t }
}

/// The bytes of a `data:image/...;base64,` URL.
fn data_url(field: &str, s: &str) -> ApiResult<Vec<u8>> {
    let b64 = s
        .strip_prefix("data:")
        .and_then(|r| r.split_once(";base64,"))
        .map(|(_, b)| b)
        .ok_or_else(|| ApiError::field(field, format!("`{field}` must be a data: URL (data:image/png;base64,...)")))?;
    base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| ApiError::field(field, format!("`{field}`: bad base64: {e}")))
}

/// An OpenAI mask (alpha 0 = edit) as atelier's white = edit PNG.
fn atelier_mask(field: &str, img: crate::types::Image) -> ApiResult<Vec<u8>> {
    let mut any = false;
    let pixels: Vec<u8> = img
        .pixels
        .chunks_exact(4)
        .flat_map(|px| {
            let v = if px[3] == 0 { 255 } else { 0 };
            any |= v == 255;
            [v, v, v, 255]
        })
        .collect();
    if !any {
        return Err(ApiError::field(field, format!("`{field}` has no transparent (alpha 0) pixel, so it marks nothing to edit; paint the area to change")));
    }
    crate::imageio::encode_png(&crate::types::Image { width: img.width, height: img.height, pixels }, None).map_err(|e| ApiError::internal(format!("cannot encode the mask: {e:#}")))
}

/// `POST /v1/atelier/recipe`: the studio's path as a recipe TOML plus the files it names (masks,
/// reference pictures), to be saved side by side. The TOML is parsed and validated against the
/// installed engines exactly as `atelier run` would (only the input picture is left for the
/// command line), so what is handed back runs.
async fn recipe(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>, body: Bytes) -> ApiResult<Json<Value>> {
    let b: RecipeBody = json_body(&body, "a recipe: {\"name\": \"...\", \"stages\": [...]}")?;
    if b.stages.is_empty() {
        return Err(ApiError::field("stages", "the path has no stages yet; run at least one stage before saving it as a recipe"));
    }
    refuse_server_files(&app, &b.stages).await?;
    let name = slug(&b.name, "studio");
    let mut text = format!("# Made in atelier's studio by {} on {}.\n# Run: atelier run {name}.toml PHOTO -o runs/{name}\n", caller.0, now_text());
    text.push_str(&format!("name = {}\n", toml_str(&name)));
    if let Some(d) = b.description.as_deref().filter(|d| !d.trim().is_empty()) {
        text.push_str(&format!("description = {}\n", toml_str(d)));
    }
    let mut files: Vec<(String, Vec<u8>)> = vec![];
    let mut names: Vec<String> = vec![];
    let limits = request::limits(&app);
    for (i, s) in b.stages.iter().enumerate() {
        let n1 = i + 1;
        let sname = slug(&s.name, &format!("stage{n1}"));
        if names.contains(&sname) {
            return Err(ApiError::field("stages", format!("two stages are named `{sname}`; give each its own name")));
        }
        text.push_str("\n[[stage]]\n");
        text.push_str(&format!("name = {}\n", toml_str(&sname)));
        if let Some(d) = s.description.as_deref().filter(|d| !d.trim().is_empty()) {
            text.push_str(&format!("description = {}\n", toml_str(d)));
        }
        text.push_str(&format!("engine = {}\n", toml_str(&s.engine)));
        // `{` and `}` are placeholders in recipe prompts: a studio prompt is literal text.
        text.push_str(&format!("prompt = {}\n", toml_str(&s.prompt.replace('{', "{{").replace('}', "}}"))));
        text.push_str(&format!("n = {}\n", s.n));
        if let Some(seed) = s.seed {
            text.push_str(&format!("seed = {seed}\n"));
        }
        match s.from.as_deref() {
            None | Some("") => {}
            Some("input") => text.push_str("from = \"input\"\n"),
            Some(f) => text.push_str(&format!("from = {}\n", toml_str(&slug(f, f)))),
        }
        let params: Vec<(&String, &String)> = s.params.iter().filter(|(_, v)| !v.trim().is_empty()).collect();
        if !params.is_empty() {
            let inner: Vec<String> = params
                .iter()
                .map(|(k, v)| {
                    let key = if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') { k.to_string() } else { toml_str(k) };
                    format!("{key} = {}", toml_str(v))
                })
                .collect();
            text.push_str(&format!("params = {{ {} }}\n", inner.join(", ")));
        }
        if !s.pre.is_empty() {
            text.push_str(&format!("pre = {}\n", toml_list(&s.pre)));
        }
        if !s.post.is_empty() {
            text.push_str(&format!("post = {}\n", toml_list(&s.post)));
        }
        let mut refs = vec![];
        for (k, r) in s.references.iter().enumerate() {
            if r.starts_with('@') {
                refs.push(r.clone());
                continue;
            }
            let field = format!("stages[{i}].references[{k}]");
            let bytes = data_url(&field, r)?;
            let (_, ext) = request::image_header(&app, &field, &bytes)?;
            let file = format!("{name}-{sname}-ref{}.{ext}", k + 1);
            refs.push(file.clone());
            files.push((file, bytes));
        }
        if !refs.is_empty() {
            text.push_str(&format!("references = {}\n", toml_list(&refs)));
        }
        if let Some(m) = &s.mask {
            let field = format!("stages[{i}].mask");
            let bytes = data_url(&field, m)?;
            request::image_header(&app, &field, &bytes)?;
            let f = field.clone();
            let img = tokio::task::spawn_blocking(move || crate::imageio::decode(&bytes, limits, &f).map_err(|e| ApiError::field(&f, format!("{e:#}"))))
                .await
                .map_err(|e| ApiError::internal(format!("decoding the mask stopped: {e}")))??;
            let png = atelier_mask(&field, img)?;
            let file = format!("{name}-{sname}-mask.png");
            text.push_str(&format!("mask = {}\n", toml_str(&file)));
            files.push((file, png));
        }
        if s.animate {
            text.push_str("animate = true\n");
        }
        // The pick only matters when a later stage continues from this one.
        if let Some(p) = s.pick.filter(|_| i + 1 < b.stages.len()) {
            text.push_str(&format!("pick = {p}\n"));
        }
        names.push(sname);
    }
    let problems = check_recipe(&app, &name, &text, &files).await?;
    if !problems.is_empty() {
        return Err(ApiError::bad(format!("the recipe made from this path would not run: {}", problems.join("; "))));
    }
    let files: Vec<Value> = files
        .iter()
        .map(|(n, bytes)| {
            let mime = crate::imageio::sniff_mime(bytes).unwrap_or("application/octet-stream");
            json!({"name": n, "data_url": format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))})
        })
        .collect();
    Ok(Json(json!({"file_name": format!("{name}.toml"), "toml": text, "files": files})))
}

/// A recipe from the studio names no file on the server's disk: pictures come as `data:` URLs.
/// A filter step or model parameter that takes an image would be a server path, and validating it
/// would tell the caller whether that file exists and is a picture — so it is refused before
/// anything looks at it, as `/v1/atelier/filter` and the images endpoints do.
async fn refuse_server_files(app: &Arc<App>, stages: &[StudioStage]) -> ApiResult<()> {
    let catalog = crate::pipeline::Catalog::load(&app.rt).await.map_err(|e| ApiError::internal(format!("cannot load the filter plugins: {e:#}")))?;
    for (i, s) in stages.iter().enumerate() {
        for (field, steps) in [("pre", &s.pre), ("post", &s.post)] {
            catalog.parse_all_remote(steps).map_err(|e| ApiError::field(&format!("stages[{i}].{field}"), format!("{e:#}")))?;
        }
        // An unknown engine is the validator's to report (it names no file).
        let Ok(c) = app.models.get(app, &s.engine).await else { continue };
        for (k, v) in &s.params {
            if !v.trim().is_empty() && c.info.params.iter().any(|p| p.name == *k && p.kind() == types::ParamKind::Media) {
                return Err(ApiError::field(
                    &format!("stages[{i}].params.{k}"),
                    format!("`{k}` takes an image, which the server does not read from its own disk; give the picture as a reference (`@input`, `@STAGE` or a data: URL), or set `{k}` in the saved recipe and run it with the CLI"),
                )
                .with_code("unsupported_parameter"));
            }
        }
    }
    Ok(())
}

/// The time now as an HTTP date (`Fri, 04 Dec 2026 19:00:00 GMT`), for the recipe's header comment.
fn now_text() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now())
}

/// Parse and validate the recipe as `atelier run` will, with its files beside it in a scratch
/// folder; every problem except the missing input picture (given at run time).
async fn check_recipe(app: &Arc<App>, name: &str, text: &str, files: &[(String, Vec<u8>)]) -> ApiResult<Vec<String>> {
    let dir = app.dir.join("recipes").join(super::new_id("recipe_"));
    for (n, bytes) in files {
        request::save(&dir, n, bytes).await?;
    }
    let path = request::save(&dir, &format!("{name}.toml"), text.as_bytes()).await?;
    let result = async {
        let r = match crate::workflow::recipe::parse(text, &path, &[]) {
            Ok(r) => r,
            Err(problems) => return Ok(problems.iter().map(|p| p.to_string()).collect()),
        };
        let prices = prices(app)?;
        Ok(match crate::workflow::validate::validate(&app.rt, &r, &[], &prices).await {
            Ok(_) => vec![],
            Err(problems) => problems.iter().filter(|p| p.at != "command line").map(|p| p.to_string()).collect(),
        })
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

/// `GET /v1/atelier/videos/{id}/provenance`: the caller's finished video's provenance, with the
/// server's file paths reduced to file names.
async fn video_provenance(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let v = match app.store.get(&id).await {
        Ok(Some(v)) if v.owner == caller.0 => v,
        Ok(_) => return Err(ApiError::not_found(format!("No video found with id '{id}' for this API key; GET /v1/videos lists yours"))),
        Err(e) => return Err(ApiError::internal(format!("cannot read the server database: {e:#}"))),
    };
    let Some(out) = v.output.filter(|_| v.status == "completed") else {
        return Err(ApiError { status: StatusCode::CONFLICT, ..ApiError::bad(format!("video {id} is {}; its provenance is written when it completes", v.status)) }.with_code("video_not_ready"));
    };
    let side = crate::pipeline::outputs::sidecar_of(&out);
    let text = tokio::fs::read_to_string(&side).await.map_err(|e| ApiError::internal(format!("{}: cannot read the provenance: {e}", side.display())))?;
    let mut prov: Value = serde_json::from_str(&text).map_err(|e| ApiError::internal(format!("{}: unreadable provenance: {e}", side.display())))?;
    redact_paths(&mut prov);
    prov["video_id"] = json!(id);
    Ok(Json(prov))
}

/// Every `path` in provenance becomes a bare file name: the server's folders are its business.
fn redact_paths(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(p) if k == "path" => *p = std::path::Path::new(p.as_str()).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    _ => redact_paths(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_paths),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_stage_names() {
        assert_eq!(slug("Explore 1!", "x"), "explore-1");
        assert_eq!(slug("  ", "stage2"), "stage2");
        assert_eq!(slug("edit_region", "x"), "edit_region");
    }

    #[test]
    fn masks_turn_transparent_into_white() {
        let img = crate::types::Image { width: 2, height: 1, pixels: vec![0, 0, 0, 0, 9, 9, 9, 255] };
        let png = atelier_mask("mask", img).unwrap();
        let back = image::load_from_memory(&png).unwrap().into_rgba8();
        assert_eq!(back.get_pixel(0, 0).0, [255, 255, 255, 255]);
        assert_eq!(back.get_pixel(1, 0).0, [0, 0, 0, 255]);
        let opaque = crate::types::Image { width: 1, height: 1, pixels: vec![1, 2, 3, 255] };
        assert!(atelier_mask("mask", opaque).unwrap_err().message.contains("no transparent"));
    }

    #[test]
    fn the_date_is_civil() {
        let d = now_text();
        assert!(d.ends_with(" GMT") && httpdate::parse_http_date(&d).is_ok(), "{d}");
    }
}
