//! The retail edge with its shipped configuration (the embedded retail policy).

use harness::envoy::PluginConfig;
use harness::http::Request;

use crate::common::{assert_forwarded, assert_problem, stack};

fn get(path: &str, client: &str) -> Request {
    Request::new("GET", path).header("x-forwarded-for", client)
}

#[test]
fn retail_edge_enforces_the_retail_policy() {
    let s = stack("retail", PluginConfig::Shipped);
    let served = || s.backend.served();

    // Allowed: an anonymous configurator call from an ordinary client.
    let r = s.send(get("/v1/configurator/models", "192.0.2.10"));
    assert_forwarded(&r, "retail");
    assert_eq!(served(), 1);

    // Blocked: the client is in the abuse-networks deny list (enforced).
    let r = s.send(get("/v1/configurator/models", "203.0.113.7"));
    assert_problem(&r, 403, "client-forbidden", "ip_list.abuse-networks");
    let body = r.text();
    assert!(
        !body.contains("203.0.113"),
        "the problem echoes the client: {body}"
    );

    // A client cannot hide behind a forged hop on the left: the CDN's hop decides.
    let r = s.send(get("/v1/configurator/models", "192.0.2.10, 203.0.113.7"));
    assert_problem(&r, 403, "client-forbidden", "ip_list.abuse-networks");

    // No hop from the CDN at all: not through the expected path.
    let r = s.send(Request::new("GET", "/v1/configurator/models"));
    assert_problem(&r, 400, "client-address", "client_address");

    // Shadowed: hosting-watchlist would block, but is in shadow mode.
    let r = s.send(get("/v1/configurator/models", "198.51.100.7"));
    assert_forwarded(&r, "retail");

    // Shadowed header rule: configurator options want x-client-version, in shadow mode.
    let r = s.send(get("/v1/configurator/models/e-sport/options", "192.0.2.10"));
    assert_forwarded(&r, "retail");
    let r = s.send(
        get("/v1/configurator/models/e-sport/options", "192.0.2.10")
            .header("x-client-version", "5.2.0"),
    );
    assert_forwarded(&r, "retail");

    // Unknown route: deny by default.
    let r = s.send(get("/internal/admin", "192.0.2.10"));
    assert_problem(&r, 404, "route-not-found", "routing");

    // Wrong method: 405 with Allow.
    let r = s.send(Request::new("DELETE", "/v1/orders/42").header("x-forwarded-for", "192.0.2.10"));
    assert_problem(&r, 405, "method-not-allowed", "routing");
    assert_eq!(r.header("allow"), Some("GET"));
    let r = s.send(Request::new("PUT", "/v1/accounts/me").header("x-forwarded-for", "192.0.2.10"));
    assert_eq!(r.header("allow"), Some("GET, PATCH"));

    // Required header: accounts need authorization.
    let r = s.send(get("/v1/accounts/me", "192.0.2.10"));
    let body = assert_problem(&r, 400, "missing-header", "route.account.required_headers");
    assert!(
        body["detail"].as_str().unwrap().contains("authorization"),
        "{body}"
    );
    let r = s.send(get("/v1/accounts/me", "192.0.2.10").header("authorization", "Bearer t"));
    assert_forwarded(&r, "retail");

    // A login with a body goes through to the backend whole.
    let login = r#"{"email":"o'brien@example.com","password":"hunter2"}"#;
    let r = s.send(
        Request::new("POST", "/v1/auth/login")
            .header("x-forwarded-for", "2001:db8:1::9")
            .header("content-type", "application/json")
            .body(login),
    );
    assert_forwarded(&r, "retail");
    assert_eq!(r.json().unwrap()["body_bytes"], login.len());

    // Bytes that are not UTF-8 in a header value (allowed by HTTP as obs-text) and a hostile
    // request id: no trap, and nothing echoed.
    let r = s.send(
        get("/v1/accounts/me", "192.0.2.10")
            .header_bytes("x-note", b"caf\xe9")
            .header("x-request-id", "<script>alert(1)</script>"),
    );
    assert_eq!(r.status, 400);
    assert!(!r.text().contains("<script>"), "{}", r.text());
    // Clients are external: Envoy issues a fresh request id rather than trust theirs.
    let id = r.json().unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 36, "a UUID from Envoy: {id}");
    let r = s.send(get("/v1/dealers", "192.0.2.10").header_bytes("x-note", b"\xff\xfe"));
    assert_forwarded(&r, "retail");

    // The counters saw exactly that traffic: 7 forwarded, 8 refused, 2 shadow hits.
    assert_eq!(served(), 7);
    let c = |n: &str| s.counter("retail", n);
    assert_eq!(c("requests.allowed"), 7);
    assert_eq!(c("requests.blocked"), 8);
    assert_eq!(c("requests.shadow_blocked"), 2);
    assert_eq!(c("rule.ip_list.abuse-networks.blocked"), 2);
    assert_eq!(c("rule.ip_list.hosting-watchlist.shadow_blocked"), 1);
    assert_eq!(c("rule.ip_list.hosting-watchlist.blocked"), 0);
    assert_eq!(
        c("rule.route.configurator-options.required_headers.shadow_blocked"),
        1
    );
    assert_eq!(c("rule.client_address.blocked"), 1);
    assert_eq!(c("rule.routing.blocked"), 3);
    assert_eq!(c("rule.route.account.required_headers.blocked"), 2);

    // The shadow hits are in Envoy's log, naming the rule but no header values.
    let log = s.envoy.log();
    assert!(
        log.contains("tollgate: shadow rule=ip_list.hosting-watchlist status=403"),
        "{log}"
    );
    assert!(log.contains("tollgate: policy retail-"), "{log}");
    assert!(!log.contains("hunter2"));
}
