//! Filter steps: `name[:k=v[,k=v...]]`, resolved against the installed filter plugins, and run with
//! consecutive steps of one component in one call.

use crate::imageio::{self, DecodeLimits};
use crate::types;
use crate::params;
use crate::plugin::Plugin;
use crate::runtime::Runtime;
use crate::types::Image;
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A step as the user wrote it, checked and converted.
#[derive(Clone)]
pub struct Step {
    /// What the user wrote.
    pub text: String,
    /// Which plugin runs it.
    pub plugin: Arc<Plugin>,
    /// The step for the plugin.
    pub step: types::Step,
    /// The host's pixel limits, which the image the plugin hands back must keep to.
    pub limits: DecodeLimits,
}

/// Every filter the installed filter plugins provide.
pub struct Catalog {
    filters: BTreeMap<String, (Arc<Plugin>, types::FilterInfo)>,
    limits: DecodeLimits,
    /// `[limits] max_input_mb` in bytes, for files an image parameter names.
    max_input_bytes: u64,
}

impl Catalog {
    /// Ask each filter plugin what it provides.
    pub async fn load(rt: &Runtime) -> Result<Catalog> {
        let mut filters = BTreeMap::new();
        for p in rt.filter_plugins()? {
            for f in p.describe_filters().await? {
                filters.entry(f.name.clone()).or_insert((p.clone(), f));
            }
        }
        let limits = DecodeLimits { max_pixels: rt.settings.limits.max_pixels, max_dimension: rt.settings.limits.max_dimension };
        Ok(Catalog { filters, limits, max_input_bytes: imageio::max_input_bytes(rt.settings.limits.max_input_mb) })
    }

    /// Whether a filter of that name is installed.
    pub fn has(&self, name: &str) -> bool {
        self.filters.contains_key(name)
    }

    /// Parse and check one step.
    pub fn parse(&self, text: &str) -> Result<Step> {
        self.parse_step(text, true)
    }

    /// Parse steps a remote caller sent (the server): every problem is reported, and an image
    /// parameter is refused, since its value would name a file on the server's own disk.
    pub fn parse_all_remote(&self, texts: &[String]) -> Result<Vec<Step>> {
        self.parse_each(texts, false)
    }

    fn parse_step(&self, text: &str, files: bool) -> Result<Step> {
        let (name, rest) = text.split_once(':').unwrap_or((text, ""));
        let name = name.trim();
        let Some((plugin, info)) = self.filters.get(name) else {
            let known: Vec<&str> = self.filters.keys().map(String::as_str).collect();
            bail!(
                "unknown filter `{name}` in step `{text}`; installed filters: {} (see `atelier filters`)",
                if known.is_empty() { "none — is the filters plugin installed?".to_string() } else { known.join(", ") }
            );
        };
        let mut given = vec![];
        for part in split_params(rest) {
            given.push(params::split_kv(&part).map_err(|e| anyhow::anyhow!("step `{text}`: {e}; write name:key=value,key=value"))?);
        }
        if !files {
            if let Some((key, _)) = given.iter().find(|(k, _)| info.params.iter().any(|p| p.name == *k && p.kind() == crate::types::ParamKind::Media)) {
                bail!("step `{text}`: `{key}` takes an image file, and the server reads no file of its own disk for a caller; drop `{key}` (or run the step with the CLI)");
            }
        }
        // A file an image parameter names (`watermark:image=logo.png`) is checked before it is read.
        crate::pipeline::edit::check_media_params(&info.params, &given, self.max_input_bytes).map_err(|e| anyhow::anyhow!("step `{text}`: {e:#}"))?;
        let params = params::resolve(&format!("filter `{name}`"), &info.params, &given)?;
        Ok(Step { text: text.to_string(), plugin: plugin.clone(), step: types::Step { name: name.to_string(), params }, limits: self.limits })
    }

    /// Parse several steps; every problem is reported, not just the first.
    pub fn parse_all(&self, texts: &[String]) -> Result<Vec<Step>> {
        self.parse_each(texts, true)
    }

    fn parse_each(&self, texts: &[String], files: bool) -> Result<Vec<Step>> {
        let mut steps = vec![];
        let mut errors = vec![];
        for t in texts {
            match self.parse_step(t, files) {
                Ok(s) => steps.push(s),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() {
            bail!(errors.join("\n"));
        }
        Ok(steps)
    }
}

/// `k=v,k=v` where a value may itself contain commas (a fragment without `=` joins the previous).
fn split_params(rest: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for frag in rest.split(',') {
        if frag.trim().is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if !frag.contains('=') => {
                last.push(',');
                last.push_str(frag);
            }
            _ => out.push(frag.to_string()),
        }
    }
    out
}

/// The upright size a leading `resize` step takes a `width` x `height` picture to, when it
/// shrinks it in both directions: the decoder may then start smaller (shrink-on-load,
/// [`imageio::decode_shrinking`]). `None` for anything else, and for `filter=nearest`, whose
/// blocky result a reduced-scale decode would smooth.
///
/// This mirrors the filters plugin's `ResizeOptions::target` (width and/or height, the other side
/// from the aspect ratio, rounded; or `max` for the longest side); `after_shrink_on_load` then
/// states the size explicitly, so the step's output size never depends on this copy being right.
pub fn shrink_target(steps: &[Step], width: u32, height: u32) -> Option<(u32, u32)> {
    let first = steps.first().filter(|s| s.step.name == "resize")?;
    let int = |key: &str| {
        first.step.params.iter().find(|p| p.name == key).and_then(|p| match &p.value {
            crate::types::Value::Integer(i) => Some(*i),
            _ => None,
        })
    };
    let nearest = first.step.params.iter().any(|p| p.name == "filter" && matches!(&p.value, crate::types::Value::Text(t) if t == "nearest"));
    if nearest || width == 0 || height == 0 {
        return None;
    }
    let side = |v: i64| u32::try_from(v).ok().filter(|v| *v > 0);
    let scaled = |s: u32, num: u32, den: u32| ((s as f64 * num as f64 / den as f64).round() as u32).max(1);
    let (w, h) = match (int("width"), int("height"), int("max")) {
        (Some(w), Some(h), None) => (side(w)?, side(h)?),
        (Some(w), None, None) => (side(w)?, scaled(height, side(w)?, width)),
        (None, Some(h), None) => (scaled(width, side(h)?, height), side(h)?),
        (None, None, Some(m)) if width >= height => (side(m)?, scaled(height, side(m)?, width)),
        (None, None, Some(m)) => (scaled(width, side(m)?, height), side(m)?),
        _ => return None,
    };
    (w < width && h < height).then_some((w, h))
}

/// Decode a picture file's bytes for a chain of `steps` (blocking): when the chain starts by
/// shrinking, a JPEG is decoded at a reduced DCT scale (shrink-on-load) and the steps returned
/// finish the job from there — the leading resize rewritten to the exact size, or dropped when the
/// decoder already made it. Otherwise a plain decode and the steps as given.
pub fn decode_for(bytes: &[u8], limits: DecodeLimits, name: &str, steps: &[Step]) -> Result<(Image, imageio::DecodeInfo, Vec<Step>)> {
    let (img, info) = imageio::decode_shrinking(bytes, limits, name, |w, h| shrink_target(steps, w, h))?;
    let img = imageio::to_image(img);
    let run = match info.shrunk_on_load_from.and_then(|[w, h]| Some(((w, h), shrink_target(steps, w, h)?))) {
        Some((full, target)) => after_shrink_on_load(steps, full, (img.width, img.height), target),
        None => steps.to_vec(),
    };
    Ok((img, info, run))
}

/// The steps to run on a picture decoded at `decoded` instead of its full size `full`, after
/// [`shrink_target`] gave `target`: the leading `resize` now names the exact `target` size (its
/// aspect ratio is taken from the full picture, not the rounded smaller one), and is dropped when
/// the decoder already produced exactly that size (a resize to the size a picture has is the
/// identity). Unchanged when nothing was shrunk.
pub fn after_shrink_on_load(steps: &[Step], full: (u32, u32), decoded: (u32, u32), target: (u32, u32)) -> Vec<Step> {
    if decoded == full || steps.is_empty() {
        return steps.to_vec();
    }
    if decoded == target {
        return steps[1..].to_vec();
    }
    let mut first = steps[0].clone();
    first.step.params.retain(|p| !matches!(p.name.as_str(), "width" | "height" | "max"));
    for (name, v) in [("width", target.0), ("height", target.1)] {
        first.step.params.push(crate::types::Param { name: name.into(), value: crate::types::Value::Integer(v.into()) });
    }
    std::iter::once(first).chain(steps[1..].iter().cloned()).collect()
}

/// Run steps in order; consecutive steps of one component go in one call.
pub async fn run(job: &str, mut image: Image, steps: &[Step]) -> Result<Image> {
    let mut i = 0;
    while i < steps.len() {
        let plugin = &steps[i].plugin;
        let mut j = i + 1;
        while j < steps.len() && Arc::ptr_eq(&steps[j].plugin, plugin) {
            j += 1;
        }
        let batch: Vec<types::Step> = steps[i..j].iter().map(|s| s.step.clone()).collect();
        let texts: Vec<&str> = steps[i..j].iter().map(|s| s.text.as_str()).collect();
        image = match plugin.apply(job, image, &batch).await? {
            Ok(img) => img,
            Err(e) => bail!("filter step(s) {} failed: {}", texts.join(" → "), crate::jobs::runner::explain(plugin.id(), &e, 1)),
        };
        // Nothing the plugin says about the image is used before this: not its size, not its pixels.
        let who = format!("filter plugin `{}` (step `{}`)", plugin.id(), texts.join(" → "));
        imageio::check_image(&image, steps[i].limits, &who)?;
        i = j;
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::split_params;

    #[test]
    fn values_may_contain_commas() {
        assert_eq!(split_params("text=hello, world,opacity=0.5"), vec!["text=hello, world", "opacity=0.5"]);
        assert_eq!(split_params(""), Vec::<String>::new());
    }
}
