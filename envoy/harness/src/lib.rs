//! Runs Tollgate for real, on loopback: the compiled `.wasm` (built on demand, never stale),
//! the real Envoy binary from the project's virtualenv, and the demo backend.
//!
//! - [`wasm`]: builds the filter for `wasm32-wasip1` and checks its imports against what Envoy
//!   provides.
//! - [`envoy`]: turns `envoy/<edge>.yaml` into a runnable bootstrap (ports, backend, `.wasm`
//!   path, plugin configuration), starts Envoy as a child process, waits until it is ready.
//! - [`backend`]: the demo backend that answers every retail and dealer route.
//! - [`http`]: a small HTTP/1.1 client for tests and the demo.
//! - [`oci`]: the `.wasm` as an OCI image layout for Istio, built without Docker.
//! - [`istio`]: the gateways' `WasmPlugin` manifests, generated from the policies.
//! - [`ratelimit`]: Redis and the rate-limit service behind global limits.

pub mod backend;
pub mod envoy;
pub mod http;
pub mod istio;
pub mod load;
pub mod oci;
pub mod ratelimit;
pub mod wasm;

use std::path::PathBuf;

/// The workspace root (where `Cargo.toml`, `envoy/` and `policies/` live).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).map(PathBuf::from).unwrap_or(here)
}

/// A fresh directory under `target/harness/` for one run's files (configs, logs).
pub fn scratch_dir(label: &str) -> anyhow::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = workspace_root()
        .join("target/harness")
        .join(format!("{label}-{}-{n}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
