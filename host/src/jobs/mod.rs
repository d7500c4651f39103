//! The job manager: submit → pending → poll → done/failed/cancelled, persisted in SQLite so a
//! job outlives the process that started it, and a billed submit is never repeated blindly.

pub mod db;
pub mod runner;
mod saved;

pub use db::{JobDb, JobRecord, JobState};
pub use runner::{JobOutcome, Runner, RunnerEvent};
