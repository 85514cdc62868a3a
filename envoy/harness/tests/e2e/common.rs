//! What every end-to-end test needs: a backend and an edge, and a check for problem bodies.

use harness::backend::Backend;
use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use harness::http::{Request, Response};
use harness::wasm::ensure_wasm;

pub struct Stack {
    pub backend: Backend,
    pub envoy: Envoy,
}

/// A fresh backend and one edge with the given plugin configuration.
pub fn stack(edge: &str, config: PluginConfig) -> Stack {
    let wasm = ensure_wasm().expect("building the filter");
    let backend = Backend::start("127.0.0.1:0").expect("starting the backend");
    let mut o = EdgeOptions::new(edge, backend.addr, &wasm);
    o.plugin_config = config;
    let envoy = Envoy::start(&o).expect("starting Envoy");
    Stack { backend, envoy }
}

impl Stack {
    pub fn send(&self, req: Request) -> Response {
        req.send(self.envoy.addr)
            .expect("sending a request through Envoy")
    }

    /// A Tollgate counter of this edge, e.g. `requests.allowed` or `rule.routing.blocked`.
    pub fn counter(&self, edge: &str, name: &str) -> u64 {
        let full = format!("wasmcustom.tollgate.{edge}.{name}");
        self.envoy
            .stat(&full)
            .expect("reading admin /stats")
            .unwrap_or_else(|| panic!("no stat {full}"))
    }
}

/// Asserts the request reached the backend and came back 200 from it.
pub fn assert_forwarded(r: &Response, edge: &str) {
    assert_eq!(
        r.status,
        200,
        "expected the backend's 200, got: {}",
        r.text()
    );
    assert_eq!(
        r.header("x-demo-backend"),
        Some("1"),
        "not answered by the backend"
    );
    assert_eq!(r.json().unwrap()["edge"], edge);
}

/// Asserts an RFC 9457 problem answer from Tollgate with this status, type and rule, carrying
/// the request id that Envoy also returns in `x-request-id`.
pub fn assert_problem(r: &Response, status: u16, slug: &str, rule: &str) -> serde_json::Value {
    assert_eq!(r.status, status, "body: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.header("x-demo-backend"),
        None,
        "a refused request reached the backend"
    );
    let body = r.json().unwrap();
    assert_eq!(
        body["type"],
        format!("urn:tollgate:problem:{slug}"),
        "{body}"
    );
    assert_eq!(body["status"], status);
    assert_eq!(body["rule"], rule, "{body}");
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
    let id = body["request_id"]
        .as_str()
        .expect("request_id in the problem body");
    assert!(!id.is_empty());
    assert_eq!(
        r.header("x-request-id"),
        Some(id),
        "body and header disagree on the request id"
    );
    body
}
