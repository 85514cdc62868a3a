//! Rate limits and bans through real Envoy with two workers.

use std::time::Duration;

use harness::backend::Backend;
use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use harness::http::Request;
use harness::load::{wrk, Load};
use harness::wasm::ensure_wasm;

/// Retail's bootstrap with an inline policy, two workers.
fn edge_with(policy: &str) -> (Backend, Envoy) {
    let wasm = ensure_wasm().unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let mut o = EdgeOptions::new("retail", backend.addr, &wasm);
    o.concurrency = 2;
    o.plugin_config = PluginConfig::Text(policy.to_owned());
    (backend, Envoy::start(&o).unwrap())
}

const POLICY: &str = r#"{"version":"e2e-limits","edge":"retail","client_ip":{"trusted_hops":1},
  "routes":[{"name":"ping","path":"/v1/ping","methods":["GET"]},
            {"name":"login","path":"/v1/login","methods":["POST"]}],
  "rate_limits":[{"name":"ping","key":["client_ip"],"rate":"400/s","burst":40,"routes":["ping"]}],
  "bans":[{"name":"stuffing","key":["client_ip"],"routes":["login"],"statuses":[401],
           "threshold":5,"window":"1m","duration":"10m"}]}"#;

#[test]
fn a_limit_holds_within_two_percent_across_two_workers_under_concurrent_load() {
    let (backend, envoy) = edge_with(POLICY);
    let r = wrk(
        envoy.addr,
        &Load {
            path: "/v1/ping",
            headers: vec![("x-forwarded-for", "192.0.2.1".into())],
            threads: 2,
            connections: 16,
            duration: Duration::from_secs(4),
            script: None,
        },
    )
    .unwrap();
    let admitted = backend.served() as f64;
    let (first, last) = backend.window().unwrap();
    let expected = 40.0 + 400.0 * (last - first).as_secs_f64();
    let error = (admitted - expected).abs() / expected;
    eprintln!(
        "wrk: {} requests ({} refused), {:.0} rps; admitted {admitted}, expected {expected:.1}, error {:.2}%",
        r.requests,
        r.non_2xx,
        r.rps,
        error * 100.0
    );
    assert!(
        r.requests as f64 > 3.0 * expected,
        "not enough pressure: {r:?}"
    );
    assert!(error <= 0.02, "admitted {admitted}, expected {expected:.1}");
    let stat = |n: &str| {
        envoy
            .stat(&format!("wasmcustom.tollgate.retail.rate_limit.ping.{n}"))
            .unwrap()
            .unwrap_or(0)
    };
    assert_eq!(stat("allowed") as f64, admitted);
    // wrk does not count the answers still in flight when it stops (one per connection at most).
    let limited = stat("limited");
    assert!(
        limited >= r.non_2xx && limited - r.non_2xx <= 16,
        "limited {limited}, wrk saw {} refusals",
        r.non_2xx
    );
    assert_eq!(stat("failure_open"), 0);
}

#[test]
fn failed_logins_ban_the_address_on_both_workers() {
    let (backend, envoy) = edge_with(POLICY);
    let login = |status: &str| {
        Request::new("POST", "/v1/login")
            .header("x-forwarded-for", "192.0.2.66")
            .header("x-demo-status", status)
            .body("{}")
            .send(envoy.addr)
            .unwrap()
    };
    for _ in 0..5 {
        assert_eq!(login("401").status, 401);
    }
    // Each request is its own connection; Envoy spreads them over both workers.
    for _ in 0..6 {
        let r = login("200");
        assert_eq!(r.status, 429, "{}", r.text());
        let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((570..=600).contains(&secs), "retry-after {secs}");
        assert_eq!(r.json().unwrap()["type"], "urn:tollgate:problem:banned");
    }
    assert_eq!(backend.served(), 5);
    let stat = |n: &str| {
        envoy
            .stat(&format!("wasmcustom.tollgate.retail.ban.stuffing.{n}"))
            .unwrap()
    };
    assert_eq!(stat("banned"), Some(1));
    assert_eq!(stat("refused"), Some(6));
    // Another address logs in.
    let r = Request::new("POST", "/v1/login")
        .header("x-forwarded-for", "192.0.2.67")
        .body("{}")
        .send(envoy.addr)
        .unwrap();
    assert_eq!(r.status, 200);
}
