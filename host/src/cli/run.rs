//! `atelier run RECIPE INPUT...` (multi-stage recipes, with resume and picks) and
//! `atelier rerun OUTPUT.json` (repeat the call that made one output).

use super::{Cli, progress};
use anyhow::Result;
use atelier::workflow::cost::{Cost, PriceTable, fmt_amount};
use atelier::workflow::rerun::{self, RerunOptions};
use atelier::workflow::state::{StageState, StageStatus};
use atelier::workflow::{self, Event, RunError, RunOptions, RunReport, RunStatus};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct RunArgs {
    /// The recipe (TOML; see docs/recipes.md). Optional with --resume.
    recipe: Option<PathBuf>,
    /// Source pictures: the first is edited, the rest are references of the first stage.
    inputs: Vec<PathBuf>,
    /// The run folder (default: runs/RECIPE-DATE-TIME); each stage writes to NN-NAME/ inside.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Change the recipe: STAGE.KEY=VALUE (STAGE = name, stageN or N; e.g. explore.n=2,
    /// refine.params.size=2K, stage4.prompt=...), budget=5, or NAME=VALUE for {NAME} in prompts.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Continue the run in this folder: from the first unfinished stage; finished ones are kept.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// With --resume: the candidate(s) for the stage waiting on pick = "ask" (3, 1,3 or all).
    #[arg(long, value_name = "N")]
    pick: Option<String>,
    /// With --resume: send again a run whose job was cut off during its submit (check the
    /// provider first: it may have been accepted and billed).
    #[arg(long)]
    resubmit_unknown: bool,
    /// Only check the recipe and show each stage's estimated cost; run nothing.
    #[arg(long)]
    check: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    pub(super) json: bool,
    #[command(flatten)]
    state: super::StateArgs,
}

#[derive(Args)]
pub struct RerunArgs {
    /// An output's provenance sidecar (`NAME.png.json`; also the older `NAME.json`), or a PNG carrying provenance.
    provenance: PathBuf,
    /// A change: prompt=..., seed=N, engine=ID, n=N, mask=PATH, pre=STEP, post=STEP, param.NAME=VALUE.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Output folder (default: beside the original).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub(super) json: bool,
    #[command(flatten)]
    state: super::StateArgs,
}

pub async fn run(cli: &Cli, a: &RunArgs) -> Result<ExitCode> {
    let rt = cli.runtime()?;
    if a.check {
        return check(&rt, a).await;
    }
    let (runner, bar) = progress::runner(&a.state, a.json, "run")?;
    let quiet = a.json;
    let b = bar.clone();
    let on: Arc<dyn Fn(Event) + Send + Sync> = Arc::new(move |e| {
        let line = match e {
            Event::StageStart { index, total, name, engine, runs, estimate, currency } => {
                b.set_prefix(format!("[{}/{total}] {name}", index + 1));
                b.set_message("submitting");
                format!("[{}/{total}] {name}: {engine}, {runs} run(s), estimated {}", index + 1, cost_text(&estimate, &currency))
            }
            Event::StageKept { index, total, name } => format!("[{}/{total}] {name}: already done, kept", index + 1),
            Event::StageEnd { index, total, name, status, millis, outputs } => {
                format!("[{}/{total}] {name}: {} — {outputs} output(s) in {:.1} s", index + 1, status_text(status), millis as f64 / 1000.0)
            }
            Event::Warning(w) => format!("warning: {}", atelier::text::printable_lines(&w)),
        };
        if !quiet {
            b.suspend(|| eprintln!("{line}"));
        } else if line.starts_with("warning") {
            eprintln!("{line}");
        }
    });
    let opts = RunOptions {
        recipe: a.recipe.clone(),
        inputs: a.inputs.clone(),
        out_dir: a.out.clone(),
        sets: a.sets.clone(),
        resume: a.resume.clone(),
        pick: a.pick.clone(),
        resubmit_unknown: a.resubmit_unknown,
    };
    let result = workflow::run(&rt, &runner, &opts, on.as_ref()).await;
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(RunError::Invalid(problems)) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&json!({"status": "invalid", "problems": problems}))?);
            }
            eprintln!("error: the recipe cannot run; {} problem(s), nothing was run:", problems.len());
            for p in &problems {
                let mut lines = p.to_string().lines().map(str::to_string).collect::<Vec<_>>().into_iter();
                eprintln!("  {}", lines.next().unwrap_or_default());
                for l in lines {
                    eprintln!("    {l}");
                }
            }
            return Ok(ExitCode::from(2));
        }
        Err(RunError::Other(e)) => return Err(e),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        summary(&report);
    }
    if let Some(m) = &report.message {
        eprintln!("{}{}", if report.status == RunStatus::Failed { "error: " } else { "" }, atelier::text::printable_lines(m));
    }
    let partial = report.stages.iter().flat_map(|s| s.runs.iter()).any(|r| !r.failures.is_empty());
    Ok(match report.status {
        RunStatus::Done if partial => ExitCode::from(3),
        RunStatus::Done | RunStatus::WaitingForPick => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
        RunStatus::StoppedByBudget => ExitCode::from(4),
    })
}

async fn check(rt: &atelier::Runtime, a: &RunArgs) -> Result<ExitCode> {
    let Some(path) = &a.recipe else { anyhow::bail!("--check needs the recipe: atelier run RECIPE INPUT... --check") };
    let prices = PriceTable::from_config(&rt.settings.raw, &rt.settings.shown_path())?;
    let result = match workflow::recipe::load(path, &a.sets) {
        Ok((r, mut problems)) => match workflow::validate::validate(rt, &r, &a.inputs, &prices).await {
            Ok(p) if problems.is_empty() => Ok((r, p)),
            Ok(_) => Err(problems),
            Err(more) => {
                problems.extend(more);
                workflow::recipe::sort_problems(&mut problems);
                Err(problems)
            }
        },
        Err(p) => Err(p),
    };
    match result {
        Err(problems) => {
            eprintln!("error: {} problem(s):", problems.len());
            for p in &problems {
                eprintln!("  {p}");
            }
            Ok(ExitCode::from(2))
        }
        Ok((r, plans)) => {
            let mut rows = vec![];
            for (i, (s, p)) in r.stages.iter().zip(&plans).enumerate() {
                let price = prices.price(&s.engine, &p.info.model);
                let est = workflow::cost::estimate(price.as_ref(), p.offline, p.video, p.candidates, &p.params);
                rows.push(json!({"stage": s.name, "engine": s.engine, "model": p.info.model, "candidates": p.candidates, "pick": p.pick.to_string(), "estimate": est}));
                if !a.json {
                    println!("{:>2} {:<12} {:<14} {:<28} {} candidate(s), pick {}, estimated {}", i + 1, s.name, s.engine, atelier::text::printable(&p.info.model), p.candidates, p.pick, cost_text(&est, &prices.currency));
                }
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&json!({"status": "ok", "stages": rows, "budget": r.budget, "currency": prices.currency}))?);
            } else {
                println!("the recipe is valid{}", r.budget.map(|b| format!("; budget {}", prices.show(b))).unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn status_text(s: StageStatus) -> &'static str {
    match s {
        StageStatus::Pending => "not started",
        StageStatus::Running => "unfinished",
        StageStatus::Done => "done",
        StageStatus::WaitingForPick => "waiting for a pick",
        StageStatus::Failed => "FAILED",
        StageStatus::StoppedByBudget => "stopped by the budget",
    }
}

fn cost_text(c: &Cost, currency: &str) -> String {
    match c.amount {
        Some(a) => format!("{} {currency} ({})", fmt_amount(a), c.basis).replace("  (", " ("),
        None => c.basis.clone(),
    }
}

fn stage_cost(s: &StageState) -> Option<Cost> {
    let costs: Vec<&Cost> = s.runs.iter().filter(|r| r.status == "done").filter_map(|r| r.cost.as_ref()).collect();
    if costs.is_empty() {
        return None;
    }
    if costs.iter().any(|c| c.amount.is_none()) {
        return Some(Cost { amount: None, basis: costs.iter().find(|c| c.amount.is_none()).map(|c| c.basis.clone()).unwrap_or_default() });
    }
    let mut bases: Vec<String> = costs.iter().map(|c| c.basis.clone()).collect();
    bases.dedup();
    Some(Cost { amount: Some(costs.iter().filter_map(|c| c.amount).sum()), basis: bases.join("; ") })
}

fn summary(r: &RunReport) {
    println!("run: {}", r.dir.display());
    for (i, s) in r.stages.iter().enumerate() {
        let millis: u64 = s.runs.iter().map(|x| x.millis).sum();
        let usage: Vec<serde_json::Value> = s.runs.iter().flat_map(|x| x.usage.iter().cloned()).collect();
        let cost = match stage_cost(s) {
            Some(c) => cost_text(&c, &r.currency),
            None => "-".into(),
        };
        println!(
            "{:>2}. {:<12} {:<14} model {:<26} {:<20} {:>6.1} s  {} output(s)  usage: {}  cost: {}",
            i + 1,
            s.name,
            s.engine,
            atelier::text::printable(s.model.as_deref().unwrap_or("-")),
            status_text(s.status),
            millis as f64 / 1000.0,
            s.candidates.len(),
            if usage.is_empty() { "-".to_string() } else { progress::usage_line(&usage) },
            cost
        );
        for (k, c) in s.candidates.iter().enumerate() {
            let picked = if s.picked.contains(&(k as u32 + 1)) && i + 1 < r.stages.len() { "  ← picked" } else { "" };
            println!("      #{} {}{picked}", k + 1, c.path.display());
        }
        if let Some(sheet) = &s.contact_sheet {
            println!("      contact sheet: {}", sheet.display());
        }
        for f in s.runs.iter().flat_map(|x| x.failures.iter()) {
            println!("      failed: {}", atelier::text::printable_lines(f));
        }
    }
    let total = format!("{} {}", fmt_amount(r.total_cost), r.currency);
    println!(
        "total cost: {total}{}{}",
        if r.cost_incomplete { " plus stages with no price set" } else { "" },
        r.budget.map(|b| format!(" (budget {} {})", fmt_amount(b), r.currency)).unwrap_or_default()
    );
}

pub async fn rerun(cli: &Cli, a: &RerunArgs) -> Result<ExitCode> {
    let rt = cli.runtime()?;
    let max_mb = rt.settings.limits.max_input_mb;
    let prov = rerun::read_provenance(&a.provenance, max_mb)?;
    let mut plan = rerun::plan(&prov, &RerunOptions { provenance: a.provenance.clone(), sets: a.sets.clone(), out_dir: a.out.clone(), max_input_mb: Some(max_mb) })?;
    // The same engine, but not the same plugin build: the output may not be reproducible.
    if prov["engine"].as_str() == Some(plan.request.model.as_str())
        && let (Some(was), Ok(plugin)) = (prov["plugin_version"].as_str(), rt.plugin(&plan.request.model))
        && plugin.manifest.version != was
    {
        plan.warnings.push(format!(
            "`{}` is now version {} but the output was made by version {}: the result may differ",
            plan.request.model,
            plugin.manifest.version,
            atelier::text::printable(was)
        ));
    }
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let (runner, bar) = progress::runner(&a.state, a.json, &plan.request.model)?;
    let result = rerun::rerun(&rt, &runner, &plan).await;
    bar.finish_and_clear();
    let r = result?;
    let mut warnings = plan.warnings.clone();
    if !plan.original_model.is_empty() && r.model != plan.original_model {
        let w = format!(
            "`{}` now runs model {} but the output was made with {}: set `model = \"{}\"` under [plugins.{}] in atelier.toml to repeat it exactly",
            r.engine, r.model, plan.original_model, plan.original_model, r.engine
        );
        eprintln!("warning: {w}");
        warnings.push(w);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json!({
            "outputs": r.outputs, "failures": r.failures, "engine": r.engine, "model": r.model, "jobs": r.jobs,
            "usage": r.usage, "millis": r.millis, "warnings": warnings,
        }))?);
    } else {
        for o in &r.outputs {
            println!("{}  seed {}", o.path.display(), o.seed.map(|s| s.to_string()).unwrap_or("-".into()));
        }
        for f in &r.failures {
            eprintln!("failed: {}", atelier::text::printable_lines(f));
        }
        for w in &r.warnings {
            eprintln!("warning: {}", atelier::text::printable_lines(w));
        }
        println!("re-ran {} (model {}) in {:.1} s; usage: {}", r.engine, atelier::text::printable(&r.model), r.millis as f64 / 1000.0, progress::usage_line(&r.usage));
    }
    Ok(if r.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}
