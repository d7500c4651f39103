//! One stage: inputs → pre-filters → model jobs (fanned out when n exceeds one call) →
//! post-filters → outputs, contact sheet and provenance.

use super::outputs::{self, OutputFile, WhenTaken};
use super::sheet;
use super::steps::{self, Catalog, Step};
use crate::imageio::{self, DecodeLimits};
use crate::types;
use crate::jobs::runner::{JobOutcome, Runner, StoredArtifact};
use crate::jobs::db::new_job_id;
use crate::params;
use crate::plugin::Plugin;
use crate::runtime::Runtime;
use crate::types::{Image, Media, Param};
use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct EditRequest {
    /// Source images; the first is edited, the rest are references.
    pub inputs: Vec<PathBuf>,
    /// The instruction.
    pub prompt: String,
    /// Model plugin id.
    pub model: String,
    /// Outputs wanted.
    pub n: u32,
    /// Base seed (output i gets seed + i).
    pub seed: Option<u64>,
    /// `--param k=v`.
    pub params: Vec<(String, String)>,
    /// White = edit.
    pub mask: Option<PathBuf>,
    /// Steps before the model.
    pub pre: Vec<String>,
    /// Steps after the model.
    pub post: Vec<String>,
    /// Output folder.
    pub out_dir: PathBuf,
    /// Exact output file (animate); overrides the naming in `out_dir`.
    pub out_file: Option<PathBuf>,
    /// Overwrite earlier results.
    pub force: bool,
    /// Ask a model that can do both for video (`atelier animate`).
    pub video: bool,
    /// `--aspect`: one of the model's aspect ratios.
    pub aspect: Option<String>,
    /// `--size`: one of the model's sizes.
    pub size: Option<String>,
    /// Produce only these outputs (1-based, with the seeds and names they have in the whole batch
    /// of `n`), e.g. the ones an interrupted batch never sent; empty: all of them.
    pub only: Vec<u32>,
    /// `inputs` already read and decoded by the caller; empty: the pipeline reads them.
    pub decoded_inputs: DecodedInputs,
}

/// Pictures a caller has already read and decoded from [`EditRequest::inputs`] (the server does,
/// to refuse a bad upload by its field name before the model's turn), handed to the pipeline once
/// so it does not decode them again.
#[derive(Clone, Default)]
pub struct DecodedInputs(std::sync::Arc<std::sync::Mutex<Option<Vec<imageio::Decoded>>>>);

impl DecodedInputs {
    /// Hand over `decoded`, in the order of `inputs`.
    pub fn new(decoded: Vec<imageio::Decoded>) -> DecodedInputs {
        DecodedInputs(std::sync::Arc::new(std::sync::Mutex::new(Some(decoded))))
    }

    /// The pictures, if they were given and not taken yet.
    fn take(&self) -> Option<Vec<imageio::Decoded>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl std::fmt::Debug for DecodedInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|d| d.as_ref().map_or(0, Vec::len)).unwrap_or(0);
        write!(f, "DecodedInputs({n})")
    }
}

/// What came out.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EditResult {
    /// Files written.
    pub outputs: Vec<OutputFile>,
    /// The contact sheet, when n > 1.
    pub contact_sheet: Option<PathBuf>,
    /// Outputs that failed while others succeeded.
    pub failures: Vec<String>,
    /// Engine and provider model id.
    pub engine: String,
    /// Provider model id.
    pub model: String,
    /// Jobs run.
    pub jobs: Vec<String>,
    /// Usage per job.
    pub usage: Vec<serde_json::Value>,
    /// Wall time, ms.
    pub millis: u64,
    /// What the user should know although nothing failed (a truncated input, a colour profile
    /// that could not be applied, an output delivered under another name).
    pub warnings: Vec<String>,
}

/// Everything a job's finishing needs, stored with the job so `jobs resume` can finish it in
/// another process.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FinishPlan {
    /// Output paths for this job's artifacts, in order.
    pub paths: Vec<PathBuf>,
    /// 1-based index of the first output.
    pub first_index: u32,
    /// Post-filter steps as the user wrote them.
    pub post: Vec<String>,
    /// Provenance common to all outputs.
    pub provenance: serde_json::Value,
    /// Decode limits.
    pub max_pixels: u64,
    /// Decode limits.
    pub max_dimension: u32,
    /// The token in the placeholders that reserved `paths` (empty: none, `--force`): a placeholder
    /// holding it is this job's own and is replaced, in this process or in `jobs resume`.
    #[serde(default)]
    pub reservation: String,
}

/// Run one edit stage end to end.
pub async fn edit(rt: &Runtime, runner: &Runner, req: &EditRequest) -> Result<EditResult> {
    edit_named(rt, runner, req, None).await
}

/// [`edit`], with output names starting `stem` instead of the first input's name (workflows name
/// a stage's outputs after the run's source picture, not after the previous stage's file).
pub async fn edit_named(rt: &Runtime, runner: &Runner, req: &EditRequest, stem: Option<&str>) -> Result<EditResult> {
    let started = Instant::now();
    let limits = DecodeLimits { max_pixels: rt.settings.limits.max_pixels, max_dimension: rt.settings.limits.max_dimension };
    let max_bytes = imageio::max_input_bytes(rt.settings.limits.max_input_mb);
    // No input image is allowed (`atelier serve`'s /v1/images/generations): the model's own
    // `prepare()` then decides whether it can make images from the prompt alone.
    if req.inputs.is_empty() && (stem.is_none() || req.mask.is_some()) {
        bail!("give at least one input image");
    }
    // 1. Everything that can be checked without touching pixels or the network.
    let catalog = if req.pre.is_empty() && req.post.is_empty() { None } else { Some(Catalog::load(rt).await?) };
    let (pre, post) = match &catalog {
        Some(c) => (c.parse_all(&req.pre)?, c.parse_all(&req.post)?),
        None => (vec![], vec![]),
    };
    let plugin = rt.model(&req.model)?;
    let info = plugin.describe_model().await?;
    // A file an image parameter names is checked before `check_request` reads it.
    check_media_params(&info.params, &req.params, max_bytes)?;
    let checked = check(&plugin, &info, req)?;
    let params = checked.params.clone();
    let n = req.n;
    let stem = stem.map(str::to_string).unwrap_or_else(|| outputs::safe_stem(&req.inputs[0]));
    let video = checked.output == types::OutputKind::Video;
    let planned: Vec<PathBuf> = match &req.out_file {
        Some(f) => vec![f.clone()],
        None => (1..=n).map(|i| req.out_dir.join(format!("{stem}-{}-{i:02}.{}", plugin.id(), if video { "out" } else { "png" }))).collect(),
    };
    if let Some(name) = plugin.grants.missing_secrets().first() {
        bail!("{}", plugin.grants.missing_secret_message(name));
    }
    let sheet_path = (n > 1 && !video && req.only.is_empty() && req.out_file.is_none()).then(|| req.out_dir.join(format!("{stem}-{}-sheet.png", plugin.id())));
    // The names are made this run's before anything is sent, so of several runs into one folder
    // exactly one proceeds (and is billed); the rest stop here. Dropped: unwritten ones are freed.
    let job_prefix = new_job_id();
    let reservation = outputs::reserve(&planned.iter().chain(sheet_path.iter()).cloned().collect::<Vec<_>>(), req.force, &job_prefix)?;

    // 2. Decode once, with limits (upright, in sRGB), off the async workers; then pre-filters on RGBA.
    let t = Instant::now();
    let (paths, mask_path) = (req.inputs.clone(), req.mask.clone());
    let given = req.decoded_inputs.take().filter(|d| d.len() == req.inputs.len());
    let (decoded, mask_decoded) = tokio::task::spawn_blocking(move || -> Result<_> {
        let ins = match given {
            Some(d) => d,
            None => paths.iter().map(|p| imageio::read(p, limits, max_bytes)).collect::<Result<Vec<_>>>()?,
        };
        let mask = mask_path.as_ref().map(|m| imageio::read(m, limits, max_bytes)).transpose()?;
        Ok((ins, mask))
    })
    .await??;
    let mut warnings = checked.warnings.clone();
    let mut refs = vec![];
    let mut sources = vec![];
    for (p, d) in req.inputs.iter().zip(decoded) {
        warnings.extend(d.info.warnings(&p.display().to_string()));
        let mut src = json!({"path": p.display().to_string(), "sha256": sha256(&d.bytes), "width": d.image.width, "height": d.image.height});
        if !d.info.is_plain() {
            src["decode"] = d.info.to_json();
        }
        sources.push(src);
        refs.push(d.image);
    }
    let mut mask = match (&req.mask, mask_decoded) {
        (Some(m), Some(d)) => {
            warnings.extend(d.info.warnings(&m.display().to_string()));
            let img = d.image;
            if (img.width, img.height) != (refs[0].width, refs[0].height) {
                bail!(
                    "the mask {} is {}x{} but the image {} is {}x{}; they must be the same size (white = edit, black = keep)",
                    m.display(), img.width, img.height, req.inputs[0].display(), refs[0].width, refs[0].height
                );
            }
            Some((img, sha256(&d.bytes)))
        }
        _ => None,
    };
    let decode_ms = t.elapsed().as_millis() as u64;
    let t = Instant::now();
    if !pre.is_empty() {
        for r in refs.iter_mut() {
            *r = steps::run(&job_prefix, std::mem::replace(r, empty()), &pre).await?;
        }
        if let Some((m, _)) = &mut mask {
            if (m.width, m.height) != (refs[0].width, refs[0].height) {
                *m = resize_exact(m, refs[0].width, refs[0].height, image::imageops::FilterType::Nearest)?;
            }
        }
    }

    // 3. The model says how it wants its inputs shaped, before anything is sent.
    let dims: Vec<(u32, u32)> = refs.iter().map(|r| (r.width, r.height)).collect();
    let draft = types::Draft {
        prompt: req.prompt.clone(),
        references: dims,
        has_mask: mask.is_some(),
        n,
        output: checked.output,
        aspect: checked.aspect.clone(),
        size: checked.size.clone(),
        params: params.clone(),
    };
    let plan = match plugin.prepare(&job_prefix, &draft).await? {
        Ok(p) => p,
        Err(e) => bail!(crate::jobs::runner::explain(plugin.id(), &e, 1)),
    };
    if let Some((w, h)) = plan.exact_size {
        // A size the plugin asks for is checked like any size it returns, before a buffer is made.
        imageio::check_asked_size(w, h, limits, &format!("model `{}` (in `prepare`)", plugin.id()))?;
        let c = match &catalog {
            Some(c) => c,
            None => &Catalog::load(rt).await?,
        };
        if !c.has("fit") {
            bail!("model `{}` needs its input at exactly {w}x{h}, which takes the `fit` filter; install the filters plugin", plugin.id());
        }
        let fit = c.parse(&format!("fit:width={w},height={h},mode=crop"))?;
        for r in refs.iter_mut() {
            *r = steps::run(&job_prefix, std::mem::replace(r, empty()), std::slice::from_ref(&fit)).await?;
        }
        if let Some((m, _)) = &mut mask {
            *m = resize_exact(m, w, h, image::imageops::FilterType::Nearest)?;
        }
    } else if let Some(max) = plan.max_side {
        for r in refs.iter_mut() {
            if r.width.max(r.height) > max {
                let s = max as f64 / r.width.max(r.height) as f64;
                let (w, h) = (((r.width as f64 * s).round() as u32).max(1), ((r.height as f64 * s).round() as u32).max(1));
                *r = resize_exact(r, w, h, image::imageops::FilterType::Lanczos3)?;
            }
        }
        // The mask follows the image it belongs to.
        if let Some((m, _)) = &mut mask {
            if (m.width, m.height) != (refs[0].width, refs[0].height) {
                *m = resize_exact(m, refs[0].width, refs[0].height, image::imageops::FilterType::Nearest)?;
            }
        }
    }
    let pre_ms = t.elapsed().as_millis() as u64;
    let references: Vec<Media> = refs
        .iter()
        .map(|r| Ok(Media { mime: info.input_mime.clone(), bytes: imageio::encode(r, &info.input_mime)? }))
        .collect::<Result<_>>()?;
    let mask_media = match &mask {
        Some((m, _)) => Some(Media { mime: "image/png".into(), bytes: imageio::encode_png(m, None)? }),
        None => None,
    };

    // 4. Jobs: as many submits as `max_outputs` requires, concurrently.
    let base_seed = req.seed.unwrap_or_else(|| rand::random::<u32>() as u64);
    let per_call = info.max_outputs.max(1);
    let provenance = json!({
        "atelier_version": env!("CARGO_PKG_VERSION"),
        "engine": plugin.id(), "plugin_version": plugin.manifest.version, "model": info.model,
        "prompt": req.prompt, "params": params_json(&params), "output_kind": checked.output, "aspect": checked.aspect, "size": checked.size,
        "contract": plugin.contract(), "component_digest": plugin.component_digest(), "user_params": req.params.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "n": n, "seed": base_seed, "inputs": sources,
        "mask": req.mask.as_ref().map(|m| json!({"path": m.display().to_string(), "sha256": mask.as_ref().map(|x| x.1.clone())})),
        "pre": req.pre, "post": req.post, "source_hash": sources.first().map(|s| s["sha256"].clone()), "video": req.video,
        "timings": {"decode_ms": decode_ms, "pre_ms": pre_ms},
    });
    let mut futures = vec![];
    let mut first = 0u32;
    while first < n {
        let count = per_call.min(n - first);
        if !req.only.is_empty() && !(first + 1..=first + count).any(|i| req.only.contains(&i)) {
            first += count;
            continue;
        }
        let job = new_job_id();
        let request = types::Request {
            prompt: req.prompt.clone(),
            references: references.clone(),
            mask: mask_media.clone(),
            n: count,
            // 0.2: a seed only for a model that takes one (the user was warned otherwise).
            seed: info.supports_seed.then_some(base_seed + first as u64),
            output: checked.output,
            aspect: checked.aspect.clone(),
            size: checked.size.clone(),
            params: params.clone(),
        };
        let finish = FinishPlan {
            paths: planned[first as usize..(first + count) as usize].iter().map(|p| absolute(p)).collect(),
            first_index: first + 1,
            post: req.post.clone(),
            provenance: provenance.clone(),
            max_pixels: limits.max_pixels,
            max_dimension: limits.max_dimension,
            reservation: reservation.token().to_string(),
        };
        let plugin = plugin.clone();
        let model = info.model.clone();
        let post = post.clone();
        let force = req.force;
        futures.push(async move {
            let plan_json = serde_json::to_value(&finish).expect("plan serializes");
            let outcome = runner.run(&plugin, &job, &model, &plan_json, &request).await?;
            // Decoding, post-filters and encoding block: they run off the async workers.
            let (first_index, done) = (finish.first_index, outcome.clone());
            let (files, refused) = tokio::task::spawn_blocking(move || finish_each(&finish, &done, &post, WhenTaken::from_force(force))).await?;
            runner.db.set_outputs(&job, &serde_json::to_value(&files)?)?;
            Ok::<_, anyhow::Error>((outcome, files, first_index, refused))
        });
        first += count;
    }
    let results = futures_util::future::join_all(futures).await;

    // 5. Gather: keep what succeeded, report what failed.
    let mut out = EditResult {
        outputs: vec![],
        contact_sheet: None,
        failures: vec![],
        engine: plugin.id().to_string(),
        model: info.model.clone(),
        jobs: vec![],
        usage: vec![],
        millis: 0,
        warnings,
    };
    for r in results {
        match r {
            Ok((o, files, first_index, refused)) => {
                out.jobs.push(o.job.clone());
                out.usage.push(o.usage.clone());
                out.failures.extend(o.failures.iter().map(|(i, m)| format!("output {}: {m}", first_index.saturating_add(*i))));
                out.failures.extend(refused.iter().map(|(i, m)| format!("output {i}: {m}")));
                out.outputs.extend(files);
            }
            Err(e) => out.failures.push(format!("{e:#}")),
        }
    }
    if out.outputs.is_empty() {
        bail!("{}", out.failures.join("\n"));
    }
    // Part of a batch (`only`) gets no sheet of its own: the caller has the rest.
    if let Some(path) = sheet_path.filter(|_| out.outputs.len() > 1) {
        let (files, when, token) = (out.outputs.clone(), WhenTaken::from_force(req.force), reservation.token().to_string());
        out.contact_sheet = Some(tokio::task::spawn_blocking(move || write_sheet(&path, &files, when, &token, limits)).await??);
    }
    drop(reservation);
    out.millis = started.elapsed().as_millis() as u64;
    Ok(out)
}

/// Turn a finished job's stored artifacts into output files: decode (images), post-filters,
/// encode with provenance. Used by `jobs resume`; fails if any output could not be written (the
/// others are written first).
pub fn finish_outputs(plan: &FinishPlan, outcome: &JobOutcome, post: &[Step], when: WhenTaken) -> Result<Vec<OutputFile>> {
    let (files, failures) = finish_each(plan, outcome, post, when);
    if !failures.is_empty() {
        let why: Vec<String> = failures.iter().map(|(i, m)| format!("output {i}: {m}")).collect();
        bail!("{}", why.join("\n"));
    }
    Ok(files)
}

/// [`finish_outputs`], output by output: the files written, and each output that could not be
/// (1-based index in the batch, why), so one refused output does not cost the others.
pub fn finish_each(plan: &FinishPlan, outcome: &JobOutcome, post: &[Step], when: WhenTaken) -> (Vec<OutputFile>, Vec<(u32, String)>) {
    let (mut files, mut failures) = (vec![], vec![]);
    for a in &outcome.artifacts {
        let Some(dest) = plan.paths.get(a.index as usize) else { continue };
        let index = plan.first_index.saturating_add(a.index);
        match finish_one(plan, outcome, a, dest, index, post, when) {
            Ok(f) => files.push(f),
            Err(e) => failures.push((index, format!("{e:#}"))),
        }
    }
    (files, failures)
}

fn finish_one(plan: &FinishPlan, outcome: &JobOutcome, a: &StoredArtifact, dest: &Path, index: u32, post: &[Step], when: WhenTaken) -> Result<OutputFile> {
    let limits = DecodeLimits { max_pixels: plan.max_pixels, max_dimension: plan.max_dimension };
    let mut prov = plan.provenance.clone();
    prov["index"] = json!(index);
    prov["seed"] = json!(a.seed);
    prov["job"] = json!(outcome.job);
    prov["usage"] = outcome.usage.clone();
    prov["notes"] = json!(a.notes);
    prov["timings"]["model_ms"] = json!(outcome.millis);
    // Errors about what the plugin returned name it; the raw file stays in the job folder.
    let name = format!("plugin `{}`'s file {}", plan.provenance["engine"].as_str().unwrap_or("?"), a.path.display());
    let refused = |e: anyhow::Error| anyhow::anyhow!("{e:#}; the output was not written");
    // Pictures are read whole (to decode or walk them); a video only has its size taken.
    let read = || std::fs::read(&a.path).with_context(|| format!("{}: the job's artifact is missing", a.path.display()));
    if a.mime.starts_with("image/") && a.mime != "image/gif" {
        let bytes = read()?;
        let t = Instant::now();
        let (decoded, info) = imageio::decode_with_info(&bytes, limits, &name).map_err(refused)?;
        let mut img = imageio::to_image(decoded);
        drop(bytes);
        if !info.is_plain() {
            // What the provider's file needed (rotation, colour conversion), or that it was cut short.
            prov["artifact_decode"] = info.to_json();
        }
        if !post.is_empty() {
            img = block_on(steps::run(&outcome.job, img, post))?;
        }
        prov["timings"]["post_ms"] = json!(t.elapsed().as_millis() as u64);
        prov["output"] = json!({"width": img.width, "height": img.height, "mime": "image/png"});
        let dest = dest.with_extension("png");
        let text = serde_json::to_string(&prov)?;
        let dest = outputs::publish(&dest, &imageio::encode_png(&img, Some(&text))?, when, &plan.reservation)?;
        let sidecar = outputs::write_sidecar(&dest, &prov)?;
        Ok(OutputFile { path: dest, sidecar, width: Some(img.width), height: Some(img.height), mime: "image/png".into(), index, seed: a.seed, job: outcome.job.clone() })
    } else {
        // Videos (and animated GIFs) are written as they came; post-filters do not apply.
        let reserved = dest;
        let dest = dest.with_extension(imageio::extension(&a.mime));
        // A GIF is not decoded here, but whatever opens it will: its screen and frames keep to the limits.
        let (w, h, len) = if a.mime == "image/gif" {
            let bytes = read()?;
            imageio::check_gif(&bytes, limits, &name).map_err(refused)?;
            let dims = image::ImageReader::new(std::io::Cursor::new(&bytes)).with_guessed_format().ok().and_then(|r| r.into_dimensions().ok());
            (dims.map(|d| d.0), dims.map(|d| d.1), bytes.len() as u64)
        } else {
            let meta = std::fs::metadata(&a.path).with_context(|| format!("{}: the job's artifact is missing", a.path.display()))?;
            (None, None, meta.len())
        };
        prov["output"] = json!({"mime": a.mime, "bytes": len, "width": w, "height": h});
        let dest = outputs::publish_copy(&a.path, &dest, when, &plan.reservation)?;
        if dest != reserved {
            // The name reserved before the extension was known (`NAME.out`) is not needed any more.
            outputs::release(reserved, &plan.reservation);
        }
        let sidecar = outputs::write_sidecar(&dest, &prov)?;
        Ok(OutputFile { path: dest, sidecar, width: w, height: h, mime: a.mime.clone(), index, seed: a.seed, job: outcome.job.clone() })
    }
}

/// Finish a stored job in this process (`jobs resume`): the same code path as a fresh run.
pub async fn finish_job(rt: &Runtime, plan: &serde_json::Value, outcome: &JobOutcome, force: bool) -> Result<Vec<OutputFile>> {
    finish_job_with(rt, plan, outcome, WhenTaken::from_force(force)).await
}

/// [`finish_job`], saying what happens to an output whose name is taken.
pub async fn finish_job_with(rt: &Runtime, plan: &serde_json::Value, outcome: &JobOutcome, when: WhenTaken) -> Result<Vec<OutputFile>> {
    let plan: FinishPlan = serde_json::from_value(plan.clone()).context("the job's stored plan is unreadable")?;
    let post = if plan.post.is_empty() { vec![] } else { Catalog::load(rt).await?.parse_all(&plan.post)? };
    let (plan2, outcome2) = (plan.clone(), outcome.clone());
    tokio::task::spawn_blocking(move || finish_outputs(&plan2, &outcome2, &post, when)).await?
}

/// A request checked against the model's `describe()`: its parameters and typed fields.
#[derive(Clone, Debug)]
pub struct Checked {
    /// Parameters, converted, defaults filled in.
    pub params: Vec<Param>,
    /// What to produce.
    pub output: types::OutputKind,
    /// The aspect ratio asked for, one of the model's.
    pub aspect: Option<String>,
    /// The size asked for, one of the model's.
    pub size: Option<String>,
    /// What the user should know (a seed the model ignores).
    pub warnings: Vec<String>,
}

/// Check everything about the request against the model's `describe()`, before any call; every
/// problem is reported, one per line. Returns the parameters with the typed aspect, size and
/// output kind appended as text parameters of those names, as the server's video rows and the
/// price table read them ([`check`] keeps them apart, as the plugin gets them).
pub fn check_request(plugin: &Plugin, info: &types::ModelInfo, req: &EditRequest) -> Result<Vec<Param>> {
    let c = check(plugin, info, req)?;
    let mut params = c.params;
    let typed = [("aspect", c.aspect), ("size", c.size), ("output", Some(c.output.name().to_string()))];
    for (name, value) in typed {
        if let Some(v) = value.filter(|_| !params.iter().any(|p| p.name == name)) {
            params.push(Param { name: name.into(), value: types::Value::Text(v) });
        }
    }
    Ok(params)
}

/// Whether `name` is a typed request field of this model (`aspect`, `size`, `output`) rather
/// than one of its parameters, so `--param name=…` and a recipe's `params.name` stand for it.
pub fn is_typed_field(info: &types::ModelInfo, name: &str) -> bool {
    matches!(name, "aspect" | "size" | "output") && !info.params.iter().any(|p| p.name == name)
}

/// [`check_request`], with the typed fields: output kind, aspect ratio and size checked against
/// the model's lists (a refusal lists the allowed values), a prompt-only request refused for a
/// model that says it needs an input image, and a warning for a seed the model cannot use.
/// `--param aspect=…`/`size=…`/`output=…` (as recipes and contract-0.1 habits write them) stand
/// for the typed fields when the model has no parameter of that name.
pub fn check(plugin: &Plugin, info: &types::ModelInfo, req: &EditRequest) -> Result<Checked> {
    let id = plugin.id();
    let mut problems = vec![];
    let mut warnings = vec![];
    let nrefs = req.inputs.len() as u32;
    if nrefs > info.max_references {
        problems.push(format!("{id} takes at most {} reference image(s); {} given", info.max_references, nrefs));
    }
    if nrefs == 0 && info.generates_without_input == Some(false) {
        problems.push(format!("{id} needs an input image (it does not generate from a prompt alone); give one, or pick a model that can (see `atelier models`)"));
    }
    if req.mask.is_some() && !info.supports_mask {
        problems.push(format!("{id} does not support masks; drop --mask or pick a model that does (see `atelier models`)"));
    }
    if req.n == 0 {
        problems.push("-n 0 asks for no output; give -n 1 or more".to_string());
    }
    if req.n > 64 {
        problems.push(format!("-n {} is more than 64 outputs; run several times instead", req.n));
    }
    if let Some(seed) = req.seed.filter(|_| !info.supports_seed) {
        warnings.push(format!("{id} (model {}) does not take a seed: --seed {seed} is ignored and its results will not repeat", info.model));
    }
    let mut given = vec![];
    let (mut aspect, mut size, mut output_word) = (req.aspect.clone(), req.size.clone(), None::<String>);
    for (k, v) in &req.params {
        let typed = match k.as_str() {
            _ if !is_typed_field(info, k) => None,
            "aspect" => Some(&mut aspect),
            "size" => Some(&mut size),
            _ => Some(&mut output_word),
        };
        match typed {
            Some(slot) => {
                if slot.as_ref().is_some_and(|x| x != v) {
                    problems.push(format!("{k} is given twice ({} and {v}); give it once", slot.as_deref().unwrap_or_default()));
                }
                *slot = Some(v.clone());
            }
            _ => given.push((k.clone(), v.clone())),
        }
    }
    let allowed_outputs = || info.outputs.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
    let output = match output_word.as_deref() {
        Some("video") => types::OutputKind::Video,
        Some("image") => types::OutputKind::Image,
        Some(other) => {
            problems.push(format!("{id}: output={other} is not an output kind; {id} makes: {}", allowed_outputs()));
            info.default_output()
        }
        None if req.video => types::OutputKind::Video,
        None => info.default_output(),
    };
    if !info.makes(output) {
        problems.push(match output {
            types::OutputKind::Video => format!("{id} makes images, not videos; pick an image-to-video model (see `atelier models`)"),
            types::OutputKind::Image => format!("{id} makes videos, not images; use `atelier animate`, or pick an image model (see `atelier models`)"),
        });
    }
    for (flag, value, allowed) in [("aspect", &aspect, &info.aspect_ratios), ("size", &size, &info.sizes)] {
        let Some(v) = value else { continue };
        if allowed.is_empty() {
            problems.push(format!("{id} (model {}) takes no --{flag}; drop --{flag} {v}", info.model));
        } else if !allowed.contains(v) {
            problems.push(format!("{id} (model {}) does not take --{flag} {v}; allowed: {}", info.model, allowed.join(", ")));
        }
    }
    let params = match params::resolve(&format!("model `{id}`"), &info.params, &given) {
        Ok(p) => p,
        Err(e) => {
            problems.push(format!("{e:#}"));
            vec![]
        }
    };
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(Checked { params, output, aspect, size, warnings })
}

/// Check every file an image (media) parameter names ([`imageio::check_file`]: a regular picture
/// file within `[limits] max_input_mb`) before the parameter is resolved, which reads it.
pub fn check_media_params(specs: &[crate::types::ParamSpec], given: &[(String, String)], max_bytes: u64) -> Result<()> {
    for (name, text) in given {
        if specs.iter().any(|s| s.name == *name && s.kind() == crate::types::ParamKind::Media) {
            imageio::check_file(Path::new(text), max_bytes, imageio::FileKind::Image).map_err(|e| anyhow::anyhow!("parameter {name}={text}: {e:#}"))?;
        }
    }
    Ok(())
}

fn params_json(params: &[Param]) -> serde_json::Value {
    serde_json::Value::Object(params.iter().map(|p| (p.name.clone(), params::to_json(&p.value))).collect())
}

/// The stage's contact sheet at `path` (reserved with the outputs), from its image outputs decoded
/// one at a time with the limits.
fn write_sheet(path: &Path, files: &[OutputFile], when: WhenTaken, token: &str, limits: DecodeLimits) -> Result<PathBuf> {
    let cells: Vec<(PathBuf, String)> = files
        .iter()
        .filter(|f| f.mime.starts_with("image/"))
        .map(|f| (f.path.clone(), format!("#{}  seed {}", f.index, f.seed.map(|s| s.to_string()).unwrap_or("-".into()))))
        .collect();
    let sheet = sheet::from_files(&cells, limits, 256)?;
    let img = Image { width: sheet.width(), height: sheet.height(), pixels: sheet.into_raw() };
    outputs::publish(path, &imageio::encode_png(&img, None)?, when, token)
}

/// `img` resized to `w`×`h`. Every size reaching here was checked against the limits; a buffer that
/// does not match its size is an error, never a panic.
fn resize_exact(img: &Image, w: u32, h: u32, filter: image::imageops::FilterType) -> Result<Image> {
    let buf = image::RgbaImage::from_raw(img.width, img.height, img.pixels.clone())
        .ok_or_else(|| anyhow::anyhow!("an image of {}x{} has {} bytes of pixels; it cannot be resized", img.width, img.height, img.pixels.len()))?;
    let out = image::imageops::resize(&buf, w, h, filter);
    Ok(Image { width: w, height: h, pixels: out.into_raw() })
}

fn empty() -> Image {
    Image { width: 0, height: 0, pixels: vec![] }
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Post-filters run inside the blocking finishing code; this bridges back to async plugin calls.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => tokio::task::block_in_place(|| h.block_on(f)),
        Err(_) => tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f),
    }
}
