//! `Host` and `Origin` checks: the DNS-rebinding protection of the MCP endpoint.

/// One allowed origin: scheme, host, and a port or any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OriginPattern {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl OriginPattern {
    /// Parses `scheme://host[:port]` or `scheme://host:*`; `None` if it is not one.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https") || rest.contains('/') {
            return None;
        }
        let (host, port) = split_host_port(rest)?;
        let port = match port {
            Some("*") => None,
            Some(p) => Some(p.parse().ok()?),
            None => Some(if scheme == "https" { 443 } else { 80 }),
        };
        Some(OriginPattern { scheme, host, port })
    }

    fn matches(&self, origin: &OriginPattern) -> bool {
        self.scheme == origin.scheme
            && self.host == origin.host
            && (self.port.is_none() || self.port == origin.port)
    }
}

/// The compiled allow-lists.
#[derive(Debug, Clone)]
pub(crate) struct HostOriginPolicy {
    hosts: Vec<(String, Option<u16>)>,
    origins: Vec<OriginPattern>,
    allow_null_origin: bool,
}

impl HostOriginPolicy {
    pub(crate) fn new(allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        HostOriginPolicy {
            hosts: allowed_hosts
                .iter()
                .filter_map(|h| {
                    let (host, port) = split_host_port(h)?;
                    Some((host, port.and_then(|p| p.parse().ok())))
                })
                .collect(),
            origins: allowed_origins
                .iter()
                .filter_map(|o| OriginPattern::parse(o))
                .collect(),
            allow_null_origin: allowed_origins.iter().any(|o| o == "null"),
        }
    }

    /// `true` when `host` (the `Host` header or URI authority) is allowed. An empty list allows all.
    pub(crate) fn host_allowed(&self, host: &str) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let Some((name, port)) = split_host_port(host) else {
            return false;
        };
        let port: Option<u16> = match port {
            Some(p) => match p.parse() {
                Ok(p) => Some(p),
                Err(_) => return false,
            },
            None => None,
        };
        self.hosts.iter().any(|(allowed, allowed_port)| {
            *allowed == name && (allowed_port.is_none() || *allowed_port == port)
        })
    }

    /// `true` when the `Origin` header value is allowed.
    pub(crate) fn origin_allowed(&self, origin: &str) -> bool {
        if origin == "null" {
            return self.allow_null_origin;
        }
        OriginPattern::parse(origin)
            .filter(|o| o.port.is_some())
            .is_some_and(|o| self.origins.iter().any(|allowed| allowed.matches(&o)))
    }
}

/// Splits `host[:port]` (IPv6 in brackets), lower-casing the host and dropping the one trailing
/// dot of a fully qualified name (`mcp.contoso.com.` is `mcp.contoso.com`, RFC 1034 §3.1).
/// `None` if malformed.
fn split_host_port(text: &str) -> Option<(String, Option<&str>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{v6}]"), port)
    } else {
        let (h, p) = match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        (h.strip_suffix('.').unwrap_or(h).to_owned(), p)
    };
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HostOriginPolicy {
        HostOriginPolicy::new(
            &[
                "mcp.contoso.com".into(),
                "localhost".into(),
                "127.0.0.1:8000".into(),
                "[::1]".into(),
            ],
            &["https://app.contoso.com".into(), "http://localhost:*".into()],
        )
    }

    #[test]
    fn hosts_match_by_name_and_optional_port() {
        let p = policy();
        assert!(p.host_allowed("mcp.contoso.com"));
        assert!(p.host_allowed("MCP.Contoso.com:443"));
        assert!(p.host_allowed("localhost:1234"));
        assert!(p.host_allowed("127.0.0.1:8000"));
        assert!(!p.host_allowed("127.0.0.1:8001"));
        assert!(p.host_allowed("[::1]:8000"));
        assert!(!p.host_allowed("evil.example"));
        assert!(!p.host_allowed("mcp.contoso.com.evil.example"));
        assert!(!p.host_allowed("localhost:notaport"));
    }

    #[test]
    fn a_trailing_dot_fqdn_is_the_same_name() {
        let p = policy();
        for (host, allowed) in [
            ("mcp.contoso.com.", true),
            ("MCP.contoso.com.:443", true),
            ("localhost.:8000", true),
            ("mcp.contoso.com..", false),
            (".", false),
            ("evil.example.", false),
        ] {
            assert_eq!(p.host_allowed(host), allowed, "{host}");
        }
        let trailing =
            HostOriginPolicy::new(&["mcp.contoso.com.".into()], &["https://mcp.contoso.com.".into()]);
        assert!(trailing.host_allowed("mcp.contoso.com"));
        assert!(trailing.origin_allowed("https://mcp.contoso.com"));
        assert!(p.origin_allowed("https://app.contoso.com."));
        assert!(!p.origin_allowed("https://app.contoso.com.."));
    }

    #[test]
    fn origins_match_scheme_host_and_port() {
        let p = policy();
        assert!(p.origin_allowed("https://app.contoso.com"));
        assert!(p.origin_allowed("https://app.contoso.com:443"));
        assert!(!p.origin_allowed("http://app.contoso.com"));
        assert!(!p.origin_allowed("https://app.contoso.com:8443"));
        assert!(p.origin_allowed("http://localhost:6274"));
        assert!(!p.origin_allowed("https://evil.example"));
        assert!(!p.origin_allowed("null"));
        assert!(!p.origin_allowed("garbage"));
    }

    #[test]
    fn null_origin_only_when_listed() {
        let p = HostOriginPolicy::new(&[], &["null".into()]);
        assert!(p.origin_allowed("null"));
        assert!(p.host_allowed("anything"));
    }
}
