//! `plugin.toml`: what a plugin is and what it asks the host for (see `docs/manifest.md`).

use crate::caps::hosts::HostPattern;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The contract versions this host speaks, newest first.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.1.0"];

/// The two kinds of plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A model backend (world `model`).
    Model,
    /// A filter family (world `filter`).
    Filter,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Model => "model",
            Kind::Filter => "filter",
        })
    }
}

/// A parsed, checked `plugin.toml`.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Unique id, used by `--model` and filter steps.
    pub id: String,
    /// The plugin's own version.
    pub version: String,
    /// The contract version it was built against.
    pub contract: String,
    /// Model or filter.
    pub kind: Kind,
    /// One line.
    pub description: String,
    /// The component file, absolute.
    pub component: PathBuf,
    /// The manifest file itself, for messages.
    pub path: PathBuf,
    /// Hosts the plugin asks to reach.
    pub hosts: Vec<HostPattern>,
    /// Secrets it needs, each with the hosts it may be sent to.
    pub secrets: BTreeMap<String, Vec<HostPattern>>,
    /// Default settings (`config.get`).
    pub defaults: BTreeMap<String, String>,
    /// Resource limits it needs.
    pub limits: Limits,
}

/// Per-plugin resource limits; the operator may lower or raise them in `atelier.toml`.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory cap per job, MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Wall-clock deadline of one call into the plugin, seconds.
    #[serde(default = "default_call_timeout_s")]
    pub call_timeout_s: f64,
    /// Jobs of this plugin pending at the provider at once.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
}

fn default_memory_mb() -> u64 {
    256
}
fn default_call_timeout_s() -> f64 {
    60.0
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_mb: default_memory_mb(), call_timeout_s: default_call_timeout_s(), max_in_flight: None }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: String,
    version: String,
    contract: String,
    kind: Kind,
    #[serde(default)]
    description: String,
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    permissions: RawPermissions,
    #[serde(default)]
    defaults: BTreeMap<String, toml::Value>,
    #[serde(default)]
    limits: Limits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPermissions {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    secrets: BTreeMap<String, Vec<String>>,
}

impl Manifest {
    /// Read and check `dir/plugin.toml`. Errors name the file and the fix.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join("plugin.toml");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("{}: cannot read the plugin manifest; every plugin directory needs a plugin.toml (see docs/manifest.md)", path.display())
        })?;
        Self::parse(&text, &path)
    }

    /// Parse manifest text; `path` is used for messages and to locate the component.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let (line, msg) = toml_error_line(text, &e);
            anyhow::anyhow!("{}{}: malformed plugin manifest: {msg} (see docs/manifest.md)", path.display(), line)
        })?;
        if raw.id.is_empty() || !raw.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            bail!("{}: id `{}` must be lowercase letters, digits and `-`", path.display(), raw.id);
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let component = dir.join(raw.component.as_deref().unwrap_or("plugin.wasm"));
        let hosts = raw
            .permissions
            .hosts
            .iter()
            .map(|h| HostPattern::parse(h).with_context(|| format!("{}: [permissions] hosts", path.display())))
            .collect::<Result<Vec<_>>>()?;
        let mut secrets = BTreeMap::new();
        for (name, hs) in raw.permissions.secrets {
            let pats = hs
                .iter()
                .map(|h| HostPattern::parse(h).with_context(|| format!("{}: [permissions.secrets] {name}", path.display())))
                .collect::<Result<Vec<_>>>()?;
            secrets.insert(name, pats);
        }
        let defaults = raw
            .defaults
            .into_iter()
            .map(|(k, v)| (k, toml_scalar(&v)))
            .collect();
        Ok(Manifest {
            id: raw.id,
            version: raw.version,
            contract: raw.contract,
            kind: raw.kind,
            description: raw.description,
            component,
            path: path.to_path_buf(),
            hosts,
            secrets,
            defaults,
            limits: raw.limits,
        })
    }

    /// Refuse a contract version this host does not speak, saying which it does.
    pub fn check_contract(&self) -> Result<()> {
        if SUPPORTED_CONTRACTS.contains(&self.contract.as_str()) {
            return Ok(());
        }
        bail!(
            "{}: plugin `{}` was built for contract {}, but this host speaks {}; rebuild the plugin against wit/{}/ (or use a host that supports {})",
            self.path.display(),
            self.id,
            self.contract,
            SUPPORTED_CONTRACTS.join(", "),
            SUPPORTED_CONTRACTS[0],
            self.contract
        )
    }
}

/// A TOML scalar as the string `config.get` returns.
pub(crate) fn toml_scalar(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// ` line N` and the message of a TOML error.
pub(crate) fn toml_error_line(text: &str, e: &toml::de::Error) -> (String, String) {
    let line = e.span().map(|s| format!(":{}", text[..s.start.min(text.len())].lines().count().max(1))).unwrap_or_default();
    // toml's messages may span lines; errors here are one line each.
    (line, e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_manifest() {
        let m = Manifest::parse(
            r#"id = "nano-banana"
version = "0.1.0"
contract = "0.1.0"
kind = "model"
[permissions]
hosts = ["https://generativelanguage.googleapis.com"]
[permissions.secrets]
GEMINI_API_KEY = ["https://generativelanguage.googleapis.com"]
[defaults]
model = "gemini-2.5-flash-image"
retries = 3
[limits]
memory_mb = 128
"#,
            Path::new("/p/nano/plugin.toml"),
        )
        .unwrap();
        assert_eq!(m.kind, Kind::Model);
        assert_eq!(m.component, Path::new("/p/nano/plugin.wasm"));
        assert_eq!(m.defaults["retries"], "3");
        assert_eq!(m.limits.memory_mb, 128);
        assert_eq!(m.limits.call_timeout_s, 60.0);
        m.check_contract().unwrap();
    }

    #[test]
    fn malformed_manifest_names_file_and_line() {
        let e = Manifest::parse("id = \"x\"\nversion = 3\n", Path::new("/p/x/plugin.toml")).unwrap_err();
        let s = format!("{e:#}");
        assert!(s.contains("/p/x/plugin.toml:2"), "{s}");
    }

    #[test]
    fn other_contract_is_refused_with_supported_version() {
        let m = Manifest::parse(
            "id = \"x\"\nversion = \"1\"\ncontract = \"9.0.0\"\nkind = \"filter\"\n",
            Path::new("/p/x/plugin.toml"),
        )
        .unwrap();
        let s = format!("{:#}", m.check_contract().unwrap_err());
        assert!(s.contains("built for contract 9.0.0") && s.contains("speaks 0.1.0"), "{s}");
    }
}
