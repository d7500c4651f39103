//! `atelier rerun OUTPUT.json`: repeat the exact call that made one output (same engine, model,
//! parameters, seed of that output, mask and filter steps; one output), optionally changed.

use crate::params::split_kv;
use crate::pipeline::edit::{EditRequest, EditResult, edit};
use crate::jobs::runner::Runner;
use crate::runtime::Runtime;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What to repeat and how.
#[derive(Clone, Debug, Default)]
pub struct RerunOptions {
    /// The provenance sidecar (or a PNG carrying provenance).
    pub provenance: PathBuf,
    /// Changes: `prompt=`, `seed=`, `engine=`, `n=`, `mask=`, `param.K=V` (or `params.K=V`), `pre=`, `post=`.
    pub sets: Vec<String>,
    /// Output folder (default: beside the original).
    pub out_dir: Option<PathBuf>,
    /// `[limits] max_input_mb` for the files read again (default: the built-in limit).
    pub max_input_mb: Option<u64>,
}

/// The request rebuilt from provenance, and what the user should know about it.
#[derive(Clone, Debug)]
pub struct Rerun {
    /// The call to make.
    pub request: EditRequest,
    /// Differences from the original that make the result differ (changed inputs, no seed, ...).
    pub warnings: Vec<String>,
    /// The model id the output was made with.
    pub original_model: String,
}

/// Read provenance: a sidecar (`pic.png.json`, or `pic.json` as written before 0.2), or a PNG
/// with it embedded; `max_input_mb` as in `[limits]`.
pub fn read_provenance(path: &Path, max_input_mb: u64) -> Result<Value> {
    let bytes = crate::imageio::read_file(path, crate::imageio::max_input_bytes(max_input_mb), crate::imageio::FileKind::Any)?;
    let text = if bytes.starts_with(b"\x89PNG") {
        crate::imageio::read_png_provenance(&bytes).ok_or_else(|| anyhow::anyhow!("{}: the PNG carries no provenance; give its .json sidecar", path.display()))?
    } else {
        String::from_utf8(bytes).with_context(|| format!("{}: not a provenance file", path.display()))?
    };
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{}: not a provenance file (JSON)", path.display()))?;
    if !v["engine"].is_string() {
        bail!("{}: this output was not made by a model (no engine in its provenance); nothing to re-run", path.display());
    }
    Ok(v)
}

/// Rebuild the request that made the output described by `prov`, with `sets` applied.
pub fn plan(prov: &Value, opts: &RerunOptions) -> Result<Rerun> {
    let mut warnings = vec![];
    let src = &opts.provenance;
    let max_bytes = crate::imageio::max_input_bytes(opts.max_input_mb.unwrap_or_else(|| crate::settings::HostLimits::default().max_input_mb));
    let read_image = |p: &Path| crate::imageio::read_file(p, max_bytes, crate::imageio::FileKind::Image);
    let text = |k: &str| prov[k].as_str().map(str::to_string);
    let mut engine = text("engine").unwrap_or_default();
    let mut prompt = text("prompt").unwrap_or_default();
    let mut seed = prov["seed"].as_u64();
    let mut n = 1u32;
    let mut mask = prov["mask"]["path"].as_str().map(PathBuf::from);
    let list = |k: &str| -> Vec<String> { prov[k].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect() };
    let (mut pre, mut post) = (list("pre"), list("post"));
    // The resolved parameters (defaults included), so a changed default cannot change the call.
    let mut params: Vec<(String, String)> = match prov["params"].as_object() {
        Some(o) => o.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))).collect(),
        None => vec![],
    };
    if let Some((k, _)) = params.iter().find(|(_, v)| v.starts_with('<') && v.contains(" bytes of ")) {
        bail!("{}: parameter `{k}` was an image file, which provenance does not keep; give it again with --set param.{k}=PATH", src.display());
    }
    let mut engine_changed = false;
    for s in &opts.sets {
        let (k, v) = split_kv(s).map_err(|e| anyhow::anyhow!("--set {e}"))?;
        match k.as_str() {
            "prompt" => prompt = v,
            "seed" => seed = Some(v.parse().map_err(|_| anyhow::anyhow!("--set seed={v}: not a whole number"))?),
            "engine" | "model" => {
                engine_changed = engine != v;
                engine = v;
            }
            "n" => n = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| anyhow::anyhow!("--set n={v}: give a whole number ≥ 1"))?,
            "mask" => mask = if v.is_empty() { None } else { Some(PathBuf::from(v)) },
            "pre" => pre = if v.is_empty() { vec![] } else { vec![v] },
            "post" => post = if v.is_empty() { vec![] } else { vec![v] },
            other => match other.strip_prefix("param.").or_else(|| other.strip_prefix("params.")) {
                Some(p) => {
                    params.retain(|(k, _)| k != p);
                    if !v.is_empty() {
                        params.push((p.to_string(), v));
                    }
                }
                None => bail!("--set {s}: unknown key `{other}`; change prompt, seed, engine, n, mask, pre, post or param.NAME"),
            },
        }
    }
    if engine_changed {
        // Another engine takes other parameters: keep only the ones the user gave (and changed).
        let user: Vec<(String, String)> = prov["user_params"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())))
            .collect();
        let changed: Vec<(String, String)> = opts
            .sets
            .iter()
            .filter_map(|s| split_kv(s).ok())
            .filter_map(|(k, v)| k.strip_prefix("param.").or_else(|| k.strip_prefix("params.")).map(|k| (k.to_string(), v)))
            .collect();
        let names: Vec<String> = changed.iter().map(|(k, _)| k.clone()).collect();
        params = user.into_iter().filter(|(k, _)| !names.contains(k)).chain(changed).collect();
        warnings.push(format!("engine changed from `{}` to `{engine}`: only the parameters given by hand are kept", text("engine").unwrap_or_default()));
    }
    if seed.is_none() {
        warnings.push("the output's provenance has no seed (its engine does not report one), so the result will differ".into());
    }
    let mut inputs = vec![];
    for i in prov["inputs"].as_array().into_iter().flatten() {
        let path = PathBuf::from(i["path"].as_str().unwrap_or_default());
        let bytes = read_image(&path).with_context(|| format!("{}: the input that made this output cannot be read", path.display()))?;
        let now = hex::encode(Sha256::digest(&bytes));
        if let Some(was) = i["sha256"].as_str()
            && was != now
        {
            warnings.push(format!("{} CHANGED since the output was made (sha256 was {}…, now {}…): the result will differ", path.display(), &was[..12.min(was.len())], &now[..12]));
        }
        inputs.push(path);
    }
    if inputs.is_empty() {
        bail!("{}: the provenance lists no inputs", src.display());
    }
    if let (Some(m), Some(was)) = (&mask, prov["mask"]["sha256"].as_str())
        && prov["mask"]["path"].as_str() == Some(&m.display().to_string())
    {
        let bytes = read_image(m).with_context(|| format!("{}: the mask that made this output cannot be read", m.display()))?;
        if hex::encode(Sha256::digest(&bytes)) != was {
            warnings.push(format!("the mask {} CHANGED since the output was made: the result will differ", m.display()));
        }
    }
    let video = prov["video"].as_bool().unwrap_or(false) || prov["output"]["mime"].as_str().is_some_and(|m| !m.starts_with("image/") || m == "image/gif");
    let out_dir = opts.out_dir.clone().unwrap_or_else(|| src.parent().map(Path::to_path_buf).unwrap_or_default());
    let stem = rerun_stem(src);
    let out_file = if n == 1 { Some(free_name(&out_dir, &format!("{stem}-rerun"))) } else { None };
    let request = EditRequest {
        inputs,
        prompt,
        model: engine,
        n,
        seed,
        params,
        mask,
        pre,
        post,
        out_dir,
        out_file,
        force: false,
        video,
        aspect: text("aspect"),
        size: text("size"),
        only: vec![],
        decoded_inputs: Default::default(),
    };
    Ok(Rerun { request, warnings, original_model: text("model").unwrap_or_default() })
}

/// Run it.
pub async fn rerun(rt: &Runtime, runner: &Runner, r: &Rerun) -> Result<EditResult> {
    edit(rt, runner, &r.request).await
}

/// The name the rerun's output starts with: the original output's name without its extension,
/// from its sidecar (`pic.png.json`, legacy `pic.json`) or the PNG itself.
fn rerun_stem(src: &Path) -> String {
    let output = if src.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) { crate::pipeline::outputs::output_of_sidecar(src) } else { src.to_path_buf() };
    let known = ["png", "jpg", "jpeg", "webp", "gif", "mp4", "webm"];
    let stem = match output.extension().and_then(|e| e.to_str()) {
        Some(e) if known.contains(&e.to_ascii_lowercase().as_str()) => output.file_stem(),
        _ => output.file_name(),
    };
    stem.and_then(|s| s.to_str()).unwrap_or("output").to_string()
}

/// `DIR/STEM.png`, or `STEM-2`, `STEM-3`... when taken, by the output or a sidecar of either
/// naming (the extension is settled by the pipeline; the name is reserved when it runs).
fn free_name(dir: &Path, stem: &str) -> PathBuf {
    use crate::pipeline::outputs::{legacy_sidecar_of, sidecar_of};
    let taken = |p: &Path| p.exists() || sidecar_of(p).exists() || legacy_sidecar_of(p).exists();
    let first = dir.join(format!("{stem}.png"));
    if !taken(&first) {
        return first;
    }
    (2..).map(|k| dir.join(format!("{stem}-{k}.png"))).find(|p| !taken(p)).expect("a free name")
}

#[cfg(test)]
mod tests {
    use super::rerun_stem;
    use std::path::Path;

    #[test]
    fn the_rerun_is_named_after_the_output_whichever_sidecar_is_given() {
        assert_eq!(rerun_stem(Path::new("out/pic-classic-01.png.json")), "pic-classic-01");
        assert_eq!(rerun_stem(Path::new("out/pic-classic-01.json")), "pic-classic-01", "a sidecar named the old way");
        assert_eq!(rerun_stem(Path::new("out/pic-classic-01.png")), "pic-classic-01");
        assert_eq!(rerun_stem(Path::new("out/clip.mp4.json")), "clip");
    }
}
