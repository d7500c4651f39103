//! Who may reach what: a plugin's hosts and secrets, as its manifest asks and the operator allows.
//!
//! The rules (docs/manifest.md, "Who receives what"):
//! - a host is reachable when the manifest or the operator's `allow_hosts` lists it, and the
//!   operator does not deny it; a loopback, private, link-local or metadata address only when the
//!   *operator* grants it (a manifest cannot grant itself the host's own network);
//! - a secret has a value only when the operator assigned one to this plugin id
//!   (`[plugins.<id>.secrets]`, or `[secrets] from_env` naming the id);
//! - it is sent only to the hosts the manifest binds it to, the same hosts moved to where the
//!   operator pointed a URL setting (`base_url`), and hosts the operator binds it to by name.
//!   `allow_hosts` alone makes a host reachable, never a secret's destination.

use super::hosts::HostPattern;
use crate::manifest::Manifest;
use crate::settings::{PluginSettings, SecretSource, Settings};
use std::collections::BTreeMap;

/// The effective grants of one plugin.
#[derive(Clone, Debug)]
pub struct Grants {
    /// Plugin id, for messages.
    pub plugin: String,
    /// The config file to cite in messages.
    pub config_path: String,
    /// Hosts the manifest asks for (minus the operator's denials, checked at use).
    pub manifest_hosts: Vec<HostPattern>,
    /// Hosts the operator adds with `allow_hosts`.
    pub operator_hosts: Vec<HostPattern>,
    /// Hosts the operator refuses with `deny_hosts`.
    pub denied: Vec<HostPattern>,
    /// Declared secrets with the hosts they may go to and where their value comes from.
    pub secrets: BTreeMap<String, SecretGrant>,
}

/// One declared secret.
#[derive(Clone, Debug)]
pub struct SecretGrant {
    /// Hosts it may be sent to, each with who bound it there.
    pub hosts: Vec<Binding>,
    /// Where the value is read; `None` when the operator assigned none to this plugin.
    pub source: Option<SecretSource>,
}

/// A host a secret may be sent to, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The host.
    pub host: HostPattern,
    /// Who bound it.
    pub by: BoundBy,
}

/// Who bound a secret to a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoundBy {
    /// The manifest's `[permissions.secrets]`.
    Manifest,
    /// The operator moved a manifest-bound URL setting (named here, e.g. `base_url`) to this origin.
    Setting(String),
    /// The operator's `[plugins.<id>.secrets] NAME = { hosts = [...] }`.
    Operator,
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.by {
            BoundBy::Manifest => write!(f, "{} (manifest)", self.host),
            BoundBy::Setting(key) => write!(f, "{} (operator's {key})", self.host),
            BoundBy::Operator => write!(f, "{} (operator)", self.host),
        }
    }
}

/// Why a secret could not be substituted.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretRefusal {
    /// The placeholder names a secret the manifest does not declare.
    Undeclared(String),
    /// The secret is not bound to this host.
    NotBound(String),
    /// The operator assigned no value to this plugin for it.
    Unassigned(String),
    /// The secret is assigned but has no value now.
    Missing(String),
}

impl Grants {
    /// Combine a manifest with the operator's settings for it.
    pub fn new(manifest: &Manifest, settings: &Settings) -> Grants {
        let ops = settings.plugin(&manifest.id);
        let from_env = settings.secrets_from_env.iter().any(|id| *id == manifest.id);
        let moved = moved_origins(manifest, &ops);
        let secrets = manifest
            .secrets
            .iter()
            .map(|(name, hosts)| {
                let assigned = ops.secrets.get(name);
                let source = assigned.map(|a| a.source.clone()).or_else(|| from_env.then(|| SecretSource::Env(name.clone())));
                let mut bound: Vec<Binding> = hosts.iter().map(|h| Binding { host: h.clone(), by: BoundBy::Manifest }).collect();
                for (key, from, to) in &moved {
                    if hosts.iter().any(|h| h.matches(from)) && !bound.iter().any(|b| b.host == *to) {
                        bound.push(Binding { host: to.clone(), by: BoundBy::Setting(key.clone()) });
                    }
                }
                for h in assigned.map(|a| a.hosts.as_slice()).unwrap_or_default() {
                    bound.push(Binding { host: h.clone(), by: BoundBy::Operator });
                }
                (name.clone(), SecretGrant { hosts: bound, source })
            })
            .collect();
        Grants {
            plugin: manifest.id.clone(),
            config_path: settings.shown_path(),
            manifest_hosts: manifest.hosts.clone(),
            operator_hosts: ops.allow_hosts.clone(),
            denied: ops.deny_hosts.clone(),
            secrets,
        }
    }

    /// Where secret `name` will really go: its bindings minus the operator's denials.
    pub fn destinations(&self, name: &str) -> Vec<&Binding> {
        let Some(s) = self.secrets.get(name) else { return vec![] };
        s.hosts.iter().filter(|b| !self.denied.iter().any(|d| *d == b.host)).collect()
    }

    /// The grant that lets this URL out, or the denial message with the line that would allow it.
    pub fn check_origin(&self, url: &url::Url) -> Result<&HostPattern, String> {
        if let Some(d) = self.denied.iter().find(|d| d.matches(url)) {
            let origin = HostPattern::origin_of(url);
            return Err(format!(
                "plugin `{}` may not reach {origin}: the operator denies `{d}` in {} ([plugins.{}] deny_hosts); remove it there to allow",
                self.plugin, self.config_path, self.plugin
            ));
        }
        self.operator_hosts
            .iter()
            .chain(self.manifest_hosts.iter())
            .find(|p| p.matches(url))
            .ok_or_else(|| {
                let origin = HostPattern::origin_of(url);
                format!(
                    "plugin `{}` may not reach {origin}: it is not in the plugin's manifest nor granted by the operator; to allow it add to {}:\n    [plugins.{}]\n    allow_hosts = [\"{origin}\"]",
                    self.plugin, self.config_path, self.plugin
                )
            })
    }

    /// Whether secret `name` may be sent to this URL (see the module's rules).
    pub fn secret_bound(&self, name: &str, url: &url::Url) -> bool {
        self.secrets.get(name).is_some_and(|s| {
            s.hosts.iter().any(|b| b.host.matches(url)) && !self.denied.iter().any(|d| d.matches(url))
        })
    }

    /// Whether the operator (not the manifest alone) grants a URL whose host is the sensitive
    /// address `addr`: an `allow_hosts` entry matching the URL that names the address (or
    /// `localhost`, for loopback).
    pub fn operator_names(&self, url: &url::Url, addr: std::net::IpAddr) -> bool {
        self.operator_hosts.iter().any(|p| p.matches(url) && p.names_address(addr)) && !self.denied.iter().any(|d| d.matches(url))
    }

    /// Replace `{{secret:NAME}}` placeholders in a header value for a request to `url`.
    pub fn substitute(&self, value: &str, url: &url::Url) -> Result<String, SecretRefusal> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("{{secret:") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 9..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = &after[..end];
            let grant = self.secrets.get(name).ok_or_else(|| SecretRefusal::Undeclared(name.to_string()))?;
            if !self.secret_bound(name, url) {
                return Err(SecretRefusal::NotBound(name.to_string()));
            }
            let source = grant.source.as_ref().ok_or_else(|| SecretRefusal::Unassigned(name.to_string()))?;
            let v = source.read().ok_or_else(|| SecretRefusal::Missing(name.to_string()))?;
            out.push_str(&v);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The message for a refusal, with the fix.
    pub fn explain(&self, refusal: &SecretRefusal, url: &url::Url) -> String {
        let origin = HostPattern::origin_of(url);
        match refusal {
            SecretRefusal::Undeclared(n) => format!(
                "plugin `{}` used secret `{n}`, which its plugin.toml does not declare under [permissions.secrets]; the request was not sent",
                self.plugin
            ),
            SecretRefusal::NotBound(n) => format!(
                "plugin `{}` tried to send secret `{n}` to {origin}, a host it is not bound to; the request was not sent. If that host is a legitimate endpoint for this key, bind it in {}:\n    [plugins.{}.secrets]\n    {n} = {{ from = \"{}\", hosts = [\"{origin}\"] }}",
                self.plugin,
                self.config_path,
                self.plugin,
                self.secrets.get(n).and_then(|s| s.source.as_ref()).map_or(format!("env:{n}"), |s| s.to_string())
            ),
            SecretRefusal::Unassigned(n) | SecretRefusal::Missing(n) => self.missing_secret_message(n),
        }
    }

    /// What to do when a secret has no value.
    pub fn missing_secret_message(&self, name: &str) -> String {
        match self.secrets.get(name).map(|s| &s.source) {
            Some(None) => format!(
                "secret {name} for plugin `{}` is not assigned: a plugin receives only the secrets the operator assigns to its id. Add to {}:\n    [plugins.{}.secrets]\n    {name} = \"env:{name}\"    # then export {name}=... (or \"file:/path/to/{}\")",
                self.plugin,
                self.config_path,
                self.plugin,
                name.to_ascii_lowercase()
            ),
            Some(Some(SecretSource::File(p))) => format!(
                "secret {name} for plugin `{}` is not available: the file {} is missing or empty ([plugins.{}.secrets] {name} in {})",
                self.plugin,
                p.display(),
                self.plugin,
                self.config_path
            ),
            Some(Some(SecretSource::Env(var))) => format!(
                "secret {name} for plugin `{}` is not set: export {var}=... , or read it from a file by adding to {}:\n    [plugins.{}.secrets]\n    {name} = \"file:/path/to/{}\"",
                self.plugin,
                self.config_path,
                self.plugin,
                name.to_ascii_lowercase()
            ),
            None => format!("plugin `{}` does not declare a secret named {name}", self.plugin),
        }
    }

    /// Secrets the manifest declares that have no value now (unassigned, or assigned but empty).
    pub fn missing_secrets(&self) -> Vec<String> {
        self.secrets.iter().filter(|(_, s)| s.source.as_ref().and_then(SecretSource::read).is_none()).map(|(n, _)| n.clone()).collect()
    }
}

/// URL settings the operator moved away from the manifest's default: `(key, default URL, new
/// origin as a pattern)`. A secret bound to the default's origin is bound to the new one too, so
/// pointing `base_url` at a proxy or regional endpoint carries the key there and nowhere else.
fn moved_origins(manifest: &Manifest, ops: &PluginSettings) -> Vec<(String, url::Url, HostPattern)> {
    let web = |text: &str| url::Url::parse(text).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    manifest
        .defaults
        .iter()
        .filter_map(|(key, default)| {
            let from = web(default)?;
            let to = web(ops.config.get(key)?)?;
            let to = HostPattern::parse(&HostPattern::origin_of(&to)).ok()?;
            (!to.matches(&from)).then(|| (key.clone(), from, to))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn grants(ops: &str) -> Grants {
        let m = Manifest::parse(
            r#"id = "g"
version = "1"
contract = "0.1.0"
kind = "model"
[permissions]
hosts = ["https://api.example.com", "https://cdn.example.net"]
[permissions.secrets]
KEY = ["https://api.example.com"]
[defaults]
base_url = "https://api.example.com"
"#,
            Path::new("/p/plugin.toml"),
        )
        .unwrap();
        let s = crate::settings::Settings::parse(ops, None).unwrap();
        Grants::new(&m, &s)
    }

    fn u(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn origin_checks_and_denials_print_the_fix() {
        let g = grants("[plugins.g]\ndeny_hosts = [\"https://cdn.example.net\"]\nallow_hosts = [\"http://127.0.0.1:9\"]\n");
        assert!(g.check_origin(&u("https://api.example.com/x")).is_ok());
        assert!(g.check_origin(&u("http://127.0.0.1:9/x")).is_ok());
        let e = g.check_origin(&u("https://evil.example.org/x")).unwrap_err();
        assert!(e.contains("allow_hosts = [\"https://evil.example.org\"]"), "{e}");
        let e = g.check_origin(&u("https://cdn.example.net/x")).unwrap_err();
        assert!(e.contains("deny_hosts"), "{e}");
    }

    #[test]
    fn secrets_go_only_to_bound_hosts() {
        let g = grants("[plugins.g.secrets]\nKEY = \"env:ATELIER_TEST_GRANTS_KEY\"\n");
        unsafe { std::env::set_var("ATELIER_TEST_GRANTS_KEY", "s3cret") };
        assert_eq!(g.substitute("Bearer {{secret:KEY}}", &u("https://api.example.com/")).unwrap(), "Bearer s3cret");
        assert_eq!(g.substitute("{{secret:KEY}}", &u("https://cdn.example.net/")), Err(SecretRefusal::NotBound("KEY".into())));
        assert_eq!(g.substitute("{{secret:OTHER}}", &u("https://api.example.com/")), Err(SecretRefusal::Undeclared("OTHER".into())));
        assert_eq!(g.substitute("plain", &u("https://cdn.example.net/")).unwrap(), "plain");
    }

    #[test]
    fn missing_secret_names_env_var_and_config_line() {
        let g = grants("[plugins.g.secrets]\nKEY = \"env:ATELIER_TEST_GRANTS_UNSET\"\n");
        let m = g.explain(&SecretRefusal::Missing("KEY".into()), &u("https://api.example.com/"));
        assert!(m.contains("export ATELIER_TEST_GRANTS_UNSET=") && m.contains("[plugins.g.secrets]"), "{m}");
    }

    #[test]
    fn a_secret_has_a_value_only_when_the_operator_assigns_it_to_this_plugin() {
        unsafe { std::env::set_var("KEY", "from-the-environment") };
        let url = u("https://api.example.com/");
        // Declared by the manifest, in the environment, but assigned by nobody: nothing.
        let g = grants("");
        assert_eq!(g.substitute("{{secret:KEY}}", &url), Err(SecretRefusal::Unassigned("KEY".into())));
        assert_eq!(g.missing_secrets(), vec!["KEY".to_string()]);
        let m = g.missing_secret_message("KEY");
        assert!(m.contains("not assigned") && m.contains("[plugins.g.secrets]\n    KEY = \"env:KEY\""), "{m}");
        // Another plugin's assignment or from_env listing gives this one nothing.
        let g = grants("[secrets]\nfrom_env = [\"other\"]\n[plugins.other.secrets]\nKEY = \"env:KEY\"\n");
        assert_eq!(g.substitute("{{secret:KEY}}", &url), Err(SecretRefusal::Unassigned("KEY".into())));
        // The operator's choice: from_env naming this id, or its own section.
        let g = grants("[secrets]\nfrom_env = [\"g\"]\n");
        assert_eq!(g.substitute("{{secret:KEY}}", &url).unwrap(), "from-the-environment");
        let g = grants("[plugins.g.secrets]\nKEY = \"env:KEY\"\n");
        assert_eq!(g.substitute("{{secret:KEY}}", &url).unwrap(), "from-the-environment");
    }

    #[test]
    fn allow_hosts_opens_a_host_without_sending_it_secrets() {
        unsafe { std::env::set_var("ATELIER_TEST_GRANTS_K2", "v") };
        let g = grants("[plugins.g]\nallow_hosts = [\"https://storage.example\"]\n[plugins.g.secrets]\nKEY = \"env:ATELIER_TEST_GRANTS_K2\"\n");
        assert!(g.check_origin(&u("https://storage.example/x")).is_ok());
        assert_eq!(g.substitute("{{secret:KEY}}", &u("https://storage.example/x")), Err(SecretRefusal::NotBound("KEY".into())));
        let m = g.explain(&SecretRefusal::NotBound("KEY".into()), &u("https://storage.example/x"));
        assert!(m.contains("KEY = { from = \"env:ATELIER_TEST_GRANTS_K2\", hosts = [\"https://storage.example\"] }"), "{m}");
        // Bound by name: now it goes there.
        let g = grants(
            "[plugins.g]\nallow_hosts = [\"https://storage.example\"]\n[plugins.g.secrets]\nKEY = { from = \"env:ATELIER_TEST_GRANTS_K2\", hosts = [\"https://storage.example\"] }\n",
        );
        assert_eq!(g.substitute("{{secret:KEY}}", &u("https://storage.example/x")).unwrap(), "v");
        assert_eq!(g.destinations("KEY").iter().map(|b| b.to_string()).collect::<Vec<_>>(), vec![
            "https://api.example.com (manifest)".to_string(),
            "https://storage.example (operator)".to_string()
        ]);
    }

    #[test]
    fn a_base_url_override_carries_the_manifest_binding_to_the_new_origin_only() {
        unsafe { std::env::set_var("ATELIER_TEST_GRANTS_K3", "v") };
        let g = grants(
            "[plugins.g]\nbase_url = \"http://127.0.0.1:8700/api\"\nallow_hosts = [\"http://127.0.0.1:8700\", \"http://127.0.0.1:8701\"]\n[plugins.g.secrets]\nKEY = \"env:ATELIER_TEST_GRANTS_K3\"\n",
        );
        assert_eq!(g.substitute("{{secret:KEY}}", &u("http://127.0.0.1:8700/api/x")).unwrap(), "v");
        assert_eq!(g.substitute("{{secret:KEY}}", &u("http://127.0.0.1:8701/x")), Err(SecretRefusal::NotBound("KEY".into())));
        assert!(g.destinations("KEY").iter().any(|b| b.to_string() == "http://127.0.0.1:8700 (operator's base_url)"));
        // Denied hosts are not destinations.
        let g = grants("[plugins.g]\ndeny_hosts = [\"https://api.example.com\"]\n");
        assert!(g.destinations("KEY").is_empty());
    }
}
