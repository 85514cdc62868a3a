//! Envoy's own refusals (before or after Tollgate) are RFC 9457 problems with a request id too,
//! through the edges' `local_reply_config`; Tollgate's answers pass through it untouched.

use std::net::SocketAddr;

use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use harness::http::{send_raw, Request, Response};
use harness::wasm::ensure_wasm;

use crate::common::{assert_problem, stack};

/// Asserts Envoy's problem answer; `detail` is the start of Envoy's response code details, or
/// `None` where the body must carry none.
fn assert_envoy_problem(r: &Response, status: u16, detail: Option<&str>) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let body = r.json().unwrap();
    assert_eq!(body["type"], "about:blank", "{body}");
    assert_eq!(body["status"], status, "{body}");
    match detail {
        Some(detail) => assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with(detail)),
            "{body}"
        ),
        None => assert!(body.get("detail").is_none(), "{body}"),
    }
    let id = body["request_id"]
        .as_str()
        .expect("a request id")
        .to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    id
}

#[test]
fn malformed_requests_get_problem_answers_from_envoy() {
    let s = stack("retail", PluginConfig::Shipped);
    let addr = s.envoy.addr;

    // An escaped slash could smuggle a path past route matching: Envoy refuses it.
    let r = s.send(Request::new("GET", "/v1/orders/a%2Fb").header("x-forwarded-for", "192.0.2.10"));
    assert_envoy_problem(&r, 400, Some("path_normalization_failed"));

    // A header line without a colon.
    let r = send_raw(
        addr,
        b"GET /v1/dealers HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n",
        false,
    )
    .unwrap();
    assert_envoy_problem(&r, 400, Some("http1.codec_error"));

    // Headers over Envoy's limit.
    let big = "a".repeat(70_000);
    let r = s.send(Request::new("GET", "/v1/dealers").header("x-big", &big));
    assert_envoy_problem(&r, 431, Some("http1.headers_too_large"));

    // Tollgate's own refusal keeps its problem type, rule and the request id.
    let r = s.send(Request::new("GET", "/v1/nowhere").header("x-forwarded-for", "192.0.2.10"));
    assert_problem(&r, 404, "route-not-found", "routing");
    assert_eq!(s.backend.served(), 0);
}

#[test]
fn an_unreachable_backend_is_a_problem_with_the_request_id() {
    let wasm = ensure_wasm().unwrap();
    // Nothing listens on a port that was just bound and released.
    let closed: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let envoy = Envoy::start(&EdgeOptions::new("retail", closed, &wasm)).unwrap();
    let r = Request::new("GET", "/v1/dealers")
        .header("x-forwarded-for", "192.0.2.10")
        .send(envoy.addr)
        .unwrap();
    // No detail: Envoy's would describe the upstream.
    let id = assert_envoy_problem(&r, 503, None);
    assert_eq!(r.header("x-request-id"), Some(id.as_str()));

    // A client's own (empty) x-tollgate-refused mark does not switch the formatting off.
    let r = Request::new("GET", "/v1/dealers")
        .header("x-forwarded-for", "192.0.2.10")
        .header("x-tollgate-refused", "")
        .send(envoy.addr)
        .unwrap();
    assert_envoy_problem(&r, 503, None);
}
