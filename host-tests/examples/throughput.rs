//! How fast requests go through the wasmtime host: the retail cases, replayed on one worker for
//! a fixed time, against the same loop with a module that does nothing (the host's own floor).
//! A measurement, not a test: `cargo run --release -p host-tests --example throughput`.

use std::time::{Duration, Instant};

use anyhow::Result;
use host_tests::cases::{self, CaseRequest};
use host_tests::{Host, Plugin, PluginOptions, PluginSpec, Request};

fn request(c: &CaseRequest) -> Request {
    let mut r = Request::new(&c.method, &c.path);
    for (k, v) in &c.headers {
        r = r.header(k, v);
    }
    if let Some(b) = &c.body {
        r = r.body(b.as_bytes());
    }
    r
}

/// Requests per second over `secs`, cycling through `reqs`.
fn rate(p: &mut Plugin, reqs: &[Request], secs: f64) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        for r in reqs {
            let ex = p.send(r.clone());
            assert!(ex.response.is_some());
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() -> Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let root = harness::workspace_root();
    let file = cases::load(&root.join("policies/cases/retail.yaml"))?;
    let reqs: Vec<Request> = file.cases.iter().map(|c| request(&c.request)).collect();

    let tollgate = Host::load(&harness::wasm::ensure_wasm()?)?;
    let spec = PluginSpec::new(r#"{"embedded": "retail"}"#);
    let mut with = Plugin::start(&tollgate, PluginOptions::new(spec).edge())?;
    let noop = Host::from_bytes(&wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "proxy_abi_version_0_2_1"))
             (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024))"#,
    )?)?;
    let mut without = Plugin::start(&noop, PluginOptions::new(PluginSpec::new("")).edge())?;

    // Warm up, then alternate, so both see the same machine.
    rate(&mut with, &reqs, 0.5);
    rate(&mut without, &reqs, 0.5);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        a.push(rate(&mut with, &reqs, secs / 3.0));
        b.push(rate(&mut without, &reqs, secs / 3.0));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ta, tb) = (med(&mut a), med(&mut b));
    println!(
        "retail cases ({} requests, cycled), one worker, median of 3 rounds:",
        reqs.len()
    );
    println!(
        "  Tollgate retail policy: {ta:>10.0} requests/s  ({:.1} µs/request)",
        1e6 / ta
    );
    println!(
        "  no-op module (floor):   {tb:>10.0} requests/s  ({:.1} µs/request)",
        1e6 / tb
    );
    println!(
        "  Tollgate's share:       {:.1} µs/request",
        1e6 / ta - 1e6 / tb
    );
    Ok(())
}
