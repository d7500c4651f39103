//! Plugins as OCI artifacts: `atelier plugins push|install|update|remove` (see docs/distribution.md).
//!
//! The artifact is the CNCF Wasm OCI format (config `application/vnd.wasm.config.v0+json`, the
//! component as an `application/wasm` layer) with `plugin.toml` as a second layer of its own media
//! type. The registry protocol is `oci-client`'s; what is ours is the layout, the checks before
//! anything is installed, the atomic swap into the plugin directory and the lock file.

pub mod install;
pub mod lock;

use crate::manifest::Manifest;
use crate::runtime::Runtime;
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};

/// The CNCF Wasm OCI config media type.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The CNCF Wasm OCI layer media type: the component itself.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The layer holding `plugin.toml`, byte for byte.
pub const MANIFEST_LAYER_MEDIA_TYPE: &str = "application/vnd.atelier.plugin.manifest.v1+toml";

/// Largest component accepted from a registry.
const MAX_WASM: u64 = 256 << 20;
/// Largest `plugin.toml` or config blob accepted from a registry.
const MAX_SMALL: u64 = 1 << 20;

/// `oci://host[:port]/repo[:tag|@sha256:…]`, parsed.
#[derive(Clone, Debug)]
pub struct OciRef {
    /// The parsed reference.
    pub inner: Reference,
}

impl OciRef {
    /// Parse `oci://REGISTRY/REPO[:TAG|@sha256:…]`; the registry must be named (no Docker Hub default).
    pub fn parse(text: &str) -> Result<OciRef> {
        let rest = text.strip_prefix("oci://").ok_or_else(|| {
            anyhow::anyhow!("`{text}` is not an OCI reference; write oci://REGISTRY/REPO:TAG (or @sha256:…), e.g. oci://ghcr.io/me/my-model:0.1.0")
        })?;
        let (registry, path) = rest.split_once('/').ok_or_else(|| anyhow::anyhow!("`{text}`: name a repository after the registry: oci://{rest}/REPO:TAG"))?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            bail!("`{text}`: `{registry}` is not a registry host; write the registry's host (and port) first, e.g. oci://ghcr.io/{rest}");
        }
        if path.is_empty() {
            bail!("`{text}`: name a repository after the registry");
        }
        let inner: Reference = rest.parse().with_context(|| format!("`{text}` is not a valid OCI reference"))?;
        Ok(OciRef { inner })
    }

    /// The registry as written (`host:port`).
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// `sha256:…` when the reference pins a digest.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The same repository at a digest.
    pub fn at_digest(&self, digest: &str) -> OciRef {
        OciRef { inner: Reference::with_digest(self.inner.registry().to_string(), self.inner.repository().to_string(), digest.to_string()) }
    }

    /// Whether the registry is on this machine (plain HTTP is allowed there without `--insecure`).
    pub fn is_loopback(&self) -> bool {
        let host = self.registry();
        let host = if let Some(v6) = host.strip_prefix('[') { v6.split(']').next().unwrap_or("") } else { host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host) };
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for OciRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.inner;
        write!(f, "oci://{}/{}", r.registry(), r.repository())?;
        if let Some(t) = r.tag() {
            write!(f, ":{t}")?;
        }
        if let Some(d) = r.digest() {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A client for one registry, with its credentials from `[registries."host:port"]`.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
}

impl Registry {
    /// HTTPS, except for a loopback registry or with `insecure` (the `--insecure` flag): then
    /// plain HTTP.
    pub fn new(r: &OciRef, settings: &Settings, insecure: bool) -> Result<Registry> {
        let protocol = if r.is_loopback() || insecure { ClientProtocol::Http } else { ClientProtocol::Https };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            ..Default::default()
        };
        Ok(Registry { client: Client::new(config), auth: auth_for(r.registry(), settings)? })
    }
}

/// The credentials the operator configured for `registry`, read now.
fn auth_for(registry: &str, settings: &Settings) -> Result<RegistryAuth> {
    let Some(r) = settings.registries.get(registry) else { return Ok(RegistryAuth::Anonymous) };
    let read = |what: &str, src: &crate::settings::SecretSource| {
        src.read().ok_or_else(|| anyhow::anyhow!("{}: the {what} for registry {registry} comes from {src}, which is empty or not set; set it, or fix [registries.\"{registry}\"]", r.at))
    };
    if let Some(t) = &r.token {
        return Ok(RegistryAuth::Bearer(read("token", t)?));
    }
    match (&r.username, &r.password) {
        (Some(u), Some(p)) => Ok(RegistryAuth::Basic(u.clone(), read("password", p)?)),
        _ => Ok(RegistryAuth::Anonymous),
    }
}

/// One failure talking to a registry, said with what to check.
fn registry_error(e: oci_client::errors::OciDistributionError, r: &OciRef, insecure: bool) -> anyhow::Error {
    use oci_client::errors::OciDistributionError as E;
    let text = format!("{e}");
    let hint = match &e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } | E::ServerError { code: 401 | 403, .. } => {
            format!("the registry wants credentials: set username + password (or token) under [registries.\"{}\"] in the operator config (--config), as env:VAR or file:PATH", r.registry())
        }
        E::ImageManifestNotFoundError(_) => "check the repository and tag (or digest)".into(),
        E::DigestError(_) => "a blob's bytes do not match its digest: the registry (or something between) served altered content; nothing was installed".into(),
        _ if text.contains("error sending request") || text.contains("connect") => {
            if !r.is_loopback() && !insecure {
                format!("is {} reachable over HTTPS? A registry that speaks plain HTTP needs --insecure", r.registry())
            } else {
                format!("is the registry at {} running?", r.registry())
            }
        }
        _ => String::new(),
    };
    if hint.is_empty() { anyhow::anyhow!("{r}: {text}") } else { anyhow::anyhow!("{r}: {text}; {hint}") }
}

/// `sha256:<hex>` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// What a push wrote.
#[derive(Debug)]
pub struct Pushed {
    /// The OCI manifest's digest.
    pub digest: String,
    /// The plugin's id.
    pub id: String,
    /// Its version.
    pub version: String,
}

/// The CNCF Wasm config for a component (the fields `wkg oci` and oci-wasm write).
fn wasm_config(rt: &Runtime, m: &Manifest, layer_digests: Vec<String>) -> Result<Vec<u8>> {
    let engine = rt.engine();
    let component = engine.load_component(&m.component)?;
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(&engine.engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(&engine.engine).map(|(n, _)| n.to_string()).collect();
    // SOURCE_DATE_EPOCH makes pushes of the same files reproducible (same digest).
    let created = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_else(chrono::Utc::now);
    let v = serde_json::json!({
        "created": created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "author": null,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": layer_digests,
        "component": {"exports": exports, "imports": imports, "target": format!("atelier:plugin/{}@{}", m.kind, m.contract)},
    });
    Ok(serde_json::to_vec(&v)?)
}

/// Pack `dir` (its `plugin.toml` and component) and push it to `to`, after the same checks a
/// load makes. Returns the manifest digest.
pub async fn push(rt: std::sync::Arc<Runtime>, dir: &Path, to: &OciRef, insecure: bool) -> Result<Pushed> {
    if to.digest().is_some() {
        bail!("{to}: push to a tag (oci://REGISTRY/REPO:TAG); the digest is what the push prints");
    }
    let d = dir.to_path_buf();
    let r = rt.clone();
    // Compiling is blocking work.
    let (m, toml_bytes, wasm) = tokio::task::spawn_blocking(move || -> Result<(Manifest, Vec<u8>, Vec<u8>)> {
        let plugin = r.check_dir(&d).with_context(|| format!("{}: not pushed: the plugin does not load", d.display()))?;
        let m = plugin.manifest.clone();
        let toml_bytes = std::fs::read(&m.path).with_context(|| format!("{}: cannot read", m.path.display()))?;
        let wasm = std::fs::read(&m.component).with_context(|| format!("{}: cannot read", m.component.display()))?;
        Ok((m, toml_bytes, wasm))
    })
    .await??;
    let (wasm_digest, toml_digest) = (sha256(&wasm), sha256(&toml_bytes));
    let r = rt.clone();
    let m2 = m.clone();
    let ld = vec![wasm_digest.clone(), toml_digest.clone()];
    let config = tokio::task::spawn_blocking(move || wasm_config(&r, &m2, ld)).await??;
    let file_name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let descriptor = |media: &str, bytes: &[u8], title: Option<String>| OciDescriptor {
        media_type: media.into(),
        digest: sha256(bytes),
        size: bytes.len() as i64,
        urls: None,
        annotations: title.map(|t| BTreeMap::from([("org.opencontainers.image.title".to_string(), t)])),
    };
    let mut annotations = BTreeMap::from([
        ("org.opencontainers.image.title".to_string(), m.id.clone()),
        ("org.opencontainers.image.version".to_string(), m.version.clone()),
        ("dev.atelier.plugin.kind".to_string(), m.kind.to_string()),
        ("dev.atelier.plugin.contract".to_string(), m.contract.clone()),
    ]);
    if !m.description.is_empty() {
        annotations.insert("org.opencontainers.image.description".into(), m.description.clone());
    }
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
        config: descriptor(WASM_CONFIG_MEDIA_TYPE, &config, None),
        layers: vec![
            descriptor(WASM_LAYER_MEDIA_TYPE, &wasm, Some(file_name(&m.component))),
            descriptor(MANIFEST_LAYER_MEDIA_TYPE, &toml_bytes, Some("plugin.toml".into())),
        ],
        subject: None,
        artifact_type: None,
        annotations: Some(annotations),
    };
    let body = serde_json::to_vec(&manifest)?;
    let digest = sha256(&body);
    let reg = Registry::new(to, &rt.settings, insecure)?;
    let c = &reg.client;
    c.auth(&to.inner, &reg.auth, oci_client::RegistryOperation::Push).await.map_err(|e| registry_error(e, to, insecure))?;
    for (bytes, d) in [(&wasm, &wasm_digest), (&toml_bytes, &toml_digest), (&config, &manifest.config.digest)] {
        c.push_blob(&to.inner, bytes, d).await.map_err(|e| registry_error(e, to, insecure))?;
    }
    c.push_manifest_raw(&to.inner, body, OCI_IMAGE_MEDIA_TYPE.parse()?).await.map_err(|e| registry_error(e, to, insecure))?;
    Ok(Pushed { digest, id: m.id, version: m.version })
}

/// A plugin pulled into a staging directory, verified, not yet installed.
#[derive(Debug)]
pub struct Fetched {
    /// Where it was pulled to.
    pub dir: PathBuf,
    /// Its manifest (read from the staged `plugin.toml`).
    pub manifest: Manifest,
    /// The OCI manifest's digest.
    pub digest: String,
    /// The component layer's digest.
    pub component: String,
    /// The `plugin.toml` layer's digest.
    pub manifest_digest: String,
}

/// Resolve what `r` names now (a tag moves; a digest does not): the manifest digest.
pub async fn resolve(r: &OciRef, settings: &Settings, insecure: bool) -> Result<String> {
    let reg = Registry::new(r, settings, insecure)?;
    let (body, _) = reg.client.pull_manifest_raw(&r.inner, &reg.auth, &[OCI_IMAGE_MEDIA_TYPE]).await.map_err(|e| registry_error(e, r, insecure))?;
    Ok(sha256(&body))
}

/// Pull `r` into `staging` (which must not exist): every blob's digest checked while it streams,
/// sizes capped, the layout checked, `plugin.toml` parsed. `expect_digest` (what a lock pins) refuses any other manifest.
pub async fn fetch(r: &OciRef, settings: &Settings, insecure: bool, staging: &Path, expect_digest: Option<&str>) -> Result<Fetched> {
    let reg = Registry::new(r, settings, insecure)?;
    let c = &reg.client;
    let (body, _) = c.pull_manifest_raw(&r.inner, &reg.auth, &[OCI_IMAGE_MEDIA_TYPE]).await.map_err(|e| registry_error(e, r, insecure))?;
    let digest = sha256(&body);
    if let Some(want) = r.digest().or(expect_digest)
        && want != digest
    {
        bail!("{r}: the registry sent a manifest whose digest is {digest}, not {want}; nothing was installed");
    }
    let manifest: OciImageManifest = serde_json::from_slice(&body).with_context(|| format!("{r}: the registry's manifest is not an OCI image manifest"))?;
    if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE {
        bail!(
            "{r} is not a Wasm OCI artifact (its config is `{}`, not `{WASM_CONFIG_MEDIA_TYPE}`); push plugins with `atelier plugins push DIR {r}`",
            manifest.config.media_type
        );
    }
    let one = |media: &str| -> Result<&OciDescriptor> {
        let found: Vec<&OciDescriptor> = manifest.layers.iter().filter(|l| l.media_type == media).collect();
        match found.as_slice() {
            [l] => Ok(l),
            [] => bail!("{r} has no `{media}` layer; it is not an atelier plugin (push one with `atelier plugins push DIR {r}`)"),
            _ => bail!("{r} has {} `{media}` layers; an atelier plugin has exactly one", found.len()),
        }
    };
    let (wasm_l, toml_l) = (one(WASM_LAYER_MEDIA_TYPE)?.clone(), one(MANIFEST_LAYER_MEDIA_TYPE)?.clone());
    for (l, cap) in [(&manifest.config, MAX_SMALL), (&toml_l, MAX_SMALL), (&wasm_l, MAX_WASM)] {
        if l.size < 0 || l.size as u64 > cap {
            bail!("{r}: blob {} ({}) claims {} bytes, over the {} MiB atelier accepts", l.digest, l.media_type, l.size, cap >> 20);
        }
    }
    std::fs::create_dir(staging).with_context(|| format!("{}: cannot create the staging directory; is the plugin directory writable?", staging.display()))?;
    // The config is checked for what makes it a Wasm component artifact.
    let mut config = Capped::new(Vec::new(), manifest.config.size as u64);
    c.pull_blob(&r.inner, &manifest.config, &mut config).await.map_err(|e| registry_error(e, r, insecure))?;
    let cfg: serde_json::Value = serde_json::from_slice(&config.inner).with_context(|| format!("{r}: the Wasm config blob is not JSON"))?;
    if cfg["architecture"] != "wasm" {
        bail!("{r}: the config says architecture {}, not \"wasm\"", cfg["architecture"]);
    }
    let toml_path = staging.join("plugin.toml");
    pull_to_file(&reg, r, &toml_l, &toml_path, insecure).await?;
    let m = Manifest::load(staging).with_context(|| format!("{r}: its plugin.toml does not read"))?;
    // The component must land inside the plugin's own directory, as a plain file name.
    let ok_name = m.component.parent() == Some(staging) && m.component.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.'));
    if !ok_name {
        bail!("{r}: its plugin.toml names component `{}`; a distributed plugin's component is a file beside plugin.toml (component = \"plugin.wasm\")", m.component.display());
    }
    if m.component.file_name() == Some(std::ffi::OsStr::new("plugin.toml")) {
        bail!("{r}: its plugin.toml names itself as the component");
    }
    pull_to_file(&reg, r, &wasm_l, &m.component, insecure).await?;
    Ok(Fetched { dir: staging.to_path_buf(), manifest: m, digest, component: wasm_l.digest, manifest_digest: toml_l.digest })
}

async fn pull_to_file(reg: &Registry, r: &OciRef, l: &OciDescriptor, path: &Path, insecure: bool) -> Result<()> {
    let f = tokio::fs::File::create(path).await.with_context(|| format!("{}: cannot create", path.display()))?;
    let mut w = Capped::new(f, l.size as u64);
    reg.client.pull_blob(&r.inner, l, &mut w).await.map_err(|e| registry_error(e, r, insecure))?;
    use tokio::io::AsyncWriteExt;
    w.inner.flush().await?;
    w.inner.sync_all().await.with_context(|| format!("{}: cannot write", path.display()))?;
    if w.written != l.size as u64 {
        bail!("{r}: blob {} is {} bytes, its descriptor says {}; nothing was installed", l.digest, w.written, l.size);
    }
    Ok(())
}

/// A writer that refuses more than its descriptor's size: a registry cannot stream forever.
struct Capped<W> {
    inner: W,
    limit: u64,
    written: u64,
}

impl<W> Capped<W> {
    fn new(inner: W, limit: u64) -> Self {
        Capped { inner, limit, written: 0 }
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Capped<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.written + buf.len() as u64 > self.limit {
            return Poll::Ready(Err(std::io::Error::other(format!("the blob is longer than the {} bytes its descriptor says", self.limit))));
        }
        let me = &mut *self;
        let r = Pin::new(&mut me.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            me.written += *n as u64;
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_registry_and_say_when_plain_http_is_allowed() {
        let r = OciRef::parse("oci://127.0.0.1:5000/plugins/hello:0.1.0").unwrap();
        assert_eq!((r.registry(), r.inner.repository(), r.inner.tag()), ("127.0.0.1:5000", "plugins/hello", Some("0.1.0")));
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/plugins/hello:0.1.0");
        let d = format!("sha256:{}", "a".repeat(64));
        let p = OciRef::parse(&format!("oci://ghcr.io/me/hello@{d}")).unwrap();
        assert_eq!(p.digest(), Some(d.as_str()));
        assert!(!p.is_loopback());
        assert!(OciRef::parse("oci://localhost:5000/x:1").unwrap().is_loopback());
        assert!(!OciRef::parse("oci://10.0.0.1:5000/x:1").unwrap().is_loopback());
        assert!(format!("{:#}", OciRef::parse("ghcr.io/me/x:1").unwrap_err()).contains("oci://REGISTRY/REPO:TAG"));
        assert!(format!("{:#}", OciRef::parse("oci://me/x:1").unwrap_err()).contains("not a registry host"));
    }
}
