//! Writing results: never over an earlier one unless asked, each with its provenance beside it
//! (sidecar `NAME.EXT.json`) and, for PNG, inside it.
//!
//! How a file is published: its bytes go to a temporary file in the same folder, which is then
//! linked to the final name only if that name is free (`link` fails rather than replaces), so of
//! two runs racing for one name exactly one wins and the other is told. A model run reserves its
//! final names before anything is submitted ([`reserve`]: placeholder files created exclusively,
//! holding a token) and its publish replaces its own placeholders; `--force` replaces anything.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// What to do when an output's name is taken at publish time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenTaken {
    /// Refuse (with the `--force` hint).
    Refuse,
    /// Replace it (`--force`).
    Replace,
    /// Use the next free name, `NAME-2.EXT`, `NAME-3.EXT`… (`jobs resume`, whose original name
    /// may have been taken while the job ran).
    NextFree,
}

impl WhenTaken {
    /// `Replace` with `--force`, else `Refuse`.
    pub fn from_force(force: bool) -> WhenTaken {
        if force { WhenTaken::Replace } else { WhenTaken::Refuse }
    }
}

/// Refuse to start when any planned output (or its sidecar) exists, unless `force`, before
/// anything is billed. A check only: [`reserve`] is what makes a name this run's.
pub fn check_free(paths: &[PathBuf], force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let taken: Vec<String> = paths.iter().filter(|p| is_taken(p)).map(|p| describe_taken(p)).collect();
    if !taken.is_empty() {
        bail!(
            "{} already exist{}; nothing was run. Pass --force to overwrite, or choose another output with -o",
            taken.join(", "),
            if taken.len() == 1 { "s" } else { "" }
        );
    }
    Ok(())
}

/// Whether `p`, or a sidecar that would be taken for its, exists.
fn is_taken(p: &Path) -> bool {
    p.symlink_metadata().is_ok() || sidecar_of(p).exists()
}

/// `x.png`, or `x.png (reserved by a run in progress, …)` when it is a placeholder.
fn describe_taken(p: &Path) -> String {
    match std::fs::read(p).ok().filter(|b| b.starts_with(RESERVED_PREFIX.as_bytes())) {
        Some(b) => format!(
            "{} (reserved by another run in progress: {}; if that run was killed, `atelier jobs resume --all` finishes its jobs, and a placeholder no job claims can be deleted)",
            p.display(),
            String::from_utf8_lossy(&b[RESERVED_PREFIX.len()..]).trim()
        ),
        None => p.display().to_string(),
    }
}

/// The provenance sidecar of an output: its full name plus `.json` (`pic.png` → `pic.png.json`),
/// so `pic.png` and `pic.jpg` in one folder each have their own.
pub fn sidecar_of(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// The sidecar name used before 0.2 (`pic.png` → `pic.json`), still read where sidecars are read.
pub fn legacy_sidecar_of(p: &Path) -> PathBuf {
    p.with_extension("json")
}

/// The output a sidecar describes, the name's own extension kept: `pic.png.json` → `pic.png`,
/// legacy `pic.json` → `pic`.
pub fn output_of_sidecar(sidecar: &Path) -> PathBuf {
    match sidecar.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => sidecar.with_extension(""),
        _ => sidecar.to_path_buf(),
    }
}

const RESERVED_PREFIX: &str = "atelier reservation: ";

/// Output names a run holds before it submits anything: placeholder files created exclusively
/// (so of N runs racing for a name exactly one gets it), each holding this run's token. Dropping
/// it removes the placeholders still holding the token (outputs never written).
#[derive(Debug)]
pub struct Reservation {
    paths: Vec<PathBuf>,
    token: String,
}

impl Reservation {
    /// The token written in each placeholder (stored with the jobs, so `jobs resume` in another
    /// process knows the placeholder is its own).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// No names held (`--force`: nothing is reserved, everything may be replaced).
    pub fn none() -> Reservation {
        Reservation { paths: vec![], token: String::new() }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for p in &self.paths {
            if holds_token(p, &self.token) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Reserve `paths` for the run `run` (its job prefix) before anything is submitted: each is created
/// exclusively as a placeholder holding the token. If any is taken (a file, a sidecar, another
/// run's placeholder), the ones made are removed and the run is refused with `--force` hint. With
/// `force` nothing is reserved.
pub fn reserve(paths: &[PathBuf], force: bool, run: &str) -> Result<Reservation> {
    if force {
        return Ok(Reservation::none());
    }
    check_free(paths, false)?;
    let token = format!("{RESERVED_PREFIX}run {run}, process {}\n", std::process::id());
    let mut held = Reservation { paths: vec![], token };
    for p in paths {
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).with_context(|| format!("{}: cannot create the folder", d.display()))?;
        }
        match std::fs::OpenOptions::new().write(true).create_new(true).open(p) {
            Ok(mut f) => {
                held.paths.push(p.clone());
                f.write_all(held.token.as_bytes()).with_context(|| format!("{}: cannot write", p.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "{} already exists (another run took the name first); nothing was run. Pass --force to overwrite, or choose another output with -o",
                describe_taken(p)
            ),
            Err(e) => return Err(e).with_context(|| format!("{}: cannot create the output", p.display())),
        }
    }
    Ok(held)
}

/// Remove `p` if it is a placeholder holding `token` (a name reserved and then not used).
pub fn release(p: &Path, token: &str) {
    if holds_token(p, token) {
        let _ = std::fs::remove_file(p);
    }
}

/// Whether `p` is a placeholder holding `token`.
fn holds_token(p: &Path, token: &str) -> bool {
    !token.is_empty()
        && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() == token.len() as u64)
        && std::fs::read(p).is_ok_and(|b| b == token.as_bytes())
}

/// Publish `bytes` as `path`: written to a temporary file in the same folder, then put in place
/// according to `when` (a placeholder holding `token` is this run's own and is replaced). Returns
/// where the file went (another name only with [`WhenTaken::NextFree`]). A failure never leaves a
/// partial file.
pub fn publish(path: &Path, bytes: &[u8], when: WhenTaken, token: &str) -> Result<PathBuf> {
    let tmp = temp_beside(path)?;
    std::fs::write(&tmp, bytes).with_context(|| format!("{}: cannot write", tmp.display())).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    place(&tmp, path, when, token)
}

/// [`publish`] for a file already on disk (a video artifact), copied without reading it into memory.
pub fn publish_copy(from: &Path, path: &Path, when: WhenTaken, token: &str) -> Result<PathBuf> {
    let tmp = temp_beside(path)?;
    std::fs::copy(from, &tmp).with_context(|| format!("{}: cannot write", tmp.display())).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    place(&tmp, path, when, token)
}

/// Move the finished temporary file `tmp` to `path` (or the next free name), never over a file
/// that is not ours unless `when` is `Replace`.
fn place(tmp: &Path, path: &Path, when: WhenTaken, token: &str) -> Result<PathBuf> {
    let result = (|| {
        if when == WhenTaken::Replace || holds_token(path, token) {
            std::fs::rename(tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
            return Ok(path.to_path_buf());
        }
        let mut target = path.to_path_buf();
        for k in 2u32.. {
            // A name whose sidecar is in place belongs to another output too.
            if !(when == WhenTaken::NextFree && sidecar_of(&target).exists()) && link_new(tmp, &target)? {
                return Ok(target);
            }
            if when == WhenTaken::Refuse {
                bail!("{} already exists (written by another run meanwhile); this output was not written. Pass --force to overwrite", path.display());
            }
            if k > 10_000 {
                bail!("{}: no free name beside it; choose another output folder", path.display());
            }
            target = numbered(path, k);
        }
        unreachable!()
    })();
    let _ = std::fs::remove_file(tmp);
    result
}

/// Give `tmp` the name `to` only if nothing has it: `true` when placed, `false` when taken.
/// A hard link fails rather than replaces; where links are unsupported, the name is claimed with
/// an exclusive create and then replaced.
fn link_new(tmp: &Path, to: &Path) -> Result<bool> {
    match std::fs::hard_link(tmp, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) => match std::fs::OpenOptions::new().write(true).create_new(true).open(to) {
            Ok(_) => {
                std::fs::rename(tmp, to).with_context(|| format!("{}: cannot write", to.display()))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e).with_context(|| format!("{}: cannot write", to.display())),
        },
    }
}

/// `dir/pic.png` → `dir/pic-2.png`.
pub(crate) fn numbered(path: &Path, k: u32) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(e) => format!("{stem}-{k}.{}", e.to_string_lossy()),
        None => format!("{stem}-{k}"),
    };
    path.with_file_name(name)
}

/// A fresh temporary name in `path`'s folder (created if needed): hidden, unique per process and
/// call, so concurrent writers never share one.
fn temp_beside(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the folder", dir.display()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    Ok(dir.join(format!(".{name}.{}-{}.part", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))))
}

/// Write bytes atomically (temporary file + rename), replacing what is there: for files that are
/// this run's own (state, sidecars of its outputs). A failure never leaves a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    publish(path, bytes, WhenTaken::Replace, "").map(drop)
}

/// Copy a file into place atomically, replacing what is there.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    publish_copy(from, to, WhenTaken::Replace, "").map(drop)
}

/// Write the provenance sidecar of the output `path` (`path` + `.json`), replacing an older one:
/// the output's name is this run's, so is its sidecar's.
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

/// Finish a stored job for `atelier jobs resume`: its outputs go to the names planned for them, or,
/// when another file took a name meanwhile, to the next free one (`NAME-2.png`). Returns the files
/// and a sentence for each output delivered elsewhere.
pub async fn resume_outputs(rt: &crate::runtime::Runtime, plan: &serde_json::Value, outcome: &crate::jobs::runner::JobOutcome, force: bool) -> Result<(Vec<OutputFile>, Vec<String>)> {
    let when = if force { WhenTaken::Replace } else { WhenTaken::NextFree };
    let files = super::edit::finish_job_with(rt, plan, outcome, when).await?;
    let planned: Vec<PathBuf> = plan["paths"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(PathBuf::from)).collect();
    let first = plan["first_index"].as_u64().unwrap_or(1) as u32;
    let notes = files
        .iter()
        .filter_map(|f| {
            let wanted = planned.get(f.index.checked_sub(first)? as usize)?;
            // Videos settle their extension when they arrive: compare the names without it.
            (wanted.with_extension("") != f.path.with_extension("")).then(|| {
                format!("{} was taken meanwhile, so output {} went to {}", wanted.with_extension(f.path.extension().unwrap_or_default()).display(), f.index, f.path.display())
            })
        })
        .collect();
    Ok((files, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_carry_the_full_output_name() {
        assert_eq!(sidecar_of(Path::new("out/pic.png")), PathBuf::from("out/pic.png.json"));
        assert_ne!(sidecar_of(Path::new("pic.png")), sidecar_of(Path::new("pic.jpg")));
        assert_eq!(legacy_sidecar_of(Path::new("out/pic.png")), PathBuf::from("out/pic.json"));
        assert_eq!(output_of_sidecar(Path::new("out/pic.png.json")), PathBuf::from("out/pic.png"));
        assert_eq!(numbered(Path::new("d/x-01.png"), 2), PathBuf::from("d/x-01-2.png"));
    }

    #[test]
    fn publishing_never_replaces_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        assert_eq!(publish(&p, b"one", WhenTaken::Refuse, "").unwrap(), p);
        let e = publish(&p, b"two", WhenTaken::Refuse, "").unwrap_err().to_string();
        assert!(e.contains("already exists") && e.contains("--force"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(publish(&p, b"three", WhenTaken::NextFree, "").unwrap(), dir.path().join("a-2.png"));
        assert_eq!(publish(&p, b"four", WhenTaken::Replace, "").unwrap(), p);
        assert_eq!(std::fs::read(&p).unwrap(), b"four");
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".part")), "{names:?}");
    }

    #[test]
    fn reservations_are_exclusive_and_replaced_by_their_own_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.png");
        let r = reserve(std::slice::from_ref(&p), false, "job-a").unwrap();
        let e = reserve(std::slice::from_ref(&p), false, "job-b").unwrap_err().to_string();
        assert!(e.contains("reserved by another run in progress") && e.contains("job-a"), "{e}");
        // Another run cannot publish over it; its own run can.
        assert!(publish(&p, b"theirs", WhenTaken::Refuse, "other").is_err());
        assert_eq!(publish(&p, b"ours", WhenTaken::Refuse, r.token()).unwrap(), p);
        drop(r);
        assert_eq!(std::fs::read(&p).unwrap(), b"ours", "a written output is not removed with the reservation");
        // An output never written: its placeholder goes with the reservation.
        let q = dir.path().join("y.png");
        drop(reserve(std::slice::from_ref(&q), false, "job-c").unwrap());
        assert!(!q.exists());
    }
}
