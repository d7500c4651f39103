//! The wasmtime side: engine and compile cache, generated bindings, per-job stores.

pub mod bindings;
pub mod engine;
pub mod store;
