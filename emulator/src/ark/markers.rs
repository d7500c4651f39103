//! Fault markers in prompt text (`a cat [fault:429]`), shared by the ark, bfl and openai routes.
//!
//! A marker is `[fault:NAME]` or `[fault:NAME:ARG]`. "Once" faults fire on the first request with a
//! given body and not on its retry: they are keyed by provider, fault and a hash of the request
//! body, so a client retrying the same request succeeds while a different request faults again.

use crate::State;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The markers found in a prompt, in order, as (name, optional argument).
pub fn parse(prompt: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = prompt;
    while let Some(start) = rest.find("[fault:") {
        let after = &rest[start + 7..];
        let Some(end) = after.find(']') else { break };
        let inner = &after[..end];
        let (name, arg) = match inner.split_once(':') {
            Some((n, a)) => (n.trim().to_string(), Some(a.trim().to_string())),
            None => (inner.trim().to_string(), None),
        };
        out.push((name, arg));
        rest = &after[end + 1..];
    }
    out
}

/// The markers of one request.
#[derive(Debug, Clone, Default)]
pub struct Faults(Vec<(String, Option<String>)>);

impl Faults {
    /// Markers of `prompt`.
    pub fn of(prompt: &str) -> Faults {
        Faults(parse(prompt))
    }
    /// Whether `[fault:NAME]` (with or without an argument) is present.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
    /// The argument of `[fault:NAME:ARG]`, when present.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).and_then(|(_, a)| a.as_deref())
    }
    /// `[fault:slow:N]`: how many polls before the job finishes.
    pub fn slow(&self) -> Option<u32> {
        self.arg("slow").and_then(|a| a.parse().ok())
    }
}

/// True the first time `fault` is seen for this provider and request body, false on repeats.
pub fn once(state: &State, provider: &str, fault: &str, body: &[u8]) -> bool {
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    let key = format!("once:{provider}:{fault}:{:016x}", h.finish());
    if state.job(&key).is_some() {
        return false;
    }
    state.put_job(&key, serde_json::json!(true));
    true
}

/// `[fault:hang]`: never answer (the client's timeout must fire).
pub async fn hang() {
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_markers() {
        let f = Faults::of("a cat [fault:429] and [fault:slow:3][fault:expired]");
        assert!(f.has("429") && f.has("expired") && !f.has("500"));
        assert_eq!(f.slow(), Some(3));
        assert_eq!(f.arg("expired"), None);
        assert!(parse("no markers [fault:").is_empty());
    }
}
