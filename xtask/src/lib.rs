//! Build plugin components and stage them as `<out>/<id>/plugin.wasm` + `plugin.toml`.
//!
//! Used by `cargo xtask` and by `tests/build.rs`. Guests are built by a nested cargo for
//! `wasm32-wasip2` into `target/wasm`, a target dir of their own (sharing the outer one deadlocks
//! under `--release`).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo profile guests are built with (see the root Cargo.toml).
pub const PROFILE: &str = "plugin";

/// A plugin crate: where it lives, its cargo package and its id.
#[derive(Clone, Debug)]
pub struct PluginCrate {
    /// Crate directory (holds Cargo.toml and plugin.toml).
    pub dir: PathBuf,
    /// Cargo package name.
    pub package: String,
    /// Plugin id from plugin.toml.
    pub id: String,
}

/// Every directory under `parent` that holds both Cargo.toml and plugin.toml.
pub fn discover(parent: &Path) -> Result<Vec<PluginCrate>> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(parent) else { return Ok(out) };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let (cargo, manifest) = (dir.join("Cargo.toml"), dir.join("plugin.toml"));
        if !cargo.exists() || !manifest.exists() {
            continue;
        }
        let package = read_key(&cargo, "package", "name")?;
        let id = read_key(&manifest, "", "id")?;
        out.push(PluginCrate { dir, package, id });
    }
    Ok(out)
}

/// A plugin crate that also ships as a native library (docs/native.md): `native.toml` beside its
/// `plugin.toml` is the native plugin's manifest, with its own id and `library` file name.
#[derive(Clone, Debug)]
pub struct NativeCrate {
    /// Crate directory.
    pub dir: PathBuf,
    /// Cargo package name.
    pub package: String,
    /// Plugin id from native.toml (differs from the wasm one, so both can be installed).
    pub id: String,
    /// The file name the manifest gives the library (`library = "libfilters.so"`).
    pub library: String,
}

/// Every directory under `parent` with Cargo.toml and native.toml.
pub fn discover_native(parent: &Path) -> Result<Vec<NativeCrate>> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(parent) else { return Ok(out) };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let (cargo, manifest) = (dir.join("Cargo.toml"), dir.join("native.toml"));
        if !cargo.exists() || !manifest.exists() {
            continue;
        }
        let package = read_key(&cargo, "package", "name")?;
        let id = read_key(&manifest, "", "id")?;
        let library = read_key(&manifest, "", "library")?;
        out.push(NativeCrate { dir, package, id, library });
    }
    Ok(out)
}

/// Stage each native crate's cdylib, already built into `profile_dir` (e.g. `target/release`),
/// as `out/<id>/<library>` with its native.toml as `plugin.toml`. Returns the staged dirs.
pub fn stage_native(crates: &[NativeCrate], profile_dir: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    let mut staged = vec![];
    for c in crates {
        let built = profile_dir.join(format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            c.package.replace('-', "_"),
            std::env::consts::DLL_SUFFIX
        ));
        let dest = out.join(&c.id);
        std::fs::create_dir_all(&dest)?;
        copy_if_changed(&built, &dest.join(&c.library))?;
        copy_if_changed(&c.dir.join("native.toml"), &dest.join("plugin.toml"))?;
        staged.push(dest);
    }
    Ok(staged)
}

fn read_key(path: &Path, table: &str, key: &str) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let t = if table.is_empty() { Some(&doc) } else { doc.get(table).and_then(|v| v.as_table()) };
    t.and_then(|t| t.get(key)).and_then(|v| v.as_str()).map(str::to_string)
        .with_context(|| format!("{}: no `{key}`", path.display()))
}

/// Build `crates` for wasm32-wasip2 and stage each into `out/<id>/`. Returns the staged dirs.
pub fn build_and_stage(root: &Path, crates: &[PluginCrate], out: &Path) -> Result<Vec<PathBuf>> {
    if crates.is_empty() {
        return Ok(vec![]);
    }
    ensure_wasm_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = root.join("target/wasm");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--target", "wasm32-wasip2", "--profile", PROFILE])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS", "-C target-feature=+simd128")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("CARGO_PRIMARY_PACKAGE");
    for c in crates {
        cmd.args(["-p", &c.package]);
    }
    let status = cmd.status().context("running cargo for the wasm32-wasip2 guests")?;
    if !status.success() {
        bail!(
            "building the plugin components failed (is the target installed? `rustup target add wasm32-wasip2`)"
        );
    }
    let mut staged = vec![];
    for c in crates {
        let wasm = target_dir.join("wasm32-wasip2").join(PROFILE).join(format!("{}.wasm", c.package.replace('-', "_")));
        let dest = out.join(&c.id);
        std::fs::create_dir_all(&dest)?;
        copy_if_changed(&wasm, &dest.join("plugin.wasm"))?;
        copy_if_changed(&c.dir.join("plugin.toml"), &dest.join("plugin.toml"))?;
        staged.push(dest);
    }
    Ok(staged)
}

/// Copy unless the destination already has the same bytes (keeps mtimes stable for caches).
fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let new = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if std::fs::read(to).ok().as_deref() != Some(&new[..]) {
        std::fs::write(to, new).with_context(|| format!("writing {}", to.display()))?;
    }
    Ok(())
}

/// Install the `wasm32-wasip2` target with rustup when it is missing (a fresh machine).
pub fn ensure_wasm_target() -> Result<()> {
    let listed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match listed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == "wasm32-wasip2") => Ok(()),
        Ok(_) => {
            let status = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status()?;
            if !status.success() {
                bail!("`rustup target add wasm32-wasip2` failed; plugins cannot be built without it");
            }
            Ok(())
        }
        // No rustup: trust that the toolchain has the target; cargo will say if not.
        Err(_) => Ok(()),
    }
}
