//! The dealer edge with its shipped configuration (the embedded dealer policy).

use harness::envoy::PluginConfig;
use harness::http::Request;

use crate::common::{assert_forwarded, assert_problem, stack};

const VIN: &str = "WVWZZZ1JZXW000001";

fn dealer(method: &str, path: &str, client: &str) -> Request {
    Request::new(method, path)
        .header("x-forwarded-for", client)
        .header("x-dealer-id", "D-1001")
        .header("authorization", "Bearer dealer-token")
}

#[test]
fn dealer_edge_enforces_the_dealer_policy() {
    let s = stack("dealer", PluginConfig::Shipped);
    let vin_path = format!("/v1/vehicles/{VIN}");

    // Allowed: a dealer on its network with id and credential; IPv6 pool too.
    assert_forwarded(&s.send(dealer("GET", &vin_path, "192.0.2.10")), "dealer");
    assert_forwarded(
        &s.send(dealer(
            "GET",
            "/v1/inventory?model=e-sport",
            "2001:db8:d1::5",
        )),
        "dealer",
    );

    // The older API-key credential is accepted instead of a bearer token.
    let r = s.send(
        Request::new("GET", &vin_path)
            .header("x-forwarded-for", "192.0.2.10")
            .header("x-dealer-id", "D-1001")
            .header("x-api-key", "k-123"),
    );
    assert_forwarded(&r, "dealer");

    // Missing credential, then missing dealer id: 400 naming what is needed.
    let missing = |name: &str, value: &str| {
        let r = s.send(
            Request::new("GET", &vin_path)
                .header("x-forwarded-for", "192.0.2.10")
                .header(name, value),
        );
        let body = assert_problem(
            &r,
            400,
            "missing-header",
            "route.vin-lookup.required_headers",
        );
        body["detail"].as_str().unwrap().to_string()
    };
    let detail = missing("x-dealer-id", "D-1001");
    assert!(
        detail.contains("one of the headers authorization, x-api-key"),
        "{detail}"
    );
    let detail = missing("authorization", "Bearer dealer-token");
    assert!(detail.contains("the header x-dealer-id"), "{detail}");

    // Valid credentials from outside the dealer networks: stolen credentials stop here.
    let r = s.send(dealer("GET", &vin_path, "203.0.113.50"));
    assert_problem(&r, 403, "client-forbidden", "ip_list.dealer-networks");
    // A revoked dealer site inside the pool.
    let r = s.send(dealer("GET", &vin_path, "192.0.2.241"));
    assert_problem(&r, 403, "client-forbidden", "ip_list.revoked-dealers");

    // Shadowed: the planned, narrower pool would refuse 192.0.2.200; today it passes.
    assert_forwarded(
        &s.send(dealer("GET", "/v1/inventory", "192.0.2.200")),
        "dealer",
    );
    // The same client without a credential: a shadow hit, then blocked. It counts as blocked,
    // not as shadow-blocked (that counts requests let through); the rule's shadow counter
    // counts both hits.
    let r = s.send(
        Request::new("GET", "/v1/inventory")
            .header("x-forwarded-for", "192.0.2.200")
            .header("x-dealer-id", "D-1001"),
    );
    assert_problem(
        &r,
        400,
        "missing-header",
        "route.inventory-search.required_headers",
    );

    // Unknown route and wrong method.
    let r = s.send(dealer("GET", "/v1/customers", "192.0.2.10"));
    assert_problem(&r, 404, "route-not-found", "routing");
    let r = s.send(dealer("DELETE", "/v1/orders", "192.0.2.10"));
    assert_problem(&r, 405, "method-not-allowed", "routing");
    assert_eq!(r.header("allow"), Some("GET, POST"));

    // A warranty claim with a JSON body.
    let claim = r#"{"vin":"WVWZZZ1JZXW000001","mileage_km":48210,"comment":"Rattle near the B-pillar; customer Zoë Ørsted"}"#;
    let r = s.send(
        dealer("POST", "/v1/warranty-claims", "192.0.2.10")
            .header("content-type", "application/json")
            .body(claim),
    );
    assert_forwarded(&r, "dealer");
    assert_eq!(r.json().unwrap()["body_bytes"], claim.len());

    assert_eq!(s.backend.served(), 5);
    let c = |n: &str| s.counter("dealer", n);
    assert_eq!(c("requests.allowed"), 5);
    assert_eq!(c("requests.blocked"), 7);
    assert_eq!(c("requests.shadow_blocked"), 1);
    assert_eq!(c("rule.ip_list.dealer-networks-next.shadow_blocked"), 2);
    assert_eq!(c("rule.route.inventory-search.required_headers.blocked"), 1);
    assert_eq!(c("rule.ip_list.dealer-networks.blocked"), 1);
    assert_eq!(c("rule.ip_list.revoked-dealers.blocked"), 1);
    assert_eq!(c("rule.route.vin-lookup.required_headers.blocked"), 2);
    assert_eq!(c("rule.routing.blocked"), 2);
}
