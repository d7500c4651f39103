//! Everything about a recipe that can be checked before anything runs, against the installed
//! engines' `describe()`: engines, parameters, reference counts, picks, sources and cycles,
//! filter steps, files, secrets and prices. All problems are returned at once.

use super::cost::PriceTable;
use super::recipe::{Pick, Problem, Recipe, Reference, Source};
use crate::pipeline::edit::{EditRequest, check_request};
use crate::types;
use crate::pipeline::steps::Catalog;
use crate::plugin::Plugin;
use crate::runtime::Runtime;
use crate::types::Param;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A stage checked against its engine.
#[derive(Clone)]
pub struct StagePlan {
    /// The engine.
    pub plugin: Arc<Plugin>,
    /// What it said in `describe()`.
    pub info: types::ModelInfo,
    /// Parameters resolved (defaults filled), for estimates.
    pub params: Vec<Param>,
    /// Whether it makes a video.
    pub video: bool,
    /// No network access: costs nothing.
    pub offline: bool,
    /// The pick in force (`pick` as written, else 1 for a single candidate, else ask).
    pub pick: Pick,
    /// Candidates expected when every output succeeds.
    pub candidates: u32,
}

/// Check the recipe and the inputs; the plans, or every problem found.
pub async fn validate(rt: &Runtime, r: &Recipe, inputs: &[PathBuf], prices: &PriceTable) -> Result<Vec<StagePlan>, Vec<Problem>> {
    let mut problems: Vec<Problem> = vec![];
    let mut p = |at: String, message: String| problems.push(Problem { at, message });
    if inputs.is_empty() {
        p("command line".into(), "give at least one input picture: atelier run RECIPE INPUT...".into());
    }
    // Each file is checked the way it will be read (a regular picture file within
    // `[limits] max_input_mb`), before anything runs.
    let max_bytes = crate::imageio::max_input_bytes(rt.settings.limits.max_input_mb);
    let unfit = |f: &Path| crate::imageio::check_file(f, max_bytes, crate::imageio::FileKind::Image).err().map(|e| format!("{e:#}"));
    for i in inputs {
        if !i.exists() {
            p(i.display().to_string(), "input picture not found".into());
        } else if let Some(e) = unfit(i) {
            p(i.display().to_string(), e);
        }
    }
    let needs_catalog = r.stages.iter().any(|s| !s.pre.is_empty() || !s.post.is_empty());
    let catalog = if needs_catalog {
        match Catalog::load(rt).await {
            Ok(c) => Some(c),
            Err(e) => {
                p(r.at(None, "stage"), format!("cannot load the filter plugins for pre/post steps: {e:#}"));
                None
            }
        }
    } else {
        None
    };

    // Static sizes: how many runs and candidates each stage has, and the pick in force.
    let mut candidates: Vec<u32> = vec![];
    let mut picks: Vec<Pick> = vec![];
    let mut runs: Vec<u32> = vec![];
    let selected = |k: usize, picks: &[Pick], candidates: &[u32]| -> u32 {
        match &picks[k] {
            Pick::Indices(v) => v.len() as u32,
            Pick::All => candidates[k],
            Pick::Ask => 1,
        }
    };
    for (i, s) in r.stages.iter().enumerate() {
        // Sources: only earlier stages, never itself (that would be a cycle).
        if let Some(f) = &s.from
            && f != "input"
        {
            match r.stage_index(f) {
                None => p(r.at(Some(i), "from"), format!("from = \"{f}\": no stage has that name; stages: {} (or \"input\" for the command-line pictures)", names(r))),
                Some(j) if j == i => p(r.at(Some(i), "from"), format!("stage `{}` takes its pictures from itself: a cycle", s.name)),
                Some(j) if j > i => p(
                    r.at(Some(i), "from"),
                    format!("stage `{}` takes its pictures from `{f}`, which runs after it (stage {}): stages run in order, so this is a cycle; move `{f}` before it", s.name, j + 1),
                ),
                _ => {}
            }
        }
        for rf in &s.references {
            match rf {
                Reference::Stage(name) => match r.stage_index(name) {
                    None => p(r.at(Some(i), "references"), format!("references: @{name}: no stage has that name; stages: {}", names(r))),
                    Some(j) if j >= i => p(r.at(Some(i), "references"), format!("references: @{name} is not an earlier stage (stage {}); a stage can only use results of stages before it", j + 1)),
                    _ => {}
                },
                Reference::Input(Some(k)) if *k > inputs.len() => {
                    p(r.at(Some(i), "references"), format!("references: @input:{k}, but {} input picture(s) were given", inputs.len()))
                }
                Reference::File(f) if !f.exists() => {
                    p(r.at(Some(i), "references"), format!("reference image {} not found (paths are relative to the recipe's folder)", f.display()))
                }
                Reference::File(f) => {
                    if let Some(e) = unfit(f) {
                        p(r.at(Some(i), "references"), format!("references: {e}"));
                    }
                }
                _ => {}
            }
        }
        if let Some(m) = &s.mask {
            if !m.exists() {
                p(r.at(Some(i), "mask"), format!("mask {} not found (paths are relative to the recipe's folder)", m.display()));
            } else if let Some(e) = unfit(m) {
                p(r.at(Some(i), "mask"), format!("mask: {e}"));
            }
        }
        let n_runs = match r.source(i) {
            Source::Input => 1,
            Source::Stage(j) if j < i => selected(j, &picks, &candidates),
            Source::Stage(_) => 1,
        };
        let c = n_runs * s.n;
        let pick = s.pick.clone().unwrap_or(if c == 1 { Pick::Indices(vec![1]) } else { Pick::Ask });
        if let Pick::Indices(v) = &pick {
            for k in v {
                if *k > c {
                    p(
                        r.at(Some(i), "pick"),
                        format!("pick = {k}, but stage `{}` makes {c} candidate(s) (n = {}{}); pick 1 to {c}, \"all\" or \"ask\"", s.name, s.n,
                            if n_runs > 1 { format!(" × {n_runs} runs") } else { String::new() }),
                    );
                }
            }
        }
        runs.push(n_runs);
        candidates.push(c);
        picks.push(pick);
    }

    // Engines: describe, parameters, counts, secrets, prices; then filter steps.
    let mut plans: Vec<Option<StagePlan>> = vec![];
    let mut is_video: Vec<bool> = vec![];
    for (i, s) in r.stages.iter().enumerate() {
        let plugin = match rt.model(&s.engine) {
            Ok(pl) => pl,
            Err(e) => {
                if !s.engine.is_empty() {
                    p(r.at(Some(i), "engine"), format!("{e:#}"));
                }
                plans.push(None);
                is_video.push(false);
                continue;
            }
        };
        let info = match plugin.describe_model().await {
            Ok(x) => x,
            Err(e) => {
                p(r.at(Some(i), "engine"), format!("engine `{}` could not describe itself: {e:#}", s.engine));
                plans.push(None);
                is_video.push(false);
                continue;
            }
        };
        let video = s.animate || info.default_output() == types::OutputKind::Video;
        is_video.push(video);
        // The pictures one run sends: its source (all inputs for an input-fed stage) + references.
        let source_count = match r.source(i) {
            Source::Input => inputs.len().max(1),
            Source::Stage(_) => 1,
        };
        let ref_count: usize = s
            .references
            .iter()
            .map(|rf| match rf {
                Reference::File(_) | Reference::Input(Some(_)) => 1,
                Reference::Input(None) => inputs.len(),
                Reference::Stage(name) => r.stage_index(name).filter(|&j| j < i).map(|j| selected(j, &picks, &candidates) as usize).unwrap_or(1),
            })
            .sum();
        // Each parameter on its own first, so every bad one is reported (not just the first);
        // the good ones then go through the host's full request check.
        let mut good = vec![];
        for (k, v) in &s.params {
            let what = format!("model `{}`", s.engine);
            let problem = match info.params.iter().find(|spec| spec.name == *k) {
                // A typed field (aspect, size, output): the request check below holds it to the model's lists.
                None if crate::pipeline::edit::is_typed_field(&info, k) => None,
                None => Some(format!(
                    "{what} has no parameter `{k}`; it takes: {}",
                    info.params.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")
                )),
                // An image parameter's file is checked before `convert` reads it.
                Some(spec) => crate::pipeline::edit::check_media_params(std::slice::from_ref(spec), &[(k.clone(), v.clone())], max_bytes)
                    .and_then(|()| crate::params::convert(&what, spec, v).map(drop))
                    .err()
                    .map(|e| format!("{e:#}")),
            };
            match problem {
                Some(m) => p(r.at(Some(i), &format!("params.{k}")), format!("stage `{}`: {m}", s.name)),
                None => good.push((k.clone(), v.clone())),
            }
        }
        let req = EditRequest {
            inputs: vec![PathBuf::new(); source_count + ref_count],
            prompt: s.prompt.clone(),
            model: s.engine.clone(),
            n: s.n,
            seed: s.seed,
            params: good,
            mask: s.mask.clone(),
            video,
            ..Default::default()
        };
        let params = match check_request(&plugin, &info, &req) {
            Ok(params) => params,
            Err(e) => {
                for line in format!("{e:#}").lines() {
                    let key: String = if line.contains("reference") {
                        "references".into()
                    } else if line.contains("mask") {
                        "mask".into()
                    } else if line.contains("outputs") {
                        "n".into()
                    } else if line.contains("videos") {
                        "animate".into()
                    } else {
                        // Point at the parameter the message names (its own line, or its --set).
                        match s.params.iter().find(|(k, _)| line.contains(&format!("{k}=")) || line.contains(&format!("`{k}`"))) {
                            Some((k, _)) => format!("params.{k}"),
                            None => "params".into(),
                        }
                    };
                    p(r.at(Some(i), &key), format!("stage `{}`: {line}", s.name));
                }
                vec![]
            }
        };
        for name in plugin.grants.missing_secrets() {
            p(r.at(Some(i), "engine"), format!("stage `{}`: {}", s.name, plugin.grants.missing_secret_message(&name)));
        }
        let offline = plugin.manifest.hosts.is_empty();
        if r.budget.is_some() && !offline && prices.price(&s.engine, &info.model).is_none() {
            p(
                r.at(Some(i), "engine"),
                format!(
                    "the recipe has a budget but there is no price for `{}` (model {}); add it to atelier.toml, e.g.\n    [prices.{}]\n    {} = ...",
                    s.engine, info.model, s.engine, if video { "per_video_second" } else { "per_image" }
                ),
            );
        }
        if let Some(c) = &catalog {
            for (key, steps) in [("pre", &s.pre), ("post", &s.post)] {
                for step in steps {
                    if let Err(e) = c.parse(step) {
                        p(r.at(Some(i), key), format!("stage `{}`: {e:#}", s.name));
                    }
                }
            }
        }
        if video && !s.post.is_empty() {
            p(r.at(Some(i), "post"), format!("stage `{}` makes a video; post steps apply to images only", s.name));
        }
        plans.push(Some(StagePlan { plugin, info, params, video, offline, pick: picks[i].clone(), candidates: candidates[i] }));
    }
    // Videos cannot feed a later stage.
    for (i, _) in r.stages.iter().enumerate() {
        if let Source::Stage(j) = r.source(i)
            && j < i
            && is_video[j]
        {
            p(r.at(Some(i), if r.stages[i].from.is_some() { "from" } else { "engine" }),
                format!("stage `{}` would take the video made by `{}`; engines take pictures: make the video the last stage, or use from = \"...\" to take an earlier stage's pictures", r.stages[i].name, r.stages[j].name));
        }
        for rf in &r.stages[i].references {
            if let Reference::Stage(name) = rf
                && let Some(j) = r.stage_index(name).filter(|&j| j < i && is_video[j])
            {
                p(r.at(Some(i), "references"), format!("references: @{name} makes videos; a reference must be a picture (stage {})", j + 1));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(plans.into_iter().map(|x| x.expect("every stage has a plan when there are no problems")).collect())
}

fn names(r: &Recipe) -> String {
    r.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
}
