//! The native tier (docs/native.md): trusted filter plugins loaded as shared libraries, opt-in per
//! plugin id by the operator, who pins the library's sha256 in `atelier.toml`. The pin is checked
//! against the bytes before `dlopen` (loading runs the library's init code); libraries are loaded
//! once per process and never unloaded; calls run on tokio's blocking pool, a bounded number at a
//! time per plugin. To callers a native plugin is a [`Plugin`](crate::plugin::Plugin) like any other.

pub(crate) mod abi;

use crate::manifest::{Manifest, Tier};
use crate::types;
use crate::settings::{PluginSettings, Settings};
use abi::{Collected, ImageView, NativeTable};
use anyhow::{Result, bail};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Whether the operator opted in to this plugin: always for wasm; for a native plugin, only when
/// its id's section pins a sha256 (whether the pin matches is checked when it loads).
pub fn opted_in(m: &Manifest, settings: &Settings) -> bool {
    m.tier == Tier::Wasm || settings.plugins.get(&m.id).is_some_and(|p| p.native_sha256.is_some())
}

/// The lines an operator adds to allow this library, exactly as it is now.
fn pin_lines(id: &str, sha: &str) -> String {
    format!("    [plugins.{id}]\n    native_sha256 = \"{sha}\"")
}

/// A loaded native library's entry points, shared by every plugin (and runtime) that uses it.
struct Loaded {
    table: NativeTable,
    /// The library's `describe`, decoded once at load.
    filters: Vec<types::FilterInfo>,
}

/// Libraries by sha256: each is opened once per process and kept for its life (never unloaded:
/// unloading Rust code with thread-locals or registered destructors is unsound).
static LOADED: Mutex<Option<HashMap<String, Arc<Loaded>>>> = Mutex::new(None);

/// A native filter plugin, ready to be called.
pub struct NativeFilters {
    id: String,
    /// The library file and the sha256 it was loaded with (equal to the operator's pin).
    pub path: std::path::PathBuf,
    /// Its sha256, lowercase hex.
    pub sha256: String,
    lib: Arc<Loaded>,
    /// Calls of this plugin running at once: `max_in_flight`, else the machine's cores.
    permits: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for NativeFilters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeFilters").field("id", &self.id).field("path", &self.path).field("sha256", &self.sha256).finish()
    }
}

impl NativeFilters {
    /// Check the operator's pin against the library's bytes, then open it (once per process),
    /// check its ABI and contract, and read its filters. Refusals carry the lines to add.
    pub fn load(m: &Manifest, ops: &PluginSettings, config_path: &str, max_in_flight: Option<u32>) -> Result<NativeFilters> {
        let id = &m.id;
        let path = &m.component;
        let (sha, bytes) = read_and_hash(path)?;
        match &ops.native_sha256 {
            None => bail!(
                "plugin `{id}` is a native library ({}): it runs unsandboxed, with every right of atelier itself, so it loads only when the operator allows it by id and pins its sha256; if you trust it, add to {config_path}:\n{}",
                path.display(),
                pin_lines(id, &sha)
            ),
            Some(pin) if *pin != sha => bail!(
                "plugin `{id}`: {} has sha256 {sha}, but {} pins {pin}; the library is not the one the operator allowed and was not loaded; if this one is trusted, write instead:\n{}",
                path.display(),
                ops.native_sha256_at,
                pin_lines(id, &sha)
            ),
            Some(_) => {}
        }
        let lib = open(path, &sha, &bytes, &m.contract).map_err(|e| anyhow::anyhow!("plugin `{id}` ({}): {e:#}", path.display()))?;
        let permits = max_in_flight.map_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()), |n| n as usize);
        Ok(NativeFilters { id: id.clone(), path: path.clone(), sha256: sha, lib, permits: Arc::new(tokio::sync::Semaphore::new(permits.max(1))) })
    }

    /// The filters the library provides (read once, when it loaded).
    pub fn describe(&self) -> Vec<types::FilterInfo> {
        self.lib.filters.clone()
    }

    /// Run `steps` on `image` on the blocking pool. A call over `timeout` is reported as such,
    /// but native code cannot be stopped: it keeps its thread and its permit until it returns.
    pub async fn apply(&self, image: &types::Image, steps: &[types::Step], timeout: Duration) -> Result<Result<types::Image, types::PluginError>> {
        let permit = self.permits.clone().acquire_owned().await?;
        let encoded = abi::encode_steps(steps);
        // The call outlives this future if the caller gives up, so it owns its input.
        let input = image.clone();
        let lib = self.lib.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            call_apply(&lib.table, &input, &encoded)
        });
        let id = &self.id;
        match tokio::time::timeout(timeout, task).await {
            Err(_) => bail!(
                "plugin `{id}` (native) did not finish `apply` within {} s; native code cannot be stopped, so it runs on in the background; if it needs longer, raise [plugins.{id}.limits] call_timeout_s",
                timeout.as_secs_f64()
            ),
            Ok(Err(e)) => bail!("plugin `{id}` (native): the call was lost: {e}"),
            Ok(Ok(Outcome::Done(image))) => Ok(Ok(image)),
            Ok(Ok(Outcome::Failed(e))) => Ok(Err(e)),
            Ok(Ok(Outcome::Panicked(m))) => bail!("plugin `{id}` crashed in `apply` (a bug in the plugin; report it to its author): {m}"),
            Ok(Ok(Outcome::Broken(m))) => bail!("plugin `{id}` (native) broke the ABI in `apply`: {m}"),
        }
    }
}

/// The file's bytes and their sha256: the bytes hashed are the bytes loaded (see [`open`]).
fn read_and_hash(path: &std::path::Path) -> Result<(String, Vec<u8>)> {
    use sha2::Digest;
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("{}: the native library named by `library` cannot be read ({e}); build and stage it with `cargo xtask build`", path.display()))?;
    if !meta.is_file() {
        bail!("{}: the native library is not a regular file", path.display());
    }
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read the native library: {e}", path.display()))?;
    Ok((hex::encode(sha2::Sha256::digest(&bytes)), bytes))
}

/// Open a library whose bytes were verified, or reuse it when this process already has.
fn open(path: &std::path::Path, sha: &str, bytes: &[u8], contract: &str) -> Result<Arc<Loaded>> {
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    let map = loaded.get_or_insert_with(HashMap::new);
    if let Some(l) = map.get(sha) {
        return Ok(l.clone());
    }
    let (copy, load_path) = verified_copy(path, bytes);
    // SAFETY: this runs the library's initialisers; the operator vouched for these exact bytes
    // with the pin checked above. The library is leaked: never unloaded.
    let lib = unsafe { libloading::Library::new(&load_path) }.map_err(|e| anyhow::anyhow!("cannot load it: {e}"))?;
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));
    // The copy's descriptor stays open for the process's life, like the library: glibc knows a
    // loaded object by the name it was opened with, and a reused `/proc/self/fd/N` would make
    // a later, different library resolve to this one.
    std::mem::forget(copy);
    // SAFETY: the symbol's type is fixed by the ABI (docs/native.md).
    let entry: libloading::Symbol<unsafe extern "C" fn() -> *const NativeTable> = unsafe { lib.get(abi::ENTRY_SYMBOL) }
        .map_err(|_| anyhow::anyhow!("it does not export `atelier_native_plugin`; is it an atelier native plugin (docs/native.md)?"))?;
    // SAFETY: the entry point takes nothing and returns a pointer to a static table.
    let table = unsafe { entry() };
    let Some(head) = (unsafe { table.as_ref() }) else { bail!("`atelier_native_plugin` returned no table") };
    // Read the version before anything else: a table of another major may not have our layout.
    if head.abi_major != abi::ABI_MAJOR {
        bail!(
            "it speaks native ABI {}.{}, this host speaks {}.x; rebuild it against this atelier (cargo xtask build)",
            head.abi_major,
            head.abi_minor,
            abi::ABI_MAJOR
        );
    }
    if head.size < size_of::<NativeTable>() {
        bail!("its table is {} bytes, ABI {}.0 needs {}; rebuild it", head.size, abi::ABI_MAJOR, size_of::<NativeTable>());
    }
    let table = *head;
    // SAFETY: the contract is static UTF-8 of the given length (checked below).
    let theirs = unsafe { std::slice::from_raw_parts(table.contract, table.contract_len) };
    let theirs = std::str::from_utf8(theirs).unwrap_or("(not UTF-8)");
    if theirs != contract {
        bail!("it follows contract {theirs}, but its plugin.toml says {contract}; rebuild it or fix `contract`");
    }
    let mut got = Collected::default();
    let sink = got.sink();
    // SAFETY: `sink` points into `got`, alive across the call.
    let status = unsafe { (table.describe)(table.ctx, &sink) };
    let text = String::from_utf8_lossy(&got.bytes).into_owned();
    if status != abi::STATUS_OK {
        bail!("its `describe` failed (status {status}): {text}");
    }
    let filters = abi::decode_infos(&got.bytes).map_err(|e| anyhow::anyhow!("its `describe` answer is malformed: {e}"))?;
    let l = Arc::new(Loaded { table, filters });
    map.insert(sha.to_string(), l.clone());
    Ok(l)
}

/// What to `dlopen`: on Linux a private in-memory copy of the verified bytes (`memfd`), so the
/// file cannot be swapped between the check and the load; elsewhere, or if that fails, the path.
#[cfg(target_os = "linux")]
fn verified_copy(path: &std::path::Path, bytes: &[u8]) -> (Option<std::fs::File>, std::path::PathBuf) {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: a plain syscall with a static C string; the descriptor is owned by the File below.
    let fd = unsafe { libc::memfd_create(c"atelier-native".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return (None, path.to_path_buf());
    }
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    if file.write_all(bytes).is_err() {
        return (None, path.to_path_buf());
    }
    (Some(file), std::path::PathBuf::from(format!("/proc/self/fd/{fd}")))
}

#[cfg(not(target_os = "linux"))]
fn verified_copy(path: &std::path::Path, _bytes: &[u8]) -> (Option<std::fs::File>, std::path::PathBuf) {
    (None, path.to_path_buf())
}

/// How one `apply` ended.
enum Outcome {
    Done(types::Image),
    Failed(types::PluginError),
    Panicked(String),
    Broken(String),
}

/// One `apply` through the C ABI, on the calling (blocking-pool) thread.
fn call_apply(table: &NativeTable, image: &types::Image, steps: &[u8]) -> Outcome {
    let view = ImageView::packed(image.width, image.height, &image.pixels);
    let mut got = Collected::default();
    let sink = got.sink();
    // SAFETY: the view borrows `image` and the sink `got`, both alive across the call; `steps`
    // is a slice of `steps.len()` bytes.
    let status = unsafe { (table.apply)(table.ctx, &view, steps.as_ptr(), steps.len(), &sink) };
    let text = String::from_utf8_lossy(&got.bytes).into_owned();
    match status {
        abi::STATUS_OK => match (got.image, got.refused) {
            (Some(image), _) => Outcome::Done(image),
            (None, why) => Outcome::Broken(format!("it reported success without a usable image{}", why.map(|w| format!(" ({w})")).unwrap_or_default())),
        },
        abi::STATUS_INVALID_INPUT => Outcome::Failed(types::PluginError::InvalidInput(text)),
        abi::STATUS_INTERNAL => Outcome::Failed(types::PluginError::Internal(match got.refused {
            Some(why) => format!("{text}: {why}"),
            None => text,
        })),
        abi::STATUS_PANIC => Outcome::Panicked(text),
        abi::STATUS_BAD_ARGUMENT => Outcome::Broken(format!("it refused the host's arguments: {text}")),
        other => Outcome::Broken(format!("unknown status {other}: {text}")),
    }
}
