//! A proxy-wasm HTTP filter that lets every request through. It is built with the same SDK and
//! target as Tollgate, so Envoy pays the same price to create its contexts and call into V8 for
//! each request: the load benchmark's floor for "any wasm filter".
//!
//! Its plugin configuration can ask it to make host calls on each request, to measure what each
//! kind costs in Envoy: a space-separated list of `headers` (the request's header map, in one
//! call), `one-header` (the value of `:path`), `clock` (the current time), `shared` (a shared-data read and a compare-and-swap
//! write of one 256-byte value), `metric` (one counter increment); each may repeat. Empty: no
//! host call at all.

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Clone, Copy)]
enum Call {
    Headers,
    OneHeader,
    Clock,
    Shared,
    Metric(u32),
}

#[derive(Default)]
struct Root {
    calls: Vec<Call>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        let metric = hostcalls::define_metric(MetricType::Counter, "noop.requests").unwrap_or(0);
        self.calls = text
            .split_whitespace()
            .filter_map(|w| match w {
                "headers" => Some(Call::Headers),
                "one-header" => Some(Call::OneHeader),
                "clock" => Some(Call::Clock),
                "shared" => Some(Call::Shared),
                "metric" => Some(Call::Metric(metric)),
                _ => None,
            })
            .collect();
        if self.calls.iter().any(|c| matches!(c, Call::Shared)) {
            let _ = hostcalls::set_shared_data("noop/block", Some(&[0u8; 256]), None);
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Pass {
            calls: self.calls.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Pass {
    calls: Vec<Call>,
}

impl Context for Pass {}

impl HttpContext for Pass {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        for c in &self.calls {
            match c {
                Call::Headers => {
                    let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
                }
                Call::OneHeader => {
                    let _ = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, ":path");
                }
                Call::Clock => {
                    let _ = hostcalls::get_current_time().map(|t| t.duration_since(UNIX_EPOCH));
                }
                Call::Shared => {
                    if let Ok((Some(v), cas)) = hostcalls::get_shared_data("noop/block") {
                        let _ = hostcalls::set_shared_data("noop/block", Some(&v), cas);
                    }
                }
                Call::Metric(id) => {
                    let _ = hostcalls::increment_metric(*id, 1);
                }
            }
        }
        Action::Continue
    }
}
