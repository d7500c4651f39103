//! Test plugin: a video model whose outputs are streamed through contract 0.2's `artifacts`. The
//! prompt picks the case:
//!
//! - `video:BYTES` — one MP4-headed video of BYTES bytes, streamed in chunks;
//! - `over` — streams 2 MiB, past its `max_stream_mb = 1`: the host refuses the write;
//! - `unknown-handle` — returns an artifact naming stream 99, which it never opened;
//! - `pending` — `submit` goes pending; for 300 ms `poll` reports a streamed PNG preview of
//!   output 0 each time, then the finished video.

use atelier_sdk::*;

/// A real 1×1 RGBA PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41,
    0x54, 0x78, 0x9c, 0x63, 0x38, 0x91, 0x62, 0xf4, 0x1f, 0x00, 0x05, 0xb4, 0x02, 0x5e, 0x1f, 0x3a, 0xfb, 0xcb, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

#[derive(Default)]
struct Streamer;

/// A video of `len` bytes: an MP4 `ftyp` box, then a byte pattern, streamed 64 KiB at a time.
fn video(len: usize) -> Result<Artifact, Error> {
    use std::io::Write;
    let head = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom";
    let mut out = ArtifactStream::create("video/mp4")?;
    let mut left = len;
    let mut chunk = vec![0u8; 64 << 10];
    let mut first = true;
    while left > 0 {
        let n = left.min(chunk.len());
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        if first {
            let k = head.len().min(n);
            chunk[..k].copy_from_slice(&head[..k]);
            first = false;
        }
        out.write_all(&chunk[..n]).map_err(|e| Error::Internal(format!("streaming: {e}")))?;
        left -= n;
    }
    Ok(out.finish()?.audio(true))
}

fn outcome(prompt: &str) -> Result<Outcome, Error> {
    let (case, arg) = prompt.split_once(':').unwrap_or((prompt, ""));
    match case {
        "video" => Ok(Outcome::new(vec![video(arg.parse().map_err(|_| Error::invalid("video:BYTES"))?)?])),
        "over" => Ok(Outcome::new(vec![video(2 << 20)?])),
        "unknown-handle" => Ok(Outcome::new(vec![Artifact::with_body("video/mp4", Body::Stream(99))])),
        other => Err(Error::invalid(format!("unknown case `{other}`"))),
    }
}

impl Model for Streamer {
    fn describe(&self) -> ModelInfo {
        ModelInfo { description: "Streams its outputs, chosen by the prompt.".into(), ..ModelInfo::image_to_video("streamer", "Streamer") }
    }

    fn submit(&self, req: Request) -> Result<Submission, Error> {
        if req.prompt == "pending" {
            return Ok(Submission::Pending(Pending { token: clock::wall_ms().to_string(), retry_after_ms: 50 }));
        }
        Ok(Submission::Done(outcome(&req.prompt)?))
    }

    fn poll(&self, token: &str) -> Result<Status, Error> {
        let since: u64 = token.parse().map_err(|_| Error::invalid("bad token"))?;
        if clock::wall_ms().saturating_sub(since) < 300 {
            let preview = ArtifactStream::from_bytes("image/png", PNG)?;
            return Ok(Status::Running(Progress::running("rendering", 50).fraction(0.5).partial(Partial::preview(0, preview))));
        }
        Ok(Status::Done(Outcome::new(vec![video(100_000)?])))
    }
}

register_model!(Streamer);
