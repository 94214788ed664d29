//! Built-in addon `proxyauth` (mitmproxy's ProxyAuth): with `proxyauth` set, clients must
//! send HTTP Basic credentials. As a proxy (regular and upstream modes) it answers `407` with
//! `Proxy-Authenticate` and reads `Proxy-Authorization`; as a reverse proxy, `401` with
//! `WWW-Authenticate` and `Authorization`. The credentials header is removed before the
//! request goes on. A client connection authenticated by its `CONNECT` stays authenticated
//! for the requests inside the tunnel.
//!
//! `proxyauth` is `user:pass` (one user) or `any` (any user and password: a name for the
//! logs). mitmproxy's `@htpasswd` files and LDAP are not supported: such a value is refused.

use std::{
    collections::HashSet,
    sync::{Mutex, PoisonError, RwLock},
};

use interpose_plugin_abi::{prelude::*, ConfigureData, Uuid};

/// The realm clients are told about.
const REALM: &str = "mitmproxy";

/// Who may pass.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Validator {
    Any,
    User { name: String, password: String },
}

impl Validator {
    fn parse(spec: &str) -> Result<Validator, String> {
        if spec == "any" {
            return Ok(Validator::Any);
        }
        if spec.starts_with('@') || spec.starts_with("ldap") {
            return Err(format!(
                "proxyauth {spec:?}: htpasswd files and LDAP are not supported by Interpose \
                 (use user:pass or any)"
            ));
        }
        match spec.split(':').collect::<Vec<_>>().as_slice() {
            [name, password] => Ok(Validator::User {
                name: name.to_string(),
                password: password.to_string(),
            }),
            [_] => Err("Invalid proxyauth specification.".to_string()),
            _ => Err("Invalid single-user auth specification.".to_string()),
        }
    }

    fn accepts(&self, user: &str, password: &str) -> bool {
        match self {
            Validator::Any => true,
            Validator::User { name, password: p } => name == user && p == password,
        }
    }
}

/// The addon: the parsed option and the client connections a `CONNECT` authenticated.
#[derive(Default)]
pub struct ProxyAuth {
    validator: RwLock<Option<Validator>>,
    authenticated: Mutex<HashSet<Uuid>>,
}

impl ProxyAuth {
    fn validator(&self) -> Option<Validator> {
        self.validator
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Checks the flow's credentials: on success the header goes and the user name is noted in
    /// the flow's metadata; else the flow is answered with 407 (or 401).
    fn authenticate(&self, validator: &Validator, flow: &mut HttpFlow) -> bool {
        let is_proxy = matches!(flow.client_conn().proxy_mode(), "regular")
            || flow.client_conn().proxy_mode().starts_with("upstream");
        let header = if is_proxy {
            "proxy-authorization"
        } else {
            "authorization"
        };
        let credentials = flow.request.headers.get(header).and_then(parse_basic);
        if let Some((user, password)) = credentials {
            if validator.accepts(&user, &password) {
                flow.metadata.insert("proxyauth", user);
                flow.request.headers.remove(header);
                return true;
            }
        }
        flow.set_response(auth_required(is_proxy));
        false
    }
}

/// mitmproxy's answer asking for credentials.
fn auth_required(is_proxy: bool) -> Response {
    let (status, header) = if is_proxy {
        (407, "Proxy-Authenticate")
    } else {
        (401, "WWW-Authenticate")
    };
    let reason = interpose_plugin_abi::flow::reason_phrase(status);
    let body = format!(
        "<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
    );
    let challenge = format!("Basic realm=\"{REALM}\"");
    Response::make(status, body, &[(header, challenge.as_str())])
}

/// `Basic <base64 user:password>` as (user, password).
fn parse_basic(value: &str) -> Option<(String, String)> {
    let mut parts = value.split_whitespace();
    let scheme = parts.next()?;
    let encoded = parts.next()?;
    if !scheme.eq_ignore_ascii_case("basic") || parts.next().is_some() {
        return None;
    }
    let decoded = interpose_plugin_abi::encoding::base64_decode(encoded.as_bytes())?;
    let text = String::from_utf8_lossy(&decoded);
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[addon]
impl Addon for ProxyAuth {
    fn load(&self, ctx: &Context) {
        ctx.add_option(
            "proxyauth",
            None::<String>,
            "Require proxy authentication: \"username:pass\", or \"any\" to accept any \
             user/pass combination.",
        );
    }

    fn configure(&self, ctx: &Context, data: &mut ConfigureData) {
        if !data.contains("proxyauth") {
            return;
        }
        let validator = match ctx.get_option::<Option<String>>("proxyauth") {
            Some(spec) if !spec.is_empty() => match Validator::parse(&spec) {
                Ok(validator) => Some(validator),
                Err(why) => {
                    data.reject(why);
                    return;
                }
            },
            _ => None,
        };
        *self
            .validator
            .write()
            .unwrap_or_else(PoisonError::into_inner) = validator;
    }

    fn http_connect(&self, _ctx: &Context, flow: &mut HttpFlow) {
        if let Some(validator) = self.validator() {
            if self.authenticate(&validator, flow) {
                self.authenticated
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(flow.client_conn().id);
            }
        }
    }

    fn requestheaders(&self, _ctx: &Context, flow: &mut HttpFlow) {
        let Some(validator) = self.validator() else {
            return;
        };
        let tunnelled = self
            .authenticated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&flow.client_conn().id);
        if tunnelled || flow.is_replay().is_some() {
            return;
        }
        self.authenticate(&validator, flow);
    }

    fn client_disconnected(&self, _ctx: &Context, client: &Client) {
        self.authenticated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&client.id);
    }
}

export_plugin!(addons = [ProxyAuth::default()]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    fn configured(spec: &str) -> (ProxyAuth, TestContext) {
        let addon = ProxyAuth::default();
        let tctx = TestContext::new();
        addon.load(tctx.ctx());
        tctx.configure(&addon, &[("proxyauth", spec)]).unwrap();
        (addon, tctx)
    }

    #[test]
    fn asks_for_credentials_and_checks_them() {
        let (addon, tctx) = configured("alice:secret");
        let mut flow = testing::flow(); // regular mode
        addon.requestheaders(tctx.ctx(), &mut flow);
        let response = flow.response().unwrap();
        assert_eq!(response.status_code, 407);
        assert_eq!(
            response.headers.get("proxy-authenticate"),
            Some("Basic realm=\"mitmproxy\"")
        );

        let mut flow = testing::flow();
        // alice:secret
        flow.request
            .headers
            .insert("Proxy-Authorization", "Basic YWxpY2U6c2VjcmV0");
        addon.requestheaders(tctx.ctx(), &mut flow);
        assert!(flow.response().is_none());
        assert!(!flow.request.headers.contains("proxy-authorization"));
        assert_eq!(flow.metadata.get("proxyauth"), Some("alice"));

        let mut flow = testing::flow();
        // alice:wrong
        flow.request
            .headers
            .insert("Proxy-Authorization", "Basic YWxpY2U6d3Jvbmc=");
        addon.requestheaders(tctx.ctx(), &mut flow);
        assert_eq!(flow.response().unwrap().status_code, 407);
    }

    #[test]
    fn parses_specs_as_mitmproxy_does() {
        assert_eq!(Validator::parse("any"), Ok(Validator::Any));
        assert!(Validator::parse("nocolon").is_err());
        assert!(Validator::parse("a:b:c").is_err());
        assert!(Validator::parse("@/etc/htpasswd")
            .unwrap_err()
            .contains("not supported"));
        let addon = ProxyAuth::default();
        let tctx = TestContext::new();
        addon.load(tctx.ctx());
        assert_eq!(
            tctx.configure(&addon, &[("proxyauth", "nocolon")]),
            Err("Invalid proxyauth specification.".to_string())
        );
    }

    #[test]
    fn reads_basic_credentials() {
        assert_eq!(
            parse_basic("Basic YWxpY2U6c2VjcmV0"),
            Some(("alice".to_string(), "secret".to_string()))
        );
        assert_eq!(parse_basic("bearer abc"), None);
        assert_eq!(parse_basic("Basic !!"), None);
    }
}
