//! `POST /v1/videos`, `GET /v1/videos[/{id}[/content]]`, `DELETE /v1/videos/{id}`: image-to-video jobs in the background on
//! the shared runner, owned by their caller, persisted in `server.sqlite` + the jobs database, and
//! resumed (by polling, never by submitting again) when a server starts on the same state dir.
//! With a shared job store (`[jobs] database`) the records are in its database: every front end
//! answers for every video, and finishes those whose front end stopped ([`start_sweep`]).

use super::auth::Caller;
use super::errors::{ApiError, ApiResult};
use super::form::Form;
use super::models::{self, Want};
use super::admission::Place;
use super::store::{Deleted, Store, VideoRequest, VideoRow};
use super::{App, cancel, new_id, now_s, request};
use crate::jobs::runner::JobOutcome;
use crate::jobs::{JobDb, JobRecord, JobState, RunnerEvent};
use crate::pipeline::edit::{EditRequest, check_request, edit_named, finish_job};
use crate::pipeline::outputs::OutputFile;
use axum::Json;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What clients are told to wait between polls (the SDK's `poll()` honours this header).
const POLL_AFTER_MS: &str = "1000";

/// The runner's progress reports, turned into the video's status and percentage. A job is tied
/// to its video through its stored plan: the output path lies in `<videos_dir>/<video id>/`.
pub fn progress_events(db: Arc<JobDb>, store: Arc<Store>, videos_dir: PathBuf) -> impl Fn(RunnerEvent) + Send + Sync + 'static {
    use futures_util::FutureExt;
    move |e| {
        let (job, fraction) = match e {
            // Shared records: the job goes on the video as soon as it is queued, so a front end
            // that finishes the video for this one (stopped) finds it.
            RunnerEvent::Created { job } if store.is_shared() => {
                let Ok(Some(rec)) = db.get(&job) else { return };
                let Some(vid) = video_of(&rec, &videos_dir) else { return };
                let store = store.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.set_job(&vid, &job).await {
                        tracing::warn!(target: "atelier::server", "{vid}: cannot record its job: {e:#}");
                    }
                });
                return;
            }
            RunnerEvent::Pending { job } => (job, None),
            RunnerEvent::Progress { job, fraction, .. } => (job, fraction),
            RunnerEvent::Fetching { job } => (job, Some(0.99)),
            RunnerEvent::Retrying { .. } | RunnerEvent::Created { .. } | RunnerEvent::Partial { .. } => return,
        };
        let Ok(Some(rec)) = db.get(&job) else { return };
        if let Some(vid) = video_of(&rec, &videos_dir) {
            let pct = fraction.map(|f| (f.clamp(0.0, 1.0) * 100.0) as u32).unwrap_or(0);
            let shared = store.is_shared();
            let store = store.clone();
            let record = async move {
                if let Err(e) = store.set_running(&vid, &job, pct).await {
                    tracing::warn!(target: "atelier::server", "{vid}: cannot record progress: {e:#}");
                }
            };
            // SQLite answers at once (recorded in step, as ever); the shared database in the background.
            if shared {
                tokio::spawn(record);
            } else {
                let _ = record.now_or_never();
            }
        }
    }
}

/// The video a job belongs to, if it is one of the server's.
fn video_of(rec: &JobRecord, videos_dir: &std::path::Path) -> Option<String> {
    let first = PathBuf::from(rec.plan["paths"].get(0)?.as_str()?);
    let dir = first.parent()?;
    (dir.parent()? == videos_dir).then(|| dir.file_name()?.to_str().map(str::to_string))?
}

/// The OpenAI video object.
fn object(v: &VideoRow) -> Value {
    json!({
        "id": v.id, "object": "video", "model": v.model, "status": v.status, "progress": v.progress,
        "created_at": v.created_at, "completed_at": v.completed_at, "expires_at": null, "prompt": v.prompt,
        "size": v.size, "seconds": v.seconds, "remixed_from_video_id": null, "error": v.error,
    })
}

fn with_poll_header(v: &VideoRow) -> Response {
    let mut r = Json(object(v)).into_response();
    if v.status == "queued" || v.status == "in_progress" {
        r.headers_mut().insert("openai-poll-after-ms", POLL_AFTER_MS.parse().expect("static header"));
    }
    r
}

/// The 404 for a video that does not exist, was deleted, or is someone else's (alike on purpose).
fn no_such_video(id: &str) -> ApiError {
    ApiError::not_found(format!("No video found with id '{id}' for this API key; GET /v1/videos lists yours"))
}

/// The caller's own video, or 404 (also for someone else's: its existence is not revealed).
async fn owned(app: &App, caller: &Caller, id: &str) -> ApiResult<VideoRow> {
    match app.store.get(id).await {
        Ok(Some(v)) if v.owner == caller.0 => Ok(v),
        Ok(_) => Err(no_such_video(id)),
        Err(e) => Err(ApiError::internal(format!("cannot read the server database: {e:#}"))),
    }
}

/// `POST /v1/videos`: check everything, store the request, start the job, answer `queued`.
pub async fn create(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>, req: Request) -> ApiResult<Response> {
    let mut form = Form::read(req, app.max_body, app.body_timeout).await?;
    let refs = form.files(&["input_reference"])?;
    let prompt = request::prompt(&mut form)?;
    let model = form.text("model")?;
    let seconds = form.text("seconds")?;
    let size = form.text("size")?;
    let seed = request::seed(&mut form)?;
    let c = models::choose(&app, model.as_deref(), Want::Video).await?;
    let mut params = request::model_params(&mut form, &c)?;
    for (field, value) in [("seconds", seconds), ("size", size)] {
        let Some(value) = value else { continue };
        // `size` may be a typed field of the model (its list of sizes) rather than a parameter.
        let typed = field == "size" && !c.info.sizes.is_empty();
        if !typed && !c.info.params.iter().any(|p| p.name == field) {
            return Err(ApiError::field(field, format!("model `{}` has no `{field}` setting; omit `{field}`", c.plugin.id())));
        }
        if params.iter().any(|(k, _)| k == field) {
            return Err(ApiError::field(field, format!("`{field}` is given twice")));
        }
        params.push((field.to_string(), value.trim().to_string()));
    }
    let Some(reference) = refs.first() else {
        return Err(ApiError::field(
            "input_reference",
            format!("`input_reference` is required: model `{}` animates an image; attach the first frame as a file part named input_reference (JSON: {{\"image_url\": \"data:image/png;base64,...\"}})", c.plugin.id()),
        ));
    };
    if refs.len() > 1 {
        return Err(ApiError::field("input_reference", "give one `input_reference` (the first frame)"));
    }
    let (_, ext) = request::image_header(&app, "input_reference", &reference.bytes)?;
    let id = new_id("video_");
    let dir = app.dir.join("videos").join(&id);
    let vreq = VideoRequest { input: dir.join(format!("input.{ext}")), prompt, model: c.plugin.id().to_string(), seed, params, out_file: dir.join("video.out") };
    let ereq = edit_request(&vreq, false);
    // The pipeline checks these again; doing it here turns a bad request into a 400 now, not a failed video later.
    let resolved = check_request(&c.plugin, &c.info, &ereq).map_err(|e| ApiError::bad(format!("{e:#}")))?;
    if let Some(name) = c.plugin.grants.missing_secrets().first() {
        return Err(ApiError::internal(format!("model `{}` is not set up on this server: {}", c.plugin.id(), c.plugin.grants.missing_secret_message(name))));
    }
    // A place in the model's line is kept by the video's task until it ends; none left → 429 now.
    let place = app.admission.enter(&c.plugin)?;
    request::decode(&app, "input_reference", reference.bytes.clone()).await?;
    request::save(&dir, &format!("input.{ext}"), &reference.bytes).await?;
    let shown = |name: &str| resolved.iter().find(|p| p.name == name).map(|p| crate::params::show(&p.value));
    let row = VideoRow {
        id: id.clone(),
        owner: caller.0.clone(),
        model: vreq.model.clone(),
        prompt: vreq.prompt.clone(),
        seconds: shown("seconds"),
        size: shown("size"),
        created_at: now_s(),
        completed_at: None,
        status: "queued".into(),
        progress: 0,
        error: None,
        job: None,
        output: None,
        mime: None,
        request: vreq,
    };
    app.store.insert(&row).await.map_err(|e| ApiError::internal(format!("cannot record the video: {e:#}")))?;
    tracing::info!(target: "atelier::server", "{id}: video by {} with {}", caller.0, row.model);
    let a = app.clone();
    app.spawn_video(&row.id, async move { run(&a, &id, place, ereq).await });
    Ok(with_poll_header(&row))
}

fn edit_request(v: &VideoRequest, force: bool) -> EditRequest {
    EditRequest {
        inputs: vec![v.input.clone()],
        prompt: v.prompt.clone(),
        model: v.model.clone(),
        n: 1,
        seed: v.seed,
        params: v.params.clone(),
        out_dir: v.out_file.parent().map(PathBuf::from).unwrap_or_default(),
        out_file: Some(v.out_file.clone()),
        force,
        video: true,
        ..Default::default()
    }
}

/// The whole pipeline for one video once its turn comes (`queued` until then, `in_progress`
/// after), recording how it ended.
async fn run(app: &App, id: &str, place: Place, req: EditRequest) {
    let _turn = place.turn().await;
    run_pipeline(app, id, &req).await
}

/// The pipeline, with the video `in_progress` while the work is done: from its turn on for a
/// model that works in this process (no network: `classic`), from the provider's acceptance on
/// (the runner's first report) for the others.
async fn run_pipeline(app: &App, id: &str, req: &EditRequest) {
    let in_process = app.rt.model(&req.model).is_ok_and(|p| super::admission::works_in_process(&p));
    if in_process && let Err(e) = app.store.set_started(id).await {
        tracing::warn!(target: "atelier::server", "{id}: cannot record the start: {e:#}");
    }
    let r = tokio::select! {
        r = edit_named(&app.rt, &app.runner, req, Some(id)) => r,
        never = estimate_progress(app, id, &req.model) => match never {},
    };
    match r {
        Ok(r) => match r.outputs.first() {
            Some(o) => completed(app, id, o).await,
            None => failed(app, id, "video_generation_failed", &r.failures.join("; ")).await,
        },
        Err(e) => {
            let Err(e) = poll_stalled(app, id, e).await else { return };
            let ae = ApiError::from_run(&e);
            failed(app, id, ae.code.unwrap_or("video_generation_failed"), &ae.message).await
        }
    }
}

/// The video's job while it is still pending: its run ended without the provider saying it
/// failed (its polls kept failing past `[jobs] poll_failures`).
fn stalled_job(app: &App, id: &str) -> Option<JobRecord> {
    let dir = app.dir.join("videos");
    app.runner.db.list(&[JobState::Pending]).ok()?.into_iter().find(|j| video_of(j, &dir).as_deref() == Some(id))
}

/// A video whose job stalled is not failed: the provider may still make it, and the server is
/// the one to resume it. It polls the job again after a pause (`[jobs] max_backoff_s`), for as
/// long as the job stays pending, and records how it ends. `Err`: the job is not pending (any
/// more); the video failed with that error.
async fn poll_stalled(app: &App, id: &str, mut err: anyhow::Error) -> anyhow::Result<()> {
    while let Some(j) = stalled_job(app, id) {
        let plugin = app.rt.model(&j.plugin)?;
        let token = j.token.clone().ok_or_else(|| anyhow::anyhow!("job {} is pending but has no token", j.id))?;
        let pause = app.runner.stall_pause(&plugin);
        tracing::warn!(target: "atelier::server", "{id}: job {} is still pending; polling it again in {:.1} s: {}", j.id, pause.as_secs_f64(), crate::text::printable_lines(&format!("{err:#}")));
        tokio::time::sleep(pause).await;
        match app.runner.wait(&plugin, &j.id, &token, Duration::ZERO, Instant::now()).await {
            Ok(outcome) => {
                let files = finish_job(&app.rt, &j.plan, &outcome, true).await?;
                app.runner.db.set_outputs(&j.id, &serde_json::to_value(&files)?)?;
                match files.first() {
                    Some(f) => completed(app, id, f).await,
                    None => failed(app, id, "video_generation_failed", "the job finished without a video").await,
                }
                return Ok(());
            }
            Err(e) => err = e,
        }
    }
    Err(err)
}

/// While a model that reports no progress of its own runs (classic renders a whole video in one
/// call), an estimate: the time so far against how long this model's last videos took, capped
/// at 95 %. Stops counting as soon as the runner reports for the job (the row then names it).
async fn estimate_progress(app: &App, id: &str, model: &str) -> std::convert::Infallible {
    let started = Instant::now();
    let typical = app.store.typical_seconds(model).await.ok().flatten().map(|s| s.max(1.0));
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(typical) = typical else { continue };
        let pct = (started.elapsed().as_secs_f64() / typical * 100.0) as u32;
        if let Err(e) = app.store.set_estimate(id, pct).await {
            tracing::warn!(target: "atelier::server", "{id}: cannot record progress: {e:#}");
        }
    }
}

/// The video is made: its file goes to the artifact store (`[storage]`), then the video is
/// `completed`, so every front end can serve it from then on. A file the store does not take is
/// kept on disk and the video fails with where it is: it was made (and maybe billed), so it is
/// never silently dropped.
async fn completed(app: &App, id: &str, o: &OutputFile) {
    let key = crate::storage::video_key(id, &o.path);
    match app.artifacts.publish(&key, &o.path).await {
        Ok(size) if app.artifacts.is_remote() => {
            tracing::info!(target: "atelier::server", "{id}: stored {key} ({size} bytes) in {}", app.artifacts.location());
            // The bucket holds it now; the front end's disk need not.
            let _ = tokio::fs::remove_file(&o.path).await;
        }
        Ok(_) => {}
        Err(e) => {
            let msg = format!("the video was made but could not be stored ({e:#}); the server's operator has it at {}", o.path.display());
            tracing::error!(target: "atelier::server", "{id}: {msg}");
            return failed(app, id, "storage_error", &msg).await;
        }
    }
    tracing::info!(target: "atelier::server", "{id}: completed ({key})");
    if let Err(e) = app.store.set_completed(id, &o.job, &o.path, &o.mime, now_s()).await {
        tracing::error!(target: "atelier::server", "{id}: cannot record completion: {e:#}");
    }
}

async fn failed(app: &App, id: &str, code: &str, message: &str) {
    tracing::warn!(target: "atelier::server", "{id}: failed: {message}");
    if let Err(e) = app.store.set_failed(id, code, message, now_s()).await {
        tracing::error!(target: "atelier::server", "{id}: cannot record the failure: {e:#}");
    }
}

/// `GET /v1/videos/{id}`.
pub async fn retrieve(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(with_poll_header(&owned(&app, &caller, &id).await?))
}

/// Page size when `limit` is not given (OpenAI's default for its cursor-paged lists).
pub const DEFAULT_LIST_LIMIT: u32 = 20;
/// Largest `limit` OpenAI's video list takes.
pub const MAX_LIST_LIMIT: u32 = 100;

/// `GET /v1/videos?after=&limit=&order=`: the caller's videos by creation time, a page at a time,
/// in OpenAI's cursor-page shape.
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    // Refused rather than ignored, as for every other field: a misspelt `limt` silently giving 20
    // would look like a server bug.
    if let Some(k) = q.keys().find(|k| !matches!(k.as_str(), "after" | "limit" | "order")) {
        return Err(ApiError::field(k, format!("unknown query parameter `{k}`; GET /v1/videos takes `after`, `limit` and `order`")));
    }
    let limit = match q.get("limit") {
        None => DEFAULT_LIST_LIMIT,
        Some(l) => l.trim().parse::<u32>().ok().filter(|n| *n <= MAX_LIST_LIMIT).ok_or_else(|| {
            ApiError::field("limit", format!("limit `{l}` is not a whole number from 0 to {MAX_LIST_LIMIT}; give e.g. limit=20 (the default) and page on with `after`"))
        })?,
    };
    let desc = match q.get("order").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(o) => return Err(ApiError::field("order", format!("order `{o}` is not `asc` or `desc` (the default, newest first)"))),
    };
    let db_err = |e: anyhow::Error| ApiError::internal(format!("cannot read the server database: {e:#}"));
    let after = match q.get("after") {
        None => None,
        Some(id) => Some(app.store.cursor(&caller.0, id).await.map_err(db_err)?.ok_or_else(|| {
            ApiError::field("after", format!("`after` is `{id}`, which is not one of your videos; pass the `last_id` of a page you were given, or omit `after` for the first page"))
        })?),
    };
    let (rows, has_more) = app.store.page(&caller.0, after, desc, limit).await.map_err(db_err)?;
    let data: Vec<Value> = rows.iter().map(object).collect();
    Ok(Json(json!({
        "object": "list", "data": data, "first_id": rows.first().map(|r| &r.id), "last_id": rows.last().map(|r| &r.id),
        "has_more": has_more,
    })))
}

/// `DELETE /v1/videos/{id}`: the video's record and files go. One still being made is stopped
/// first: its job is cancelled (at the provider, where it was accepted) and the video ends
/// `failed` before it is removed.
pub async fn delete(State(app): State<Arc<App>>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let db_err = |e: anyhow::Error| ApiError::internal(format!("cannot update the server database: {e:#}"));
    let v = match app.store.delete_finished(&caller.0, &id).await.map_err(db_err)? {
        Deleted::Gone(v) => v,
        Deleted::Missing => return Err(no_such_video(&id)),
        Deleted::Unfinished(v) => {
            tracing::info!(target: "atelier::server", "{id}: deleted by {} while {}; stopping it", caller.0, v.status);
            if let Some(task) = app.video_task(&id) {
                let offline = app.rt.model(&v.model).is_ok_and(|p| super::admission::works_in_process(&p));
                cancel::stop(&app, &task, app.dir.join("videos").join(&id), offline, "cancelled: the video was deleted before it finished").await;
            } else if app.store.is_shared()
                && let Some(job) = &v.job
            {
                // Another front end is making it: the worker holding its job cancels it (at the
                // provider too), as for a delete on the front end that made it.
                app.runner.store().request_cancel(job).await.map_err(db_err)?;
            }
            // The task ended (or there was none): whatever it recorded, the video is over now.
            app.store.set_failed(&id, "video_cancelled", "deleted by its owner before it finished", now_s()).await.map_err(db_err)?;
            match app.store.delete_finished(&caller.0, &id).await.map_err(db_err)? {
                Deleted::Gone(v) => v,
                Deleted::Missing => return Err(no_such_video(&id)),
                Deleted::Unfinished(v) => return Err(ApiError::internal(format!("video {id} is still {} after being stopped; try the DELETE again", v.status))),
            }
        }
    };
    // The record is gone (nobody can reach the video any more); now its bytes: the server's copy
    // (in the bucket too, with [storage]) and the raw artifact the job downloaded. The job's row
    // stays in jobs.sqlite as the operator's record of what was sent and billed.
    if app.artifacts.is_remote()
        && let Err(e) = app.artifacts.delete_under(&format!("videos/{}", v.id)).await
    {
        tracing::error!(target: "atelier::server", "{id}: deleted, but its content could not be removed from the store: {e:#}");
        return Err(ApiError::internal(format!("video {id} is deleted from the server's records, but its content could not be removed from the artifact store ({e:#}); the server's operator must remove videos/{id}/ there by hand")));
    }
    let mut dirs = vec![app.dir.join("videos").join(&v.id)];
    dirs.extend(v.job.as_deref().map(|j| app.runner.db.job_dir(j)));
    for d in dirs {
        match tokio::fs::remove_dir_all(&d).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(target: "atelier::server", "{id}: deleted, but {} could not be removed: {e}", d.display());
                return Err(ApiError::internal(format!(
                    "video {id} is deleted from the server's records, but its files could not be removed ({e}); the server's operator must remove {} by hand",
                    d.display()
                )));
            }
        }
    }
    tracing::info!(target: "atelier::server", "{id}: deleted by {}", caller.0);
    Ok(Json(json!({"id": v.id, "object": "video.deleted", "deleted": true})))
}

/// `GET /v1/videos/{id}/content`: the file, with its real media type.
pub async fn content(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let v = owned(&app, &caller, &id).await?;
    match q.get("variant").map(String::as_str) {
        None | Some("video") => {}
        Some(other) => return Err(ApiError::field("variant", format!("variant `{other}` is not available from atelier; ask for variant=video (or omit it)"))),
    }
    if v.status != "completed" {
        let hint = if v.status == "failed" { "it failed; GET /v1/videos/{id} has the error".to_string() } else { format!("poll GET /v1/videos/{id} until status is completed") };
        return Err(ApiError { status: axum::http::StatusCode::CONFLICT, ..ApiError::bad(format!("video {id} is {}; {hint}", v.status)) }.with_code("video_not_ready"));
    }
    let (Some(path), Some(mime)) = (v.output, v.mime) else {
        return Err(ApiError::internal(format!("video {id} is completed but has no file on record")));
    };
    // Streamed through this server from the artifact store (disk or bucket), never read whole: a
    // video can be hundreds of MiB, and many may be downloaded at once. Not a presigned URL: the
    // bucket's endpoint may not be reachable from the caller, and this keeps one address and the
    // owner check on every download.
    let key = crate::storage::video_key(&id, &path);
    let a = app.artifacts.read(&key).await.map_err(|e| ApiError::internal(format!("cannot read the video: {e:#}")))?;
    let a = a.ok_or_else(|| ApiError::internal(format!("video {id} is completed but {key} is missing from {}", app.artifacts.location())))?;
    let body = axum::body::Body::from_stream(a.stream);
    Ok(([(axum::http::header::CONTENT_TYPE, mime), (axum::http::header::CONTENT_LENGTH, a.size.to_string())], body).into_response())
}

/// Pick up every unfinished video: poll what the provider accepted, finish what is done, run again
/// what never reached a provider (also what an engine that reaches no host was making), and fail
/// (without resubmitting) what was cut off mid-submit to a provider.
pub async fn resume_all(app: &Arc<App>) -> anyhow::Result<()> {
    let rows = app.store.unfinished().await?;
    if !rows.is_empty() {
        tracing::info!(target: "atelier::server", "resuming {} unfinished video(s)", rows.len());
    }
    for row in rows {
        if app.video_task(&row.id).is_some() {
            continue;
        }
        let a = app.clone();
        let vid = row.id.clone();
        app.spawn_video(&vid, async move {
            let id = row.id.clone();
            // Accepted before the restart, so never refused now; it still waits for a turn.
            let turn = match a.rt.model(&row.model) {
                Ok(p) => Some(a.admission.enter_resumed(&p).turn().await),
                Err(_) => None,
            };
            let r = match resume(&a, row).await {
                Err(e) => poll_stalled(&a, &id, e).await,
                ok => ok,
            };
            drop(turn);
            if let Err(e) = r {
                let ae = ApiError::from_run(&e);
                failed(&a, &id, ae.code.unwrap_or("video_generation_failed"), &ae.message).await;
            }
        });
    }
    Ok(())
}

/// Shared video records: this front end's claim on the videos it makes is renewed, and the
/// videos whose front end stopped (its claim ran out) are taken over and finished here, each by
/// exactly one front end (see [`Store::unfinished`]).
pub fn start_sweep(app: &Arc<App>) {
    let Some(every) = app.store.sweep_every() else { return };
    let weak = Arc::downgrade(app);
    app.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(app) = weak.upgrade() else { return };
            if let Err(e) = app.store.renew().await {
                tracing::warn!(target: "atelier::server", "cannot renew the claim on this front end's videos: {e:#}");
            }
            if let Err(e) = resume_all(&app).await {
                tracing::warn!(target: "atelier::server", "cannot look for videos left by a stopped front end: {e:#}");
            }
        }
    });
}

async fn resume(app: &App, row: VideoRow) -> anyhow::Result<()> {
    if app.store.is_shared() {
        return resume_shared(app, row).await;
    }
    let db = &app.runner.db;
    let dir = app.dir.join("videos");
    let job = match &row.job {
        Some(j) => db.get(j)?,
        None => db.list(&[])?.into_iter().find(|j| video_of(j, &dir).as_deref() == Some(row.id.as_str())),
    };
    let Some(j) = job else {
        // Stopped before any job was recorded, so nothing reached a provider: run it again
        // (its turn is held by the caller).
        run_pipeline(app, &row.id, &edit_request(&row.request, true)).await;
        return Ok(());
    };
    let outcome: JobOutcome = match j.state {
        JobState::Pending => {
            app.store.set_running(&row.id, &j.id, row.progress).await?;
            let plugin = app.rt.model(&j.plugin)?;
            let token = j.token.clone().ok_or_else(|| anyhow::anyhow!("job {} is pending but has no token", j.id))?;
            app.runner.wait(&plugin, &j.id, &token, Duration::ZERO, Instant::now()).await?
        }
        JobState::Done => {
            if let Some(files) = j.outputs.clone().and_then(|o| serde_json::from_value::<Vec<OutputFile>>(o).ok()).filter(|f| !f.is_empty()) {
                completed(app, &row.id, &files[0]).await;
                return Ok(());
            }
            serde_json::from_value(j.outcome.clone().unwrap_or_default())?
        }
        // Cut off while its plugin ran in this process (it reaches no host, so nothing was sent
        // or billed): made again, as the same job with the request it had.
        JobState::Submitting | JobState::Unknown if app.rt.model(&j.plugin).is_ok_and(|p| app.runner.can_rerun(&p, &j)) => {
            app.store.set_started(&row.id).await?;
            let plugin = app.rt.model(&j.plugin)?;
            tracing::info!(target: "atelier::server", "{}: made again (job {} was cut off by the stop; its engine works offline)", row.id, j.id);
            app.runner.rerun(&plugin, &j.id).await?
        }
        // The same for a job whose request was not kept: the whole video is made again.
        JobState::Submitting if app.rt.model(&j.plugin).is_ok_and(|p| p.reaches_no_host()) => {
            db.set_final(&j.id, JobState::Cancelled, "the server stopped while this job ran in process (its engine reaches no host, so nothing was sent); the video was made again by a new job")?;
            run_pipeline(app, &row.id, &edit_request(&row.request, true)).await;
            return Ok(());
        }
        JobState::Submitting => {
            let msg = "the server stopped while submitting this video, so whether the provider accepted it is unknown; it is not submitted again automatically (that could bill twice). Check the provider's dashboard, then create the video again if needed";
            db.set_final(&j.id, JobState::Unknown, msg)?;
            failed(app, &row.id, "unknown_outcome", msg).await;
            return Ok(());
        }
        JobState::Failed | JobState::Cancelled | JobState::Unknown | JobState::Queued => {
            failed(app, &row.id, "video_generation_failed", j.error.as_deref().unwrap_or("the job failed")).await;
            return Ok(());
        }
    };
    let files = finish_job(&app.rt, &j.plan, &outcome, true).await?;
    db.set_outputs(&j.id, &serde_json::to_value(&files)?)?;
    match files.first() {
        Some(f) => completed(app, &row.id, f).await,
        None => failed(app, &row.id, "video_generation_failed", "the job finished without a video").await,
    }
    Ok(())
}

/// A video of the shared records whose front end stopped (perhaps another one): its job is in the
/// shared store, queued for or driven by the workers, so it is only waited for, never sent
/// again; its end is finished here (outputs written under this front end's state dir).
async fn resume_shared(app: &App, row: VideoRow) -> anyhow::Result<()> {
    let store = app.runner.store();
    let job = match &row.job {
        Some(j) => store.get(j).await?,
        None => store.list(&[]).await?.into_iter().find(|j| video_named(j).as_deref() == Some(row.id.as_str())),
    };
    let Some(mut j) = job else {
        // Stopped before its job was queued, so nothing was sent: made again when its first
        // frame is here (the same front end restarted).
        if row.request.input.exists() {
            run_pipeline(app, &row.id, &edit_request(&row.request, true)).await;
        } else {
            failed(app, &row.id, "video_generation_failed", "the front end that took this video stopped before queuing it, so nothing was sent; create the video again").await;
        }
        return Ok(());
    };
    tracing::info!(target: "atelier::server", "{}: finishing it (job {}, {})", row.id, j.id, j.state);
    let mut pending = false;
    while !(j.state == JobState::Done || j.state.is_final() || j.state == JobState::Unknown) {
        if j.state == JobState::Pending && !pending {
            pending = true;
            app.store.set_running(&row.id, &j.id, row.progress).await?;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        j = store.get(&j.id).await?.ok_or_else(|| anyhow::anyhow!("job {} is no longer in the job store", j.id))?;
    }
    match j.state {
        JobState::Done => {}
        JobState::Unknown => {
            failed(app, &row.id, "unknown_outcome", j.error.as_deref().unwrap_or("whether the provider accepted this video is unknown")).await;
            return Ok(());
        }
        _ => {
            failed(app, &row.id, "video_generation_failed", j.error.as_deref().unwrap_or("the job failed")).await;
            return Ok(());
        }
    }
    let mut outcome: JobOutcome = serde_json::from_value(j.outcome.clone().unwrap_or_default())?;
    app.runner.fetch_published(&mut outcome).await?;
    // The plan names the outputs under the state dir of the front end that made the video.
    let here = app.dir.join("videos").join(&row.id);
    tokio::fs::create_dir_all(&here).await?;
    let mut plan = j.plan.clone();
    if let Some(paths) = plan.get_mut("paths").and_then(Value::as_array_mut) {
        for p in paths {
            if let Some(name) = p.as_str().and_then(|s| std::path::Path::new(s).file_name()).map(|n| here.join(n)) {
                *p = Value::String(name.display().to_string());
            }
        }
    }
    let files = finish_job(&app.rt, &plan, &outcome, true).await?;
    match files.first() {
        Some(f) => completed(app, &row.id, f).await,
        None => failed(app, &row.id, "video_generation_failed", "the job finished without a video").await,
    }
    Ok(())
}

/// The video a job belongs to, whichever front end's state dir its plan names
/// (`…/server/videos/<video id>/…`).
fn video_named(rec: &JobRecord) -> Option<String> {
    let first = PathBuf::from(rec.plan["paths"].get(0)?.as_str()?);
    let dir = first.parent()?;
    (dir.parent()?.file_name()? == "videos").then(|| dir.file_name()?.to_str().map(str::to_string))?
}
