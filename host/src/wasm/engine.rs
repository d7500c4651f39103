//! One wasmtime `Engine` for the process: pooling allocator, epoch ticker, and a compile cache of
//! precompiled components keyed by component hash, wasmtime version and engine settings.

use anyhow::{Context, Result, bail};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; the granularity of deadlines and of cooperative yields.
pub const TICK: Duration = Duration::from_millis(10);

/// Engine-wide sizing.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Instances alive at once (pool slots); calls beyond wait for a slot.
    pub max_instances: u32,
    /// The largest memory any plugin may be granted, bytes.
    pub max_memory: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { max_instances: 64, max_memory: 4 << 30 }
    }
}

/// The process's engine plus what calls need to share it fairly.
pub struct WasmEngine {
    /// The wasmtime engine.
    pub engine: Engine,
    /// One permit per pool slot.
    pub slots: Arc<tokio::sync::Semaphore>,
    /// Where precompiled artifacts live.
    pub cache_dir: PathBuf,
    max_memory: usize,
    slot_count: usize,
}

impl WasmEngine {
    /// Build the engine and start its epoch ticker (a plain thread, so a busy async runtime cannot
    /// starve deadlines).
    pub fn new(opts: &EngineOptions, cache_dir: PathBuf) -> Result<WasmEngine> {
        let mut pool = PoolingAllocationConfig::default();
        let n = opts.max_instances;
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(opts.max_memory)
            // Reuse warm slots' pages instead of faulting them in again on every call: big images
            // cross into fresh stores all the time. Bounded: 8 warm slots × 128 MiB.
            .linear_memory_keep_resident(128 << 20)
            .table_keep_resident(1 << 20)
            .async_stack_keep_resident(1 << 20)
            .max_unused_warm_slots(8)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| anyhow::anyhow!("cannot create the wasm engine: {e:#}"))?;
        let weak = engine.weak();
        std::thread::Builder::new().name("atelier-epoch".into()).spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })?;
        Ok(WasmEngine { engine, slots: Arc::new(tokio::sync::Semaphore::new(n as usize)), cache_dir, max_memory: opts.max_memory, slot_count: n as usize })
    }

    /// How many instance slots one plugin may hold at once: three quarters of the pool (at least
    /// one), so a plugin stuck in long calls always leaves room for the others.
    pub fn plugin_share(&self) -> usize {
        (self.slot_count * 3 / 4).max(1)
    }

    /// The largest memory a store may have.
    pub fn max_memory(&self) -> usize {
        self.max_memory
    }

    /// Load a component, from the compile cache when this host already compiled it.
    ///
    /// A warm load touches no component bytes: the `.wasm`'s key comes from a stamp index
    /// (size, mtime, inode → key) and the artifact is memory-mapped once its own stamp shows it is
    /// the file this host wrote. Anything that does not match falls back to hashing.
    pub fn load_component(&self, path: &Path) -> Result<Component> {
        let stamp = FileStamp::of(path).with_context(|| format!("{}: cannot read the component", path.display()))?;
        let index = self.cache_dir.join("index").join(format!("{}.key", &blake3::hash(path.as_os_str().as_encoded_bytes()).to_hex()[..32]));
        if let Some(key) = read_index(&index, &stamp) {
            if let Some(c) = self.read_artifact(&key) {
                return Ok(c);
            }
        }
        let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read the component", path.display()))?;
        check_is_component(&bytes, path)?;
        let key = self.cache_key(&bytes);
        let indexed = |key: &str| {
            // Re-stat: the stamp must describe the bytes that were hashed.
            if FileStamp::of(path).is_ok_and(|s| s == stamp) {
                let _ = write_small(&index, &format!("{} {key}", stamp.text()));
            }
        };
        // Only artifacts whose digest this host recorded when writing them are deserialized.
        if let Some(c) = self.read_artifact(&key) {
            indexed(&key);
            return Ok(c);
        }
        // Another process may be compiling the same component: wait for it rather than compile
        // twice on a small machine.
        let lock = self.cache_dir.join(format!("{key}.lock"));
        let _guard = CompileLock::acquire(&lock);
        if _guard.waited {
            if let Some(c) = self.read_artifact(&key) {
                indexed(&key);
                return Ok(c);
            }
        }
        let component = Component::new(&self.engine, &bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a loadable component: {e:#}", path.display()))?;
        if let Ok(art) = component.serialize() {
            if self.write_artifact(&key, &art).is_ok() {
                indexed(&key);
            }
        }
        Ok(component)
    }

    /// The artifact for `key`, if this host wrote it: either its stamp is the one recorded at
    /// write time (same inode, size and mtime: nobody rewrote it), or its BLAKE3 digest matches
    /// the recorded one (then the stamp is recorded afresh).
    fn read_artifact(&self, key: &str) -> Option<Component> {
        let artifact = self.cache_dir.join(format!("{key}.cwasm"));
        let digest_file = self.cache_dir.join(format!("{key}.blake3"));
        let stamp_file = self.cache_dir.join(format!("{key}.stamp"));
        let stamp = FileStamp::of(&artifact).ok()?;
        let recorded_stamp = std::fs::read_to_string(&stamp_file).ok();
        if recorded_stamp.as_deref().map(str::trim) == Some(stamp.text().as_str()) {
            // SAFETY: the file is the artifact this host serialized (same inode, size and mtime as
            // recorded right after writing it, in a cache dir only this user can write) for this
            // wasmtime version and engine configuration (both part of the key).
            if let Ok(c) = unsafe { Component::deserialize_file(&self.engine, &artifact) } {
                return Some(c);
            }
        }
        let art = std::fs::read(&artifact).ok()?;
        let recorded = std::fs::read_to_string(&digest_file).ok()?;
        if blake3::hash(&art).to_hex().as_str() != recorded.trim() {
            return None;
        }
        // SAFETY: the bytes are an artifact this host serialized (digest checked above) for
        // this wasmtime version and engine configuration (both part of the key).
        let component = unsafe { Component::deserialize(&self.engine, &art) }.ok()?;
        if FileStamp::of(&artifact).is_ok_and(|s| s == stamp) {
            let _ = write_small(&stamp_file, &stamp.text());
        }
        Some(component)
    }

    fn write_artifact(&self, key: &str, art: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.cache_dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.cache_dir, std::fs::Permissions::from_mode(0o700));
        }
        let artifact = self.cache_dir.join(format!("{key}.cwasm"));
        replace_with(&artifact, art)?;
        write_small(&self.cache_dir.join(format!("{key}.blake3")), blake3::hash(art).to_hex().as_str())?;
        write_small(&self.cache_dir.join(format!("{key}.stamp")), &FileStamp::of(&artifact)?.text())?;
        Ok(())
    }

    fn cache_key(&self, bytes: &[u8]) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        // BLAKE3: hashing is most of a cached load, and it is several times faster than SHA-256.
        let mut d = blake3::Hasher::new();
        d.update(bytes);
        d.update(wasmtime_version().as_bytes());
        d.update(&h.finish().to_le_bytes());
        d.finalize().to_hex()[..32].to_string()
    }
}

/// The wasmtime version this host embeds.
pub fn wasmtime_version() -> &'static str {
    "48.0.8"
}

/// What identifies one version of a file without reading it: size, modification and change
/// times (ns) and inode. Rewriting a file in place or replacing it changes at least one of them,
/// and the change time cannot be set back (`touch -d` moves only mtime).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileStamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let m = std::fs::metadata(path)?;
        let mtime_ns = m
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or_else(|e| -(e.duration().as_nanos() as i128));
        #[cfg(unix)]
        let (ino, ctime_ns) = {
            use std::os::unix::fs::MetadataExt;
            (m.ino(), m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128)
        };
        #[cfg(not(unix))]
        let (ino, ctime_ns) = (0, 0);
        Ok(FileStamp { len: m.len(), mtime_ns, ctime_ns, ino })
    }

    fn text(&self) -> String {
        format!("{} {} {} {}", self.len, self.mtime_ns, self.ctime_ns, self.ino)
    }
}

/// The key an index entry records for a component, if the component still has the stamp it had
/// when it was hashed.
fn read_index(index: &Path, stamp: &FileStamp) -> Option<String> {
    let text = std::fs::read_to_string(index).ok()?;
    let (recorded, key) = text.trim().rsplit_once(' ')?;
    (recorded == stamp.text() && key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())).then(|| key.to_string())
}

/// Write a small file atomically (temp + rename), creating its directory.
fn write_small(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    replace_with(path, text.as_bytes())
}

/// Write `bytes` under a temporary name of their own, then rename it over `path` (a temporary
/// file that could not be written or moved is not left behind).
fn replace_with(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path_for(path);
    let done = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// A temporary name beside `path` that no other write in any process uses. Cache files are only
/// ever replaced by rename: an artifact may be memory-mapped by a live engine, and truncating a
/// mapped file (two writers sharing one temporary name did) kills the process with SIGBUS.
fn temp_path_for(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}-{n}", std::process::id()))
}

/// A core module or random bytes get a message that says what to do instead.
fn check_is_component(bytes: &[u8], path: &Path) -> Result<()> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        bail!("{}: not a WebAssembly file; build the plugin with `cargo build --target wasm32-wasip2` and copy the .wasm here", path.display());
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        bail!(
            "{}: a core wasm module, not a component; build for the wasm32-wasip2 target (which emits components), not wasm32-unknown-unknown or wasip1",
            path.display()
        );
    }
    Ok(())
}

/// A lock file held while compiling one component; stale after five minutes (a crashed process).
struct CompileLock {
    path: Option<PathBuf>,
    waited: bool,
}

impl CompileLock {
    fn acquire(path: &Path) -> CompileLock {
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
        let mut waited = false;
        let start = std::time::Instant::now();
        loop {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => return CompileLock { path: Some(path.to_path_buf()), waited },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(300))
                        .unwrap_or(true);
                    if stale || start.elapsed() > Duration::from_secs(300) {
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    waited = true;
                    std::thread::sleep(Duration::from_millis(100));
                }
                // A read-only cache dir: compile without the lock.
                Err(_) => return CompileLock { path: None, waited },
            }
        }
    }
}

impl Drop for CompileLock {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}
