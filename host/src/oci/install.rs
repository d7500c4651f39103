//! Installing pulled plugins: staged beside the plugin directory, checked as a load would check
//! them, swapped in atomically, pinned in `atelier.lock`.

use super::lock::{Lock, Locked};
use super::{Fetched, OciRef, fetch, resolve};
use crate::manifest::Manifest;
use crate::runtime::{Runtime, file_digest};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where and how to install.
pub struct Installer {
    /// The runtime whose engine checks plugins (and whose settings hold registry credentials).
    pub rt: Arc<Runtime>,
    /// The plugin directory installed into; `atelier.lock` lives here.
    pub dir: PathBuf,
    /// Allow plain HTTP to a registry that is not on loopback.
    pub insecure: bool,
}

/// What `update` did: lines to show, and whether a change was refused for want of `--yes`.
#[derive(Debug, Default)]
pub struct Updated {
    /// Human-readable lines.
    pub lines: Vec<String>,
    /// A plugin asked for a new permission and `--yes` was not given.
    pub refused: bool,
}

/// A staging directory, removed unless it was installed.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Held while one command changes a plugin directory: a second `install`/`update`/`remove` on
/// the same directory waits, so neither loses the other's lock-file entry.
struct DirLock(#[allow(dead_code)] std::fs::File);

impl Installer {
    async fn exclusive(&self) -> Result<DirLock> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("{}: cannot create the plugin directory (pass another with --dir)", self.dir.display()))?;
        let path = self.dir.join(".atelier-lock.flock");
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).with_context(|| format!("{}: cannot open", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let fd = f.as_raw_fd();
            // Waiting for another installer is blocking work.
            // SAFETY: `fd` stays open: `f` outlives the wait (it is awaited here, then kept).
            let r = tokio::task::spawn_blocking(move || if unsafe { libc::flock(fd, libc::LOCK_EX) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }).await?;
            r.with_context(|| format!("{}: cannot lock", path.display()))?;
        }
        Ok(DirLock(f))
    }

    fn staging(&self) -> Result<Staging> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("{}: cannot create the plugin directory (pass another with --dir)", self.dir.display()))?;
        Ok(Staging(self.dir.join(format!(".atelier-staging-{:016x}", rand::random::<u64>()))))
    }

    /// Pull into staging and check it as a load would (manifest, contract, compile, exports).
    async fn fetch_checked(&self, r: &OciRef, expect: Option<&str>) -> Result<(Staging, Fetched)> {
        let (s, f) = self.fetch_only(r, expect).await?;
        self.check(r, &s).await?;
        Ok((s, f))
    }

    async fn fetch_only(&self, r: &OciRef, expect: Option<&str>) -> Result<(Staging, Fetched)> {
        let s = self.staging()?;
        let f = fetch(r, &self.rt.settings, self.insecure, &s.0, expect).await?;
        Ok((s, f))
    }

    /// The checks a load makes: manifest, contract, compile, the exports of its world.
    async fn check(&self, r: &OciRef, s: &Staging) -> Result<()> {
        let rt = self.rt.clone();
        let dir = s.0.clone();
        // Compiling is blocking work.
        tokio::task::spawn_blocking(move || rt.check_dir(&dir))
            .await?
            .with_context(|| format!("{r}: not installed: the plugin does not load"))?;
        Ok(())
    }

    /// Swap the staged plugin in as `<dir>/<id>` and pin it.
    fn commit(&self, s: Staging, f: &Fetched, reference: &str, lock: &mut Lock) -> Result<PathBuf> {
        let dest = self.dir.join(&f.manifest.id);
        swap_into(&s.0, &dest)?;
        lock.plugins.insert(
            f.manifest.id.clone(),
            Locked {
                reference: reference.to_string(),
                digest: f.digest.clone(),
                component: f.component.clone(),
                manifest: f.manifest_digest.clone(),
                version: f.manifest.version.clone(),
            },
        );
        lock.save(&self.dir)?;
        Ok(dest)
    }

    /// `atelier plugins install REF`: a plugin not installed yet (or reinstalled at its pinned
    /// digest). Returns lines to show.
    pub async fn install(&self, reference: &str) -> Result<Vec<String>> {
        let r = OciRef::parse(reference)?;
        let _held = self.exclusive().await?;
        let mut lock = Lock::load(&self.dir)?;
        let (s, f) = self.fetch_only(&r, None).await?;
        let id = f.manifest.id.clone();
        let dest = self.dir.join(&id);
        if let Some(l) = lock.plugins.get(&id) {
            if l.digest == f.digest && installed_matches(&dest, l) {
                return Ok(vec![format!("{id} {} is already installed from {} ({})", f.manifest.version, l.reference, l.digest)]);
            }
            if l.digest != f.digest {
                bail!(
                    "plugin `{id}` is already installed from {} ({}); `atelier plugins update {id}` moves it to what its tag points at now, or `atelier plugins remove {id}` first to install another build",
                    l.reference,
                    l.digest
                );
            }
        } else if dest.exists() {
            bail!(
                "{} already holds a plugin `{id}` that was not installed from a registry (it is not in {}); remove that directory first, or install into another directory with --dir",
                dest.display(),
                Lock::path(&self.dir).display()
            );
        }
        self.check(&r, &s).await?;
        let mut lines = vec![];
        let dest = self.commit(s, &f, &r.to_string(), &mut lock)?;
        lines.push(format!("installed {id} {} from {r} ({}) into {}", f.manifest.version, f.digest, dest.display()));
        lines.extend(permissions(&f.manifest));
        Ok(lines)
    }

    /// `atelier plugins install --locked [REF]`: exactly the pinned digests; a tag that moved is
    /// refused.
    pub async fn install_locked(&self, reference: Option<&str>) -> Result<Vec<String>> {
        let _held = self.exclusive().await?;
        let lock = Lock::load(&self.dir)?;
        let lock_path = Lock::path(&self.dir);
        let chosen: Vec<(String, Locked)> = match reference {
            None => {
                if lock.plugins.is_empty() {
                    bail!("{}: no plugins are pinned (the file is missing or empty); install one with `atelier plugins install oci://REGISTRY/REPO:TAG`", lock_path.display());
                }
                lock.plugins.clone().into_iter().collect()
            }
            Some(text) => {
                let r = OciRef::parse(text)?;
                let Some((id, l)) = lock.plugins.iter().find(|(_, l)| OciRef::parse(&l.reference).is_ok_and(|x| x.to_string() == r.to_string())) else {
                    bail!("{r} is not pinned in {}; --locked installs only what the lock file pins (install without --locked to add it)", lock_path.display());
                };
                if r.digest().is_none() {
                    let now = resolve(&r, &self.rt.settings, self.insecure).await?;
                    if now != l.digest {
                        bail!(
                            "{r} now points to {now}, but {} pins {id} to {}; --locked installs only pinned digests (run `atelier plugins update {id}` to move to the new build)",
                            lock_path.display(),
                            l.digest
                        );
                    }
                }
                vec![(id.clone(), l.clone())]
            }
        };
        let mut lines = vec![];
        let mut lock = lock;
        for (id, l) in chosen {
            let dest = self.dir.join(&id);
            if installed_matches(&dest, &l) {
                lines.push(format!("{id} {} is installed as pinned ({})", l.version, l.digest));
                continue;
            }
            let r = OciRef::parse(&l.reference)?.at_digest(&l.digest);
            let (s, f) = self.fetch_checked(&r, Some(&l.digest)).await?;
            if f.manifest.id != id || f.component != l.component || f.manifest_digest != l.manifest {
                bail!("{r}: holds plugin `{}` with component {}, but {} pins `{id}` with component {}; the lock file does not match the registry", f.manifest.id, f.component, lock_path.display(), l.component);
            }
            let reference = l.reference.clone();
            let dest = self.commit(s, &f, &reference, &mut lock)?;
            lines.push(format!("installed {id} {} as pinned ({}) into {}", f.manifest.version, f.digest, dest.display()));
        }
        Ok(lines)
    }

    /// `atelier plugins update [ID]`: move tags to their current digests, showing what changed; a
    /// new permission (host, secret, a secret's host) needs `yes`.
    pub async fn update(&self, only: Option<&str>, yes: bool) -> Result<Updated> {
        let _held = self.exclusive().await?;
        let mut lock = Lock::load(&self.dir)?;
        let lock_path = Lock::path(&self.dir);
        let ids: Vec<String> = match only {
            Some(id) if !lock.plugins.contains_key(id) => {
                bail!("`{id}` is not in {}: it was not installed from a registry; install it with `atelier plugins install oci://REGISTRY/REPO:TAG`", lock_path.display())
            }
            Some(id) => vec![id.to_string()],
            None => lock.plugins.keys().cloned().collect(),
        };
        let mut out = Updated::default();
        for id in ids {
            let l = lock.plugins[&id].clone();
            let r = OciRef::parse(&l.reference)?;
            if let Some(d) = r.digest() {
                out.lines.push(format!("{id}: pinned to {d} by its reference; install another reference to change it"));
                continue;
            }
            let dest = self.dir.join(&id);
            let now = resolve(&r, &self.rt.settings, self.insecure).await?;
            if now == l.digest && installed_matches(&dest, &l) {
                out.lines.push(format!("{id} {}: up to date ({now})", l.version));
                continue;
            }
            let (s, f) = self.fetch_checked(&r.at_digest(&now), Some(&now)).await?;
            if f.manifest.id != id {
                bail!("{r} now holds plugin `{}`, not `{id}`; nothing was changed (install it under its own name with `atelier plugins install`)", f.manifest.id);
            }
            let old = Manifest::load(&dest).ok();
            let d = diff(old.as_ref(), &f.manifest);
            out.lines.push(format!("{id}: {} ({}) → {} ({now})", l.version, l.digest, f.manifest.version));
            out.lines.extend(d.changes.iter().map(|c| format!("  {c}")));
            if !d.new_permissions.is_empty() && !yes {
                out.refused = true;
                out.lines.push(format!("  not updated: the new build asks for more; run `atelier plugins update {id} --yes` to accept"));
                continue;
            }
            self.commit(s, &f, &l.reference, &mut lock)?;
            out.lines.push(format!("  updated {}", dest.display()));
        }
        Ok(out)
    }

    /// `atelier plugins remove ID`: only plugins the lock file pins.
    pub async fn remove(&self, id: &str) -> Result<Vec<String>> {
        let _held = self.exclusive().await?;
        let mut lock = Lock::load(&self.dir)?;
        let dest = self.dir.join(id);
        let Some(l) = lock.plugins.remove(id) else {
            bail!(
                "`{id}` is not in {}: it was not installed with `atelier plugins install`{}",
                Lock::path(&self.dir).display(),
                if dest.exists() { format!("; to remove it anyway, delete its directory: rm -r {}", dest.display()) } else { String::new() }
            );
        };
        if dest.exists() {
            // Renamed out of sight first, so a watching server sees it gone in one step.
            let retired = self.dir.join(format!(".atelier-retired-{id}-{:016x}", rand::random::<u64>()));
            std::fs::rename(&dest, &retired).with_context(|| format!("{}: cannot remove", dest.display()))?;
            std::fs::remove_dir_all(&retired).with_context(|| format!("{}: cannot delete", retired.display()))?;
        }
        lock.save(&self.dir)?;
        Ok(vec![format!("removed {id} {} ({})", l.version, l.reference)])
    }
}

/// Whether `dest` holds exactly the pinned files.
fn installed_matches(dest: &Path, l: &Locked) -> bool {
    let Ok(m) = Manifest::load(dest) else { return false };
    file_digest(&m.path).as_deref() == Some(l.manifest.as_str()) && file_digest(&m.component).as_deref() == Some(l.component.as_str())
}

/// Put `staged` at `dest` in one step. Linux swaps the two directories atomically
/// (`renameat2(RENAME_EXCHANGE)`), so `dest` never goes missing; elsewhere, or on a file system
/// without it, the old directory is renamed aside first.
fn swap_into(staged: &Path, dest: &Path) -> Result<()> {
    if !dest.exists() {
        return std::fs::rename(staged, dest).with_context(|| format!("{}: cannot install", dest.display()));
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let a = std::ffi::CString::new(staged.as_os_str().as_bytes())?;
        let b = std::ffi::CString::new(dest.as_os_str().as_bytes())?;
        // SAFETY: two valid NUL-terminated paths; the call only renames.
        let rc = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
        if rc == 0 {
            // `staged` now holds the old version.
            let _ = std::fs::remove_dir_all(staged);
            return Ok(());
        }
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let retired = parent.join(format!(".atelier-retired-{name}-{:016x}", rand::random::<u64>()));
    std::fs::rename(dest, &retired).with_context(|| format!("{}: cannot move the old version aside", dest.display()))?;
    if let Err(e) = std::fs::rename(staged, dest) {
        let _ = std::fs::rename(&retired, dest);
        return Err(e).with_context(|| format!("{}: cannot install", dest.display()));
    }
    let _ = std::fs::remove_dir_all(&retired);
    Ok(())
}

/// The hosts and secrets a plugin asks for, for the install message.
fn permissions(m: &Manifest) -> Vec<String> {
    let mut out = vec![];
    if !m.hosts.is_empty() {
        out.push(format!("  asks to reach: {}", m.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ")));
    }
    for (name, hosts) in &m.secrets {
        out.push(format!("  declares secret {name} (sent only to {}; it gets a value only if you assign one to `{}`)", hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", "), m.id));
    }
    out
}

/// What changed between two builds of one plugin.
#[derive(Debug, Default)]
pub struct Diff {
    /// Every change, one line each.
    pub changes: Vec<String>,
    /// The ones that give the plugin more reach.
    pub new_permissions: Vec<String>,
}

/// Version, contract, hosts and secrets, old → new. With no old manifest every permission is new.
pub fn diff(old: Option<&Manifest>, new: &Manifest) -> Diff {
    let mut d = Diff::default();
    let strs = |v: &[crate::caps::hosts::HostPattern]| v.iter().map(|h| h.to_string()).collect::<std::collections::BTreeSet<_>>();
    let (old_hosts, old_secrets) = match old {
        Some(o) => {
            if o.version != new.version {
                d.changes.push(format!("version {} → {}", o.version, new.version));
            }
            if o.contract != new.contract {
                d.changes.push(format!("contract {} → {}", o.contract, new.contract));
            }
            if o.kind != new.kind {
                d.changes.push(format!("kind {} → {}", o.kind, new.kind));
            }
            (strs(&o.hosts), o.secrets.iter().map(|(k, v)| (k.clone(), strs(v))).collect::<std::collections::BTreeMap<_, _>>())
        }
        None => Default::default(),
    };
    let new_hosts = strs(&new.hosts);
    for h in new_hosts.difference(&old_hosts) {
        d.new_permissions.push(format!("NEW PERMISSION: reach {h}"));
    }
    for h in old_hosts.difference(&new_hosts) {
        d.changes.push(format!("no longer asks to reach {h}"));
    }
    for (name, hosts) in &new.secrets {
        let hosts = strs(hosts);
        match old_secrets.get(name) {
            None => d.new_permissions.push(format!("NEW PERMISSION: secret {name}, sent to {}", hosts.iter().cloned().collect::<Vec<_>>().join(", "))),
            Some(was) => {
                for h in hosts.difference(was) {
                    d.new_permissions.push(format!("NEW PERMISSION: secret {name} may also be sent to {h}"));
                }
            }
        }
    }
    for name in old_secrets.keys().filter(|n| !new.secrets.contains_key(*n)) {
        d.changes.push(format!("no longer declares secret {name}"));
    }
    d.changes.extend(d.new_permissions.iter().cloned());
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Manifest {
        Manifest::parse(&format!("id = \"x\"\ncontract = \"0.1.0\"\nkind = \"model\"\n{text}"), Path::new("/p/x/plugin.toml")).unwrap()
    }

    #[test]
    fn a_new_host_or_secret_binding_is_a_new_permission() {
        let old = m("version = \"1\"\n[permissions]\nhosts = [\"https://a.example\"]\n[permissions.secrets]\nK = [\"https://a.example\"]\n");
        let same = diff(Some(&old), &old);
        assert!(same.changes.is_empty() && same.new_permissions.is_empty(), "{same:?}");
        let new = m("version = \"2\"\n[permissions]\nhosts = [\"https://a.example\", \"https://b.example\"]\n[permissions.secrets]\nK = [\"https://a.example\", \"https://b.example\"]\nT = [\"https://b.example\"]\n");
        let d = diff(Some(&old), &new);
        assert_eq!(d.new_permissions.len(), 3, "{d:?}");
        assert!(d.changes.contains(&"version 1 → 2".to_string()), "{d:?}");
        let fewer = diff(Some(&new), &old);
        assert!(fewer.new_permissions.is_empty(), "{fewer:?}");
        assert!(fewer.changes.iter().any(|c| c == "no longer declares secret T"), "{fewer:?}");
    }

    #[test]
    fn swapping_replaces_a_directory_whole() {
        let d = tempfile::tempdir().unwrap();
        let (staged, dest) = (d.path().join(".atelier-staging-1"), d.path().join("x"));
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("old"), "1").unwrap();
        std::fs::create_dir(&staged).unwrap();
        std::fs::write(staged.join("new"), "2").unwrap();
        swap_into(&staged, &dest).unwrap();
        assert!(dest.join("new").exists() && !dest.join("old").exists());
        assert!(!staged.exists(), "the old version is cleaned up");
    }
}
