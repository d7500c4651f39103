//! atelier: a plugin host for image-to-image and image-to-video AI work.
//!
//! Model backends and filters are sandboxed WebAssembly components speaking the contract in
//! `wit/` (0.2.0, and 0.1.0 still loaded); the host reasons in its own [`types`], converted at
//! the boundary per contract version (`wasm::since_v0_1`, `wasm::since_v0_2`). [`Runtime`] finds
//! and loads them; [`Plugin`] calls into them, each call in a fresh store with the plugin's memory
//! cap and deadline; [`caps`] holds what a plugin can reach.

pub mod caps;
pub mod imageio;
pub mod jobs;
pub mod manifest;
pub mod native;
pub mod params;
pub mod pipeline;
pub mod oci;
pub mod plugin;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod settings;
pub mod storage;
pub mod text;
pub mod types;
pub mod wasm;
pub mod workflow;

pub use plugin::Plugin;
pub use runtime::{Runtime, RuntimeOptions};
pub use settings::Settings;
