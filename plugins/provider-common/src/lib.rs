//! Helpers shared by atelier's provider plugins (seedream, flux-kontext, sora-2).
//!
//! Everything here is pure (no host calls), so it is unit-tested natively: job tokens, `WxH`
//! sizes. Error envelopes and the retry table are the SDK's ([`atelier_sdk::ErrorBody`],
//! [`atelier_sdk::Error::from_response`]).

use atelier_sdk::{excerpt, Error};
use serde_json::Value;

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
