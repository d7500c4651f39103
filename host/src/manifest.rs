//! `plugin.toml`: what a plugin is and what it asks the host for (see `docs/manifest.md`).

use crate::caps::hosts::HostPattern;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The contract versions this host speaks, newest first.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.2.0", "0.1.0"];

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

/// How a plugin's code runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// A sandboxed WebAssembly component (`plugin.wasm`): the default, and the only tier for
    /// code the operator does not fully trust.
    #[default]
    Wasm,
    /// A native shared library (`library = "libfilters.so"`), as trusted as the host itself; it
    /// loads only when the operator pins its sha256 (docs/native.md). Filters only.
    Native,
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tier::Wasm => "wasm",
            Tier::Native => "native",
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
    /// The component file, absolute; for the native tier, the shared library.
    pub component: PathBuf,
    /// Wasm component or native library.
    pub tier: Tier,
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
    /// `http.send` calls one call into the plugin may make.
    #[serde(default = "default_max_http_requests")]
    pub max_http_requests: u32,
    /// Log lines per second the plugin may write (a burst of twice that is allowed); the rest
    /// are dropped and counted.
    #[serde(default = "default_log_lines_per_s")]
    pub log_lines_per_s: u32,
    /// Artifacts one call may return.
    #[serde(default = "default_max_artifacts")]
    pub max_artifacts: u32,
    /// Size of all notes of one artifact together, KiB.
    #[serde(default = "default_max_notes_kb")]
    pub max_notes_kb: u32,
    /// Size of a pending job's token, KiB.
    #[serde(default = "default_max_token_kb")]
    pub max_token_kb: u32,
    /// Bytes one call may write to artifact streams (contract 0.2 `artifacts`), MiB.
    #[serde(default = "default_max_stream_mb")]
    pub max_stream_mb: u32,
}

fn default_memory_mb() -> u64 {
    256
}
fn default_call_timeout_s() -> f64 {
    60.0
}
fn default_max_http_requests() -> u32 {
    256
}
fn default_log_lines_per_s() -> u32 {
    50
}
fn default_max_artifacts() -> u32 {
    64
}
fn default_max_notes_kb() -> u32 {
    64
}
fn default_max_token_kb() -> u32 {
    64
}
fn default_max_stream_mb() -> u32 {
    2048
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: default_memory_mb(),
            call_timeout_s: default_call_timeout_s(),
            max_in_flight: None,
            max_http_requests: default_max_http_requests(),
            log_lines_per_s: default_log_lines_per_s(),
            max_artifacts: default_max_artifacts(),
            max_notes_kb: default_max_notes_kb(),
            max_token_kb: default_max_token_kb(),
            max_stream_mb: default_max_stream_mb(),
        }
    }
}

/// The limits there are, in the order messages list them.
pub const LIMIT_KEYS: [&str; 9] = [
    "memory_mb",
    "call_timeout_s",
    "max_in_flight",
    "max_http_requests",
    "log_lines_per_s",
    "max_artifacts",
    "max_notes_kb",
    "max_token_kb",
    "max_stream_mb",
];
/// The whole-number volume limits: key, unit for messages, and the largest value that makes sense.
const COUNT_LIMITS: [(&str, &str, u32); 6] = [
    ("max_http_requests", "requests per call", 100_000),
    ("log_lines_per_s", "log lines per second", 100_000),
    ("max_artifacts", "artifacts per call", 10_000),
    ("max_notes_kb", "KiB of notes per artifact", 16_384),
    ("max_token_kb", "KiB per job token", 16_384),
    ("max_stream_mb", "MiB streamed per call", 1_048_576),
];
/// A wasm32 plugin addresses at most 4 GiB, so a larger cap means nothing.
const MAX_MEMORY_MB: u64 = 4096;
/// A call longer than a day is hung: long jobs return `pending` and are polled instead.
const MAX_CALL_TIMEOUT_S: f64 = 86_400.0;

/// Why a limit's value was refused, and the TOML line to write instead.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitRefusal {
    /// What is wrong with the value (or the key).
    pub problem: String,
    /// The corrected line (`memory_mb = 256`); `None` when the key means nothing and should go.
    pub instead: Option<String>,
}

impl LimitRefusal {
    /// The whole one-line message: where (`file:line`), which key and value, what is wrong, the fix.
    pub fn message(&self, at: &str, section: &str, key: &str, value: &toml::Value) -> String {
        let fix = match &self.instead {
            Some(line) => format!("write instead: {line}"),
            None => "remove the line".to_string(),
        };
        format!("{at}: {section} {key} = {value}: {}; {fix}", self.problem)
    }
}

impl Limits {
    /// Set one limit from its TOML value. A refusal suggests a corrected line, built from the
    /// value when a number can be read from it (`"1GiB"` → `1024`), else from the current setting.
    pub fn set(&mut self, key: &str, value: &toml::Value) -> Result<(), LimitRefusal> {
        let salvaged = number_in(value, key).filter(|n| *n > 0.0);
        let refuse = |problem: String, line: String| Err(LimitRefusal { problem, instead: Some(line) });
        match key {
            "memory_mb" => match value.as_integer() {
                Some(n) if (1..=MAX_MEMORY_MB as i64).contains(&n) => self.memory_mb = n as u64,
                _ => {
                    let problem = match value {
                        toml::Value::Integer(n) if *n > 0 => {
                            format!("more than a plugin can use (a wasm32 plugin addresses at most {MAX_MEMORY_MB} MiB)")
                        }
                        toml::Value::Integer(_) => "the memory limit must be at least 1 MiB".to_string(),
                        other => format!("the memory limit must be a whole number of MiB, not {}", kind_of(other)),
                    };
                    let mb = salvaged.map_or(self.memory_mb, |n| (n.ceil() as u64).clamp(1, MAX_MEMORY_MB));
                    return refuse(problem, format!("memory_mb = {mb}"));
                }
            },
            "call_timeout_s" => match value.as_float().or(value.as_integer().map(|i| i as f64)) {
                Some(s) if s > 0.0 && s <= MAX_CALL_TIMEOUT_S => self.call_timeout_s = s,
                number => {
                    let problem = match number {
                        Some(s) if s > MAX_CALL_TIMEOUT_S => format!(
                            "more than a day ({MAX_CALL_TIMEOUT_S} s); a call that long is hung (long jobs return `pending` and are polled)"
                        ),
                        Some(s) if s.is_nan() => "the call timeout must be a number of seconds, not nan".to_string(),
                        Some(_) => "the call timeout must be more than 0 seconds".to_string(),
                        None => format!("the call timeout must be a number of seconds, not {}", kind_of(value)),
                    };
                    let s = salvaged.map_or(self.call_timeout_s, |n| n.min(MAX_CALL_TIMEOUT_S));
                    return refuse(problem, format!("call_timeout_s = {s}"));
                }
            },
            "max_in_flight" => match value.as_integer().and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0) {
                Some(n) => self.max_in_flight = Some(n),
                None => {
                    let problem = match value {
                        toml::Value::Integer(n) if *n > 0 => format!("at most {} jobs", u32::MAX),
                        toml::Value::Integer(_) => "at least 1 job must be allowed in flight".to_string(),
                        other => format!("max_in_flight must be a whole number of jobs, not {}", kind_of(other)),
                    };
                    let n = salvaged.map_or(self.max_in_flight.unwrap_or(1), |n| n.ceil().min(u32::MAX as f64) as u32);
                    return refuse(problem, format!("max_in_flight = {n}"));
                }
            },
            key if COUNT_LIMITS.iter().any(|(k, _, _)| *k == key) => {
                let (_, unit, max) = COUNT_LIMITS.iter().find(|(k, _, _)| *k == key).copied().unwrap_or_default();
                let slot = self.count_mut(key).expect("every count limit has a field");
                match value.as_integer().filter(|n| (1..=max as i64).contains(n)) {
                    Some(n) => *slot = n as u32,
                    None => {
                        let problem = match value {
                            toml::Value::Integer(n) if *n > max as i64 => format!("more than the most that makes sense ({max} {unit})"),
                            toml::Value::Integer(_) => format!("at least 1 ({unit}) must be allowed"),
                            other => format!("{key} must be a whole number ({unit}), not {}", kind_of(other)),
                        };
                        let n = salvaged.map_or(*slot, |n| (n.ceil().min(max as f64)) as u32);
                        return refuse(problem, format!("{key} = {n}"));
                    }
                }
            }
            other => {
                let problem = format!("there is no limit `{other}` (the limits are {})", LIMIT_KEYS.join(", "));
                // The likely intended key, with this value if it fits there, else the suggested one.
                let instead = likely_limit(other).map(|meant| match self.clone().set(meant, value) {
                    Ok(()) => format!("{meant} = {value}"),
                    Err(r) => r.instead.unwrap_or_default(),
                });
                return Err(LimitRefusal { problem, instead });
            }
        }
        Ok(())
    }
}

impl Limits {
    /// The field behind a whole-number volume limit.
    fn count_mut(&mut self, key: &str) -> Option<&mut u32> {
        Some(match key {
            "max_http_requests" => &mut self.max_http_requests,
            "log_lines_per_s" => &mut self.log_lines_per_s,
            "max_artifacts" => &mut self.max_artifacts,
            "max_notes_kb" => &mut self.max_notes_kb,
            "max_token_kb" => &mut self.max_token_kb,
            "max_stream_mb" => &mut self.max_stream_mb,
            _ => return None,
        })
    }

    /// Every limit as `(key, value)`, in [`LIMIT_KEYS`] order, for `plugins inspect`.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            ("memory_mb", self.memory_mb.to_string()),
            ("call_timeout_s", self.call_timeout_s.to_string()),
            ("max_in_flight", self.max_in_flight.map_or("unlimited".into(), |n| n.to_string())),
            ("max_http_requests", self.max_http_requests.to_string()),
            ("log_lines_per_s", self.log_lines_per_s.to_string()),
            ("max_artifacts", self.max_artifacts.to_string()),
            ("max_notes_kb", self.max_notes_kb.to_string()),
            ("max_token_kb", self.max_token_kb.to_string()),
            ("max_stream_mb", self.max_stream_mb.to_string()),
        ]
    }

    /// The refusal message for a plugin that went over one of its volume limits: what it did,
    /// the limit, and the line that raises it.
    pub fn over_message(&self, plugin: &str, config_path: &str, key: &str, what: &str) -> String {
        let current = self.entries().into_iter().find(|(k, _)| *k == key).map(|(_, v)| v).unwrap_or_default();
        let raised = current.parse::<u64>().map_or(current.clone(), |n| (n.saturating_mul(4)).to_string());
        format!(
            "plugin `{plugin}` {what}, over its limit {key} = {current}; if it really needs more, raise it in {config_path}:\n    [plugins.{plugin}.limits]\n    {key} = {raised}"
        )
    }
}

/// The known limit a misspelt key most likely meant (`call_timeout`, `memory`, `max-in-flight`).
fn likely_limit(key: &str) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    if k.contains("mem") {
        Some("memory_mb")
    } else if k.contains("time") {
        Some("call_timeout_s")
    } else if k.contains("flight") || k.contains("concurren") || k.contains("parallel") {
        Some("max_in_flight")
    } else if k.contains("http") || k.contains("request") {
        Some("max_http_requests")
    } else if k.contains("log") {
        Some("log_lines_per_s")
    } else if k.contains("artifact") || k.contains("output") {
        Some("max_artifacts")
    } else if k.contains("note") {
        Some("max_notes_kb")
    } else if k.contains("stream") {
        Some("max_stream_mb")
    } else if k.contains("token") {
        Some("max_token_kb")
    } else {
        None
    }
}

/// A number readable from a value, in the key's unit: the value itself, or a string's number
/// with its unit converted (`"1GiB"` → 1024 for MiB, `"2m"` → 120 for seconds).
fn number_in(value: &toml::Value, key: &str) -> Option<f64> {
    let n = match value {
        toml::Value::Integer(i) => *i as f64,
        toml::Value::Float(f) => *f,
        toml::Value::String(s) => {
            let s = s.trim();
            let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
            let n: f64 = s[..end].parse().ok()?;
            let unit = s[end..].trim().to_ascii_lowercase();
            let scale = match (key, unit.as_str()) {
                (_, "") => 1.0,
                ("memory_mb", "m" | "mb" | "mib") => 1.0,
                ("memory_mb", "g" | "gb" | "gib") => 1024.0,
                ("memory_mb", "k" | "kb" | "kib") => 1.0 / 1024.0,
                ("call_timeout_s", "s" | "sec" | "secs" | "seconds") => 1.0,
                ("call_timeout_s", "ms") => 0.001,
                ("call_timeout_s", "m" | "min" | "mins" | "minutes") => 60.0,
                ("call_timeout_s", "h" | "hour" | "hours") => 3600.0,
                _ => return None,
            };
            n * scale
        }
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// What kind of TOML value this is, for messages.
fn kind_of(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string (write the number without quotes)",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a fraction",
        toml::Value::Boolean(_) => "true/false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// The 1-based line of byte offset `at` in `text`.
pub(crate) fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
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
    tier: Tier,
    /// The shared library of a native plugin, beside the manifest.
    #[serde(default)]
    library: Option<String>,
    #[serde(default)]
    permissions: RawPermissions,
    #[serde(default)]
    defaults: BTreeMap<String, toml::Value>,
    /// Checked by [`Limits::set`], with spans so a refusal names its line.
    #[serde(default)]
    limits: BTreeMap<String, toml::Spanned<toml::Value>>,
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
        let component = match (raw.tier, &raw.library) {
            (Tier::Wasm, None) => dir.join(raw.component.as_deref().unwrap_or("plugin.wasm")),
            (Tier::Wasm, Some(_)) => bail!(
                "{}: `library` is for native plugins; add tier = \"native\" (docs/native.md) or name the wasm file with component = \"plugin.wasm\"",
                path.display()
            ),
            (Tier::Native, _) if raw.kind != Kind::Filter => {
                bail!("{}: only filter plugins can be native (tier = \"native\"); a model runs as a wasm component", path.display())
            }
            (Tier::Native, _) if raw.component.is_some() => {
                bail!("{}: a native plugin names its shared library with `library`, not `component`", path.display())
            }
            (Tier::Native, None) => bail!(
                "{}: a native plugin needs its shared library: add library = \"lib{}.so\" (the file beside plugin.toml)",
                path.display(),
                raw.id
            ),
            (Tier::Native, Some(lib)) if lib.is_empty() || lib.contains(['/', '\\']) => {
                bail!("{}: library = \"{lib}\" must be a file name beside plugin.toml, without a directory", path.display())
            }
            (Tier::Native, Some(lib)) => dir.join(lib),
        };
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
        let mut limits = Limits::default();
        for (key, value) in &raw.limits {
            limits.set(key, value.get_ref()).map_err(|r| {
                let at = format!("{}:{}", path.display(), line_at(text, value.span().start));
                anyhow::anyhow!(r.message(&at, "[limits]", key, value.get_ref()))
            })?;
        }
        Ok(Manifest {
            id: raw.id,
            version: raw.version,
            contract: raw.contract,
            kind: raw.kind,
            description: raw.description,
            component,
            tier: raw.tier,
            path: path.to_path_buf(),
            hosts,
            secrets,
            defaults,
            limits,
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
    fn a_native_manifest_names_its_library_and_is_a_filter() {
        let head = "id = \"filters-native\"\nversion = \"0.1.0\"\ncontract = \"0.1.0\"\n";
        let m = Manifest::parse(&format!("{head}kind = \"filter\"\ntier = \"native\"\nlibrary = \"libfilters.so\"\n"), Path::new("/p/fn/plugin.toml")).unwrap();
        assert_eq!((m.tier, m.component.as_path()), (Tier::Native, Path::new("/p/fn/libfilters.so")));
        let wasm = Manifest::parse(&format!("{head}kind = \"filter\"\n"), Path::new("/p/f/plugin.toml")).unwrap();
        assert_eq!(wasm.tier, Tier::Wasm);
        let refused = |extra: &str| format!("{:#}", Manifest::parse(&format!("{head}{extra}"), Path::new("/p/x/plugin.toml")).unwrap_err());
        assert!(refused("kind = \"model\"\ntier = \"native\"\nlibrary = \"a.so\"\n").contains("only filter plugins"));
        assert!(refused("kind = \"filter\"\ntier = \"native\"\n").contains("library = \"libfilters-native.so\""));
        assert!(refused("kind = \"filter\"\nlibrary = \"a.so\"\n").contains("tier = \"native\""));
        assert!(refused("kind = \"filter\"\ntier = \"native\"\nlibrary = \"../a.so\"\n").contains("without a directory"));
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
        assert!(s.contains("built for contract 9.0.0") && s.contains("speaks 0.2.0, 0.1.0"), "{s}");
    }

    fn refusal(key: &str, value: toml::Value) -> LimitRefusal {
        Limits::default().set(key, &value).expect_err("the value must be refused")
    }

    #[test]
    fn limits_are_checked_with_the_line_to_write() {
        let mut l = Limits::default();
        l.set("memory_mb", &toml::Value::Integer(512)).unwrap();
        l.set("call_timeout_s", &toml::Value::Float(2.5)).unwrap();
        l.set("max_in_flight", &toml::Value::Integer(3)).unwrap();
        l.set("max_artifacts", &toml::Value::Integer(8)).unwrap();
        assert_eq!(l, Limits { memory_mb: 512, call_timeout_s: 2.5, max_in_flight: Some(3), max_artifacts: 8, ..Limits::default() });
        let r = refusal("max_http_requests", toml::Value::Integer(0));
        assert_eq!(r.instead.as_deref(), Some("max_http_requests = 256"), "{r:?}");
        let r = refusal("max_token_kb", toml::Value::Integer(1 << 40));
        assert!(r.problem.contains("16384") && r.instead.as_deref() == Some("max_token_kb = 16384"), "{r:?}");
        assert_eq!(refusal("log_rate", toml::Value::Integer(5)).instead.as_deref(), Some("log_lines_per_s = 5"));

        let r = refusal("memory_mb", toml::Value::Integer(-5));
        assert_eq!(r.instead.as_deref(), Some("memory_mb = 256"), "{r:?}");
        assert!(r.problem.contains("at least 1 MiB"), "{r:?}");
        assert_eq!(refusal("memory_mb", toml::Value::Integer(0)).instead.as_deref(), Some("memory_mb = 256"));
        assert_eq!(refusal("memory_mb", toml::Value::String("512MB".into())).instead.as_deref(), Some("memory_mb = 512"));
        assert_eq!(refusal("memory_mb", toml::Value::Float(1.5)).instead.as_deref(), Some("memory_mb = 2"));
        let r = refusal("memory_mb", toml::Value::Integer(1 << 40));
        assert!(r.problem.contains("4096 MiB") && r.instead.as_deref() == Some("memory_mb = 4096"), "{r:?}");
        assert_eq!(refusal("call_timeout_s", toml::Value::String("30s".into())).instead.as_deref(), Some("call_timeout_s = 30"));
        assert_eq!(refusal("call_timeout_s", toml::Value::Float(f64::NAN)).instead.as_deref(), Some("call_timeout_s = 60"));
        assert_eq!(refusal("call_timeout_s", toml::Value::Integer(0)).instead.as_deref(), Some("call_timeout_s = 60"));
        assert_eq!(refusal("call_timeout_s", toml::Value::Float(1e300)).instead.as_deref(), Some("call_timeout_s = 86400"));
        assert_eq!(refusal("max_in_flight", toml::Value::Boolean(true)).instead.as_deref(), Some("max_in_flight = 1"));
        // A misspelt key: the key it most likely meant, keeping the value when it fits there.
        assert_eq!(refusal("call_timeout", toml::Value::Integer(1)).instead.as_deref(), Some("call_timeout_s = 1"));
        assert_eq!(refusal("memory", toml::Value::String("1G".into())).instead.as_deref(), Some("memory_mb = 1024"));
        assert_eq!(refusal("call_timeout_s", toml::Value::String("2 min".into())).instead.as_deref(), Some("call_timeout_s = 120"));
        assert_eq!(refusal("memory_mb", toml::Value::String("lots".into())).instead.as_deref(), Some("memory_mb = 256"));
        assert_eq!(refusal("colour", toml::Value::Integer(1)).instead, None);
    }

    #[test]
    fn a_bad_manifest_limit_names_the_file_line_key_and_fix() {
        let text = "id = \"x\"\nversion = \"1\"\ncontract = \"0.1.0\"\nkind = \"filter\"\n[limits]\nmemory_mb = 128\ncall_timeout_s = -1\n";
        let e = format!("{:#}", Manifest::parse(text, Path::new("/p/x/plugin.toml")).unwrap_err());
        assert_eq!(
            e,
            "/p/x/plugin.toml:7: [limits] call_timeout_s = -1: the call timeout must be more than 0 seconds; write instead: call_timeout_s = 60"
        );
    }
}
