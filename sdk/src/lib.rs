//! Write atelier plugins: model backends and filters that run as sandboxed WASM components.
//!
//! This is the SDK for contract **0.2.0** (`atelier:plugin@0.2.0`, the WIT in this crate's
//! `wit/0.2.0`): one SDK major version per contract, so SDK 0.2.x builds 0.2 components. The
//! contract-0.1.0 API stays buildable under [`v0_1`].
//!
//! A plugin implements [`Model`] or [`Filter`] and registers it with [`register_model!`] or
//! [`register_filter!`]. The generated WIT bindings stay private; this crate re-exports the
//! contract's types under plain names, adds builders ([`ModelInfo::new`], [`ParamSpec::integer`],
//! [`Artifact::inline`], ...) and the helpers a provider plugin needs: JSON and multipart over the
//! host's HTTP ([`http`], [`multipart`]), the one retry table ([`Error::from_response`],
//! [`retry`]), body excerpts ([`excerpt`]), base64 and data URIs ([`encoding`]), image sniffing
//! ([`sniff`]), typed parameters ([`Params`]), streamed artifacts ([`ArtifactStream`]) and, with the
//! `image` feature, decoding references and masks and encoding PNG ([`imaging`]).
//!
//! ```ignore
//! use atelier_sdk::*;
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Model for Hello {
//!     fn describe(&self) -> ModelInfo {
//!         ModelInfo::new("hello", "Hello").effects_outside_host(false)
//!     }
//!     fn submit(&self, req: Request) -> Result<Submission, Error> {
//!         Ok(Submission::Done(Outcome::images(req.references)))
//!     }
//! }
//! register_model!(Hello);
//! ```

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub mod artifacts;
pub mod encoding;
#[cfg(feature = "image")]
pub mod imaging;
pub mod multipart;
pub mod sniff;
pub mod v0_1;
mod info;

#[path = "common/http.rs"]
pub mod http;
#[path = "common/params.rs"]
pub mod params;
#[path = "common/retry.rs"]
pub mod retry;

/// The generated bindings, one module per contract version (as Zed's `since_vX`); plugins use the
/// re-exports and traits instead.
#[doc(hidden)]
pub mod wit {
    /// Contract 0.1.0 (`wit/0.1.0`), for [`crate::v0_1`].
    pub mod since_v0_1 {
        /// The `model` world.
        pub mod model {
            // World names must differ from 0.2's: wit-bindgen names a crate-level macro after the world.
            wit_bindgen::generate!({
                inline: "package atelier:sdk-v0-1; world model-v0-1 { include atelier:plugin/model@0.1.0; }",
                path: "wit/0.1.0",
                world: "atelier:sdk-v0-1/model-v0-1",
                generate_all,
                pub_export_macro: true,
                default_bindings_module: "atelier_sdk::wit::since_v0_1::model",
                export_macro_name: "export_model_v0_1",
            });
        }
        /// The `filter` world, sharing the model world's types and imports.
        pub mod filter {
            wit_bindgen::generate!({
                inline: "package atelier:sdk-v0-1; world filter-v0-1 { include atelier:plugin/filter@0.1.0; }",
                path: "wit/0.1.0",
                world: "atelier:sdk-v0-1/filter-v0-1",
                generate_all,
                pub_export_macro: true,
                default_bindings_module: "atelier_sdk::wit::since_v0_1::filter",
                export_macro_name: "export_filter_v0_1",
                with: {
                    "atelier:plugin/types@0.1.0": crate::wit::since_v0_1::model::atelier::plugin::types,
                    "atelier:plugin/config@0.1.0": crate::wit::since_v0_1::model::atelier::plugin::config,
                    "atelier:plugin/log@0.1.0": crate::wit::since_v0_1::model::atelier::plugin::log,
                },
            });
        }
    }
    /// Contract 0.2.0 (`wit/0.2.0`), the crate root's API.
    pub mod since_v0_2 {
        /// The `model` world.
        pub mod model {
            wit_bindgen::generate!({
                path: "wit/0.2.0",
                world: "model",
                pub_export_macro: true,
                default_bindings_module: "atelier_sdk::wit::since_v0_2::model",
                export_macro_name: "export_model",
            });
        }
        /// The `filter` world, sharing the model world's types and imports.
        pub mod filter {
            wit_bindgen::generate!({
                path: "wit/0.2.0",
                world: "filter",
                pub_export_macro: true,
                default_bindings_module: "atelier_sdk::wit::since_v0_2::filter",
                export_macro_name: "export_filter",
                with: {
                    "atelier:plugin/types@0.2.0": crate::wit::since_v0_2::model::atelier::plugin::types,
                    "atelier:plugin/config@0.2.0": crate::wit::since_v0_2::model::atelier::plugin::config,
                    "atelier:plugin/log@0.2.0": crate::wit::since_v0_2::model::atelier::plugin::log,
                },
            });
        }
    }
}

use wit::since_v0_2::model::atelier::plugin as contract;
use wit::since_v0_2::model::exports::atelier::plugin::backend as contract_backend;
use wit::since_v0_2::filter::exports::atelier::plugin::filters as contract_filters;
use contract::http as wit_http;

/// `serde_json`, re-exported so a plugin speaks JSON without its own dependency line.
pub use serde_json;

pub use artifacts::ArtifactStream;
pub use contract::types::{
    ChoiceSpec, Error, Image, ImageUsage, IntegerSpec, Media, NumberSpec, Param, ParamSpec, ParamType, ProviderError,
    RateLimit, TextSpec, Usage, Value,
};
pub use contract_backend::{
    Artifact, Body, Download, Draft, InputPlan, ItemFailure, ModelInfo, Outcome, OutputKind, Partial, Pending,
    Progress, Request, Status, Submission,
};
pub use contract_filters::{FilterInfo, Step};
pub use params::Params;
pub use retry::{ErrorBody, Service, excerpt};

/// The message for a setting a plugin needs and nobody set, naming both places to set it.
pub(crate) fn missing_setting(key: &str) -> String {
    format!("setting `{key}` is missing: add it under [defaults] in plugin.toml or under [plugins.<id>] in atelier.toml")
}

/// Settings from the plugin's manifest defaults and the operator's `atelier.toml`.
pub mod config {
    /// The value of a setting, if set.
    pub fn get(key: &str) -> Option<String> {
        super::contract::config::get(key)
    }

    /// The value of a setting, or an [`Error::Internal`](crate::Error) naming the missing key.
    pub fn require(key: &str) -> Result<String, crate::Error> {
        get(key).ok_or_else(|| crate::Error::Internal(crate::missing_setting(key)))
    }
}

/// Logging into the host's tracing, tagged with plugin and job.
pub mod log {
    pub use super::contract::log::Level;

    /// Write a message at `level`.
    pub fn write(level: Level, message: &str) {
        super::contract::log::write(level, message)
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
        super::contract::clock::monotonic_ms()
    }
    /// Milliseconds since the Unix epoch.
    pub fn wall_ms() -> u64 {
        super::contract::clock::wall_ms()
    }
}

/// A model backend. Implement `describe` and `submit`; override the rest as the provider needs.
pub trait Model: Default {
    /// What the model accepts; the host checks every request against it before calling anything else
    /// (output kind, aspect ratio, size, seed, parameters, reference and output counts).
    fn describe(&self) -> ModelInfo;

    /// Check a request before any network call and say how to shape its inputs.
    /// The default accepts anything `describe` allows and asks for no reshaping.
    fn prepare(&self, _draft: &Draft) -> Result<InputPlan, Error> {
        Ok(InputPlan::as_given())
    }

    /// Start a job: finish it now (`Submission::Done`) or hand back a token to poll.
    fn submit(&self, req: Request) -> Result<Submission, Error>;

    /// Poll a pending job: `Status::Running` (with any partial results ready since the last poll)
    /// or `Status::Done`. Models that always finish in `submit` keep the default.
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
    pub use crate::wit::since_v0_2::filter::exports::atelier::plugin::filters::Guest as FilterGuest;
    pub use crate::wit::since_v0_2::model::exports::atelier::plugin::backend::Guest as ModelGuest;
}

/// Export a [`Model`] implementation as this component's backend (contract 0.2.0).
#[macro_export]
macro_rules! register_model {
    ($model:ty) => {
        #[doc(hidden)]
        pub struct __AtelierModelExport;

        impl $crate::__glue::ModelGuest for __AtelierModelExport {
            fn describe() -> $crate::ModelInfo {
                <$model as $crate::Model>::describe(&<$model as ::core::default::Default>::default())
            }
            fn prepare(draft: $crate::Draft) -> ::core::result::Result<$crate::InputPlan, $crate::Error> {
                <$model as $crate::Model>::prepare(&<$model as ::core::default::Default>::default(), &draft)
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
        $crate::wit::since_v0_2::model::export_model!(__AtelierModelExport with_types_in $crate::wit::since_v0_2::model);
    };
}

/// Export a [`Filter`] implementation as this component's filter family (contract 0.2.0).
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
        $crate::wit::since_v0_2::filter::export_filter!(__AtelierFilterExport with_types_in $crate::wit::since_v0_2::filter);
    };
}
