//! `atelier edit`, `atelier animate`, `atelier filter`.

use super::{Cli, progress};
use anyhow::{Result, bail};
use atelier::imageio::{self, DecodeLimits};
use atelier::params::split_kv;
use atelier::pipeline::{self, Catalog, EditRequest, EditResult};
use atelier::pipeline::outputs;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// What `edit` and `animate` share.
#[derive(Args)]
pub struct ModelArgs {
    /// What to do.
    #[arg(long)]
    prompt: String,
    /// Model plugin id (see `atelier models`).
    #[arg(long)]
    model: String,
    /// Base seed; output i gets seed + i - 1 (a model that takes no seed ignores it, with a warning).
    #[arg(long)]
    seed: Option<u64>,
    /// Aspect ratio, one of the model's (`atelier models` lists them), e.g. 16:9.
    #[arg(long)]
    aspect: Option<String>,
    /// Output size, one of the model's (`atelier models` lists them), e.g. 2K.
    #[arg(long)]
    size: Option<String>,
    /// A model parameter, key=value (repeatable).
    #[arg(long = "param", value_name = "K=V")]
    params: Vec<String>,
    /// Filter step before the model: name[:k=v[,k=v...]] (repeatable).
    #[arg(long = "pre", value_name = "STEP")]
    pre: Vec<String>,
    /// Overwrite earlier results.
    #[arg(long)]
    force: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    state: super::StateArgs,
}

impl ModelArgs {
    fn params(&self) -> Result<Vec<(String, String)>> {
        self.params.iter().map(|p| split_kv(p).map_err(|e| anyhow::anyhow!("--param {e}"))).collect()
    }
}

#[derive(Args)]
pub struct EditArgs {
    /// Source image, then further reference images in order.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    common: ModelArgs,
    /// How many outputs.
    #[arg(short, default_value_t = 1)]
    n: u32,
    /// Mask image, same size as the first input; white = edit.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Filter step after the model (repeatable).
    #[arg(long = "post", value_name = "STEP")]
    post: Vec<String>,
    /// Output folder.
    #[arg(short, long, default_value = "out")]
    out: PathBuf,
}

#[derive(Args)]
pub struct AnimateArgs {
    /// The image to animate.
    input: PathBuf,
    #[command(flatten)]
    common: ModelArgs,
    /// Length in seconds (the model's `seconds` parameter).
    #[arg(long)]
    seconds: Option<String>,
    /// Output file; its extension follows what the model produced.
    #[arg(short, long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct FilterArgs {
    /// The image.
    input: PathBuf,
    /// A step: name[:k=v[,k=v...]] (repeatable, in order).
    #[arg(long = "step", value_name = "STEP", required = true)]
    steps: Vec<String>,
    /// Output file; its extension (.png, .jpg or .webp) sets the format.
    #[arg(short, long)]
    out: PathBuf,
    /// Overwrite an earlier result.
    #[arg(long)]
    force: bool,
    /// JPEG quality of the output (1–100); other formats ignore it.
    #[arg(long, value_name = "1-100", default_value_t = imageio::DEFAULT_JPEG_QUALITY, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
    /// Print JSON for scripts.
    #[arg(long)]
    pub(super) json: bool,
}

impl EditArgs {
    /// `--json`.
    pub(super) fn json(&self) -> bool {
        self.common.json
    }
}

impl AnimateArgs {
    /// `--json`.
    pub(super) fn json(&self) -> bool {
        self.common.json
    }
}

pub async fn edit(cli: &Cli, a: &EditArgs) -> Result<ExitCode> {
    let c = &a.common;
    let req = EditRequest {
        inputs: a.inputs.clone(),
        prompt: c.prompt.clone(),
        model: c.model.clone(),
        n: a.n,
        seed: c.seed,
        aspect: c.aspect.clone(),
        size: c.size.clone(),
        params: c.params()?,
        mask: a.mask.clone(),
        pre: c.pre.clone(),
        post: a.post.clone(),
        out_dir: a.out.clone(),
        out_file: None,
        force: c.force,
        video: false,
        only: vec![],
        decoded_inputs: Default::default(),
    };
    run_stage(cli, &c.state, req, c.json).await
}

pub async fn animate(cli: &Cli, a: &AnimateArgs) -> Result<ExitCode> {
    let c = &a.common;
    let mut params = c.params()?;
    if let Some(s) = &a.seconds {
        params.push(("seconds".into(), s.clone()));
    }
    let req = EditRequest {
        inputs: vec![a.input.clone()],
        prompt: c.prompt.clone(),
        model: c.model.clone(),
        n: 1,
        seed: c.seed,
        aspect: c.aspect.clone(),
        size: c.size.clone(),
        params,
        mask: None,
        pre: c.pre.clone(),
        post: vec![],
        out_dir: a.out.parent().map(PathBuf::from).unwrap_or_default(),
        out_file: Some(a.out.clone()),
        force: c.force,
        video: true,
        only: vec![],
        decoded_inputs: Default::default(),
    };
    run_stage(cli, &c.state, req, c.json).await
}

async fn run_stage(cli: &Cli, state: &super::StateArgs, req: EditRequest, as_json: bool) -> Result<ExitCode> {
    let rt = cli.runtime()?;
    let (runner, bar) = progress::runner(state, as_json, &req.model)?;
    let result = pipeline::edit(&rt, &runner, &req).await;
    bar.finish_and_clear();
    let r = result?;
    report(&r, as_json)?;
    Ok(if r.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

fn report(r: &EditResult, as_json: bool) -> Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({
            "outputs": r.outputs, "contact_sheet": r.contact_sheet, "failures": r.failures,
            "engine": r.engine, "model": r.model, "jobs": r.jobs, "usage": r.usage, "millis": r.millis, "warnings": r.warnings,
        }))?);
        for w in &r.warnings {
            eprintln!("warning: {}", atelier::text::printable_lines(w));
        }
        return Ok(());
    }
    for o in &r.outputs {
        let size = match (o.width, o.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "-".into(),
        };
        println!("{}  {size}  seed {}", o.path.display(), o.seed.map(|s| s.to_string()).unwrap_or("-".into()));
    }
    if let Some(s) = &r.contact_sheet {
        println!("contact sheet: {}", s.display());
    }
    for f in &r.failures {
        eprintln!("failed: {}", atelier::text::printable_lines(f));
    }
    for w in &r.warnings {
        eprintln!("warning: {}", atelier::text::printable_lines(w));
    }
    println!("{} output(s) from {} (model {}) in {:.1} s; usage: {}", r.outputs.len(), r.engine, atelier::text::printable(&r.model), r.millis as f64 / 1000.0, progress::usage_line(&r.usage));
    Ok(())
}

pub async fn filter(cli: &Cli, a: &FilterArgs) -> Result<ExitCode> {
    let rt = cli.runtime()?;
    let catalog = Catalog::load(&rt).await?;
    let steps = catalog.parse_all(&a.steps)?;
    // The format comes from the name only: a name without an extension is refused rather than
    // silently written as PNG under a name that does not say so.
    let mime = match a.out.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("png") => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        None => bail!("-o {}: the name has no extension, so the format is unclear; write {}.png, .jpg or .webp", a.out.display(), a.out.display()),
        Some(other) => bail!("{}: cannot write .{other}; use .png, .jpg or .webp", a.out.display()),
    };
    outputs::check_free(std::slice::from_ref(&a.out), a.force)?;
    let limits = DecodeLimits { max_pixels: rt.settings.limits.max_pixels, max_dimension: rt.settings.limits.max_dimension };
    let max_bytes = imageio::max_input_bytes(rt.settings.limits.max_input_mb);
    let t = std::time::Instant::now();
    let input = a.input.clone();
    // Shrink-on-load: when the chain starts by shrinking, a JPEG is decoded at a reduced DCT
    // scale and the leading resize finishes the job from there (or is dropped when the decoder
    // already gave its exact size).
    let steps_for_size = steps.clone();
    let (bytes, image, info, run_steps) = tokio::task::spawn_blocking(move || -> Result<_> {
        let bytes = imageio::read_file(&input, max_bytes, imageio::FileKind::Image)?;
        let (image, info, run_steps) = pipeline::steps::decode_for(&bytes, limits, &input.display().to_string(), &steps_for_size)?;
        Ok((bytes, image, info, run_steps))
    })
    .await??;
    let warnings = info.warnings(&a.input.display().to_string());
    // The input's hash (for provenance) on the other core while the chain runs.
    let hashing = tokio::task::spawn_blocking(move || hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
    let out = pipeline::steps::run("filter", image, &run_steps).await?;
    let mut source = json!({"path": a.input.display().to_string(), "sha256": hashing.await?});
    if !info.is_plain() {
        source["decode"] = info.to_json();
    }
    let prov = json!({
        "atelier_version": env!("CARGO_PKG_VERSION"), "engine": null, "steps": a.steps,
        "inputs": [source],
        "output": {"width": out.width, "height": out.height, "mime": mime}, "timings": {"total_ms": t.elapsed().as_millis() as u64},
    });
    let (dest, when, prov2, quality) = (a.out.clone(), outputs::WhenTaken::from_force(a.force), prov.clone(), a.quality);
    let sidecar = tokio::task::spawn_blocking(move || -> Result<std::path::PathBuf> {
        let encoded = if mime == "image/png" { imageio::encode_png(&out, Some(&prov2.to_string()))? } else { imageio::encode_with_quality(&out, mime, quality)? };
        // Published only if the name is still free: of two runs to one -o exactly one writes.
        outputs::publish(&dest, &encoded, when, "")?;
        outputs::write_sidecar(&dest, &prov2)
    })
    .await??;
    for w in &warnings {
        eprintln!("warning: {}", atelier::text::printable_lines(w));
    }
    let (ow, oh) = (prov["output"]["width"].as_u64().unwrap_or(0), prov["output"]["height"].as_u64().unwrap_or(0));
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json!({"outputs": [{"path": a.out, "sidecar": sidecar, "width": ow, "height": oh, "mime": mime}], "warnings": warnings}))?);
    } else {
        println!("{}  {ow}x{oh}  ({} step(s) in {:.2} s)", a.out.display(), steps.len(), t.elapsed().as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}
