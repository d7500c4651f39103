//! Workflows: multi-stage recipes (explore → refine → edit → deliver → animate), each stage with
//! the engine that suits it, picks between stages, resume without re-billing, budgets and costs,
//! and re-running one output from its provenance.

pub mod cost;
pub mod recipe;
pub mod rerun;
pub mod run;
pub mod state;
pub mod validate;

pub use recipe::{Pick, Problem, Recipe};
pub use run::{Event, RunError, RunOptions, RunReport, RunStatus, run};
