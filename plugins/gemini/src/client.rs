//! JSON calls to the Gemini API through the host, with the key placeholder and error mapping.

use crate::errors::{ErrorContext, map_http_error};
use atelier_sdk::Error;
use atelier_sdk::http::{Request, retry_after_ms};
use serde_json::Value;

/// POST a JSON body (a submit) and return the JSON answer, or the mapped Google error. A 2xx
/// answer that cannot be read says the job may exist at Google.
pub fn post_json(url: &str, body: &Value, ctx: &ErrorContext) -> Result<Value, Error> {
    let (name, value) = crate::auth_header();
    let resp = Request::post_json(url, body).header(&name, &value).send()?;
    if !resp.is_success() {
        return Err(map_http_error(resp.status, retry_after_ms(&resp), &resp.body, ctx));
    }
    resp.submit_json("Google")
}

/// GET a JSON resource (poll an operation; `ctx.resource` names it) and return it, or the
/// mapped Google error: transport failures, 5xx, 429, a 404 and an unreadable answer are all
/// transient (`unavailable` / `rate-limited`), for the host to count and poll again.
pub fn get_json(url: &str, ctx: &ErrorContext) -> Result<Value, Error> {
    let (name, value) = crate::auth_header();
    let resp = Request::get(url).header(&name, &value).send()?;
    if !resp.is_success() {
        return Err(map_http_error(resp.status, retry_after_ms(&resp), &resp.body, ctx));
    }
    resp.poll_json("Google")
}
