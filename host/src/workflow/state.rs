//! `run.json` in a run's folder: what was asked (recipe, inputs, `--set`) and how far each stage
//! got, written after every stage run so `atelier run --resume DIR` never repeats finished work.

use super::cost::Cost;
use crate::pipeline::outputs::{self, OutputFile};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file name in the run folder.
pub const FILE: &str = "run.json";

/// A whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    /// Format version.
    pub version: u32,
    /// The recipe file.
    pub recipe: PathBuf,
    /// SHA-256 of the recipe text the run started with.
    pub recipe_sha256: String,
    /// That text, so a run can be resumed when the file moved.
    pub recipe_text: String,
    /// `--set` overrides, in order (later ones win).
    pub sets: Vec<String>,
    /// The command-line inputs.
    pub inputs: Vec<InputRecord>,
    /// Unix ms.
    pub started_ms: u64,
    /// Unix ms.
    pub updated_ms: u64,
    /// One per recipe stage.
    pub stages: Vec<StageState>,
}

/// An input picture and its hash when the run started.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputRecord {
    /// Absolute path.
    pub path: PathBuf,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// Where a stage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Not started.
    Pending,
    /// Some runs done, or under way when the process stopped.
    Running,
    /// Finished; its picks are known.
    Done,
    /// Finished; waiting for `--resume DIR --pick N`.
    WaitingForPick,
    /// A run failed; `--resume` retries the runs that did not finish.
    Failed,
    /// Not started because its estimate would exceed the budget.
    StoppedByBudget,
}

/// One stage's progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageState {
    /// Stage name.
    pub name: String,
    /// Engine id.
    pub engine: String,
    /// Its folder (`02-refine`), inside the run folder.
    pub folder: String,
    /// Where it is.
    pub status: StageStatus,
    /// Digest of its recipe settings when it ran.
    pub fingerprint: String,
    /// The prompt as sent (placeholders filled).
    pub prompt: String,
    /// Provider model id (once known).
    pub model: Option<String>,
    /// The engine plugin's version when the stage ran (so a resume can say it changed since).
    #[serde(default)]
    pub plugin_version: Option<String>,
    /// The engine plugin's contract version when the stage ran.
    #[serde(default)]
    pub plugin_contract: Option<String>,
    /// One per source picture (several when the stage before fanned out).
    pub runs: Vec<RunRecord>,
    /// Every output of every run, numbered 1.. in this order (what `pick` counts).
    pub candidates: Vec<OutputFile>,
    /// The picked candidate numbers (1-based).
    pub picked: Vec<u32>,
    /// A contact sheet of the candidates, when there are several images.
    pub contact_sheet: Option<PathBuf>,
    /// Estimated cost before it ran.
    pub estimate: Option<Cost>,
    /// Why it failed or stopped.
    pub error: Option<String>,
}

/// One `edit` call of a stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// Output name stem (`coffee`, `coffee-c2`).
    pub stem: String,
    /// The pictures sent: source first, then references.
    pub inputs: Vec<PathBuf>,
    /// `running` (or the process stopped), `done`, `failed`.
    pub status: String,
    /// Files written.
    pub outputs: Vec<OutputFile>,
    /// Outputs that failed while others succeeded.
    pub failures: Vec<String>,
    /// Jobs.
    pub jobs: Vec<String>,
    /// Usage per job as reported.
    pub usage: Vec<serde_json::Value>,
    /// Wall time, ms.
    pub millis: u64,
    /// Cost from the usage.
    pub cost: Option<Cost>,
    /// Unix ms when it started (to find its jobs after a crash).
    pub started_ms: u64,
    /// The error, when failed.
    pub error: Option<String>,
}

impl RunRecord {
    /// A run of a stage on `inputs` that started now (or at `started_ms`), with nothing produced yet.
    pub fn new(stem: &str, inputs: &[PathBuf], status: &str, started_ms: u64) -> RunRecord {
        RunRecord {
            stem: stem.to_string(),
            inputs: inputs.to_vec(),
            status: status.into(),
            outputs: vec![],
            failures: vec![],
            jobs: vec![],
            usage: vec![],
            millis: 0,
            cost: None,
            started_ms,
            error: None,
        }
    }
}

impl RunState {
    /// Read `DIR/run.json`.
    pub fn load(dir: &Path) -> Result<RunState> {
        let p = dir.join(FILE);
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("{}: no run here to resume (run.json is missing); start one with `atelier run RECIPE INPUT... -o DIR`", dir.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: unreadable run state", p.display()))
    }

    /// Write `DIR/run.json` atomically.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        self.updated_ms = crate::jobs::db::now_ms();
        outputs::write_atomic(&dir.join(FILE), serde_json::to_string_pretty(self)?.as_bytes())
    }
}
