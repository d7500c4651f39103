//! Writing results: never over an earlier one unless asked, each with its provenance beside it
//! (sidecar `NAME.json`) and, for PNG, inside it.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A file the pipeline wrote.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputFile {
    /// Where.
    pub path: PathBuf,
    /// Its provenance sidecar.
    pub sidecar: PathBuf,
    /// Width in px (images and video frames, when known).
    pub width: Option<u32>,
    /// Height in px.
    pub height: Option<u32>,
    /// Media type.
    pub mime: String,
    /// 1-based position among the outputs of the run.
    pub index: u32,
    /// Seed, when known.
    pub seed: Option<u64>,
    /// The job that produced it.
    pub job: String,
}

/// Refuse to start when any planned output exists (unless `force`), before anything is billed.
pub fn check_free(paths: &[PathBuf], force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let taken: Vec<String> = paths.iter().filter(|p| p.exists() || sidecar_of(p).exists()).map(|p| p.display().to_string()).collect();
    if !taken.is_empty() {
        bail!(
            "{} already exist{}; nothing was run. Pass --force to overwrite, or choose another output with -o",
            taken.join(", "),
            if taken.len() == 1 { "s" } else { "" }
        );
    }
    Ok(())
}

/// `x.png` → `x.json`.
pub fn sidecar_of(p: &Path) -> PathBuf {
    p.with_extension("json")
}

/// Write bytes atomically (temp file + rename), so a failure never leaves a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("{}: cannot create the folder", d.display()))?;
    }
    let tmp = path.with_extension(format!("{}.part", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    std::fs::write(&tmp, bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// Copy a file into place atomically.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = to.with_extension("part");
    std::fs::copy(from, &tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}

/// Write the provenance sidecar.
pub fn write_sidecar(path: &Path, provenance: &serde_json::Value) -> Result<PathBuf> {
    let side = sidecar_of(path);
    write_atomic(&side, serde_json::to_string_pretty(provenance)?.as_bytes())?;
    Ok(side)
}

/// A file name stem that is safe on every filesystem.
pub fn safe_stem(p: &Path) -> String {
    let s = p.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}
