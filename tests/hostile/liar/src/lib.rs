//! Test plugin: a model whose outcome lies about itself. The prompt picks the lie, so one component
//! covers every case the host must check before it writes anything:
//!
//! - `ok` — one honest 1×1 PNG per output (the control case);
//! - `artifacts:N` — N artifacts in one call;
//! - `note:KB` — an honest PNG carrying a note of KB KiB;
//! - `html` — an artifact labelled `text/html` holding an HTML page;
//! - `garbage-gif` — HTML bytes labelled `image/gif`;
//! - `mixed` — `n` outputs, all honest except the second, which is `garbage-gif`;
//! - `png-as-video` — PNG bytes labelled `video/mp4`;
//! - `gif-screen:WxH` — a real GIF whose logical screen claims W×H around a 1×1 frame;
//! - `gif-frame:WxH` — a 1×1 screen holding a frame that claims W×H;
//! - `usage-max` — an honest PNG with usage counters at their maximum and negative video seconds;
//! - `prepare-huge` — `prepare` asks for inputs of exactly 2^31 × 2^31;
//! - `pending:<any of the above>` — `submit` goes pending and `poll` returns that outcome.

use atelier_sdk::*;

/// A real 1×1 RGBA PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41,
    0x54, 0x78, 0x9c, 0x63, 0x38, 0x91, 0x62, 0xf4, 0x1f, 0x00, 0x05, 0xb4, 0x02, 0x5e, 0x1f, 0x3a, 0xfb, 0xcb, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

const HTML: &[u8] = b"<html><body>503 Service Temporarily Unavailable</body></html>";

#[derive(Default)]
struct Liar;

/// A GIF89a with a two-colour table, a `screen` logical screen and one frame of `frame` size whose
/// LZW data is the single pixel of a 1×1 image: a few dozen bytes whatever the sizes claimed.
fn gif(screen: (u16, u16), frame: (u16, u16)) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&screen.0.to_le_bytes());
    g.extend_from_slice(&screen.1.to_le_bytes());
    g.extend_from_slice(&[0x80, 0, 0]); // global colour table of 2 entries, background 0, no aspect
    g.extend_from_slice(&[0xff, 0xff, 0xff, 0, 0, 0]);
    g.push(0x2c); // image descriptor at (0, 0)
    g.extend_from_slice(&[0, 0, 0, 0]);
    g.extend_from_slice(&frame.0.to_le_bytes());
    g.extend_from_slice(&frame.1.to_le_bytes());
    g.push(0); // no local colour table
    g.extend_from_slice(&[0x02, 0x02, 0x44, 0x01, 0x00]); // LZW min code size 2, one sub-block, end
    g.push(0x3b);
    g
}

fn size(text: &str) -> Result<(u16, u16), Error> {
    let (w, h) = text.split_once('x').ok_or(Error::invalid("write WxH"))?;
    Ok((w.parse().map_err(|_| Error::invalid("bad width"))?, h.parse().map_err(|_| Error::invalid("bad height"))?))
}

fn honest() -> Artifact {
    Artifact::inline("image/png", PNG.to_vec())
}

/// The outcome a prompt asks for.
fn outcome(prompt: &str, n: u32) -> Result<Outcome, Error> {
    let (lie, arg) = prompt.split_once(':').unwrap_or((prompt, ""));
    let one = |a: Artifact| Ok(Outcome::new(vec![a]));
    match lie {
        "ok" => Ok(Outcome::new((0..n.max(1)).map(|_| honest()).collect())),
        "artifacts" => {
            let count: usize = arg.parse().map_err(|_| Error::invalid("artifacts:N"))?;
            Ok(Outcome::new((0..count).map(|_| Artifact::inline("image/png", vec![])).collect()))
        }
        "note" => {
            let kb: usize = arg.parse().map_err(|_| Error::invalid("note:KB"))?;
            let mut a = honest();
            a.notes.push(("revised_prompt".into(), "x".repeat(kb << 10)));
            one(a)
        }
        "html" => one(Artifact::inline("text/html", HTML.to_vec())),
        "garbage-gif" => one(Artifact::inline("image/gif", HTML.to_vec())),
        "mixed" => Ok(Outcome::new(
            (0..n.max(2)).map(|i| if i == 1 { Artifact::inline("image/gif", HTML.to_vec()) } else { honest() }).collect(),
        )),
        "png-as-video" => one(Artifact::inline("video/mp4", PNG.to_vec())),
        "gif-screen" => one(Artifact::inline("image/gif", gif(size(arg)?, (1, 1)))),
        "gif-frame" => one(Artifact::inline("image/gif", gif((1, 1), size(arg)?))),
        "usage-max" => Ok(Outcome {
            usage: Usage {
                images: vec![ImageUsage { width: u32::MAX, height: u32::MAX, count: u32::MAX }; 3],
                input_tokens: Some(u64::MAX),
                output_tokens: Some(u64::MAX),
                video_seconds: Some(-1.0e30),
            },
            ..Outcome::new(vec![honest()])
        }),
        other => Err(Error::invalid(format!("unknown lie `{other}`"))),
    }
}

impl Model for Liar {
    fn describe(&self) -> ModelInfo {
        ModelInfo {
            description: "Returns outcomes that lie about themselves, chosen by the prompt.".into(),
            max_outputs: 8,
            ..ModelInfo::image_edit("liar", "Liar")
        }
    }

    fn prepare(&self, draft: &Draft) -> Result<InputPlan, Error> {
        if draft.prompt == "prepare-huge" {
            return Ok(InputPlan { exact_size: Some((1 << 31, 1 << 31)), max_side: None });
        }
        Ok(InputPlan { exact_size: None, max_side: None })
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        if let Some(rest) = req.prompt.strip_prefix("pending:") {
            return Ok(Submission::Pending(Pending { token: format!("{}|{rest}", req.n), retry_after_ms: 10 }));
        }
        Ok(Submission::Done(outcome(&req.prompt, req.n)?))
    }

    fn poll(&self, token: &str) -> Result<Status, Error> {
        let (n, prompt) = token.split_once('|').ok_or(Error::invalid("bad token"))?;
        Ok(Status::Done(outcome(prompt, n.parse().unwrap_or(1))?))
    }
}

register_model!(Liar);
