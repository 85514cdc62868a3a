//! Global limits of the real filter, in the host: the `ShouldRateLimit` call it makes, the
//! pause, and every way the call can end (an answer under or over the limit, an error status,
//! Envoy's timeout, an answer that does not decode, a cluster Envoy does not know).

use std::time::Duration;

use host_tests::{GrpcEvent, Plugin, PluginOptions, PluginSpec, Request};
use tollgate_core::global::{encode_request, Entry, Unit};

use crate::common::tollgate;

fn policy(mode: &str, on_failure: &str) -> String {
    format!(
        r#"{{"version":"g1","edge":"t","client_ip":{{"trusted_hops":1}},
            "routes":[{{"name":"login","path":"/login","methods":["POST"]}},
                      {{"name":"open","path":"/open","methods":["GET"]}}],
            "rate_limits":[{{"name":"fleet","scope":"global","key":["client_ip"],"rate":"10/min",
                "routes":[{{"route":"login","cost":2}}],
                "service":{{"cluster":"ratelimit","domain":"tollgate","timeout":"25ms"}},
                "on_failure":"{on_failure}","mode":"{mode}"}}]}}"#
    )
}

fn start_with(policy: &str, clusters: &[&str]) -> Plugin {
    let mut o = PluginOptions::new(PluginSpec::new(policy)).edge();
    o.clusters = clusters.iter().map(|c| c.to_string()).collect();
    Plugin::start(&tollgate(), o).unwrap_or_else(|e| panic!("{e}"))
}

fn start(mode: &str, on_failure: &str) -> Plugin {
    start_with(&policy(mode, on_failure), &["backend", "ratelimit"])
}

fn login(client: &str) -> Request {
    Request::new("POST", "/login")
        .header("x-forwarded-for", client)
        .header("content-type", "application/json")
        .body(r#"{"email":"a@example.com"}"#)
}

/// A `RateLimitResponse` as a service writes it: overall code, one status with the limit
/// (10 per minute), the hits left and the seconds to the window's end.
fn answer(code: u8, remaining: u8, reset: u8) -> Vec<u8> {
    let status = [
        0x08, code, // code
        0x12, 0x04, 0x08, 10, 0x10, 2, // current_limit: 10 per MINUTE
        0x18, remaining, // limit_remaining
        0x22, 0x02, 0x08, reset, // duration_until_reset: seconds
    ];
    let mut out = vec![0x08, code, 0x12, status.len() as u8];
    out.extend_from_slice(&status);
    out
}

/// The one call in flight: its worker and token, after checking what it carries.
fn the_call(p: &Plugin, client: &str) -> (usize, u32) {
    let calls = p.grpc_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (w, call) = &calls[0];
    assert_eq!(call.upstream, "ratelimit");
    assert_eq!(call.service, "envoy.service.ratelimit.v3.RateLimitService");
    assert_eq!(call.method, "ShouldRateLimit");
    assert!(!call.streaming);
    let entries = [
        Entry {
            key: "tollgate_limit".into(),
            value: "fleet".into(),
        },
        Entry {
            key: "client_ip".into(),
            value: client.into(),
        },
    ];
    assert_eq!(
        call.messages,
        vec![encode_request(
            "tollgate",
            &entries,
            Some((10, Unit::Minute)),
            2
        )],
        "domain, descriptor, the rate as its override, and the route's cost as hits"
    );
    (*w, call.token)
}

#[test]
fn the_request_waits_for_the_service_and_goes_on_with_its_rate_limit_headers() {
    let mut p = start("enforce", "open");
    let ex = p.send(login("192.0.2.1"));
    assert!(ex.pending(), "paused for the service: {ex:?}");
    let (w, token) = the_call(&p, "192.0.2.1");
    assert!(p.deliver_grpc(w, token, GrpcEvent::Message(answer(1, 7, 40))));
    let done = p.take_finished();
    assert_eq!(done.len(), 1);
    let ex = &done[0];
    assert_eq!(ex.status(), Some(200));
    let fwd = ex.forwarded.as_ref().expect("forwarded");
    assert_eq!(
        fwd.body, br#"{"email":"a@example.com"}"#,
        "the body waited with the headers"
    );
    let r = ex.response.as_ref().unwrap();
    assert_eq!(r.header("ratelimit-policy"), Some("\"fleet\";q=10;w=60"));
    assert_eq!(r.header("ratelimit"), Some("\"fleet\";r=7;t=40"));
    assert_eq!(p.metric("tollgate.t.rate_limit.fleet.allowed"), Some(1));
    // A route the limit does not name makes no call.
    let ex = p.send(Request::new("GET", "/open").header("x-forwarded-for", "192.0.2.1"));
    assert_eq!(ex.status(), Some(200));
    assert!(p.grpc_calls().is_empty());
}

#[test]
fn over_the_limit_is_a_429_problem_with_retry_after_and_the_services_numbers() {
    let mut p = start("enforce", "open");
    p.send(login("192.0.2.2"));
    let (w, token) = the_call(&p, "192.0.2.2");
    p.deliver_grpc(w, token, GrpcEvent::Message(answer(2, 0, 17)));
    let ex = p.take_finished().remove(0);
    assert_eq!(ex.status(), Some(429));
    assert!(ex.forwarded.is_none());
    let r = ex.response.as_ref().unwrap();
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.header("retry-after"), Some("17"));
    assert_eq!(r.header("ratelimit"), Some("\"fleet\";r=0;t=17"));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["status"], 429);
    // The request id Envoy's connection manager gave the request (it replaces a client's).
    assert_eq!(
        body["request_id"].as_str(),
        r.header("x-request-id"),
        "{body}"
    );
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(p.metric("tollgate.t.rate_limit.fleet.limited"), Some(1));
}

#[test]
fn in_shadow_mode_over_the_limit_goes_through_and_is_counted() {
    let mut p = start("shadow", "open");
    p.send(login("192.0.2.3"));
    let (w, token) = the_call(&p, "192.0.2.3");
    p.deliver_grpc(w, token, GrpcEvent::Message(answer(2, 0, 5)));
    let ex = p.take_finished().remove(0);
    assert_eq!(ex.status(), Some(200));
    assert_eq!(
        p.metric("tollgate.t.rule.rate_limit.fleet.shadow_blocked"),
        Some(1)
    );
}

#[test]
fn a_timeout_follows_on_failure_when_envoy_ends_the_call() {
    for (on_failure, status) in [("open", 200), ("closed", 503)] {
        let mut p = start("enforce", on_failure);
        let ex = p.send(login("192.0.2.4"));
        assert!(ex.pending());
        let (_, token) = the_call(&p, "192.0.2.4");
        let call = p.grpc_calls().remove(0).1;
        assert_eq!(
            call.deadline,
            Some(p.now() + 25_000_000),
            "the policy's timeout is the call's"
        );
        p.advance(Duration::from_millis(24));
        assert!(p.take_finished().is_empty(), "still waiting at 24 ms");
        p.advance(Duration::from_millis(1));
        let done = p.take_finished();
        assert_eq!(done.len(), 1, "answered at the timeout (call {token})");
        assert_eq!(done[0].status(), Some(status), "on_failure: {on_failure}");
        assert_eq!(
            p.metric(&format!("tollgate.t.rate_limit.fleet.failure_{on_failure}")),
            Some(1)
        );
        assert!(p.traps().is_empty());
    }
}

#[test]
fn an_error_status_or_an_answer_that_does_not_decode_is_a_failure() {
    let events = [
        GrpcEvent::Close {
            status: 14,
            message: "unavailable".into(),
        },
        GrpcEvent::Close {
            status: 3,
            message: "bad descriptor".into(),
        },
        GrpcEvent::Message(vec![0x12, 0x7f, 0x08]),
        GrpcEvent::Message(vec![0x0a, 0x01, 0x00]),
    ];
    for (i, event) in events.into_iter().enumerate() {
        let mut p = start("enforce", "closed");
        p.send(login("192.0.2.5"));
        let (w, token) = the_call(&p, "192.0.2.5");
        p.deliver_grpc(w, token, event);
        let ex = p.take_finished().remove(0);
        assert_eq!(ex.status(), Some(503), "event {i}");
        let body: serde_json::Value =
            serde_json::from_slice(&ex.response.as_ref().unwrap().body).unwrap();
        assert_eq!(body["status"], 503, "event {i}: a problem document");
        assert_eq!(
            p.metric("tollgate.t.rate_limit.fleet.failure_closed"),
            Some(1)
        );
        assert!(p.traps().is_empty(), "event {i}");
    }
}

#[test]
fn a_cluster_envoy_does_not_know_fails_at_once_and_nothing_waits() {
    for (on_failure, status) in [("open", 200), ("closed", 503)] {
        let mut p = start_with(&policy("enforce", on_failure), &["backend"]);
        let ex = p.send(login("192.0.2.6"));
        assert_eq!(ex.status(), Some(status), "not paused: {ex:?}");
        assert!(p.grpc_calls().is_empty());
        assert_eq!(
            p.metric(&format!("tollgate.t.rate_limit.fleet.failure_{on_failure}")),
            Some(1)
        );
    }
}

#[test]
fn without_its_key_the_limit_makes_no_call() {
    let mut p = start("enforce", "closed");
    // No X-Forwarded-For: the client address is unknown, so the key is missing.
    let ex = p.send(
        Request::new("POST", "/login")
            .header("content-type", "application/json")
            .body("{}"),
    );
    assert_ne!(ex.status(), None);
    assert!(p.grpc_calls().is_empty());
}

#[test]
fn an_answer_for_a_request_already_gone_is_ignored() {
    let mut p = start("enforce", "open");
    p.send(login("192.0.2.7"));
    let (w, token) = the_call(&p, "192.0.2.7");
    p.deliver_grpc(w, token, GrpcEvent::Message(answer(1, 9, 3)));
    assert_eq!(p.take_finished().len(), 1);
    // The same token again (the host drops it: the call is over) and a stray one.
    assert!(!p.deliver_grpc(w, token, GrpcEvent::Message(answer(2, 0, 3))));
    assert!(!p.deliver_grpc(w, token + 4, GrpcEvent::Message(answer(2, 0, 3))));
    assert!(p.traps().is_empty());
}
