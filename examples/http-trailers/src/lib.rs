//! Logs the trailers of every request and response, and adds one,
//! `x-my-injected-trailer-header: foobar`, to both on the path `/inject_trailers` (twin of
//! mitmproxy's `examples/addons/http-trailers.py`).
//!
//! Trailers are header fields sent after the body; they are announced by name in the
//! `Trailer` header so that the receiver waits for them. HTTP/1.0 has none; HTTP/1.1 needs a
//! chunked body for them (the proxy frames a message with trailers as chunked in any case),
//! and an empty body is left alone, since some servers answer a chunked GET with 400;
//! HTTP/2 carries them on any message. mitmproxy's example `print`s to stdout; this one
//! writes the same lines to the proxy's log, at info.

use interpose_plugin_abi::{prelude::*, Headers, HttpVersion};

/// The path on which a trailer is injected.
const INJECT_PATH: &str = "/inject_trailers";
/// The injected trailer's name.
const TRAILER: &str = "x-my-injected-trailer-header";

fn request(ctx: &Context, flow: &mut HttpFlow) {
    let version = flow.request.http_version;
    let request = &mut flow.request;
    if let Some(trailers) = request.trailers() {
        if !trailers.is_empty() {
            info!(
                ctx,
                "HTTP Trailers detected! Request contains: {}",
                show(trailers)
            );
        }
    }
    if request.path() == INJECT_PATH {
        if let Some(trailers) = inject(version, &mut request.headers, &request.content) {
            request.set_trailers(Some(trailers));
            info!(ctx, "Injected a new request trailer... {TRAILER}");
        }
    }
}

fn response(ctx: &Context, flow: &mut HttpFlow) {
    // As in mitmproxy's example, the request's version decides for the response too.
    let version = flow.request.http_version;
    let inject_here = flow.request.path() == INJECT_PATH;
    let Some(response) = flow.response_mut() else {
        return;
    };
    if let Some(trailers) = response.trailers() {
        if !trailers.is_empty() {
            info!(
                ctx,
                "HTTP Trailers detected! Response contains: {}",
                show(trailers)
            );
        }
    }
    if inject_here {
        if let Some(trailers) = inject(version, &mut response.headers, &response.content) {
            response.set_trailers(Some(trailers));
            info!(ctx, "Injected a new response trailer... {TRAILER}");
        }
    }
}

/// Announces the trailer in one message's headers and returns the trailers to set, unless
/// its version or body rules it out.
fn inject(version: HttpVersion, headers: &mut Headers, content: &Body) -> Option<Headers> {
    match version {
        // HTTP/1.0 (and 0.9) have no trailers.
        HttpVersion::Http09 | HttpVersion::Http10 => return None,
        HttpVersion::Http11 => {
            if content.is_empty() {
                return None;
            }
            headers.insert("transfer-encoding", "chunked");
        }
        HttpVersion::Http2 | HttpVersion::Http3 => {}
    }
    headers.insert("trailer", TRAILER);
    let mut injected = Headers::new();
    injected.append(TRAILER, "foobar");
    Some(injected)
}

/// Header fields as `name: value` pairs, comma-separated.
fn show(headers: &Headers) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value)))
        .collect::<Vec<_>>()
        .join(", ")
}

export_plugin!(functions = [request, response]);

#[cfg(test)]
mod tests {
    use super::*;
    use interpose_plugin_abi::testing::{self, TestContext};

    #[test]
    fn injects_on_the_path_into_non_empty_http11_messages() {
        let tctx = TestContext::new();
        let mut flow = testing::flow_with_response();
        flow.request.set_path(INJECT_PATH);
        flow.request.content = Body::from("data");
        request(tctx.ctx(), &mut flow);
        response(tctx.ctx(), &mut flow);
        let response = flow.response().unwrap();
        for (headers, trailers) in [
            (&flow.request.headers, flow.request.trailers()),
            (&response.headers, response.trailers()),
        ] {
            assert_eq!(headers.get("trailer"), Some(TRAILER));
            assert_eq!(headers.get("transfer-encoding"), Some("chunked"));
            let trailers = trailers.expect("a trailer");
            assert_eq!(trailers.get(TRAILER), Some("foobar"));
        }
        assert_eq!(
            tctx.messages(),
            [
                format!("Injected a new request trailer... {TRAILER}"),
                format!("Injected a new response trailer... {TRAILER}"),
            ]
        );
    }

    #[test]
    fn leaves_empty_bodies_http10_and_other_paths_alone() {
        let tctx = TestContext::new();
        // The request has no body; the response has one.
        let mut empty = testing::flow_with_response();
        empty.request.set_path(INJECT_PATH);
        request(tctx.ctx(), &mut empty);
        assert!(empty.request.trailers().is_none());
        assert!(!empty.request.headers.contains("trailer"));

        let mut old = testing::flow_with_response();
        old.request.set_path(INJECT_PATH);
        old.request.http_version = HttpVersion::Http10;
        response(tctx.ctx(), &mut old);
        assert!(old.response().unwrap().trailers().is_none());

        let mut other = testing::flow_with_response();
        response(tctx.ctx(), &mut other);
        assert!(other.response().unwrap().trailers().is_none());
    }

    #[test]
    fn logs_received_trailers() {
        let tctx = TestContext::new();
        let mut flow = testing::flow_with_response();
        let mut trailers = Headers::new();
        trailers.append("X-Checksum", "abc");
        flow.response_mut().unwrap().set_trailers(Some(trailers));
        response(tctx.ctx(), &mut flow);
        assert_eq!(
            tctx.messages(),
            ["HTTP Trailers detected! Response contains: X-Checksum: abc"]
        );
    }
}
