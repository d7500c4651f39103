//! The embedding API: find plugins, load them once, hand them out by id.

use crate::manifest::{Kind, Manifest};
use crate::plugin::{Linkers, Plugin};
use crate::settings::Settings;
use crate::wasm::engine::{EngineOptions, WasmEngine};
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// Where to look for plugins and keep caches.
#[derive(Clone, Debug, Default)]
pub struct RuntimeOptions {
    /// Plugin directories given on the command line or in `ATELIER_PLUGINS`, searched first.
    pub plugin_dirs: Vec<PathBuf>,
    /// Search only `plugin_dirs` (`--no-default-plugins`). Without it the config's `plugin_dirs`
    /// (or the per-user directory) follow them, so an author's new plugin does not hide the
    /// installed ones.
    pub only_given_dirs: bool,
    /// Where compiled components are cached (default: the per-user cache dir).
    pub cache_dir: Option<PathBuf>,
    /// Engine sizing.
    pub engine: EngineOptions,
}

/// A plugin directory that could not be loaded, and why (one line with file and fix).
#[derive(Clone, Debug)]
pub struct Problem {
    /// The directory.
    pub dir: PathBuf,
    /// What is wrong and what to do.
    pub message: String,
}

/// The plugin host. Its plugin table can be swapped while it serves ([`Runtime::reload`]):
/// callers get `Arc`s, so a job keeps the plugin it started with until it ends.
pub struct Runtime {
    /// The operator's configuration.
    pub settings: Settings,
    /// Directories searched, in order.
    pub search_path: Vec<PathBuf>,
    engine: Arc<WasmEngine>,
    linkers: Linkers,
    // Readers clone the `Arc` and let go of the lock at once; `reload` builds a whole new table
    // and swaps it in, so a reader never sees half a reload.
    table: RwLock<Arc<Table>>,
    /// Reloads done, and changed plugins refused by them (for `/metrics`).
    reloads: (AtomicU64, AtomicU64),
}

/// One generation of the plugin table.
#[derive(Default)]
struct Table {
    entries: BTreeMap<String, Arc<Entry>>,
    problems: Vec<Problem>,
}

/// A discovered plugin; its component is compiled (or read from the cache) on first use.
struct Entry {
    manifest: Arc<Manifest>,
    /// The files as found, to tell a changed plugin from an unchanged one on reload.
    stamp: Stamp,
    loaded: OnceLock<Result<Arc<Plugin>, String>>,
    digest: OnceLock<Option<String>>,
}

/// Size, mtime and inode of `plugin.toml` and the component: a replaced or edited file changes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp(Vec<(u64, Option<std::time::SystemTime>, u64)>);

impl Stamp {
    fn of(m: &Manifest) -> Stamp {
        Stamp(
            [&m.path, &m.component]
                .iter()
                .map(|p| match std::fs::metadata(p) {
                    Ok(md) => (md.len(), md.modified().ok(), inode(&md)),
                    Err(_) => (0, None, 0),
                })
                .collect(),
        )
    }
}

#[cfg(unix)]
fn inode(md: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(md)
}
#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// An installed plugin as the server reports it: id, version and the digest of its component.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Installed {
    /// Plugin id.
    pub id: String,
    /// `model` or `filter`.
    pub kind: Kind,
    /// The manifest's `version`.
    pub version: String,
    /// `sha256:<hex>` of the component file (the OCI layer digest when installed from a registry);
    /// `None` if the file cannot be read.
    pub digest: Option<String>,
}

/// What one [`Runtime::reload`] changed.
#[derive(Clone, Debug, Default)]
pub struct ReloadReport {
    /// Plugins new in this generation: `id version digest`.
    pub added: Vec<String>,
    /// Plugins replaced: `id old-version → new-version (digest)`.
    pub updated: Vec<String>,
    /// Plugins gone.
    pub removed: Vec<String>,
    /// Changed plugins that failed their checks; the previous version (if any) stays, and why.
    pub kept: Vec<Problem>,
}

impl ReloadReport {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !(self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty())
    }
}

impl Runtime {
    /// Find and load every plugin. Broken plugin directories are kept as [`Problem`]s, not errors,
    /// so one bad plugin does not stop the others.
    pub fn new(settings: Settings, opts: RuntimeOptions) -> Result<Runtime> {
        let cache_dir = opts.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let engine = Arc::new(WasmEngine::new(&opts.engine, cache_dir)?);
        let linkers = Linkers::new(&engine.engine)?;
        let mut search_path = opts.plugin_dirs.clone();
        if !opts.only_given_dirs {
            let defaults = if settings.plugin_dirs.is_empty() { vec![default_plugin_dir()] } else { settings.plugin_dirs.clone() };
            for d in defaults {
                if !search_path.contains(&d) {
                    search_path.push(d);
                }
            }
        }
        let rt = Runtime { settings, search_path, engine, linkers, table: Default::default(), reloads: Default::default() };
        let (found, problems) = rt.scan();
        let mut table = Table { entries: BTreeMap::new(), problems };
        for (m, stamp) in found {
            table.entries.insert(m.id.clone(), Arc::new(Entry { manifest: Arc::new(m), stamp, loaded: Default::default(), digest: Default::default() }));
        }
        *rt.table.write().unwrap() = Arc::new(table);
        Ok(rt)
    }

    /// Every enabled plugin manifest in the search path whose contract this host speaks (first
    /// one wins per id), and the directories that could not be used.
    fn scan(&self) -> (Vec<(Manifest, Stamp)>, Vec<Problem>) {
        let mut found: Vec<(Manifest, Stamp)> = vec![];
        let mut problems = vec![];
        for dir in plugin_dirs(&self.search_path) {
            match Manifest::load(&dir) {
                Err(e) => problems.push(Problem { dir, message: format!("{e:#}") }),
                Ok(m) => {
                    if !self.settings.plugin(&m.id).enabled {
                        continue;
                    }
                    if let Some((existing, _)) = found.iter().find(|(f, _)| f.id == m.id) {
                        problems.push(Problem {
                            dir: dir.clone(),
                            message: format!(
                                "{}: plugin id `{}` is already provided by {}; the first one in the search path wins",
                                m.path.display(),
                                m.id,
                                existing.path.display()
                            ),
                        });
                        continue;
                    }
                    if let Err(e) = m.check_contract() {
                        problems.push(Problem { dir, message: format!("{e:#}") });
                        continue;
                    }
                    let stamp = Stamp::of(&m);
                    found.push((m, stamp));
                }
            }
        }
        (found, problems)
    }

    fn table(&self) -> Arc<Table> {
        self.table.read().unwrap().clone()
    }

    /// Look at the plugin directories again and swap in a new plugin table: new and changed
    /// plugins are checked and compiled first (blocking: call it off the async workers), and one
    /// that fails keeps its previous version, reported in [`ReloadReport::kept`]. Unchanged
    /// plugins keep their loaded instance; jobs hold the `Arc` they started with, so they finish
    /// on the version that took them.
    pub fn reload(&self) -> ReloadReport {
        let old = self.table();
        let (found, mut problems) = self.scan();
        let mut report = ReloadReport::default();
        let mut entries = BTreeMap::new();
        for (m, stamp) in found {
            let prev = old.entries.get(&m.id);
            if let Some(p) = prev.filter(|p| p.stamp == stamp && p.manifest.path == m.path) {
                entries.insert(m.id.clone(), p.clone());
                continue;
            }
            let entry = Entry { manifest: Arc::new(m.clone()), stamp, loaded: Default::default(), digest: Default::default() };
            let _ = entry.digest.set(file_digest(&m.component));
            match self.load(&entry) {
                Ok(_) => {
                    let digest = entry.digest.get().cloned().flatten().unwrap_or_else(|| "unknown digest".into());
                    match prev {
                        Some(p) => report.updated.push(format!("{} {} → {} ({digest})", m.id, p.manifest.version, m.version)),
                        None => report.added.push(format!("{} {} ({digest})", m.id, m.version)),
                    }
                    entries.insert(m.id.clone(), Arc::new(entry));
                }
                Err(message) => {
                    let dir = m.path.parent().unwrap_or(Path::new(".")).to_path_buf();
                    if let Some(p) = prev {
                        entries.insert(m.id.clone(), p.clone());
                        report.kept.push(Problem { dir: dir.clone(), message: format!("{message} (still serving {} {})", m.id, p.manifest.version) });
                    } else {
                        report.kept.push(Problem { dir: dir.clone(), message: message.clone() });
                    }
                    problems.push(Problem { dir, message });
                }
            }
        }
        // A plugin whose directory is still there but whose manifest no longer reads (a broken
        // edit) keeps its previous version; one whose directory is gone is removed.
        for (id, p) in &old.entries {
            if entries.contains_key(id) {
                continue;
            }
            let dir = p.manifest.path.parent().unwrap_or(Path::new("."));
            if let Some(problem) = problems.iter().find(|pr| pr.dir == dir) {
                report.kept.push(Problem { dir: dir.to_path_buf(), message: format!("{} (still serving {id} {})", problem.message, p.manifest.version) });
                entries.insert(id.clone(), p.clone());
            } else {
                report.removed.push(format!("{id} {}", p.manifest.version));
            }
        }
        *self.table.write().unwrap() = Arc::new(Table { entries, problems });
        self.reloads.0.fetch_add(1, Ordering::Relaxed);
        self.reloads.1.fetch_add(report.kept.len() as u64, Ordering::Relaxed);
        report
    }

    /// How many reloads ran, and how many plugin changes they refused (kept the previous version).
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloads.0.load(Ordering::Relaxed), self.reloads.1.load(Ordering::Relaxed))
    }

    /// The manifests of every plugin found, by id (nothing compiled).
    pub fn manifests(&self) -> std::vec::IntoIter<Arc<Manifest>> {
        self.table().entries.values().map(|e| e.manifest.clone()).collect::<Vec<_>>().into_iter()
    }

    /// Each model plugin's `max_in_flight` (manifest, then the operator's `[plugins.<id>.limits]`),
    /// from the manifests alone: a worker's claims keep every provider within it across workers.
    pub(crate) fn in_flight_caps(&self) -> crate::jobs::store::InFlightCaps {
        self.manifests()
            .filter(|m| m.kind == crate::manifest::Kind::Model)
            .filter_map(|m| {
                let cap = crate::plugin::effective_limits(&m, &self.settings.plugin(&m.id)).ok()?.max_in_flight?;
                Some((m.id.clone(), cap))
            })
            .collect()
    }

    /// Every plugin with its version and component digest (reads each component once: blocking).
    pub fn installed(&self) -> Vec<Installed> {
        self.table()
            .entries
            .values()
            .map(|e| Installed {
                id: e.manifest.id.clone(),
                kind: e.manifest.kind,
                version: e.manifest.version.clone(),
                digest: e.digest.get_or_init(|| file_digest(&e.manifest.component)).clone(),
            })
            .collect()
    }

    /// Every plugin, loaded (compiled or read from the cache); ones that fail to load are skipped
    /// here and reported by [`Runtime::plugin`] and [`Runtime::load_all`].
    pub fn plugins(&self) -> impl Iterator<Item = Arc<Plugin>> + '_ {
        let t = self.table();
        t.entries.values().filter_map(|e| self.load(e).ok()).collect::<Vec<_>>().into_iter()
    }

    /// Load every plugin now; returns the ones that failed, with why.
    pub fn load_all(&self) -> Vec<Problem> {
        self.table()
            .entries
            .values()
            .filter_map(|e| {
                self.load(e).err().map(|message| Problem { dir: e.manifest.path.parent().unwrap_or(Path::new(".")).to_path_buf(), message })
            })
            .collect()
    }

    /// Plugin directories that could not be read.
    pub fn problems(&self) -> Vec<Problem> {
        self.table().problems.clone()
    }

    fn load(&self, e: &Entry) -> Result<Arc<Plugin>, String> {
        e.loaded
            .get_or_init(|| {
                Plugin::load(self.engine.clone(), &self.linkers, (*e.manifest).clone(), &self.settings)
                    .map(Arc::new)
                    .map_err(|err| format!("{err:#}"))
            })
            .clone()
    }

    /// The wasm engine (for the OCI packer, which describes a component's imports and exports).
    pub(crate) fn engine(&self) -> &Arc<WasmEngine> {
        &self.engine
    }

    /// Check a plugin directory the way a load does — manifest, contract, compile, the exports
    /// of its world — without adding it to the table (used before installing one).
    pub fn check_dir(&self, dir: &Path) -> Result<Arc<Plugin>> {
        let m = Manifest::load(dir)?;
        m.check_contract()?;
        Ok(Arc::new(Plugin::load(self.engine.clone(), &self.linkers, m, &self.settings)?))
    }

    /// A plugin by id, loaded, or an error listing what is installed and where it looked.
    pub fn plugin(&self, id: &str) -> Result<Arc<Plugin>> {
        let t = self.table();
        if let Some(e) = t.entries.get(id) {
            return self.load(e).map_err(|m| anyhow::anyhow!(m));
        }
        if let Some(p) = t.problems.iter().find(|p| p.dir.file_name().is_some_and(|n| n == id)) {
            bail!("plugin `{id}` could not be loaded: {}", p.message);
        }
        let known: Vec<&str> = t.entries.keys().map(String::as_str).collect();
        bail!(
            "unknown plugin `{id}`; installed: {}; searched {} (add a directory with --plugins DIR or ATELIER_PLUGINS)",
            if known.is_empty() { "none".to_string() } else { known.join(", ") },
            self.search_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    }

    /// A model plugin by id.
    pub fn model(&self, id: &str) -> Result<Arc<Plugin>> {
        let t = self.table();
        match t.entries.get(id) {
            Some(e) if e.manifest.kind != Kind::Model => {
                bail!("`{id}` is a filter, not a model; use it as a step (--pre/--post/--step {id}:...)")
            }
            Some(e) => self.load(e).map_err(|m| anyhow::anyhow!(m)),
            None => {
                let models: Vec<&str> = t.entries.values().filter(|e| e.manifest.kind == Kind::Model).map(|e| e.manifest.id.as_str()).collect();
                bail!(
                    "unknown model `{id}`; installed models: {}; searched {} (add a directory with --plugins DIR or ATELIER_PLUGINS)",
                    if models.is_empty() { "none".to_string() } else { models.join(", ") },
                    self.search_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                )
            }
        }
    }

    /// The filter plugins, loaded.
    pub fn filter_plugins(&self) -> Result<Vec<Arc<Plugin>>> {
        // A native plugin serves only once the operator pinned it, and then ahead of same-named wasm filters.
        let mut entries: Vec<_> = self.table().entries.values().filter(|e| e.manifest.kind == Kind::Filter && crate::native::opted_in(&e.manifest, &self.settings)).cloned().collect();
        entries.sort_by_key(|e| e.manifest.tier != crate::manifest::Tier::Native);
        entries.iter().map(|e| self.load(e).map_err(|m| anyhow::anyhow!(m))).collect()
    }
}

/// `sha256:<hex>` of a file, streamed; `None` if it cannot be read.
pub fn file_digest(path: &Path) -> Option<String> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).ok()?;
    Some(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Each search-path entry is a plugin directory (holds `plugin.toml`) or a directory of them.
fn plugin_dirs(search: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = vec![];
    for d in search {
        if d.join("plugin.toml").exists() {
            out.push(d.clone());
        } else if let Ok(entries) = std::fs::read_dir(d) {
            // Dot-directories are not plugins: `atelier plugins install` stages and retires them there.
            let mut subs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
                .collect();
            subs.sort();
            out.extend(subs);
        }
    }
    out
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "atelier")
}

/// `~/.local/share/atelier/plugins` (or the platform's equivalent).
pub fn default_plugin_dir() -> PathBuf {
    project_dirs().map(|d| d.data_dir().join("plugins")).unwrap_or_else(|| PathBuf::from("plugins"))
}

/// `~/.cache/atelier/wasm`.
pub fn default_cache_dir() -> PathBuf {
    project_dirs().map(|d| d.cache_dir().join("wasm")).unwrap_or_else(|| std::env::temp_dir().join("atelier-wasm"))
}

/// `~/.local/state/atelier` (or the data dir where there is no state dir).
pub fn default_state_dir() -> PathBuf {
    project_dirs()
        .map(|d| d.state_dir().unwrap_or(d.data_dir()).to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".atelier-state"))
}

/// Whether a path looks like a plugin directory.
pub fn is_plugin_dir(p: &Path) -> bool {
    p.join("plugin.toml").exists()
}
