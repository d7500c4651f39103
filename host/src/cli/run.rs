//! `atelier run RECIPE INPUT...` and `atelier rerun OUTPUT.json`: being written (workflows).

use super::Cli;
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct RunArgs {
    /// The recipe (TOML).
    recipe: PathBuf,
    /// Source images.
    inputs: Vec<PathBuf>,
}

#[derive(Args)]
pub struct RerunArgs {
    /// An output's provenance sidecar (`NAME.json`).
    provenance: PathBuf,
}

pub async fn run(_cli: &Cli, _a: &RunArgs) -> Result<ExitCode> {
    bail!("`atelier run` is not available yet")
}

pub async fn rerun(_cli: &Cli, _a: &RerunArgs) -> Result<ExitCode> {
    bail!("`atelier rerun` is not available yet")
}
