//! Conformance: every case of `policies/cases/` runs in the wasmtime host and in real Envoy
//! (the shipped bootstrap, the same `.wasm`), and both must give the same answer: status, the
//! headers that matter, the body, whether the backend saw the request, and the counters. Where
//! they differ, the host is wrong.

use std::collections::BTreeMap;

use anyhow::Result;
use harness::backend::Backend;
use harness::envoy::{EdgeOptions, Envoy};
use host_tests::cases::{self, CaseRequest, Observed, Target, WasmTarget};
use serde_json::Value;

use crate::common::tollgate;

/// Real Envoy with the edge's shipped configuration, in front of the demo backend.
struct EnvoyTarget {
    edge: String,
    backend: Backend,
    envoy: Envoy,
}

impl EnvoyTarget {
    fn start(edge: &str) -> EnvoyTarget {
        let wasm = harness::wasm::ensure_wasm().expect("building the filter");
        let backend = Backend::start("127.0.0.1:0").expect("starting the backend");
        let o = EdgeOptions::new(edge, backend.addr, &wasm);
        let envoy = Envoy::start(&o).expect("starting Envoy");
        EnvoyTarget {
            edge: edge.to_owned(),
            backend,
            envoy,
        }
    }

    fn metrics(&self) -> Result<BTreeMap<String, i64>> {
        let all: BTreeMap<String, i64> = self
            .envoy
            .stats(&format!("wasmcustom.tollgate.{}.", self.edge))?
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("wasmcustom.")?.to_owned(), v as i64)))
            .collect();
        Ok(cases::edge_metrics(&all, &self.edge))
    }
}

impl Target for EnvoyTarget {
    fn send(&mut self, req: &CaseRequest) -> Result<Observed> {
        let before = self.metrics()?;
        let served = self.backend.served();
        let mut r = harness::http::Request::new(&req.method, &req.path);
        // The authority the wasmtime host gives every case (`edge.test`), unless the case sets
        // its own: the Core Rule Set reads Host (a numeric one scores, 920350).
        if !req
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            r = r.header("host", &host_tests::Request::new("GET", "/").authority);
        }
        for (k, v) in &req.headers {
            r = r.header(k, v);
        }
        if let Some(b) = &req.body {
            r = r.body(b.as_bytes());
        }
        let resp = r.send(self.envoy.addr)?;
        // Counters are flushed to the admin page at once for wasm metrics; read them after.
        let after = self.metrics()?;
        Ok(Observed {
            status: u32::from(resp.status),
            headers: resp.headers,
            body: resp.body,
            upstream: self.backend.served() > served,
            metrics: cases::metric_delta(&before, &after),
        })
    }
}

/// Headers whose values must agree between the hosts.
const HEADERS_THAT_MATTER: &[&str] = &[
    "content-type",
    "cache-control",
    "allow",
    "ratelimit-policy",
    "x-demo-backend",
    "x-tollgate-refused",
];

/// The body with what legitimately differs taken out: the request id (Envoy issues its own
/// to external clients; it must still equal the response's `x-request-id`) and, in the
/// backend's echo, the header names (Envoy adds its own headers on the way upstream).
fn comparable(o: &Observed, problems: &mut Vec<String>, host: &str) -> Value {
    let Some(mut v) = o.json() else {
        return Value::String(String::from_utf8_lossy(&o.body).into_owned());
    };
    if let Some(obj) = v.as_object_mut() {
        if let Some(Value::String(d)) = obj.get_mut("detail") {
            // Seconds in a rate-limit detail follow the clock; see `compare`.
            *d = digits_as_n(d);
        }
        if o.header("content-type") == Some("application/problem+json") {
            let id = obj.remove("request_id");
            let header = o.header("x-request-id");
            if id.as_ref().and_then(Value::as_str) != header {
                problems.push(format!(
                    "{host}: problem request_id {id:?} differs from x-request-id {header:?}"
                ));
            }
        } else {
            obj.remove("request_id");
            obj.remove("header_names");
        }
    }
    v
}

fn digits_as_n(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn compare(wasm: &Observed, envoy: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    // Retry-After counts seconds from each host's own clock (Envoy's runs while the cases run,
    // the host's is virtual): equal within a second.
    let secs = |o: &Observed| {
        o.header("retry-after")
            .map(|v| v.parse::<i64>().unwrap_or(-100))
    };
    match (secs(wasm), secs(envoy)) {
        (Some(a), Some(b)) if (a - b).abs() <= 1 => {}
        (None, None) => {}
        (a, b) => out.push(format!("header retry-after: host {a:?} vs Envoy {b:?}")),
    }
    if wasm.status != envoy.status {
        out.push(format!(
            "status: host {} vs Envoy {}",
            wasm.status, envoy.status
        ));
    }
    for h in HEADERS_THAT_MATTER {
        if wasm.header(h) != envoy.header(h) {
            out.push(format!(
                "header {h}: host {:?} vs Envoy {:?}",
                wasm.header(h),
                envoy.header(h)
            ));
        }
    }
    // `RateLimit` carries remaining quota and reset time, which depend on how much real time
    // passed between requests (Envoy's clock runs, the host's is virtual): the same limits must
    // be listed, in the same order; the values are checked by the rate-limit tests.
    let limits = |o: &Observed| {
        o.header("ratelimit").map(|v| {
            v.split(", ")
                .map(|m| m.split(';').next().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        })
    };
    if limits(wasm) != limits(envoy) {
        out.push(format!(
            "header ratelimit: host {:?} vs Envoy {:?}",
            wasm.header("ratelimit"),
            envoy.header("ratelimit")
        ));
    }
    if wasm.upstream != envoy.upstream {
        out.push(format!(
            "upstream: host {} vs Envoy {}",
            wasm.upstream, envoy.upstream
        ));
    }
    let (a, b) = (
        comparable(wasm, &mut out, "host"),
        comparable(envoy, &mut out, "Envoy"),
    );
    if a != b {
        out.push(format!("body: host {a} vs Envoy {b}"));
    }
    // Expiry runs on a timer (Envoy's real one, the host's virtual one): not comparable.
    let timeless = |m: &BTreeMap<String, i64>| {
        m.iter()
            .filter(|(k, _)| !k.ends_with(".expired"))
            .map(|(k, v)| (k.clone(), *v))
            .collect::<BTreeMap<_, _>>()
    };
    if timeless(&wasm.metrics) != timeless(&envoy.metrics) {
        out.push(format!(
            "metrics: host {:?} vs Envoy {:?}",
            wasm.metrics, envoy.metrics
        ));
    }
    out
}

#[test]
fn every_case_gives_the_same_answer_in_the_host_and_in_envoy() {
    let dir = harness::workspace_root().join("policies/cases");
    let files = cases::files_in(&dir).unwrap();
    assert!(
        files.len() >= 2,
        "expected the retail and dealer case files"
    );
    let host = tollgate();
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in files {
        let file = cases::load(&path).unwrap();
        let mut wasm = WasmTarget::start(&host, &file.edge).unwrap();
        let mut envoy = EnvoyTarget::start(&file.edge);
        let in_wasm = cases::run(&file, &mut wasm);
        let in_envoy = cases::run(&file, &mut envoy);
        for (w, e) in in_wasm.iter().zip(&in_envoy) {
            compared += 1;
            let mut problems = Vec::new();
            for (host, r) in [("host", w), ("Envoy", e)] {
                for p in &r.problems {
                    problems.push(format!("{host} misses the expectation: {p}"));
                }
            }
            match (&w.observed, &e.observed) {
                (Some(a), Some(b)) => problems.extend(compare(a, b)),
                _ => problems.push("a host could not run the case".into()),
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{} / {}:\n    {}",
                    file.edge,
                    w.name,
                    problems.join("\n    ")
                ));
            }
        }
    }
    assert!(compared >= 20, "only {compared} cases compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
