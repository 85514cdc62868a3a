//! Global limits in the filter: the host calls. For each global limit on the request's route, one
//! `ShouldRateLimit` call to its service (the request and its descriptor come from
//! `tollgate_core::global`); the request stays paused until every call has answered, and Envoy
//! ends a call that outlives its timeout (`proxy_grpc_call`'s timeout is the gRPC stream's), so
//! the longest a request can wait is the largest timeout.
//!
//! The SDK's `hostcalls::dispatch_grpc_call` is used, not the raw ABI: only it registers the
//! call's token with the SDK's dispatcher, without which the answer's callback is dropped. It
//! panics on statuses other than Ok, ParseFailure and InternalFailure; Envoy returns another
//! (BadArgument) only when it cannot build an async client from the `GrpcService` it is given,
//! and the filter gives it one it encodes itself (`envoy_grpc.cluster_name` alone), which Envoy
//! builds a client for without looking the cluster up (an unknown cluster then fails the call
//! inline: InternalFailure). A failed dispatch applies the limit's `on_failure` at once: its
//! callback, if Envoy made one inline, never reaches this context.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::BufferType;
use tollgate_core::global::{decode_response, grpc_service, GlobalLimit, METHOD, SERVICE};

/// A call in flight: its token and the global limit it asks about.
pub(crate) struct Call {
    pub(crate) token: u32,
    pub(crate) limit: usize,
}

/// Starts one call; `None` if Envoy refused it (the limit's `on_failure` applies).
pub(crate) fn dispatch(g: &GlobalLimit, limit: usize, message: &[u8]) -> Option<Call> {
    let service = grpc_service(&g.cluster);
    // ASCII: the compiler keeps cluster names under 120 bytes, so every length is one byte.
    let service = std::str::from_utf8(&service).ok()?;
    hostcalls::dispatch_grpc_call(
        service,
        SERVICE,
        METHOD,
        Vec::new(),
        Some(message),
        Duration::from_millis(u64::from(g.timeout_ms)),
    )
    .ok()
    .map(|token| Call { token, limit })
}

/// What a call's callback brought: the service's answer, or that it failed (a gRPC status other
/// than OK, a timeout, or an answer that does not decode).
pub(crate) fn answer(status: u32, size: usize) -> Option<tollgate_core::global::Answer> {
    if status != 0 {
        return None;
    }
    let bytes = hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default();
    decode_response(&bytes).ok()
}
