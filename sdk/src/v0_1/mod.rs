//! The contract 0.1.0 API, kept so plugins written for it still build: `use atelier_sdk::v0_1::*;`
//! in place of `use atelier_sdk::*;`, and the component exports `atelier:plugin/*@0.1.0`.
//!
//! New plugins use the crate root (contract 0.2.0). A host supports the current and the previous
//! contract minor (wit/README.md); this module stays for as long as hosts load 0.1.0 components.
//! The helpers (`http`, `retry`, `params`) are the same source as the root's, bound to 0.1's types.

use crate::wit::since_v0_1::model::atelier::plugin as wit;
use crate::wit::since_v0_1::model::exports::atelier::plugin::backend as wit_backend;
use crate::wit::since_v0_1::filter::exports::atelier::plugin::filters as wit_filters;
use wit::http as wit_http;

#[path = "../common/http.rs"]
pub mod http;
#[path = "../common/params.rs"]
pub mod params;
#[path = "../common/retry.rs"]
pub mod retry;
mod info;

pub use crate::{encoding, multipart, sniff};
pub use params::Params;
pub use retry::{ErrorBody, Service, excerpt};
pub use wit::types::{
    Error, Image, ImageUsage, Media, Param, ParamKind, ParamSpec, ProviderError, RateLimit, Usage, Value,
};
pub use wit_backend::{
    Artifact, Body, Download, InputPlan, ItemFailure, ModelInfo, Outcome, Pending, Progress, Request, Status,
    Submission, Task,
};
pub use wit_filters::{FilterInfo, Step};
pub use crate::register_filter_v0_1 as register_filter;
pub use crate::register_model_v0_1 as register_model;

/// Settings from the plugin's manifest defaults and the operator's `atelier.toml`.
pub mod config {
    /// The value of a setting, if set.
    pub fn get(key: &str) -> Option<String> {
        super::wit::config::get(key)
    }

    /// The value of a setting, or an [`Error::Internal`](super::Error) naming the missing key.
    pub fn require(key: &str) -> Result<String, super::Error> {
        get(key).ok_or_else(|| super::Error::Internal(crate::missing_setting(key)))
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

/// A contract-0.1 model backend. Implement `describe` and `submit`; override the rest as the provider needs.
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

/// A contract-0.1 family of filters. Implement `describe` and `apply_step`; `apply` runs a chain.
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
    pub use crate::wit::since_v0_1::filter::exports::atelier::plugin::filters::Guest as FilterGuest;
    pub use crate::wit::since_v0_1::model::exports::atelier::plugin::backend::Guest as ModelGuest;
}

/// Export a contract-0.1 [`Model`](v0_1::Model) implementation (`atelier_sdk::v0_1::register_model!`).
#[doc(hidden)]
#[macro_export]
macro_rules! register_model_v0_1 {
    ($model:ty) => {
        #[doc(hidden)]
        pub struct __AtelierModelExport;

        impl $crate::v0_1::__glue::ModelGuest for __AtelierModelExport {
            fn describe() -> $crate::v0_1::ModelInfo {
                <$model as $crate::v0_1::Model>::describe(&<$model as ::core::default::Default>::default())
            }
            fn prepare(
                prompt: ::std::string::String,
                references: ::std::vec::Vec<(u32, u32)>,
                has_mask: bool,
                n: u32,
                params: ::std::vec::Vec<$crate::v0_1::Param>,
            ) -> ::core::result::Result<$crate::v0_1::InputPlan, $crate::v0_1::Error> {
                <$model as $crate::v0_1::Model>::prepare(
                    &<$model as ::core::default::Default>::default(),
                    &prompt,
                    &references,
                    has_mask,
                    n,
                    &params,
                )
            }
            fn submit(
                req: $crate::v0_1::Request,
            ) -> ::core::result::Result<$crate::v0_1::Submission, $crate::v0_1::Error> {
                <$model as $crate::v0_1::Model>::submit(&<$model as ::core::default::Default>::default(), req)
            }
            fn poll(token: ::std::string::String) -> ::core::result::Result<$crate::v0_1::Status, $crate::v0_1::Error> {
                <$model as $crate::v0_1::Model>::poll(&<$model as ::core::default::Default>::default(), &token)
            }
            fn cancel(token: ::std::string::String) -> ::core::result::Result<(), $crate::v0_1::Error> {
                <$model as $crate::v0_1::Model>::cancel(&<$model as ::core::default::Default>::default(), &token)
            }
        }

        // Exported only for wasm: the export names are not valid symbols in a native link.
        #[cfg(target_arch = "wasm32")]
        $crate::wit::since_v0_1::model::export_model_v0_1!(__AtelierModelExport with_types_in $crate::wit::since_v0_1::model);
    };
}

/// Export a contract-0.1 [`Filter`](v0_1::Filter) implementation (`atelier_sdk::v0_1::register_filter!`).
#[doc(hidden)]
#[macro_export]
macro_rules! register_filter_v0_1 {
    ($filter:ty) => {
        #[doc(hidden)]
        pub struct __AtelierFilterExport;

        impl $crate::v0_1::__glue::FilterGuest for __AtelierFilterExport {
            fn describe() -> ::std::vec::Vec<$crate::v0_1::FilterInfo> {
                <$filter as $crate::v0_1::Filter>::describe(&<$filter as ::core::default::Default>::default())
            }
            fn apply(
                input: $crate::v0_1::Image,
                steps: ::std::vec::Vec<$crate::v0_1::Step>,
            ) -> ::core::result::Result<$crate::v0_1::Image, $crate::v0_1::Error> {
                <$filter as $crate::v0_1::Filter>::apply(&<$filter as ::core::default::Default>::default(), input, steps)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::wit::since_v0_1::filter::export_filter_v0_1!(__AtelierFilterExport with_types_in $crate::wit::since_v0_1::filter);
    };
}
