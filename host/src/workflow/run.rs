//! Running a recipe: stage after stage, each in its own numbered folder, with `run.json` saved
//! after every stage run so a stopped, failed or waiting run continues where it ended without
//! repeating (or re-billing) what finished.

use super::cost::{self, Cost, PriceTable};
use super::recipe::{self, Pick, Problem, Recipe, Reference, Source};
use super::state::{InputRecord, RunRecord, RunState, StageState, StageStatus};
use super::validate::{self, StagePlan};
use crate::imageio;
use crate::jobs::db::{JobState, now_ms};
use crate::jobs::runner::{JobOutcome, Runner};
use crate::pipeline::edit::{EditRequest, edit_named, finish_job};
use crate::pipeline::outputs::{self, OutputFile};
use crate::pipeline::sheet;
use crate::runtime::Runtime;
use crate::types::Image;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What `atelier run` was asked.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The recipe (optional with `resume`: the run remembers it).
    pub recipe: Option<PathBuf>,
    /// Input pictures (optional with `resume`).
    pub inputs: Vec<PathBuf>,
    /// The run folder for a new run.
    pub out_dir: Option<PathBuf>,
    /// `--set KEY=VALUE` overrides.
    pub sets: Vec<String>,
    /// Continue the run in this folder.
    pub resume: Option<PathBuf>,
    /// The pick for a stage waiting on `pick = "ask"`.
    pub pick: Option<String>,
    /// Submit again a run whose job was cut off in the middle of its submit (it may have been
    /// billed: the user has checked the provider).
    pub resubmit_unknown: bool,
}

/// How many runs of one stage go at once (a fan-out over picked candidates).
const RUNS_AT_ONCE: usize = 4;

/// Progress, for displays.
#[derive(Clone, Debug)]
pub enum Event {
    /// A stage starts (`runs` calls to make).
    StageStart { index: usize, total: usize, name: String, engine: String, runs: usize, estimate: Cost, currency: String },
    /// A finished stage of an earlier attempt is kept.
    StageKept { index: usize, total: usize, name: String },
    /// A stage ended (whatever the outcome).
    StageEnd { index: usize, total: usize, name: String, status: StageStatus, millis: u64, outputs: usize },
    /// Something the user should know.
    Warning(String),
}

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every stage finished.
    Done,
    /// Waiting for `--resume DIR --pick N`.
    WaitingForPick,
    /// A stage failed; `--resume DIR` continues.
    Failed,
    /// The budget stopped it before a stage.
    StoppedByBudget,
}

/// The result of `atelier run`.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The run folder.
    pub dir: PathBuf,
    /// How it ended.
    pub status: RunStatus,
    /// What to do next, when not done.
    pub message: Option<String>,
    /// Per stage.
    pub stages: Vec<StageState>,
    /// Currency of every amount.
    pub currency: String,
    /// Cost of the stage runs so far, where prices are known.
    pub total_cost: f64,
    /// Whether some stage's cost is unknown (no price set).
    pub cost_incomplete: bool,
    /// The recipe's budget.
    pub budget: Option<f64>,
}

/// Why `atelier run` did not start or could not go on.
#[derive(Debug)]
pub enum RunError {
    /// The recipe or inputs have problems; nothing ran.
    Invalid(Vec<Problem>),
    /// Anything else.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for RunError {
    fn from(e: anyhow::Error) -> Self {
        RunError::Other(e)
    }
}

/// Run (or resume) a recipe.
pub async fn run(rt: &Runtime, runner: &Runner, opts: &RunOptions, on: &(dyn Fn(Event) + Send + Sync)) -> Result<RunReport, RunError> {
    let prices = PriceTable::from_config(&rt.settings.raw, &rt.settings.shown_path())?;
    let max_bytes = imageio::max_input_bytes(rt.settings.limits.max_input_mb);
    // 1. What to run: a new run, or the one in the folder being resumed.
    let (dir, mut state, recipe_path, recipe_text, inputs, sets) = match &opts.resume {
        Some(d) => {
            let st = RunState::load(d)?;
            if let Some(r) = &opts.recipe
                && absolute(r) != st.recipe
            {
                return Err(anyhow::anyhow!("{} was started with the recipe {}; drop the recipe argument to resume it, or start a new run in another folder", d.display(), st.recipe.display()).into());
            }
            if !opts.inputs.is_empty() && opts.inputs.iter().map(|p| absolute(p)).collect::<Vec<_>>() != st.inputs.iter().map(|i| i.path.clone()).collect::<Vec<_>>() {
                return Err(anyhow::anyhow!("{} was started with other inputs ({}); drop the inputs to resume it", d.display(),
                    st.inputs.iter().map(|i| i.path.display().to_string()).collect::<Vec<_>>().join(", ")).into());
            }
            // The recipe as it is now (so a fix to a later stage applies), else as it was.
            let text = imageio::read_file(&st.recipe, max_bytes, imageio::FileKind::Any)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_else(|| st.recipe_text.clone());
            if sha256(text.as_bytes()) != st.recipe_sha256 {
                on(Event::Warning(format!("{} changed since the run started; finished stages are kept as they are, the rest use the recipe as it is now", st.recipe.display())));
            }
            let mut sets = st.sets.clone();
            for s in &opts.sets {
                let key = s.split_once('=').map(|x| x.0.trim()).unwrap_or(s);
                sets.retain(|old| old.split_once('=').map(|x| x.0.trim()).unwrap_or(old) != key);
                sets.push(s.clone());
            }
            let inputs: Vec<PathBuf> = st.inputs.iter().map(|i| i.path.clone()).collect();
            for i in &st.inputs {
                match imageio::read_file(&i.path, max_bytes, imageio::FileKind::Image) {
                    Ok(b) if sha256(&b) != i.sha256 => on(Event::Warning(format!("{} changed since the run started; stages still to run use it as it is now", i.path.display()))),
                    Ok(_) => {}
                    Err(e) => return Err(anyhow::anyhow!("the run's input cannot be read any more: {e:#}").into()),
                }
            }
            (absolute(d), Some(st.clone()), st.recipe.clone(), text, inputs, sets)
        }
        None => {
            let Some(r) = &opts.recipe else { return Err(anyhow::anyhow!("give a recipe: atelier run RECIPE INPUT...").into()) };
            let text = imageio::read_file(r, max_bytes, imageio::FileKind::Any)
                .and_then(|b| String::from_utf8(b).map_err(|_| anyhow::anyhow!("not UTF-8 text")))
                .map_err(|e| RunError::Invalid(vec![Problem { at: r.display().to_string(), message: format!("cannot read the recipe: {e:#}") }]))?;
            let dir = absolute(&opts.out_dir.clone().unwrap_or_else(|| default_dir(r)));
            (dir, None, absolute(r), text, opts.inputs.iter().map(|p| absolute(p)).collect(), opts.sets.clone())
        }
    };
    if opts.pick.is_some() && opts.resume.is_none() {
        return Err(anyhow::anyhow!("--pick answers a stage that is waiting in an earlier run: use it with --resume DIR").into());
    }
    let shown = opts.recipe.clone().unwrap_or_else(|| recipe_path.clone());
    let (r, mut problems) = recipe::parse_lenient(&recipe_text, &shown, &sets).map_err(RunError::Invalid)?;
    let plans = match validate::validate(rt, &r, &inputs, &prices).await {
        Ok(p) if problems.is_empty() => p,
        Ok(_) => return Err(RunError::Invalid(problems)),
        Err(more) => {
            problems.extend(more);
            recipe::sort_problems(&mut problems);
            return Err(RunError::Invalid(problems));
        }
    };

    // 2. The run folder and its state.
    let mut state = match state.take() {
        Some(mut st) => {
            st.sets = sets.clone();
            if st.stages.len() != r.stages.len() || st.stages.iter().zip(&r.stages).any(|(a, b)| a.name != b.name) {
                return Err(anyhow::anyhow!(
                    "the recipe's stages changed since the run started (was: {}; now: {}); start a new run",
                    st.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
                    r.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                ).into());
            }
            st
        }
        None => {
            if dir.join(super::state::FILE).exists() {
                return Err(anyhow::anyhow!("{} already holds a run; continue it with --resume {}, or choose another folder with -o", dir.display(), dir.display()).into());
            }
            for i in 0..r.stages.len() {
                let f = dir.join(r.folder(i));
                if f.exists() && std::fs::read_dir(&f).map(|mut d| d.next().is_some()).unwrap_or(false) {
                    return Err(anyhow::anyhow!("{} is not empty; choose another folder with -o", f.display()).into());
                }
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create the run folder", dir.display()))?;
            let mut ins = vec![];
            for p in &inputs {
                let b = imageio::read_file(p, max_bytes, imageio::FileKind::Image)?;
                ins.push(InputRecord { path: p.clone(), sha256: sha256(&b) });
            }
            RunState {
                version: 1,
                recipe: recipe_path.clone(),
                recipe_sha256: sha256(recipe_text.as_bytes()),
                recipe_text: recipe_text.clone(),
                sets: sets.clone(),
                inputs: ins,
                started_ms: now_ms(),
                updated_ms: now_ms(),
                stages: r.stages.iter().enumerate().map(|(i, s)| StageState {
                    name: s.name.clone(),
                    engine: s.engine.clone(),
                    folder: r.folder(i),
                    status: StageStatus::Pending,
                    fingerprint: s.fingerprint.clone(),
                    prompt: String::new(),
                    model: None,
                    plugin_version: None,
                    plugin_contract: None,
                    runs: vec![],
                    candidates: vec![],
                    picked: vec![],
                    contact_sheet: None,
                    estimate: None,
                    error: None,
                }).collect(),
            }
        }
    };
    state.save(&dir)?;

    let mut ctx = Ctx { rt, runner, r: &r, plans: &plans, prices: &prices, dir: &dir, inputs: &inputs, on, resubmit_unknown: opts.resubmit_unknown };
    let mut pick = opts.pick.clone();
    let (status, message) = ctx.stages(&mut state, &mut pick).await?;
    if let Some(p) = pick {
        on(Event::Warning(format!("--pick {p} was not used: no stage was waiting for a pick")));
    }
    state.save(&dir)?;
    Ok(report(&state, &prices, &r, &dir, status, message))
}

struct Ctx<'a> {
    rt: &'a Runtime,
    runner: &'a Runner,
    r: &'a Recipe,
    plans: &'a [StagePlan],
    prices: &'a PriceTable,
    dir: &'a Path,
    inputs: &'a [PathBuf],
    on: &'a (dyn Fn(Event) + Send + Sync),
    resubmit_unknown: bool,
}

impl Ctx<'_> {
    /// Record which plugin version runs a stage; on a resume, warn when it is not the version that
    /// made the stage's earlier runs (those are kept; the runs still to do come from this one).
    fn record_plugin(&self, ss: &mut StageState) {
        let Ok(plugin) = self.rt.plugin(&ss.engine) else { return };
        let (version, contract) = (plugin.manifest.version.clone(), plugin.manifest.contract.clone());
        if let Some(was) = ss.plugin_version.as_ref().filter(|was| **was != version) {
            (self.on)(Event::Warning(format!(
                "stage `{}`: engine `{}` is now version {version} (contract {contract}) but its earlier runs were made by version {was}: the runs still to do may differ",
                ss.name, ss.engine
            )));
        }
        ss.plugin_version = Some(version);
        ss.plugin_contract = Some(contract);
    }

    async fn stages(&mut self, state: &mut RunState, pick_arg: &mut Option<String>) -> Result<(RunStatus, Option<String>)> {
        let total = self.r.stages.len();
        let dir_shown = self.dir.display().to_string();
        let mut prev_prompt: Option<String> = None;
        for i in 0..total {
            let s = &self.r.stages[i];
            let plan = &self.plans[i];
            let prompt = recipe::expand(&s.prompt, &self.r.vars, prev_prompt.as_deref());
            let ss = &mut state.stages[i];
            match ss.status {
                StageStatus::Done => {
                    if ss.fingerprint != s.fingerprint {
                        (self.on)(Event::Warning(format!("stage `{}` changed in the recipe after it ran; its results are kept (start a new run to redo it)", s.name)));
                    }
                    prev_prompt = Some(ss.prompt.clone());
                    (self.on)(Event::StageKept { index: i, total, name: s.name.clone() });
                    continue;
                }
                StageStatus::WaitingForPick => {
                    prev_prompt = Some(ss.prompt.clone());
                    // `--pick`, else a pick now written in the recipe (or --set STAGE.pick=N).
                    let (pick, shown) = match pick_arg.take() {
                        Some(p) => (Pick::parse(&p).map_err(|e| anyhow::anyhow!("--pick: {e}"))?, format!("--pick {p}")),
                        None if plan.pick != Pick::Ask => (plan.pick.clone(), format!("pick = {}", plan.pick)),
                        None => return Ok((RunStatus::WaitingForPick, Some(waiting_message(ss, &dir_shown)))),
                    };
                    ss.picked = resolve_pick(&pick, ss.candidates.len()).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
                    ss.status = StageStatus::Done;
                    state.save(self.dir)?;
                    (self.on)(Event::StageKept { index: i, total, name: s.name.clone() });
                    continue;
                }
                _ => {}
            }
            prev_prompt = Some(prompt.clone());
            self.record_plugin(&mut state.stages[i]);
            // The pictures of each run: source (one per picked candidate) + references.
            let sources: Vec<(String, Vec<PathBuf>)> = match self.r.source(i) {
                Source::Input => vec![(outputs::safe_stem(&self.inputs[0]), self.inputs.to_vec())],
                Source::Stage(j) => {
                    let src = &state.stages[j];
                    let base = outputs::safe_stem(&self.inputs[0]);
                    let several = src.picked.len() > 1;
                    src.picked
                        .iter()
                        .map(|k| {
                            let c = &src.candidates[*k as usize - 1];
                            (if several { format!("{base}-c{k}") } else { base.clone() }, vec![c.path.clone()])
                        })
                        .collect()
                }
            };
            let mut refs = vec![];
            for rf in &s.references {
                match rf {
                    Reference::File(f) => refs.push(f.clone()),
                    Reference::Input(None) => refs.extend(self.inputs.iter().cloned()),
                    Reference::Input(Some(k)) => refs.push(self.inputs[*k - 1].clone()),
                    Reference::Stage(name) => {
                        let j = self.r.stage_index(name).expect("validated");
                        let src = &state.stages[j];
                        refs.extend(src.picked.iter().map(|k| src.candidates[*k as usize - 1].path.clone()));
                    }
                }
            }
            let ss = &mut state.stages[i];
            ss.prompt = prompt.clone();
            ss.fingerprint = s.fingerprint.clone();
            ss.folder = self.r.folder(i);
            let folder = self.dir.join(&ss.folder);

            // Budget: what is spent plus this stage's estimate must stay within it.
            let todo: Vec<usize> = (0..sources.len()).filter(|&k| ss.runs.get(k).is_none_or(|x| x.status != "done")).collect();
            let price = self.prices.price(&s.engine, &plan.info.model);
            let estimate = cost::estimate(price.as_ref(), plan.offline, plan.video, s.n * todo.len() as u32, &plan.params);
            ss.estimate = Some(estimate.clone());
            let spent = spent(state);
            let ss = &mut state.stages[i];
            if let Some(b) = self.r.budget {
                let est = estimate.amount.unwrap_or(0.0);
                if spent + est > b + 1e-9 {
                    let msg = format!(
                        "budget: {} spent of {}; stage `{}` is estimated at {} ({}), which would exceed it. Nothing was sent for it. Raise the budget (--set budget=...) and continue with `atelier run --resume {dir_shown}`",
                        self.prices.show(spent), self.prices.show(b), s.name, self.prices.show(est), estimate.basis
                    );
                    ss.status = StageStatus::StoppedByBudget;
                    ss.error = Some(msg.clone());
                    state.save(self.dir)?;
                    (self.on)(Event::StageEnd { index: i, total, name: s.name.clone(), status: StageStatus::StoppedByBudget, millis: 0, outputs: 0 });
                    return Ok((RunStatus::StoppedByBudget, Some(msg)));
                }
            }
            ss.status = StageStatus::Running;
            ss.error = None;
            state.save(self.dir)?;
            (self.on)(Event::StageStart { index: i, total, name: s.name.clone(), engine: s.engine.clone(), runs: todo.len(), estimate, currency: self.prices.currency.clone() });
            let t = Instant::now();

            // The runs of a stage (one per picked candidate) go concurrently, at most RUNS_AT_ONCE
            // at a time: a fan-out waits on providers, not on us. Each run is recorded as it ends,
            // in its own slot (the order of candidates stays the order of sources); after a
            // failure no further run starts, and the ones under way finish and are kept.
            let mut failed: Option<String> = None;
            let mut queue: std::collections::VecDeque<(usize, String, Vec<PathBuf>)> = sources
                .iter()
                .enumerate()
                .filter(|(k, _)| !state.stages[i].runs.get(*k).is_some_and(|x| x.status == "done"))
                .map(|(k, (stem, src))| (k, stem.clone(), src.iter().chain(refs.iter()).cloned().collect()))
                .collect();
            let mut under_way = futures_util::stream::FuturesUnordered::new();
            loop {
                while failed.is_none() && under_way.len() < RUNS_AT_ONCE {
                    let Some((k, stem, pictures)) = queue.pop_front() else { break };
                    // A run that was under way when the process stopped: finish its jobs, do not resubmit.
                    let earlier = state.stages[i].runs.get(k).filter(|e| e.status == "running").map(|e| e.started_ms);
                    if earlier.is_none() {
                        set_run(&mut state.stages[i].runs, k, RunRecord::new(&stem, &pictures, "running", now_ms()));
                        state.save(self.dir)?;
                    }
                    under_way.push(self.one_run(k, stem, pictures, earlier, &prompt, &folder, i));
                }
                let Some(done) = futures_util::StreamExt::next(&mut under_way).await else { break };
                let (k, mut record, model) = done?;
                if record.status == "done" {
                    let images: Vec<(u32, u32)> = record.outputs.iter().filter(|o| o.mime.starts_with("image/")).filter_map(|o| Some((o.width?, o.height?))).collect();
                    let videos = record.outputs.iter().filter(|o| !o.mime.starts_with("image/")).count() as u32;
                    record.cost = Some(cost::actual(price.as_ref(), plan.offline, &record.usage, &images, videos, &plan.params));
                    if model.is_some() {
                        state.stages[i].model = model;
                    }
                } else if failed.is_none() {
                    failed = record.error.clone();
                }
                set_run(&mut state.stages[i].runs, k, record);
                state.save(self.dir)?;
            }
            let ss = &mut state.stages[i];
            let millis = t.elapsed().as_millis() as u64;
            if let Some(e) = failed {
                let msg = format!(
                    "stage {} `{}` failed: {e}\neverything before it is kept in {dir_shown}; fix the cause and continue with `atelier run --resume {dir_shown}` (finished work is not repeated)",
                    i + 1, s.name
                );
                ss.status = StageStatus::Failed;
                ss.error = Some(msg.clone());
                state.save(self.dir)?;
                (self.on)(Event::StageEnd { index: i, total, name: s.name.clone(), status: StageStatus::Failed, millis, outputs: 0 });
                return Ok((RunStatus::Failed, Some(msg)));
            }
            ss.candidates = ss.runs.iter().flat_map(|x| x.outputs.iter().cloned()).collect();
            if ss.model.is_none() {
                ss.model = Some(plan.info.model.clone());
            }
            let images: Vec<&OutputFile> = ss.candidates.iter().filter(|c| c.mime.starts_with("image/")).collect();
            if images.len() > 1 {
                let limits = imageio::DecodeLimits { max_pixels: self.rt.settings.limits.max_pixels, max_dimension: self.rt.settings.limits.max_dimension };
                let cells: Vec<(PathBuf, String)> = images.iter().enumerate().map(|(k, f)| (f.path.clone(), format!("#{}", k + 1))).collect();
                let path = folder.join("candidates.png");
                // Decoding blocks: off the async workers.
                ss.contact_sheet = Some(tokio::task::spawn_blocking(move || write_sheet(&path, &cells, limits)).await??);
            }
            let last = i + 1 == total;
            (self.on)(Event::StageEnd { index: i, total, name: s.name.clone(), status: StageStatus::Done, millis, outputs: ss.candidates.len() });
            match (&plan.pick, last) {
                (_, true) => {
                    ss.picked = (1..=ss.candidates.len() as u32).collect();
                    ss.status = StageStatus::Done;
                }
                (Pick::Ask, false) => {
                    ss.status = StageStatus::WaitingForPick;
                    state.save(self.dir)?;
                    if let Some(p) = pick_arg.take() {
                        // `--pick` given up front answers this stage right away.
                        let ss = &mut state.stages[i];
                        let pick = Pick::parse(&p).map_err(|e| anyhow::anyhow!("--pick: {e}"))?;
                        ss.picked = resolve_pick(&pick, ss.candidates.len()).map_err(|e| anyhow::anyhow!("--pick {p}: {e}"))?;
                        ss.status = StageStatus::Done;
                    } else {
                        return Ok((RunStatus::WaitingForPick, Some(waiting_message(&state.stages[i], &dir_shown))));
                    }
                }
                (pick, false) => match resolve_pick(pick, ss.candidates.len()) {
                    Ok(p) => {
                        ss.picked = p;
                        ss.status = StageStatus::Done;
                    }
                    Err(e) => {
                        // Some outputs failed, so the pick is beyond what exists: let the user choose.
                        (self.on)(Event::Warning(format!("stage `{}`: {e}", s.name)));
                        ss.status = StageStatus::WaitingForPick;
                        state.save(self.dir)?;
                        return Ok((RunStatus::WaitingForPick, Some(waiting_message(&state.stages[i], &dir_shown))));
                    }
                },
            }
            state.save(self.dir)?;
        }
        Ok((RunStatus::Done, None))
    }

    /// Jobs of a run that was under way when the process stopped: finish the done and pending
    /// ones (polling, never submitting) and return their files; `None` when there were none.
    /// One run of stage `i` on `pictures`: adopt the jobs of a run cut off earlier (`earlier` =
    /// its start), else edit. Returns the run's slot, its record (done or failed) and the model
    /// that answered, when the engine said.
    #[allow(clippy::too_many_arguments)]
    async fn one_run(&self, k: usize, stem: String, pictures: Vec<PathBuf>, earlier: Option<u64>, prompt: &str, folder: &Path, i: usize) -> Result<(usize, RunRecord, Option<String>)> {
        let s = &self.r.stages[i];
        let mut adopted = None;
        if let Some(started_ms) = earlier {
            adopted = self.adopt(folder, &stem, &s.engine, started_ms).await?;
            if let Some(a) = &adopted {
                if a.missing.is_empty() {
                    let files = a.files.clone();
                    let jobs = files.iter().map(|f| f.job.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
                    return Ok((k, RunRecord { jobs, outputs: files, ..RunRecord::new(&stem, &pictures, "done", started_ms) }, None));
                }
            }
        }
        let started_ms = earlier.unwrap_or_else(now_ms);
        let req = EditRequest {
            inputs: pictures.clone(),
            prompt: prompt.to_string(),
            model: s.engine.clone(),
            n: s.n,
            seed: s.seed,
            aspect: None,
            size: None,
            params: s.params.clone(),
            mask: s.mask.clone(),
            pre: s.pre.clone(),
            post: s.post.clone(),
            out_dir: folder.to_path_buf(),
            out_file: None,
            // The stage folder is the run's own; a retried run may overwrite its partial files.
            force: true,
            video: s.animate,
            // Resuming a batch cut short: send only the outputs that never reached the provider,
            // with the seeds they had in the batch.
            only: adopted.as_ref().map(|a| a.missing.clone()).unwrap_or_default(),
            decoded_inputs: Default::default(),
        };
        let req = match &adopted {
            Some(a) => EditRequest { seed: a.seed.or(req.seed), ..req },
            None => req,
        };
        Ok(match edit_named(self.rt, self.runner, &req, Some(&stem)).await {
            Ok(res) => {
                for w in &res.warnings {
                    (self.on)(Event::Warning(format!("stage `{}`: {w}", s.name)));
                }
                let (mut outputs, mut jobs) = (res.outputs, res.jobs);
                if let Some(a) = adopted {
                    jobs.extend(a.files.iter().map(|f| f.job.clone()));
                    jobs.sort();
                    jobs.dedup();
                    outputs.extend(a.files);
                    outputs.sort_by_key(|f| f.index);
                }
                let record = RunRecord {
                    outputs,
                    failures: res.failures,
                    jobs,
                    usage: res.usage,
                    millis: res.millis,
                    ..RunRecord::new(&stem, &pictures, "done", started_ms)
                };
                (k, record, Some(res.model))
            }
            Err(e) => (k, RunRecord { error: Some(format!("{e:#}")), ..RunRecord::new(&stem, &pictures, "failed", started_ms) }, None),
        })
    }

    /// The jobs a run cut off earlier left behind: finished ones collected, pending ones polled to
    /// the end (never submitted again), and which outputs of the batch never reached the provider
    /// (a job recorded but never sent — it was waiting for an in-flight slot —, or none recorded).
    /// `None` when the run left no output at all (it is then done again as a whole).
    async fn adopt(&self, folder: &Path, stem: &str, engine: &str, since_ms: u64) -> Result<Option<Adopted>> {
        let prefix = format!("{stem}-{engine}-");
        let folder = absolute(folder);
        let jobs: Vec<_> = self
            .runner
            .db
            .list(&[])?
            .into_iter()
            .filter(|j| j.plugin == engine && j.created_ms + 1000 >= since_ms)
            .filter(|j| {
                j.plan["paths"].as_array().and_then(|a| a.first()).and_then(|p| p.as_str()).is_some_and(|p| {
                    let p = Path::new(p);
                    p.parent() == Some(folder.as_path()) && p.file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with(&prefix))
                })
            })
            .collect();
        let Some(first_job) = jobs.first() else { return Ok(None) };
        let batch = first_job.plan["provenance"]["n"].as_u64().unwrap_or(0) as u32;
        let seed = first_job.plan["provenance"]["seed"].as_u64();
        let mut files = vec![];
        let mut covered = std::collections::BTreeSet::new();
        for j in &jobs {
            let first = j.plan["first_index"].as_u64().unwrap_or(1) as u32;
            let count = j.plan["paths"].as_array().map_or(1, |a| a.len()) as u32;
            let never_sent = matches!(j.state, JobState::Submitting | JobState::Queued) && j.submits == 0;
            match j.state {
                JobState::Done => match &j.outputs {
                    Some(o) => files.extend(serde_json::from_value::<Vec<OutputFile>>(o.clone()).unwrap_or_default()),
                    None => {
                        let outcome: JobOutcome = serde_json::from_value(j.outcome.clone().unwrap_or_default()).context("stored outcome")?;
                        let f = finish_job(self.rt, &j.plan, &outcome, true).await?;
                        self.runner.db.set_outputs(&j.id, &serde_json::to_value(&f)?)?;
                        files.extend(f);
                    }
                },
                JobState::Pending => {
                    let plugin = self.rt.model(&j.plugin)?;
                    let token = j.token.clone().unwrap_or_default();
                    (self.on)(Event::Warning(format!("{}: finishing a job the stopped run left pending (not submitting again)", j.id)));
                    let outcome = self.runner.wait(&plugin, &j.id, &token, Duration::from_millis(0), Instant::now()).await?;
                    let f = finish_job(self.rt, &j.plan, &outcome, true).await?;
                    self.runner.db.set_outputs(&j.id, &serde_json::to_value(&f)?)?;
                    files.extend(f);
                }
                // Recorded, but the process stopped before it was sent: nothing to bill twice.
                JobState::Submitting | JobState::Queued if never_sent => {
                    self.runner.db.set_final(&j.id, JobState::Cancelled, "never sent: the run stopped first; sent again on resume")?;
                    continue;
                }
                JobState::Submitting | JobState::Unknown if !self.resubmit_unknown => bail!(
                    "job {} was being submitted when the run stopped: the provider may have accepted (and billed) it, so it is not sent again automatically. Check `atelier jobs show {}` and the provider's dashboard; to send it again anyway, resume with --resubmit-unknown",
                    j.id, j.id
                ),
                JobState::Submitting | JobState::Unknown | JobState::Queued => {
                    self.runner.db.set_final(&j.id, JobState::Cancelled, "sent again on resume (--resubmit-unknown)")?;
                    continue;
                }
                // Answered by the provider: its failure stands (a failed run is re-run as a whole).
                JobState::Failed | JobState::Cancelled => {}
            }
            covered.extend(first..first + count);
        }
        if files.is_empty() {
            // Nothing came of it: the run is done again as a whole.
            return Ok(None);
        }
        files.sort_by_key(|f| f.index);
        let missing = (1..=batch).filter(|i| !covered.contains(i)).collect();
        Ok(Some(Adopted { files, missing, seed }))
    }
}

/// What a run cut off earlier left: its finished outputs, the 1-based outputs of its batch that
/// never reached the provider, and the batch's base seed (so those keep theirs).
struct Adopted {
    files: Vec<OutputFile>,
    missing: Vec<u32>,
    seed: Option<u64>,
}

fn set_run(runs: &mut Vec<RunRecord>, k: usize, r: RunRecord) {
    if k < runs.len() {
        runs[k] = r;
    } else {
        runs.push(r);
    }
}

/// The candidate numbers a pick selects, checked against how many there are.
pub fn resolve_pick(pick: &Pick, count: usize) -> Result<Vec<u32>, String> {
    match pick {
        Pick::All => Ok((1..=count as u32).collect()),
        Pick::Ask => Err("a pick is needed".into()),
        Pick::Indices(v) => {
            if let Some(bad) = v.iter().find(|&&k| k == 0 || k as usize > count) {
                return Err(format!("pick {bad} is beyond the {count} candidate(s) there are; choose 1 to {count}"));
            }
            Ok(v.clone())
        }
    }
}

fn waiting_message(ss: &StageState, dir: &str) -> String {
    let sheet = ss.contact_sheet.as_ref().map(|p| format!(" (contact sheet: {})", p.display())).unwrap_or_default();
    format!(
        "stage `{}` made {} candidates{sheet}; choose and continue with `atelier run --resume {dir} --pick N` (N from 1 to {}; several as 1,3, or all)",
        ss.name, ss.candidates.len(), ss.candidates.len()
    )
}

fn spent(state: &RunState) -> f64 {
    // `+ 0.0`: an empty sum is -0.0, which would show as `-0.00` (and `-0.0` in JSON).
    state.stages.iter().flat_map(|s| s.runs.iter()).filter_map(|r| r.cost.as_ref().and_then(|c| c.amount)).sum::<f64>() + 0.0
}

fn report(state: &RunState, prices: &PriceTable, r: &Recipe, dir: &Path, status: RunStatus, message: Option<String>) -> RunReport {
    let cost_incomplete = state.stages.iter().flat_map(|s| s.runs.iter()).any(|x| x.status == "done" && x.cost.as_ref().is_none_or(|c| c.amount.is_none()));
    RunReport {
        dir: dir.to_path_buf(),
        status,
        message,
        stages: state.stages.clone(),
        currency: prices.currency.clone(),
        total_cost: spent(state),
        cost_incomplete,
        budget: r.budget,
    }
}

/// A stage's contact sheet of its candidates, each decoded with the host's limits and kept only as
/// a thumbnail. The stage folder is the run's own: an earlier sheet is replaced.
fn write_sheet(path: &Path, cells: &[(PathBuf, String)], limits: imageio::DecodeLimits) -> Result<PathBuf> {
    let s = sheet::from_files(cells, limits, 256)?;
    let img = Image { width: s.width(), height: s.height(), pixels: s.into_raw() };
    outputs::write_atomic(path, &imageio::encode_png(&img, None)?)?;
    Ok(path.to_path_buf())
}

/// `runs/<recipe>-<YYYYMMDD-HHMMSS>` (UTC).
fn default_dir(recipe: &Path) -> PathBuf {
    let stem = outputs::safe_stem(recipe);
    PathBuf::from("runs").join(format!("{stem}-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S")))
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
