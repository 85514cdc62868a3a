//! The same outcomes as the `verdicts` group of `core.rs`, through the compiled `.wasm` in the
//! wasmtime host (`host-tests`), which answers as Envoy does: what a request costs the filter
//! with its host calls, less V8's own overheads. A module that does nothing gives the host's
//! floor. Run with `cargo bench -p tollgate-benches --bench host`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use host_tests::{Host, Plugin, PluginOptions, PluginSpec, Request};

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const MODELS: &str = "/v1/configurator/models?market=de&page=2";

fn browse(path: &str, ip: &str) -> Request {
    Request::new("GET", path)
        .header(":authority", "shop.example.com")
        .header("x-forwarded-for", ip)
        .header("user-agent", UA)
        .header("accept", "application/json")
        .header("cookie", "consent=yes")
}

fn host(c: &mut Criterion) {
    let wasm = harness::wasm::ensure_wasm().unwrap_or_else(|e| panic!("{e:#}"));
    let tollgate = Host::load(&wasm).unwrap_or_else(|e| panic!("{e:#}"));
    let start = || {
        Plugin::start(
            &tollgate,
            PluginOptions::new(PluginSpec::new(r#"{"embedded": "retail"}"#)).edge(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let noop = Host::from_bytes(
        &wat::parse_str(
            r#"(module (memory (export "memory") 1)
             (func (export "proxy_abi_version_0_2_1"))
             (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024))"#,
        )
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));

    let mut g = c.benchmark_group("host");
    let mut floor = Plugin::start(&noop, PluginOptions::new(PluginSpec::new("")).edge())
        .unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("no-op module: allowed", |b| {
        b.iter(|| floor.send(black_box(browse(MODELS, "192.0.2.10"))))
    });

    // Allowed: a new client address each time (the catalogue limit is per address, 100 burst).
    let mut p = start();
    assert_eq!(p.send(browse(MODELS, "198.19.0.1")).status(), Some(200));
    let mut n = 0u32;
    g.bench_function("retail allowed (per-address limit checked)", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let ip = format!("198.18.{}.{}", (n / 250) % 250, n % 250 + 1);
            p.send(black_box(browse(MODELS, &ip)))
        })
    });
    // Every address was new, so every request was allowed.
    assert_eq!(p.metric("tollgate.retail.requests.blocked").unwrap_or(0), 0);
    // Rate-limited: one address, far past its burst.
    let mut p = start();
    for _ in 0..200 {
        p.send(browse(MODELS, "192.0.2.99"));
    }
    assert_eq!(p.send(browse(MODELS, "192.0.2.99")).status(), Some(429));
    g.bench_function("retail rate-limited", |b| {
        b.iter(|| p.send(black_box(browse(MODELS, "192.0.2.99"))))
    });
    let refusals = [
        (
            "refused: no route",
            browse("/internal/admin", "192.0.2.10"),
            404,
        ),
        (
            "refused: validation",
            browse("/v1/configurator/models?market=xx&page=2", "192.0.2.10"),
            400,
        ),
        (
            "refused: detection (sqli in Referer)",
            browse(MODELS, "192.0.2.10")
                .header("referer", "https://shop.example.com/?q=1' OR '1'='1' --"),
            403,
        ),
    ];
    for (name, req, status) in refusals {
        let mut p = start();
        assert_eq!(p.send(req.clone()).status(), Some(status), "{name}");
        g.bench_function(format!("retail {name}"), |b| {
            b.iter(|| p.send(black_box(req.clone())))
        });
    }
    g.finish();
}

criterion_group!(benches, host);
criterion_main!(benches);
