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
    Plugin::start(
        &tollgate(),
        PluginOptions::new(spec).workers(workers).edge(),
    )
    .expect("starting")
}

/// The probe guest (`host-tests/probe`), built by cargo if stale, loaded once.
pub fn probe_host() -> Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let path = harness::wasm::ensure_probe().expect("building the probe");
        Host::load(&path).expect("loading the probe")
    })
    .clone()
}

/// The probe with this plugin configuration.
pub fn probe_with(config: &str, f: impl FnOnce(PluginOptions) -> PluginOptions) -> Plugin {
    let mut spec = PluginSpec::new(config);
    spec.vm_configuration = b"vm-config".to_vec();
    Plugin::start(&probe_host(), f(PluginOptions::new(spec))).expect("starting the probe")
}

pub fn probe() -> Plugin {
    probe_with("", |o| o)
}

/// A probe request for a scenario.
pub fn scenario(name: &str) -> host_tests::Request {
    host_tests::Request::new("GET", "/probe").header("x-probe", name)
}

/// The probe's report: `name=value` items, split on whitespace.
pub fn report(ex: &host_tests::Exchange) -> std::collections::HashMap<String, String> {
    let resp = ex
        .response
        .as_ref()
        .unwrap_or_else(|| panic!("no response: {ex:?}"));
    assert_eq!(resp.status, 200, "{ex:?}");
    String::from_utf8_lossy(&resp.body)
        .split_whitespace()
        .filter_map(|item| item.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Log messages of an exchange that start with `prefix`.
pub fn lines(logs: &[host_tests::LogLine], prefix: &str) -> Vec<String> {
    logs.iter()
        .filter(|l| l.message.starts_with(prefix))
        .map(|l| l.message.clone())
        .collect()
}
