//! `artifacts` (contract 0.2): outputs written in chunks, so a plugin's output of any size (a
//! long video) never crosses the boundary in one copy. Each stream is a file of its own in a
//! directory made for the call; its bytes count against the plugin's `max_stream_mb` and the
//! number of streams against `max_artifacts`. A stream a returned artifact names is taken out
//! as a file the host holds; the rest are deleted when the call ends.

use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// The streams of one call.
#[derive(Default)]
pub(crate) struct Streams {
    /// The call's directory, made at the first `create`.
    dir: Option<PathBuf>,
    open: BTreeMap<u32, Stream>,
    /// Handles given out so far (a taken handle is not reused).
    created: u32,
    /// Bytes written to all streams of the call.
    written: u64,
    limits: StreamLimits,
}

/// What one call may stream, and whom to name in refusals.
#[derive(Clone, Default)]
pub(crate) struct StreamLimits {
    /// Bytes over all streams of one call.
    pub max_bytes: u64,
    /// Streams one call may open.
    pub max_streams: u32,
    /// The plugin's limits, for the "raise it here" message.
    pub limits: crate::manifest::Limits,
    /// Plugin id.
    pub plugin: String,
    /// The operator's config file.
    pub config_path: String,
}

struct Stream {
    path: PathBuf,
    file: tokio::fs::File,
}

impl Streams {
    /// No stream yet, with these limits.
    pub(crate) fn new(limits: StreamLimits) -> Streams {
        Streams { dir: None, open: BTreeMap::new(), created: 0, written: 0, limits }
    }

    /// `artifacts.create`: a new, empty stream file.
    pub(crate) async fn create(&mut self, mime: &str) -> Result<u32, String> {
        let l = &self.limits;
        if self.created >= l.max_streams {
            let what = format!("tried to open artifact stream {} in one call", self.created + 1);
            return Err(l.limits.over_message(&l.plugin, &l.config_path, "max_artifacts", &what));
        }
        if mime.is_empty() || mime.len() > 255 {
            return Err("a stream needs a media type such as video/mp4".into());
        }
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => {
                let d = std::env::temp_dir().join(format!("atelier-streams-{}-{:016x}", std::process::id(), rand::random::<u64>()));
                tokio::fs::create_dir_all(&d).await.map_err(|e| format!("the host cannot make a stream directory: {e}"))?;
                self.dir = Some(d.clone());
                d
            }
        };
        let handle = self.created;
        let path = dir.join(format!("stream-{handle}"));
        let file = tokio::fs::File::create(&path).await.map_err(|e| format!("the host cannot open a stream file: {e}"))?;
        self.created += 1;
        self.open.insert(handle, Stream { path, file });
        Ok(handle)
    }

    /// `artifacts.write`: append `chunk`; refused for an unknown handle or past `max_stream_mb`.
    pub(crate) async fn write(&mut self, handle: u32, chunk: &[u8]) -> Result<(), String> {
        let Some(s) = self.open.get_mut(&handle) else {
            return Err(format!("there is no open artifact stream {handle} (create one with artifacts.create)"));
        };
        let after = self.written.saturating_add(chunk.len() as u64);
        if after > self.limits.max_bytes {
            let l = &self.limits;
            let what = format!("tried to stream {} MiB of artifacts in one call", after.div_ceil(1 << 20));
            return Err(l.limits.over_message(&l.plugin, &l.config_path, "max_stream_mb", &what));
        }
        // Flushed on every write: the file is complete whenever the call returns.
        s.file.write_all(chunk).await.map_err(|e| format!("the host cannot write the stream: {e}"))?;
        s.file.flush().await.map_err(|e| format!("the host cannot write the stream: {e}"))?;
        self.written = after;
        Ok(())
    }

    /// The file of stream `handle`, now the caller's: moved out of the call's directory so it
    /// outlives the call. An unknown or already taken handle is refused.
    pub(crate) fn take(&mut self, handle: u32) -> Result<PathBuf, String> {
        let s = self.open.remove(&handle).ok_or_else(|| format!("returned an artifact naming stream {handle}, which it did not open in this call (or named twice)"))?;
        drop(s.file);
        let kept = std::env::temp_dir().join(format!("atelier-artifact-{}-{:016x}", std::process::id(), rand::random::<u64>()));
        std::fs::rename(&s.path, &kept).map_err(|e| format!("the host cannot keep stream {handle}: {e}"))?;
        Ok(kept)
    }

    /// Bytes written so far.
    #[cfg(test)]
    pub(crate) fn written(&self) -> u64 {
        self.written
    }
}

impl Drop for Streams {
    /// The call is over: streams no artifact named are deleted, with the call's directory.
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Links contract 0.2's `artifacts` import.
pub(crate) fn add_to_linker_v0_2(l: &mut wasmtime::component::Linker<crate::wasm::store::HostState>) -> wasmtime::Result<()> {
    crate::wasm::since_v0_2::imports::artifacts::add_to_linker::<_, wasmtime::component::HasSelf<_>>(l, |s| s)
}

impl crate::wasm::since_v0_2::imports::artifacts::Host for crate::wasm::store::HostState {
    async fn create(&mut self, mime: String) -> Result<u32, String> {
        self.streams.create(&mime).await
    }
    async fn write(&mut self, stream: u32, chunk: Vec<u8>) -> Result<(), String> {
        self.streams.write(stream, &chunk).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(max_bytes: u64, max_streams: u32) -> Streams {
        Streams::new(StreamLimits { max_bytes, max_streams, limits: Default::default(), plugin: "p".into(), config_path: "atelier.toml".into() })
    }

    #[tokio::test]
    async fn a_stream_is_kept_when_taken_and_the_rest_are_deleted() {
        let mut s = streams(1 << 20, 4);
        let a = s.create("video/mp4").await.unwrap();
        let b = s.create("video/mp4").await.unwrap();
        s.write(a, b"abc").await.unwrap();
        s.write(a, b"def").await.unwrap();
        s.write(b, b"dropped").await.unwrap();
        let dir = s.dir.clone().unwrap();
        let kept = s.take(a).unwrap();
        assert!(s.take(a).unwrap_err().contains("did not open"), "a handle is taken once");
        drop(s);
        assert_eq!(std::fs::read(&kept).unwrap(), b"abcdef");
        assert!(!dir.exists(), "the untaken stream went with the call's directory");
        std::fs::remove_file(kept).unwrap();
    }

    #[tokio::test]
    async fn writing_past_the_limit_or_to_an_unknown_handle_is_refused() {
        let mut s = streams(8, 1);
        let a = s.create("video/mp4").await.unwrap();
        s.write(a, b"12345678").await.unwrap();
        let e = s.write(a, b"9").await.unwrap_err();
        assert!(e.contains("max_stream_mb") && e.contains("[plugins.p.limits]"), "{e}");
        assert_eq!(s.written(), 8, "the refused chunk is not counted or written");
        assert!(s.write(9, b"x").await.unwrap_err().contains("no open artifact stream 9"));
        let e = s.create("video/mp4").await.unwrap_err();
        assert!(e.contains("max_artifacts"), "{e}");
    }
}
