//! Google's error envelope (`{"error": {code, message, status, details}}`) turned into the
//! contract's errors, so the host retries exactly what Google did not accept.

use crate::duration::{parse_duration_ms, retry_delay_in_message};
use atelier_sdk::{Error, ProviderError, RateLimit};
use serde_json::Value;

/// What an error message needs to tell the user which setting to change.
#[derive(Clone, Debug)]
pub struct ErrorContext {
    /// The plugin id, for `[plugins.<id>]` hints.
    pub plugin_id: String,
    /// The configured model id.
    pub model: String,
    /// The configured API version.
    pub api_version: String,
    /// The resource being read (e.g. an operation name), when the call is not a model method;
    /// a 404 then means that resource is gone, not that the model id is wrong.
    pub resource: Option<String>,
}

/// A parsed `google.rpc.Status` error body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GoogleError {
    /// `error.code` (the HTTP status on this API).
    pub code: i64,
    /// `error.message`.
    pub message: String,
    /// `error.status`, e.g. `RESOURCE_EXHAUSTED`.
    pub status: String,
    /// `ErrorInfo.reason` values from `details`, e.g. `API_KEY_INVALID`.
    pub reasons: Vec<String>,
    /// `RetryInfo.retryDelay` in milliseconds.
    pub retry_delay_ms: Option<u64>,
    /// `QuotaFailure.violations[].quotaId` values.
    pub quota_ids: Vec<String>,
    /// Whether a violated quota has `quotaValue` "0" (e.g. no free tier for this model).
    pub zero_quota: bool,
}

/// Parse an error body; Google sometimes wraps it in a one-element array.
pub fn parse_error_envelope(body: &[u8]) -> Option<GoogleError> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let value = match value {
        Value::Array(mut items) if items.len() == 1 => items.remove(0),
        other => other,
    };
    let error = value.get("error")?;
    let mut parsed = GoogleError {
        code: error.get("code").and_then(Value::as_i64).unwrap_or_default(),
        message: error.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
        status: error.get("status").and_then(Value::as_str).unwrap_or_default().to_string(),
        ..GoogleError::default()
    };
    for detail in error.get("details").and_then(Value::as_array).into_iter().flatten() {
        let kind = detail.get("@type").and_then(Value::as_str).unwrap_or_default();
        if kind.ends_with("google.rpc.ErrorInfo") {
            if let Some(reason) = detail.get("reason").and_then(Value::as_str) {
                parsed.reasons.push(reason.to_string());
            }
        } else if kind.ends_with("google.rpc.RetryInfo") {
            parsed.retry_delay_ms = detail.get("retryDelay").and_then(Value::as_str).and_then(parse_duration_ms);
        } else if kind.ends_with("google.rpc.QuotaFailure") {
            for violation in detail.get("violations").and_then(Value::as_array).into_iter().flatten() {
                if let Some(id) = violation.get("quotaId").and_then(Value::as_str) {
                    parsed.quota_ids.push(id.to_string());
                }
                // int64 in proto3 JSON is a string; accept a number too.
                let quota = violation.get("quotaValue");
                if quota.and_then(Value::as_str) == Some("0") || quota.and_then(Value::as_i64) == Some(0) {
                    parsed.zero_quota = true;
                }
            }
        }
    }
    Some(parsed)
}

/// The contract error for a non-2xx answer from the Gemini API.
pub fn map_http_error(http_status: u16, body: &[u8], ctx: &ErrorContext) -> Error {
    let Some(google) = parse_error_envelope(body) else {
        let excerpt: String = String::from_utf8_lossy(body).chars().take(300).collect();
        return match http_status {
            401 | 403 => Error::Unauthorized(format!("Google refused the key (HTTP {http_status}): {excerpt}")),
            429 => Error::RateLimited(RateLimit { retry_after_ms: None, message: excerpt }),
            500 | 502 | 503 => Error::Unavailable(format!("Google answered HTTP {http_status}: {excerpt}")),
            _ => Error::Provider(ProviderError { code: http_status.to_string(), message: excerpt }),
        };
    };
    map_google_error(http_status, &google, ctx)
}

/// The contract error for a parsed Google error (also used for a failed long-running operation).
pub fn map_google_error(http_status: u16, google: &GoogleError, ctx: &ErrorContext) -> Error {
    let message = google.message.clone();
    let key_problem = google.reasons.iter().any(|r| r.starts_with("API_KEY") || r == "ACCESS_TOKEN_TYPE_UNSUPPORTED");
    if http_status == 401 || http_status == 403 || key_problem || google.status == "UNAUTHENTICATED" {
        return Error::Unauthorized(format!(
            "Google refused the API key ({}): {message} Check the `{}` secret in atelier.toml (a Gemini API key from AI Studio).",
            status_label(http_status, google),
            crate::SECRET_NAME
        ));
    }
    match http_status {
        429 => {
            if google.zero_quota {
                return Error::Provider(ProviderError {
                    code: "RESOURCE_EXHAUSTED".into(),
                    message: format!(
                        "this project has no quota for `{}` (quota 0: image and video models have no free tier; enable billing): {message}",
                        ctx.model
                    ),
                });
            }
            if google.quota_ids.iter().any(|id| id.contains("PerDay")) {
                return Error::Provider(ProviderError {
                    code: "RESOURCE_EXHAUSTED".into(),
                    message: format!("the daily quota is used up (it resets at midnight Pacific time): {message}"),
                });
            }
            let retry_after_ms = google.retry_delay_ms.or_else(|| retry_delay_in_message(&message));
            Error::RateLimited(RateLimit { retry_after_ms, message })
        }
        500 | 502 | 503 => Error::Unavailable(format!("Google is unavailable ({}): {message}", status_label(http_status, google))),
        404 if ctx.resource.is_some() => Error::Provider(ProviderError {
            code: "NOT_FOUND".into(),
            message: format!(
                "`{}` is not known to Google any more (Veo operations and videos expire after 2 days; it may also belong to another API key): {message}",
                ctx.resource.as_deref().unwrap_or_default()
            ),
        }),
        404 => Error::Provider(ProviderError {
            code: "NOT_FOUND".into(),
            message: format!(
                "model `{}` is not available on API version `{}`: {message} Set `model` (or `api_version`) under [plugins.{}] in atelier.toml to a model your key can use.",
                ctx.model, ctx.api_version, ctx.plugin_id
            ),
        }),
        _ => Error::Provider(ProviderError { code: status_label(http_status, google), message }),
    }
}

/// `400 INVALID_ARGUMENT`-style label.
fn status_label(http_status: u16, google: &GoogleError) -> String {
    if google.status.is_empty() { http_status.to_string() } else { format!("{http_status} {}", google.status) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ErrorContext {
        ErrorContext {
            plugin_id: "nano-banana".into(),
            model: "gemini-2.5-flash-image".into(),
            api_version: "v1beta".into(),
            resource: None,
        }
    }

    fn body(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn rate_limit_uses_retry_info() {
        let b = body(serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "You exceeded your current quota. Please retry in 47.434392449s.",
            "details": [
              {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                {"quotaId": "GenerateRequestsPerMinutePerProjectPerModel", "quotaValue": "10"}]},
              {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "47s"}]}}));
        match map_http_error(429, &b, &ctx()) {
            Error::RateLimited(r) => {
                assert_eq!(r.retry_after_ms, Some(47_000));
                assert!(r.message.contains("exceeded"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rate_limit_without_retry_info_reads_the_message() {
        let b = body(serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded. Please retry in 0.01s.",
            "details": [{"@type": "type.googleapis.com/google.rpc.Help", "links": []}]}}));
        assert!(matches!(map_http_error(429, &b, &ctx()), Error::RateLimited(RateLimit { retry_after_ms: Some(10), .. })));
    }

    #[test]
    fn daily_or_zero_quota_is_not_retried() {
        let b = body(serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
            "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "quotaValue": "0"}]}]}}));
        match map_http_error(429, &b, &ctx()) {
            Error::Provider(p) => assert!(p.message.contains("billing"), "{}", p.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_key_is_unauthorized() {
        let b = body(serde_json::json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "API key not valid. Please pass a valid API key.",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                         "domain": "googleapis.com"}]}}));
        match map_http_error(400, &b, &ctx()) {
            Error::Unauthorized(m) => assert!(m.contains("API key not valid") && m.contains("GEMINI_API_KEY")),
            other => panic!("{other:?}"),
        }
        let b = body(serde_json::json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "denied"}}));
        assert!(matches!(map_http_error(403, &b, &ctx()), Error::Unauthorized(_)));
        assert!(matches!(map_http_error(401, b"<html>", &ctx()), Error::Unauthorized(_)));
    }

    #[test]
    fn overload_is_unavailable_and_array_wrapper_is_accepted() {
        let b = body(serde_json::json!([{"error": {"code": 503, "status": "UNAVAILABLE",
            "message": "The model is overloaded. Please try again later."}}]));
        match map_http_error(503, &b, &ctx()) {
            Error::Unavailable(m) => assert!(m.contains("overloaded")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_model_names_the_setting() {
        let b = body(serde_json::json!({"error": {"code": 404, "status": "NOT_FOUND",
            "message": "models/gemini-9 is not found for API version v1beta"}}));
        match map_http_error(404, &b, &ctx()) {
            Error::Provider(p) => {
                assert_eq!(p.code, "NOT_FOUND");
                assert!(p.message.contains("[plugins.nano-banana]") && p.message.contains("`model`"), "{}", p.message);
            }
            other => panic!("{other:?}"),
        }
        let op = ErrorContext { resource: Some("models/veo/operations/x".into()), ..ctx() };
        match map_http_error(404, &b, &op) {
            Error::Provider(p) => assert!(p.message.contains("operations/x") && p.message.contains("expire"), "{}", p.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_validation_errors_quote_google() {
        let b = body(serde_json::json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "Unsupported MIME type: png"}}));
        match map_http_error(400, &b, &ctx()) {
            Error::Provider(p) => {
                assert_eq!(p.code, "400 INVALID_ARGUMENT");
                assert_eq!(p.message, "Unsupported MIME type: png");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_json_bodies_keep_the_status() {
        assert!(matches!(map_http_error(503, b"oops", &ctx()), Error::Unavailable(_)));
        assert!(matches!(map_http_error(418, b"teapot", &ctx()), Error::Provider(ProviderError { .. })));
    }
}
