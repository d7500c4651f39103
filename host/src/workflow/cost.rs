//! The operator's price table (`[prices]` in atelier.toml), cost estimates made from a stage's
//! parameters before anything is submitted, and costs of the usage each job reported.
//!
//! ```toml
//! [prices]
//! currency = "USD"
//! [prices.seedream]
//! per_image = 0.03
//! [prices.nano-banana-2]
//! per_image = { "1K" = 0.039, "2K" = 0.06, "4K" = 0.12 }   # tier nearest the image's pixel count
//! [prices.veo-3]
//! per_video_second = 0.40
//! model = "veo-3.0-generate-001"        # optional: only for this model id (else "no price set")
//! [prices.veo-3.models."veo-3.1-generate-preview"]
//! per_video_second = 0.40
//! [prices.nano-banana]
//! per_1k_input_tokens = 0.0003
//! per_1k_output_tokens = 0.03
//! ```

use crate::types::{Param, Value};
use anyhow::{Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;

/// Prices of one engine (or one of its model ids).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Price {
    /// Per output image: flat, or by size tier.
    pub per_image: Option<Tiers>,
    /// Per second of video.
    pub per_video_second: Option<f64>,
    /// Per 1000 input tokens.
    pub per_1k_input_tokens: Option<f64>,
    /// Per 1000 output tokens.
    pub per_1k_output_tokens: Option<f64>,
}

/// An image price.
#[derive(Clone, Debug, PartialEq)]
pub enum Tiers {
    /// The same for every size.
    Flat(f64),
    /// `(tier name, nominal pixel count, price)`, e.g. ("2K", 2048², 0.06).
    BySize(Vec<(String, u64, f64)>),
}

impl Tiers {
    /// The price of an image of `pixels` (the tier nearest on a log scale); `None`: unknown size,
    /// in which case the dearest tier is used by estimates.
    fn price(&self, pixels: Option<u64>) -> f64 {
        match (self, pixels) {
            (Tiers::Flat(p), _) => *p,
            (Tiers::BySize(t), Some(px)) => {
                let lp = (px.max(1) as f64).ln();
                t.iter().min_by(|a, b| (lp - (a.1 as f64).ln()).abs().total_cmp(&(lp - (b.1 as f64).ln()).abs())).map(|x| x.2).unwrap_or(0.0)
            }
            (Tiers::BySize(t), None) => t.iter().map(|x| x.2).fold(0.0, f64::max),
        }
    }
}

/// Every engine's prices.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    /// What amounts are in (`[prices] currency`, default USD).
    pub currency: String,
    engines: BTreeMap<String, EnginePrices>,
}

#[derive(Clone, Debug, Default)]
struct EnginePrices {
    only_model: Option<String>,
    base: Price,
    models: BTreeMap<String, Price>,
}

/// A cost: an amount, or why there is none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Cost {
    /// In the table's currency; `None` when no price is set.
    pub amount: Option<f64>,
    /// How it was worked out (`2 image(s) × 0.030`), or "no price set".
    pub basis: String,
}

impl Cost {
    fn unknown(why: &str) -> Cost {
        Cost { amount: None, basis: why.to_string() }
    }
}

impl PriceTable {
    /// Read `[prices]` from the operator's config (`where_` names the file for messages).
    pub fn from_config(raw: &toml::Table, where_: &str) -> Result<PriceTable> {
        let mut t = PriceTable { currency: "USD".into(), engines: BTreeMap::new() };
        let Some(p) = raw.get("prices") else { return Ok(t) };
        let Some(p) = p.as_table() else { bail!("{where_}: [prices] must be a table") };
        for (k, v) in p {
            if k == "currency" {
                t.currency = v.as_str().map(str::to_string).ok_or_else(|| anyhow::anyhow!("{where_}: [prices] currency must be text, e.g. \"USD\""))?;
                continue;
            }
            let Some(e) = v.as_table() else {
                bail!("{where_}: [prices] {k}: write a table per engine, e.g. [prices.{k}] per_image = 0.04")
            };
            let mut ep = EnginePrices { base: price(e, &format!("[prices.{k}]"), where_, true)?, ..Default::default() };
            ep.only_model = match e.get("model") {
                None => None,
                Some(toml::Value::String(s)) => Some(s.clone()),
                Some(_) => bail!("{where_}: [prices.{k}] model must be a model id in quotes"),
            };
            if let Some(m) = e.get("models") {
                let Some(m) = m.as_table() else { bail!("{where_}: [prices.{k}.models] must be a table of model ids") };
                for (id, mv) in m {
                    let Some(mt) = mv.as_table() else { bail!("{where_}: [prices.{k}.models.\"{id}\"] must be a table") };
                    ep.models.insert(id.clone(), price(mt, &format!("[prices.{k}.models.\"{id}\"]"), where_, false)?);
                }
            }
            t.engines.insert(k.clone(), ep);
        }
        Ok(t)
    }

    /// The prices for an engine running `model` (`None`: no price set for it).
    pub fn price(&self, engine: &str, model: &str) -> Option<Price> {
        let e = self.engines.get(engine)?;
        if let Some(p) = e.models.get(model) {
            return Some(p.clone());
        }
        match &e.only_model {
            Some(m) if m != model => None,
            _ if e.base == Price::default() => None,
            _ => Some(e.base.clone()),
        }
    }

    /// Whether any price is set for the engine (for any model).
    pub fn has_engine(&self, engine: &str) -> bool {
        self.engines.contains_key(engine)
    }

    /// `1.234 USD`.
    pub fn show(&self, amount: f64) -> String {
        format!("{} {}", fmt_amount(amount), self.currency)
    }
}

/// An amount with enough decimals for cents and the tenths of a cent prices are often quoted in
/// (`0.039`, `3.20`, `0.0004`).
pub fn fmt_amount(a: f64) -> String {
    // A sum of nothing is -0.0 in Rust (and a tiny negative rounding residue prints as -0.00):
    // zero is shown as `0.00`.
    let a = if a == 0.0 || a.abs() < 5e-7 { 0.0 } else { a };
    if a != 0.0 && a.abs() < 0.01 {
        return format!("{a:.4}");
    }
    let s = format!("{a:.3}");
    s.strip_suffix('0').map(str::to_string).unwrap_or(s)
}

fn price(t: &toml::Table, section: &str, where_: &str, allow_engine_keys: bool) -> Result<Price> {
    let num = |k: &str| -> Result<Option<f64>> {
        match t.get(k) {
            None => Ok(None),
            Some(toml::Value::Float(f)) if *f >= 0.0 => Ok(Some(*f)),
            Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(*i as f64)),
            Some(_) => bail!("{where_}: {section} {k} must be a number ≥ 0"),
        }
    };
    for k in t.keys() {
        let known = ["per_image", "per_video_second", "per_1k_input_tokens", "per_1k_output_tokens"].contains(&k.as_str())
            || (allow_engine_keys && (k == "model" || k == "models"));
        if !known {
            bail!("{where_}: {section}: unknown key `{k}`; prices are per_image, per_video_second, per_1k_input_tokens, per_1k_output_tokens (and model, models)");
        }
    }
    let per_image = match t.get("per_image") {
        None => None,
        Some(toml::Value::Table(tiers)) => {
            let mut v = vec![];
            for (name, p) in tiers {
                let px = tier_pixels(name).ok_or_else(|| {
                    anyhow::anyhow!("{where_}: {section} per_image: tier `{name}` is not a size; write \"1K\", \"2K\", \"4K\", \"512\" or \"WxH\"")
                })?;
                let p = p.as_float().or_else(|| p.as_integer().map(|i| i as f64)).filter(|p| *p >= 0.0);
                let p = p.ok_or_else(|| anyhow::anyhow!("{where_}: {section} per_image.\"{name}\" must be a number ≥ 0"))?;
                v.push((name.clone(), px, p));
            }
            Some(Tiers::BySize(v))
        }
        Some(_) => num("per_image")?.map(Tiers::Flat),
    };
    Ok(Price {
        per_image,
        per_video_second: num("per_video_second")?,
        per_1k_input_tokens: num("per_1k_input_tokens")?,
        per_1k_output_tokens: num("per_1k_output_tokens")?,
    })
}

/// Nominal pixels of a size name: `1K` = 1024², `512` = 512², `1280x720`.
pub fn tier_pixels(name: &str) -> Option<u64> {
    let n = name.trim();
    if let Some(k) = n.strip_suffix(['K', 'k']) {
        let k: f64 = k.parse().ok()?;
        let side = (k * 1024.0) as u64;
        return side.checked_mul(side);
    }
    if let Some((w, h)) = n.split_once(['x', 'X', '*']) {
        return w.trim().parse::<u64>().ok()?.checked_mul(h.trim().parse::<u64>().ok()?);
    }
    let side: u64 = n.parse().ok()?;
    side.checked_mul(side)
}

/// What a stage is expected to cost before it is submitted: `count` outputs with these
/// (resolved) parameters. `offline`: the engine has no network access, so it costs nothing.
pub fn estimate(price: Option<&Price>, offline: bool, video: bool, count: u32, params: &[Param]) -> Cost {
    if offline {
        return Cost { amount: Some(0.0), basis: "offline engine".into() };
    }
    let Some(p) = price else { return Cost::unknown("no price set") };
    let text = |name: &str| params.iter().find(|x| x.name == name).map(|x| match &x.value {
        Value::Text(t) => t.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        other => crate::params::show(other),
    });
    let mut amount = 0.0;
    let mut basis = vec![];
    if video {
        match (p.per_video_second, text("seconds").and_then(|s| s.parse::<f64>().ok())) {
            (Some(ps), Some(s)) => {
                amount += ps * s * count as f64;
                basis.push(format!("{count} video(s) × {s} s × {}", fmt_amount(ps)));
            }
            (Some(ps), None) => basis.push(format!("{count} video(s) of unknown length × {}/s (not estimated)", fmt_amount(ps))),
            (None, _) => {}
        }
    } else if let Some(t) = &p.per_image {
        let px = text("size").and_then(|s| tier_pixels(&s));
        let each = t.price(px);
        amount += each * count as f64;
        let note = match (t, px) {
            (Tiers::BySize(_), None) => " (size unknown: the dearest tier)",
            _ => "",
        };
        basis.push(format!("{count} image(s) × {}{note}", fmt_amount(each)));
    }
    if p.per_1k_input_tokens.is_some() || p.per_1k_output_tokens.is_some() {
        basis.push("tokens not estimated".into());
    }
    if basis.is_empty() {
        return Cost::unknown("no price set for this kind of output");
    }
    Cost { amount: Some(amount), basis: basis.join(" + ") }
}

/// What a finished run cost, from the usage its jobs reported. Images the engine did not report
/// are counted from the files written (`images`: width, height of each image output); video
/// seconds it did not report come from the stage's `seconds` parameter. Reported figures come
/// from plugins: counts add up saturating, and negative or non-finite seconds count as none.
pub fn actual(price: Option<&Price>, offline: bool, usage: &[serde_json::Value], images: &[(u32, u32)], videos: u32, params: &[Param]) -> Cost {
    if offline {
        return Cost { amount: Some(0.0), basis: "offline engine".into() };
    }
    let Some(p) = price else { return Cost::unknown("no price set") };
    let mut amount = 0.0;
    let mut basis = vec![];
    if let Some(t) = &p.per_image {
        let mut reported: Vec<(u64, u64)> = vec![];
        for u in usage {
            for i in u["images"].as_array().into_iter().flatten() {
                let px = i["width"].as_u64().unwrap_or(0).saturating_mul(i["height"].as_u64().unwrap_or(0));
                reported.push((px, i["count"].as_u64().unwrap_or(1)));
            }
        }
        if reported.is_empty() {
            reported = images.iter().map(|(w, h)| (*w as u64 * *h as u64, 1)).collect();
        }
        let count = reported.iter().fold(0u64, |n, r| n.saturating_add(r.1));
        if count > 0 {
            let sum: f64 = reported.iter().map(|(px, c)| t.price(Some(*px)) * *c as f64).sum();
            amount += sum;
            basis.push(format!("{count} image(s)"));
        }
    }
    if let Some(ps) = p.per_video_second {
        let mut secs: f64 = usage.iter().filter_map(|u| u["video_seconds"].as_f64()).filter(|s| s.is_finite() && *s >= 0.0).sum();
        if secs == 0.0 && videos > 0 {
            let each = params.iter().find(|x| x.name == "seconds").and_then(|x| match &x.value {
                Value::Integer(i) => Some(*i as f64),
                Value::Number(n) => Some(*n),
                Value::Text(t) => t.parse().ok(),
                _ => None,
            });
            secs = each.filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(0.0) * videos as f64;
        }
        if secs > 0.0 {
            amount += ps * secs;
            basis.push(format!("{secs} s of video"));
        }
    }
    let tokens = |k: &str| usage.iter().filter_map(|u| u[k].as_u64()).fold(0u64, u64::saturating_add);
    if let Some(pi) = p.per_1k_input_tokens {
        let n = tokens("input_tokens");
        amount += pi * n as f64 / 1000.0;
        basis.push(format!("{n} input tokens"));
    }
    if let Some(po) = p.per_1k_output_tokens {
        let n = tokens("output_tokens");
        amount += po * n as f64 / 1000.0;
        basis.push(format!("{n} output tokens"));
    }
    if basis.is_empty() {
        return Cost::unknown("no price set for what was used");
    }
    Cost { amount: Some(amount), basis: basis.join(" + ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> PriceTable {
        PriceTable::from_config(&text.parse().unwrap(), "atelier.toml").unwrap()
    }

    #[test]
    fn tiers_estimates_and_actuals() {
        let t = table(
            "[prices]\ncurrency = \"EUR\"\n[prices.nb2]\nper_image = { \"1K\" = 0.04, \"2K\" = 0.06, \"4K\" = 0.12 }\n[prices.veo]\nper_video_second = 0.4\nmodel = \"veo-3\"\n",
        );
        assert_eq!(t.currency, "EUR");
        let p = t.price("nb2", "any").unwrap();
        let size = |s: &str| vec![Param { name: "size".into(), value: Value::Text(s.into()) }];
        assert_eq!(estimate(Some(&p), false, false, 2, &size("4K")).amount, Some(0.24));
        assert_eq!(estimate(Some(&p), false, false, 1, &[]).amount, Some(0.12), "unknown size: dearest tier");
        // A 16:9 1K image (1376x768) is in the 1K tier; a 2752x1536 one in 2K.
        let c = actual(Some(&p), false, &[serde_json::json!({"images": [{"width": 1376, "height": 768, "count": 1}, {"width": 2752, "height": 1536, "count": 1}]})], &[], 0, &[]);
        assert!((c.amount.unwrap() - 0.10).abs() < 1e-9, "{c:?}");
        // Per-model guard: another model id has no price.
        assert!(t.price("veo", "veo-2").is_none());
        let v = t.price("veo", "veo-3").unwrap();
        let secs = vec![Param { name: "seconds".into(), value: Value::Integer(8) }];
        assert!((estimate(Some(&v), false, true, 1, &secs).amount.unwrap() - 3.2).abs() < 1e-9);
        let c = actual(Some(&v), false, &[serde_json::json!({"images": [], "video_seconds": 6.0})], &[], 1, &secs);
        assert!((c.amount.unwrap() - 2.4).abs() < 1e-9, "reported seconds win: {c:?}");
        // Negative seconds reported by a plugin cannot make a run cost less.
        let c = actual(Some(&v), false, &[serde_json::json!({"video_seconds": -1.0e30}), serde_json::json!({"video_seconds": 6.0})], &[], 2, &secs);
        assert!((c.amount.unwrap() - 2.4).abs() < 1e-9, "{c:?}");
        assert_eq!(estimate(None, false, false, 1, &[]).basis, "no price set");
        assert_eq!(estimate(None, true, false, 1, &[]).amount, Some(0.0));
        assert_eq!([fmt_amount(0.039), fmt_amount(3.2), fmt_amount(0.0004), fmt_amount(0.0)], ["0.039", "3.20", "0.0004", "0.00"]);
        assert_eq!(fmt_amount(-0.0), "0.00", "an empty sum is -0.0");
    }

    #[test]
    fn hostile_usage_saturates_instead_of_wrapping() {
        let t = table("[prices.x]\nper_image = 0.5\nper_1k_input_tokens = 1.0\nper_1k_output_tokens = 1.0\n");
        let p = t.price("x", "m").unwrap();
        let max = u64::MAX;
        let u = serde_json::json!({
            "images": [{"width": max, "height": max, "count": max}, {"width": max, "height": 2, "count": max}],
            "input_tokens": max, "output_tokens": max,
        });
        let c = actual(Some(&p), false, &[u.clone(), u], &[], 0, &[]);
        assert!(c.basis.contains(&format!("{max} image(s)")) && c.basis.contains(&format!("{max} input tokens")), "{c:?}");
        assert!(c.amount.unwrap().is_finite() && c.amount.unwrap() > 0.0, "{c:?}");
        assert_eq!(tier_pixels("4294967296x4294967296"), None, "a size whose pixel count overflows is not a size");
        assert_eq!(tier_pixels("2K"), Some(2048 * 2048));
    }

    #[test]
    fn bad_tables_are_explained() {
        let e = PriceTable::from_config(&"[prices.x]\nper_imag = 1\n".parse().unwrap(), "a.toml").unwrap_err();
        assert!(e.to_string().contains("unknown key `per_imag`"), "{e}");
        let e = PriceTable::from_config(&"[prices.x]\nper_image = { big = 1 }\n".parse().unwrap(), "a.toml").unwrap_err();
        assert!(e.to_string().contains("tier `big`"), "{e}");
    }
}
