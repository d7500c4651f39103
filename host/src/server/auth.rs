//! Bearer tokens: `[server] tokens = { name = "env:VAR" | "file:PATH" }`, read once at start. Every
//! `/v1` request names its caller; jobs belong to that name.

use super::errors::ApiError;
use crate::settings::ServerSettings;
use anyhow::{Result, bail};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Who made a request (the token's name in `[server] tokens`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub String);

/// The caller name used when the server runs with `--insecure-no-auth`.
pub const ANONYMOUS: &str = "anonymous";

/// The tokens the server accepts.
#[derive(Clone)]
pub struct Tokens {
    /// SHA-256 of each token with its caller's name; hashes so comparison time says nothing about
    /// how much of a guess was right.
    by_hash: Vec<([u8; 32], String)>,
    /// No tokens: everyone is [`ANONYMOUS`] (only with `--insecure-no-auth`, on loopback).
    open: bool,
}

impl Tokens {
    /// Read every token now; a missing or empty one is an error naming its source.
    pub fn load(s: &ServerSettings, config_file: &str) -> Result<Tokens> {
        let mut by_hash = vec![];
        let mut problems = vec![];
        for (name, src) in &s.tokens {
            match src.read() {
                Some(t) if t.len() >= 16 => by_hash.push((hash(&t), name.clone())),
                Some(_) => problems.push(format!("the token for `{name}` ({src}) is shorter than 16 characters; use a long random one (e.g. `openssl rand -hex 32`)")),
                None => problems.push(format!("the token for `{name}` is not set: {src} is unset, unreadable or empty ({})", s.tokens_at)),
            }
        }
        if !problems.is_empty() {
            bail!("{}; fix {config_file} [server] tokens", problems.join("; "));
        }
        let mut seen = std::collections::HashSet::new();
        for (h, name) in &by_hash {
            if !seen.insert(*h) {
                bail!("two callers share one token (one of them is `{name}`); give each caller its own token in [server] tokens");
            }
        }
        Ok(Tokens { by_hash, open: false })
    }

    /// Everyone is let in as [`ANONYMOUS`].
    pub fn open() -> Tokens {
        Tokens { by_hash: vec![], open: true }
    }

    /// Whether no tokens are configured.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The caller a bearer token belongs to.
    pub fn caller(&self, token: &str) -> Option<&str> {
        let h = hash(token);
        // Look at every entry so the time taken does not depend on where a match is.
        let mut found = None;
        for (k, name) in &self.by_hash {
            if bool::from(subtle::ConstantTimeEq::ct_eq(&k[..], &h[..])) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

fn hash(t: &str) -> [u8; 32] {
    Sha256::digest(t.as_bytes()).into()
}

/// Middleware for `/v1`: 401 without a known bearer token, else the [`Caller`] goes along.
pub async fn require(State(tokens): State<Arc<Tokens>>, mut req: Request, next: Next) -> Response {
    if tokens.open {
        req.extensions_mut().insert(Caller(ANONYMOUS.into()));
        return with_caller(next.run(req).await, ANONYMOUS);
    }
    let header = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(header) = header else {
        return ApiError::unauthorized("You didn't provide an API key. Send `Authorization: Bearer TOKEN` with a token from the operator's [server] tokens (OpenAI clients: api_key=TOKEN).")
            .into_response();
    };
    let Some(token) = bearer(header) else {
        return ApiError::unauthorized("The Authorization header must be `Bearer TOKEN`.").into_response();
    };
    match tokens.caller(token) {
        Some(name) => {
            req.extensions_mut().insert(Caller(name.to_string()));
            with_caller(next.run(req).await, name)
        }
        None => ApiError::unauthorized("Incorrect API key provided; ask the operator for a token listed in [server] tokens.").into_response(),
    }
}

/// The token of `Bearer TOKEN`; the scheme's case does not matter (RFC 9110 §11.1), and any
/// run of spaces or tabs may follow it.
fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim_start().split_once([' ', '\t'])?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The caller rides on the response too, so the request log can name it.
fn with_caller(mut resp: Response, name: &str) -> Response {
    resp.extensions_mut().insert(Caller(name.to_string()));
    resp
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_scheme_is_case_insensitive() {
        for h in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR  abc ", "Bearer\tabc"] {
            assert_eq!(bearer(h), Some("abc"), "{h:?}");
        }
        for h in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc"] {
            assert_eq!(bearer(h), None, "{h:?}");
        }
    }
}
