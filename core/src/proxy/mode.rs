//! Proxy modes as mitmproxy spells them: `regular` and `reverse:URL`.

use std::{fmt, str::FromStr};

use interpose_plugin_abi::{
    flow::{default_port, split_authority},
    HostPort,
};

/// How the proxy learns where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// An explicit HTTP proxy: clients send absolute-form requests (`GET http://host/path`).
    Regular,
    /// A reverse proxy in front of one server: clients talk to the proxy as if it were that
    /// server.
    Reverse(ReverseTarget),
    /// An explicit proxy whose server connections all go through another HTTP proxy
    /// (`upstream:http://HOST:PORT`): plain requests in absolute form, the rest with CONNECT.
    Upstream(ReverseTarget),
}

/// The server behind a reverse proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseTarget {
    /// `http` (TLS to upstream servers arrives with TLS support).
    pub scheme: &'static str,
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `host:port` as it goes in a `Host` header (IPv6 in brackets).
    pub authority: String,
}

impl ReverseTarget {
    /// The target `scheme://host:port`.
    pub fn new(scheme: &'static str, host: &str, port: u16) -> Self {
        ReverseTarget {
            scheme,
            host: host.to_string(),
            port,
            authority: HostPort(host, port).to_string(),
        }
    }
}

impl Mode {
    /// The mode's spec string, as `Client::proxy_mode` and logs show it.
    pub fn spec(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Regular => f.write_str("regular"),
            Mode::Reverse(target) => {
                write!(f, "reverse:{}://{}", target.scheme, target.authority)
            }
            Mode::Upstream(proxy) => write!(f, "upstream:{}://{}", proxy.scheme, proxy.authority),
        }
    }
}

/// A `--mode` value Interpose cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeError(String);

impl fmt::Display for ModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModeError {}

impl FromStr for Mode {
    type Err = ModeError;

    fn from_str(spec: &str) -> Result<Mode, ModeError> {
        let (name, data) = match spec.split_once(':') {
            Some((name, data)) => (name, Some(data)),
            None => (spec, None),
        };
        match (name, data) {
            ("regular", None) => Ok(Mode::Regular),
            ("reverse", Some(url)) => parse_reverse(url).map(Mode::Reverse),
            ("reverse", None) => Err(ModeError(
                "reverse mode needs a target: --mode reverse:http://host:port".into(),
            )),
            ("upstream", Some(url)) => parse_upstream(url).map(Mode::Upstream),
            ("upstream", None) => Err(ModeError(
                "upstream mode needs a proxy: --mode upstream:http://host:port".into(),
            )),
            ("socks5" | "transparent" | "wireguard" | "local" | "tun" | "dns", _) => {
                Err(ModeError(format!("mode {name:?} is not supported yet")))
            }
            _ => Err(ModeError(format!(
                "unknown mode {spec:?} (expected `regular`, `reverse:URL` or `upstream:URL`)"
            ))),
        }
    }
}

fn parse_reverse(url: &str) -> Result<ReverseTarget, ModeError> {
    // mitmproxy's default scheme for reverse targets is https.
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        other => {
            return Err(ModeError(format!(
                "reverse target {url:?}: unsupported scheme {other:?}"
            )))
        }
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') {
        return Err(ModeError(format!(
            "reverse target {url:?} must not have a path"
        )));
    }
    let (host, port) = split_authority(authority, default_port(scheme))
        .filter(|(host, _)| is_valid_host(host))
        .ok_or_else(|| ModeError(format!("reverse target {url:?}: invalid host or port")))?;
    Ok(ReverseTarget::new(scheme, host, port))
}

fn parse_upstream(url: &str) -> Result<ReverseTarget, ModeError> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(ModeError(format!(
            "upstream proxy {url:?}: only http:// proxies are supported"
        )));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = split_authority(authority, 8080)
        .filter(|(host, _)| is_valid_host(host) && !authority.contains('/'))
        .ok_or_else(|| ModeError(format!("upstream proxy {url:?}: invalid host or port")))?;
    Ok(ReverseTarget::new("http", host, port))
}

/// Whether `host`, as `split_authority` gives it (IPv6 without its brackets), can name a
/// server: an IPv6 address, or a name or IPv4 address made of letters, digits, `-`, `.`, `_`
/// and non-ASCII characters (internationalised names). As mitmproxy's `is_valid_host`, this
/// refuses an empty host and stray brackets, spaces or `@`, which also could not be written
/// back as the same authority.
pub(crate) fn is_valid_host(host: &str) -> bool {
    if host.contains(':') {
        return host.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') || b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!("regular".parse::<Mode>(), Ok(Mode::Regular));
        let reverse: Mode = "reverse:http://127.0.0.1:9000".parse().unwrap();
        assert_eq!(
            reverse,
            Mode::Reverse(ReverseTarget::new("http", "127.0.0.1", 9000))
        );
        assert_eq!(reverse.spec(), "reverse:http://127.0.0.1:9000");
        let default_port: Mode = "reverse:http://example.com/".parse().unwrap();
        assert_eq!(default_port.spec(), "reverse:http://example.com:80");
        let tls: Mode = "reverse:https://example.com".parse().unwrap();
        assert_eq!(tls.spec(), "reverse:https://example.com:443");
        let upstream: Mode = "upstream:http://127.0.0.1:3128".parse().unwrap();
        assert_eq!(upstream.spec(), "upstream:http://127.0.0.1:3128");
        let bare: Mode = "reverse:example.com".parse().unwrap();
        assert_eq!(bare, tls, "https is the default scheme, as in mitmproxy");
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        for bad in [
            "reverse",
            "reverse:http://example.com/path",
            "reverse:http://example.com:port",
            "upstream:https://proxy:8080",
            "bogus",
            // Found by fuzz/ (mode): hosts that name no server.
            "reverse:http://[]",
            "reverse:http://[]:8080",
            "reverse:http://[[\0htt]:8080/",
            "reverse:http://[a:b]",
            "reverse:http://a b:80",
            "reverse:http://user@host:80",
        ] {
            assert!(bad.parse::<Mode>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn specs_parse_back_to_their_mode() {
        for spec in [
            "regular",
            "reverse:http://h:1",
            "reverse:http://[::1]:8080/",
            "reverse:HTTP://Example.com",
            "reverse:http://b\u{fc}cher.example",
            "reverse:http://[a]",
        ] {
            let mode: Mode = spec.parse().unwrap();
            assert_eq!(mode.spec().parse::<Mode>(), Ok(mode), "{spec:?}");
        }
    }
}
