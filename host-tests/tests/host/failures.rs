//! Traps and refusals, reported as Envoy reports them, under each failure policy.

use std::time::Duration;

use host_tests::{FailurePolicy, Host, Plugin, PluginOptions, PluginSpec, StartError};

use crate::common::{edge, lines, probe_with, report, scenario, tollgate};

#[test]
fn fail_reload_answers_503_then_starts_a_fresh_vm_that_keeps_shared_data() {
    let mut p = probe_with("", |o| {
        o.failure(FailurePolicy::FailReload {
            backoff: Duration::from_secs(1),
        })
    });
    report(&p.send(scenario("shared")));
    let ex = p.send(scenario("trap"));
    assert_eq!(ex.status(), Some(503));
    assert_eq!(ex.details, "wasm_fail_stream");
    let trap = ex.trap.as_ref().expect("the trap is reported");
    assert_eq!(trap.callback, "proxy_on_request_headers");
    assert!(
        lines(&ex.logs, "Function: proxy_on_request_headers failed:").len() == 1,
        "{:?}",
        ex.logs
    );
    assert!(p.failed(0));
    assert_eq!(p.traps().len(), 1);

    // The backoff counts from the VM's last load (here: the start, on a clock that has not
    // moved), so the failed VM stays and requests fail closed (no new trap).
    let ex = p.send(scenario("forward"));
    assert_eq!(ex.status(), Some(503));
    assert!(ex.trap.is_none());
    assert_eq!(p.generation(0), 1);

    // After it, the next request gets a fresh VM, configured again.
    p.advance(Duration::from_secs(1));
    let ex = p.send(scenario("forward"));
    assert_eq!(ex.status(), Some(200), "{ex:?}");
    assert_eq!(ex.forwarded.unwrap().header("x-probe-added"), Some("yes"));
    assert_eq!(p.generation(0), 2);
    assert!(!p.failed(0));
    // The canary, the main thread's VM, the first worker VM and the fresh one.
    assert_eq!(lines(&p.take_logs(), "cb configure").len(), 4);
    // Shared data is process-wide: the reload kept it.
    assert_eq!(p.shared_data("probe/k").unwrap().0, b"v2");
}

#[test]
fn fail_closed_keeps_answering_503() {
    let mut p = probe_with("", |o| o.failure(FailurePolicy::FailClosed));
    assert_eq!(p.send(scenario("trap")).status(), Some(503));
    p.advance(Duration::from_secs(30));
    let ex = p.send(scenario("forward"));
    assert_eq!(ex.status(), Some(503));
    assert!(ex.forwarded.is_none());
    assert_eq!(p.generation(0), 1);
}

#[test]
fn fail_open_lets_traffic_through_without_the_plugin() {
    let mut p = probe_with("", |o| o.failure(FailurePolicy::FailOpen));
    let ex = p.send(scenario("trap"));
    assert!(ex.trap.is_some());
    assert_eq!(ex.status(), Some(200), "the trapped stream goes on: {ex:?}");
    let ex = p.send(scenario("forward"));
    assert_eq!(ex.status(), Some(200));
    let f = ex.forwarded.unwrap();
    assert_eq!(
        f.header("x-probe-added"),
        None,
        "the plugin is out of the chain"
    );
    assert_eq!(ex.response.unwrap().header("x-probe-response"), None);
}

#[test]
fn a_trap_on_one_worker_leaves_the_others_serving() {
    let mut p = probe_with("", |o| o.workers(2).failure(FailurePolicy::FailClosed));
    assert_eq!(p.send_on(0, scenario("trap")).status(), Some(503));
    let ex = p.send_on(1, scenario("forward"));
    assert_eq!(ex.status(), Some(200));
    assert_eq!(ex.forwarded.unwrap().header("x-probe-added"), Some("yes"));
    assert!(p.failed(0) && !p.failed(1));
}

#[test]
fn a_refused_configuration_is_reported_with_the_plugins_logs() {
    let spec = PluginSpec::new("refuse");
    let err = Plugin::start(&crate::common::probe_host(), PluginOptions::new(spec)).unwrap_err();
    assert!(matches!(err.error, StartError::ConfigureRefused), "{err}");
    assert!(err
        .logs
        .iter()
        .any(|l| l.message == "probe: configuration refused"));
}

#[test]
fn tollgate_refuses_an_invalid_policy_naming_every_error() {
    let bad = r#"{"version": "x", "edge": "retail", "routes": [{"name": "a", "path": "/a", "methods": ["GETT"]}], "extra": 1}"#;
    let err = Plugin::start(&tollgate(), PluginOptions::new(PluginSpec::new(bad))).unwrap_err();
    assert!(matches!(err.error, StartError::ConfigureRefused), "{err}");
    let text: Vec<&str> = err.logs.iter().map(|l| l.message.as_str()).collect();
    assert!(
        text.iter().any(|l| l.contains("routes[0].methods[0]")),
        "{text:?}"
    );
    assert!(text.iter().any(|l| l.contains("extra")), "{text:?}");
    assert!(
        text.iter().any(|l| l.contains("policy refused with")),
        "{text:?}"
    );
    // The good configuration starts.
    edge("retail", 1);
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

const MINIMAL: &str = r#"
    (memory (export "memory") 1)
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024)
"#;

#[test]
fn a_module_importing_what_envoy_lacks_is_refused_at_load() {
    let err = Host::from_bytes(&wat(&format!(
        r#"(module (import "env" "proxy_nope" (func)) {MINIMAL})"#
    )))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Failed to load Wasm module due to a missing import: env.proxy_nope"
    );
    // sched_yield is WASI, but not in the subset Envoy provides.
    let err = Host::from_bytes(&wat(&format!(
        r#"(module (import "wasi_snapshot_preview1" "sched_yield" (func (result i32))) {MINIMAL})"#
    )))
    .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("wasi_snapshot_preview1.sched_yield"),
        "{err}"
    );
    // No ABI version, no allocator.
    let err = Host::from_bytes(&wat(r#"(module (memory (export "memory") 1))"#)).unwrap_err();
    assert_eq!(err.to_string(), "Missing or unknown Proxy-Wasm ABI version");
    let err = Host::from_bytes(&wat(
        r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))"#,
    ))
    .unwrap_err();
    assert_eq!(err.to_string(), "Wasm module is missing malloc function.");
    // The minimal module loads, and with no callbacks at all it forwards requests untouched.
    let host = Host::from_bytes(&wat(&format!("(module {MINIMAL})"))).unwrap();
    let mut p = Plugin::start(&host, PluginOptions::new(PluginSpec::new(""))).unwrap();
    assert_eq!(p.send(scenario("x")).status(), Some(200));
}

#[test]
fn a_trap_while_starting_is_a_start_failure() {
    let host = Host::from_bytes(&wat(&format!(
        r#"(module {MINIMAL} (func (export "_initialize") unreachable))"#
    )))
    .unwrap();
    let err = Plugin::start(&host, PluginOptions::new(PluginSpec::new(""))).unwrap_err();
    match err.error {
        StartError::Failed(m) => assert!(m.contains("_initialize trapped"), "{m}"),
        e => panic!("{e}"),
    }
}
