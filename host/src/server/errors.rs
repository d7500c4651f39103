//! OpenAI's error envelope, `{"error":{"message","type","param","code"}}`, with the HTTP status the
//! SDKs map to their exception classes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer. `message` always says what is wrong and what to do instead.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and the fix.
    pub message: String,
    /// OpenAI's `type` (`invalid_request_error`, `authentication_error`, `server_error`, ...).
    pub kind: &'static str,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// A machine-readable code, when there is one.
    pub code: Option<&'static str>,
    /// Milliseconds to wait before trying again (sent as `retry-after-ms`, and rounded up to whole
    /// seconds as `Retry-After`), for 429s the server makes itself.
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    /// 400 about one field.
    pub fn field(param: &str, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into(), kind: "invalid_request_error", param: Some(param.into()), code: None, retry_after_ms: None }
    }

    /// 400 about the request as a whole.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into(), kind: "invalid_request_error", param: None, code: None, retry_after_ms: None }
    }

    /// 401: no or wrong bearer token.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::UNAUTHORIZED, message: message.into(), kind: "invalid_request_error", param: None, code: Some("invalid_api_key"), retry_after_ms: None }
    }

    /// 404 for a thing the caller may not see (or that does not exist: the two look alike on purpose).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, message: message.into(), kind: "invalid_request_error", param: None, code: None, retry_after_ms: None }
    }

    /// 413: the upload is over a limit.
    pub fn too_large(param: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, message: message.into(), kind: "invalid_request_error", param: param.map(Into::into), code: Some("payload_too_large"), retry_after_ms: None }
    }

    /// 500 for a failure on our side.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into(), kind: "server_error", param: None, code: None, retry_after_ms: None }
    }

    /// 429: the model's queue on this server is full; try again in `retry_after_ms`.
    pub fn busy(message: impl Into<String>, retry_after_ms: u64) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: message.into(),
            kind: "rate_limit_error",
            param: None,
            code: Some("server_busy"),
            retry_after_ms: Some(retry_after_ms),
        }
    }

    /// 408: the request's body did not arrive in time.
    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::REQUEST_TIMEOUT, message: message.into(), kind: "invalid_request_error", param: None, code: Some("request_timeout"), retry_after_ms: None }
    }

    /// Set the code.
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// A failed pipeline run, classified by what the engine reported (see `jobs::runner::explain`),
    /// so clients retry what is worth retrying and only that.
    pub fn from_run(e: &anyhow::Error) -> ApiError {
        let message = format!("{e:#}");
        let (status, kind, code) = if message.contains(": invalid request: ") || message.contains("already exist") {
            (StatusCode::BAD_REQUEST, "invalid_request_error", None)
        } else if message.contains("blocked by the provider's safety system") {
            (StatusCode::BAD_REQUEST, "image_generation_user_error", Some("moderation_blocked"))
        } else if message.contains("rate limited by the provider") {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", Some("rate_limit_exceeded"))
        } else if message.contains("the provider is unavailable") {
            (StatusCode::SERVICE_UNAVAILABLE, "server_error", None)
        } else if message.contains("refused the credentials") {
            // The operator's provider key is wrong; the caller can do nothing about it.
            (StatusCode::BAD_GATEWAY, "server_error", Some("upstream_unauthorized"))
        } else {
            (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None)
        };
        ApiError { status, message, kind, param: None, code, retry_after_ms: None }
    }

    /// The envelope as JSON (also used for a failed video's `error`).
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        // The SDKs retry 429 and 5xx on their own; tell them not to hammer a request that will fail the same way.
        let retry = matches!(self.status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE);
        r.headers_mut().insert("x-should-retry", if retry { "true" } else { "false" }.parse().expect("static header"));
        if let Some(ms) = self.retry_after_ms {
            // Both: the OpenAI SDKs read `retry-after-ms` first, other HTTP clients `Retry-After`.
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, ms.div_ceil(1000).max(1).into());
            r.headers_mut().insert("retry-after-ms", ms.into());
        }
        r
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

/// Handler results.
pub type ApiResult<T> = Result<T, ApiError>;
