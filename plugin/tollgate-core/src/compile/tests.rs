use super::*;
use crate::{BlockKind, Request, Verdict};
use serde_json::json;

fn policy(v: serde_json::Value) -> Policy {
    match compile(&v) {
        Ok(p) => p,
        Err(errs) => panic!("policy refused: {errs:#?}"),
    }
}

fn errors(v: serde_json::Value) -> Vec<String> {
    match compile(&v) {
        Ok(_) => panic!("policy accepted"),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

fn has(errs: &[String], needle: &str) {
    assert!(
        errs.iter().any(|e| e.contains(needle)),
        "no error contains {needle:?}; got {errs:#?}"
    );
}

fn dealer() -> serde_json::Value {
    json!({
        "version": "dealer-test-1",
        "edge": "dealer",
        "client_ip": {"trusted_hops": 1},
        "ip_lists": [
            {"name": "dealer-networks", "action": "allow", "cidrs": ["192.0.2.0/24", "2001:db8:d1::/48"]},
            {"name": "abuse", "action": "deny", "cidrs": ["192.0.2.66"]},
            {"name": "watch", "action": "deny", "mode": "shadow", "cidrs": ["192.0.2.128/25"]},
            {"name": "warranty-office", "action": "allow", "cidrs": ["192.0.2.0/28"], "routes": ["warranty-claims"]}
        ],
        "routes": [
            {"name": "vin-lookup", "path": "/v1/vehicles/{vin}", "methods": ["GET", "HEAD"],
             "required_headers": ["x-dealer-id", {"any_of": ["authorization", "x-api-key"]}]},
            {"name": "vehicle-update", "path": "/v1/vehicles/{vin}", "methods": ["PATCH"],
             "required_headers": ["x-dealer-id"], "mode": "shadow"},
            {"name": "warranty-claims", "hosts": ["*.dealers.example.com"], "path": "/v1/warranty-claims", "methods": ["POST"]}
        ]
    })
}

fn req<'a>(h: &'a [(String, Vec<u8>)]) -> Request<'a> {
    Request::from_headers(h, None)
}

fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn get(path: &str, xff: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut h = hdrs(&[
        (":method", "GET"),
        (":path", path),
        (":authority", "api.dealers.example.com"),
        ("x-forwarded-for", xff),
    ]);
    h.extend(hdrs(extra));
    h
}

fn rule_of(p: &Policy, v: &Verdict) -> String {
    let b = v.block.as_ref().expect("blocked");
    p.rules()[b.rule.0].name.clone()
}

const CREDS: [(&str, &str); 2] = [("x-dealer-id", "D-1001"), ("authorization", "Bearer x")];

#[test]
fn a_dealer_on_its_network_with_credentials_passes() {
    let p = policy(dealer());
    let h = get("/v1/vehicles/WVWZZZ1JZXW000001", "192.0.2.10", &CREDS);
    let v = p.decide(&req(&h));
    assert!(v.allowed(), "{v:?}");
    assert_eq!(v.route, Some(0));
    assert!(v.shadowed.is_empty());
}

#[test]
fn any_of_accepts_the_alternative_credential() {
    let p = policy(dealer());
    let h = get(
        "/v1/vehicles/X",
        "192.0.2.10",
        &[("x-dealer-id", "D"), ("x-api-key", "k")],
    );
    assert!(p.decide(&req(&h)).allowed());
}

#[test]
fn missing_headers_are_named() {
    let p = policy(dealer());
    let h = get("/v1/vehicles/X", "192.0.2.10", &[("x-dealer-id", "D")]);
    let v = p.decide(&req(&h));
    let b = v.block.clone().unwrap();
    assert_eq!(b.status(), 400);
    assert_eq!(
        b.detail(),
        "The request must carry one of the headers authorization, x-api-key."
    );
    assert_eq!(
        b.kind,
        BlockKind::MissingHeader {
            any_of: vec!["authorization".into(), "x-api-key".into()]
        }
    );
    assert_eq!(rule_of(&p, &v), "route.vin-lookup.required_headers");

    let h = get(
        "/v1/vehicles/X",
        "192.0.2.10",
        &[("authorization", "Bearer x")],
    );
    let v = p.decide(&req(&h));
    assert_eq!(
        v.block.unwrap().kind,
        BlockKind::MissingHeader {
            any_of: vec!["x-dealer-id".into()]
        }
    );
}

#[test]
fn clients_outside_the_allow_list_get_403() {
    let p = policy(dealer());
    let h = get("/v1/vehicles/X", "203.0.113.5", &CREDS);
    let v = p.decide(&req(&h));
    assert_eq!(v.block.as_ref().unwrap().kind, BlockKind::ClientNotAllowed);
    assert_eq!(v.block.as_ref().unwrap().status(), 403);
    assert_eq!(rule_of(&p, &v), "ip_list.dealer-networks");
}

#[test]
fn deny_list_beats_allow_list_membership() {
    let p = policy(dealer());
    let h = get("/v1/vehicles/X", "192.0.2.66", &CREDS);
    let v = p.decide(&req(&h));
    assert_eq!(v.block.as_ref().unwrap().kind, BlockKind::ClientDenied);
    assert_eq!(rule_of(&p, &v), "ip_list.abuse");
}

#[test]
fn spoofed_left_hops_do_not_help() {
    let p = policy(dealer());
    // The client claims to be a dealer, but the trusted proxy saw 203.0.113.5.
    let h = get("/v1/vehicles/X", "192.0.2.10, 203.0.113.5", &CREDS);
    assert_eq!(
        p.decide(&req(&h)).block.unwrap().kind,
        BlockKind::ClientNotAllowed
    );
}

#[test]
fn no_forwarded_hop_means_400_when_proxies_are_trusted() {
    let p = policy(dealer());
    let mut h = get("/v1/vehicles/X", "x", &CREDS);
    h.retain(|(k, _)| k != "x-forwarded-for");
    let v = p.decide(&req(&h));
    assert_eq!(v.block.as_ref().unwrap().status(), 400);
    assert_eq!(rule_of(&p, &v), "client_address");
}

#[test]
fn shadow_rules_report_and_let_through() {
    let p = policy(dealer());
    let h = get("/v1/vehicles/X", "192.0.2.200", &CREDS);
    let v = p.decide(&req(&h));
    assert!(v.allowed());
    assert_eq!(v.shadowed.len(), 1);
    assert_eq!(p.rules()[v.shadowed[0].rule.0].name, "ip_list.watch");
    assert_eq!(v.shadowed[0].kind, BlockKind::ClientDenied);
}

#[test]
fn shadow_hits_are_kept_when_a_later_rule_enforces() {
    let p = policy(dealer());
    let h = get("/v1/vehicles/X", "192.0.2.200", &[("x-dealer-id", "D")]);
    let v = p.decide(&req(&h));
    assert_eq!(v.shadowed.len(), 1);
    assert_eq!(v.block.unwrap().status(), 400);
}

#[test]
fn shadow_route_rule_lets_missing_headers_through() {
    let p = policy(dealer());
    let mut h = get("/v1/vehicles/X", "192.0.2.10", &[]);
    h[0].1 = b"PATCH".to_vec();
    let v = p.decide(&req(&h));
    assert!(v.allowed());
    assert_eq!(v.route, Some(1));
    assert_eq!(
        p.rules()[v.shadowed[0].rule.0].name,
        "route.vehicle-update.required_headers"
    );
}

#[test]
fn unknown_paths_get_404_and_wrong_methods_405_with_allow() {
    let p = policy(dealer());
    let h = get("/v1/nothing-here", "192.0.2.10", &CREDS);
    let v = p.decide(&req(&h));
    assert_eq!(v.block.as_ref().unwrap().kind, BlockKind::RouteNotFound);
    assert_eq!(rule_of(&p, &v), "routing");

    let mut h = get("/v1/vehicles/X", "192.0.2.10", &CREDS);
    h[0].1 = b"DELETE".to_vec();
    let v = p.decide(&req(&h));
    assert_eq!(
        v.block.unwrap().kind,
        BlockKind::MethodNotAllowed {
            allow: "GET, HEAD, PATCH".into()
        }
    );

    // A method no policy can name is simply not allowed.
    h[0].1 = b"GETT".to_vec();
    assert_eq!(p.decide(&req(&h)).block.unwrap().status(), 405);
}

#[test]
fn hosts_restrict_routes_and_route_scoped_lists_apply_only_there() {
    let p = policy(dealer());
    let mut h = get("/v1/warranty-claims", "192.0.2.10", &[]);
    h[0].1 = b"POST".to_vec();
    assert!(
        p.decide(&req(&h)).allowed(),
        "192.0.2.10 is in the warranty office /28"
    );

    let mut other = h.clone();
    other[3].1 = b"192.0.2.100".to_vec();
    let v = p.decide(&req(&other));
    assert_eq!(rule_of(&p, &v), "ip_list.warranty-office");

    let mut wrong_host = h.clone();
    wrong_host[2].1 = b"dealers.example.com".to_vec();
    assert_eq!(p.decide(&req(&wrong_host)).block.unwrap().status(), 404);
    let mut upper = h.clone();
    upper[2].1 = b"API.Dealers.Example.com:443".to_vec();
    assert!(p.decide(&req(&upper)).allowed());
}

#[test]
fn default_allow_lets_unknown_routes_through() {
    let p = policy(json!({
        "version": "v", "edge": "e", "routing": {"default": "allow"},
        "routes": [{"name": "r", "path": "/a", "methods": ["GET"]}]
    }));
    let h = hdrs(&[(":method", "GET"), (":path", "/elsewhere")]);
    let v = p.decide(&req(&h));
    assert!(v.allowed());
    assert_eq!(v.route, None);
}

#[test]
fn shadow_routing_reports_unknown_routes() {
    let p = policy(json!({
        "version": "v", "edge": "e", "routing": {"default": "deny", "mode": "shadow"},
        "routes": []
    }));
    let h = hdrs(&[(":method", "GET"), (":path", "/elsewhere")]);
    let v = p.decide(&req(&h));
    assert!(v.allowed());
    assert_eq!(v.shadowed[0].kind, BlockKind::RouteNotFound);
}

#[test]
fn connection_source_is_used_without_trusted_hops() {
    let p = policy(json!({
        "version": "v", "edge": "e",
        "ip_lists": [{"name": "office", "action": "allow", "cidrs": ["10.1.0.0/16"]}],
        "routes": [{"name": "r", "path": "/a", "methods": ["GET"]}]
    }));
    assert!(p.needs_source_address());
    let h = hdrs(&[
        (":method", "GET"),
        (":path", "/a"),
        ("x-forwarded-for", "10.1.2.3"),
    ]);
    let inside = Request::from_headers(&h, "10.1.9.9".parse().ok());
    assert!(p.decide(&inside).allowed());
    let outside = Request::from_headers(&h, "10.2.0.1".parse().ok());
    assert_eq!(
        p.decide(&outside).block.unwrap().kind,
        BlockKind::ClientNotAllowed
    );
    // Unknown source: allow lists deny by default.
    let unknown = Request::from_headers(&h, None);
    assert_eq!(
        p.decide(&unknown).block.unwrap().kind,
        BlockKind::ClientNotAllowed
    );
}

#[test]
fn problem_body_names_rule_and_request_id_only() {
    let p = policy(dealer());
    let h = get("/v1/vehicles/X", "203.0.113.5", &CREDS);
    let v = p.decide(&req(&h));
    let body = p
        .problem(v.block.as_ref().unwrap(), Some("abc-123"))
        .to_json();
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["type"], "urn:tollgate:problem:client-forbidden");
    assert_eq!(j["status"], 403);
    assert_eq!(j["rule"], "ip_list.dealer-networks");
    assert_eq!(j["request_id"], "abc-123");
    assert!(!body.contains("192.0.2"), "no CIDRs in the body: {body}");
    assert!(
        !body.contains("203.0.113.5"),
        "no client input in the body: {body}"
    );
}

#[test]
fn request_ids_are_sanitised() {
    use crate::sanitize_request_id;
    assert_eq!(sanitize_request_id(b"3f1c-9a"), Some("3f1c-9a"));
    assert_eq!(sanitize_request_id(b"<script>"), None);
    assert_eq!(sanitize_request_id(b""), None);
    assert_eq!(sanitize_request_id(&[b'a'; 129]), None);
}

#[test]
fn every_error_is_reported_with_its_path() {
    let errs = errors(json!({
        "version": "",
        "edge": "Retail Edge",
        "client_ip": {"trusted_hops": 11, "hops": 1},
        "routing": {"default": "maybe", "mode": "loud"},
        "ip_lists": [
            {"name": "a", "action": "block", "cidrs": ["10.0.0.1/8", "nope"]},
            {"name": "a", "action": "deny", "cidrs": [], "routes": ["ghost"]}
        ],
        "routes": [
            {"name": "r1", "path": "/v1/{x}/{x}", "methods": ["GET"]},
            {"name": "r1", "path": "/v1/b", "methods": ["GET", "GET"]},
            {"name": "r3", "path": "v1", "methods": ["POST"], "hosts": ["*", "a.com"]},
            {"name": "r4", "path": "/v1/c", "methods": ["GETT"], "metods": ["GET"],
             "required_headers": [":path", "x y", {"any_of": ["a"]}, 7]}
        ],
        "extra": true
    }));
    for needle in [
        "version: expected 1 to 128 printable",
        "edge: \"Retail Edge\" is not a valid name",
        "client_ip.trusted_hops: expected a whole number from 0 to 10",
        "client_ip.hops: unknown field",
        "routing.default: unknown default \"maybe\"",
        "routing.mode: unknown mode \"loud\"",
        "ip_lists[0].action: unknown action \"block\"",
        "ip_lists[0].cidrs[0]: \"10.0.0.1/8\" has host bits set",
        "ip_lists[0].cidrs[1]: \"nope\" is not an IP address",
        "ip_lists[1].name: IP list name \"a\" is used twice",
        "ip_lists[1].cidrs: the list needs at least one CIDR block",
        "ip_lists[1].routes[0]: no route is named \"ghost\"",
        "routes[0].path: parameter {x} appears twice",
        "routes[1].name: route name \"r1\" is used twice",
        "routes[1].methods[1]: method \"GET\" is listed twice",
        "routes[2].path: path template \"v1\" must start with '/'",
        "routes[2].hosts[0]: \"*\" matches every host",
        "routes[3].methods[0]: unknown method \"GETT\"",
        "routes[3].metods: unknown field",
        "routes[3].required_headers[0]: \":path\" is a pseudo-header",
        "routes[3].required_headers[1]: \"x y\" is not a valid header name",
        "routes[3].required_headers[2].any_of: any_of needs at least two",
        "routes[3].required_headers[3]: expected a header name or",
        "extra: unknown field",
    ] {
        has(&errs, needle);
    }
    assert_eq!(errs.len(), 24, "{errs:#?}");
}

#[test]
fn missing_required_fields_are_named() {
    let errs = errors(json!({"routes": [{}]}));
    for needle in [
        "version: required field is missing",
        "edge: required field is missing",
        "routes[0].name: required field is missing",
        "routes[0].path: required field is missing",
        "routes[0].methods: required field is missing",
    ] {
        has(&errs, needle);
    }
    let errs = errors(json!([1]));
    has(&errs, "(document): expected an object, found a list");
}

#[test]
fn struct_numbers_arrive_as_doubles_and_are_accepted() {
    let mut doc = dealer();
    doc["client_ip"]["trusted_hops"] = json!(1.0);
    assert_eq!(policy(doc).trusted_hops, 1);
    let mut doc = dealer();
    doc["client_ip"]["trusted_hops"] = json!(1.5);
    has(&errors(doc), "client_ip.trusted_hops");
}

#[test]
fn broken_json_is_one_error_with_a_position() {
    let errs = from_json("{\"version\": \"x\",\n  \"edge\": }").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].message.contains("line 2"), "{}", errs[0]);
}

#[test]
fn plugin_config_selects_embedded_policies() {
    let doc = dealer().to_string();
    let embedded: &[(&str, &str)] = &[("dealer", &doc)];
    let p = load_plugin_config(br#"{"embedded": "dealer"}"#, embedded).unwrap();
    assert_eq!(p.version(), "dealer-test-1");
    assert_eq!(p.edge(), "dealer");

    let e = load_plugin_config(br#"{"embedded": "nope"}"#, embedded).unwrap_err();
    assert!(
        e[0].to_string()
            .contains("no embedded policy named \"nope\""),
        "{e:?}"
    );
    let e = load_plugin_config(br#"{"embedded": "dealer", "x": 1}"#, embedded).unwrap_err();
    assert!(e[0].to_string().starts_with("x: unknown field"), "{e:?}");
    let e = load_plugin_config(b"  ", embedded).unwrap_err();
    assert!(e[0].message.contains("configuration is empty"), "{e:?}");
    let e = load_plugin_config(&[0xff], embedded).unwrap_err();
    assert!(
        e[0].message
            .contains("neither JSON text nor a google.protobuf.Struct"),
        "{e:?}"
    );
    let e = load_plugin_config(b"{\"version\": ", embedded).unwrap_err();
    assert!(e[0].message.contains("not valid JSON"), "{e:?}");

    let inline = load_plugin_config(doc.as_bytes(), &[]).unwrap();
    assert_eq!(
        inline.route_names().collect::<Vec<_>>(),
        ["vin-lookup", "vehicle-update", "warranty-claims"]
    );
}

#[test]
fn shadow_lists_make_a_missing_client_address_a_shadow_hit() {
    let p = policy(json!({
        "version": "v", "edge": "e", "client_ip": {"trusted_hops": 1},
        "ip_lists": [{"name": "watch", "action": "deny", "mode": "shadow", "cidrs": ["198.51.100.0/24"]}],
        "routes": [{"name": "r", "path": "/a", "methods": ["GET"]}]
    }));
    let h = hdrs(&[(":method", "GET"), (":path", "/a")]);
    let v = p.decide(&req(&h));
    assert!(v.allowed(), "{v:?}");
    assert_eq!(p.rules()[v.shadowed[0].rule.0].name, "client_address");

    // With an enforcing list as well, it refuses.
    let p = policy(json!({
        "version": "v", "edge": "e", "client_ip": {"trusted_hops": 1},
        "ip_lists": [
            {"name": "watch", "action": "deny", "mode": "shadow", "cidrs": ["198.51.100.0/24"]},
            {"name": "abuse", "action": "deny", "cidrs": ["203.0.113.0/24"]}
        ],
        "routes": [{"name": "r", "path": "/a", "methods": ["GET"]}]
    }));
    assert_eq!(
        p.decide(&req(&h)).block.unwrap().kind,
        BlockKind::ClientAddress
    );
}

#[test]
fn trusted_proxies_pin_the_peer() {
    let p = policy(json!({
        "version": "v", "edge": "e",
        "client_ip": {"trusted_hops": 1, "trusted_proxies": ["10.64.0.0/16"]},
        "routes": [{"name": "r", "path": "/a", "methods": ["GET"]}]
    }));
    assert!(p.needs_source_address());
    let h = hdrs(&[
        (":method", "GET"),
        (":path", "/a"),
        ("x-forwarded-for", "192.0.2.10"),
    ]);
    assert!(p
        .decide(&Request::from_headers(&h, "10.64.0.9".parse().ok()))
        .allowed());
    let v = p.decide(&Request::from_headers(&h, "192.0.2.10".parse().ok()));
    assert_eq!(v.block.unwrap().kind, BlockKind::ClientAddress);

    let errs = errors(json!({
        "version": "v", "edge": "e", "client_ip": {"trusted_proxies": ["10.0.0.0/8", "x"]},
        "routes": []
    }));
    has(
        &errs,
        "client_ip.trusted_proxies: trusted proxies need client_ip.trusted_hops",
    );
    has(
        &errs,
        "client_ip.trusted_proxies[1]: \"x\" is not an IP address",
    );
}

#[test]
fn more_mistakes_are_named() {
    let errs = errors(json!({
        "version": "v", "edge": "e",
        "ip_lists": [{"name": "l", "action": "allow", "cidrs": ["10.0.0.0/8"], "routes": ["broken"]}],
        "routes": [{"name": "broken", "methods": ["GETT"], "hosts": []}]
    }));
    has(
        &errs,
        "routes[0].hosts: hosts, when given, must name at least one host",
    );
    has(&errs, "routes[0].methods[0]: unknown method");
    has(&errs, "routes[0].path: required field is missing");
    assert!(
        !errs.iter().any(|e| e.contains("no route is named")),
        "a route with errors is still a route: {errs:#?}"
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");

    // An invalid trusted_hops is one error, not two.
    let errs = errors(json!({
        "version": "v", "edge": "e",
        "client_ip": {"trusted_hops": 11, "trusted_proxies": ["10.0.0.0/8"]}, "routes": []
    }));
    assert_eq!(errs.len(), 1, "{errs:#?}");

    let e = from_json(r#"{"version": "v", "edge": "e", "routes": [], "edge": "f"}"#).unwrap_err();
    assert!(e[0].message.contains("key \"edge\" appears twice"), "{e:?}");
}
