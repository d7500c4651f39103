//! Outbound HTTP for plugins, on reqwest: allow-list, secret injection, redirects inside the
//! allow-list, address checks after resolution, size and time caps.

use super::grants::Grants;
use super::hosts::{HostPattern, is_sensitive};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A request as a plugin (or the host, for downloads) asks for it.
#[derive(Clone, Debug)]
pub struct Outbound {
    /// Method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers; values may hold secret placeholders.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// A tighter timeout.
    pub timeout: Option<Duration>,
}

/// A complete response.
#[derive(Clone, Debug)]
pub struct Inbound {
    /// Status.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Why no response came back; mirrors the contract's `http-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Policy refused it; the message prints the fix.
    Denied(String),
    /// Too slow.
    Timeout(String),
    /// Over the size cap.
    TooLarge(String),
    /// DNS/TCP/TLS.
    Connection(String),
    /// Malformed request.
    Invalid(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Denied(m) => write!(f, "denied: {m}"),
            Failure::Timeout(m) => write!(f, "timed out: {m}"),
            Failure::TooLarge(m) => write!(f, "too large: {m}"),
            Failure::Connection(m) => write!(f, "connection failed: {m}"),
            Failure::Invalid(m) => write!(f, "invalid request: {m}"),
        }
    }
}

/// What the requests of one plugin call did to the provider, for the runner's decision about a
/// failed submit: whether the provider may hold a job the plugin could not report.
#[derive(Debug, Default)]
pub struct CallRecord {
    /// A request that changes state (not GET/HEAD/OPTIONS) may have reached the provider without
    /// an answer coming back (a timeout, a connection lost mid-answer).
    pub ambiguous: AtomicBool,
    /// The last request that changes state was answered 2xx: the provider took it.
    pub accepted: AtomicBool,
    /// A request that changes state is under way. Cleared when it ends; left set when the call
    /// is stopped in the middle of it (its deadline), which is then as ambiguous as a timeout.
    pub write_in_flight: AtomicBool,
}

impl CallRecord {
    /// Whether the provider may hold something this call started: a state-changing request
    /// answered 2xx, unanswered, or cut off.
    pub fn may_have_reached_provider(&self) -> bool {
        self.ambiguous.load(Ordering::Relaxed) || self.accepted.load(Ordering::Relaxed) || self.write_in_flight.load(Ordering::Relaxed)
    }
}

/// Whether a request with this method changes state at the provider (could start or bill work).
fn changes_state(method: &reqwest::Method) -> bool {
    !matches!(*method, reqwest::Method::GET | reqwest::Method::HEAD | reqwest::Method::OPTIONS)
}

/// [`changes_state`] of a method as a plugin wrote it (any case; an unparsable one counts as
/// changing state, the careful side).
pub(crate) fn method_changes_state(method: &str) -> bool {
    reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_or(true, |m| changes_state(&m))
}

/// Caps on one plugin's traffic.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Largest response body kept in memory.
    pub max_response: u64,
    /// Largest download written to disk.
    pub max_download: u64,
    /// Time limit of one request.
    pub timeout: Duration,
    /// Redirects followed at most.
    pub max_redirects: usize,
}

/// One plugin's HTTP capability.
pub struct HttpCap {
    grants: Arc<Grants>,
    limits: HttpLimits,
    client: reqwest::Client,
}

/// A response whose body is still to be read.
struct Opened {
    resp: reqwest::Response,
    origin: String,
}

impl HttpCap {
    /// A capability for one plugin.
    pub fn new(grants: Arc<Grants>, limits: HttpLimits) -> HttpCap {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver { grants: grants.clone() }))
            .connect_timeout(Duration::from_secs(15))
            .build()
            .expect("a reqwest client with rustls always builds");
        HttpCap { grants, limits, client }
    }

    /// The grants this capability enforces.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// Send a request and read the whole (capped) body. `ambiguous` is set when a request that
    /// changes state may have reached the provider without an answer coming back
    /// ([`HttpCap::send_recorded`] records more).
    pub async fn send(&self, req: Outbound, ambiguous: &AtomicBool) -> Result<Inbound, Failure> {
        let record = CallRecord::default();
        let r = self.send_recorded(req, &record).await;
        if record.ambiguous.load(Ordering::Relaxed) {
            ambiguous.store(true, Ordering::Relaxed);
        }
        r
    }

    /// Send a request and read the whole (capped) body, recording in `record` what a request
    /// that changes state did (answered 2xx, unanswered, under way).
    pub async fn send_recorded(&self, req: Outbound, record: &CallRecord) -> Result<Inbound, Failure> {
        let write = method_changes_state(&req.method);
        if write {
            record.write_in_flight.store(true, Ordering::Relaxed);
        }
        let r = self.send_inner(req, record, write).await;
        if write {
            record.write_in_flight.store(false, Ordering::Relaxed);
        }
        r
    }

    async fn send_inner(&self, req: Outbound, record: &CallRecord, write: bool) -> Result<Inbound, Failure> {
        let mut opened = self.open(req, record).await?;
        let status = opened.resp.status().as_u16();
        let headers = header_list(opened.resp.headers());
        // Sized once from Content-Length (capped), so large bodies are not copied while growing.
        let expected = opened.resp.content_length().unwrap_or(0).min(self.limits.max_response);
        let mut body = Vec::with_capacity(expected as usize);
        loop {
            match opened.resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > self.limits.max_response {
                        return Err(Failure::TooLarge(format!(
                            "the response from {} is larger than the {} MiB cap ([limits] http_max_response_mb in {})",
                            opened.origin,
                            self.limits.max_response >> 20,
                            self.grants.config_path
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    // The provider answered, then the answer was lost: what it said is unknown.
                    if write {
                        record.ambiguous.store(true, Ordering::Relaxed);
                    }
                    return Err(transport(e, &opened.origin));
                }
            }
        }
        Ok(Inbound { status, headers, body })
    }

    /// Fetch a URL straight into a file, streaming (memory stays flat). Returns the status, the
    /// response headers and the number of bytes written; on a non-2xx status the file holds the
    /// (capped) error body.
    pub async fn download(&self, req: Outbound, dest: &Path) -> Result<(u16, Vec<(String, String)>, u64), Failure> {
        let mut opened = self.open(req, &CallRecord::default()).await?;
        let status = opened.resp.status().as_u16();
        let headers = header_list(opened.resp.headers());
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| Failure::Invalid(format!("cannot write {}: {e}", dest.display())))?;
        let mut written = 0u64;
        loop {
            match opened.resp.chunk().await {
                Ok(Some(chunk)) => {
                    written += chunk.len() as u64;
                    if written > self.limits.max_download {
                        drop(file);
                        let _ = tokio::fs::remove_file(dest).await;
                        return Err(Failure::TooLarge(format!(
                            "the download from {} is larger than the {} MiB cap ([limits] download_max_mb in {})",
                            opened.origin,
                            self.limits.max_download >> 20,
                            self.grants.config_path
                        )));
                    }
                    file.write_all(&chunk).await.map_err(|e| Failure::Invalid(format!("cannot write {}: {e}", dest.display())))?;
                }
                Ok(None) => break,
                Err(e) => return Err(transport(e, &opened.origin)),
            }
        }
        file.flush().await.map_err(|e| Failure::Invalid(format!("cannot write {}: {e}", dest.display())))?;
        Ok((status, headers, written))
    }

    /// Send, following redirects only inside the allow-list and re-deciding secrets per hop.
    async fn open(&self, req: Outbound, record: &CallRecord) -> Result<Opened, Failure> {
        let mut url = url::Url::parse(&req.url).map_err(|e| Failure::Invalid(format!("bad URL `{}`: {e}", req.url)))?;
        let mut method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Failure::Invalid(format!("bad method `{}`", req.method)))?;
        let mut body = req.body;
        let write = changes_state(&method);
        let timeout = req.timeout.map_or(self.limits.timeout, |t| t.min(self.limits.timeout));
        for hop in 0..=self.limits.max_redirects {
            let grant = self.grants.check_origin(&url).map_err(Failure::Denied)?;
            self.check_literal_address(&url, grant)?;
            let mut builder = self.client.request(method.clone(), url.clone()).timeout(timeout);
            for (name, value) in &req.headers {
                let value = match self.grants.substitute(value, &url) {
                    Ok(v) => v,
                    // On a redirect to another host a key header is dropped, not leaked or refused.
                    Err(super::grants::SecretRefusal::NotBound(_)) if hop > 0 => continue,
                    Err(r) => return Err(Failure::Denied(self.grants.explain(&r, &url))),
                };
                builder = builder.header(name.as_str(), value);
            }
            if !body.is_empty() {
                builder = builder.body(body.clone());
            }
            let origin = HostPattern::origin_of(&url);
            let resp = match builder.send().await {
                Ok(r) => r,
                Err(e) => {
                    if !e.is_connect() && changes_state(&method) {
                        record.ambiguous.store(true, Ordering::Relaxed);
                    }
                    return Err(transport(e, &origin));
                }
            };
            let status = resp.status();
            // The final answer to a request that changes state (after redirects, which may turn it
            // into a GET) says whether the provider took it.
            if write {
                record.accepted.store(status.is_success(), Ordering::Relaxed);
            }
            if !status.is_redirection() || status == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(Opened { resp, origin });
            }
            let Some(location) = resp.headers().get("location").and_then(|l| l.to_str().ok()) else {
                return Ok(Opened { resp, origin });
            };
            let next = url.join(location).map_err(|e| Failure::Invalid(format!("bad redirect `{location}`: {e}")))?;
            if let Err(msg) = self.grants.check_origin(&next) {
                return Err(Failure::Denied(format!("redirect from {origin} refused: {msg}")));
            }
            // 301/302/303 turn a POST into a GET without body, as browsers and reqwest do.
            if status == reqwest::StatusCode::SEE_OTHER
                || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
            {
                method = reqwest::Method::GET;
                body = Vec::new();
            }
            url = next;
        }
        Err(Failure::Connection(format!("more than {} redirects", self.limits.max_redirects)))
    }

    /// An IP literal in a sensitive range goes out only when an operator grant names it exactly;
    /// a manifest listing it is not enough (the host's own network is the operator's to open).
    fn check_literal_address(&self, url: &url::Url, grant: &HostPattern) -> Result<(), Failure> {
        let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            if is_sensitive(ip) && !self.grants.operator_names(url, ip) {
                let whose = if self.grants.operator_hosts.contains(grant) {
                    format!("the operator's grant `{grant}` does not name it")
                } else {
                    format!("the plugin's manifest asks for `{grant}`, but only the operator can open such addresses")
                };
                return Err(Failure::Denied(format!(
                    "plugin `{}` may not reach {ip}: loopback, private, link-local and metadata addresses need an operator grant that names them ({whose}); if it is really meant, add to {}:\n    [plugins.{}]\n    allow_hosts = [\"{}\"]",
                    self.grants.plugin,
                    self.grants.config_path,
                    self.grants.plugin,
                    HostPattern::origin_of(url)
                )));
            }
        }
        Ok(())
    }
}

fn header_list(h: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    h.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

fn transport(e: reqwest::Error, origin: &str) -> Failure {
    // A refusal by our resolver surfaces as a connect error; show its own message.
    let mut src: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = src {
        if let Some(d) = s.downcast_ref::<ResolveDenied>() {
            return Failure::Denied(d.0.clone());
        }
        src = s.source();
    }
    if e.is_timeout() {
        Failure::Timeout(format!("no answer from {origin} in time"))
    } else {
        Failure::Connection(format!("{origin}: {}", error_chain(&e)))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// DNS answers pointing at sensitive addresses are refused unless a grant names `localhost`
/// (the only host name that may map to loopback); this also defeats DNS rebinding, since the
/// addresses checked are the ones connected to.
struct CheckedResolver {
    grants: Arc<Grants>,
}

#[derive(Debug)]
struct ResolveDenied(String);
impl std::fmt::Display for ResolveDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ResolveDenied {}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let grants = self.grants.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Only the operator can open loopback by name; a manifest's `localhost` is not enough.
            let localhost_named = host == "localhost" && grants.operator_hosts.iter().any(|p| p.host == "localhost");
            if let Some(bad) = addrs.iter().find(|a| is_sensitive(a.ip()) && !(localhost_named && a.ip().is_loopback())) {
                return Err(Box::new(ResolveDenied(format!(
                    "plugin `{}`: {host} resolves to {}, a loopback/private/link-local/metadata address, which only the operator can open; grant that address by IP in {} ([plugins.{}] allow_hosts) if it is really meant",
                    grants.plugin,
                    bad.ip(),
                    grants.config_path,
                    grants.plugin
                ))) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl crate::wasm::store::HostState {
    /// `http.send` from the guest, for any contract version: counted against
    /// `max_http_requests`, a state-changing request cut before the call's deadline, then sent
    /// under the grants and recorded.
    async fn guest_send(&mut self, method: String, url: String, headers: Vec<(String, String)>, body: Vec<u8>, timeout_ms: Option<u32>) -> Result<Inbound, Failure> {
        use crate::text::{printable, printable_lines};
        use std::time::{Duration, Instant};
        let Some(http) = &self.plugin.http else {
            return Err(Failure::Denied(format!("plugin `{}` has no network access", self.plugin.id)));
        };
        // Every attempt counts, sent or refused, so a plugin cannot spin on a denied request either.
        self.http_requests = self.http_requests.saturating_add(1);
        let limits = &self.plugin.limits;
        if self.http_requests > limits.max_http_requests {
            let what = format!("tried to send HTTP request {} in one call", self.http_requests);
            let message = limits.over_message(&self.plugin.id, &self.plugin.config_path, "max_http_requests", &what);
            // Once per call in the host's log, whatever the plugin does with the refusal.
            if self.http_requests == limits.max_http_requests + 1 {
                tracing::warn!(target: "plugin::http", plugin = %self.plugin.id, job = %self.job, "{message}\n");
            }
            return Err(Failure::Denied(message));
        }
        // A request that changes state ends before the call's deadline (minus a margin), so a
        // hung provider is a timeout the plugin reports (and the capability records as
        // ambiguous), not a call stopped mid-request. A GET may run into the deadline: stopping
        // it there loses nothing.
        let write = method_changes_state(&method);
        let left = match write {
            true => self.deadline.saturating_duration_since(Instant::now()).saturating_sub(crate::wasm::store::request_margin(self.plugin.call_timeout)),
            false => Duration::MAX,
        };
        if left.is_zero() {
            let p = &self.plugin;
            return Err(Failure::Timeout(format!(
                "no time left in this call of plugin `{}` for another request (its call_timeout_s is {} s; raise it under [plugins.{}.limits] in {})",
                p.id, p.call_timeout.as_secs_f64(), p.id, p.config_path
            )));
        }
        let asked = timeout_ms.map(|ms| Duration::from_millis(ms as u64));
        let timeout = match write {
            true => Some(asked.map_or(left, |t| t.min(left))),
            false => asked,
        };
        let out = Outbound { method, url, headers, body, timeout };
        tracing::debug!(target: "plugin::http", plugin = %self.plugin.id, job = %self.job, method = %printable(&out.method), url = %printable(&out.url));
        http.send_recorded(out, &self.record).await.inspect_err(|f| {
            tracing::info!(target: "plugin::http", plugin = %self.plugin.id, job = %self.job, "{}", printable_lines(&f.to_string()));
        })
    }
}

/// The http interface of each contract version (the same shape in 0.1 and 0.2), on [`HostState::guest_send`].
macro_rules! http_host {
    ($v:ident) => {
        impl crate::wasm::$v::imports::http::Host for crate::wasm::store::HostState {
            async fn send(
                &mut self,
                req: crate::wasm::$v::imports::http::Request,
            ) -> Result<crate::wasm::$v::imports::http::Response, crate::wasm::$v::imports::http::HttpError> {
                use crate::wasm::$v::imports::http::{HttpError as E, Response};
                match self.guest_send(req.method, req.url, req.headers, req.body, req.timeout_ms).await {
                    Ok(r) => Ok(Response { status: r.status, headers: r.headers, body: r.body }),
                    Err(f) => Err(match f {
                        Failure::Denied(m) => E::Denied(m),
                        Failure::Timeout(m) => E::Timeout(m),
                        Failure::TooLarge(m) => E::TooLarge(m),
                        Failure::Connection(m) => E::Connection(m),
                        Failure::Invalid(m) => E::Invalid(m),
                    }),
                }
            }
        }
    };
}
http_host!(since_v0_1);
http_host!(since_v0_2);

/// Links contract 0.1's `http` import.
pub(crate) fn add_to_linker_v0_1(l: &mut wasmtime::component::Linker<crate::wasm::store::HostState>) -> wasmtime::Result<()> {
    crate::wasm::since_v0_1::imports::http::add_to_linker::<_, wasmtime::component::HasSelf<_>>(l, |s| s)
}

/// Links contract 0.2's `http` import.
pub(crate) fn add_to_linker_v0_2(l: &mut wasmtime::component::Linker<crate::wasm::store::HostState>) -> wasmtime::Result<()> {
    crate::wasm::since_v0_2::imports::http::add_to_linker::<_, wasmtime::component::HasSelf<_>>(l, |s| s)
}
