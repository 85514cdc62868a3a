//! The HTTP context: one per request. All the work happens in `on_http_request_headers`.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, LogLevel, MapType};
use tollgate_core::{parse_socket_address, sanitize_request_id, Block, Request};

use crate::log;
use crate::root::Loaded;

/// Request header set on refused requests; see `envoy/retail.yaml`, `local_reply_config`.
const REFUSED_MARK: &str = "x-tollgate-refused";

/// The answer when no policy is loaded.
const NO_POLICY: &str = r#"{"type":"urn:tollgate:problem:policy-unavailable","title":"Service unavailable","status":503}"#;

pub(crate) struct Http {
    loaded: Option<Rc<Loaded>>,
}

impl Http {
    pub(crate) fn new(loaded: Option<Rc<Loaded>>) -> Self {
        Http { loaded }
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(loaded) = self.loaded.as_deref() else {
            // No policy: deny. (Envoy does not create HTTP contexts for a refused configuration,
            // so this is a guard, not a path.)
            send(503, NO_POLICY, None, &[]);
            return Action::Pause;
        };
        // One host call for the whole map, values as bytes (they need not be UTF-8).
        let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        let source = if loaded.policy.needs_source_address() {
            source_address()
        } else {
            None
        };
        let req = Request::from_headers(&headers, source);
        let verdict = loaded.policy.decide(&req);
        // Needed only to log or answer; an ordinary allowed request skips the scan.
        let request_id = if verdict.allowed() && verdict.shadowed.is_empty() {
            None
        } else {
            req.request_id().and_then(sanitize_request_id)
        };

        // Present at all, even empty: Envoy's mappers match on presence.
        if headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(REFUSED_MARK))
        {
            // Only Tollgate sets the mark; a client's copy would switch off the edge's
            // problem formatting for Envoy's own refusals, and must not travel upstream.
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, REFUSED_MARK);
        }
        if !verdict.shadowed.is_empty() {
            // Counted as a shadow-blocked request only if it goes through; the per-rule shadow
            // counters count every hit.
            if verdict.allowed() {
                loaded.metrics.shadow_request();
            }
            for s in &verdict.shadowed {
                loaded.metrics.shadow_rule(s.rule);
                log(LogLevel::Info, &describe("shadow", loaded, s, request_id));
            }
        }
        match &verdict.block {
            None => {
                loaded.metrics.allowed();
                Action::Continue
            }
            Some(block) => {
                loaded.metrics.blocked(block.rule);
                log(
                    LogLevel::Debug,
                    &describe("blocked", loaded, block, request_id),
                );
                let problem = loaded.policy.problem(block, request_id).to_json();
                let mut extra: Vec<(&str, &str)> = Vec::new();
                if let tollgate_core::BlockKind::MethodNotAllowed { allow } = &block.kind {
                    extra.push(("allow", allow));
                }
                send(u32::from(block.status()), &problem, request_id, &extra);
                Action::Pause
            }
        }
    }
}

/// The connection's source address (Envoy's `source.address` property, `ip:port`).
fn source_address() -> Option<std::net::IpAddr> {
    let raw = hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()?;
    parse_socket_address(std::str::from_utf8(&raw).ok()?)
}

fn describe(what: &str, loaded: &Loaded, block: &Block, request_id: Option<&str>) -> String {
    let rule = loaded.policy.rule_name(block.rule);
    format!(
        "tollgate: {what} rule={rule} status={} request_id={}",
        block.status(),
        request_id.unwrap_or("-")
    )
}

/// Answers the request locally with a problem body.
fn send(status: u32, body: &str, request_id: Option<&str>, extra: &[(&str, &str)]) {
    let mut headers: Vec<(&str, &str)> = vec![
        ("content-type", "application/problem+json"),
        ("cache-control", "no-store"),
    ];
    if let Some(id) = request_id {
        headers.push(("x-request-id", id));
    }
    headers.extend_from_slice(extra);
    // Marks the request as answered by Tollgate, so the edge's local-reply mapper (which formats
    // Envoy's own refusals) leaves this answer as it is.
    let _ = hostcalls::add_map_value(MapType::HttpRequestHeaders, REFUSED_MARK, "1");
    if hostcalls::send_http_response(status, headers, Some(body.as_bytes())).is_err() {
        log(
            LogLevel::Error,
            "tollgate: could not send the local response",
        );
    }
}
