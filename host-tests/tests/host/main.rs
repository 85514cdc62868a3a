//! The wasmtime host, tested: the ABI against small WAT guests, the lifecycle, workers, traps
//! and callouts, and the real Tollgate filter. One binary of modules.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod abi;
mod callouts;
mod common;
mod component;
mod conformance;
mod enumeration;
mod failures;
mod fidelity;
mod global;
mod limits;
mod probe_in_envoy;
mod push;
mod tollgate;
mod validation;
mod workers;
