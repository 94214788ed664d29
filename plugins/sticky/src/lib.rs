//! Built-in addons `stickycookie` and `stickyauth` (mitmproxy's StickyCookie and StickyAuth):
//! with a filter set, the proxy keeps the cookies servers set and the `Authorization` clients
//! sent, and adds them to later matching requests that lack them, so that a client without
//! them (a script, curl) acts in the session of one that had them.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, PoisonError, RwLock},
};

use interpose_plugin_abi::{cookies, prelude::*, time, ConfigureData, Filter};

/// A filter option, compiled when it changes.
#[derive(Default)]
struct FilterOption(RwLock<Option<std::sync::Arc<Filter>>>);

impl FilterOption {
    fn configure(&self, ctx: &Context, data: &mut ConfigureData, name: &str) {
        if !data.contains(name) {
            return;
        }
        match ctx.filter_option(name) {
            Ok(filter) => {
                *self.0.write().unwrap_or_else(PoisonError::into_inner) =
                    filter.map(std::sync::Arc::new)
            }
            Err(why) => data.reject(why),
        }
    }

    fn get(&self) -> Option<std::sync::Arc<Filter>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Where a cookie applies: (domain, port, path).
type Origin = (String, u16, String);

/// mitmproxy's StickyCookie.
#[derive(Default)]
pub struct StickyCookie {
    filter: FilterOption,
    jar: Mutex<HashMap<Origin, BTreeMap<String, String>>>,
}

/// RFC 2965 domain matching, as mitmproxy applies it (also against the domain without its
/// leading dot).
fn domain_match(host: &str, domain: &str) -> bool {
    let (a, b) = (host.to_ascii_lowercase(), domain.to_ascii_lowercase());
    if a == b || a == b.trim_matches('.') {
        return true;
    }
    let is_name =
        |s: &str| !s.is_empty() && !s.ends_with('.') && s.parse::<std::net::IpAddr>().is_err();
    is_name(&a) && b.starts_with('.') && is_name(&b[1..]) && a.ends_with(&b) && a.len() > b.len()
}

/// Whether a Set-Cookie's attributes say it has expired (`Max-Age` at most 0, or an
/// `Expires` date now or past).
fn is_expired(attrs: &cookies::CookieAttrs) -> bool {
    if let Some(Some(max_age)) = attrs.get("max-age") {
        if let Ok(seconds) = max_age.trim().parse::<i64>() {
            return seconds <= 0;
        }
    }
    match attrs
        .get("expires")
        .flatten()
        .and_then(time::parse_http_date)
    {
        Some(when) => when <= time::now(),
        None => false,
    }
}

#[addon]
impl Addon for StickyCookie {
    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "stickycookie",
            None::<String>,
            "Set sticky cookie filter. Matched against requests.",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        self.filter.configure(ctx, data, "stickycookie");
    }

    fn response(&self, _ctx: &Context, flow: &mut HttpFlow) {
        if self.filter.get().is_none() {
            return;
        }
        let Some(response) = flow.response() else {
            return;
        };
        let host = flow.request.host().to_string();
        let port = flow.request.port;
        let mut jar = self.jar.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, (value, attrs)) in response.cookies().fields() {
            let domain = attrs.get("domain").flatten().unwrap_or(&host).to_string();
            let path = attrs.get("path").flatten().unwrap_or("/").to_string();
            if !domain_match(&host, &domain) {
                continue;
            }
            let origin = (domain, port, path);
            if is_expired(attrs) {
                if let Some(cookies) = jar.get_mut(&origin) {
                    cookies.remove(name);
                    if cookies.is_empty() {
                        jar.remove(&origin);
                    }
                }
            } else {
                jar.entry(origin)
                    .or_default()
                    .insert(name.clone(), value.clone());
            }
        }
    }

    fn request(&self, _ctx: &Context, flow: &mut HttpFlow) {
        let Some(filter) = self.filter.get() else {
            return;
        };
        if !filter.matches(flow) {
            return;
        }
        let pairs: Vec<(String, String)> = {
            let jar = self.jar.lock().unwrap_or_else(PoisonError::into_inner);
            let (host, port, path) = (flow.request.host(), flow.request.port, flow.request.path());
            jar.iter()
                .filter(|((domain, p, prefix), _)| {
                    domain_match(host, domain) && *p == port && path.starts_with(prefix.as_str())
                })
                .flat_map(|(_, cookies)| cookies.iter().map(|(n, v)| (n.clone(), v.clone())))
                .collect()
        };
        if !pairs.is_empty() {
            flow.metadata.insert("stickycookie", "true");
            flow.request
                .headers
                .insert("cookie", cookies::format_cookie_header(&pairs));
        }
    }
}

/// mitmproxy's StickyAuth.
#[derive(Default)]
pub struct StickyAuth {
    filter: FilterOption,
    hosts: Mutex<HashMap<String, Vec<u8>>>,
}

#[addon]
impl Addon for StickyAuth {
    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "stickyauth",
            None::<String>,
            "Set sticky auth filter. Matched against requests.",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        self.filter.configure(ctx, data, "stickyauth");
    }

    fn request(&self, _ctx: &Context, flow: &mut HttpFlow) {
        let Some(filter) = self.filter.get() else {
            return;
        };
        let host = flow.request.host().to_string();
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = flow.request.headers.get_bytes("authorization") {
            hosts.insert(host, value.to_vec());
        } else if filter.matches(flow) {
            if let Some(value) = hosts.get(&host) {
                flow.request.headers.insert("authorization", value);
            }
        }
    }
}

export_plugin!(addons = [StickyAuth::default(), StickyCookie::default()]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_match_as_rfc_2965_says() {
        assert!(domain_match("example.com", "example.com"));
        assert!(domain_match("www.example.com", ".example.com"));
        assert!(domain_match("example.com", ".example.com"));
        assert!(!domain_match("example.com", "www.example.com"));
        assert!(!domain_match("badexample.com", ".example.com"));
        assert!(!domain_match("10.0.0.1", ".0.0.1"));
    }

    #[test]
    fn expiry() {
        let attrs = |line: &str| {
            cookies::parse_set_cookie_header(line)
                .pop()
                .map(|(_, _, attrs)| attrs)
                .unwrap()
        };
        assert!(is_expired(&attrs("a=b; Max-Age=0")));
        assert!(is_expired(&attrs(
            "a=b; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        )));
        assert!(!is_expired(&attrs(
            "a=b; Expires=Fri, 01 Jan 2100 00:00:00 GMT"
        )));
        assert!(!is_expired(&attrs("a=b")));
    }
}
