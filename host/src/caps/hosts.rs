//! `scheme://host[:port]` patterns: what a plugin may reach.

use anyhow::{Result, bail};
use std::net::IpAddr;

/// One allowed origin, possibly with a wildcard: `https://*.bfl.ai`, `http://127.0.0.1:8700`,
/// `http://localhost:*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    /// `http` or `https`.
    pub scheme: String,
    /// Lowercase host; a leading `*.` matches one or more labels.
    pub host: String,
    /// Port; `None` means any port.
    pub port: Option<u16>,
}

impl HostPattern {
    /// Parse a pattern; the port defaults to the scheme's.
    pub fn parse(text: &str) -> Result<HostPattern> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| anyhow::anyhow!("`{text}` is not a host pattern: write scheme://host[:port], e.g. https://api.bfl.ai"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            bail!("`{text}`: only http and https hosts can be granted");
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            bail!("`{text}`: a host pattern has no path, query or user; write scheme://host[:port]");
        }
        let (host, port) = split_host_port(rest);
        let port = match port {
            None => Some(if scheme == "https" { 443 } else { 80 }),
            Some("*") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| anyhow::anyhow!("`{text}`: bad port `{p}`"))?),
        };
        // IPv6 literals are kept without brackets, as `url` reports them.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if host.is_empty() || host[host.starts_with("*.") as usize * 2..].contains('*') {
            bail!("`{text}`: the only wildcard allowed is a leading `*.`");
        }
        Ok(HostPattern { scheme, host, port })
    }

    /// Whether a URL's origin matches.
    pub fn matches(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        // `url` already lowercases host names; this runs on every request, so it allocates nothing.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if url.scheme() != self.scheme {
            return false;
        }
        if let Some(p) = self.port {
            if url.port_or_known_default() != Some(p) {
                return false;
            }
        }
        match self.host.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() + 1 && host.ends_with(suffix) && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
            None => host == self.host,
        }
    }

    /// Whether the pattern names this exact address or `localhost`, which is what it takes to reach
    /// loopback, private, link-local or metadata addresses.
    pub fn names_address(&self, addr: IpAddr) -> bool {
        if self.host == "localhost" {
            return addr.is_loopback();
        }
        self.host.parse::<IpAddr>().ok() == Some(addr)
    }

    /// The origin of a URL, written as a pattern (for "add this line" messages).
    pub fn origin_of(url: &url::Url) -> String {
        let host = url.host_str().unwrap_or("");
        match url.port() {
            Some(p) => format!("{}://{host}:{p}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let default = if self.scheme == "https" { 443 } else { 80 };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        match self.port {
            Some(p) if p == default => write!(f, "{}://{host}", self.scheme),
            Some(p) => write!(f, "{}://{host}:{p}", self.scheme),
            None => write!(f, "{}://{host}:*", self.scheme),
        }
    }
}

fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(end) = s.strip_prefix('[').and_then(|r| r.find(']')) {
        let host = &s[..end + 2];
        return (host, s[end + 2..].strip_prefix(':'));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    }
}

/// Whether an address is one a plugin reaches only when a grant names it (loopback, private,
/// link-local, cloud metadata, unspecified, multicast).
pub fn is_sensitive(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            a.is_loopback() || a.is_private() || a.is_link_local() || a.is_unspecified() || a.is_multicast()
                || a.is_broadcast() || a.octets()[0] == 100 && (a.octets()[1] & 0xC0) == 64 // CGNAT
                || a.octets()[0] == 0
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            a.is_loopback() || a.is_unspecified() || a.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local (incl. fd00:ec2::254 metadata)
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || a.to_ipv4_mapped().is_some_and(|v4| is_sensitive(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn exact_and_wildcard_patterns() {
        let p = HostPattern::parse("https://*.bfl.ai").unwrap();
        assert!(p.matches(&u("https://api.eu1.bfl.ai/v1/x")));
        assert!(!p.matches(&u("https://bfl.ai/")));
        assert!(!p.matches(&u("https://evilbfl.ai/")));
        assert!(!p.matches(&u("http://api.bfl.ai/")));
        assert!(!p.matches(&u("https://api.bfl.ai:8443/")));
        let q = HostPattern::parse("http://127.0.0.1:8700").unwrap();
        assert!(q.matches(&u("http://127.0.0.1:8700/a")));
        assert!(!q.matches(&u("http://127.0.0.1:8701/a")));
        let any = HostPattern::parse("http://localhost:*").unwrap();
        assert!(any.matches(&u("http://localhost:1234/")));
        assert_eq!(any.to_string(), "http://localhost:*");
        assert_eq!(HostPattern::parse("https://a.b:443").unwrap().to_string(), "https://a.b");
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(HostPattern::parse("api.bfl.ai").is_err());
        assert!(HostPattern::parse("ftp://x").is_err());
        assert!(HostPattern::parse("https://a.*.b").is_err());
        assert!(HostPattern::parse("https://a.b/path").is_err());
    }

    #[test]
    fn sensitive_addresses() {
        for a in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fd00:ec2::254", "0.0.0.0"] {
            assert!(is_sensitive(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "142.250.1.1", "2001:4860::1"] {
            assert!(!is_sensitive(a.parse().unwrap()), "{a}");
        }
        assert!(HostPattern::parse("http://127.0.0.1:1").unwrap().names_address("127.0.0.1".parse().unwrap()));
        assert!(!HostPattern::parse("https://*.x.com").unwrap().names_address("127.0.0.1".parse().unwrap()));
    }
}
