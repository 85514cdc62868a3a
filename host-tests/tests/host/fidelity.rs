//! Where a host most easily answers otherwise than Envoy, the probe runs the same requests in
//! real Envoy and in the host, both with Envoy's defaults (no `failure_policy`, and no
//! `local_reply_config`, which the host does not model), and the answers must agree:
//! local-reply headers and their order, HEAD, the 503 after a trap, the buffer limit, a header
//! value with a bare LF, how body calls are framed, the default failure policy and the canary VM.
//!
//! What is compared: the status; the client's headers in order, without the ones Envoy's
//! connection manager adds (`date`, `server`, `x-request-id`, `connection`, the router's
//! `x-envoy-upstream-service-time`); the body; and the plugin's own account of its callbacks,
//! with context ids taken out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::backend::Backend;
use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use harness::http::Request as Wire;
use host_tests::{Exchange, Forwarded, Plugin, PluginOptions, PluginSpec, Request, Response};

use crate::common::probe_host;

const ENVOYS_OWN: &[&str] = &[
    "date",
    "server",
    "x-request-id",
    "connection",
    "x-envoy-upstream-service-time",
];

struct Both {
    envoy: Envoy,
    backend: Backend,
    host: Plugin,
    /// How much of Envoy's log earlier requests took.
    seen: usize,
}

/// An upstream that answers as the demo backend does to `x-demo-bytes: N` (N bytes of `x`,
/// framed by content-length), and with a short body otherwise.
fn upstream() -> host_tests::Upstream {
    Arc::new(|f: &Forwarded| {
        let n: usize = f
            .header("x-demo-bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        Response::new(200, vec![b'x'; n])
            .with_header("content-type", "application/json")
            .with_header("content-length", &n.to_string())
            .with_header("x-demo-backend", "1")
    })
}

fn both() -> Both {
    let wasm = harness::wasm::ensure_probe().unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let mut o = EdgeOptions::new("retail", backend.addr, &wasm);
    o.plugin_config = PluginConfig::Text(String::new());
    o.plain_local_replies = true;
    o.default_failure_policy = true;
    o.wasm_log_level = "debug";
    let envoy = Envoy::start(&o).unwrap();
    let mut spec = PluginSpec::new("");
    spec.vm_id = "tollgate-retail".into();
    spec.name = "tollgate-retail".into();
    spec.root_id = "tollgate".into();
    spec.allow_on_headers_stop_iteration = true;
    let host = Plugin::start(&probe_host(), PluginOptions::new(spec).upstream(upstream())).unwrap();
    Both {
        envoy,
        backend,
        host,
        seen: 0,
    }
}

/// The plugin's lines about a stream's callbacks, without the context id (the second word of
/// a `cb` line), and without the router's header in the names it saw.
fn callbacks<'a>(messages: impl Iterator<Item = &'a str>) -> Vec<String> {
    messages
        .filter(|m| {
            [
                "cb request_body",
                "cb response_headers",
                "cb response_body",
                "response header names=",
            ]
            .iter()
            .any(|p| m.starts_with(p))
        })
        .map(|m| {
            let mut words: Vec<&str> = m.split(' ').collect();
            if m.starts_with("cb ") && words.len() > 2 {
                words.remove(2);
            }
            // The number of response headers: the router adds one of its own.
            if m.starts_with("cb response_headers") && words.len() > 2 {
                words.remove(2);
            }
            words
                .join(" ")
                .replace(",x-envoy-upstream-service-time", "")
        })
        .collect()
}

/// The client's headers without those Envoy's connection manager adds, in order.
fn own_headers(h: &[(String, String)]) -> Vec<(String, String)> {
    h.iter()
        .filter(|(k, _)| !ENVOYS_OWN.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn host_headers(r: &Response) -> Vec<(String, String)> {
    let h: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    own_headers(&h)
}

/// One request sent to both.
struct Sent {
    envoy: Seen,
    host: Exchange,
    /// The host's account of the plugin's callbacks.
    host_calls: Vec<String>,
    /// Whether Envoy's backend saw the request.
    reached: bool,
}

struct Seen {
    /// What the client got, or why it got nothing.
    answer: Result<harness::http::Response, String>,
    callbacks: Vec<String>,
}

impl Both {
    /// Sends `req` to Envoy and waits until the plugin has deleted the stream's context.
    fn envoy(&mut self, req: &Wire) -> Seen {
        let answer = req.send(self.envoy.addr).map_err(|e| format!("{e:#}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let text = loop {
            let log = self.envoy.log();
            let new = log.get(self.seen..).unwrap_or_default().to_owned();
            // The stream's context is deleted, or the VM trapped and will not delete it.
            if new.contains(": cb delete ") || new.contains("] Function: ") {
                self.seen = log.len();
                break new;
            }
            assert!(
                Instant::now() < deadline,
                "no on_delete in Envoy's log: {new}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let messages = text
            .lines()
            .filter(|l| l.contains("wasm log tollgate-retail"))
            .filter_map(|l| l.split_once("tollgate-retail: ").map(|(_, m)| m));
        Seen {
            answer,
            callbacks: callbacks(messages),
        }
    }

    fn host(&mut self, req: Request) -> (Exchange, Vec<String>) {
        let ex = self.host.send(req);
        let cbs = callbacks(ex.logs.iter().map(|l| l.message.as_str()));
        (ex, cbs)
    }

    /// Sends the same probe request to Envoy and to the host.
    fn both(&mut self, method: &str, scenario: &str, extra: &[(&str, &str)], body: &[u8]) -> Sent {
        let mut wire = Wire::new(method, "/probe").header("x-probe", scenario);
        let mut req = Request::new(method, "/probe").header("x-probe", scenario);
        for (k, v) in extra {
            wire = wire.header(k, v);
            req = req.header(k, v);
        }
        if !body.is_empty() {
            wire = wire.body(body.to_vec());
            req = req.body(body.to_vec());
        }
        let before = self.backend.served();
        let envoy = self.envoy(&wire);
        let reached = self.backend.served() > before;
        let (host, host_calls) = self.host(req);
        Sent {
            envoy,
            host,
            host_calls,
            reached,
        }
    }

    /// Sends the same request to both; requires the same status, client headers, body and
    /// callbacks. Returns both sides for further checks.
    fn same(
        &mut self,
        method: &str,
        scenario: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> (Seen, Exchange) {
        let Sent {
            envoy: e,
            host: h,
            host_calls: cbs,
            ..
        } = self.both(method, scenario, extra, body);
        let what = format!("{method} {scenario} {extra:?} ({} body bytes)", body.len());
        let er = e
            .answer
            .as_ref()
            .unwrap_or_else(|err| panic!("{what}: Envoy: {err}"));
        let hr = h
            .response
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: host: {h:?}"));
        assert_eq!(u32::from(er.status), hr.status, "{what}: status");
        assert_eq!(
            own_headers(&er.headers),
            host_headers(hr),
            "{what}: the client's headers"
        );
        assert_eq!(er.body.len(), hr.body.len(), "{what}: body length");
        assert!(er.body == hr.body, "{what}: body");
        assert_eq!(e.callbacks, cbs, "{what}: the plugin's callbacks");
        (e, h)
    }
}

#[test]
fn local_replies_carry_envoys_headers_in_envoys_order_and_head_gets_no_body() {
    let mut b = both();
    // The plugin's headers in its order, then content-length, then the default content-type;
    // a content-type of the plugin's stays where it put it.
    let (e, _) = b.same("GET", "reply-order", &[], b"");
    let names: Vec<String> = own_headers(&e.answer.unwrap().headers)
        .into_iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(
        names,
        [
            "x-b",
            "x-a",
            "content-length",
            "content-type",
            "x-probe-response"
        ],
        "Envoy's order, as the client sees it"
    );
    b.same("GET", "reply-order-ct", &[], b"");
    // No body: no length from the reply; the codec says content-length: 0 on the way out.
    let (e, h) = b.same("GET", "reply-empty", &[], b"");
    assert_eq!(e.answer.unwrap().header("content-length"), Some("0"));
    assert!(h
        .logs
        .iter()
        .any(|l| l.message == "response header names=:status,x-a,x-probe-response"));
    // HEAD: the headers end the stream (no body call) and the client gets no body, its
    // content-length notwithstanding.
    let (e, _) = b.same("HEAD", "reply-order", &[], b"");
    assert!(
        e.callbacks
            .iter()
            .any(|c| c.starts_with("cb response_headers 1 ")),
        "{:?}",
        e.callbacks
    );
    assert!(!e
        .callbacks
        .iter()
        .any(|c| c.starts_with("cb response_body")));
    b.same("HEAD", "reply-empty", &[], b"");
}

#[test]
fn body_calls_are_framed_as_http1_frames_them_and_the_buffer_limit_holds() {
    let mut b = both();
    // Streamed: (10 bytes, not the end), then (0 bytes, the end); the response likewise.
    let (e, _) = b.same(
        "POST",
        "stream-body",
        &[("x-demo-bytes", "100")],
        b"0123456789",
    );
    assert_eq!(
        e.callbacks
            .iter()
            .filter(|c| c.starts_with("cb request_body") || c.starts_with("cb response_body"))
            .collect::<Vec<_>>(),
        [
            "cb request_body 10 0",
            "cb request_body 0 1",
            "cb response_body 100 0",
            "cb response_body 0 1"
        ]
    );
    // Buffered (Pause until the end): the end call carries the buffered bytes.
    b.same(
        "POST",
        "hold-body",
        &[("x-demo-bytes", "100")],
        b"0123456789",
    );
    b.same("GET", "hold-response", &[("x-demo-bytes", "100")], b"");
    // Half a megabyte comes in reads of their own sizes; the last call has it all.
    let Sent {
        envoy: e,
        host: h,
        host_calls: calls,
        ..
    } = b.both("GET", "hold-response", &[("x-demo-bytes", "524288")], b"");
    assert_eq!(e.callbacks.last(), calls.last());
    assert_eq!(
        calls.last().map(String::as_str),
        Some("cb response_body 524288 1")
    );
    assert_eq!(e.answer.unwrap().body, h.response.unwrap().body);

    // The 1 MiB buffer limit. Envoy's reads are as large as they come, so only the outcome of a
    // large body is compared, not its calls.
    let mib = 1 << 20;
    let outcome = |b: &mut Both, scenario: &str, extra: &[(&str, &str)], body: Vec<u8>| {
        let Sent {
            envoy: e,
            host: h,
            reached,
            ..
        } = b.both("POST", scenario, extra, &body);
        let e = e.answer.unwrap();
        let hr = h.response.clone().unwrap();
        assert_eq!(u32::from(e.status), hr.status, "{scenario}: status");
        assert_eq!(
            reached,
            h.forwarded.is_some(),
            "{scenario}: reached the upstream"
        );
        assert_eq!(
            own_headers(&e.headers),
            host_headers(&hr),
            "{scenario}: headers"
        );
        assert_eq!(e.body, hr.body, "{scenario}: body");
        (e.status, reached, h)
    };
    let (status, reached, _) = outcome(
        &mut b,
        "hold-body",
        &[("x-demo-bytes", "2")],
        vec![b'a'; mib - 65536],
    );
    assert_eq!((status, reached), (200, true), "buffered under the limit");
    let (status, reached, h) = outcome(
        &mut b,
        "hold-body",
        &[("x-demo-bytes", "2")],
        vec![b'a'; mib + 65536],
    );
    assert_eq!((status, reached), (413, false), "buffered past the limit");
    assert_eq!(h.details, "request_payload_too_large");
    let (status, reached, _) = outcome(
        &mut b,
        "stream-body",
        &[("x-demo-bytes", "2")],
        vec![b'a'; 2 * mib],
    );
    assert_eq!(
        (status, reached),
        (200, true),
        "streamed, the limit does not apply"
    );

    let size = (2 * mib).to_string();
    // The response side: buffered past the limit, the stream is reset after its headers went
    // out; the client has a 200 and none of the body.
    let Sent {
        envoy: e, host: h, ..
    } = b.both("GET", "hold-response", &[("x-demo-bytes", &size)], b"");
    let e = e.answer.unwrap();
    assert_eq!(
        (e.status, e.body.len()),
        (200, 0),
        "Envoy: headers, then the reset"
    );
    assert!(h.reset, "{h:?}");
    let hr = h.response.clone().unwrap();
    assert_eq!((hr.status, hr.body.len()), (200, 0), "the host: the same");
    assert_eq!(own_headers(&e.headers), host_headers(&hr));
    assert_eq!(h.details, "response_payload_too_large");
    // Streamed, a large response goes through whole, in both.
    let Sent {
        envoy: e, host: h, ..
    } = b.both("GET", "forward", &[("x-demo-bytes", &size)], b"");
    assert_eq!(e.answer.unwrap().body.len(), 2 * mib);
    assert_eq!(h.response.map(|r| r.body.len()), Some(2 * mib));
    assert!(!h.reset);
}

#[test]
fn a_header_value_with_a_bare_lf_leaves_the_client_without_a_response() {
    let mut b = both();
    let Sent {
        envoy: e, host: h, ..
    } = b.both("GET", "lf-header", &[], b"");
    let err = e
        .answer
        .expect_err("Envoy wrote the LF; the client cannot parse it");
    assert!(err.contains("invalid header"), "{err}");
    assert!(h.response.is_none(), "{h:?}");
    let why = h.client_error.clone().unwrap();
    assert!(why.contains("cannot parse"), "{why}");
    // Envoy accepted the value from the plugin, as the host does.
    assert!(h.logs.iter().any(|l| l.message == "add lf=0"));
}

#[test]
fn without_a_failure_policy_a_trap_closes_the_worker_and_a_canary_vm_starts_first() {
    let mut b = both();
    // A canary VM, then the main thread's, then the worker's: three starts for one worker.
    let starts = |messages: &mut dyn Iterator<Item = String>| {
        messages
            .filter(|m| m.starts_with("cb vm_start") || m.starts_with("cb configure"))
            .count()
    };
    let envoy_starts = starts(
        &mut b
            .envoy
            .log()
            .lines()
            .filter_map(|l| l.split_once("tollgate-retail: ").map(|(_, m)| m.to_owned())),
    );
    let host_logs = b.host.take_logs();
    let host_starts = starts(&mut host_logs.iter().map(|l| l.message.clone()));
    assert_eq!(
        (envoy_starts, host_starts),
        (6, 6),
        "vm_start and configure, three times each"
    );
    assert!(host_logs.iter().any(|l| l.worker == host_tests::CANARY));
    assert!(
        host_logs.iter().any(|l| l.worker == 1),
        "the main thread's VM"
    );

    // A trap: a 503 that the filter never sees, with only the codec's content-length: 0.
    let Sent {
        envoy: trap,
        host: h,
        ..
    } = b.both("GET", "trap", &[], b"");
    let e = trap.answer.unwrap();
    let hr = h.response.clone().unwrap();
    assert_eq!((u32::from(e.status), hr.status), (503, 503));
    assert_eq!(
        own_headers(&e.headers),
        [("content-length".to_owned(), "0".to_owned())]
    );
    assert_eq!(own_headers(&e.headers), host_headers(&hr));
    // FAIL_CLOSED: well past Envoy's reload backoff, the worker still answers 503.
    std::thread::sleep(Duration::from_millis(1500));
    b.host.advance(Duration::from_millis(1500));
    let e = Wire::new("GET", "/probe")
        .header("x-probe", "forward")
        .send(b.envoy.addr)
        .unwrap();
    let h = b
        .host
        .send(Request::new("GET", "/probe").header("x-probe", "forward"));
    assert_eq!((u32::from(e.status), h.status()), (503, Some(503)));
    assert_eq!(b.host.generation(0), 1, "no reload");
}
