//! Host bindings generated from `wit/0.1.0`, one module per world; the filter world reuses the
//! model world's shared interfaces so one set of host impls serves both.

/// World `model`.
pub mod model {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "model",
        imports: { default: async },
        exports: { default: async },
    });
}

/// World `filter`.
pub mod filter {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "filter",
        imports: { default: async },
        exports: { default: async },
        with: {
            "atelier:plugin/types": super::model::atelier::plugin::types,
            "atelier:plugin/config": super::model::atelier::plugin::config,
            "atelier:plugin/log": super::model::atelier::plugin::log,
        },
    });
}

pub use model::atelier::plugin::types as wit_types;
pub use model::exports::atelier::plugin::backend as wit_backend;
pub use filter::exports::atelier::plugin::filters as wit_filters;

/// The export the host looks for in each kind of component, per contract version.
pub fn export_name(kind: crate::manifest::Kind, version: &str) -> String {
    match kind {
        crate::manifest::Kind::Model => format!("atelier:plugin/backend@{version}"),
        crate::manifest::Kind::Filter => format!("atelier:plugin/filters@{version}"),
    }
}
