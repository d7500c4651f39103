//! Hostile test plugin: the prompt picks one way to overwhelm the host, and every string it hands
//! the host (describe text, errors, progress, logs) carries terminal escapes.
//!
//! Prompts:
//! - `rate-limit-forever` — `submit` answers rate-limited with a retry-after of `u64::MAX` ms;
//! - `pending-forever KIND URL` — `submit` answers pending with a first poll after `u64::MAX` ms;
//!   `poll` answers running (KIND `running`) or rate-limited (KIND `rate-limited`), again after
//!   `u64::MAX` ms, forever; `cancel` reports itself with a GET of `URL/cancelled/KIND`;
//! - `http N URL` — GET URL N times, ignoring refusals; notes `ok` (requests answered), `refused`
//!   and `first_error`;
//! - `log N` — N warning lines of about 200 bytes each, with escapes, then echo the input;
//! - `token BYTES URL` — pending with a token of BYTES bytes (starting with URL, so `cancel`
//!   can report `URL/cancelled/token-BYTES`);
//! - `error` — an invalid-input error full of escapes, after logging one such line;
//! - `streams N` — opens N artifact streams (contract 0.2 `artifacts.create`) without using them;
//!   notes `opened` and `first_error` (the host's refusal once past its limit), echoes the input;
//! - `stream-bytes MIB` — writes MIB MiB of zeros into one `video/mp4` stream in 1 MiB chunks and
//!   returns it; an error (the host's size limit) ends the call with `internal`, naming the MiB written;
//! - `stream-bogus` — returns an artifact naming a stream handle it never opened.

use atelier_sdk::*;

/// Clears the screen, moves home, returns the carriage, forges a line, overrides the text
/// direction: what a terminal must never receive raw from a plugin.
const NASTY: &str = "\u{1b}[2J\u{1b}[H\rerror: forged line\n\u{202e}gnp.exe\u{7}\u{9b}31m";

#[derive(Default)]
struct Flood;

impl Model for Flood {
    fn describe(&self) -> ModelInfo {
        ModelInfo {
            description: format!("floods the host{NASTY}"),
            params: vec![
                ParamSpec::text("mode", &format!("picks a misbehaviour{NASTY}")),
                ParamSpec::choice("tone", "a choice with escapes", &["plain", "\u{1b}]0;pwned\u{7}"]),
            ],
            ..ModelInfo::image_edit("flood", &format!("Flood{NASTY}"))
        }
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        let words: Vec<&str> = req.prompt.split_whitespace().collect();
        match words.as_slice() {
            ["rate-limit-forever"] => {
                Err(Error::RateLimited(RateLimit { retry_after_ms: Some(u64::MAX), message: format!("wait forever{NASTY}") }))
            }
            ["pending-forever", kind, url] => {
                Ok(Submission::Pending(Pending { token: format!("{kind} {url}"), retry_after_ms: u64::MAX }))
            }
            ["http", n, url] => {
                let n: u32 = n.parse().map_err(|_| Error::invalid("http N URL"))?;
                let (mut ok, mut refused, mut first_error) = (0u32, 0u32, String::new());
                for _ in 0..n {
                    match http::Request::get(url).send() {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            refused += 1;
                            if first_error.is_empty() {
                                first_error = error_text(e);
                            }
                        }
                    }
                }
                Ok(echo(req, vec![("ok".into(), ok.to_string()), ("refused".into(), refused.to_string()), ("first_error".into(), first_error)]))
            }
            ["log", n] => {
                let n: u32 = n.parse().map_err(|_| Error::invalid("log N"))?;
                for i in 0..n {
                    log::warn(&format!("flood line {i}{NASTY} {}", "x".repeat(150)));
                }
                Ok(echo(req, vec![("logged".into(), n.to_string())]))
            }
            ["token", bytes, url] => {
                let bytes: usize = bytes.parse().map_err(|_| Error::invalid("token BYTES URL"))?;
                let mut token = format!("{url} ");
                token.push_str(&"t".repeat(bytes.saturating_sub(token.len())));
                Ok(Submission::Pending(Pending { token, retry_after_ms: 10 }))
            }
            ["streams", n] => {
                let n: u32 = n.parse().map_err(|_| Error::invalid("streams N"))?;
                let (mut opened, mut first_error) = (0u32, String::new());
                for _ in 0..n {
                    match ArtifactStream::create(&format!("video/mp4{NASTY}")) {
                        Ok(_) => opened += 1,
                        Err(e) => {
                            first_error = format!("{e:?}");
                            break;
                        }
                    }
                }
                Ok(echo(req, vec![("opened".into(), opened.to_string()), ("first_error".into(), first_error)]))
            }
            ["stream-bytes", mib] => {
                let mib: u64 = mib.parse().map_err(|_| Error::invalid("stream-bytes MIB"))?;
                let mut out = ArtifactStream::create("video/mp4")?;
                let chunk = vec![0u8; 1 << 20];
                for i in 0..mib {
                    std::io::Write::write_all(&mut out, &chunk).map_err(|e| Error::Internal(format!("refused after {i} MiB: {e}")))?;
                }
                Ok(Submission::Done(Outcome::new(vec![out.finish()?])))
            }
            ["stream-bogus"] => Ok(Submission::Done(Outcome::new(vec![Artifact::with_body("video/mp4", Body::Stream(0xdead_beef))]))),
            ["error"] => {
                log::warn(&format!("about to fail{NASTY}"));
                Err(Error::InvalidInput(format!("bad input{NASTY}")))
            }
            _ => Err(Error::invalid(format!("unknown misbehaviour `{}`", req.prompt))),
        }
    }

    fn poll(&self, token: &str) -> Result<Status, Error> {
        match token.split_whitespace().next() {
            Some("rate-limited") => {
                Err(Error::RateLimited(RateLimit { retry_after_ms: Some(u64::MAX), message: format!("still busy{NASTY}") }))
            }
            _ => Ok(Status::Running(Progress { fraction: None, retry_after_ms: u64::MAX, state: format!("queued{NASTY}"), partials: vec![] })),
        }
    }

    fn cancel(&self, token: &str) -> Result<(), Error> {
        let mut words = token.split_whitespace();
        let (Some(first), Some(second)) = (words.next(), words.next()) else { return Ok(()) };
        let url = if first.starts_with("http") {
            format!("{first}/cancelled/token-{}", token.len())
        } else {
            format!("{second}/cancelled/{first}")
        };
        http::Request::get(&url).send().map(|_| ()).map_err(|e| Error::Internal(format!("cancel failed: {}", error_text(e))))
    }
}

/// `<kind>: message`, as the other hostile plugins report a failed request.
fn error_text(e: http::HttpError) -> String {
    use http::HttpError as E;
    match e {
        E::Denied(m) => format!("denied: {m}"),
        E::Timeout(m) => format!("timeout: {m}"),
        E::TooLarge(m) => format!("too-large: {m}"),
        E::Connection(m) => format!("connection: {m}"),
        E::Invalid(m) => format!("invalid: {m}"),
    }
}

/// The first reference back, with notes: a real image, so the CLI's pipeline can finish.
fn echo(req: Request, notes: Vec<(String, String)>) -> Submission {
    let input = req.references.into_iter().next();
    let mut a = match input {
        Some(m) => Artifact::inline(&m.mime, m.bytes),
        None => Artifact::inline("text/plain", b"no input".to_vec()),
    };
    a.notes = notes;
    Submission::Done(Outcome::new(vec![a]))
}

register_model!(Flood);
