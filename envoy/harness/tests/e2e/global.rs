//! Global limits end to end: Redis (Debian's `redis-server`), the rate-limit service
//! (`tollgate-ratelimit`) and two Envoys, two replicas of one edge, on loopback. One client spread
//! over both replicas is admitted exactly the limit; with Redis hung, then killed, then the
//! service killed, every request follows `on_failure` within the timeout and a margin; started
//! again, the limit holds again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::backend::Backend;
use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use harness::http::Request;
use harness::ratelimit::{Redis, Rls};
use harness::wasm::ensure_wasm;

/// Requests per hour for one client, across the fleet.
const LIMIT: usize = 100;

fn policy(on_failure: &str) -> String {
    format!(
        r#"{{"version":"g-{on_failure}","edge":"retail","client_ip":{{"trusted_hops":1}},
            "routes":[{{"name":"items","path":"/items/{{id}}","methods":["GET"]}}],
            "rate_limits":[{{"name":"fleet","scope":"global","key":["client_ip"],
                "rate":"{LIMIT}/hour","routes":["items"],
                "service":{{"cluster":"ratelimit","domain":"tollgate-e2e","timeout":"20ms"}},
                "on_failure":"{on_failure}"}}]}}"#
    )
}

fn get(envoy: &Envoy, client: &str) -> (u16, Duration, harness::http::Response) {
    let t = Instant::now();
    let r = Request::new("GET", "/items/1")
        .header("x-forwarded-for", client)
        .send(envoy.addr)
        .expect("sending through Envoy");
    (r.status, t.elapsed(), r)
}

fn hour() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
}

/// A client address of its own for this run and `n` (so that windows left in Redis by another
/// run never count).
fn client(run: u32, n: u32) -> String {
    format!("10.{}.{}.{}", run % 250, n / 250, n % 250 + 1)
}

/// Sends `count` requests from `client`, alternating between the replicas; how many each
/// admitted. Every answer is a 200 or a 429 with the service's numbers.
fn spread(replicas: &[&Envoy], client: &str, count: usize) -> Vec<usize> {
    let mut admitted = vec![0; replicas.len()];
    for i in 0..count {
        let at = i % replicas.len();
        let (status, _, r) = get(replicas[at], client);
        match status {
            200 => admitted[at] += 1,
            429 => {
                assert_eq!(r.header("content-type"), Some("application/problem+json"));
                let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=3600).contains(&retry), "retry-after {retry}");
                assert_eq!(
                    r.header("ratelimit-policy"),
                    Some(format!("\"fleet\";q={LIMIT};w=3600").as_str())
                );
            }
            s => panic!("request {i}: status {s}: {}", r.text()),
        }
    }
    admitted
}

#[test]
fn a_global_limit_holds_across_two_replicas_and_follows_on_failure_when_its_engine_fails() {
    let mut redis = Redis::start().expect("starting redis-server");
    let mut rls = Rls::start(&redis.url()).expect("starting the rate-limit service");
    let wasm = ensure_wasm().expect("building the filter");
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let mut o = EdgeOptions::new("retail", backend.addr, &wasm);
    o.plugin_config = PluginConfig::Text(policy("open"));
    o.ratelimit = Some(rls.addr);
    o.concurrency = 2;
    let a = Envoy::start(&o).expect("replica a");
    let b = Envoy::start(&o).expect("replica b");
    let run = std::process::id()
        ^ SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;

    // 1. One client over both replicas: exactly the limit, within one window.
    let started = hour();
    let admitted = spread(&[&a, &b], &client(run, 0), 2 * LIMIT);
    let total: usize = admitted.iter().sum();
    if hour() == started {
        assert_eq!(total, LIMIT, "admitted per replica: {admitted:?}");
    } else {
        // The hour turned during the run: two windows, so up to twice the limit.
        assert!((LIMIT..=2 * LIMIT).contains(&total), "{admitted:?}");
    }
    assert!(
        admitted.iter().all(|n| *n > LIMIT / 3),
        "both replicas admitted a share: {admitted:?}"
    );

    // 2. Load from fresh clients while the engine fails: Redis hung (it holds connections and
    // answers nothing), then killed, then the service killed; then both started again.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let phase = std::sync::atomic::AtomicUsize::new(0);
    let results = std::thread::scope(|s| {
        let loader = s.spawn(|| {
            let mut out: Vec<(usize, u16, Duration)> = Vec::new();
            let mut n = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let replica = if n % 2 == 0 { &a } else { &b };
                let (status, took, _) = get(replica, &client(run, n));
                out.push((
                    phase.load(std::sync::atomic::Ordering::Relaxed),
                    status,
                    took,
                ));
                n += 1;
            }
            out
        });
        let next = |p: usize, wait: u64| {
            phase.store(p, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(wait));
        };
        next(0, 400);
        redis.pause(true).unwrap();
        next(1, 600);
        redis.pause(false).unwrap();
        redis.kill();
        next(2, 600);
        rls.kill();
        next(3, 600);
        redis.restart().unwrap();
        rls.restart().unwrap();
        next(4, 800);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        loader.join().unwrap()
    });
    let names = [
        "healthy",
        "redis hung",
        "redis killed",
        "service killed",
        "restarted",
    ];
    for (p, name) in names.iter().enumerate() {
        let of: Vec<&(usize, u16, Duration)> = results.iter().filter(|r| r.0 == p).collect();
        assert!(of.len() >= 5, "{name}: only {} requests", of.len());
        let worst = of.iter().map(|r| r.2).max().unwrap();
        println!(
            "{name}: {} requests, slowest {worst:?}, statuses {:?}",
            of.len(),
            of.iter()
                .map(|r| r.1)
                .collect::<std::collections::BTreeSet<_>>()
        );
        // on_failure: open. Nothing waits much past the 20 ms timeout (the margin covers a
        // loaded test machine; `cargo xtask bench -- global` measures it precisely).
        assert!(of.iter().all(|r| r.1 == 200), "{name}: {of:?}");
        assert!(
            worst < Duration::from_millis(500),
            "{name}: slowest {worst:?}"
        );
    }
    let failures = |e: &Envoy| {
        e.stat("wasmcustom.tollgate.retail.rate_limit.fleet.failure_open")
            .unwrap()
            .unwrap_or(0)
    };
    let failed = failures(&a) + failures(&b);
    let during: usize = results.iter().filter(|r| (1..=3).contains(&r.0)).count();
    assert!(
        failed as usize >= during / 2,
        "{failed} failures counted for {during} requests while the engine was down"
    );
    for e in [&a, &b] {
        let log = e.log();
        assert!(!log.contains("panic"), "a panic in the filter:\n{log}");
        assert!(!log.contains("wasm_fail_stream"), "a trap:\n{log}");
    }

    // 3. Started again: the limit holds again, exactly.
    let started = hour();
    let admitted = spread(&[&a, &b], &client(run, 9_999), LIMIT + 20);
    if hour() == started {
        assert_eq!(admitted.iter().sum::<usize>(), LIMIT, "{admitted:?}");
    }

    // 4. Failing closed: with Redis down, a 503 problem, at once.
    assert!(a
        .push_and_wait(
            &PluginConfig::Text(policy("closed")),
            Duration::from_secs(20)
        )
        .unwrap());
    redis.kill();
    let (status, took, r) = get(&a, &client(run, 20_000));
    assert_eq!(status, 503, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert!(
        a.stat("wasmcustom.tollgate.retail.rate_limit.fleet.failure_closed")
            .unwrap()
            .unwrap_or(0)
            >= 1
    );
}

#[test]
fn each_edges_fleet_policy_compiles_with_its_global_limits() {
    for edge in ["retail", "dealer"] {
        let doc = harness::ratelimit::fleet_policy(edge).unwrap();
        let p = tollgate_core::Policy::from_json(&doc.to_string())
            .unwrap_or_else(|e| panic!("{edge}: {e:?}"));
        assert!(!p.global_limits().is_empty(), "{edge}");
        for g in p.global_limits() {
            assert_eq!(g.cluster, "ratelimit", "the bootstraps' cluster");
            assert!(g.rate.is_some());
        }
        // The local limits are all still there.
        assert!(!p.rate_limits().is_empty());
    }
}
