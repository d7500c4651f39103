//! Helpers shared by atelier's provider plugins (seedream, flux-kontext, sora-2).
//!
//! Everything here is pure (no host calls), so it is unit-tested natively: provider error
//! envelopes (read here, then handed to the SDK's one retry table, [`atelier_sdk::v0_1::retry`]), job
//! tokens, `WxH` sizes.

use atelier_sdk::v0_1::{excerpt, Error, Service};
use serde_json::Value;

/// What a provider said in an error body, whatever envelope it used.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorBody {
    /// The provider's code (`InvalidParameter`, `model_not_found`, ...), when it gave one.
    pub code: Option<String>,
    /// The provider's message (or the body excerpt when no envelope was recognised).
    pub message: String,
    /// The offending parameter, when named.
    pub param: Option<String>,
    /// The error type (`invalid_request_error`, `BadRequest`, ...), when given.
    pub kind: Option<String>,
}

/// Parse the error envelopes our providers use:
/// OpenAI / ModelArk `{"error":{"code","message","param","type"}}`,
/// FastAPI (BFL) `{"detail": "..."}` or `{"detail":[{"loc":[...],"msg":"..."}]}`,
/// and the loose `{"error":"code","message":"..."}` / `{"message":"..."}` shapes.
/// Falls back to the body text, so a message is never empty.
pub fn parse_error_body(body: &[u8]) -> ErrorBody {
    let fallback = || ErrorBody { message: excerpt(body, 300), ..ErrorBody::default() };
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return fallback() };
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(e) = v.get("error").filter(|e| e.is_object()) {
        return ErrorBody {
            code: e.get("code").and_then(text),
            message: e.get("message").and_then(text).unwrap_or_else(|| excerpt(body, 300)),
            param: e.get("param").and_then(text),
            kind: e.get("type").and_then(text),
        };
    }
    if let Some(d) = v.get("detail") {
        if let Some(s) = d.as_str() {
            return ErrorBody { message: s.to_string(), ..ErrorBody::default() };
        }
        if let Some(items) = d.as_array() {
            let msgs: Vec<String> = items.iter().map(describe_validation_item).collect();
            let param = items.first().and_then(|i| i.get("loc")).and_then(|l| l.as_array()).and_then(|l| l.last()).and_then(text);
            return ErrorBody { message: msgs.join("; "), param, kind: Some("validation".into()), ..ErrorBody::default() };
        }
    }
    let code = v.get("error").and_then(text);
    match v.get("message").and_then(text) {
        Some(message) => ErrorBody { code, message, ..ErrorBody::default() },
        None => match code {
            Some(c) => ErrorBody { message: c.clone(), code: Some(c), ..ErrorBody::default() },
            None => fallback(),
        },
    }
}

/// `body.field: message` for one FastAPI validation item.
fn describe_validation_item(item: &Value) -> String {
    let loc = item
        .get("loc")
        .and_then(|l| l.as_array())
        .map(|l| l.iter().map(|p| p.as_str().map(str::to_string).unwrap_or_else(|| p.to_string())).collect::<Vec<_>>().join("."))
        .unwrap_or_default();
    let msg = item.get("msg").and_then(|m| m.as_str()).unwrap_or("invalid");
    if loc.is_empty() { msg.to_string() } else { format!("{loc}: {msg}") }
}

/// Map a non-2xx answer to a submit (or a cancel) to an [`Error`] the host can act on: the
/// envelope's code and message through the SDK's retry table ([`Error::from_status`]).
/// Plugins handle their provider's special cases (moderation codes, 404 model ids) before calling this.
pub fn map_status(service: &Service, status: u16, retry_after_ms: Option<u64>, body: &[u8]) -> Error {
    let e = parse_error_body(body);
    Error::from_status(service, status, retry_after_ms, e.code.as_deref(), &e.message)
}

/// Map a non-2xx answer to a poll: like [`map_status`], but every 5xx is `unavailable`
/// ([`Error::from_poll_status`]); the plugin handles a 404 itself ([`Error::not_found_yet`]).
pub fn map_poll_status(service: &Service, status: u16, retry_after_ms: Option<u64>, body: &[u8]) -> Error {
    let e = parse_error_body(body);
    Error::from_poll_status(service, status, retry_after_ms, e.code.as_deref(), &e.message)
}

/// A job token: compact JSON, so a job can be resumed by another process.
pub fn encode_token(value: &Value) -> String {
    value.to_string()
}

/// Read a token written by [`encode_token`]; a bad one is an internal error naming the token.
pub fn decode_token(token: &str) -> Result<Value, Error> {
    serde_json::from_str::<Value>(token)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| Error::Internal(format!("unreadable job token `{}`", excerpt(token.as_bytes(), 120))))
}

/// A required string field of a token.
pub fn token_str<'a>(token: &'a Value, key: &str) -> Result<&'a str, Error> {
    token.get(key).and_then(Value::as_str).ok_or_else(|| Error::Internal(format!("job token lacks `{key}`")))
}

/// Parse `WxH` (e.g. `1280x720`) into (width, height); `None` for anything else.
pub fn parse_wxh(text: &str) -> Option<(u32, u32)> {
    let (w, h) = text.trim().split_once(['x', 'X'])?;
    let (w, h) = (w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// A base URL without its trailing slashes, so paths can be appended with `/`.
pub fn trim_base(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openai_and_ark_envelopes() {
        let ark = br#"{"error":{"code":"InvalidParameter","message":"bad size. Request id: 1","param":"size","type":"BadRequest"}}"#;
        let e = parse_error_body(ark);
        assert_eq!(e.code.as_deref(), Some("InvalidParameter"));
        assert_eq!(e.param.as_deref(), Some("size"));
        assert_eq!(e.kind.as_deref(), Some("BadRequest"));
        let oa = br#"{"error":{"message":"nope","type":"invalid_request_error","param":null,"code":null}}"#;
        let e = parse_error_body(oa);
        assert_eq!((e.code, e.message.as_str(), e.param), (None, "nope", None));
    }

    #[test]
    fn parses_fastapi_details_and_loose_shapes() {
        let v = br#"{"detail":[{"loc":["body","safety_tolerance"],"msg":"Input should be less than or equal to 6","type":"less_than_equal"}]}"#;
        let e = parse_error_body(v);
        assert_eq!(e.message, "body.safety_tolerance: Input should be less than or equal to 6");
        assert_eq!(e.param.as_deref(), Some("safety_tolerance"));
        assert_eq!(parse_error_body(br#"{"detail":"Not authenticated"}"#).message, "Not authenticated");
        let rl = parse_error_body(br#"{"error":"rate_limit_exceeded","message":"Too many","retry_after":5}"#);
        assert_eq!((rl.code.as_deref(), rl.message.as_str()), (Some("rate_limit_exceeded"), "Too many"));
        assert_eq!(parse_error_body(b"<html>oops</html>").message, "<html>oops</html>");
    }

    const X: Service = Service { name: "X", plugin_id: "x-plugin", secret: "K" };

    #[test]
    fn maps_statuses_through_the_sdk_table() {
        assert!(matches!(map_status(&X, 401, None, b"{}"), Error::Unauthorized(m) if m.contains("K") && m.contains("[plugins.x-plugin.secrets]")));
        assert!(matches!(map_status(&X, 429, Some(900), b"{}"), Error::RateLimited(r) if r.retry_after_ms == Some(900)));
        for status in [500, 502, 503, 504, 408] {
            assert!(matches!(map_status(&X, status, None, b"{}"), Error::Unavailable(_)), "{status}");
        }
        let body = br#"{"error":{"code":"InvalidParameter","message":"m"}}"#;
        assert!(matches!(map_status(&X, 400, None, body), Error::InvalidInput(m) if m.contains("InvalidParameter") && m.ends_with(": m")));
        assert!(matches!(map_status(&X, 409, None, body), Error::Provider(p) if p.code == "InvalidParameter" && p.message.ends_with(": m")));
        assert!(matches!(map_status(&X, 418, None, b"teapot"), Error::Provider(p) if p.code == "418" && p.message.ends_with("teapot")));
        assert!(matches!(map_status(&X, 501, None, b"{}"), Error::Provider(_)));
        assert!(matches!(map_poll_status(&X, 501, None, b"{}"), Error::Unavailable(_)));
        assert!(matches!(map_poll_status(&X, 500, None, br#"{"detail":"Internal Server Error"}"#), Error::Unavailable(m) if m.contains("Internal Server Error")));
    }

    #[test]
    fn tokens_and_sizes() {
        let t = encode_token(&serde_json::json!({"id":"a"}));
        assert_eq!(token_str(&decode_token(&t).unwrap(), "id").unwrap(), "a");
        assert!(decode_token("garbage").is_err());
        assert_eq!(parse_wxh("1280x720"), Some((1280, 720)));
        assert_eq!(parse_wxh("0x5"), None);
        assert_eq!(parse_wxh("2K"), None);
        assert_eq!(trim_base("http://a/ "), "http://a");
    }
}
