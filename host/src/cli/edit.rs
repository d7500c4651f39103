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
    /// Base seed; output i gets seed + i - 1.
    #[arg(long)]
    seed: Option<u64>,
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
    /// Output file (.png, .jpg or .webp).
    #[arg(short, long)]
    out: PathBuf,
    /// Overwrite an earlier result.
    #[arg(long)]
    force: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

pub async fn edit(cli: &Cli, a: &EditArgs) -> Result<ExitCode> {
    let c = &a.common;
    let req = EditRequest {
        inputs: a.inputs.clone(),
        prompt: c.prompt.clone(),
        model: c.model.clone(),
        n: a.n,
        seed: c.seed,
        params: c.params()?,
        mask: a.mask.clone(),
        pre: c.pre.clone(),
        post: a.post.clone(),
        out_dir: a.out.clone(),
        out_file: None,
        force: c.force,
        video: false,
        only: vec![],
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
        params,
        mask: None,
        pre: c.pre.clone(),
        post: vec![],
        out_dir: a.out.parent().map(PathBuf::from).unwrap_or_default(),
        out_file: Some(a.out.clone()),
        force: c.force,
        video: true,
        only: vec![],
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
            "engine": r.engine, "model": r.model, "jobs": r.jobs, "usage": r.usage, "millis": r.millis,
        }))?);
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
    println!("{} output(s) from {} (model {}) in {:.1} s; usage: {}", r.outputs.len(), r.engine, atelier::text::printable(&r.model), r.millis as f64 / 1000.0, progress::usage_line(&r.usage));
    Ok(())
}

pub async fn filter(cli: &Cli, a: &FilterArgs) -> Result<ExitCode> {
    let rt = cli.runtime()?;
    let catalog = Catalog::load(&rt).await?;
    let steps = catalog.parse_all(&a.steps)?;
    let mime = match a.out.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("png") | None => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some(other) => bail!("{}: cannot write .{other}; use .png, .jpg or .webp", a.out.display()),
    };
    outputs::check_free(std::slice::from_ref(&a.out), a.force)?;
    let limits = DecodeLimits { max_pixels: rt.settings.limits.max_pixels, max_dimension: rt.settings.limits.max_dimension };
    let t = std::time::Instant::now();
    let (img, bytes) = imageio::read(&a.input, limits)?;
    let out = pipeline::steps::run("filter", img, &steps).await?;
    let prov = json!({
        "atelier_version": env!("CARGO_PKG_VERSION"), "engine": null, "steps": a.steps,
        "inputs": [{"path": a.input.display().to_string(), "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))}],
        "output": {"width": out.width, "height": out.height, "mime": mime}, "timings": {"total_ms": t.elapsed().as_millis() as u64},
    });
    let encoded = if mime == "image/png" { imageio::encode_png(&out, Some(&prov.to_string()))? } else { imageio::encode(&out, mime)? };
    outputs::write_atomic(&a.out, &encoded)?;
    let sidecar = outputs::write_sidecar(&a.out, &prov)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json!({"outputs": [{"path": a.out, "sidecar": sidecar, "width": out.width, "height": out.height, "mime": mime}]}))?);
    } else {
        println!("{}  {}x{}  ({} step(s) in {:.2} s)", a.out.display(), out.width, out.height, steps.len(), t.elapsed().as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}
