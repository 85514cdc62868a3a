//! Request validation and body handling of the real filter, in the host: the ways around the
//! checks that a review found, each pinned.

use host_tests::{Plugin, PluginOptions, PluginSpec, Request};

use crate::common::tollgate;

fn start(json: &str) -> Plugin {
    Plugin::start(
        &tollgate(),
        PluginOptions::new(PluginSpec::new(json)).edge(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

const POLICY: &str = r#"{"version":"v","edge":"t","client_ip":{"trusted_hops":1},
  "validation":{"max":{"body":1000}},
  "routes":[
    {"name":"claims","path":"/claims","methods":["POST"],
     "validate":{"content_types":["application/json"],"headers":{"x-dealer-id":{"type":"string","pattern":"D-[0-9]{4}"}},
                 "schema":{"type":"object","required":["vin"],"additionalProperties":false,
                           "properties":{"vin":{"type":"string","format":"vin"},"note":{"type":"string"}}}}},
    {"name":"docs","path":"/docs","methods":["POST"]},
    {"name":"login","path":"/login","methods":["POST"]},
    {"name":"items","path":"/items","methods":["GET"]}],
  "rate_limits":[
    {"name":"per-account","key":[{"body_field":"email"}],"rate":"1/h","burst":2,"routes":["login"]},
    {"name":"per-dealer","key":[{"header":"x-dealer-id"}],"rate":"1/h","burst":3,"routes":["items"]},
    {"name":"per-ip","key":["client_ip"],"rate":"1/h","burst":1,"routes":["items"]}]}"#;

fn post(path: &str, body: &str) -> Request {
    Request::new("POST", path)
        .header("x-forwarded-for", "192.0.2.1")
        .header("content-type", "application/json")
        .body(body)
}

#[test]
fn a_body_followed_by_trailers_is_still_checked() {
    let mut p = start(POLICY);
    let bad = post("/claims", r#"{"vin":"not a vin"}"#)
        .header("x-dealer-id", "D-1001")
        .trailer("x-checksum", "1");
    let ex = p.send(bad);
    assert_eq!(ex.status(), Some(400), "{ex:?}");
    assert!(ex.forwarded.is_none());
    let good = post("/claims", r#"{"vin":"WVWZZZ1JZXW000001"}"#)
        .header("x-dealer-id", "D-1001")
        .trailer("x-checksum", "1");
    let ex = p.send(good);
    assert_eq!(ex.status(), Some(200), "{ex:?}");
    let f = ex.forwarded.unwrap();
    assert_eq!(f.body, br#"{"vin":"WVWZZZ1JZXW000001"}"#);
    assert!(f.trailers.is_some());
}

#[test]
fn a_body_without_a_length_is_capped_as_it_arrives() {
    let mut p = start(POLICY);
    let chunked = |n: usize| {
        Request::new("POST", "/docs")
            .header("x-forwarded-for", "192.0.2.1")
            .header("transfer-encoding", "chunked")
            .chunks(vec![vec![b'x'; n / 2], vec![b'x'; n - n / 2]])
    };
    assert_eq!(p.send(chunked(900)).status(), Some(200));
    let ex = p.send(chunked(1200));
    assert_eq!(ex.status(), Some(413));
    assert!(ex.forwarded.is_none());
}

#[test]
fn duplicate_members_and_repeated_headers_are_refused() {
    let mut p = start(POLICY);
    let ex = p.send(
        post("/claims", r#"{"vin":"WVWZZZ1JZXW000001","vin":"x"}"#).header("x-dealer-id", "D-1001"),
    );
    assert_eq!(
        ex.status(),
        Some(400),
        "a backend keeping the first copy would see another body"
    );
    let ex = p.send(
        post("/claims", r#"{"vin":"WVWZZZ1JZXW000001"}"#)
            .header("x-dealer-id", "D-1001")
            .header("x-dealer-id", "../../etc"),
    );
    assert_eq!(ex.status(), Some(400));
    let body = ex.response.unwrap().json().unwrap();
    assert_eq!(body["invalid_params"][0]["reason"], "may appear only once");
}

#[test]
fn leaving_out_the_keyed_field_does_not_escape_the_limit() {
    let mut p = start(POLICY);
    // Without the email (or with it in another shape) requests share one bucket of 2.
    for (i, body) in [
        r#"{"user":"victim"}"#,
        r#"{"email":["victim"]}"#,
        "not json",
    ]
    .iter()
    .enumerate()
    {
        let expect = if i < 2 { 200 } else { 429 };
        assert_eq!(
            p.send(post("/login", body)).status(),
            Some(expect),
            "{body}"
        );
    }
    // Named accounts have their own.
    assert_eq!(
        p.send(post("/login", r#"{"email":"ann@example.com"}"#))
            .status(),
        Some(200)
    );
}

#[test]
fn a_request_refused_by_one_limit_costs_the_others_nothing() {
    let mut p = start(POLICY);
    let get = |ip: &str| {
        Request::new("GET", "/items")
            .header("x-forwarded-for", ip)
            .header("x-dealer-id", "D-1001")
    };
    assert_eq!(p.send(get("192.0.2.1")).status(), Some(200));
    // Refused by the per-IP limit (burst 1): the per-dealer limit, checked first, is not charged.
    let ex = p.send(get("192.0.2.1"));
    assert_eq!(ex.status(), Some(429));
    assert_eq!(
        ex.response.unwrap().json().unwrap()["rule"],
        "rate_limit.per-ip"
    );
    let ex = p.send(get("192.0.2.2"));
    assert_eq!(ex.status(), Some(200));
    let state = ex.response.unwrap().header("ratelimit").unwrap().to_owned();
    assert!(
        state.starts_with("\"per-dealer\";r=1;"),
        "two of the dealer's three used, not three: {state}"
    );
}

/// Detection holds text bodies; where no route matched (`routing.default: allow`) the body cap
/// bounds what is held, and the refusal names detection's protocol rule. The default cap (1 MiB)
/// is Envoy's default buffer limit too, and Envoy's limit counts first: what the plugin buffers
/// past it gets Envoy's own 413 (`request_payload_too_large`, a problem document once the edges'
/// local_reply_config has made it one). So the plugin's cap is tested behind a 2 MiB limit (a
/// listener with a larger `per_connection_buffer_limit_bytes`). Either way nothing is forwarded.
#[test]
fn a_body_held_only_for_detection_is_capped_and_read() {
    const POLICY: &str = r#"{"version":"v","edge":"t","routing":{"default":"allow"},"detection":{},
            "routes":[{"name":"items","path":"/items","methods":["GET"]}]}"#;
    let mut options = PluginOptions::new(PluginSpec::new(POLICY)).edge();
    options.buffer_limit = Some(2 << 20);
    let mut p = Plugin::start(&tollgate(), options).unwrap();
    let ex = p.send(
        Request::new("POST", "/anything")
            .header("content-type", "text/plain")
            .header("user-agent", "t")
            .body("note: it's fine"),
    );
    assert_eq!(ex.status(), Some(200), "{ex:?}");
    let ex = p.send(
        Request::new("POST", "/anything")
            .header("content-type", "text/plain")
            .header("user-agent", "t")
            .body("x'; DROP TABLE users; --"),
    );
    assert_eq!(ex.status(), Some(403), "{ex:?}");
    let big = |n: usize| {
        Request::new("POST", "/anything")
            .header("content-type", "text/plain")
            .header("user-agent", "t")
            .body("a".repeat(n))
    };
    let ex = p.send(big(1024 * 1024));
    assert_eq!(ex.status(), Some(200), "at the cap: {ex:?}");
    let ex = p.send(big(1024 * 1024 + 1));
    assert_eq!(ex.status(), Some(413), "{ex:?}");
    let body = String::from_utf8_lossy(&ex.response.as_ref().unwrap().body).into_owned();
    assert!(body.contains("\"rule\":\"detection.protocol\""), "{body}");
    assert!(ex.forwarded.is_none());

    let mut p = start(POLICY);
    let ex = p.send(big(2 * 1024 * 1024));
    assert_eq!(ex.status(), Some(413), "{ex:?}");
    assert_eq!(
        ex.details, "request_payload_too_large",
        "Envoy's limit: {ex:?}"
    );
    assert!(ex.forwarded.is_none());
}
