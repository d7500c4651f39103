//! The wasmtime side: engine and compile cache, the bindings of each contract version (each with
//! its conversions to the host's types), per-job stores.

pub mod engine;
#[macro_use]
mod shared;
// Public only for the call-path benchmark (tests/benches/host.rs), which times a bare call.
#[doc(hidden)]
pub mod since_v0_1;
pub(crate) mod since_v0_2;
pub mod store;

/// The export the host looks for in each kind of component, per contract version.
pub(crate) fn export_name(kind: crate::manifest::Kind, version: &str) -> String {
    match kind {
        crate::manifest::Kind::Model => format!("atelier:plugin/backend@{version}"),
        crate::manifest::Kind::Filter => format!("atelier:plugin/filters@{version}"),
    }
}
