//! One `Store` per call: the host state a plugin sees, its memory limit and its deadline.

use super::bindings::model::atelier::plugin as wit;
use crate::caps;
use crate::caps::http::{CallRecord, Failure, HttpCap, Outbound};
use crate::text::{printable, printable_lines};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What every call into one plugin shares.
pub struct PluginCtx {
    /// Plugin id.
    pub id: String,
    /// Settings for `config.get` (manifest defaults overridden by the operator).
    pub config: BTreeMap<String, String>,
    /// Outbound HTTP; `None` for filters.
    pub http: Option<HttpCap>,
    /// Memory cap per call, bytes.
    pub memory_limit: usize,
    /// Deadline of one call.
    pub call_timeout: Duration,
    /// The plugin's effective limits (manifest, then operator), for the volume checks.
    pub limits: crate::manifest::Limits,
    /// The config file to cite in "raise it here" messages.
    pub config_path: String,
    /// The plugin's log allowance, shared by all its calls (`log_lines_per_s`).
    pub log_rate: caps::log::LogRate,
}

/// The data of one store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory accounting.
    pub limiter: MemoryLimiter,
    /// The plugin.
    pub plugin: Arc<PluginCtx>,
    /// The job this call belongs to (for logs).
    pub job: String,
    /// What this call's state-changing requests did (answered 2xx, unanswered, cut off).
    pub record: CallRecord,
    /// Set when the deadline fired.
    pub deadline_hit: bool,
    /// When the call's time is up.
    deadline: Instant,
    /// `http.send` calls made in this call, against `max_http_requests`.
    http_requests: u32,
    /// Log lines of this call dropped since the last one written, against `log_lines_per_s`.
    log_dropped: u64,
}

impl Drop for HostState {
    /// The call is over: say how many of its last log lines were dropped, if any were.
    fn drop(&mut self) {
        self.report_dropped_logs();
    }
}

impl HostState {
    fn report_dropped_logs(&mut self) {
        if self.log_dropped > 0 {
            let p = &self.plugin;
            caps::log::report_dropped(&p.id, &self.job, self.log_dropped, &p.limits, &p.config_path);
            self.log_dropped = 0;
        }
    }
}

/// Refuses memory growth past the plugin's cap and remembers that it did, so the error can say so.
pub struct MemoryLimiter {
    limit: usize,
    /// The size the guest asked for when refused.
    pub exceeded: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// The error raised inside wasm when a call outlives its deadline.
#[derive(Debug)]
pub struct DeadlineExceeded;
impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}
impl std::error::Error for DeadlineExceeded {}

/// How long before its call's deadline a plugin's state-changing HTTP request times out: the plugin then still
/// has time to report the timeout, so a submit cut off by the deadline is rare and a timed-out
/// one is reported as ambiguous by the HTTP capability. At most 2 s, a tenth of short deadlines.
pub(crate) fn request_margin(call_timeout: Duration) -> Duration {
    (call_timeout / 10).min(Duration::from_secs(2))
}

/// Data a call's results and host calls may copy between guest and host, bytes: what the
/// plugin's memory can hold, twice (lists of small records take more room on the host than in
/// the guest), and never under wasmtime's default of 128 MiB. A plugin's output as large as its
/// memory limit allows must come out; the default alone cut videos over 128 MiB.
pub(crate) fn hostcall_fuel(memory_limit: usize) -> usize {
    memory_limit.saturating_mul(2).max(128 << 20)
}

/// A store for one call: no filesystem, no environment, no sockets, frozen WASI clocks, the
/// plugin's memory cap, and a deadline checked on every epoch tick (yielding to tokio between
/// ticks, so a spinning plugin never holds a runtime thread).
pub fn new_store(engine: &wasmtime::Engine, plugin: Arc<PluginCtx>, job: &str) -> Store<HostState> {
    let wasi = WasiCtx::builder()
        .wall_clock(caps::clock::FrozenClock)
        .monotonic_clock(caps::clock::FrozenClock)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let deadline = Instant::now() + plugin.call_timeout;
    let state = HostState {
        wasi,
        table: ResourceTable::new(),
        limiter: MemoryLimiter { limit: plugin.memory_limit, exceeded: None },
        plugin,
        job: job.to_string(),
        record: CallRecord::default(),
        deadline_hit: false,
        deadline,
        http_requests: 0,
        log_dropped: 0,
    };
    let fuel = hostcall_fuel(state.plugin.memory_limit);
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_hostcall_fuel(fuel);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |mut ctx| {
        if Instant::now() >= deadline {
            ctx.data_mut().deadline_hit = true;
            return Err(DeadlineExceeded.into());
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

impl wit::types::Host for HostState {}

impl wit::config::Host for HostState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.plugin.config.get(&key).cloned()
    }
}

impl wit::log::Host for HostState {
    async fn write(&mut self, level: wit::log::Level, message: String) {
        use caps::log::Level as L;
        let level = match level {
            wit::log::Level::Trace => L::Trace,
            wit::log::Level::Debug => L::Debug,
            wit::log::Level::Info => L::Info,
            wit::log::Level::Warn => L::Warn,
            wit::log::Level::Error => L::Error,
        };
        if !caps::log::enabled(level) {
            return;
        }
        if !self.plugin.log_rate.take(self.plugin.limits.log_lines_per_s) {
            self.log_dropped += 1;
            return;
        }
        // Logging resumes: first say what was dropped before this line.
        self.report_dropped_logs();
        caps::log::write(&self.plugin.id, &self.job, level, &message);
    }
}

impl wit::clock::Host for HostState {
    async fn monotonic_ms(&mut self) -> u64 {
        caps::clock::monotonic_ms()
    }
    async fn wall_ms(&mut self) -> u64 {
        caps::clock::wall_ms()
    }
}

impl wit::http::Host for HostState {
    async fn send(&mut self, req: wit::http::Request) -> Result<wit::http::Response, wit::http::HttpError> {
        use wit::http::HttpError as E;
        let Some(http) = &self.plugin.http else {
            return Err(E::Denied(format!("plugin `{}` has no network access", self.plugin.id)));
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
            return Err(E::Denied(message));
        }
        // A request that changes state ends before the call's deadline (minus a margin), so a
        // hung provider is a timeout the plugin reports (and the capability records as
        // ambiguous), not a call stopped mid-request. A GET may run into the deadline: stopping
        // it there loses nothing.
        let write = caps::http::method_changes_state(&req.method);
        let left = match write {
            true => self.deadline.saturating_duration_since(Instant::now()).saturating_sub(request_margin(self.plugin.call_timeout)),
            false => Duration::MAX,
        };
        if left.is_zero() {
            let p = &self.plugin;
            return Err(E::Timeout(format!(
                "no time left in this call of plugin `{}` for another request (its call_timeout_s is {} s; raise it under [plugins.{}.limits] in {})",
                p.id, p.call_timeout.as_secs_f64(), p.id, p.config_path
            )));
        }
        let asked = req.timeout_ms.map(|ms| Duration::from_millis(ms as u64));
        let timeout = match write {
            true => Some(asked.map_or(left, |t| t.min(left))),
            false => asked,
        };
        let out = Outbound { method: req.method, url: req.url, headers: req.headers, body: req.body, timeout };
        tracing::debug!(target: "plugin::http", plugin = %self.plugin.id, job = %self.job, method = %printable(&out.method), url = %printable(&out.url));
        match http.send_recorded(out, &self.record).await {
            Ok(r) => Ok(wit::http::Response { status: r.status, headers: r.headers, body: r.body }),
            Err(f) => {
                tracing::info!(target: "plugin::http", plugin = %self.plugin.id, job = %self.job, "{}", printable_lines(&f.to_string()));
                Err(match f {
                    Failure::Denied(m) => E::Denied(m),
                    Failure::Timeout(m) => E::Timeout(m),
                    Failure::TooLarge(m) => E::TooLarge(m),
                    Failure::Connection(m) => E::Connection(m),
                    Failure::Invalid(m) => E::Invalid(m),
                })
            }
        }
    }
}
