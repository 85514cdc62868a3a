//! Shared by the host tests: the compiled Tollgate module, compiled once per test binary.

use std::sync::OnceLock;

use host_tests::{Host, Plugin, PluginOptions, PluginSpec};

/// The Tollgate filter, built by cargo if stale, loaded once.
pub fn tollgate() -> Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let path = harness::wasm::ensure_wasm().expect("building the filter");
        Host::load(&path).expect("loading the filter")
    })
    .clone()
}

/// Tollgate with an edge's embedded policy, on `workers` workers.
pub fn edge(edge: &str, workers: usize) -> Plugin {
    let spec = PluginSpec::new(format!(r#"{{"embedded": "{edge}"}}"#));
    Plugin::start(&tollgate(), PluginOptions::new(spec).workers(workers)).expect("starting")
}
