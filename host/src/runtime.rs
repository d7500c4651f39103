//! The embedding API: find plugins, load them once, hand them out by id.

use crate::manifest::{Kind, Manifest};
use crate::plugin::{Linkers, Plugin};
use crate::settings::Settings;
use crate::wasm::engine::{EngineOptions, WasmEngine};
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where to look for plugins and keep caches.
#[derive(Clone, Debug, Default)]
pub struct RuntimeOptions {
    /// Plugin directories given on the command line or in `ATELIER_PLUGINS` (win over the config).
    pub plugin_dirs: Vec<PathBuf>,
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

/// The plugin host.
pub struct Runtime {
    /// The operator's configuration.
    pub settings: Settings,
    /// Directories searched, in order.
    pub search_path: Vec<PathBuf>,
    engine: Arc<WasmEngine>,
    linkers: Linkers,
    entries: BTreeMap<String, Entry>,
    problems: Vec<Problem>,
}

/// A discovered plugin; its component is compiled (or read from the cache) on first use.
struct Entry {
    manifest: Manifest,
    loaded: std::sync::OnceLock<Result<Arc<Plugin>, String>>,
}

impl Runtime {
    /// Find and load every plugin. Broken plugin directories are kept as [`Problem`]s, not errors,
    /// so one bad plugin does not stop the others.
    pub fn new(settings: Settings, opts: RuntimeOptions) -> Result<Runtime> {
        let cache_dir = opts.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let engine = Arc::new(WasmEngine::new(&opts.engine, cache_dir)?);
        let linkers = Linkers::new(&engine.engine)?;
        let search_path = if !opts.plugin_dirs.is_empty() {
            opts.plugin_dirs.clone()
        } else if !settings.plugin_dirs.is_empty() {
            settings.plugin_dirs.clone()
        } else {
            vec![default_plugin_dir()]
        };
        let mut rt = Runtime { settings, search_path, engine, linkers, entries: BTreeMap::new(), problems: vec![] };
        for dir in plugin_dirs(&rt.search_path) {
            match Manifest::load(&dir) {
                Err(e) => rt.problems.push(Problem { dir, message: format!("{e:#}") }),
                Ok(m) => {
                    if !rt.settings.plugin(&m.id).enabled {
                        continue;
                    }
                    if let Some(existing) = rt.entries.get(&m.id) {
                        rt.problems.push(Problem {
                            dir: dir.clone(),
                            message: format!(
                                "{}: plugin id `{}` is already provided by {}; the first one in the search path wins",
                                m.path.display(),
                                m.id,
                                existing.manifest.path.display()
                            ),
                        });
                        continue;
                    }
                    if let Err(e) = m.check_contract() {
                        rt.problems.push(Problem { dir, message: format!("{e:#}") });
                        continue;
                    }
                    rt.entries.insert(m.id.clone(), Entry { manifest: m, loaded: Default::default() });
                }
            }
        }
        Ok(rt)
    }

    /// The manifests of every plugin found, by id (nothing compiled).
    pub fn manifests(&self) -> impl Iterator<Item = &Manifest> {
        self.entries.values().map(|e| &e.manifest)
    }

    /// Every plugin, loaded (compiled or read from the cache); ones that fail to load are skipped
    /// here and reported by [`Runtime::plugin`] and [`Runtime::load_all`].
    pub fn plugins(&self) -> impl Iterator<Item = Arc<Plugin>> + '_ {
        self.entries.keys().filter_map(|id| self.plugin(id).ok())
    }

    /// Load every plugin now; returns the ones that failed, with why.
    pub fn load_all(&self) -> Vec<Problem> {
        self.entries
            .values()
            .filter_map(|e| {
                self.load(e).err().map(|message| Problem { dir: e.manifest.path.parent().unwrap_or(Path::new(".")).to_path_buf(), message })
            })
            .collect()
    }

    /// Plugin directories that could not be read.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    fn load(&self, e: &Entry) -> Result<Arc<Plugin>, String> {
        e.loaded
            .get_or_init(|| {
                Plugin::load(self.engine.clone(), &self.linkers, e.manifest.clone(), &self.settings)
                    .map(Arc::new)
                    .map_err(|err| format!("{err:#}"))
            })
            .clone()
    }

    /// A plugin by id, loaded, or an error listing what is installed and where it looked.
    pub fn plugin(&self, id: &str) -> Result<Arc<Plugin>> {
        if let Some(e) = self.entries.get(id) {
            return self.load(e).map_err(|m| anyhow::anyhow!(m));
        }
        if let Some(p) = self.problems.iter().find(|p| p.dir.file_name().is_some_and(|n| n == id)) {
            bail!("plugin `{id}` could not be loaded: {}", p.message);
        }
        let known: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        bail!(
            "unknown plugin `{id}`; installed: {}; searched {} (add a directory with --plugins DIR or ATELIER_PLUGINS)",
            if known.is_empty() { "none".to_string() } else { known.join(", ") },
            self.search_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    }

    /// A model plugin by id.
    pub fn model(&self, id: &str) -> Result<Arc<Plugin>> {
        match self.entries.get(id) {
            Some(e) if e.manifest.kind != Kind::Model => {
                bail!("`{id}` is a filter, not a model; use it as a step (--pre/--post/--step {id}:...)")
            }
            Some(_) => self.plugin(id),
            None => {
                let models: Vec<&str> = self.manifests().filter(|m| m.kind == Kind::Model).map(|m| m.id.as_str()).collect();
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
        self.entries.values().filter(|e| e.manifest.kind == Kind::Filter).map(|e| self.load(e).map_err(|m| anyhow::anyhow!(m))).collect()
    }
}

/// Each search-path entry is a plugin directory (holds `plugin.toml`) or a directory of them.
fn plugin_dirs(search: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = vec![];
    for d in search {
        if d.join("plugin.toml").exists() {
            out.push(d.clone());
        } else if let Ok(entries) = std::fs::read_dir(d) {
            let mut subs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
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
