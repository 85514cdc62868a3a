//! Plugin configuration as Envoy delivers it: shipped, inline JSON text, a Struct, invalid.

use harness::envoy::{validate, Delivery, EdgeOptions, Envoy, PluginConfig, Started};
use harness::http::Request;
use harness::wasm::ensure_wasm;
use serde_json::json;

use crate::common::{assert_forwarded, assert_problem, stack};

fn options(edge: &str, config: PluginConfig) -> EdgeOptions {
    let wasm = ensure_wasm().expect("building the filter");
    // Validation and refused starts never reach the backend.
    let mut o = EdgeOptions::new(edge, "127.0.0.1:9".parse().unwrap(), &wasm);
    o.plugin_config = config;
    o
}

/// A policy with three mistakes in three places.
fn broken_policy() -> String {
    json!({
        "version": "broken-1",
        "edge": "retail",
        "routes": [
            {"name": "models", "path": "/v1/models", "methods": ["GETT"]},
            {"name": "orders", "path": "v1/orders", "methods": ["POST"], "timeout": 3}
        ]
    })
    .to_string()
}

const BROKEN_ERRORS: [&str; 3] = [
    r#"routes[0].methods[0]: unknown method "GETT""#,
    r#"routes[1].path: path template "v1/orders" must start with '/'"#,
    "routes[1].timeout: unknown field",
];

#[test]
fn shipped_configurations_pass_envoy_validation() {
    for edge in ["retail", "dealer"] {
        let (ok, out) = validate(&options(edge, PluginConfig::Shipped)).unwrap();
        assert!(ok, "{edge}: {out}");
        assert!(
            out.contains(&format!("tollgate: policy {edge}-")),
            "{edge}: {out}"
        );
    }
}

#[test]
fn envoy_validation_refuses_an_invalid_policy_and_names_every_error() {
    let (ok, out) = validate(&options("retail", PluginConfig::Text(broken_policy()))).unwrap();
    assert!(!ok, "an invalid policy passed validation: {out}");
    for e in BROKEN_ERRORS {
        assert!(out.contains(e), "missing {e:?} in: {out}");
    }
    assert!(out.contains("policy refused with 3 error(s)"), "{out}");

    let (ok, out) = validate(&options(
        "dealer",
        PluginConfig::Text(r#"{"embedded": "fleet"}"#.into()),
    ))
    .unwrap();
    assert!(!ok);
    assert!(
        out.contains(r#"embedded: no embedded policy named "fleet""#),
        "{out}"
    );
}

#[test]
fn envoy_refuses_to_start_with_an_inline_invalid_policy_and_logs_every_error() {
    // With the filter written into the bootstrap (not by ECDS, as shipped: see push.rs).
    let mut o = options("retail", PluginConfig::Text(broken_policy()));
    o.delivery = Delivery::Inline;
    let refused = match Envoy::try_start(&o).unwrap() {
        Started::Up(_) => panic!("Envoy started with an invalid policy"),
        Started::Exited(r) => r,
    };
    assert!(!refused.status.success());
    for e in BROKEN_ERRORS {
        assert!(refused.log.contains(e), "missing {e:?} in: {}", refused.log);
    }
    assert!(
        refused.log.contains("Failed to configure base Wasm plugin"),
        "{}",
        refused.log
    );
}

#[test]
fn a_full_policy_as_a_struct_in_the_bootstrap_is_enforced() {
    // A policy written into the Envoy bootstrap as a google.protobuf.Struct reaches the plugin as
    // serialised protobuf (numbers as doubles), not as JSON.
    let mut policy: serde_json::Value = serde_json::from_str(tollgate_policies::DEALER).unwrap();
    policy["version"] = json!("dealer-struct-1");
    let s = stack("dealer", PluginConfig::Struct(policy));
    assert!(
        s.envoy
            .log()
            .contains("tollgate: policy dealer-struct-1 accepted"),
        "{}",
        s.envoy.log()
    );

    let req = |client: &str| {
        Request::new("GET", "/v1/inventory")
            .header("x-forwarded-for", client)
            .header("x-dealer-id", "D-1007")
            .header("x-api-key", "k")
    };
    assert_forwarded(&s.send(req("192.0.2.10")), "dealer");
    assert_problem(
        &s.send(req("198.18.0.1")),
        403,
        "client-forbidden",
        "ip_list.dealer-networks",
    );
}

#[test]
fn an_inline_policy_with_shadow_routing_reports_without_refusing() {
    let policy = json!({
        "version": "retail-shadow-routing-1",
        "edge": "retail",
        "routing": {"default": "deny", "mode": "shadow"},
        "routes": [{"name": "models", "path": "/v1/configurator/models", "methods": ["GET"]}]
    });
    let s = stack("retail", PluginConfig::Text(policy.to_string()));
    assert_forwarded(
        &s.send(Request::new("GET", "/v1/configurator/models")),
        "retail",
    );
    assert_forwarded(
        &s.send(Request::new("GET", "/v1/not-yet-in-the-policy")),
        "retail",
    );
    assert_forwarded(
        &s.send(Request::new("POST", "/v1/configurator/models")),
        "retail",
    );
    assert_eq!(s.counter("retail", "requests.allowed"), 3);
    assert_eq!(s.counter("retail", "requests.blocked"), 0);
    assert_eq!(s.counter("retail", "rule.routing.shadow_blocked"), 2);
    let log = s.envoy.log();
    assert!(
        log.contains("tollgate: shadow rule=routing status=404"),
        "{log}"
    );
    assert!(
        log.contains("tollgate: shadow rule=routing status=405"),
        "{log}"
    );
}

#[test]
fn client_addresses_cannot_be_spoofed() {
    // trusted_hops 0: the client is the connection's peer (127.0.0.1 here), whatever
    // X-Forwarded-For says.
    let policy = json!({
        "version": "peer-1",
        "edge": "retail",
        "ip_lists": [
            {"name": "loopback", "action": "allow", "cidrs": ["127.0.0.1"], "routes": ["a"]},
            {"name": "office", "action": "allow", "cidrs": ["10.0.0.0/8"], "routes": ["b"]}
        ],
        "routes": [
            {"name": "a", "path": "/a", "methods": ["GET"]},
            {"name": "b", "path": "/b", "methods": ["GET"]}
        ]
    });
    let s = stack("retail", PluginConfig::Text(policy.to_string()));
    let spoofed = |path: &str| Request::new("GET", path).header("x-forwarded-for", "10.1.2.3");
    assert_forwarded(&s.send(spoofed("/a")), "retail");
    assert_problem(
        &s.send(spoofed("/b")),
        403,
        "client-forbidden",
        "ip_list.office",
    );
    drop(s);

    // trusted_proxies: hops count only when the peer is one of the proxies.
    let policy = json!({
        "version": "proxies-1",
        "edge": "retail",
        "client_ip": {"trusted_hops": 1, "trusted_proxies": ["10.64.0.0/16"]},
        "routes": [{"name": "a", "path": "/a", "methods": ["GET"]}]
    });
    let s = stack("retail", PluginConfig::Text(policy.to_string()));
    assert_problem(
        &s.send(spoofed("/a")),
        400,
        "client-address",
        "client_address",
    );
    let mut policy = policy;
    policy["client_ip"]["trusted_proxies"] = json!(["127.0.0.0/8"]);
    let s = stack("retail", PluginConfig::Text(policy.to_string()));
    assert_forwarded(&s.send(spoofed("/a")), "retail");
}
