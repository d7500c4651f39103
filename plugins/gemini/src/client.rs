//! JSON calls to the Gemini API through the host, with the key placeholder and error mapping.

use crate::errors::{ErrorContext, map_http_error};
use atelier_sdk::Error;
use atelier_sdk::http::Request;
use serde_json::Value;

/// POST a JSON body and return the JSON answer, or the mapped Google error.
pub fn post_json(url: &str, body: &Value, ctx: &ErrorContext) -> Result<Value, Error> {
    let (name, value) = crate::auth_header();
    call(Request::post_json(url, body).header(&name, &value), ctx)
}

/// GET a JSON resource (an operation) and return it, or the mapped Google error.
pub fn get_json(url: &str, ctx: &ErrorContext) -> Result<Value, Error> {
    let (name, value) = crate::auth_header();
    call(Request::get(url).header(&name, &value), ctx)
}

fn call(req: Request, ctx: &ErrorContext) -> Result<Value, Error> {
    let resp = req.send()?;
    if !resp.is_success() {
        return Err(map_http_error(resp.status, &resp.body, ctx));
    }
    resp.json()
}
