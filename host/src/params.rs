//! Turn the user's `k=v` text into typed parameters, checked against a plugin's specs.

use crate::types::{Media, Param, ParamKind, ParamSpec, ParamType, Value};
use anyhow::{Result, bail};

/// Check `given` (name, text) pairs against `specs`, convert them, and fill in defaults.
/// `what` names the owner in messages (`model classic`, `filter resize`). Media parameters are
/// read from the path given.
pub fn resolve(what: &str, specs: &[ParamSpec], given: &[(String, String)]) -> Result<Vec<Param>> {
    let mut out = Vec::new();
    for (name, text) in given {
        let Some(spec) = specs.iter().find(|s| s.name == *name) else {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "{what} has no parameter `{name}`; it takes: {}",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            );
        };
        if out.iter().any(|p: &Param| p.name == *name) {
            bail!("{what}: parameter `{name}` given twice");
        }
        out.push(Param { name: name.clone(), value: convert(what, spec, text)? });
    }
    for spec in specs {
        if out.iter().any(|p| p.name == spec.name) {
            continue;
        }
        match &spec.default_value() {
            Some(v) => out.push(Param { name: spec.name.clone(), value: v.clone() }),
            None if spec.required => bail!("{what} needs parameter `{}` ({}): add {}=...", spec.name, spec.description, spec.name),
            None => {}
        }
    }
    Ok(out)
}

/// Convert one value.
pub fn convert(what: &str, spec: &ParamSpec, text: &str) -> Result<Value> {
    let name = &spec.name;
    let range = || match (spec.min(), spec.max()) {
        (Some(a), Some(b)) => format!(" (allowed: {a} to {b})"),
        (Some(a), None) => format!(" (allowed: at least {a})"),
        (None, Some(b)) => format!(" (allowed: at most {b})"),
        _ => String::new(),
    };
    let check = |x: f64| -> Result<()> {
        if spec.min().is_some_and(|m| x < m) || spec.max().is_some_and(|m| x > m) {
            bail!("{what}: {name}={text} is out of range{}", range());
        }
        Ok(())
    };
    Ok(match spec.kind() {
        ParamKind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Value::Boolean(true),
            "false" | "no" | "0" | "off" => Value::Boolean(false),
            _ => bail!("{what}: {name}={text} is not a boolean; write true or false"),
        },
        ParamKind::Integer => {
            let v: i64 = text.parse().map_err(|_| anyhow::anyhow!("{what}: {name}={text} is not a whole number{}", range()))?;
            check(v as f64)?;
            Value::Integer(v)
        }
        ParamKind::Number => {
            let v: f64 = text.parse().map_err(|_| anyhow::anyhow!("{what}: {name}={text} is not a number{}", range()))?;
            if !v.is_finite() {
                bail!("{what}: {name}={text} is not a finite number");
            }
            check(v)?;
            Value::Number(v)
        }
        ParamKind::Text => {
            if let ParamType::Text { max_len: Some(m), .. } = spec.ty {
                if text.len() > m as usize {
                    bail!("{what}: {name} is {} bytes long; at most {m} are allowed", text.len());
                }
            }
            Value::Text(text.to_string())
        }
        ParamKind::Choice => {
            if !spec.choices().iter().any(|c| c == text) {
                bail!("{what}: {name}={text} is not allowed; choose one of: {}", spec.choices().join(", "));
            }
            Value::Text(text.to_string())
        }
        ParamKind::Media => {
            let bytes = std::fs::read(text).map_err(|e| anyhow::anyhow!("{what}: {name}={text}: cannot read the file: {e}"))?;
            let mime = crate::imageio::sniff_mime(&bytes)
                .ok_or_else(|| anyhow::anyhow!("{what}: {name}={text}: not a PNG, JPEG, WebP or GIF image"))?;
            Value::Media(Media { mime: mime.to_string(), bytes })
        }
    })
}

/// Split `k=v` text, as `--param` and filter steps give it.
pub fn split_kv(text: &str) -> Result<(String, String)> {
    let (k, v) = text.split_once('=').ok_or_else(|| anyhow::anyhow!("`{text}` is not key=value"))?;
    if k.trim().is_empty() {
        bail!("`{text}`: the key is empty");
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// A value as text, for tables and provenance.
pub fn show(v: &Value) -> String {
    match v {
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Text(t) => t.clone(),
        Value::Media(m) => format!("<{} bytes of {}>", m.bytes.len(), m.mime),
    }
}

/// A value as JSON.
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Boolean(b) => (*b).into(),
        Value::Integer(i) => (*i).into(),
        Value::Number(n) => (*n).into(),
        Value::Text(t) => t.clone().into(),
        Value::Media(m) => format!("<{} bytes of {}>", m.bytes.len(), m.mime).into(),
    }
}

/// The kind's name, for tables.
pub fn kind_name(k: ParamKind) -> &'static str {
    match k {
        ParamKind::Boolean => "bool",
        ParamKind::Integer => "int",
        ParamKind::Number => "number",
        ParamKind::Text => "text",
        ParamKind::Choice => "choice",
        ParamKind::Media => "image file",
    }
}

/// One-line description of a spec: kind, range or choices, default.
pub fn describe_spec(s: &ParamSpec) -> String {
    let mut d = kind_name(s.kind()).to_string();
    if !s.choices().is_empty() {
        d = s.choices().join("|");
    } else if let (Some(a), Some(b)) = (s.min(), s.max()) {
        d.push_str(&format!(" {a}..{b}"));
    }
    if let Some(v) = &s.default_value() {
        d.push_str(&format!(", default {}", show(v)));
    }
    if s.required {
        d.push_str(", required");
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, ty: ParamType) -> ParamSpec {
        ParamSpec { name: name.into(), description: String::new(), ty, required: false }
    }

    #[test]
    fn converts_checks_and_fills_defaults() {
        let specs = vec![
            spec("levels", ParamType::Integer { default: None, min: Some(1), max: Some(10) }),
            spec("mode", ParamType::Choice { default: Some("a".into()), choices: vec!["a".into(), "b".into()] }),
            spec("label", ParamType::Text { default: None, max_len: Some(3) }),
        ];
        let p = resolve("filter x", &specs, &[("levels".into(), "4".into())]).unwrap();
        assert_eq!(p.len(), 2);
        assert!(matches!(p[0].value, Value::Integer(4)));
        assert!(matches!(&p[1].value, Value::Text(t) if t == "a"));
        let e = resolve("filter x", &specs, &[("levels".into(), "40".into())]).unwrap_err();
        assert!(e.to_string().contains("out of range (allowed: 1 to 10)"), "{e}");
        let e = resolve("filter x", &specs, &[("mode".into(), "c".into())]).unwrap_err();
        assert!(e.to_string().contains("choose one of: a, b"), "{e}");
        let e = resolve("filter x", &specs, &[("nope".into(), "1".into())]).unwrap_err();
        assert!(e.to_string().contains("no parameter `nope`; it takes: levels, mode, label"), "{e}");
        let e = resolve("filter x", &specs, &[("label".into(), "long".into())]).unwrap_err();
        assert!(e.to_string().contains("at most 3"), "{e}");
    }
}
