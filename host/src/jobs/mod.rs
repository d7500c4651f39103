//! The job manager: submit → pending → poll → done/failed/cancelled, persisted in SQLite so a
//! job outlives the process that started it, and a billed submit is never repeated blindly.

pub mod db;
pub mod runner;
pub mod store;
pub mod worker;
pub mod saved;

pub use db::{JobDb, JobRecord, JobState};
pub use store::JobStore;
pub use runner::{JobOutcome, Runner, RunnerEvent};
