//! A loaded plugin and the calls the host makes into it, each in a fresh store.

use crate::caps::grants::Grants;
use crate::caps::http::{HttpCap, HttpLimits};
use crate::manifest::{Kind, Limits, Manifest};
use crate::settings::{JobSettings, PluginSettings, Settings};
use crate::types::{Draft, FilterInfo, Image, InputPlan, ModelInfo, PluginError, Request, Status, Step, Submission};
use crate::wasm::{since_v0_1, since_v0_2};
use crate::wasm::engine::WasmEngine;
use crate::wasm::store::{HostState, PluginCtx, new_store};
use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::Linker;

/// A model backend ready to instantiate, at the contract version it exports.
pub(crate) enum ModelPre {
    /// Contract 0.1.0, with the legacy parameters its `describe` declared (read once).
    V0_1 { pre: since_v0_1::model::ModelPre<HostState>, legacy: tokio::sync::OnceCell<since_v0_1::Legacy> },
    /// Contract 0.2.0.
    V0_2(since_v0_2::model::ModelPre<HostState>),
}

/// A filter family ready to call, at the contract version it exports, or native.
pub(crate) enum FilterPre {
    /// Contract 0.1.0.
    V0_1(since_v0_1::filter::FilterPre<HostState>),
    /// Contract 0.2.0.
    V0_2(since_v0_2::filter::FilterPre<HostState>),
    /// A native filter library the operator pinned (docs/native.md); called without a store.
    Native(Arc<crate::native::NativeFilters>),
}

/// What kind of plugin this is, holding what its calls need.
enum Handle {
    Model(ModelPre),
    Filter(FilterPre),
}

/// Data from the guest that its contract's types allow but the host refuses (an image whose
/// buffer does not match its size, a default outside its choices, an unknown stream handle).
#[derive(Debug)]
struct BadData(String);

impl std::fmt::Display for BadData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BadData {}

/// A component whose exports have the right names but not the contract's types (built from an
/// edited WIT): found when it is instantiated.
#[derive(Debug)]
struct WrongShape(String);

impl std::fmt::Display for WrongShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for WrongShape {}

fn bad(e: String) -> wasmtime::Error {
    wasmtime::Error::new(BadData(e))
}

/// One call into the guest in a fresh store, within the call's deadline: `$body` (an expression
/// using `$store`, ending in `Ok(value)`) runs in an async block; the result is settled by
/// [`Plugin::settle`] (deadline, trap, out of memory, cut off after the provider took a request).
macro_rules! guest_call {
    ($self:ident, $job:expr, $what:literal, |$store:ident| $body:expr) => {{
        let _share = $self.share.acquire().await?;
        let _slot = $self.engine.slots.acquire().await?;
        let mut store = new_store(&$self.engine.engine, $self.ctx.clone(), $job);
        let grace = Duration::from_millis(500);
        let outcome = tokio::time::timeout($self.ctx.call_timeout + grace, async {
            let $store = &mut store;
            $body
        })
        .await;
        $self.settle($what, &store, outcome)
    }};
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
    handle: Handle,
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
pub(crate) struct CutOff(pub(crate) String);

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
        let version = check_exports(&engine.engine, &component, &manifest)?;
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
        // A component that exports the right name with another shape (built from an edited WIT).
        let shape = |e: wasmtime::Error| {
            anyhow::anyhow!(
                "{}: the component exports {} but not in the shape contract {} defines ({e}); rebuild it against wit/{}/ with the atelier SDK",
                manifest.component.display(),
                crate::wasm::export_name(manifest.kind, &manifest.contract),
                manifest.contract,
                manifest.contract
            )
        };
        let handle = match (manifest.kind, version) {
            (Kind::Model, Contract::V0_1) => Handle::Model(ModelPre::V0_1 {
                pre: since_v0_1::model::ModelPre::new(linkers.model_v0_1.instantiate_pre(&component).map_err(shape)?).map_err(shape)?,
                legacy: tokio::sync::OnceCell::new(),
            }),
            (Kind::Model, Contract::V0_2) => Handle::Model(ModelPre::V0_2(since_v0_2::model::ModelPre::new(linkers.model_v0_2.instantiate_pre(&component).map_err(shape)?).map_err(shape)?)),
            (Kind::Filter, Contract::V0_1) => Handle::Filter(FilterPre::V0_1(since_v0_1::filter::FilterPre::new(linkers.filter_v0_1.instantiate_pre(&component).map_err(shape)?).map_err(shape)?)),
            (Kind::Filter, Contract::V0_2) => Handle::Filter(FilterPre::V0_2(since_v0_2::filter::FilterPre::new(linkers.filter_v0_2.instantiate_pre(&component).map_err(shape)?).map_err(shape)?)),
        };
        let share = Arc::new(tokio::sync::Semaphore::new(engine.plugin_share()));
        Ok(Plugin { manifest, settings: ops, grants, limits, jobs: settings.jobs.clone(), ctx, engine, share, digest, handle })
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

    /// A finished guest call as the host sees it: its value, or the error that says why not;
    /// a call that ended without its answer after the provider may have taken a request is
    /// [`CutOff`].
    fn settle<T>(&self, what: &str, store: &Store<HostState>, outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>) -> Result<Called<T>> {
        let data = store.data();
        let ambiguous = data.record.ambiguous.load(Ordering::Relaxed);
        let accepted = data.record.accepted.load(Ordering::Relaxed);
        let e = match outcome {
            Ok(Ok(value)) => return Ok(Called { value, ambiguous, accepted }),
            Err(_) => anyhow::anyhow!(self.deadline_message(what)),
            Ok(Err(_)) if data.deadline_hit => anyhow::anyhow!(self.deadline_message(what)),
            Ok(Err(e)) if e.downcast_ref::<WrongShape>().is_some() => anyhow::anyhow!("{e}"),
            Ok(Err(e)) if e.downcast_ref::<BadData>().is_some() => anyhow::anyhow!(
                "plugin `{}` answered `{what}` with data the host refuses (a bug in the plugin; report it to its author): {e}",
                self.manifest.id
            ),
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

    /// An instantiation that failed without a trap: the exports do not type-check against the
    /// contract's bindings.
    fn shape(&self, e: wasmtime::Error) -> wasmtime::Error {
        if e.downcast_ref::<wasmtime::Trap>().is_some() {
            return e;
        }
        let m = &self.manifest;
        wasmtime::Error::new(WrongShape(format!(
            "{}: the component exports {} but not in the shape contract {} defines ({e}); rebuild it against wit/{}/ with the atelier SDK",
            m.component.display(),
            crate::wasm::export_name(m.kind, &m.contract),
            m.contract,
            m.contract
        )))
    }

    fn wrong_kind(&self) -> anyhow::Error {
        match self.manifest.kind {
            Kind::Filter => anyhow::anyhow!("`{}` is a filter, not a model; use it as a filter step (--pre/--post/--step)", self.id()),
            Kind::Model => anyhow::anyhow!("`{}` is a model, not a filter; use it with --model", self.id()),
        }
    }

    /// The model handle, or a clear error for a filter.
    fn model_pre(&self) -> Result<&ModelPre> {
        match &self.handle {
            Handle::Model(m) => Ok(m),
            Handle::Filter(_) => Err(self.wrong_kind()),
        }
    }

    /// The filter handle, or a clear error for a model.
    fn filter_pre(&self) -> Result<&FilterPre> {
        match &self.handle {
            Handle::Filter(f) => Ok(f),
            Handle::Model(_) => Err(self.wrong_kind()),
        }
    }

    /// The parameters a 0.1 model declared for what 0.2 types (`output`, `aspect`, `size`),
    /// read from its `describe` once.
    async fn legacy(&self, cell: &tokio::sync::OnceCell<since_v0_1::Legacy>) -> Result<since_v0_1::Legacy> {
        cell.get_or_try_init(|| async { self.describe_model_v0_1().await.map(|(_, legacy)| legacy) }).await.cloned()
    }

    async fn describe_model_v0_1(&self) -> Result<(ModelInfo, since_v0_1::Legacy)> {
        let ModelPre::V0_1 { pre, .. } = self.model_pre()? else { return Err(self.wrong_kind()) };
        Ok(guest_call!(self, "describe", "describe", |store| {
            let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
            let raw = inst.atelier_plugin_backend().call_describe(&mut *store).await?;
            since_v0_1::model_info(raw).map_err(bad)
        })?
        .value)
    }

    /// `describe` of a model, as the host's model info (whatever contract it speaks).
    pub async fn describe_model(&self) -> Result<ModelInfo> {
        match self.model_pre()? {
            ModelPre::V0_1 { legacy, .. } => {
                let (info, l) = self.describe_model_v0_1().await?;
                let _ = legacy.set(l);
                Ok(info)
            }
            ModelPre::V0_2(pre) => Ok(guest_call!(self, "describe", "describe", |store| {
                let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                let raw = inst.atelier_plugin_backend().call_describe(&mut *store).await?;
                since_v0_2::model_info(raw).map_err(bad)
            })?
            .value),
        }
    }

    /// `prepare` of a model.
    pub async fn prepare(&self, job: &str, draft: &Draft) -> Result<Result<InputPlan, PluginError>> {
        let called = match self.model_pre()? {
            ModelPre::V0_1 { pre, legacy } => {
                let (prompt, references, has_mask, n, params) = since_v0_1::draft(draft, &self.legacy(legacy).await?);
                guest_call!(self, job, "prepare", |store| {
                    let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                    let r = inst.atelier_plugin_backend().call_prepare(&mut *store, &prompt, &references, has_mask, n, &params).await?;
                    Ok(r.map(Into::into).map_err(Into::into))
                })?
            }
            ModelPre::V0_2(pre) => {
                let d = since_v0_2::draft(draft);
                guest_call!(self, job, "prepare", |store| {
                    let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                    let r = inst.atelier_plugin_backend().call_prepare(&mut *store, &d).await?;
                    Ok(r.map(Into::into).map_err(Into::into))
                })?
            }
        };
        Ok(called.value)
    }

    /// `submit` of a model.
    pub async fn submit(&self, job: &str, req: &Request) -> Result<Called<Result<Submission, PluginError>>> {
        match self.model_pre()? {
            ModelPre::V0_1 { pre, legacy } => {
                let r = since_v0_1::request(req, &self.legacy(legacy).await?);
                guest_call!(self, job, "submit", |store| {
                    let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                    match inst.atelier_plugin_backend().call_submit(&mut *store, &r).await? {
                        Ok(s) => Ok(Ok(since_v0_1::submission(s).map_err(bad)?)),
                        Err(e) => Ok(Err(e.into())),
                    }
                })
            }
            ModelPre::V0_2(pre) => {
                let r = since_v0_2::request(req);
                guest_call!(self, job, "submit", |store| {
                    let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                    match inst.atelier_plugin_backend().call_submit(&mut *store, &r).await? {
                        Ok(s) => Ok(Ok(since_v0_2::submission(s, &mut store.data_mut().streams).map_err(bad)?)),
                        Err(e) => Ok(Err(e.into())),
                    }
                })
            }
        }
    }

    /// `poll` of a model.
    pub async fn poll(&self, job: &str, token: &str) -> Result<Result<Status, PluginError>> {
        let called = match self.model_pre()? {
            ModelPre::V0_1 { pre, .. } => guest_call!(self, job, "poll", |store| {
                let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                match inst.atelier_plugin_backend().call_poll(&mut *store, token).await? {
                    Ok(s) => Ok(Ok(since_v0_1::status(s).map_err(bad)?)),
                    Err(e) => Ok(Err(e.into())),
                }
            })?,
            ModelPre::V0_2(pre) => guest_call!(self, job, "poll", |store| {
                let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                match inst.atelier_plugin_backend().call_poll(&mut *store, token).await? {
                    Ok(s) => Ok(Ok(since_v0_2::status(s, &mut store.data_mut().streams).map_err(bad)?)),
                    Err(e) => Ok(Err(e.into())),
                }
            })?,
        };
        Ok(called.value)
    }

    /// `cancel` of a model.
    pub async fn cancel(&self, job: &str, token: &str) -> Result<Result<(), PluginError>> {
        let called = match self.model_pre()? {
            ModelPre::V0_1 { pre, .. } => guest_call!(self, job, "cancel", |store| {
                let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                Ok(inst.atelier_plugin_backend().call_cancel(&mut *store, token).await?.map_err(Into::into))
            })?,
            ModelPre::V0_2(pre) => guest_call!(self, job, "cancel", |store| {
                let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                Ok(inst.atelier_plugin_backend().call_cancel(&mut *store, token).await?.map_err(Into::into))
            })?,
        };
        Ok(called.value)
    }

    /// `describe` of a filter family.
    pub async fn describe_filters(&self) -> Result<Vec<FilterInfo>> {
        let called = match self.filter_pre()? {
            FilterPre::Native(lib) => return Ok(lib.describe()),
            FilterPre::V0_1(pre) => guest_call!(self, "describe", "describe", |store| {
                let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                let raw = inst.atelier_plugin_filters().call_describe(&mut *store).await?;
                since_v0_1::filters(raw).map_err(bad)
            })?,
            FilterPre::V0_2(pre) => guest_call!(self, "describe", "describe", |store| {
                let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                let raw = inst.atelier_plugin_filters().call_describe(&mut *store).await?;
                since_v0_2::filters(raw).map_err(bad)
            })?,
        };
        Ok(called.value)
    }

    /// `apply` of a filter family: consecutive steps in one call. The image moves into the
    /// call (no copy of its pixels).
    pub async fn apply(&self, job: &str, image: Image, steps: &[Step]) -> Result<Result<Image, PluginError>> {
        let called = match self.filter_pre()? {
            FilterPre::Native(lib) => return lib.apply(&image, steps, self.ctx.call_timeout).await,
            FilterPre::V0_1(pre) => {
                let (img, steps) = since_v0_1::apply_args(image, steps);
                guest_call!(self, job, "apply", |store| {
                    let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                    match inst.atelier_plugin_filters().call_apply(&mut *store, &img, &steps).await? {
                        Ok(out) => Ok(Ok(out.into())),
                        Err(e) => Ok(Err(e.into())),
                    }
                })?
            }
            FilterPre::V0_2(pre) => {
                let (img, steps) = since_v0_2::apply_args(image, steps);
                guest_call!(self, job, "apply", |store| {
                    let inst = pre.instantiate_async(&mut *store).await.map_err(|e| self.shape(e))?;
                    match inst.atelier_plugin_filters().call_apply(&mut *store, &img, &steps).await? {
                        Ok(out) => Ok(Ok(out.into())),
                        Err(e) => Ok(Err(e.into())),
                    }
                })?
            }
        };
        Ok(called.value)
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
        Ok(Plugin { manifest, settings: ops, grants, limits, jobs, ctx, engine, share, digest, handle: Handle::Filter(FilterPre::Native(Arc::new(lib))) })
    }

    /// The native library behind this plugin, if it is one (tier, path and pinned sha256).
    pub fn native(&self) -> Option<&crate::native::NativeFilters> {
        match &self.handle {
            Handle::Filter(FilterPre::Native(lib)) => Some(lib),
            _ => None,
        }
    }
}

/// Linkers for both worlds of every contract version, built once per engine.
pub struct Linkers {
    model_v0_1: Linker<HostState>,
    filter_v0_1: Linker<HostState>,
    model_v0_2: Linker<HostState>,
    filter_v0_2: Linker<HostState>,
}

impl Linkers {
    /// WASI (sandboxed by the store's context) plus each version's imports, each linked by the
    /// capability that implements it.
    pub fn new(engine: &wasmtime::Engine) -> Result<Linkers> {
        use crate::caps;
        let wasi = || -> Result<Linker<HostState>> {
            let mut l = Linker::<HostState>::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut l)?;
            Ok(l)
        };
        let (mut m1, mut f1, mut m2, mut f2) = (wasi()?, wasi()?, wasi()?, wasi()?);
        for l in [&mut m1, &mut f1] {
            since_v0_1::add_types_to_linker(l)?;
            caps::config::add_to_linker_v0_1(l)?;
            caps::log::add_to_linker_v0_1(l)?;
        }
        caps::http::add_to_linker_v0_1(&mut m1)?;
        caps::clock::add_to_linker_v0_1(&mut m1)?;
        for l in [&mut m2, &mut f2] {
            since_v0_2::add_types_to_linker(l)?;
            caps::config::add_to_linker_v0_2(l)?;
            caps::log::add_to_linker_v0_2(l)?;
        }
        caps::http::add_to_linker_v0_2(&mut m2)?;
        caps::clock::add_to_linker_v0_2(&mut m2)?;
        caps::artifacts::add_to_linker_v0_2(&mut m2)?;
        Ok(Linkers { model_v0_1: m1, filter_v0_1: f1, model_v0_2: m2, filter_v0_2: f2 })
    }

    /// World `model` at contract 0.1.0, for the call-path benchmark.
    #[doc(hidden)]
    pub fn model_v0_1(&self) -> &Linker<HostState> {
        &self.model_v0_1
    }
}

/// The contract versions this host has bindings for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contract {
    V0_1,
    V0_2,
}

impl Contract {
    const ALL: [(Contract, &'static str); 2] = [(Contract::V0_2, "0.2.0"), (Contract::V0_1, "0.1.0")];
}

/// The manifest's limits with the operator's overrides; a bad override is refused with its
/// `file:line`, the key, what is wrong and the line to write instead.
pub(crate) fn effective_limits(manifest: &Manifest, ops: &PluginSettings) -> Result<Limits> {
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

/// The contract version the component speaks, from what it exports (the interface of its kind
/// at a version this host has bindings for); it must be the manifest's `contract`.
fn check_exports(engine: &wasmtime::Engine, component: &wasmtime::component::Component, m: &Manifest) -> Result<Contract> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    let found = Contract::ALL.iter().find(|(_, v)| exports.contains(&crate::wasm::export_name(m.kind, v)));
    if let Some((contract, version)) = found {
        if *version != m.contract {
            bail!(
                "{}: the component exports {} (contract {version}), but its manifest says contract {} ({}); set contract = \"{version}\" there, or rebuild the plugin against wit/{}/",
                m.component.display(),
                crate::wasm::export_name(m.kind, version),
                m.contract,
                m.path.display(),
                m.contract
            );
        }
        return Ok(*contract);
    }
    let want = crate::wasm::export_name(m.kind, &m.contract);
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
