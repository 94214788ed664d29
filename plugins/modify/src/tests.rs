use super::*;
use interpose_plugin_abi::testing::{self, TestContext};

fn loaded<A: Addon>(addon: &A) -> TestContext {
    let tctx = TestContext::new();
    addon.load(tctx.ctx());
    tctx
}

#[test]
fn modify_headers_sets_and_removes() {
    let addon = ModifyHeaders::default();
    let tctx = loaded(&addon);
    tctx.configure(&addon, &[("modify_headers", "/X-Added/one")])
        .unwrap();
    let mut flow = testing::flow();
    flow.request.headers.insert("X-Added", "old");
    addon.requestheaders(tctx.ctx(), &mut flow);
    assert_eq!(
        flow.request.headers.get_all("x-added").collect::<Vec<_>>(),
        ["one"]
    );

    tctx.configure(&addon, &[("modify_headers", ":content-type:")])
        .unwrap();
    let mut flow = testing::flow_with_response();
    addon.responseheaders(tctx.ctx(), &mut flow);
    assert_eq!(flow.response().unwrap().headers.get("content-type"), None);
}

#[test]
fn modify_headers_leaves_answered_failed_and_read_flows_alone() {
    let addon = ModifyHeaders::default();
    let tctx = loaded(&addon);
    tctx.configure(&addon, &[("modify_headers", "/X-Added/one")])
        .unwrap();
    let mut answered = testing::flow_with_response();
    addon.requestheaders(tctx.ctx(), &mut answered);
    assert!(!answered.request.headers.contains("x-added"));
    let mut killed = testing::flow();
    killed.kill();
    addon.requestheaders(tctx.ctx(), &mut killed);
    assert!(!killed.request.headers.contains("x-added"));
}

#[test]
fn modify_body_replaces_in_decoded_bodies_with_groups() {
    let addon = ModifyBody::default();
    let tctx = loaded(&addon);
    tctx.configure(
        &addon,
        &[("modify_body", r"/(\w+)@example\.com/\\1 at example")],
    )
    .unwrap();
    let mut flow = testing::flow_with_response();
    let response = flow.response_mut().unwrap();
    response.headers.insert("content-encoding", "gzip");
    response.set_content("write to alice@example.com\nor bob@example.com");
    addon.response(tctx.ctx(), &mut flow);
    let response = flow.response().unwrap();
    assert_eq!(response.headers.get("content-encoding"), Some("gzip"));
    assert_eq!(
        &response.content().unwrap()[..],
        b"write to alice at example\nor bob at example"
    );

    // Without a response yet, the request body.
    tctx.configure(&addon, &[("modify_body", "/secret/[redacted]")])
        .unwrap();
    let mut flow = testing::flow();
    flow.request.set_content("a secret");
    addon.request(tctx.ctx(), &mut flow);
    assert_eq!(&flow.request.content().unwrap()[..], b"a [redacted]");
}

#[test]
fn map_remote_rewrites_the_url_and_the_host_header() {
    let addon = MapRemote::default();
    let tctx = loaded(&addon);
    tctx.configure(
        &addon,
        &[(
            "map_remote",
            "|http://example.com/|https://example.org:8443/v2/",
        )],
    )
    .unwrap();
    let mut flow = testing::flow();
    addon.request(tctx.ctx(), &mut flow);
    assert_eq!(flow.request.url(), "https://example.org:8443/v2/path");
    assert_eq!(flow.request.headers.get("host"), Some("example.org:8443"));
}

#[test]
fn bad_specs_are_refused_with_the_option_named() {
    let addon = MapRemote::default();
    let tctx = loaded(&addon);
    let why = tctx
        .configure(&addon, &[("map_remote", "|(unclosed|x")])
        .unwrap_err();
    assert!(
        why.starts_with("Cannot parse map_remote option |(unclosed|x: Invalid regular expression"),
        "{why}"
    );
    let headers = ModifyHeaders::default();
    let tctx = loaded(&headers);
    let why = tctx
        .configure(&headers, &[("modify_headers", "/only-two")])
        .unwrap_err();
    assert!(why.contains("Invalid number of parameters"), "{why}");
    let why = tctx
        .configure(&headers, &[("modify_headers", ":X-A:@/no/such/file")])
        .unwrap_err();
    assert!(why.contains("Invalid file path: /no/such/file"), "{why}");
}
