//! Recipes: an ordered list of `[[stage]]` tables in TOML, read with the line each setting came
//! from so every problem can be reported as `file:line`.

use crate::manifest::{toml_error_line, toml_scalar};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Keys a `[[stage]]` table may have.
pub const STAGE_KEYS: &[&str] =
    &["name", "description", "engine", "prompt", "params", "n", "pre", "post", "pick", "references", "seed", "mask", "animate", "from"];
/// Keys allowed at the top of a recipe.
const TOP_KEYS: &[&str] = &["name", "description", "budget", "vars", "stage"];
/// Stage keys whose `--set` value is always text.
const TEXT_KEYS: &[&str] = &["name", "description", "engine", "prompt", "mask", "from"];

/// How a stage's results feed the next stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    /// These candidates (1-based); several mean the next stage runs once per pick.
    Indices(Vec<u32>),
    /// Every candidate: the next stage runs on each.
    All,
    /// Stop after the contact sheet; `atelier run --resume DIR --pick N` continues.
    Ask,
}

impl Pick {
    /// Parse `3`, `1,3`, `all` or `ask` (the `--pick` option).
    pub fn parse(text: &str) -> Result<Pick, String> {
        match text.trim() {
            "all" => Ok(Pick::All),
            "ask" => Ok(Pick::Ask),
            t => {
                let v: Result<Vec<u32>, _> = t.split(',').map(|x| x.trim().parse::<u32>()).collect();
                match v {
                    Ok(v) if !v.is_empty() && v.iter().all(|&i| i >= 1) => Ok(Pick::Indices(v)),
                    _ => Err(format!("pick `{t}` is not valid; write a candidate number (1, 2, ...), several as 1,3, or all")),
                }
            }
        }
    }
}

impl std::fmt::Display for Pick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pick::Indices(v) => f.write_str(&v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
            Pick::All => f.write_str("all"),
            Pick::Ask => f.write_str("ask"),
        }
    }
}

/// Where a stage takes its source pictures from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The pictures given on the command line.
    Input,
    /// The picked results of an earlier stage (by index).
    Stage(usize),
}

/// An extra reference image of a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A file, resolved against the recipe's folder.
    File(PathBuf),
    /// Every command-line input (`@input`) or one of them (`@input:2`, 1-based).
    Input(Option<usize>),
    /// The picked results of an earlier stage (`@name`).
    Stage(String),
}

/// One stage as written (after `--set`).
#[derive(Clone, Debug)]
pub struct Stage {
    /// Its name; also its folder (`02-refine`).
    pub name: String,
    /// What it is for (shown in the summary).
    pub description: Option<String>,
    /// Model plugin id.
    pub engine: String,
    /// The prompt template (`{input}`, `{prev}`, `{var}`).
    pub prompt: String,
    /// Model parameters as text, for `params::resolve`.
    pub params: Vec<(String, String)>,
    /// Outputs per run.
    pub n: u32,
    /// Filter steps before the model.
    pub pre: Vec<String>,
    /// Filter steps after the model.
    pub post: Vec<String>,
    /// How its results feed the next stage; `None`: 1 when there is one candidate, else ask.
    pub pick: Option<Pick>,
    /// Extra reference images.
    pub references: Vec<Reference>,
    /// Base seed.
    pub seed: Option<u64>,
    /// Mask image (white = edit), resolved against the recipe's folder.
    pub mask: Option<PathBuf>,
    /// Ask for a video.
    pub animate: bool,
    /// Where its pictures come from: `None` = the previous stage (the inputs for the first).
    pub from: Option<String>,
    /// A digest of the stage's settings, to notice a finished stage that was changed later.
    pub fingerprint: String,
}

/// A problem found in a recipe, with where.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// `file:line`, or `--set KEY=VALUE`, or the input path.
    pub at: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// A parsed recipe.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// The file.
    pub path: PathBuf,
    /// Its folder: relative paths in the recipe are resolved against it.
    pub base: PathBuf,
    /// Its name (`name = ...`, else the file stem).
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Stop before a stage whose estimated cost would take the total over this.
    pub budget: Option<f64>,
    /// `[vars]` plus `--set NAME=VALUE`: what `{NAME}` in prompts becomes.
    pub vars: BTreeMap<String, String>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    lines: Lines,
    set_at: BTreeMap<String, String>,
}

/// Where each key was written.
#[derive(Clone, Debug, Default)]
struct Lines {
    top: BTreeMap<String, usize>,
    stages: Vec<(usize, BTreeMap<String, usize>)>,
}

impl Recipe {
    /// `file:line` of a stage's key (its `[[stage]]` line when the key is not written), or the
    /// `--set` that changed it.
    pub fn at(&self, stage: Option<usize>, key: &str) -> String {
        let file = self.path.display();
        let set_key = match stage {
            Some(i) => format!("{i}.{key}"),
            None => key.to_string(),
        };
        if let Some(s) = self.set_at.get(&set_key) {
            return format!("--set {s}");
        }
        match stage {
            Some(i) => match self.lines.stages.get(i) {
                Some((head, keys)) => {
                    let line = keys.get(key).or_else(|| key.split_once('.').and_then(|(k, _)| keys.get(k))).unwrap_or(head);
                    format!("{file}:{line}")
                }
                None => format!("{file}"),
            },
            None => match self.lines.top.get(key) {
                Some(l) => format!("{file}:{l}"),
                None => format!("{file}:1"),
            },
        }
    }

    /// The index of the stage named `name`.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// Where stage `i` takes its pictures from (an unknown `from` is reported by validation).
    pub fn source(&self, i: usize) -> Source {
        match &self.stages[i].from {
            Some(f) if f == "input" => Source::Input,
            Some(f) => self.stage_index(f).map(Source::Stage).unwrap_or(Source::Input),
            None if i == 0 => Source::Input,
            None => Source::Stage(i - 1),
        }
    }

    /// `01-explore`: the stage's folder in the run directory.
    pub fn folder(&self, i: usize) -> String {
        format!("{:02}-{}", i + 1, self.stages[i].name)
    }
}

/// Read and parse a recipe file, applying `--set` overrides.
pub fn load(path: &Path, sets: &[String]) -> Result<(Recipe, Vec<Problem>), Vec<Problem>> {
    // A recipe is a few KiB of TOML: read with the host's file checks and a cap far above that.
    let text = crate::imageio::read_file(path, 16 << 20, crate::imageio::FileKind::Any)
        .and_then(|b| String::from_utf8(b).map_err(|_| anyhow::anyhow!("not UTF-8 text")))
        .map_err(|e| vec![Problem { at: path.display().to_string(), message: format!("cannot read the recipe: {e:#}") }])?;
    parse_lenient(&text, path, sets)
}

/// Parse recipe text (`path` is for messages and relative paths); every problem is returned.
pub fn parse(text: &str, path: &Path, sets: &[String]) -> Result<Recipe, Vec<Problem>> {
    match parse_lenient(text, path, sets) {
        Ok((r, problems)) if problems.is_empty() => Ok(r),
        Ok((_, problems)) | Err(problems) => Err(problems),
    }
}

/// Parse as much as can be parsed: the recipe (with defaults where a setting is bad) and its
/// problems, so validation against the engines can report its own problems alongside. `Err`
/// only when the text is not TOML at all.
pub fn parse_lenient(text: &str, path: &Path, sets: &[String]) -> Result<(Recipe, Vec<Problem>), Vec<Problem>> {
    let file = path.display().to_string();
    let mut doc: toml::Table = text.parse::<toml::Table>().map_err(|e| {
        let (line, msg) = toml_error_line(text, &e);
        vec![Problem { at: format!("{file}{line}"), message: msg }]
    })?;
    let mut problems = vec![];
    let set_at = apply_sets(&mut doc, sets, &mut problems);
    let base = std::path::absolute(path).ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_else(|| PathBuf::from("."));
    let mut r = Recipe {
        path: path.to_path_buf(),
        base,
        name: path.file_stem().and_then(|s| s.to_str()).unwrap_or("recipe").to_string(),
        description: None,
        budget: None,
        vars: BTreeMap::new(),
        stages: vec![],
        lines: scan_lines(text),
        set_at,
    };
    let mut bad = |r: &Recipe, stage: Option<usize>, key: &str, message: String| problems.push(Problem { at: r.at(stage, key), message });

    for (k, v) in &doc {
        if !TOP_KEYS.contains(&k.as_str()) {
            bad(&r, None, k, format!("unknown key `{k}`; a recipe takes {} at the top and [[stage]] tables", TOP_KEYS.join(", ")));
            continue;
        }
        match (k.as_str(), v) {
            ("name", toml::Value::String(s)) => r.name = s.clone(),
            ("description", toml::Value::String(s)) => r.description = Some(s.clone()),
            ("budget", toml::Value::Float(f)) if *f >= 0.0 => r.budget = Some(*f),
            ("budget", toml::Value::Integer(i)) if *i >= 0 => r.budget = Some(*i as f64),
            ("budget", _) => bad(&r, None, k, "budget must be a number ≥ 0, in the currency of the [prices] table (e.g. budget = 5.00)".into()),
            ("vars", toml::Value::Table(t)) => {
                for (name, v) in t {
                    if v.is_table() || v.is_array() {
                        bad(&r, None, &format!("vars.{name}"), format!("vars.{name} must be text or a number"));
                    } else {
                        r.vars.insert(name.clone(), toml_scalar(v));
                    }
                }
            }
            ("stage", _) => {}
            (k, _) => bad(&r, None, k, format!("`{k}` has the wrong type")),
        }
    }
    let stages: Vec<toml::Table> = match doc.get("stage") {
        None => vec![],
        Some(toml::Value::Array(a)) => {
            let mut out = vec![];
            for v in a {
                match v {
                    toml::Value::Table(t) => out.push(t.clone()),
                    _ => bad(&r, None, "stage", "`stage` must be written as [[stage]] tables".into()),
                }
            }
            out
        }
        Some(_) => {
            bad(&r, None, "stage", "`stage` must be written as [[stage]] tables".into());
            vec![]
        }
    };
    if stages.is_empty() {
        problems.push(Problem {
            at: format!("{file}:1"),
            message: "the recipe has no stages; add at least one [[stage]] with engine = \"...\" and prompt = \"...\"".into(),
        });
    }
    for (i, t) in stages.iter().enumerate() {
        let stage = parse_stage(&r, i, t, &mut problems);
        r.stages.push(stage);
    }
    // Names must be unique: they are folders and `from`/`@name` targets.
    for i in 0..r.stages.len() {
        if let Some(j) = (0..i).find(|&j| r.stages[j].name == r.stages[i].name) {
            problems.push(Problem {
                at: r.at(Some(i), "name"),
                message: format!("two stages are named `{}` (the other is stage {}); give each a different name", r.stages[i].name, j + 1),
            });
        }
    }
    // Prompt placeholders must all have a value.
    for i in 0..r.stages.len() {
        for name in placeholders(&r.stages[i].prompt) {
            let message = match name.as_str() {
                "prev" if i == 0 => Some("{prev} is the previous stage's prompt, but this is the first stage".to_string()),
                "prev" => None,
                n if r.vars.contains_key(n) => None,
                n => Some(format!("the prompt uses {{{n}}} but it has no value; add it under [vars] ({n} = \"...\") or pass --set {n}=...")),
            };
            if let Some(m) = message {
                problems.push(Problem { at: r.at(Some(i), "prompt"), message: m });
            }
        }
    }
    Ok((r, problems))
}

/// Order problems by line (those without a line keep their place at the end).
pub fn sort_problems(problems: &mut [Problem]) {
    let line = |p: &Problem| p.at.rsplit(':').next().and_then(|l| l.parse::<usize>().ok()).unwrap_or(usize::MAX);
    problems.sort_by_key(line);
}

fn parse_stage(r: &Recipe, i: usize, t: &toml::Table, problems: &mut Vec<Problem>) -> Stage {
    let mut bad = |key: &str, message: String| problems.push(Problem { at: r.at(Some(i), key), message });
    let n1 = i + 1;
    for k in t.keys() {
        if !STAGE_KEYS.contains(&k.as_str()) {
            bad(k, format!("stage {n1}: unknown key `{k}`; a stage takes {}", STAGE_KEYS.join(", ")));
        }
    }
    let text = |key: &str, bad: &mut dyn FnMut(&str, String)| -> Option<String> {
        match t.get(key) {
            None => None,
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                bad(key, format!("stage {n1}: `{key}` must be text (in quotes)"));
                None
            }
        }
    };
    let list = |key: &str, bad: &mut dyn FnMut(&str, String)| -> Vec<String> {
        match t.get(key) {
            None => vec![],
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) if a.iter().all(|v| v.is_str()) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            Some(_) => {
                bad(key, format!("stage {n1}: `{key}` must be a list of text, e.g. {key} = [\"...\"]"));
                vec![]
            }
        }
    };
    let name = text("name", &mut bad).unwrap_or_else(|| format!("stage{n1}"));
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') || name == "input" {
        bad("name", format!("stage name `{name}` must be letters, digits, - or _ (it becomes a folder name) and not `input`"));
    }
    let engine = text("engine", &mut bad).unwrap_or_default();
    if !t.contains_key("engine") {
        bad("engine", format!("stage {n1} (`{name}`) has no engine; add engine = \"...\" (see `atelier models`)"));
    }
    let prompt = text("prompt", &mut bad).unwrap_or_default();
    if !t.contains_key("prompt") {
        bad("prompt", format!("stage {n1} (`{name}`) has no prompt; add prompt = \"...\""));
    }
    let mut params = vec![];
    match t.get("params") {
        None => {}
        Some(toml::Value::Table(p)) => {
            for (k, v) in p {
                if v.is_table() || v.is_array() {
                    bad(&format!("params.{k}"), format!("stage {n1}: params.{k} must be a plain value (text, number, true/false)"));
                } else {
                    params.push((k.clone(), toml_scalar(v)));
                }
            }
        }
        Some(_) => bad("params", format!("stage {n1}: `params` must be a table, e.g. params = {{ size = \"2K\" }}")),
    }
    let n = match t.get("n") {
        None => 1,
        Some(toml::Value::Integer(v)) if (1..=64).contains(v) => *v as u32,
        Some(_) => {
            bad("n", format!("stage {n1}: n must be a whole number from 1 to 64"));
            1
        }
    };
    let pick = match t.get("pick") {
        None => None,
        Some(toml::Value::Integer(v)) if *v >= 1 => Some(Pick::Indices(vec![*v as u32])),
        Some(toml::Value::Array(a)) if !a.is_empty() && a.iter().all(|v| v.as_integer().is_some_and(|i| i >= 1)) => {
            Some(Pick::Indices(a.iter().filter_map(|v| v.as_integer()).map(|i| i as u32).collect()))
        }
        Some(toml::Value::String(s)) if s == "all" => Some(Pick::All),
        Some(toml::Value::String(s)) if s == "ask" => Some(Pick::Ask),
        Some(v) => {
            bad("pick", format!("stage {n1}: pick = {v} is not valid; write a candidate number (pick = 1), a list (pick = [1, 3]), \"all\" or \"ask\""));
            None
        }
    };
    let seed = match t.get("seed") {
        None => None,
        Some(toml::Value::Integer(v)) if *v >= 0 => Some(*v as u64),
        Some(_) => {
            bad("seed", format!("stage {n1}: seed must be a whole number ≥ 0"));
            None
        }
    };
    let animate = match t.get("animate") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => {
            bad("animate", format!("stage {n1}: animate must be true or false"));
            false
        }
    };
    let references = list("references", &mut bad)
        .into_iter()
        .filter_map(|s| match s.strip_prefix('@') {
            Some("input") => Some(Reference::Input(None)),
            Some(rest) if rest.starts_with("input:") => match rest["input:".len()..].parse::<usize>() {
                Ok(k) if k >= 1 => Some(Reference::Input(Some(k))),
                _ => {
                    bad("references", format!("stage {n1}: `{s}`: write @input (all inputs) or @input:N (the Nth, from 1)"));
                    None
                }
            },
            Some(stage) => Some(Reference::Stage(stage.to_string())),
            None => Some(Reference::File(r.base.join(&s))),
        })
        .collect();
    let mask = text("mask", &mut bad).map(|m| r.base.join(m));
    let fingerprint = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(toml::to_string(t).unwrap_or_default().as_bytes()))
    };
    Stage {
        name,
        description: text("description", &mut bad),
        engine,
        prompt,
        params,
        n,
        pre: list("pre", &mut bad),
        post: list("post", &mut bad),
        pick,
        references,
        seed,
        mask,
        animate,
        from: text("from", &mut bad),
        fingerprint,
    }
}

/// Apply `--set KEY=VALUE` to the document. KEY is `STAGE.key[.sub]` (STAGE = a stage's name,
/// `stageN` or `N`), `budget`/`name`, `vars.NAME`, or a bare `NAME` (a prompt variable).
/// Returns, per changed key, the `--set` text (for messages).
fn apply_sets(doc: &mut toml::Table, sets: &[String], problems: &mut Vec<Problem>) -> BTreeMap<String, String> {
    let mut at = BTreeMap::new();
    for s in sets {
        let Some((key, value)) = s.split_once('=') else {
            problems.push(Problem { at: format!("--set {s}"), message: "write --set STAGE.KEY=VALUE (or NAME=VALUE for a prompt variable)".into() });
            continue;
        };
        let key = key.trim();
        let parts: Vec<&str> = key.split('.').collect();
        let stage_names: Vec<String> = doc
            .get("stage")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|t| t.get("name").and_then(|n| n.as_str()).unwrap_or("").to_string()).collect())
            .unwrap_or_default();
        let stage_index = |first: &str| -> Option<usize> {
            stage_names.iter().position(|n| n == first).or_else(|| {
                let digits = first.strip_prefix("stage").unwrap_or(first);
                digits.parse::<usize>().ok().filter(|&k| k >= 1 && k <= stage_names.len()).map(|k| k - 1)
            })
        };
        if parts.len() >= 2 && parts[0] != "vars" {
            let Some(i) = stage_index(parts[0]) else {
                problems.push(Problem {
                    at: format!("--set {s}"),
                    message: format!("no stage named `{}`; stages: {} (or stage1, stage2, ...)", parts[0], stage_names.join(", ")),
                });
                continue;
            };
            let is_text = parts.len() == 2 && TEXT_KEYS.contains(&parts[1]);
            let v = if is_text { toml::Value::String(value.to_string()) } else { guess_value(value) };
            let table = doc.get_mut("stage").and_then(|v| v.as_array_mut()).and_then(|a| a.get_mut(i)).and_then(|t| t.as_table_mut());
            if let Some(t) = table {
                insert_path(t, &parts[1..], v);
            }
            at.insert(format!("{i}.{}", parts[1..].join(".")), s.clone());
        } else {
            let (top, v) = match parts.as_slice() {
                ["budget"] => ("budget", guess_value(value)),
                ["name"] | ["description"] => (parts[0], toml::Value::String(value.to_string())),
                _ => ("vars", toml::Value::String(value.to_string())),
            };
            if top == "vars" {
                let name = parts.last().copied().unwrap_or_default();
                let vars = doc.entry("vars").or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let Some(t) = vars.as_table_mut() {
                    t.insert(name.to_string(), v);
                }
                at.insert(format!("vars.{name}"), s.clone());
            } else {
                doc.insert(top.to_string(), v);
                at.insert(top.to_string(), s.clone());
            }
        }
    }
    at
}

fn insert_path(t: &mut toml::Table, path: &[&str], v: toml::Value) {
    if path.len() == 1 {
        t.insert(path[0].to_string(), v);
        return;
    }
    let sub = t.entry(path[0].to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !sub.is_table() {
        *sub = toml::Value::Table(toml::Table::new());
    }
    if let Some(sub) = sub.as_table_mut() {
        insert_path(sub, &path[1..], v);
    }
}

/// `4` → integer, `0.5` → float, `true` → boolean, `[1,3]` → array, anything else → text.
fn guess_value(text: &str) -> toml::Value {
    match format!("v = {text}").parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(text.to_string())),
        Err(_) => toml::Value::String(text.to_string()),
    }
}

/// The names inside `{...}` in a prompt (`{{` and `}}` are literal braces).
pub fn placeholders(template: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        if rest[i..].starts_with("{{") {
            rest = &rest[i + 2..];
            continue;
        }
        match rest[i + 1..].find('}') {
            Some(j) => {
                out.push(rest[i + 1..i + 1 + j].trim().to_string());
                rest = &rest[i + 2 + j..];
            }
            None => break,
        }
    }
    out
}

/// Fill a prompt template: `{NAME}` from `vars`, `{prev}` with the previous stage's prompt.
pub fn expand(template: &str, vars: &BTreeMap<String, String>, prev: Option<&str>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(after) = tail.strip_prefix('}') {
            out.push('}');
            rest = after;
            continue;
        }
        match tail[1..].find('}') {
            Some(j) => {
                let name = tail[1..1 + j].trim();
                match (name, prev) {
                    ("prev", Some(p)) => out.push_str(p),
                    _ => out.push_str(vars.get(name).map(String::as_str).unwrap_or("")),
                }
                rest = &tail[2 + j..];
            }
            None => {
                out.push_str(tail);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Record the line of every key: top-level keys, `[[stage]]` headers and the keys inside each
/// stage (including `[stage.params]` sub-tables as `params.KEY`).
fn scan_lines(text: &str) -> Lines {
    enum Ctx {
        Top,
        Stage(usize, String),
        Other(String),
    }
    let mut lines = Lines::default();
    let mut ctx = Ctx::Top;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(h) = l.strip_prefix("[[") {
            let name = h.split("]]").next().unwrap_or("").trim();
            if name == "stage" {
                lines.stages.push((n, BTreeMap::new()));
                ctx = Ctx::Stage(lines.stages.len() - 1, String::new());
            } else {
                ctx = Ctx::Other(format!("{name}."));
            }
            continue;
        }
        if let Some(h) = l.strip_prefix('[') {
            let name = h.split(']').next().unwrap_or("").trim().to_string();
            match name.strip_prefix("stage.") {
                Some(sub) if !lines.stages.is_empty() => {
                    let k = lines.stages.len() - 1;
                    lines.stages[k].1.entry(sub.to_string()).or_insert(n);
                    ctx = Ctx::Stage(k, format!("{sub}."));
                }
                _ => {
                    lines.top.entry(name.clone()).or_insert(n);
                    ctx = Ctx::Other(format!("{name}."));
                }
            }
            continue;
        }
        let Some((k, _)) = l.split_once('=') else { continue };
        let k = k.trim().trim_matches('"').trim_matches('\'');
        if k.is_empty() || k.contains(char::is_whitespace) {
            continue;
        }
        match &ctx {
            Ctx::Top => {
                lines.top.entry(k.to_string()).or_insert(n);
            }
            Ctx::Stage(s, prefix) => {
                lines.stages[*s].1.entry(format!("{prefix}{k}")).or_insert(n);
            }
            Ctx::Other(prefix) => {
                lines.top.entry(format!("{prefix}{k}")).or_insert(n);
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"# a recipe
name = "demo"
budget = 2.5

[vars]
input = "a cup"

[[stage]]
name = "explore"
engine = "seedream"
prompt = "poster of {input}"
n = 4
pick = "ask"
params = { size = "2K" }

[[stage]]
name = "refine"
engine = "nano-banana"
prompt = "{prev}, sharper"
references = ["@input", "style.png"]

[stage.params]
aspect = "16:9"
"#;

    #[test]
    fn parses_stages_and_lines() {
        let r = parse(GOOD, Path::new("r.toml"), &[]).unwrap();
        assert_eq!(r.stages.len(), 2);
        assert_eq!(r.budget, Some(2.5));
        assert_eq!(r.stages[0].pick, Some(Pick::Ask));
        assert_eq!(r.stages[1].params, vec![("aspect".to_string(), "16:9".to_string())]);
        assert_eq!(r.at(Some(0), "n"), "r.toml:12");
        assert_eq!(r.at(Some(1), "params.aspect"), "r.toml:23");
        assert_eq!(r.at(Some(1), "seed"), "r.toml:16");
        assert_eq!(r.source(1), Source::Stage(0));
        assert_eq!(r.stages[1].references[0], Reference::Input(None));
        let p = expand(&r.stages[0].prompt, &r.vars, None);
        assert_eq!(p, "poster of a cup");
        assert_eq!(expand("{prev}, {{x}}", &r.vars, Some(&p)), "poster of a cup, {x}");
    }

    #[test]
    fn set_overrides_by_name_index_and_var() {
        let sets = vec!["explore.n=2".to_string(), "stage2.prompt=plain [x]".to_string(), "input=a cat".to_string(), "refine.params.aspect=1:1".into()];
        let r = parse(GOOD, Path::new("r.toml"), &sets).unwrap();
        assert_eq!(r.stages[0].n, 2);
        assert_eq!(r.stages[1].prompt, "plain [x]");
        assert_eq!(r.vars["input"], "a cat");
        assert_eq!(r.stages[1].params, vec![("aspect".to_string(), "1:1".to_string())]);
        assert_eq!(r.at(Some(0), "n"), "--set explore.n=2");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let bad = "[[stage]]\nengine = \"a\"\nprompt = \"{nope}\"\ncolour = 1\nn = 0\n\n[[stage]]\nname = \"x y\"\nprompt = \"{prev}\"\npick = \"some\"\n";
        let e = parse(bad, Path::new("b.toml"), &[]).unwrap_err();
        let text: Vec<String> = e.iter().map(|p| p.to_string()).collect();
        let all = text.join("\n");
        for want in ["b.toml:4: stage 1: unknown key `colour`", "b.toml:5: stage 1: n must", "b.toml:10: stage 2: pick", "b.toml:8: stage name", "b.toml:7: stage 2 (`x y`) has no engine", "b.toml:3: the prompt uses {nope}"] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
        let e = parse("name = \"x\"\n", Path::new("e.toml"), &[]).unwrap_err();
        assert!(e[0].message.contains("no stages"), "{:?}", e);
    }
}
