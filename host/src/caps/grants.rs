//! Who may reach what: a plugin's hosts and secrets, as its manifest asks and the operator allows.

use super::hosts::HostPattern;
use crate::manifest::Manifest;
use crate::settings::{PluginSettings, SecretSource};
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
    /// Declared secrets with the hosts the manifest binds them to and where their value comes from.
    pub secrets: BTreeMap<String, SecretGrant>,
}

/// One declared secret.
#[derive(Clone, Debug)]
pub struct SecretGrant {
    /// Hosts the manifest binds it to.
    pub hosts: Vec<HostPattern>,
    /// Where the value is read (default: the env var of the same name).
    pub source: SecretSource,
}

/// Why a secret could not be substituted.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretRefusal {
    /// The placeholder names a secret the manifest does not declare.
    Undeclared(String),
    /// The secret is not bound to this host.
    NotBound(String),
    /// The secret has no value.
    Missing(String),
}

impl Grants {
    /// Combine a manifest with the operator's section for it.
    pub fn new(manifest: &Manifest, ops: &PluginSettings, config_path: String) -> Grants {
        let secrets = manifest
            .secrets
            .iter()
            .map(|(name, hosts)| {
                let source = ops.secrets.get(name).cloned().unwrap_or_else(|| SecretSource::Env(name.clone()));
                (name.clone(), SecretGrant { hosts: hosts.clone(), source })
            })
            .collect();
        Grants {
            plugin: manifest.id.clone(),
            config_path,
            manifest_hosts: manifest.hosts.clone(),
            operator_hosts: ops.allow_hosts.clone(),
            denied: ops.deny_hosts.clone(),
            secrets,
        }
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

    /// Whether secret `name` may be sent to this URL: hosts its manifest binds it to, plus hosts the
    /// operator grants the plugin (a regional endpoint or proxy needs the same key).
    pub fn secret_bound(&self, name: &str, url: &url::Url) -> bool {
        self.secrets.get(name).is_some_and(|s| {
            s.hosts.iter().chain(self.operator_hosts.iter()).any(|p| p.matches(url))
                && !self.denied.iter().any(|d| d.matches(url))
        })
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
            let v = grant.source.read().ok_or_else(|| SecretRefusal::Missing(name.to_string()))?;
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
                "plugin `{}` tried to send secret `{n}` to {origin}, a host it is not bound to; the request was not sent. If that host is a legitimate endpoint for this key, grant it in {}:\n    [plugins.{}]\n    allow_hosts = [\"{origin}\"]",
                self.plugin, self.config_path, self.plugin
            ),
            SecretRefusal::Missing(n) => self.missing_secret_message(n),
        }
    }

    /// What to do when a secret has no value.
    pub fn missing_secret_message(&self, name: &str) -> String {
        match self.secrets.get(name).map(|s| &s.source) {
            Some(SecretSource::File(p)) => format!(
                "secret {name} for plugin `{}` is not available: the file {} is missing or empty ([plugins.{}.secrets] {name} in {})",
                self.plugin,
                p.display(),
                self.plugin,
                self.config_path
            ),
            Some(SecretSource::Env(var)) => format!(
                "secret {name} for plugin `{}` is not set: export {var}=... , or read it from a file by adding to {}:\n    [plugins.{}.secrets]\n    {name} = \"file:/path/to/{}\"",
                self.plugin,
                self.config_path,
                self.plugin,
                name.to_ascii_lowercase()
            ),
            None => format!("plugin `{}` does not declare a secret named {name}", self.plugin),
        }
    }

    /// Secrets the manifest declares that have no value now.
    pub fn missing_secrets(&self) -> Vec<String> {
        self.secrets.iter().filter(|(_, s)| s.source.read().is_none()).map(|(n, _)| n.clone()).collect()
    }
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
"#,
            Path::new("/p/plugin.toml"),
        )
        .unwrap();
        let s = crate::settings::Settings::parse(ops, None).unwrap();
        Grants::new(&m, &s.plugin("g"), "atelier.toml".into())
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
        let g = grants("");
        let m = g.explain(&SecretRefusal::Missing("KEY".into()), &u("https://api.example.com/"));
        assert!(m.contains("export KEY=") && m.contains("[plugins.g.secrets]"), "{m}");
    }
}
