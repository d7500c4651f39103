//! Google's Gemini API (`generativelanguage.googleapis.com`) as the atelier plugins speak it.
//!
//! The one place the protocol lives: the Nano Banana plugins use all of it, the Veo plugin uses the
//! endpoint, the auth header and the error mapping. Request building and response parsing are pure
//! functions (unit-tested natively); [`client`] and [`image_edit::run`] are the thin parts that go
//! through the host's HTTP.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub mod client;
pub mod duration;
pub mod endpoint;
pub mod errors;
pub mod image_edit;
pub mod image_models;
pub mod image_params;
pub mod request;
pub mod response;

pub use endpoint::Endpoint;
pub use errors::ErrorContext;

/// The name of the secret holding the API key, as written in every manifest.
pub const SECRET_NAME: &str = "GEMINI_API_KEY";

/// The header Google reads the API key from.
pub const API_KEY_HEADER: &str = "x-goog-api-key";

/// The auth header with the secret placeholder the host fills in (the plugin never sees the key).
pub fn auth_header() -> (String, String) {
    (API_KEY_HEADER.to_string(), atelier_sdk::http::secret(SECRET_NAME))
}
