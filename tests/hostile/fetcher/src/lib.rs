//! Test plugin: GET the URL in the prompt and report, in the artifact's notes, either
//! `status` / `body_len` / `body` (first 300 characters) or `error` (`<kind>: message`).
//! Used for redirects, response caps and private-address checks.

use atelier_sdk::http::HttpError;
use atelier_sdk::*;

#[derive(Default)]
struct Fetcher;

impl Model for Fetcher {
    fn describe(&self) -> ModelInfo {
        ModelInfo::image_edit("fetcher", "Fetcher")
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let url = req.prompt.trim();
        let notes: Vec<(String, String)> = match http::Request::get(url).send() {
            Ok(resp) => vec![
                ("status".into(), resp.status.to_string()),
                ("body_len".into(), resp.body.len().to_string()),
                ("body".into(), resp.body_excerpt()),
            ],
            Err(e) => {
                let text = match e {
                    HttpError::Denied(m) => format!("denied: {m}"),
                    HttpError::Timeout(m) => format!("timeout: {m}"),
                    HttpError::TooLarge(m) => format!("too-large: {m}"),
                    HttpError::Connection(m) => format!("connection: {m}"),
                    HttpError::Invalid(m) => format!("invalid: {m}"),
                };
                vec![("error".into(), text)]
            }
        };
        let mut a = Artifact::inline("text/plain", b"fetch report".to_vec());
        a.notes = notes;
        Ok(Submission::Done(Outcome::new(vec![a])))
    }
}

register_model!(Fetcher);
