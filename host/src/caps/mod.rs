//! Host capabilities, one module each: what a plugin can reach, and nothing else. Each module
//! implements its import for every contract version and links it (`add_to_linker_v0_1`,
//! `add_to_linker_v0_2`).

pub(crate) mod artifacts;
pub mod clock;
pub(crate) mod config;
pub mod grants;
pub mod hosts;
pub mod http;
pub mod log;
