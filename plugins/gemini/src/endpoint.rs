//! Where requests go: `{base_url}/{api_version}/models/{model}:{method}`, all three from config.

use atelier_sdk::{Error, config};

/// The configured base URL, API version and model id of one plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// e.g. `https://generativelanguage.googleapis.com`, no trailing slash.
    pub base_url: String,
    /// e.g. `v1beta`.
    pub api_version: String,
    /// e.g. `gemini-2.5-flash-image`, without a `models/` prefix.
    pub model: String,
}

impl Endpoint {
    /// An endpoint from explicit values, normalised (trailing slashes, `models/` prefix dropped).
    pub fn new(base_url: &str, api_version: &str, model: &str) -> Result<Self, Error> {
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        let api_version = api_version.trim().trim_matches('/').to_string();
        let model = model.trim().trim_start_matches("models/").to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(Error::Internal(format!(
                "setting `base_url` = `{base_url}` is not an http(s) URL; set it under [plugins.<id>] in atelier.toml"
            )));
        }
        for (key, value) in [("api_version", &api_version), ("model", &model)] {
            if value.is_empty() || value.contains(['/', '?', '#', ' ']) {
                return Err(Error::Internal(format!(
                    "setting `{key}` = `{value}` is not usable in a URL; set it under [plugins.<id>] in atelier.toml"
                )));
            }
        }
        Ok(Endpoint { base_url, api_version, model })
    }

    /// The endpoint from the plugin's settings `base_url`, `api_version` and `model`.
    pub fn from_config() -> Result<Self, Error> {
        Self::new(&config::require("base_url")?, &config::require("api_version")?, &config::require("model")?)
    }

    /// `{base_url}/{api_version}/models/{model}:{method}`, e.g. for `generateContent`.
    pub fn method_url(&self, method: &str) -> String {
        format!("{}/{}/models/{}:{}", self.base_url, self.api_version, self.model, method)
    }

    /// `{base_url}/{api_version}/{name}` for a resource name such as an operation.
    pub fn resource_url(&self, name: &str) -> String {
        format!("{}/{}/{}", self.base_url, self.api_version, name.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_method_and_resource_urls() {
        let ep = Endpoint::new("http://127.0.0.1:8700/", "v1beta", "models/gemini-2.5-flash-image").unwrap();
        assert_eq!(
            ep.method_url("generateContent"),
            "http://127.0.0.1:8700/v1beta/models/gemini-2.5-flash-image:generateContent"
        );
        assert_eq!(
            ep.resource_url("models/veo-3.0-generate-001/operations/abc"),
            "http://127.0.0.1:8700/v1beta/models/veo-3.0-generate-001/operations/abc"
        );
    }

    #[test]
    fn rejects_unusable_settings() {
        assert!(Endpoint::new("generativelanguage.googleapis.com", "v1beta", "m").is_err());
        assert!(Endpoint::new("https://x", "", "m").is_err());
        assert!(Endpoint::new("https://x", "v1", "a b").is_err());
    }
}
