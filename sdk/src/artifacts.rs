//! Artifacts of any size: an [`ArtifactStream`] writes an output to the host in chunks, so a long
//! video never has to cross the boundary in one copy (contract 0.2 `artifacts`).

use crate::contract::artifacts as wit;
use crate::{Artifact, Body, Error};
use std::io::{self, Write};

/// How many bytes are handed to the host per call: large enough that the calls cost nothing next
/// to the copy, small enough that no one call holds a second copy of a whole video.
const CHUNK: usize = 1 << 20;

/// An output written to the host in chunks; [`std::io::Write`] it, then [`finish`](Self::finish)
/// it into an [`Artifact`] to return from `submit` or `poll`.
///
/// ```ignore
/// let mut out = ArtifactStream::create("video/mp4")?;
/// std::io::copy(&mut reader, &mut out).map_err(|e| Error::Internal(e.to_string()))?;
/// let artifact = out.finish()?.audio(true);
/// ```
#[derive(Debug)]
pub struct ArtifactStream {
    handle: u32,
    mime: String,
    pending: Vec<u8>,
    written: u64,
}

impl ArtifactStream {
    /// Open a stream for an output of media type `mime`. Fails when the plugin already holds the
    /// most streams one call may open.
    pub fn create(mime: &str) -> Result<Self, Error> {
        let handle = wit::create(mime).map_err(|m| Error::Internal(format!("the host refused a new {mime} artifact stream: {m}")))?;
        Ok(ArtifactStream { handle, mime: mime.into(), pending: Vec::with_capacity(CHUNK), written: 0 })
    }

    /// Stream `bytes` already in hand (a provider's base64 video, decoded) as one artifact.
    pub fn from_bytes(mime: &str, bytes: &[u8]) -> Result<Artifact, Error> {
        let mut out = Self::create(mime)?;
        out.write_all(bytes).map_err(|e| Error::Internal(format!("streaming the {mime} artifact: {e}")))?;
        out.finish()
    }

    /// Bytes written so far (handed to the host or waiting in the buffer).
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Hand the last bytes to the host and return the artifact that names this stream.
    pub fn finish(mut self) -> Result<Artifact, Error> {
        self.send_pending().map_err(|e| Error::Internal(format!("streaming the {} artifact: {e}", self.mime)))?;
        Ok(Artifact::with_body(&self.mime, Body::Stream(self.handle)))
    }

    fn send_pending(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            wit::write(self.handle, &self.pending).map_err(io::Error::other)?;
            self.pending.clear();
        }
        Ok(())
    }
}

impl Write for ArtifactStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = buf.len().min(CHUNK - self.pending.len());
        self.pending.extend_from_slice(&buf[..take]);
        self.written += take as u64;
        if self.pending.len() == CHUNK {
            self.send_pending()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()
    }
}
