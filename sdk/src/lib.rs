//! Write atelier plugins: model backends and filters that run as sandboxed WASM components.
//!
//! A plugin implements [`Model`] or [`Filter`] and registers it with [`register_model!`] or
//! [`register_filter!`]. The generated WIT bindings stay private; this crate re-exports the
//! contract's types under plain names and adds the helpers a provider plugin needs:
//! JSON over the host's HTTP ([`http`]), base64 and data URIs ([`encoding`]), multipart bodies
//! ([`multipart`]), image sniffing ([`sniff`]), typed parameter access ([`params`]) and the one
//! table that turns a provider's HTTP status into an [`Error`] the host can retry or not ([`retry`]).
//!
//! ```ignore
//! use atelier_sdk::*;
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Model for Hello {
//!     fn describe(&self) -> ModelInfo { ModelInfo::image_edit("hello", "Hello") }
//!     fn submit(&self, req: Request) -> Result<Submission, Error> {
//!         Ok(Submission::Done(Outcome::images(req.references)))
//!     }
//! }
//! register_model!(Hello);
//! ```

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub mod encoding;
pub mod http;
pub mod multipart;
pub mod params;
pub mod retry;
pub mod sniff;
mod info;

/// The generated bindings; use the re-exports and traits instead.
#[doc(hidden)]
pub mod __bindings {
    /// Bindings for the `model` world.
    pub mod model {
        wit_bindgen::generate!({
            path: "wit/0.1.0",
            world: "model",
            pub_export_macro: true,
            default_bindings_module: "atelier_sdk::__bindings::model",
            export_macro_name: "export_model",
        });
    }
    /// Bindings for the `filter` world, sharing the model world's types and imports.
    pub mod filter {
        wit_bindgen::generate!({
            path: "wit/0.1.0",
            world: "filter",
            pub_export_macro: true,
            default_bindings_module: "atelier_sdk::__bindings::filter",
            export_macro_name: "export_filter",
            with: {
                "atelier:plugin/types@0.1.0": crate::__bindings::model::atelier::plugin::types,
                "atelier:plugin/config@0.1.0": crate::__bindings::model::atelier::plugin::config,
                "atelier:plugin/log@0.1.0": crate::__bindings::model::atelier::plugin::log,
            },
        });
    }
}

use __bindings::model::atelier::plugin as wit;
use __bindings::model::exports::atelier::plugin::backend as wit_backend;
use __bindings::filter::exports::atelier::plugin::filters as wit_filters;

pub use wit::types::{
    Error, Image, ImageUsage, Media, Param, ParamKind, ParamSpec, ProviderError, RateLimit, Usage,
    Value,
};
pub use wit_backend::{
    Artifact, Body, Download, InputPlan, ItemFailure, ModelInfo, Outcome, Pending, Progress,
    Request, Status, Submission, Task,
};
pub use wit_filters::{FilterInfo, Step};
pub use params::Params;
pub use retry::{excerpt, Service};

/// Settings from the plugin's manifest defaults and the operator's `atelier.toml`.
pub mod config {
    /// The value of a setting, if set.
    pub fn get(key: &str) -> Option<String> {
        super::wit::config::get(key)
    }

    /// The value of a setting, or an [`Error::Internal`](crate::Error) naming the missing key.
    pub fn require(key: &str) -> Result<String, crate::Error> {
        get(key).ok_or_else(|| {
            crate::Error::Internal(format!(
                "setting `{key}` is missing: add it under [defaults] in plugin.toml or under [plugins.<id>] in atelier.toml"
            ))
        })
    }
}

/// Logging into the host's tracing, tagged with plugin and job.
pub mod log {
    pub use super::wit::log::Level;

    /// Write a message at `level`.
    pub fn write(level: Level, message: &str) {
        super::wit::log::write(level, message)
    }
    /// Write a debug message.
    pub fn debug(message: &str) {
        write(Level::Debug, message)
    }
    /// Write an informational message.
    pub fn info(message: &str) {
        write(Level::Info, message)
    }
    /// Write a warning.
    pub fn warn(message: &str) {
        write(Level::Warn, message)
    }
}

/// The host's clock, the only one a plugin sees.
pub mod clock {
    /// Milliseconds on a monotonic clock.
    pub fn monotonic_ms() -> u64 {
        super::wit::clock::monotonic_ms()
    }
    /// Milliseconds since the Unix epoch.
    pub fn wall_ms() -> u64 {
        super::wit::clock::wall_ms()
    }
}

/// A model backend. Implement `describe` and `submit`; override the rest as the provider needs.
pub trait Model: Default {
    /// What the model accepts; the host checks every request against it before calling anything else.
    fn describe(&self) -> ModelInfo;

    /// Check a request before any network call and say how to shape its inputs.
    /// The default accepts anything `describe` allows and asks for no reshaping.
    fn prepare(
        &self,
        _prompt: &str,
        _references: &[(u32, u32)],
        _has_mask: bool,
        _n: u32,
        _params: &[Param],
    ) -> Result<InputPlan, Error> {
        Ok(InputPlan { exact_size: None, max_side: None })
    }

    /// Start a job: finish it now (`Submission::Done`) or hand back a token to poll.
    fn submit(&self, req: Request) -> Result<Submission, Error>;

    /// Poll a pending job. Models that always finish in `submit` keep the default.
    fn poll(&self, token: &str) -> Result<Status, Error> {
        Err(Error::Internal(format!("this model has no pending jobs (token `{token}`)")))
    }

    /// Cancel a pending job where the provider allows it. The default does nothing.
    fn cancel(&self, _token: &str) -> Result<(), Error> {
        Ok(())
    }
}

/// A family of filters. Implement `describe` and `apply_step`; `apply` runs a chain.
pub trait Filter: Default {
    /// The filters this component provides.
    fn describe(&self) -> Vec<FilterInfo>;

    /// Run one step.
    fn apply_step(&self, image: Image, step: &Step) -> Result<Image, Error>;

    /// Run consecutive steps; the default runs `apply_step` in order.
    fn apply(&self, mut image: Image, steps: Vec<Step>) -> Result<Image, Error> {
        for step in &steps {
            image = self.apply_step(image, step)?;
        }
        Ok(image)
    }
}

/// Glue between the traits and the generated bindings; used by the register macros.
#[doc(hidden)]
pub mod __glue {
    pub use crate::__bindings::filter::exports::atelier::plugin::filters::Guest as FilterGuest;
    pub use crate::__bindings::model::exports::atelier::plugin::backend::Guest as ModelGuest;
}

/// Export a [`Model`] implementation as this component's backend.
#[macro_export]
macro_rules! register_model {
    ($model:ty) => {
        #[doc(hidden)]
        pub struct __AtelierModelExport;

        impl $crate::__glue::ModelGuest for __AtelierModelExport {
            fn describe() -> $crate::ModelInfo {
                <$model as $crate::Model>::describe(&<$model as ::core::default::Default>::default())
            }
            fn prepare(
                prompt: ::std::string::String,
                references: ::std::vec::Vec<(u32, u32)>,
                has_mask: bool,
                n: u32,
                params: ::std::vec::Vec<$crate::Param>,
            ) -> ::core::result::Result<$crate::InputPlan, $crate::Error> {
                <$model as $crate::Model>::prepare(
                    &<$model as ::core::default::Default>::default(),
                    &prompt,
                    &references,
                    has_mask,
                    n,
                    &params,
                )
            }
            fn submit(req: $crate::Request) -> ::core::result::Result<$crate::Submission, $crate::Error> {
                <$model as $crate::Model>::submit(&<$model as ::core::default::Default>::default(), req)
            }
            fn poll(token: ::std::string::String) -> ::core::result::Result<$crate::Status, $crate::Error> {
                <$model as $crate::Model>::poll(&<$model as ::core::default::Default>::default(), &token)
            }
            fn cancel(token: ::std::string::String) -> ::core::result::Result<(), $crate::Error> {
                <$model as $crate::Model>::cancel(&<$model as ::core::default::Default>::default(), &token)
            }
        }

        // Exported only for wasm: the export names are not valid symbols in a native link.
        #[cfg(target_arch = "wasm32")]
        $crate::__bindings::model::export_model!(__AtelierModelExport with_types_in $crate::__bindings::model);
    };
}

/// Export a [`Filter`] implementation as this component's filter family.
#[macro_export]
macro_rules! register_filter {
    ($filter:ty) => {
        #[doc(hidden)]
        pub struct __AtelierFilterExport;

        impl $crate::__glue::FilterGuest for __AtelierFilterExport {
            fn describe() -> ::std::vec::Vec<$crate::FilterInfo> {
                <$filter as $crate::Filter>::describe(&<$filter as ::core::default::Default>::default())
            }
            fn apply(
                input: $crate::Image,
                steps: ::std::vec::Vec<$crate::Step>,
            ) -> ::core::result::Result<$crate::Image, $crate::Error> {
                <$filter as $crate::Filter>::apply(&<$filter as ::core::default::Default>::default(), input, steps)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::__bindings::filter::export_filter!(__AtelierFilterExport with_types_in $crate::__bindings::filter);
    };
}
