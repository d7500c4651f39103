//! The fields of a request, whether it came as `multipart/form-data` (what the OpenAI SDKs send
//! for uploads) or JSON: text values and files, each taken once by name, so whatever is left over
//! at the end can be refused instead of silently ignored.

use super::errors::{ApiError, ApiResult};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use base64::Engine;
use bytes::Bytes;

/// An uploaded file.
#[derive(Clone, Debug)]
pub struct Upload {
    /// The bytes.
    pub bytes: Bytes,
}

enum Value {
    Text(String),
    File(Upload),
}

/// A request's fields, in the order they came.
pub struct Form {
    fields: Vec<(String, Value, bool)>,
}

impl Form {
    /// Read a multipart or JSON body (chosen by `Content-Type`); body limits give 413, a body
    /// not in within `timeout` gives 408 (so a trickled upload cannot hold its connection).
    pub async fn read(req: Request, max_body: u64, timeout: std::time::Duration) -> ApiResult<Form> {
        match tokio::time::timeout(timeout, Self::read_body(req, max_body)).await {
            Ok(r) => r,
            Err(_) => Err(ApiError::timeout(format!(
                "the request body did not arrive within {} s; send it faster or smaller (the operator sets the time with [server] body_timeout_s)",
                timeout.as_secs_f64()
            ))),
        }
    }

    async fn read_body(req: Request, max_body: u64) -> ApiResult<Form> {
        let ct = req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if ct.starts_with("multipart/form-data") {
            let mp = Multipart::from_request(req, &()).await.map_err(|e| ApiError::bad(format!("cannot read the multipart body: {e}")))?;
            Self::from_multipart(mp, max_body).await
        } else if ct.starts_with("application/json") {
            let body = Bytes::from_request(req, &()).await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE { too_large(max_body) } else { ApiError::bad(format!("cannot read the body: {e}")) }
            })?;
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("the body is not valid JSON ({e}); send a JSON object or multipart/form-data")))?;
            Self::from_json(v)
        } else {
            Err(ApiError::bad(format!(
                "unsupported Content-Type `{ct}`; send multipart/form-data (file uploads) or application/json"
            )))
        }
    }

    async fn from_multipart(mut mp: Multipart, max_body: u64) -> ApiResult<Form> {
        let mut fields = vec![];
        loop {
            let field = match mp.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large(max_body)),
                Err(e) => return Err(ApiError::bad(format!("malformed multipart body: {e}"))),
            };
            let name = field.name().unwrap_or("").to_string();
            if name.is_empty() {
                return Err(ApiError::bad("a multipart part has no name; every part needs Content-Disposition: form-data; name=\"...\""));
            }
            let is_file = field.file_name().is_some() || field.content_type().is_some_and(|c| !c.starts_with("text/"));
            let data = match field.bytes().await {
                Ok(b) => b,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large(max_body)),
                Err(e) => return Err(ApiError::field(&name, format!("cannot read part `{name}`: {e}"))),
            };
            // `input_reference[image_url]` / `image_url` parts carry a data URL: turn it into the file.
            if let Some(base) = name.strip_suffix("[image_url]") {
                let text = String::from_utf8(data.to_vec()).map_err(|_| ApiError::field(&name, format!("`{name}` must be a data: URL")))?;
                fields.push((base.to_string(), Value::File(data_url(&name, &text)?), false));
                continue;
            }
            if let Some(base) = name.strip_suffix("[file_id]") {
                return Err(no_file_ids(base));
            }
            let value = if is_file {
                Value::File(Upload { bytes: data })
            } else {
                Value::Text(String::from_utf8(data.to_vec()).map_err(|_| ApiError::field(&name, format!("`{name}` is not UTF-8 text; if it is a file, send it with a filename")))?)
            };
            fields.push((name, value, false));
        }
        Ok(Form { fields })
    }

    /// A JSON object: scalars become text; `{"image_url": "data:..."}` objects (and lists of them,
    /// as in `images`) become files.
    pub fn from_json(v: serde_json::Value) -> ApiResult<Form> {
        let serde_json::Value::Object(map) = v else {
            return Err(ApiError::bad("the body must be a JSON object"));
        };
        let mut fields = vec![];
        for (k, v) in map {
            match v {
                serde_json::Value::Null => {}
                serde_json::Value::String(s) => fields.push((k, Value::Text(s), false)),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => fields.push((k.clone(), Value::Text(v.to_string()), false)),
                serde_json::Value::Object(o) => fields.push((k.clone(), Value::File(image_ref(&k, &o)?), false)),
                serde_json::Value::Array(items) => {
                    for item in items {
                        match item {
                            serde_json::Value::Object(o) => fields.push((k.clone(), Value::File(image_ref(&k, &o)?), false)),
                            _ => return Err(ApiError::field(&k, format!("`{k}` must be a list of {{\"image_url\": \"data:...\"}} objects"))),
                        }
                    }
                }
            }
        }
        Ok(Form { fields })
    }

    /// The text field `name`, taken; a repeated field or a file where text belongs is an error.
    pub fn text(&mut self, name: &str) -> ApiResult<Option<String>> {
        let mut out = None;
        for (k, v, taken) in self.fields.iter_mut().filter(|(k, _, _)| k == name) {
            *taken = true;
            match v {
                Value::Text(t) if out.is_none() => out = Some(t.clone()),
                Value::Text(_) => return Err(ApiError::field(k, format!("`{k}` is given more than once; give it once"))),
                Value::File(_) => return Err(ApiError::field(k, format!("`{k}` must be a text value, not a file")).with_code("invalid_type")),
            }
        }
        Ok(out)
    }

    /// A whole number in `min..=max`, or none.
    pub fn number(&mut self, name: &str, min: u64, max: u64) -> ApiResult<Option<u64>> {
        match self.text(name)? {
            None => Ok(None),
            Some(t) => match t.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::field(name, format!("`{name}` must be a whole number from {min} to {max}, not `{t}`"))),
            },
        }
    }

    /// Every file under any of `names`, in order, taken; text where a file belongs is an error.
    pub fn files(&mut self, names: &[&str]) -> ApiResult<Vec<Upload>> {
        let mut out = vec![];
        for (k, v, taken) in self.fields.iter_mut().filter(|(k, _, _)| names.contains(&k.as_str())) {
            *taken = true;
            match v {
                Value::File(f) => out.push(f.clone()),
                Value::Text(_) => {
                    return Err(ApiError::field(
                        k,
                        format!("`{k}` must be a file: upload it as a multipart file part (with a filename), or in JSON as {{\"image_url\": \"data:image/png;base64,...\"}}"),
                    )
                    .with_code("invalid_type"));
                }
            }
        }
        Ok(out)
    }

    /// Names of fields nobody took, each once, in order.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for (k, _, taken) in &self.fields {
            if !taken && !out.contains(k) {
                out.push(k.clone());
            }
        }
        out
    }
}

fn too_large(max_body: u64) -> ApiError {
    ApiError::too_large(None, format!(
        "the request body is larger than the server's {} MiB limit; send smaller images (or the operator raises [server] max_body_mb in atelier.toml)",
        max_body >> 20
    ))
}

fn no_file_ids(field: &str) -> ApiError {
    ApiError::field(field, format!("`{field}`: file ids are not supported by atelier (there is no /v1/files); upload the file, or send a data: URL as image_url"))
}

/// `{"image_url": "data:..."}` (or `{"file_id": ...}`, which is refused).
fn image_ref(field: &str, o: &serde_json::Map<String, serde_json::Value>) -> ApiResult<Upload> {
    if o.contains_key("file_id") {
        return Err(no_file_ids(field));
    }
    match o.get("image_url").and_then(|v| v.as_str()) {
        Some(url) if o.len() == 1 => data_url(field, url),
        _ => Err(ApiError::field(field, format!("`{field}` must be {{\"image_url\": \"data:image/png;base64,...\"}} (exactly that one key)"))),
    }
}

/// Decode a base64 `data:` URL. Remote URLs are refused: the server fetches nothing on a caller's behalf.
fn data_url(field: &str, url: &str) -> ApiResult<Upload> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(ApiError::field(field, format!("`{field}`: atelier does not download image URLs; upload the file, or send a data:image/...;base64,... URL")));
    };
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(ApiError::field(field, format!("`{field}`: malformed data: URL (no comma)")));
    };
    if !meta.ends_with(";base64") {
        return Err(ApiError::field(field, format!("`{field}`: the data: URL must be base64 (data:image/png;base64,...)")));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| ApiError::field(field, format!("`{field}`: the data: URL is not valid base64 ({e})")))?;
    Ok(Upload { bytes: bytes.into() })
}
