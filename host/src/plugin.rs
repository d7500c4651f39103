//! A loaded plugin and the calls the host makes into it, each in a fresh store.

use crate::caps::grants::Grants;
use crate::caps::http::{HttpCap, HttpLimits};
use crate::manifest::{Kind, Limits, Manifest};
use crate::settings::{JobSettings, PluginSettings, Settings};
use crate::wasm::bindings::{filter, model, wit_backend as wb, wit_filters as wf, wit_types as wt};
use crate::wasm::engine::WasmEngine;
use crate::wasm::store::{HostState, PluginCtx, new_store};
use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::Linker;

/// Instantiation-ready component of either kind.
pub enum Pre {
    /// A model backend.
    Model(model::ModelPre<HostState>),
    /// A filter family.
    Filter(filter::FilterPre<HostState>),
    /// A native filter library the operator pinned (docs/native.md); called without a store.
    Native(Arc<crate::native::NativeFilters>),
}

/// A plugin ready to be called.
pub struct Plugin {
    /// Its manifest.
    pub manifest: Manifest,
    /// The operator's section for it.
    pub settings: PluginSettings,
    /// What it may reach.
    pub grants: Arc<Grants>,
    /// Effective limits (manifest, then operator overrides).
    pub limits: Limits,
    /// The operator's `[jobs]` settings (poll budget, backoff), for the runner.
    pub(crate) jobs: JobSettings,
    ctx: Arc<PluginCtx>,
    engine: Arc<WasmEngine>,
    /// This plugin's share of the engine's instance slots, so no plugin can take them all.
    share: Arc<tokio::sync::Semaphore>,
    /// sha256 of the component (or native library) bytes, lowercase hex, computed once at load.
    digest: String,
    pre: Pre,
}

/// What a call returned, plus what its state-changing requests did at the provider (then a
/// failed submit must not be repeated blindly).
pub struct Called<T> {
    /// The plugin's answer.
    pub value: T,
    /// A state-changing request may have reached the provider without an answer.
    pub ambiguous: bool,
    /// The last state-changing request was answered 2xx: the provider took it.
    pub accepted: bool,
}

/// A call that ended without the plugin's answer (deadline, crash, out of memory) after a
/// state-changing request was answered 2xx, went unanswered or was under way: the provider may
/// hold what it started. The runner records such a submit as `unknown`.
#[derive(Debug)]
pub struct CutOff(pub String);

impl std::fmt::Display for CutOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for CutOff {}

impl Plugin {
    /// Load and link a plugin described by `manifest`.
    pub fn load(
        engine: Arc<WasmEngine>,
        linkers: &Linkers,
        manifest: Manifest,
        settings: &Settings,
    ) -> Result<Plugin> {
        manifest.check_contract()?;
        let ops = settings.plugin(&manifest.id);
        let limits = effective_limits(&manifest, &ops)?;
        if manifest.tier == crate::manifest::Tier::Native {
            return Plugin::load_native(engine, manifest, settings, ops, limits);
        }
        let component = engine.load_component(&manifest.component).map_err(|e| {
            anyhow::anyhow!("{e:#}").context(format!("plugin `{}` ({})", manifest.id, manifest.path.display()))
        })?;
        check_exports(&engine.engine, &component, &manifest)?;
        let digest = file_sha256(&manifest.component)?;
        let grants = Arc::new(Grants::new(&manifest, settings));
        let mut config = manifest.defaults.clone();
        config.extend(ops.config.clone());
        // Secrets never reach config.get, even if an operator put one there by mistake.
        for name in manifest.secrets.keys() {
            config.remove(name);
        }
        let http = (manifest.kind == Kind::Model).then(|| {
            HttpCap::new(
                grants.clone(),
                HttpLimits {
                    max_response: settings.limits.http_max_response_mb << 20,
                    max_download: settings.limits.download_max_mb << 20,
                    timeout: Duration::from_secs_f64(settings.limits.http_timeout_s),
                    max_redirects: 10,
                },
            )
        });
        let memory_limit = ((limits.memory_mb << 20) as usize).min(engine.max_memory());
        let ctx = Arc::new(PluginCtx {
            id: manifest.id.clone(),
            config,
            http,
            memory_limit,
            call_timeout: Duration::from_secs_f64(limits.call_timeout_s),
            limits: limits.clone(),
            config_path: settings.shown_path(),
            log_rate: Default::default(),
        });
        let pre = match manifest.kind {
            Kind::Model => Pre::Model(model::ModelPre::new(linkers.model.instantiate_pre(&component)?)?),
            Kind::Filter => Pre::Filter(filter::FilterPre::new(linkers.filter.instantiate_pre(&component)?)?),
        };
        let share = Arc::new(tokio::sync::Semaphore::new(engine.plugin_share()));
        Ok(Plugin { manifest, settings: ops, grants, limits, jobs: settings.jobs.clone(), ctx, engine, share, digest, pre })
    }

    /// sha256 (lowercase hex) of the component or native library this plugin was loaded from:
    /// which build took a job, so a job is never polled by a different build unnoticed.
    pub fn component_digest(&self) -> &str {
        &self.digest
    }

    /// The contract version this plugin speaks (as checked against what it exports).
    pub fn contract(&self) -> &str {
        &self.manifest.contract
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// The HTTP capability (models only), used by the host for downloads on the plugin's behalf.
    pub fn http(&self) -> Option<&HttpCap> {
        self.ctx.http.as_ref()
    }

    /// Whether the plugin can reach no host at all (its manifest asks for none and the operator
    /// allows none): whatever it did, it had no effect outside this host, so a job of it that
    /// was cut off is safe to run again (nothing was sent, nothing billed). Decided from the
    /// grants, not from anything the plugin says.
    pub fn reaches_no_host(&self) -> bool {
        self.grants.manifest_hosts.is_empty() && self.grants.operator_hosts.is_empty()
    }

    /// The value of a setting as the plugin sees it.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.ctx.config.get(key).map(String::as_str)
    }

    async fn call(&self, job: &str, op: Op<'_>) -> Result<Called<Ret>> {
        let what = op.name();
        if let Pre::Native(lib) = &self.pre {
            return self.call_native(lib, op).await;
        }
        let _share = self.share.acquire().await?;
        let _slot = self.engine.slots.acquire().await?;
        let mut store = new_store(&self.engine.engine, self.ctx.clone(), job);
        let grace = Duration::from_millis(500);
        let outcome = tokio::time::timeout(self.ctx.call_timeout + grace, run(&mut store, &self.pre, op)).await;
        let data = store.data();
        let ambiguous = data.record.ambiguous.load(Ordering::Relaxed);
        let accepted = data.record.accepted.load(Ordering::Relaxed);
        let e = match outcome {
            Ok(Ok(value)) => return Ok(Called { value, ambiguous, accepted }),
            Err(_) => anyhow::anyhow!(self.deadline_message(what)),
            Ok(Err(_)) if data.deadline_hit => anyhow::anyhow!(self.deadline_message(what)),
            Ok(Err(e)) => self.trap_error(what, &data.limiter, e),
        };
        if data.record.may_have_reached_provider() {
            let how = if data.record.write_in_flight.load(Ordering::Relaxed) {
                "while a request that changes state was under way"
            } else if accepted {
                "after the provider accepted a request that changes state (HTTP 2xx)"
            } else {
                "after a request that changes state went unanswered"
            };
            return Err(CutOff(format!("{e:#} ({how}: the provider may hold the job)")).into());
        }
        Err(e)
    }

    /// The error for a call that trapped: out of memory, stack overflow, or another crash.
    fn trap_error(&self, what: &str, limiter: &crate::wasm::store::MemoryLimiter, e: wasmtime::Error) -> anyhow::Error {
        let id = &self.manifest.id;
        match e {
            _ if limiter.exceeded.is_some() => anyhow::anyhow!(
                "plugin `{id}` ran out of memory in `{what}`: it asked for {} MiB, its limit is {} MiB; if it really needs more, raise it in {}:\n    [plugins.{id}.limits]\n    memory_mb = {}",
                limiter.exceeded.unwrap_or(0) >> 20,
                self.ctx.memory_limit >> 20,
                self.grants.config_path,
                (limiter.exceeded.unwrap_or(0) >> 20).next_power_of_two()
            ),
            e => match stack_overflow(&e) {
                Some(Overflow { recursing_in }) => anyhow::anyhow!(
                    "plugin `{id}` overflowed its stack in `{what}` (deep recursion in the plugin; report it to its author){}",
                    recursing_in.map(|f| format!(": recursing in {f}")).unwrap_or_default()
                ),
                None => anyhow::anyhow!("plugin `{id}` crashed in `{what}` (a bug in the plugin; report it to its author): {}", trap_text(&e)),
            },
        }
    }

    fn deadline_message(&self, what: &str) -> String {
        let id = &self.manifest.id;
        format!(
            "plugin `{id}` did not finish `{what}` within {} s and was stopped; if it needs longer, raise it in {}:\n    [plugins.{id}.limits]\n    call_timeout_s = {}",
            self.ctx.call_timeout.as_secs_f64(),
            self.grants.config_path,
            (self.ctx.call_timeout.as_secs_f64() * 2.0).ceil()
        )
    }

    fn wrong_kind(&self) -> anyhow::Error {
        match self.manifest.kind {
            Kind::Filter => anyhow::anyhow!("`{}` is a filter, not a model; use it as a filter step (--pre/--post/--step)", self.id()),
            Kind::Model => anyhow::anyhow!("`{}` is a model, not a filter; use it with --model", self.id()),
        }
    }

    /// `describe` of a model.
    pub async fn describe_model(&self) -> Result<wb::ModelInfo> {
        match self.call("describe", Op::Describe).await?.value {
            Ret::Info(i) => Ok(i),
            _ => Err(self.wrong_kind()),
        }
    }

    /// `prepare` of a model.
    pub async fn prepare(
        &self,
        job: &str,
        prompt: &str,
        references: &[(u32, u32)],
        has_mask: bool,
        n: u32,
        params: &[wt::Param],
    ) -> Result<Result<wb::InputPlan, wt::Error>> {
        match self.call(job, Op::Prepare { prompt, references, has_mask, n, params }).await?.value {
            Ret::Plan(p) => Ok(p),
            _ => Err(self.wrong_kind()),
        }
    }

    /// `submit` of a model.
    pub async fn submit(&self, job: &str, req: &wb::Request) -> Result<Called<Result<wb::Submission, wt::Error>>> {
        let c = self.call(job, Op::Submit(req)).await?;
        match c.value {
            Ret::Submission(s) => Ok(Called { value: s, ambiguous: c.ambiguous, accepted: c.accepted }),
            _ => Err(self.wrong_kind()),
        }
    }

    /// `poll` of a model.
    pub async fn poll(&self, job: &str, token: &str) -> Result<Result<wb::Status, wt::Error>> {
        match self.call(job, Op::Poll(token)).await?.value {
            Ret::Status(s) => Ok(s),
            _ => Err(self.wrong_kind()),
        }
    }

    /// `cancel` of a model.
    pub async fn cancel(&self, job: &str, token: &str) -> Result<Result<(), wt::Error>> {
        match self.call(job, Op::Cancel(token)).await?.value {
            Ret::Unit(u) => Ok(u),
            _ => Err(self.wrong_kind()),
        }
    }

    /// `describe` of a filter family.
    pub async fn describe_filters(&self) -> Result<Vec<wf::FilterInfo>> {
        match self.call("describe", Op::DescribeFilters).await?.value {
            Ret::Filters(f) => Ok(f),
            _ => Err(self.wrong_kind()),
        }
    }

    /// `apply` of a filter family: consecutive steps in one call.
    pub async fn apply(&self, job: &str, image: &wt::Image, steps: &[wf::Step]) -> Result<Result<wt::Image, wt::Error>> {
        match self.call(job, Op::Apply(image, steps)).await?.value {
            Ret::Image(i) => Ok(i),
            _ => Err(self.wrong_kind()),
        }
    }
}

impl Plugin {
    /// A native filter plugin: the operator's pin checked before the library loads.
    fn load_native(engine: Arc<WasmEngine>, manifest: Manifest, settings: &Settings, ops: PluginSettings, limits: Limits) -> Result<Plugin> {
        let lib = crate::native::NativeFilters::load(&manifest, &ops, &settings.shown_path(), limits.max_in_flight)?;
        let grants = Arc::new(Grants::new(&manifest, settings));
        let mut config = manifest.defaults.clone();
        config.extend(ops.config.clone());
        let ctx = Arc::new(PluginCtx {
            id: manifest.id.clone(),
            config,
            http: None,
            memory_limit: 0,
            call_timeout: Duration::from_secs_f64(limits.call_timeout_s),
            limits: limits.clone(),
            config_path: settings.shown_path(),
            log_rate: Default::default(),
        });
        let share = Arc::new(tokio::sync::Semaphore::new(1));
        let jobs = settings.jobs.clone();
        let digest = lib.sha256.clone();
        Ok(Plugin { manifest, settings: ops, grants, limits, jobs, ctx, engine, share, digest, pre: Pre::Native(Arc::new(lib)) })
    }

    /// The native library behind this plugin, if it is one (tier, path and pinned sha256).
    pub fn native(&self) -> Option<&crate::native::NativeFilters> {
        match &self.pre {
            Pre::Native(lib) => Some(lib),
            _ => None,
        }
    }

    /// A call into a native library: no store, no sandbox; on the blocking pool.
    async fn call_native(&self, lib: &crate::native::NativeFilters, op: Op<'_>) -> Result<Called<Ret>> {
        let value = match op {
            Op::DescribeFilters => Ret::Filters(lib.describe()),
            Op::Apply(image, steps) => Ret::Image(lib.apply(image, steps, self.ctx.call_timeout).await?),
            _ => Ret::WrongKind,
        };
        Ok(Called { value, ambiguous: false, accepted: false })
    }
}

/// One call into a plugin, with its arguments.
enum Op<'a> {
    Describe,
    Prepare { prompt: &'a str, references: &'a [(u32, u32)], has_mask: bool, n: u32, params: &'a [wt::Param] },
    Submit(&'a wb::Request),
    Poll(&'a str),
    Cancel(&'a str),
    DescribeFilters,
    Apply(&'a wt::Image, &'a [wf::Step]),
}

impl Op<'_> {
    fn name(&self) -> &'static str {
        match self {
            Op::Describe | Op::DescribeFilters => "describe",
            Op::Prepare { .. } => "prepare",
            Op::Submit(_) => "submit",
            Op::Poll(_) => "poll",
            Op::Cancel(_) => "cancel",
            Op::Apply(..) => "apply",
        }
    }
}

/// What a call returned.
enum Ret {
    Info(wb::ModelInfo),
    Plan(Result<wb::InputPlan, wt::Error>),
    Submission(Result<wb::Submission, wt::Error>),
    Status(Result<wb::Status, wt::Error>),
    Unit(Result<(), wt::Error>),
    Filters(Vec<wf::FilterInfo>),
    Image(Result<wt::Image, wt::Error>),
    /// The call does not exist for this kind of plugin.
    WrongKind,
}

/// Instantiate in `store` and make the call.
async fn run(store: &mut Store<HostState>, pre: &Pre, op: Op<'_>) -> wasmtime::Result<Ret> {
    match pre {
        Pre::Model(pre) => {
            let inst = pre.instantiate_async(&mut *store).await?;
            let b = inst.atelier_plugin_backend();
            Ok(match op {
                Op::Describe => Ret::Info(b.call_describe(&mut *store).await?),
                Op::Prepare { prompt, references, has_mask, n, params } => {
                    Ret::Plan(b.call_prepare(&mut *store, prompt, references, has_mask, n, params).await?)
                }
                Op::Submit(req) => Ret::Submission(b.call_submit(&mut *store, req).await?),
                Op::Poll(t) => Ret::Status(b.call_poll(&mut *store, t).await?),
                Op::Cancel(t) => Ret::Unit(b.call_cancel(&mut *store, t).await?),
                Op::DescribeFilters | Op::Apply(..) => Ret::WrongKind,
            })
        }
        Pre::Filter(pre) => {
            let inst = pre.instantiate_async(&mut *store).await?;
            let f = inst.atelier_plugin_filters();
            Ok(match op {
                Op::DescribeFilters => Ret::Filters(f.call_describe(&mut *store).await?),
                Op::Apply(img, steps) => Ret::Image(f.call_apply(&mut *store, img, steps).await?),
                _ => Ret::WrongKind,
            })
        }
        // Native plugins never get here: `call` hands them to `call_native`.
        Pre::Native(_) => Ok(Ret::WrongKind),
    }
}

/// Linkers for both worlds, built once per engine.
pub struct Linkers {
    /// World `model`.
    pub model: Linker<HostState>,
    /// World `filter`.
    pub filter: Linker<HostState>,
}

impl Linkers {
    /// WASI (sandboxed by the store's context) plus the contract's imports.
    pub fn new(engine: &wasmtime::Engine) -> Result<Linkers> {
        use wasmtime::component::HasSelf;
        let mut m = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut m)?;
        model::Model::add_to_linker::<_, HasSelf<_>>(&mut m, |s| s)?;
        let mut f = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut f)?;
        filter::Filter::add_to_linker::<_, HasSelf<_>>(&mut f, |s| s)?;
        Ok(Linkers { model: m, filter: f })
    }
}

/// The manifest's limits with the operator's overrides; a bad override is refused with its
/// `file:line`, the key, what is wrong and the line to write instead.
fn effective_limits(manifest: &Manifest, ops: &PluginSettings) -> Result<Limits> {
    let mut l = manifest.limits.clone();
    let section = format!("[plugins.{}.limits]", manifest.id);
    for (key, o) in &ops.limits {
        l.set(key, &o.value).map_err(|r| anyhow::anyhow!(r.message(&o.at, &section, key, &o.value)))?;
    }
    Ok(l)
}

/// sha256 of a file, lowercase hex, read in chunks.
fn file_sha256(path: &std::path::Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: cannot read the component: {e}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| anyhow::anyhow!("{}: cannot read the component: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The component must export the interface of its kind at the manifest's contract version.
fn check_exports(engine: &wasmtime::Engine, component: &wasmtime::component::Component, m: &Manifest) -> Result<()> {
    let want = crate::wasm::bindings::export_name(m.kind, &m.contract);
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    if exports.iter().any(|e| *e == want) {
        return Ok(());
    }
    let base = want.split('@').next().unwrap_or(&want);
    if let Some(other) = exports.iter().find(|e| e.starts_with(&format!("{base}@"))) {
        bail!(
            "{}: the component exports {other}, but its manifest says contract {} and this host speaks {}; rebuild the plugin against wit/{}/",
            m.component.display(),
            m.contract,
            crate::manifest::SUPPORTED_CONTRACTS.join(", "),
            crate::manifest::SUPPORTED_CONTRACTS[0]
        );
    }
    bail!(
        "{}: the component does not export {want} (it exports: {}); is `kind = \"{}\"` in {} right, and was it built with the atelier SDK's register_{}! macro?",
        m.component.display(),
        if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") },
        m.kind,
        m.path.display(),
        m.kind
    )
}

/// A guest whose stack ran out.
#[derive(Debug, PartialEq)]
struct Overflow {
    /// The function filling the backtrace, when one does (its name when the plugin kept names).
    recursing_in: Option<String>,
}

/// Lowest fault address taken for a shadow stack run below 0: it wraps to just under 4 GiB, at most
/// one frame down (16 MiB is far more than any frame; the whole stack is 1 MiB by default).
const WRAPPED_STACK_FAULT: u64 = (4 << 30) - (16 << 20);

/// Whether a trap is the guest's stack running out, and where. Two ways look different:
/// wasmtime's own `StackOverflow` (the engine's call stack is exhausted), and, the usual case for
/// Rust and C guests, the shadow stack they keep in linear memory (stack-first) run below
/// address 0: that reads as an out-of-bounds access at a wrapped address near 4 GiB, far past the
/// end of memory. When the engine gives no fault address (explicitly bounds-checked memories), a
/// backtrace made of one function repeated stands in for it.
fn stack_overflow(e: &wasmtime::Error) -> Option<Overflow> {
    let backtrace = e.downcast_ref::<wasmtime::WasmBacktrace>();
    let recursing_in = backtrace.and_then(recursing_function);
    let overflowed = match e.downcast_ref::<wasmtime::Trap>()? {
        wasmtime::Trap::StackOverflow => true,
        wasmtime::Trap::MemoryOutOfBounds => match fault_of(e) {
            Some((address, memory_size)) => address >= WRAPPED_STACK_FAULT && address > memory_size,
            None => recursing_in.is_some(),
        },
        _ => false,
    };
    overflowed.then(|| Overflow { recursing_in: recursing_in.map(|(_, name)| name) })
}

/// `(wasm address, memory size)` of a memory fault, from the context wasmtime attaches
/// ("memory fault at wasm address 0x… in linear memory of size 0x…"; the type is not public).
fn fault_of(e: &wasmtime::Error) -> Option<(u64, u64)> {
    let text = e.chain().map(|c| c.to_string()).find(|c| c.contains("memory fault at wasm address 0x"))?;
    let hex_after = |marker: &str| -> Option<u64> {
        let rest = &text[text.find(marker)? + marker.len()..];
        let end = rest.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(rest.len());
        u64::from_str_radix(&rest[..end], 16).ok()
    };
    Some((hex_after("wasm address 0x")?, hex_after("linear memory of size 0x")?))
}

/// The function that fills a backtrace truncated at its frame cap (deep recursion), as
/// (index, name or `function N`); `None` for an ordinary, varied backtrace.
fn recursing_function(bt: &wasmtime::WasmBacktrace) -> Option<(u32, String)> {
    let frames = bt.frames();
    // Fewer frames than the engine's cap (20) cannot be a runaway recursion.
    if frames.len() < 16 {
        return None;
    }
    let mut counts = std::collections::BTreeMap::<u32, usize>::new();
    for f in frames {
        *counts.entry(f.func_index()).or_default() += 1;
    }
    let (index, count) = counts.into_iter().max_by_key(|(_, n)| *n)?;
    if count * 4 < frames.len() * 3 {
        return None;
    }
    let name = frames.iter().find(|f| f.func_index() == index).and_then(|f| f.func_name()).map(readable_symbol);
    Some((index, name.unwrap_or_else(|| format!("function {index}"))))
}

/// A Rust mangled symbol as its path without the hash (`_ZN5crate4func17h…E` → `crate::func`);
/// other names as they are.
fn readable_symbol(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

/// The useful part of a trap: its message and the guest frames wasmtime attached.
fn trap_text(e: &wasmtime::Error) -> String {
    let mut s = format!("{e}");
    if let Some(t) = e.downcast_ref::<wasmtime::Trap>() {
        s = t.to_string();
        if !s.starts_with("wasm trap") {
            s = format!("wasm trap: {s}");
        }
    }
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s.lines().take(6).collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_symbols_read_as_paths() {
        assert_eq!(readable_symbol("_ZN12hostile_deep13shadow_frames17h02a55fc881e6904eE"), "hostile_deep::shadow_frames");
        assert_eq!(readable_symbol("plain_c_name"), "plain_c_name");
        assert_eq!(readable_symbol("_ZN99broken"), "_ZN99broken");
    }

    /// Run `wat`'s `run` export in a fresh store of a default engine and return its trap.
    fn trap_of(wat: &str) -> wasmtime::Error {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wat).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        instance.get_typed_func::<(), ()>(&mut store, "run").unwrap().call(&mut store, ()).unwrap_err()
    }

    #[test]
    fn a_shadow_stack_run_below_zero_is_an_overflow_and_a_stray_access_is_not() {
        // What a stack-first Rust guest does when its stack pointer (a global) passes 0: the
        // next frame's store lands at a wrapped address just under 4 GiB.
        let below_zero = trap_of(
            r#"(module (memory 17) (global $sp (mut i32) (i32.const 64))
                (func (export "run") (global.set $sp (i32.sub (global.get $sp) (i32.const 128)))
                                     (i64.store offset=8 (global.get $sp) (i64.const 1))))"#,
        );
        assert_eq!(below_zero.downcast_ref::<wasmtime::Trap>(), Some(&wasmtime::Trap::MemoryOutOfBounds));
        assert!(stack_overflow(&below_zero).is_some(), "{below_zero:?}");
        // Just past the end of memory: a bug, reported as the memory fault it is.
        let past_end = trap_of(r#"(module (memory 1) (func (export "run") (i64.store (i32.const 65536) (i64.const 1))))"#);
        assert_eq!(past_end.downcast_ref::<wasmtime::Trap>(), Some(&wasmtime::Trap::MemoryOutOfBounds));
        assert_eq!(stack_overflow(&past_end), None);
        assert!(trap_text(&past_end).contains("out of bounds memory access"), "{}", trap_text(&past_end));
    }

    #[test]
    fn the_engine_running_out_of_call_stack_is_an_overflow_in_the_recursing_function() {
        let e = trap_of(r#"(module (func $deep (export "run") (call $deep)))"#);
        assert_eq!(e.downcast_ref::<wasmtime::Trap>(), Some(&wasmtime::Trap::StackOverflow));
        assert_eq!(stack_overflow(&e), Some(Overflow { recursing_in: Some("deep".into()) }));
    }
}
