//! Policy push through ECDS, in real Envoy: a new policy applies within a second while `wrk`
//! loads the edge and no request fails; a bad one is rejected by Envoy (every error in its log,
//! `update_rejected` counted) while the running one keeps enforcing; rate-limit state of an
//! unchanged rule survives the push and a changed rule starts fresh; an edge started on a bad
//! policy answers nothing unchecked; Envoy's memory stays bounded over 500 pushes.

use std::time::{Duration, Instant};

use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use harness::http::Request;
use harness::load::{rss_bytes, wrk, Load};
use harness::wasm::ensure_wasm;
use serde_json::json;

use crate::common::{stack, Stack};

/// A test policy: `steady` limits orders and never changes; `tuned` limits models at `rate`;
/// `with_new` adds the route `/v1/new`.
fn policy(version: &str, rate: u32, with_new: bool) -> String {
    let mut routes = vec![
        json!({"name": "models", "path": "/v1/models", "methods": ["GET"]}),
        json!({"name": "orders", "path": "/v1/orders/{id}", "methods": ["GET"]}),
    ];
    if with_new {
        routes.push(json!({"name": "new", "path": "/v1/new", "methods": ["GET"]}));
    }
    json!({
        "version": version,
        "edge": "retail",
        "routes": routes,
        "rate_limits": [
            {"name": "steady", "key": [{"header": "x-client"}], "rate": "3/h", "burst": 3,
             "routes": ["orders"]},
            {"name": "tuned", "key": [{"header": "x-client"}], "rate": format!("{rate}/h"),
             "burst": 3, "routes": ["models"]}
        ]
    })
    .to_string()
}

/// The same policy with two mistakes.
fn broken(version: &str) -> String {
    let mut p: serde_json::Value = serde_json::from_str(&policy(version, 3, true)).unwrap();
    p["rate_limits"][0]["burst"] = json!(0);
    p["routes"][2]["methods"] = json!(["FETCH"]);
    p.to_string()
}

fn status(s: &Stack, path: &str, client: Option<&str>) -> u16 {
    let mut r = Request::new("GET", path);
    if let Some(c) = client {
        r = r.header("x-client", c);
    }
    s.send(r).status
}

fn edge(config: PluginConfig) -> Stack {
    let wasm = ensure_wasm().expect("building the filter");
    let backend = harness::backend::Backend::start("127.0.0.1:0").expect("backend");
    let mut o = EdgeOptions::new("retail", backend.addr, &wasm);
    o.plugin_config = config;
    o.concurrency = 2;
    let envoy = Envoy::start(&o).expect("starting Envoy");
    Stack { backend, envoy }
}

#[test]
fn a_push_applies_under_load_without_a_failed_request_and_a_bad_push_is_refused() {
    let s = edge(PluginConfig::Text(policy("push-1", 3, false)));
    // Client c uses up both limits on the first policy.
    for _ in 0..3 {
        assert_eq!(status(&s, "/v1/orders/1", Some("c")), 200);
        assert_eq!(status(&s, "/v1/models", Some("c")), 200);
    }
    assert_eq!(status(&s, "/v1/orders/1", Some("c")), 429);
    assert_eq!(status(&s, "/v1/models", Some("c")), 429);
    assert_eq!(status(&s, "/v1/new", None), 404);

    let addr = s.envoy.addr;
    let load = std::thread::spawn(move || {
        wrk(
            addr,
            &Load {
                path: "/v1/models",
                headers: Vec::new(),
                threads: 1,
                connections: 8,
                duration: Duration::from_secs(5),
                script: None,
            },
        )
    });
    std::thread::sleep(Duration::from_millis(1500));

    // Push 1: `tuned` gets a new rate, `/v1/new` appears. Time from the rename to the first
    // answer of the new policy.
    let pushed = Instant::now();
    s.envoy
        .push(&PluginConfig::Text(policy("push-2", 6, true)))
        .unwrap();
    let applied = loop {
        if status(&s, "/v1/new", None) == 200 {
            break pushed.elapsed();
        }
        assert!(
            pushed.elapsed() < Duration::from_secs(1),
            "the new policy was not applied within 1 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    println!("push applied after {:.1} ms", applied.as_secs_f64() * 1e3);

    // Push 2: an invalid policy. Envoy rejects it, logs every error, and push-2 keeps running.
    std::thread::sleep(Duration::from_millis(500));
    let rejected_before = s
        .envoy
        .stat("extension_config_discovery.http_filter.tollgate.update_rejected")
        .unwrap()
        .expect("Envoy's ECDS rejection counter exists");
    let accepted = s
        .envoy
        .push_and_wait(
            &PluginConfig::Text(broken("push-3")),
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(!accepted, "Envoy accepted an invalid policy");
    assert_eq!(
        s.envoy
            .stat("extension_config_discovery.http_filter.tollgate.update_rejected")
            .unwrap(),
        Some(rejected_before + 1)
    );
    let log = s.envoy.log();
    for e in [
        "rate_limits[0].burst: burst must be at least 1",
        r#"routes[2].methods[0]: unknown method "FETCH""#,
        "policy refused with",
        "policy push-2 (generation 2) stays in force",
        "Filesystem config update rejected",
    ] {
        assert!(log.contains(e), "missing {e:?} in the log:\n{log}");
    }
    assert_eq!(status(&s, "/v1/new", None), 200, "push-2 still runs");
    assert_eq!(status(&s, "/v1/unknown", None), 404, "push-2 still refuses");

    let r = load.join().unwrap().unwrap();
    println!(
        "under load: {} requests, {:.0} rps, {} non-2xx, {} socket errors",
        r.requests, r.rps, r.non_2xx, r.socket_errors
    );
    assert!(r.requests > 1000, "{r:?}");
    assert_eq!(r.non_2xx, 0, "requests failed during the pushes: {r:?}");
    assert_eq!(r.socket_errors, 0, "{r:?}");

    // State: `steady` did not change and still refuses c; `tuned` changed and starts fresh.
    assert_eq!(status(&s, "/v1/orders/1", Some("c")), 429);
    assert_eq!(status(&s, "/v1/models", Some("c")), 200);
    let stat = |n: &str| {
        s.envoy
            .stat(&format!("wasmcustom.tollgate.retail.policy.{n}"))
            .unwrap()
    };
    assert_eq!(stat("generation"), Some(2));
    assert_eq!(stat("version.push-2"), Some(1));
    assert_eq!(stat("version.push-1"), Some(0));
    assert!(
        log.contains("policy push-2 accepted as generation 2 for edge retail, replacing push-1 (generation 1)")
            && log.contains("state reset (definition changed): rate_limit.tuned"),
        "{log}"
    );
}

#[test]
fn an_edge_started_on_a_bad_policy_refuses_everything_until_a_good_one_is_pushed() {
    let s = stack("retail", PluginConfig::Text(broken("bad-1")));
    let r = s.send(Request::new("GET", "/v1/models"));
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.header("x-demo-backend"),
        None,
        "reached the backend unchecked"
    );
    assert!(s
        .envoy
        .push_and_wait(
            &PluginConfig::Text(policy("good-1", 3, false)),
            Duration::from_secs(5)
        )
        .unwrap());
    assert_eq!(status(&s, "/v1/models", None), 200);
    assert_eq!(status(&s, "/v1/new", None), 404);
}

#[test]
fn envoy_memory_stays_bounded_over_500_pushes() {
    let s = edge(PluginConfig::Shipped);
    let retail: serde_json::Value = serde_json::from_str(tollgate_policies::RETAIL).unwrap();
    // Every push a different full retail policy: a new version and a new login limit, so each
    // push compiles the whole policy in every VM and resets one table.
    let variant = |i: usize| {
        let mut p = retail.clone();
        p["version"] = json!(format!("retail-push-{i}"));
        p["rate_limits"][0]["burst"] = json!(10 + i % 7);
        PluginConfig::Text(p.to_string())
    };
    let push = |i: usize| {
        assert!(s
            .envoy
            .push_and_wait(&variant(i), Duration::from_secs(10))
            .unwrap());
    };
    for i in 0..50 {
        push(i);
    }
    let before = rss_bytes(s.envoy.pid()).unwrap();
    let started = Instant::now();
    for i in 50..550 {
        push(i);
        if i % 100 == 0 {
            let r =
                s.send(Request::new("GET", "/v1/nowhere").header("x-forwarded-for", "192.0.2.7"));
            assert_eq!(r.status, 404, "{}", r.text());
        }
    }
    let after = rss_bytes(s.envoy.pid()).unwrap();
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "RSS before {:.1} MiB, after 500 pushes {:.1} MiB ({:+.1} MiB), {:.1} s",
        mib(before),
        mib(after),
        mib(after) - mib(before),
        started.elapsed().as_secs_f64()
    );
    // Every push advanced the generation once. Workers that apply push N-1 after another VM
    // recorded push N are late, not new (this was a defect: CI saw 553 and 565 here).
    let generation = s
        .envoy
        .stat("wasmcustom.tollgate.retail.policy.generation")
        .unwrap()
        .expect("the generation gauge exists");
    assert_eq!(generation, 551, "generation after 550 pushes");
    // Measured: +29 to +33 MiB over these 500 distinct full-policy pushes with the Core Rule
    // Set (+11 to +17 MiB without it), in steps (see benches/README.md, "Policy pushes"). The
    // bound is the worst measured plus 15 MiB of noise, and it must be well under what keeping
    // each pushed policy's text would cost, even in one VM of the three (main and two workers).
    let bound = 48 * 1048576;
    let leak_one_vm = 500 * variant_len(&variant(50)) as u64;
    assert!(
        2 * bound < leak_one_vm,
        "the bound ({bound} bytes) would not catch a leak of the policy per push ({leak_one_vm})"
    );
    assert!(
        after < before + bound,
        "RSS grew from {before} to {after} bytes over 500 pushes"
    );
}

/// The size of a pushed configuration's policy text.
fn variant_len(c: &PluginConfig) -> usize {
    match c {
        PluginConfig::Text(t) => t.len(),
        _ => 0,
    }
}

#[test]
fn the_dealer_edge_takes_pushes_too() {
    // The shipped dealer policy with a new version.
    let s = stack("dealer", PluginConfig::Shipped);
    let mut p: serde_json::Value = serde_json::from_str(tollgate_policies::DEALER).unwrap();
    let old_version = p["version"].as_str().unwrap().to_owned();
    p["version"] = json!("dealer-pushed-1");
    assert!(s
        .envoy
        .push_and_wait(&PluginConfig::Text(p.to_string()), Duration::from_secs(5))
        .unwrap());
    let stat = |n: &str| {
        s.envoy
            .stat(&format!("wasmcustom.tollgate.dealer.policy.{n}"))
            .unwrap()
    };
    assert_eq!(stat("generation"), Some(2));
    assert_eq!(stat("version.dealer-pushed-1"), Some(1));
    assert_eq!(
        stat(&format!("version.{}", old_version.replace('.', "_"))),
        Some(0)
    );
    // A dealer policy with a mistake is refused; the pushed one keeps running.
    p["routes"][0]["methods"] = json!(["FETCH"]);
    assert!(!s
        .envoy
        .push_and_wait(&PluginConfig::Text(p.to_string()), Duration::from_secs(5))
        .unwrap());
    assert!(s
        .envoy
        .log()
        .contains("policy dealer-pushed-1 (generation 2) stays in force"));
    let r = s.send(Request::new("GET", "/nowhere").header("x-forwarded-for", "192.0.2.10"));
    assert_eq!(r.status, 404, "{}", r.text());
}
