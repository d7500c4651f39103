//! Host capabilities, one module each: what a plugin can reach, and nothing else.

pub mod clock;
pub mod grants;
pub mod hosts;
pub mod http;
pub mod log;
