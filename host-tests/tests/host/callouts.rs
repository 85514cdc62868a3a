//! Pausing, callouts, ticks and closing: what the test drives.

use std::time::Duration;

use host_tests::{GrpcEvent, Response};

use crate::common::{lines, probe, probe_with, report, scenario};

#[test]
fn a_paused_stream_waits_for_the_callout_and_resumes_when_answered() {
    let mut p = probe();
    let ex = p.send(scenario("callout"));
    assert!(ex.pending(), "{ex:?}");
    assert_eq!(
        lines(&ex.logs, "http_call"),
        vec!["http_call bad_cluster=2 bad_headers=2 ok=0 token=4"],
        "unknown cluster and missing :path are bad arguments; tokens start at 4"
    );
    let calls = p.http_calls();
    assert_eq!(calls.len(), 1);
    let (worker, call) = &calls[0];
    assert_eq!(call.upstream, "backend");
    assert_eq!(call.body, b"q");
    assert!(p.answer_http_call(*worker, call.token, Response::new(200, "alice")));
    let done = p.take_finished();
    assert_eq!(done.len(), 1);
    let ex = &done[0];
    assert_eq!(ex.status(), Some(200));
    assert_eq!(
        ex.forwarded.as_ref().unwrap().header("x-authorized"),
        Some("alice"),
        "the root context resumed the stream after setting it effective"
    );
    let logs = p.take_logs();
    let cb = lines(&logs, "cb http_call_response");
    assert_eq!(cb.len(), 1);
    assert!(
        cb[0].starts_with("cb http_call_response 1 4 1 5 0 status=200 body=0:alice"),
        "delivered to the root context: {}",
        cb[0]
    );
    assert_eq!(lines(&logs, "effective="), vec!["effective=0"]);
}

#[test]
fn a_callout_answer_can_refuse_the_stream() {
    let mut p = probe();
    p.send(scenario("callout"));
    let (w, call) = p.http_calls().remove(0);
    p.answer_http_call(w, call.token, Response::new(401, ""));
    let ex = p.take_finished().remove(0);
    assert_eq!(ex.status(), Some(403));
    assert_eq!(ex.details, "callout_denied");
    assert!(ex.forwarded.is_none());
}

#[test]
fn a_callout_times_out_on_the_virtual_clock_with_envoys_504() {
    let mut p = probe();
    p.send(scenario("callout"));
    p.advance(Duration::from_millis(1999));
    assert_eq!(p.http_calls().len(), 1, "not yet");
    p.advance(Duration::from_millis(1));
    assert!(p.http_calls().is_empty());
    let logs = p.take_logs();
    let cb = lines(&logs, "cb http_call_response");
    assert!(
        cb[0].contains("status=504 body=0:upstream request timeout"),
        "{}",
        cb[0]
    );
    assert_eq!(p.take_finished()[0].status(), Some(403));
}

#[test]
fn a_failed_callout_delivers_nothing_and_status_11() {
    let mut p = probe();
    p.send(scenario("callout"));
    let (w, call) = p.http_calls().remove(0);
    assert!(p.fail_http_call(w, call.token));
    let logs = p.take_logs();
    let cb = lines(&logs, "cb http_call_response");
    assert!(
        cb[0].starts_with(
            "cb http_call_response 1 4 0 0 0 status= body=1:(none) get_status=11:reset"
        ),
        "{}",
        cb[0]
    );
    assert!(!p.fail_http_call(w, call.token), "answered once only");
}

#[test]
fn grpc_calls_and_streams_deliver_their_callbacks() {
    let mut p = probe();
    let r = report(&p.send(scenario("grpc")));
    assert_eq!(
        r["unknown_cluster"], "4",
        "ParseFailure, as Envoy says for gRPC"
    );
    assert_eq!(r["call"], "0:1", "unary call tokens are 1 mod 4");
    assert_eq!(r["stream"], "0:2", "stream tokens are 2 mod 4");
    assert_eq!(r["send_call"], "2");
    assert_eq!(r["send_stream"], "0");
    assert_eq!(r["cancel_unknown"], "1");
    assert_eq!(r["cancel_http"], "2");
    assert_eq!(r["half_close"], "0");
    let (call, stream): (u32, u32) = {
        let (a, b) = r["tokens"].split_once(',').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    // The target as a GrpcService: a known cluster is a call; an unknown one fails inline
    // (InternalFailure), where a bare unknown name is a parse failure (as Envoy does both).
    assert_eq!(r["proto_known"], "0:1");
    assert_eq!(r["proto_unknown"], "10");
    let open = p.grpc_calls();
    assert_eq!(open.len(), 3);
    let proto = open
        .iter()
        .find(|(_, c)| c.token != call && c.token != stream)
        .unwrap();
    assert_eq!(
        proto.1.upstream, "backend",
        "the cluster the GrpcService names"
    );
    let proto = proto.1.token;
    assert!(p.deliver_grpc(
        0,
        proto,
        GrpcEvent::Close {
            status: 4,
            message: "done".into()
        }
    ));
    let s = open.iter().find(|(_, c)| c.token == stream).unwrap();
    assert_eq!(s.1.messages, vec![b"hello".to_vec()]);
    assert!(s.1.half_closed);
    p.take_logs();

    // A unary call ends with its answer: no close callback.
    assert!(p.deliver_grpc(0, call, GrpcEvent::Message(b"ok".to_vec())));
    assert!(!p.deliver_grpc(0, call, GrpcEvent::Message(b"again".to_vec())));
    // A stream: metadata, a message, trailers, close with a status the callback can read.
    p.deliver_grpc(
        0,
        stream,
        GrpcEvent::InitialMetadata(vec![(b"k".to_vec(), b"v".to_vec())]),
    );
    p.deliver_grpc(0, stream, GrpcEvent::Message(b"m1".to_vec()));
    p.deliver_grpc(0, stream, GrpcEvent::TrailingMetadata(vec![]));
    p.deliver_grpc(
        0,
        stream,
        GrpcEvent::Close {
            status: 14,
            message: "unavailable".into(),
        },
    );
    let logs: Vec<String> = lines(&p.take_logs(), "cb grpc");
    assert_eq!(
        logs,
        vec![
            format!("cb grpc_receive 1 {call} 2 ok"),
            format!("cb grpc_initial 1 {stream} 1 [(\"k\", \"v\")]"),
            format!("cb grpc_receive 1 {stream} 2 m1"),
            format!("cb grpc_trailing 1 {stream} 0"),
            format!("cb grpc_close 1 {stream} 14 get_status=14:unavailable"),
        ]
    );
    assert!(p.grpc_calls().is_empty());
}

#[test]
fn ticks_fire_on_the_virtual_clock_per_worker() {
    let mut p = probe_with("tick=1000", |o| o.workers(2));
    p.advance(Duration::from_millis(3500));
    assert_eq!(
        p.metric("probe.ticks"),
        Some(9),
        "3 ticks on each of 2 workers and on the main thread's VM"
    );
    p.advance(Duration::from_millis(500));
    assert_eq!(p.metric("probe.ticks"), Some(12));
    let ticks = lines(&p.take_logs(), "cb tick 1");
    assert_eq!(ticks.len(), 12, "delivered to the root context");
}

#[test]
fn continue_and_end_stream_continues_as_in_envoy() {
    let mut p = probe();
    let ex = p.send(scenario("continue-end"));
    assert_eq!(ex.status(), Some(200), "{ex:?}");
    assert!(ex.forwarded.is_some());
}

#[test]
fn a_paused_stream_stays_paused_and_close_resets() {
    let mut p = probe();
    let ex = p.send(scenario("pause"));
    assert!(ex.pending());
    p.advance(Duration::from_secs(60));
    assert!(p.take_finished().is_empty(), "nobody continued it");

    let ex = p.send(scenario("close"));
    assert!(ex.reset);
    assert!(ex.response.is_none());
    assert_eq!(ex.details, "wasm_close_stream");
    assert!(ex.forwarded.is_none());
}

#[test]
fn a_root_context_can_finish_its_shutdown_later_with_proxy_done() {
    // Two root contexts: the worker's and the main thread's VM's.
    let mut p = probe_with("done=later,tick=100", |o| o);
    p.take_logs();
    assert!(!p.shutdown(), "on_done said not yet");
    let logs = p.take_logs();
    assert_eq!(lines(&logs, "cb done 1").len(), 2);
    assert!(lines(&logs, "cb delete 1").is_empty());
    assert!(!p.finish_shutdown(), "proxy_done not called yet");
    // The probe calls proxy_done on its next tick.
    p.advance(Duration::from_millis(100));
    assert_eq!(
        lines(&p.take_logs(), "proxy_done="),
        vec!["proxy_done=0", "proxy_done=0"]
    );
    assert!(p.finish_shutdown());
    assert_eq!(lines(&p.take_logs(), "cb delete 1").len(), 2);

    let mut p = probe();
    p.take_logs();
    assert!(p.shutdown());
    assert_eq!(lines(&p.take_logs(), "cb delete 1").len(), 2);
}
