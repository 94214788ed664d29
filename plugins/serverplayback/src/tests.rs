use super::*;
use interpose_plugin_abi::testing::{self, TestContext};

fn saved(url: &str, body: &str) -> HttpFlow {
    let mut flow = testing::flow_for(Request::make("GET", url, "").unwrap()).copy();
    flow.set_response(Response::make(200, body.to_string(), &[]));
    flow
}

#[test]
fn matches_requests_and_uses_each_response_once() {
    let tctx = TestContext::new();
    ServerPlayback.load(tctx.ctx());
    STATE.load(
        tctx.ctx(),
        vec![
            saved("http://example.com/a?x=1", "first a"),
            saved("http://example.com/a?x=1", "second a"),
            saved("http://example.com/b", "b"),
        ],
    );
    assert_eq!(STATE.count(), 3);
    let answer = |url: &str| {
        let mut flow = testing::flow_for(Request::make("GET", url, "").unwrap());
        ServerPlayback.request(tctx.ctx(), &mut flow);
        let body = flow
            .response()
            .map(|r| r.content.text().unwrap().to_string());
        (body, flow.is_replay())
    };
    let replayed = Some(ReplaySide::Response);
    assert_eq!(
        answer("http://example.com/a?x=1"),
        (Some("first a".into()), replayed)
    );
    assert_eq!(
        answer("http://example.com/a?x=1"),
        (Some("second a".into()), replayed)
    );
    // Used up; other query values and hosts do not match: forwarded.
    assert_eq!(answer("http://example.com/a?x=1"), (None, None));
    assert_eq!(answer("http://example.org/b"), (None, None));
    assert_eq!(answer("http://example.com/b"), (Some("b".into()), replayed));
    assert_eq!(STATE.count(), 0);

    // An unmatched request with server_replay_extra=404, while there is something to replay.
    STATE.load(tctx.ctx(), vec![saved("http://example.com/c", "c")]);
    tctx.configure(&ServerPlayback, &[("server_replay_extra", "404")])
        .unwrap();
    let mut flow = testing::flow();
    ServerPlayback.request(tctx.ctx(), &mut flow);
    assert_eq!(flow.response().unwrap().status_code, 404);
    STATE.load(tctx.ctx(), Vec::new());
}

#[test]
fn keys_follow_the_ignore_options() {
    let matching = Matching {
        ignore_content: false,
        ignore_host: true,
        ignore_port: true,
        ignore_params: vec!["t".into()],
        ignore_payload_params: Vec::new(),
        use_headers: vec!["x-user".into()],
    };
    let request = |url: &str, user: &str| {
        let mut r = Request::make("GET", url, "").unwrap();
        r.headers.insert("X-User", user);
        r
    };
    let a = matching.key(&request("http://one.example:1/p?q=1&t=5", "me"));
    let b = matching.key(&request("http://two.example:2/p?q=1&t=9", "me"));
    let c = matching.key(&request("http://two.example:2/p?q=2&t=9", "me"));
    let d = matching.key(&request("http://two.example:2/p?q=1&t=9", "you"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d);
}
