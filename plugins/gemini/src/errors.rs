//! Google's error envelope (`{"error": {code, message, status, details}}`) turned into the
//! contract's errors, so the host retries exactly what Google did not accept. Google's own cases
//! (a bad key reported as 400, quotas that reset tomorrow, a model id the key cannot use) are
//! decided here; every other status goes through the SDK's one retry table
//! ([`atelier_sdk::retry`]), so `DEADLINE_EXCEEDED` (504) is retried like `UNAVAILABLE` (503).

use crate::duration::{parse_duration_ms, retry_delay_in_message};
use atelier_sdk::{excerpt, Error, ProviderError, Service};
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
    /// The resource being polled (e.g. an operation name), when the call is not a model method.
    /// Its errors are a poll's: a 404 means Google does not know it (yet), not that the model id
    /// is wrong, and every 5xx is transient.
    pub resource: Option<String>,
}

impl ErrorContext {
    /// Google as the SDK's retry table names it, for this plugin.
    pub fn service(&self) -> Service<'_> {
        Service { name: "Google", plugin_id: &self.plugin_id, secret: crate::SECRET_NAME }
    }
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

/// The contract error for a non-2xx answer from the Gemini API; `retry_after_ms` is the
/// answer's `Retry-After`, used when the body gives no `RetryInfo`.
pub fn map_http_error(http_status: u16, retry_after_ms: Option<u64>, body: &[u8], ctx: &ErrorContext) -> Error {
    // A body that is not Google's envelope (a proxy's HTML page) still has a status to decide on.
    let google = parse_error_envelope(body)
        .unwrap_or_else(|| GoogleError { code: i64::from(http_status), message: excerpt(body, 300), ..GoogleError::default() });
    map_google_error(http_status, retry_after_ms, &google, ctx)
}

/// The contract error for a parsed Google error answered with `http_status`.
pub fn map_google_error(http_status: u16, retry_after_ms: Option<u64>, google: &GoogleError, ctx: &ErrorContext) -> Error {
    let message = google.message.clone();
    let service = ctx.service();
    let code = (!google.status.is_empty()).then_some(google.status.as_str());
    let key_problem = google.reasons.iter().any(|r| r.starts_with("API_KEY") || r == "ACCESS_TOKEN_TYPE_UNSUPPORTED");
    if http_status == 401 || http_status == 403 || key_problem || google.status == "UNAUTHENTICATED" {
        // Google reports a bad key as 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
        return Error::unauthorized_for(&service, &status_label(http_status, google), &format!("{message} (it takes a Gemini API key from AI Studio)"));
    }
    match http_status {
        429 if google.zero_quota => Error::Provider(ProviderError {
            code: "RESOURCE_EXHAUSTED".into(),
            message: format!(
                "this project has no quota for `{}` (quota 0: image and video models have no free tier; enable billing): {message}",
                ctx.model
            ),
        }),
        429 if google.quota_ids.iter().any(|id| id.contains("PerDay")) => Error::Provider(ProviderError {
            code: "RESOURCE_EXHAUSTED".into(),
            message: format!("the daily quota is used up (it resets at midnight Pacific time): {message}"),
        }),
        429 => {
            let delay = google.retry_delay_ms.or_else(|| retry_delay_in_message(&message)).or(retry_after_ms);
            Error::from_status(&service, 429, delay, code, &message)
        }
        404 => match &ctx.resource {
            Some(resource) => Error::not_found_yet(
                &service,
                &format!("`{resource}`"),
                &format!("{message} (Veo operations and videos expire after 2 days, and belong to the API key that started them)"),
            ),
            None => Error::Provider(ProviderError {
                code: "NOT_FOUND".into(),
                message: format!(
                    "model `{}` is not available on API version `{}`: {message} Set `model` (or `api_version`) under [plugins.{}] in atelier.toml to a model your key can use.",
                    ctx.model, ctx.api_version, ctx.plugin_id
                ),
            }),
        },
        _ if ctx.resource.is_some() => Error::from_poll_status(&service, http_status, retry_after_ms, code, &message),
        _ => Error::from_status(&service, http_status, retry_after_ms, code, &message),
    }
}

/// `400 INVALID_ARGUMENT`-style label.
fn status_label(http_status: u16, google: &GoogleError) -> String {
    if google.status.is_empty() { http_status.to_string() } else { format!("{http_status} {}", google.status) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atelier_sdk::RateLimit;

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
        match map_http_error(429, None, &b, &ctx()) {
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
        assert!(matches!(map_http_error(429, None, &b, &ctx()), Error::RateLimited(RateLimit { retry_after_ms: Some(10), .. })));
    }

    #[test]
    fn daily_or_zero_quota_is_not_retried() {
        let b = body(serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
            "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "quotaValue": "0"}]}]}}));
        match map_http_error(429, None, &b, &ctx()) {
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
        match map_http_error(400, None, &b, &ctx()) {
            Error::Unauthorized(m) => {
                assert!(m.contains("API key not valid") && m.contains("GEMINI_API_KEY") && m.contains("[plugins.nano-banana.secrets]"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let b = body(serde_json::json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "denied"}}));
        assert!(matches!(map_http_error(403, None, &b, &ctx()), Error::Unauthorized(_)));
        assert!(matches!(map_http_error(401, None, b"<html>", &ctx()), Error::Unauthorized(_)));
    }

    #[test]
    fn overload_is_unavailable_and_array_wrapper_is_accepted() {
        let b = body(serde_json::json!([{"error": {"code": 503, "status": "UNAVAILABLE",
            "message": "The model is overloaded. Please try again later."}}]));
        match map_http_error(503, None, &b, &ctx()) {
            Error::Unavailable(m) => assert!(m.contains("overloaded")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_model_names_the_setting() {
        let b = body(serde_json::json!({"error": {"code": 404, "status": "NOT_FOUND",
            "message": "models/gemini-9 is not found for API version v1beta"}}));
        match map_http_error(404, None, &b, &ctx()) {
            Error::Provider(p) => {
                assert_eq!(p.code, "NOT_FOUND");
                assert!(p.message.contains("[plugins.nano-banana]") && p.message.contains("`model`"), "{}", p.message);
            }
            other => panic!("{other:?}"),
        }
        let op = ErrorContext { resource: Some("models/veo/operations/x".into()), ..ctx() };
        // A poll's 404: Google may not know an operation it just started; the host keeps polling.
        match map_http_error(404, None, &b, &op) {
            Error::Unavailable(m) => assert!(m.contains("operations/x") && m.contains("not found (yet)") && m.contains("expire"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_validation_errors_quote_google() {
        let b = body(serde_json::json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "Unsupported MIME type: png"}}));
        match map_http_error(400, None, &b, &ctx()) {
            Error::InvalidInput(m) => assert_eq!(m, "Google rejected the request (HTTP 400 INVALID_ARGUMENT): Unsupported MIME type: png"),
            other => panic!("{other:?}"),
        }
        let b = body(serde_json::json!({"error": {"code": 409, "status": "ABORTED", "message": "try later"}}));
        assert!(matches!(map_http_error(409, None, &b, &ctx()), Error::Provider(p) if p.code == "ABORTED" && p.message.contains("try later")));
    }

    #[test]
    fn every_transient_status_is_retried_on_submit_and_poll() {
        let op = ErrorContext { resource: Some("models/veo/operations/x".into()), ..ctx() };
        for (status, google) in [(500, "INTERNAL"), (502, ""), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED"), (408, "")] {
            let b = body(serde_json::json!({"error": {"code": status, "status": google, "message": "try again"}}));
            for c in [&ctx(), &op] {
                match map_http_error(status, None, &b, c) {
                    Error::Unavailable(m) => assert!(m.contains("try again") && m.contains(&status.to_string()), "{m}"),
                    other => panic!("{status} {google}: {other:?}"),
                }
            }
            assert!(matches!(map_http_error(status, None, b"<html>gateway</html>", &ctx()), Error::Unavailable(_)), "{status}");
        }
        // On a poll every 5xx is transient; on a submit an unusual one is not.
        assert!(matches!(map_http_error(501, None, b"{}", &op), Error::Unavailable(_)));
        assert!(matches!(map_http_error(501, None, b"{}", &ctx()), Error::Provider(_)));
        assert!(matches!(map_http_error(404, None, b"Not Found", &op), Error::Unavailable(m) if m.contains("not found (yet)")));
    }

    #[test]
    fn retry_after_header_is_the_fallback_delay() {
        let b = body(serde_json::json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down"}}));
        assert!(matches!(map_http_error(429, Some(2_000), &b, &ctx()), Error::RateLimited(r) if r.retry_after_ms == Some(2_000)));
    }

    #[test]
    fn non_json_bodies_keep_the_status() {
        assert!(matches!(map_http_error(503, None, b"oops", &ctx()), Error::Unavailable(_)));
        assert!(matches!(map_http_error(418, None, b"teapot", &ctx()), Error::Provider(ProviderError { .. })));
    }
}
