//! End-to-end tests: the compiled `.wasm` in the real Envoy binary, in front of the demo
//! backend, on loopback. One test binary made of modules (fast to link).

mod backend;
mod common;
mod compose;
mod config;
mod dashboard;
mod dealer;
mod detection;
mod global;
mod istio;
mod limits;
mod local_replies;
mod push;
mod retail;
mod wasm;
