//! `host-tests`: a wasmtime host that implements the proxy-wasm ABI with Envoy's semantics, so
//! the compiled Tollgate filter (or any proxy-wasm module built for `wasm32-wasip1`) runs
//! natively, in parallel tests, with the outcomes Envoy gives.
//!
//! - [`Host`] loads a module once, refusing imports Envoy does not provide.
//! - [`Plugin`] is one plugin configuration running on several simulated workers (one VM
//!   each) that share a [`Process`]: shared data and queues per `vm_id`, the stats store and a
//!   virtual clock. Nothing is global.
//! - [`Plugin::send`] takes a [`Request`] through Envoy's HTTP filter lifecycle and returns an
//!   [`Exchange`]: what the client saw, what reached the upstream, the plugin's logs and any
//!   trap. Callouts, ticks and queues are driven by the test.
//! - [`cases`] runs the policy case files of `policies/cases/`, and backs the `tollgate`
//!   command.
//!
//! `abi/` holds one file per area of the ABI; `state.rs` what one VM knows; `process.rs` what
//! workers share; `plugin.rs` the stream driver and failure policies.

#![forbid(unsafe_code)]

mod abi;
pub mod cases;
mod host;
mod http;
mod plugin;
mod process;
mod state;
mod vm;

pub use abi::{Status, PROVIDED};
pub use host::Host;
pub use http::{echo_upstream, Exchange, Forwarded, Request, Response, Upstream};
pub use plugin::{FailurePolicy, GrpcEvent, Plugin, PluginOptions, Refusal, Worker, CANARY};
pub use process::{Metric, MetricKind, Process, SharedFault, EPOCH_NANOS};
pub use state::{level, GrpcCall, Headers, HttpCall, LocalResponse, LogLine, PluginSpec};
pub use vm::{StartError, Trap};
