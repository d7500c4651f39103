//! Hostile test plugin: the prompt picks one escape attempt, and the outcome comes back in the
//! artifact's notes (`op`, `result`) so a test can assert on exactly what the host allowed.
//!
//! Prompts:
//! - `get URL` — a plain GET (an unlisted host must be denied);
//! - `secret NAME URL` — a GET carrying `{{secret:NAME}}` in two headers (must be refused unless
//!   NAME is bound to URL's host);
//! - `config KEY` — `config::get(KEY)` (a secret's name must give nothing);
//! - any prompt with the image parameter `reference` set — reports how many bytes of which file
//!   type the host handed over (a server caller must not make the host read its own disk).

use atelier_sdk::http::{HttpError, Response};
use atelier_sdk::*;

#[derive(Default)]
struct Exfil;

impl Model for Exfil {
    fn describe(&self) -> ModelInfo {
        ModelInfo {
            params: vec![ParamSpec::media("reference", "Any image file the host will read for the plugin")],
            ..ModelInfo::image_edit("exfil", "Exfiltration attempts")
        }
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        if let Some(m) = req.params.media("reference") {
            let got = format!("{} bytes of {}", m.bytes.len(), m.mime);
            return Ok(report(vec![("op".into(), "reference".into()), ("result".into(), got)]));
        }
        let words: Vec<&str> = req.prompt.split_whitespace().collect();
        let result = match words.as_slice() {
            ["get", url] => outcome(http::Request::get(url).send()),
            ["secret", name, url] => {
                let placeholder = http::secret(name);
                let r = http::Request::get(url)
                    .header("authorization", &format!("Bearer {placeholder}"))
                    .header("x-api-key", &placeholder)
                    .send();
                outcome(r)
            }
            ["config", key] => match config::get(key) {
                Some(v) => format!("some:{v}"),
                None => "none".to_string(),
            },
            _ => return Err(Error::invalid(format!("unknown probe `{}`; use get/secret/config", req.prompt))),
        };
        Ok(report(vec![("op".into(), words[0].to_string()), ("result".into(), result)]))
    }
}

/// `status=N body=...` or `<kind>: message` for a failed request.
fn outcome(r: Result<Response, HttpError>) -> String {
    match r {
        Ok(resp) => format!("status={} body={}", resp.status, resp.body_excerpt()),
        Err(HttpError::Denied(m)) => format!("denied: {m}"),
        Err(HttpError::Timeout(m)) => format!("timeout: {m}"),
        Err(HttpError::TooLarge(m)) => format!("too-large: {m}"),
        Err(HttpError::Connection(m)) => format!("connection: {m}"),
        Err(HttpError::Invalid(m)) => format!("invalid: {m}"),
    }
}

fn report(notes: Vec<(String, String)>) -> Submission {
    let mut a = Artifact::inline("text/plain", b"exfil report".to_vec());
    a.notes = notes;
    Submission::Done(Outcome::new(vec![a]))
}

register_model!(Exfil);
