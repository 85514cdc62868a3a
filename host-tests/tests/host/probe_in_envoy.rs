//! The host's ABI answers, checked against real Envoy: the probe runs its scenarios in Envoy
//! (the retail bootstrap with the probe's `.wasm`) and in the host, and every status it reports
//! must agree. Values that legitimately differ (times, addresses, pseudo-headers that Envoy's
//! connection manager sets) are left out. Then a trap, in both: 503, 503 during the reload
//! backoff, and a fresh VM after it.

use std::collections::HashMap;
use std::time::Duration;

use harness::backend::Backend;
use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use host_tests::{level, Plugin, PluginOptions, PluginSpec, Request};

use crate::common::probe_host;

/// Report keys whose values differ between hosts for reasons outside the ABI.
const DIFFERENT_BY_NATURE: &[&str] = &[
    "pseudo",            // Envoy's :authority is the listener address
    "time",              // the wall clock vs the virtual clock
    "wasi_clock_agrees", // two reads of Envoy's wall clock differ
    "source.address",
    "source.port",
    "request.time",
    "request.id", // Envoy issues its own
    "size",       // Envoy adds headers of its own (x-forwarded-proto, x-request-id)
];

fn parse(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split_whitespace()
        .filter_map(|i| i.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn the_probe_gets_the_same_answers_from_envoy_and_from_the_host() {
    let wasm = harness::wasm::ensure_probe().unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let mut o = EdgeOptions::new("retail", backend.addr, &wasm);
    o.plugin_config = PluginConfig::Text(String::new());
    let envoy = Envoy::start(&o).unwrap();

    let mut spec = PluginSpec::new("");
    spec.vm_id = "tollgate-retail".into();
    spec.name = "tollgate-retail".into();
    spec.root_id = "tollgate".into();
    spec.log_level = level::INFO;
    // The shipped filter configuration says FAIL_RELOAD, as `edge()` does.
    let options = PluginOptions::new(spec).failure(host_tests::FailurePolicy::FailReload {
        backoff: Duration::from_secs(1),
    });
    let mut host = Plugin::start(&probe_host(), options).unwrap();

    let envoy_send = |scenario: &str| {
        harness::http::Request::new("GET", "/probe")
            .header("x-probe", scenario)
            .send(envoy.addr)
            .unwrap()
    };
    let mut compared = 0;
    for scenario in [
        "headers",
        "properties",
        "shared",
        "queue",
        "metrics",
        "buffers",
        "misc",
        "grpc",
    ] {
        let e = envoy_send(scenario);
        assert_eq!(e.status, 200, "{scenario} in Envoy: {}", e.text());
        let h = host.send(Request::new("GET", "/probe").header("x-probe", scenario));
        let h = h.response.unwrap();
        assert_eq!(h.status, 200, "{scenario} in the host");
        let (e, h) = (parse(&e.body), parse(&h.body));
        assert!(!e.is_empty(), "{scenario}: an empty report");
        let keys: Vec<&String> = e.keys().chain(h.keys()).collect();
        for k in keys {
            if DIFFERENT_BY_NATURE.contains(&k.as_str()) {
                continue;
            }
            compared += 1;
            assert_eq!(
                h.get(k),
                e.get(k),
                "{scenario}: {k}: host {:?} vs Envoy {:?}",
                h.get(k),
                e.get(k)
            );
        }
    }
    assert!(compared > 60, "only {compared} values compared");

    // A trap: 503 for that request. The backoff counts from the VM's last load, which was more
    // than a second ago, so the next request gets a fresh VM at once. A second trap right after that
    // reload: now the backoff holds, 503 until it has passed.
    let forward = |s: &str| Request::new("GET", "/probe").header("x-probe", s);
    host.advance(Duration::from_secs(5));
    // Envoy's clock is real: make sure its backoff (1 s) since the VM's load has passed too.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(envoy_send("forward").status, 200);
    assert_eq!(host.send(forward("forward")).status(), Some(200));
    assert_eq!(envoy_send("trap").status, 503);
    assert_eq!(host.send(forward("trap")).status(), Some(503));
    assert_eq!(envoy_send("forward").status, 200, "reloaded at once");
    assert_eq!(host.send(forward("forward")).status(), Some(200));
    assert_eq!(envoy_send("trap").status, 503);
    assert_eq!(host.send(forward("trap")).status(), Some(503));
    assert_eq!(envoy_send("forward").status, 503, "Envoy backs off");
    assert_eq!(host.send(forward("forward")).status(), Some(503));
    std::thread::sleep(Duration::from_millis(2000));
    host.advance(Duration::from_millis(2000));
    assert_eq!(envoy_send("forward").status, 200, "Envoy reloaded the VM");
    assert_eq!(host.send(forward("forward")).status(), Some(200));
    assert_eq!(host.generation(0), 3);
    assert!(
        envoy
            .log()
            .contains("Function: proxy_on_request_headers failed"),
        "Envoy logs the trap as the host does"
    );
}
