//! Built-in addon `disable_h2c`: cleartext HTTP/2 is not supported, so requests asking to
//! upgrade to it (`Upgrade: h2c`) lose the upgrade headers before anything is forwarded, and
//! flows opened with the HTTP/2 prior-knowledge preface (`PRI * HTTP/2.0`) are killed. Both
//! are logged as warnings, as mitmproxy's `DisableH2C` does.

use interpose_plugin_abi::{prelude::*, HttpVersion};

/// Removes h2c upgrade headers and kills HTTP/2 prior-knowledge flows.
#[derive(Debug, Default)]
pub struct DisableH2c;

#[addon]
impl Addon for DisableH2c {
    fn name(&self) -> String {
        "disable_h2c".to_string()
    }

    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        let headers = &mut flow.request.headers;
        if headers
            .get("upgrade")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("h2c"))
        {
            warn!(
                ctx,
                "HTTP/2 cleartext connections (h2c upgrade requests) are not supported; \
                 forwarding the request without the upgrade"
            );
            headers.remove("upgrade");
            headers.remove("connection");
            headers.remove("http2-settings");
        }
        let is_preface = flow.request.method() == "PRI"
            && flow.request.path() == "*"
            && flow.request.http_version == HttpVersion::Http2;
        if is_preface {
            flow.kill();
            warn!(
                ctx,
                "HTTP/2 connections opened with prior knowledge are not supported; killed"
            );
        }
    }
}

export_plugin!(addons = [DisableH2c]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn strips_h2c_upgrade() {
        let tctx = TestContext::new();
        let mut flow = testing::flow();
        let h = &mut flow.request.headers;
        h.append("Connection", "Upgrade, HTTP2-Settings");
        h.append("Upgrade", "h2c");
        h.append("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA");
        h.append("Accept", "*/*");
        DisableH2c.request(tctx.ctx(), &mut flow);
        let names: Vec<&str> = flow.request.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "Accept"]);
        assert_eq!(tctx.logs().len(), 1);
        assert_eq!(tctx.logs()[0].0, Level::Warn);
    }

    #[test]
    fn leaves_other_upgrades_alone() {
        let tctx = TestContext::new();
        let mut flow = testing::flow();
        flow.request.headers.append("Upgrade", "websocket");
        DisableH2c.request(tctx.ctx(), &mut flow);
        assert_eq!(flow.request.headers.get("upgrade"), Some("websocket"));
        assert!(tctx.logs().is_empty());
    }

    #[test]
    fn kills_prior_knowledge_preface() {
        let tctx = TestContext::new();
        let mut flow = testing::flow();
        flow.request.method = "PRI".into();
        flow.request.path = "*".into();
        flow.request.http_version = HttpVersion::Http2;
        DisableH2c.request(tctx.ctx(), &mut flow);
        assert!(flow.killed());
    }
}
