//! `atelier.lock`, in the plugin directory that `atelier plugins install` writes to: which
//! registry build each installed plugin is, by digest.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The lock file's name inside the plugin directory.
pub const LOCK_FILE: &str = "atelier.lock";
const HEADER: &str = "# Written by `atelier plugins install|update|remove`: the registry build of each plugin in this\n# directory. `atelier plugins install --locked` reinstalls exactly these digests and nothing else.\n";

/// The whole lock file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Lock {
    /// Format version (1).
    pub version: u32,
    /// Plugin id → where it came from.
    #[serde(default)]
    pub plugins: BTreeMap<String, Locked>,
}

/// One plugin's pin.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Locked {
    /// The reference it was installed from, as given (`oci://host/repo:tag` or `@sha256:…`);
    /// `update` moves a tag.
    pub reference: String,
    /// The OCI manifest's digest: what `--locked` pulls.
    pub digest: String,
    /// The component layer's digest (= sha256 of the installed `plugin.wasm`).
    pub component: String,
    /// The `plugin.toml` layer's digest (= sha256 of the installed `plugin.toml`).
    pub manifest: String,
    /// The plugin's version when installed, for people reading the file.
    pub version: String,
}

impl Lock {
    /// The lock file of a plugin directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(LOCK_FILE)
    }

    /// Read it; a missing file is an empty lock.
    pub fn load(dir: &Path) -> Result<Lock> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lock { version: 1, plugins: BTreeMap::new() }),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot read the lock file", path.display())),
        };
        let lock: Lock = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: malformed lock file: {}; restore it from version control, or delete it and install again", path.display(), e.message()))?;
        if lock.version != 1 {
            bail!("{}: lock file version {} is not one this atelier reads (1); upgrade atelier", path.display(), lock.version);
        }
        Ok(lock)
    }

    /// Write it atomically (a temporary file beside it, renamed over it).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(format!(".atelier-lock-{:016x}", rand::random::<u64>()));
        let text = format!("{HEADER}{}", toml::to_string(self)?);
        std::fs::write(&tmp, text).with_context(|| format!("{}: cannot write", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("{}: cannot replace the lock file", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_starts_empty() {
        let d = tempfile::tempdir().unwrap();
        assert!(Lock::load(d.path()).unwrap().plugins.is_empty());
        let mut l = Lock { version: 1, ..Default::default() };
        l.plugins.insert(
            "hello".into(),
            Locked { reference: "oci://127.0.0.1:5000/p/hello:1".into(), digest: "sha256:aa".into(), component: "sha256:bb".into(), manifest: "sha256:cc".into(), version: "0.1.0".into() },
        );
        l.save(d.path()).unwrap();
        let text = std::fs::read_to_string(Lock::path(d.path())).unwrap();
        assert!(text.starts_with("# Written by"), "{text}");
        assert_eq!(Lock::load(d.path()).unwrap(), l);
        std::fs::write(Lock::path(d.path()), "version = 2\n").unwrap();
        assert!(format!("{:#}", Lock::load(d.path()).unwrap_err()).contains("upgrade atelier"));
    }
}
