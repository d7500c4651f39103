//! One `Store` per call: the host state a plugin sees, its memory limit and its deadline.

use crate::caps;
use crate::caps::http::{CallRecord, HttpCap};
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
    pub(crate) deadline: Instant,
    /// `http.send` calls made in this call, against `max_http_requests`.
    pub(crate) http_requests: u32,
    /// Log lines of this call dropped since the last one written, against `log_lines_per_s`.
    pub(crate) log_dropped: u64,
    /// Artifact streams of this call (contract 0.2), deleted with it unless an artifact names them.
    pub(crate) streams: caps::artifacts::Streams,
}

impl Drop for HostState {
    /// The call is over: say how many of its last log lines were dropped, if any were.
    fn drop(&mut self) {
        self.report_dropped_logs();
    }
}

impl HostState {
    pub(crate) fn report_dropped_logs(&mut self) {
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
    let (plugin_limits, plugin_id, config_path) = (plugin.limits.clone(), plugin.id.clone(), plugin.config_path.clone());
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
        streams: caps::artifacts::Streams::new(caps::artifacts::StreamLimits {
            max_bytes: u64::from(plugin_limits.max_stream_mb) << 20,
            max_streams: plugin_limits.max_artifacts,
            limits: plugin_limits.clone(),
            plugin: plugin_id,
            config_path,
        }),
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

