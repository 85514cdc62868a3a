//! Tollgate's proxy-wasm filter for Envoy (`envoy.filters.http.wasm`, V8 runtime).
//!
//! Thin glue only: the root context compiles the plugin configuration into a policy with
//! `tollgate-core` in `on_configure` (refusing an invalid one with every error logged), and each
//! HTTP context reads the request headers in one host call, asks the policy for a verdict, counts
//! it, and either lets the request go on or answers it with an RFC 9457 problem.
//!
//! Every host call goes through `proxy_wasm::hostcalls`, whose results are handled here: the
//! SDK's trait helpers unwrap them (and `get_http_request_headers` unwraps UTF-8 on values a
//! client controls), which would turn a bad input into a trap.

mod global;
mod http;
mod limits;
mod metrics;
mod root;
mod running;
mod shared;

use proxy_wasm::hostcalls;
use proxy_wasm::types::LogLevel;

// The ABI entry point. `main!` exports `_start` with `#[no_mangle]`.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        super::install_panic_hook();
        proxy_wasm::set_root_context(|_| Box::new(super::root::Root::default()));
    }}
}

/// Logs a panic (there should be none: the crate denies `unwrap`, `expect`, `panic` and
/// indexing) at critical level before the VM traps, with its location but not its payload, which
/// might hold request data.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown location".into());
        let _ = hostcalls::log(LogLevel::Critical, &format!("tollgate: panic at {at}"));
    }));
}

/// Logs through the host, ignoring a failure to log.
pub(crate) fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}
