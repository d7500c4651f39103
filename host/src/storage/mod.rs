//! Where the server's artifacts live: video content and `url` results. Local files under the
//! state dir by default; an S3-compatible bucket when the operator sets `[storage] url =
//! "s3://bucket/prefix"`, so several `atelier serve` front ends can answer for the same videos.
//!
//! Artifacts are written once and never replaced (conditional puts where the store supports
//! them) and read back as streams: a video is never held whole in memory on either path.

mod http;

use crate::settings::{SecretSource, StorageSettings};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, WriteMultipart};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;

/// Files up to this size go up in one conditional put (read whole, so this bounds the memory a
/// put takes); bigger ones are streamed in multipart parts.
pub const SINGLE_PUT_MAX: u64 = 16 << 20;
/// Size of one multipart part (S3 wants at least 5 MiB for all but the last).
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once per upload: memory per upload is at most this many parts.
const PARTS_IN_FLIGHT: usize = 2;

/// The store the server reads and writes its artifacts through. Keys are `/`-separated paths
/// relative to the store's root (`videos/<id>/video.mp4`, `images/<request>/out/<name>`).
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// The directory of the local default (files are served from there directly).
    local_root: Option<PathBuf>,
    /// Prefix of every key inside the bucket (`prefix` of `s3://bucket/prefix`).
    prefix: String,
    /// `s3://bucket/prefix at <endpoint>`, or the local directory: for logs and messages.
    location: String,
    /// Where `[storage] url` is written, for messages.
    at: String,
    /// Where `[storage] access_key_id` is written (else `url`), for messages about credentials.
    credentials_at: String,
}

/// The key of a video's file: `videos/<video id>/<file name>`, the same for every front end and
/// worker that finishes or serves it.
pub fn video_key(video: &str, file: &Path) -> String {
    format!("videos/{video}/{}", file.file_name().and_then(|n| n.to_str()).unwrap_or("video"))
}

/// The key of a raw artifact a worker wrote for job `job` (`jobs/<job id>/<file name>`): front
/// ends that share the job store read it from there instead of the worker's state dir.
pub fn job_artifact_key(job: &str, name: &str) -> String {
    format!("jobs/{job}/{name}")
}

/// The key of a `url` result: `images/<request id>/out/<file name>` (the local default's layout).
pub fn image_result_key(request: &str, name: &str) -> String {
    format!("images/{request}/out/{name}")
}

/// An artifact being read.
pub struct Artifact {
    /// Its size in bytes.
    pub size: u64,
    /// When it was written.
    pub modified: SystemTime,
    /// Its bytes, a chunk at a time.
    pub stream: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ArtifactStore({})", self.location)
    }
}

impl ArtifactStore {
    /// Local files under `root` (the default).
    pub fn local(root: &Path) -> Result<ArtifactStore> {
        std::fs::create_dir_all(root).with_context(|| format!("{}: cannot create the artifact directory; check --state-dir", root.display()))?;
        let fs = LocalFileSystem::new_with_prefix(root).with_context(|| format!("{}: cannot use as the artifact directory", root.display()))?;
        Ok(ArtifactStore { store: Arc::new(fs), local_root: Some(root.to_path_buf()), prefix: String::new(), location: root.display().to_string(), at: String::new(), credentials_at: String::new() })
    }

    /// The store `[storage]` names, or local files under `local_root` when it names none.
    /// Credentials are read here, by the host only; they are never part of any plugin's config.
    pub fn open(s: &StorageSettings, local_root: &Path) -> Result<ArtifactStore> {
        let Some(url) = &s.url else { return Self::local(local_root) };
        let at = s.at("url");
        let rest = url.strip_prefix("s3://").ok_or_else(|| anyhow::anyhow!("{at}: [storage] url = \"{url}\" must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(s.region.clone().unwrap_or_else(|| "us-east-1".into()))
            .with_http_connector(http::ReqwestConnector)
            // The default (10 retries over 3 minutes) would hold `atelier serve` that long on a
            // wrong endpoint before saying so.
            .with_retry(RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(30), ..Default::default() });
        if let Some(e) = &s.endpoint {
            // S3-compatible services (MinIO, moto, Ceph) are addressed by path, not by bucket host.
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://")).with_virtual_hosted_style_request(false);
        }
        let secret = |key: &str, src: &SecretSource| -> Result<String> {
            src.read().ok_or_else(|| anyhow::anyhow!("{}: [storage] {key} = \"{src}\" is empty or unset; set it (or fix the line)", s.at(key)))
        };
        if let (Some(id), Some(key)) = (&s.access_key_id, &s.secret_access_key) {
            b = b.with_access_key_id(secret("access_key_id", id)?).with_secret_access_key(secret("secret_access_key", key)?);
        }
        if let Some(t) = &s.session_token {
            b = b.with_token(secret("session_token", t)?);
        }
        let store = b.build().map_err(|e| anyhow::anyhow!("{at}: [storage] url = \"{url}\": {e}"))?;
        let shown = match &s.endpoint {
            Some(e) => format!("{url} at {e}"),
            None => url.clone(),
        };
        let credentials_at = if s.access_key_id.is_some() { s.at("access_key_id") } else { at.clone() };
        Ok(ArtifactStore { store: Arc::new(store), local_root: None, prefix: prefix.trim_matches('/').to_string(), location: shown, at, credentials_at })
    }

    /// True when artifacts go to an object store rather than the state dir.
    pub fn is_remote(&self) -> bool {
        self.local_root.is_none()
    }

    /// Where artifacts go, for logs and `doctor`.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn key(&self, rel: &str) -> Key {
        if self.prefix.is_empty() { Key::from(rel) } else { Key::from(format!("{}/{rel}", self.prefix)) }
    }

    /// Write and remove a probe object: the bucket exists and the credentials may write and
    /// delete. The error names the config line to fix. Nothing to check for local files.
    pub async fn check(&self) -> Result<()> {
        if !self.is_remote() {
            return Ok(());
        }
        let probe = self.key(&format!(".atelier-probe/{:032x}", rand::random::<u128>()));
        let hint = |e: &object_store::Error| -> String {
            let text = format!("{e}");
            let (at, fix) = if text.contains("169.254.169.254") {
                (&self.at, "no credentials are configured and the machine has no role to take them from: set access_key_id and secret_access_key")
            } else if text.contains("NoSuchBucket") {
                (&self.at, "the bucket does not exist: create it, or fix the bucket name in url")
            } else if text.contains("InvalidAccessKeyId") || text.contains("SignatureDoesNotMatch") || text.contains("AccessDenied") || text.contains("403") {
                (&self.credentials_at, "the store refused the credentials: check access_key_id and secret_access_key (and that they may write to this bucket)")
            } else {
                (&self.at, "check url, endpoint and region")
            };
            format!("{at}: [storage] cannot use {} ({fix}): {text}", self.location)
        };
        self.store.put(&probe, PutPayload::from_static(b"atelier")).await.map_err(|e| anyhow::anyhow!(hint(&e)))?;
        self.store.delete(&probe).await.map_err(|e| anyhow::anyhow!(hint(&e)))?;
        Ok(())
    }

    /// Make `file` the artifact at `rel`. For the local default, a file already at its key is
    /// left where it is. Never replaces an existing artifact: if one is already there with the
    /// same size (an upload before a restart), that counts as done; a different one is an error.
    /// Returns the artifact's size.
    pub async fn publish(&self, rel: &str, file: &Path) -> Result<u64> {
        if let Some(root) = &self.local_root
            && root.join(rel) == file
        {
            return Ok(tokio::fs::metadata(file).await.with_context(|| format!("{}: cannot read the artifact", file.display()))?.len());
        }
        let key = self.key(rel);
        let local = tokio::fs::metadata(file).await.ok().map(|m| m.len());
        match self.store.head(&key).await {
            Ok(meta) if local.is_none_or(|n| n == meta.size) => return Ok(meta.size),
            Ok(meta) => bail!("{}: an artifact of {} bytes is already stored at {key}; it is not replaced by {} ({} bytes)", self.location, meta.size, file.display(), local.unwrap_or(0)),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(anyhow::anyhow!("{}: cannot look up {key}: {e}", self.location)),
        }
        let size = local.ok_or_else(|| anyhow::anyhow!("{}: the artifact to store is missing", file.display()))?;
        if size <= SINGLE_PUT_MAX {
            let bytes = tokio::fs::read(file).await.with_context(|| format!("{}: cannot read the artifact", file.display()))?;
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            match self.store.put_opts(&key, PutPayload::from(bytes), opts).await {
                Ok(_) => {}
                // Written meanwhile by another front end finishing the same job: the same bytes.
                Err(object_store::Error::AlreadyExists { .. }) => {}
                // A store without conditional writes (S3ConditionalPut::Disabled) says so.
                Err(e) => return Err(anyhow::anyhow!("{}: cannot store {key}: {e}", self.location)),
            }
        } else {
            // object_store has no create-only mode for multipart uploads: the lookup above is the
            // guard (keys carry 128-bit random ids, so only a re-publish of the same job can meet one).
            let upload = self.store.put_multipart(&key).await.map_err(|e| anyhow::anyhow!("{}: cannot start storing {key}: {e}", self.location))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut f = tokio::fs::File::open(file).await.with_context(|| format!("{}: cannot read the artifact", file.display()))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match f.read(&mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(anyhow::anyhow!("{}: cannot read the artifact: {e}", file.display()));
                    }
                };
                if n == 0 {
                    break;
                }
                if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    return Err(anyhow::anyhow!("{}: cannot store {key}: {e}", self.location));
                }
                w.write(&buf[..n]);
            }
            w.finish().await.map_err(|e| anyhow::anyhow!("{}: cannot store {key}: {e}", self.location))?;
        }
        Ok(size)
    }

    /// The artifact at `rel`, streamed; `None` when there is none.
    pub async fn read(&self, rel: &str) -> Result<Option<Artifact>> {
        if let Some(root) = &self.local_root {
            // Straight from the file, in 256 KiB reads (object_store's local reads are smaller).
            let path = root.join(rel);
            let file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(anyhow::anyhow!("{}: cannot read: {e}", path.display())),
            };
            let meta = file.metadata().await.with_context(|| format!("{}: cannot read", path.display()))?;
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10).map(|r| r.map_err(anyhow::Error::from)).boxed();
            return Ok(Some(Artifact { size: meta.len(), modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), stream }));
        }
        let key = self.key(rel);
        match self.store.get(&key).await {
            Ok(r) => {
                let (size, modified) = (r.meta.size, SystemTime::from(r.meta.last_modified));
                let stream = r.into_stream().map(|c| c.map_err(anyhow::Error::from)).boxed();
                Ok(Some(Artifact { size, modified, stream }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: cannot read {key}: {e}", self.location)),
        }
    }

    /// Remove every artifact under `rel` (a `/`-separated directory); how many went.
    pub async fn delete_under(&self, rel: &str) -> Result<usize> {
        self.delete_where(rel, |_| true).await
    }

    /// Remove the artifacts under `rel` written more than `age` ago; how many went.
    pub async fn delete_older_than(&self, rel: &str, age: Duration) -> Result<usize> {
        self.delete_where(rel, |m| SystemTime::from(m.last_modified).elapsed().is_ok_and(|a| a > age)).await
    }

    async fn delete_where(&self, rel: &str, pick: impl Fn(&object_store::ObjectMeta) -> bool) -> Result<usize> {
        let prefix = self.key(rel.trim_end_matches('/'));
        let mut listing = self.store.list(Some(&prefix));
        let mut n = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| anyhow::anyhow!("{}: cannot list {prefix}: {e}", self.location))?;
            if pick(&meta) {
                match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => n += 1,
                    Err(e) => return Err(anyhow::anyhow!("{}: cannot delete {}: {e}", self.location, meta.location)),
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_default_publishes_in_place_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(&dir.path().join("server")).unwrap();
        assert!(!store.is_remote());
        store.check().await.unwrap();
        let in_place = dir.path().join("server/videos/v1/video.mp4");
        std::fs::create_dir_all(in_place.parent().unwrap()).unwrap();
        std::fs::write(&in_place, b"frames").unwrap();
        assert_eq!(store.publish("videos/v1/video.mp4", &in_place).await.unwrap(), 6);
        // From elsewhere: copied under the root, once; a different file is refused.
        let other = dir.path().join("a.png");
        std::fs::write(&other, b"png!").unwrap();
        store.publish("images/r/out/a.png", &other).await.unwrap();
        store.publish("images/r/out/a.png", &other).await.unwrap();
        std::fs::write(&other, b"longer png").unwrap();
        let e = store.publish("images/r/out/a.png", &other).await.unwrap_err();
        assert!(format!("{e:#}").contains("not replaced"), "{e:#}");
        let a = store.read("images/r/out/a.png").await.unwrap().unwrap();
        assert_eq!(a.size, 4);
        let bytes: Vec<Bytes> = a.stream.map(|c| c.unwrap()).collect().await;
        assert_eq!(bytes.concat(), b"png!");
        assert!(store.read("images/r/out/none.png").await.unwrap().is_none());
        assert_eq!(store.delete_older_than("images", Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(store.delete_under("images/r").await.unwrap(), 1);
        assert!(store.read("images/r/out/a.png").await.unwrap().is_none());
    }
}
