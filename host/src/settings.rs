//! The operator's `atelier.toml`: per-plugin settings, grants, secrets and host-wide limits.

use crate::caps::hosts::HostPattern;
use crate::manifest::{line_at, toml_error_line, toml_scalar};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Keys under `[plugins.<id>]` that the host reads itself; every other key reaches `config.get`.
const RESERVED: &[&str] = &["enabled", "allow_hosts", "deny_hosts", "secrets", "limits", "native_sha256"];

/// The whole operator configuration.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Where it was read from, for messages (`None`: built-in defaults).
    pub path: Option<PathBuf>,
    /// Plugin directories (after `--plugins` / `ATELIER_PLUGINS`, before the per-user dir).
    pub plugin_dirs: Vec<PathBuf>,
    /// Host-wide limits.
    pub limits: HostLimits,
    /// Per-plugin sections.
    pub plugins: BTreeMap<String, PluginSettings>,
    /// `[server]`: how `atelier serve` listens and whom it lets in.
    pub server: ServerSettings,
    /// `[secrets] from_env = ["nano-banana", ...]`: plugin ids the operator lets read each secret
    /// they declare from the environment variable of the same name.
    pub secrets_from_env: Vec<String>,
    /// Where `from_env` is written (`file:line`), for messages.
    pub secrets_from_env_at: String,
    /// `[jobs]`: how long the runner keeps polling through failures.
    pub jobs: JobSettings,
    /// `[registries."host:port"]`: credentials for OCI registries (`atelier plugins install`).
    pub registries: BTreeMap<String, RegistrySettings>,
    /// `[storage]`: where the server keeps its artifacts (local files unless `url` is set).
    pub storage: StorageSettings,
    /// The raw document, for sections read by other modules (prices, ...).
    pub raw: toml::Table,
}

/// `[registries."ghcr.io"] username = "me", password = "env:GHCR_TOKEN"` (or `token = "file:..."`
/// for a bearer token): how `atelier plugins push|install|update` sign in to one registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// The user name for HTTP basic auth.
    pub username: Option<String>,
    /// Where the password is read from (`env:VAR` or `file:PATH`).
    pub password: Option<SecretSource>,
    /// Where a bearer token is read from, instead of a user name and password.
    pub token: Option<SecretSource>,
    /// Where the section is written (`file:line`), for messages.
    pub at: String,
}

/// Host-wide limits on inputs and transfers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostLimits {
    /// Largest image accepted, in pixels, checked before decoding.
    pub max_pixels: u64,
    /// Largest width or height accepted.
    pub max_dimension: u32,
    /// Largest HTTP response a plugin may receive, MiB.
    pub http_max_response_mb: u64,
    /// Largest download the host performs for an artifact, MiB.
    pub download_max_mb: u64,
    /// Time limit of one HTTP request, seconds.
    pub http_timeout_s: f64,
    /// Largest file the host reads from disk (inputs, masks, references, image parameters,
    /// recipe inputs), MiB; checked from the file's size before its body is read.
    pub max_input_mb: u64,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            max_pixels: 100_000_000,
            max_dimension: 32_768,
            http_max_response_mb: 64,
            download_max_mb: 4096,
            http_timeout_s: 120.0,
            max_input_mb: 512,
        }
    }
}

/// `[server]`: the OpenAI-compatible server (`atelier serve`).
#[derive(Clone, Debug, Default)]
pub struct ServerSettings {
    /// `listen = "127.0.0.1:8080"`; `--listen` wins.
    pub listen: Option<String>,
    /// `tokens = { alice = "env:ALICE_TOKEN" }`: caller name → where its bearer token is read from.
    pub tokens: BTreeMap<String, SecretSource>,
    /// `public_url = "https://atelier.example"`: the base of `url` results (default: the request's Host).
    pub public_url: Option<String>,
    /// `max_body_mb = 64`: the largest request body accepted, MiB.
    pub max_body_mb: Option<u64>,
    /// `header_timeout_s = 10`: time a connection has to send a request's headers (also how long
    /// an idle keep-alive connection is kept).
    pub header_timeout_s: Option<f64>,
    /// `body_timeout_s = 120`: time a request has to send its whole body once its headers are in.
    pub body_timeout_s: Option<f64>,
    /// `max_connections = 4096`: open connections at once; more wait to be accepted.
    pub max_connections: Option<u64>,
    /// `max_queue = 32`: requests per model that may wait for a turn; beyond, 429 with Retry-After.
    pub max_queue: Option<u64>,
    /// `max_running = 2`: requests per model run at once (default: see `server::admission`).
    pub max_running: Option<u64>,
    /// `keep_results_h = 1`: hours `url` results (and leftovers of failed requests) are kept.
    pub keep_results_h: Option<f64>,
    /// Where `tokens` is written, for messages (`file:line`).
    pub tokens_at: String,
}

/// `[jobs]`: how billed jobs are polled. Unset values take the runner's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobSettings {
    /// `poll_failures = 20`: polls of one job that may fail in a row (provider errors, timeouts,
    /// "not found (yet)") before the command stops; the job stays `pending` for `jobs resume`.
    pub poll_failures: Option<u32>,
    /// `max_backoff_s = 60`: the longest wait between attempts (submit retries, failed polls, a
    /// provider's `Retry-After`).
    pub max_backoff_s: Option<f64>,
    /// `database = "postgres://user@host:port/db"`: the shared job store of several front ends
    /// and workers (else SQLite in the state dir; `ATELIER_DATABASE_URL` when this is unset).
    pub database: Option<String>,
    /// `lease_s = 30`: a worker's lease on each job it drives, renewed every third of it; a
    /// stopped worker's jobs move on after it runs out.
    pub lease_s: Option<f64>,
    /// Where `[jobs]` is written, for messages.
    pub at: String,
}

/// `[storage]`: `url = "s3://bucket/prefix"` puts the server's artifacts (video content, `url`
/// results) in an S3-compatible bucket; without it they stay under the state dir.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageSettings {
    /// `url = "s3://bucket/prefix"`.
    pub url: Option<String>,
    /// `endpoint = "http://127.0.0.1:9000"`: an S3-compatible service instead of AWS (path-style).
    pub endpoint: Option<String>,
    /// `region = "eu-west-1"` (default `us-east-1`).
    pub region: Option<String>,
    /// `access_key_id = "env:VAR"` or `"file:PATH"`.
    pub access_key_id: Option<SecretSource>,
    /// `secret_access_key = "env:VAR"` or `"file:PATH"`.
    pub secret_access_key: Option<SecretSource>,
    /// `session_token = "env:VAR"` or `"file:PATH"`, for temporary credentials.
    pub session_token: Option<SecretSource>,
    /// Where each key is written (`file:line`), by key, for messages; `[storage]` for the section.
    pub at: BTreeMap<String, String>,
}

impl StorageSettings {
    /// Where `key` is written (else the section, else the file), for messages.
    pub fn at(&self, key: &str) -> String {
        self.at.get(key).or_else(|| self.at.get("[storage]")).cloned().unwrap_or_else(|| "atelier.toml".into())
    }
}

/// `[plugins.<id>]`.
#[derive(Clone, Debug, Default)]
pub struct PluginSettings {
    /// `enabled = false` hides the plugin.
    pub enabled: bool,
    /// Settings for `config.get`.
    pub config: BTreeMap<String, String>,
    /// Extra hosts the operator grants.
    pub allow_hosts: Vec<HostPattern>,
    /// Hosts the operator refuses even if the manifest asks.
    pub deny_hosts: Vec<HostPattern>,
    /// The secrets the operator assigns to this plugin: where each value comes from, and any
    /// hosts beyond the manifest's that it may be sent to.
    pub secrets: BTreeMap<String, SecretSetting>,
    /// Overrides of the manifest's `[limits]`, checked when the plugin loads (so one bad value
    /// stops only that plugin).
    pub limits: BTreeMap<String, LimitOverride>,
    /// `native_sha256 = "…"`: the operator allows this id's native library (tier = "native") and
    /// pins its exact bytes; lowercase hex. Without it a native plugin never loads.
    pub native_sha256: Option<String>,
    /// Where `native_sha256` is written (`file:line`), for messages.
    pub native_sha256_at: String,
}

/// One `[plugins.<id>.limits]` entry as the operator wrote it.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitOverride {
    /// The value.
    pub value: toml::Value,
    /// Where it was written (`file:line`), for messages.
    pub at: String,
}

/// One `[plugins.<id>.secrets]` entry: `NAME = "env:VAR"`, or
/// `NAME = { from = "env:VAR", hosts = ["https://proxy.example"] }` to also bind it to hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSetting {
    /// Where the value is read.
    pub source: SecretSource,
    /// Hosts the operator binds it to, beyond those the manifest binds it to.
    pub hosts: Vec<HostPattern>,
}

/// Where a secret's value is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the host process.
    Env(String),
    /// A file (trailing newline trimmed).
    File(PathBuf),
}

impl SecretSource {
    /// Parse `env:VAR` or `file:PATH`.
    pub fn parse(text: &str) -> Result<SecretSource> {
        if let Some(v) = text.strip_prefix("env:") {
            Ok(SecretSource::Env(v.to_string()))
        } else if let Some(p) = text.strip_prefix("file:") {
            Ok(SecretSource::File(PathBuf::from(p)))
        } else {
            bail!("secret source `{text}` must be `env:VAR` or `file:PATH`")
        }
    }

    /// Read the value now; `None` when unset or unreadable.
    pub fn read(&self) -> Option<String> {
        match self {
            SecretSource::Env(v) => std::env::var(v).ok().filter(|s| !s.is_empty()),
            SecretSource::File(p) => std::fs::read_to_string(p).ok().map(|s| s.trim_end().to_string()).filter(|s| !s.is_empty()),
        }
    }
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(v) => write!(f, "env:{v}"),
            SecretSource::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl Settings {
    /// Read `path`; errors name the file and line.
    pub fn load(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the config file (given by --config or ATELIER_CONFIG)", path.display()))?;
        Self::parse(&text, Some(path))
    }

    /// Parse config text.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Settings> {
        let shown = path.map(|p| p.display().to_string()).unwrap_or_else(|| "atelier.toml".into());
        let raw: toml::Table = text.parse::<toml::Table>().map_err(|e| {
            let (line, msg) = toml_error_line(text, &e);
            anyhow::anyhow!("{shown}{line}: {msg}")
        })?;
        let at = |key: &str| line_of(text, key).map(|l| format!("{shown}:{l}")).unwrap_or_else(|| shown.clone());
        let limit_lines = plugin_limit_lines(text);
        let mut s = Settings { path: path.map(Path::to_path_buf), raw: raw.clone(), ..Default::default() };
        if let Some(paths) = raw.get("paths") {
            if let Some(dirs) = paths.get("plugins").and_then(|v| v.as_array()) {
                let base = path.and_then(Path::parent).unwrap_or(Path::new("."));
                s.plugin_dirs = dirs.iter().filter_map(|d| d.as_str()).map(|d| base.join(d)).collect();
            }
        }
        if let Some(l) = raw.get("limits") {
            s.limits = l.clone().try_into().map_err(|e: toml::de::Error| anyhow::anyhow!("{}: [limits]: {}", at("[limits]"), e.message()))?;
        }
        if let Some(secrets) = raw.get("secrets") {
            s.secrets_from_env_at = at("from_env");
            s.secrets_from_env = parse_secrets(secrets, &|k| at(k))?;
        }
        if let Some(jobs) = raw.get("jobs") {
            s.jobs = parse_jobs(jobs, &|k| at(k))?;
        }
        if let Some(server) = raw.get("server") {
            let t = server.as_table().ok_or_else(|| anyhow::anyhow!("{}: `server` must be a table ([server])", at("server")))?;
            s.server = parse_server(t, &|k| at(k))?;
        }
        if let Some(r) = raw.get("registries") {
            s.registries = parse_registries(r, &|k| at(k))?;
        }
        if let Some(st) = raw.get("storage") {
            s.storage = parse_storage(st, text, &shown)?;
        }
        if let Some(plugins) = raw.get("plugins") {
            let plugins = plugins.as_table().ok_or_else(|| anyhow::anyhow!("{}: `plugins` must be a table", at("plugins")))?;
            for (id, section) in plugins {
                let table = section
                    .as_table()
                    .ok_or_else(|| anyhow::anyhow!("{}: [plugins.{id}] must be a table", at(&format!("[plugins.{id}]"))))?;
                let mut p = parse_plugin(id, table, &|k| at(k))?;
                for (key, o) in p.limits.iter_mut() {
                    if let Some(line) = limit_lines.get(&(id.clone(), key.clone())) {
                        o.at = format!("{shown}:{line}");
                    } else {
                        o.at = shown.clone();
                    }
                }
                s.plugins.insert(id.clone(), p);
            }
        }
        Ok(s)
    }

    /// The section of a plugin (empty when the operator wrote none).
    pub fn plugin(&self, id: &str) -> PluginSettings {
        self.plugins.get(id).cloned().unwrap_or(PluginSettings { enabled: true, ..Default::default() })
    }

    /// The file name to cite in "add this line" messages.
    pub fn shown_path(&self) -> String {
        self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "atelier.toml (pass it with --config)".into())
    }
}

fn parse_plugin(id: &str, t: &toml::Table, at: &dyn Fn(&str) -> String) -> Result<PluginSettings> {
    let mut p = PluginSettings { enabled: true, ..Default::default() };
    let hosts = |key: &str| -> Result<Vec<HostPattern>> {
        match t.get(key) {
            None => Ok(vec![]),
            Some(v) => v
                .as_array()
                .ok_or_else(|| anyhow::anyhow!("{}: [plugins.{id}] {key} must be a list of \"scheme://host[:port]\"", at(key)))?
                .iter()
                .map(|h| {
                    let s = h.as_str().ok_or_else(|| anyhow::anyhow!("{}: [plugins.{id}] {key}: not a string", at(key)))?;
                    HostPattern::parse(s).with_context(|| format!("{}: [plugins.{id}] {key}", at(key)))
                })
                .collect(),
        }
    };
    p.allow_hosts = hosts("allow_hosts")?;
    p.deny_hosts = hosts("deny_hosts")?;
    if let Some(e) = t.get("enabled") {
        p.enabled = e.as_bool().ok_or_else(|| anyhow::anyhow!("{}: [plugins.{id}] enabled must be true or false", at("enabled")))?;
    }
    if let Some(sec) = t.get("secrets") {
        let sec = sec.as_table().ok_or_else(|| anyhow::anyhow!("{}: [plugins.{id}.secrets] must be a table", at("secrets")))?;
        for (name, v) in sec {
            let setting = parse_secret_setting(v).with_context(|| format!("{}: [plugins.{id}.secrets] {name}", at(name)))?;
            p.secrets.insert(name.clone(), setting);
        }
    }
    if let Some(v) = t.get("native_sha256") {
        let hex = v.as_str().map(|h| h.trim().to_ascii_lowercase()).filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(hex) = hex else {
            bail!(
                "{}: [plugins.{id}] native_sha256 must be the library's sha256 as 64 hex digits (`sha256sum` prints it; `atelier plugins inspect {id}` shows the line to write)",
                at("native_sha256")
            );
        };
        p.native_sha256 = Some(hex);
        p.native_sha256_at = at("native_sha256");
    }
    if let Some(l) = t.get("limits") {
        let l = l.as_table().ok_or_else(|| anyhow::anyhow!("{}: [plugins.{id}.limits] must be a table", at("limits")))?;
        p.limits = l.iter().map(|(k, v)| (k.clone(), LimitOverride { value: v.clone(), at: String::new() })).collect();
    }
    for (k, v) in t {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        if v.is_table() || v.is_array() {
            bail!("{}: [plugins.{id}] {k}: settings are plain values (string, number, boolean)", at(k));
        }
        p.config.insert(k.clone(), toml_scalar(v));
    }
    Ok(p)
}

/// One secret's setting: a source string, or a table with `from` and `hosts`.
fn parse_secret_setting(v: &toml::Value) -> Result<SecretSetting> {
    const SHAPE: &str = "write \"env:VAR\", \"file:PATH\", or { from = \"env:VAR\", hosts = [\"https://host\"] }";
    match v {
        toml::Value::String(text) => Ok(SecretSetting { source: SecretSource::parse(text)?, hosts: vec![] }),
        toml::Value::Table(t) => {
            if let Some(k) = t.keys().find(|k| !matches!(k.as_str(), "from" | "hosts")) {
                bail!("no setting `{k}`: {SHAPE}");
            }
            let from = t.get("from").and_then(|f| f.as_str()).ok_or_else(|| anyhow::anyhow!("`from` is missing: {SHAPE}"))?;
            let hosts = match t.get("hosts") {
                None => vec![],
                Some(h) => h
                    .as_array()
                    .ok_or_else(|| anyhow::anyhow!("`hosts` must be a list: {SHAPE}"))?
                    .iter()
                    .map(|h| HostPattern::parse(h.as_str().ok_or_else(|| anyhow::anyhow!("`hosts`: not a string: {SHAPE}"))?))
                    .collect::<Result<_>>()?,
            };
            Ok(SecretSetting { source: SecretSource::parse(from)?, hosts })
        }
        _ => bail!("{SHAPE}"),
    }
}

/// `[secrets]`: only `from_env`, a list of plugin ids; unknown keys are refused.
fn parse_secrets(v: &toml::Value, at: &dyn Fn(&str) -> String) -> Result<Vec<String>> {
    let t = v.as_table().ok_or_else(|| anyhow::anyhow!("{}: `secrets` must be a table ([secrets])", at("secrets")))?;
    let mut ids = vec![];
    for (k, v) in t {
        if k != "from_env" {
            bail!(
                "{}: [secrets] has no setting `{k}`; it has from_env = [\"plugin-id\", ...] (a plugin's own secrets go in [plugins.<id>.secrets])",
                at(k)
            );
        }
        let list = v.as_array().ok_or_else(|| anyhow::anyhow!("{}: [secrets] from_env must be a list of plugin ids, e.g. from_env = [\"nano-banana\"]", at(k)))?;
        for id in list {
            let id = id.as_str().ok_or_else(|| anyhow::anyhow!("{}: [secrets] from_env: plugin ids are strings", at(k)))?;
            if id == "*" {
                bail!("{}: [secrets] from_env: name each plugin; `*` would hand any installed plugin the host's environment", at(k));
            }
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

/// `[jobs]`: `poll_failures` (a whole number, at least 1) and `max_backoff_s` (seconds, above 0);
/// unknown keys are refused so a typo does not silently leave the default in place.
fn parse_jobs(v: &toml::Value, at: &dyn Fn(&str) -> String) -> Result<JobSettings> {
    let t = v.as_table().ok_or_else(|| anyhow::anyhow!("{}: `jobs` must be a table ([jobs])", at("jobs")))?;
    let mut j = JobSettings { at: at("[jobs]"), ..Default::default() };
    for (k, v) in t {
        match k.as_str() {
            "poll_failures" => {
                let n = v.as_integer().filter(|n| (1..=i64::from(u32::MAX)).contains(n)).ok_or_else(|| {
                    anyhow::anyhow!("{}: [jobs] poll_failures must be a whole number of polls, at least 1, e.g. poll_failures = 20", at(k))
                })?;
                j.poll_failures = Some(n as u32);
            }
            "max_backoff_s" => {
                let n = v.as_float().or_else(|| v.as_integer().map(|i| i as f64)).filter(|n| n.is_finite() && *n > 0.0).ok_or_else(|| {
                    anyhow::anyhow!("{}: [jobs] max_backoff_s must be a positive number of seconds, e.g. max_backoff_s = 60", at(k))
                })?;
                j.max_backoff_s = Some(n);
            }
            "database" => {
                let url = v.as_str().filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://")).ok_or_else(|| {
                    anyhow::anyhow!("{}: [jobs] database must be a PostgreSQL URL, e.g. database = \"postgres://atelier@db.internal:5432/atelier\" (leave it out for SQLite in the state dir)", at(k))
                })?;
                j.database = Some(url.to_string());
            }
            "lease_s" => {
                let n = v.as_float().or_else(|| v.as_integer().map(|i| i as f64)).filter(|n| n.is_finite() && *n >= 0.3 && *n <= 3600.0).ok_or_else(|| {
                    anyhow::anyhow!("{}: [jobs] lease_s must be a number of seconds from 0.3 to 3600, e.g. lease_s = 30", at(k))
                })?;
                j.lease_s = Some(n);
            }
            other => bail!("{}: [jobs] has no setting `{other}`; the settings are poll_failures, max_backoff_s, database and lease_s", at(other)),
        }
    }
    Ok(j)
}

/// `[storage]`: `url` (`s3://bucket/prefix`), `endpoint`, `region`, and the credentials as
/// `env:`/`file:` sources (never the secret itself). Unknown keys are refused.
fn parse_storage(v: &toml::Value, text: &str, shown: &str) -> Result<StorageSettings> {
    const KEYS: &str = "url, endpoint, region, access_key_id, secret_access_key and session_token";
    let mut s = StorageSettings::default();
    // Lines of the section's own keys: `url` alone would also match a plugin's `base_url`.
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_section = t == "[storage]";
            if in_section {
                s.at.insert("[storage]".into(), format!("{shown}:{}", i + 1));
            }
        } else if in_section && let Some((k, _)) = t.split_once('=') {
            s.at.entry(k.trim().to_string()).or_insert_with(|| format!("{shown}:{}", i + 1));
        }
    }
    let t = v.as_table().ok_or_else(|| anyhow::anyhow!("{}: `storage` must be a table ([storage])", s.at("storage")))?;
    for (k, v) in t {
        let here = s.at(k);
        let text = v.as_str().ok_or_else(|| anyhow::anyhow!("{here}: [storage] {k} must be a string"))?;
        match k.as_str() {
            "url" => {
                let Some(rest) = text.strip_prefix("s3://") else {
                    bail!("{here}: [storage] url = \"{text}\" is not an object store URL; write url = \"s3://bucket/prefix\" (or remove it to keep artifacts under the state dir)");
                };
                let bucket = rest.split('/').next().unwrap_or_default();
                if bucket.len() < 3 {
                    bail!("{here}: [storage] url = \"{text}\": name the bucket (at least 3 characters), e.g. url = \"s3://atelier-artifacts/prod\"");
                }
                s.url = Some(text.trim_end_matches('/').to_string());
            }
            "endpoint" => {
                if !(text.starts_with("http://") || text.starts_with("https://")) {
                    bail!("{here}: [storage] endpoint = \"{text}\" must be an http:// or https:// URL, e.g. endpoint = \"https://s3.eu-west-1.example\"");
                }
                s.endpoint = Some(text.trim_end_matches('/').to_string());
            }
            "region" => s.region = Some(text.to_string()),
            "access_key_id" | "secret_access_key" | "session_token" => {
                let src = SecretSource::parse(text).with_context(|| format!("{here}: [storage] {k} (a credential is never written in the file itself)"))?;
                match k.as_str() {
                    "access_key_id" => s.access_key_id = Some(src),
                    "secret_access_key" => s.secret_access_key = Some(src),
                    _ => s.session_token = Some(src),
                }
            }
            other => bail!("{here}: [storage] has no setting `{other}`; the settings are {KEYS}"),
        }
    }
    if s.url.is_none() && !t.is_empty() {
        bail!("{}: [storage] has settings but no url; add url = \"s3://bucket/prefix\" (or remove the section to keep artifacts under the state dir)", s.at("[storage]"));
    }
    if s.access_key_id.is_some() != s.secret_access_key.is_some() {
        bail!("{}: [storage] needs both access_key_id and secret_access_key (or neither, for the machine's own role)", s.at(if s.access_key_id.is_some() { "access_key_id" } else { "secret_access_key" }));
    }
    Ok(s)
}

/// `[registries."host:port"]`: `username` + `password`, or `token`; secrets as `env:`/`file:`.
fn parse_registries(v: &toml::Value, at: &dyn Fn(&str) -> String) -> Result<BTreeMap<String, RegistrySettings>> {
    const SHAPE: &str = "write [registries.\"ghcr.io\"] username = \"me\", password = \"env:GHCR_TOKEN\" (or token = \"file:/run/secrets/ghcr\")";
    let t = v.as_table().ok_or_else(|| anyhow::anyhow!("{}: `registries` must be a table: {SHAPE}", at("registries")))?;
    let mut out = BTreeMap::new();
    for (host, section) in t {
        let here = at(host);
        let sec = section.as_table().ok_or_else(|| anyhow::anyhow!("{here}: [registries.\"{host}\"] must be a table: {SHAPE}"))?;
        if host.contains('/') || host.is_empty() {
            bail!("{here}: [registries.\"{host}\"]: name the registry as host or host:port, without a scheme or path");
        }
        let mut r = RegistrySettings { at: here.clone(), ..Default::default() };
        for (k, val) in sec {
            let text = val.as_str().ok_or_else(|| anyhow::anyhow!("{here}: [registries.\"{host}\"] {k} must be a string: {SHAPE}"))?;
            match k.as_str() {
                "username" => r.username = Some(text.to_string()),
                "password" | "token" => {
                    let src = SecretSource::parse(text).with_context(|| format!("{here}: [registries.\"{host}\"] {k} (a secret is never written in the file itself)"))?;
                    if k == "password" {
                        r.password = Some(src);
                    } else {
                        r.token = Some(src);
                    }
                }
                other => bail!("{here}: [registries.\"{host}\"] has no setting `{other}`; the settings are username, password and token"),
            }
        }
        if r.username.is_some() != r.password.is_some() {
            bail!("{here}: [registries.\"{host}\"] needs both username and password (or token alone)");
        }
        if r.token.is_some() && r.username.is_some() {
            bail!("{here}: [registries.\"{host}\"]: give username + password, or token, not both");
        }
        out.insert(host.clone(), r);
    }
    Ok(out)
}

/// `[server]`; unknown keys are refused so a typo never silently leaves the server open.
fn parse_server(t: &toml::Table, at: &dyn Fn(&str) -> String) -> Result<ServerSettings> {
    let mut s = ServerSettings { tokens_at: at("tokens"), ..Default::default() };
    for (k, v) in t {
        match k.as_str() {
            "listen" | "public_url" => {
                let text = v.as_str().ok_or_else(|| anyhow::anyhow!("{}: [server] {k} must be a string", at(k)))?.to_string();
                if k == "listen" {
                    s.listen = Some(text);
                } else {
                    s.public_url = Some(text.trim_end_matches('/').to_string());
                }
            }
            "max_body_mb" => {
                let n = v.as_integer().filter(|n| *n > 0).ok_or_else(|| anyhow::anyhow!("{}: [server] max_body_mb must be a positive whole number of MiB", at(k)))?;
                s.max_body_mb = Some(n as u64);
            }
            "tokens" => {
                let table = v
                    .as_table()
                    .ok_or_else(|| anyhow::anyhow!("{}: [server] tokens must be a table, e.g. tokens = {{ alice = \"env:ALICE_TOKEN\" }}", at(k)))?;
                for (name, src) in table {
                    let text = src.as_str().ok_or_else(|| anyhow::anyhow!("{}: [server] tokens.{name}: write \"env:VAR\" or \"file:PATH\"", at(name)))?;
                    let src = SecretSource::parse(text).with_context(|| format!("{}: [server] tokens.{name}", at(name)))?;
                    s.tokens.insert(name.clone(), src);
                }
            }
            "header_timeout_s" | "body_timeout_s" | "keep_results_h" => {
                let n = v.as_float().or_else(|| v.as_integer().map(|i| i as f64)).filter(|n| n.is_finite() && *n > 0.0).ok_or_else(|| {
                    anyhow::anyhow!("{}: [server] {k} must be a positive number ({}), e.g. {k} = {}", at(k), if k == "keep_results_h" { "hours" } else { "seconds" }, if k == "keep_results_h" { "1" } else { "30" })
                })?;
                match k.as_str() {
                    "header_timeout_s" => s.header_timeout_s = Some(n),
                    "body_timeout_s" => s.body_timeout_s = Some(n),
                    _ => s.keep_results_h = Some(n),
                }
            }
            "max_connections" | "max_queue" | "max_running" => {
                // max_queue = 0 is meaningful: no waiting at all, busy means 429 at once.
                let min = if k == "max_queue" { 0 } else { 1 };
                let n = v.as_integer().filter(|n| *n >= min).ok_or_else(|| anyhow::anyhow!("{}: [server] {k} must be a whole number, at least {min}, e.g. {k} = {}", at(k), if k == "max_connections" { 4096 } else { 32 }))?;
                match k.as_str() {
                    "max_connections" => s.max_connections = Some(n as u64),
                    "max_queue" => s.max_queue = Some(n as u64),
                    _ => s.max_running = Some(n as u64),
                }
            }
            other => bail!(
                "{}: [server] has no setting `{other}`; the settings are listen, tokens, public_url, max_body_mb, header_timeout_s, body_timeout_s, max_connections, max_queue, max_running and keep_results_h",
                at(other)
            ),
        }
    }
    Ok(s)
}

/// The line of each `[plugins.<id>.limits]` value, by (id, key), however the table was written
/// (section, inline table or dotted keys). Shape errors are reported by the main parse.
fn plugin_limit_lines(text: &str) -> BTreeMap<(String, String), usize> {
    #[derive(Deserialize, Default)]
    struct Doc {
        #[serde(default)]
        plugins: BTreeMap<String, Section>,
    }
    #[derive(Deserialize, Default)]
    struct Section {
        #[serde(default)]
        limits: BTreeMap<String, toml::Spanned<toml::Value>>,
    }
    let doc: Doc = toml::from_str(text).unwrap_or_default();
    doc.plugins
        .into_iter()
        .flat_map(|(id, section)| {
            section.limits.into_iter().map(move |(key, v)| ((id.clone(), key), line_at(text, v.span().start)))
        })
        .collect()
}

/// The 1-based line where `needle` first appears, for messages.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example() {
        let s = Settings::parse(
            r#"
[plugins.nano-banana]
base_url = "https://generativelanguage.googleapis.com"
model = "gemini-2.5-flash-image"
allow_hosts = ["https://europe-west4-generativelanguage.example"]
deny_hosts = []
[plugins.nano-banana.secrets]
GEMINI_API_KEY = "env:GEMINI_API_KEY"
"#,
            None,
        )
        .unwrap();
        let p = s.plugin("nano-banana");
        assert_eq!(p.config["model"], "gemini-2.5-flash-image");
        assert_eq!(p.allow_hosts.len(), 1);
        assert_eq!(p.secrets["GEMINI_API_KEY"].source, SecretSource::Env("GEMINI_API_KEY".into()));
        assert!(!p.config.contains_key("allow_hosts"));
    }

    #[test]
    fn reads_secret_bindings_and_from_env() {
        let s = Settings::parse(
            "[secrets]\nfrom_env = [\"nano-banana\"]\n[plugins.veo-3.secrets]\nGEMINI_API_KEY = { from = \"file:/run/k\", hosts = [\"https://proxy.example\"] }\n",
            None,
        )
        .unwrap();
        assert_eq!(s.secrets_from_env, vec!["nano-banana".to_string()]);
        let k = &s.plugin("veo-3").secrets["GEMINI_API_KEY"];
        assert_eq!(k.source, SecretSource::File("/run/k".into()));
        assert_eq!(k.hosts, vec![HostPattern::parse("https://proxy.example").unwrap()]);
        let e = Settings::parse("[secrets]\nfrom_env = [\"*\"]\n", Some(Path::new("a.toml"))).unwrap_err();
        assert!(format!("{e:#}").contains("a.toml:2") && format!("{e:#}").contains("name each plugin"), "{e:#}");
        let e = Settings::parse("[plugins.x.secrets]\nK = { form = \"env:K\" }\n", None).unwrap_err();
        assert!(format!("{e:#}").contains("no setting `form`"), "{e:#}");
        let e = Settings::parse("[secrets]\nGEMINI_API_KEY = \"env:G\"\n", None).unwrap_err();
        assert!(format!("{e:#}").contains("[plugins.<id>.secrets]"), "{e:#}");
    }

    #[test]
    fn reads_registry_credentials() {
        let s = Settings::parse("[registries.\"127.0.0.1:5000\"]\nusername = \"ci\"\npassword = \"env:REG_PASS\"\n[registries.\"ghcr.io\"]\ntoken = \"file:/run/t\"\n", None).unwrap();
        let r = &s.registries["127.0.0.1:5000"];
        assert_eq!((r.username.as_deref(), r.password.clone()), (Some("ci"), Some(SecretSource::Env("REG_PASS".into()))));
        assert_eq!(s.registries["ghcr.io"].token, Some(SecretSource::File("/run/t".into())));
        let e = Settings::parse("[registries.\"ghcr.io\"]\npassword = \"hunter2\"\n", None).unwrap_err();
        assert!(format!("{e:#}").contains("env:VAR"), "{e:#}");
        let e = Settings::parse("[registries.\"ghcr.io\"]\nuser = \"x\"\n", None).unwrap_err();
        assert!(format!("{e:#}").contains("no setting `user`"), "{e:#}");
    }

    #[test]
    fn reads_the_server_section() {
        let s = Settings::parse("[server]\nlisten = \"127.0.0.1:9\"\ntokens = { alice = \"env:A\", bob = \"file:/run/b\" }\n", None).unwrap();
        assert_eq!(s.server.listen.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(s.server.tokens["bob"], SecretSource::File("/run/b".into()));
        let e = Settings::parse("[server]\ntoken = {}\n", Some(Path::new("a.toml"))).unwrap_err();
        assert!(format!("{e:#}").contains("a.toml:2") && format!("{e:#}").contains("tokens"), "{e:#}");
    }

    #[test]
    fn reads_the_jobs_section() {
        let s = Settings::parse("[jobs]\npoll_failures = 3\nmax_backoff_s = 0.2\n", None).unwrap();
        assert_eq!((s.jobs.poll_failures, s.jobs.max_backoff_s), (Some(3), Some(0.2)));
        assert_eq!(Settings::parse("", None).unwrap().jobs.poll_failures, None);
        let e = Settings::parse("[jobs]\npoll_failures = 0\n", Some(Path::new("a.toml"))).unwrap_err();
        assert!(format!("{e:#}").contains("a.toml:2") && format!("{e:#}").contains("poll_failures = 20"), "{e:#}");
        let e = Settings::parse("[jobs]\npoll_failure = 3\n", None).unwrap_err();
        assert!(format!("{e:#}").contains("no setting `poll_failure`"), "{e:#}");
    }

    #[test]
    fn reads_the_shared_job_store_settings() {
        let s = Settings::parse("[jobs]\ndatabase = \"postgres://atelier@db:5432/atelier\"\nlease_s = 1.5\n", None).unwrap();
        assert_eq!((s.jobs.database.as_deref(), s.jobs.lease_s), (Some("postgres://atelier@db:5432/atelier"), Some(1.5)));
        let e = Settings::parse("[jobs]\ndatabase = \"mysql://db/atelier\"\n", Some(Path::new("a.toml"))).unwrap_err();
        assert!(format!("{e:#}").contains("[jobs] database must be a PostgreSQL URL"), "{e:#}");
        let e = Settings::parse("[jobs]\nlease_s = 0\n", None).unwrap_err();
        assert!(format!("{e:#}").contains("lease_s must be a number of seconds"), "{e:#}");
    }

    #[test]
    fn reads_the_storage_section() {
        let text = "[plugins.x]\nbase_url = \"https://a\"\n[storage]\nurl = \"s3://atelier-art/prod/\"\nendpoint = \"http://127.0.0.1:9\"\naccess_key_id = \"env:K\"\nsecret_access_key = \"file:/run/s\"\n";
        let s = Settings::parse(text, Some(Path::new("a.toml"))).unwrap();
        assert_eq!(s.storage.url.as_deref(), Some("s3://atelier-art/prod"));
        assert_eq!(s.storage.secret_access_key, Some(SecretSource::File("/run/s".into())));
        assert_eq!(s.storage.at("url"), "a.toml:4", "the section's own url, not the plugin's base_url");
        assert_eq!(Settings::parse("", None).unwrap().storage, StorageSettings::default());
        let e = Settings::parse("[storage]\nurl = \"s3://b\"\n", Some(Path::new("a.toml"))).unwrap_err();
        assert!(format!("{e:#}").contains("a.toml:2") && format!("{e:#}").contains("at least 3"), "{e:#}");
        let e = Settings::parse("[storage]\nurl = \"s3://bkt\"\nsecret_access_key = \"hunter2\"\n", Some(Path::new("a.toml"))).unwrap_err();
        assert!(format!("{e:#}").contains("a.toml:3") && format!("{e:#}").contains("env:VAR"), "{e:#}");
        let e = Settings::parse("[storage]\nurl = \"s3://bkt\"\nbucket = \"x\"\n", None).unwrap_err();
        assert!(format!("{e:#}").contains("no setting `bucket`"), "{e:#}");
        let e = Settings::parse("[storage]\nurl = \"s3://bkt\"\naccess_key_id = \"env:K\"\n", None).unwrap_err();
        assert!(format!("{e:#}").contains("both access_key_id and secret_access_key"), "{e:#}");
    }

    #[test]
    fn native_sha256_is_a_pin_not_a_setting() {
        let pin = "AB".repeat(32);
        let s = Settings::parse(&format!("[plugins.filters-native]\nnative_sha256 = \"{pin}\"\n"), Some(Path::new("/etc/a.toml"))).unwrap();
        let p = s.plugin("filters-native");
        assert_eq!(p.native_sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(p.native_sha256_at, "/etc/a.toml:2");
        assert!(!p.config.contains_key("native_sha256"), "the pin never reaches config.get");
        let e = Settings::parse("[plugins.f]\nnative_sha256 = \"abc\"\n", None).unwrap_err();
        assert!(format!("{e:#}").contains("64 hex digits"), "{e:#}");
    }

    #[test]
    fn bad_values_name_file_and_line() {
        let e = Settings::parse("[plugins.x]\nallow_hosts = [\"ftp://a\"]\n", Some(Path::new("/etc/atelier.toml"))).unwrap_err();
        assert!(format!("{e:#}").contains("/etc/atelier.toml:2"), "{e:#}");
        let e = Settings::parse("[plugins.x.secrets]\nK = \"vault:x\"\n", None).unwrap_err();
        assert!(format!("{e:#}").contains("env:VAR"), "{e:#}");
    }

    #[test]
    fn plugin_limits_keep_the_line_they_were_written_on() {
        let text = "[plugins.a]\nmodel = \"m\"\n[plugins.a.limits]\nmemory_mb = 512\n\n[plugins.b]\nlimits = { call_timeout_s = \"x\" }\n[plugins.c]\nlimits.max_in_flight = 0\n";
        let s = Settings::parse(text, Some(Path::new("/etc/atelier.toml"))).unwrap();
        assert_eq!(s.plugin("a").limits["memory_mb"], LimitOverride { value: toml::Value::Integer(512), at: "/etc/atelier.toml:4".into() });
        assert_eq!(s.plugin("b").limits["call_timeout_s"].at, "/etc/atelier.toml:7");
        assert_eq!(s.plugin("c").limits["max_in_flight"].at, "/etc/atelier.toml:9");
    }
}
