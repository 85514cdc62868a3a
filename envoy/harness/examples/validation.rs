//! What validation costs in Envoy: the retail policy as shipped, against the same policy with
//! every route's `validate` block removed, side by side in one run (two Envoys at
//! `--concurrency 2`, wrk posting a valid order, 3 alternating rounds of 5 s). Not a test:
//!
//! ```sh
//! cargo run --release -p harness --example validation
//! ```

use std::time::Duration;

use anyhow::{bail, Result};
use harness::backend::Backend;
use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use harness::load::{cpu_seconds, wrk, Load};
use harness::wasm::ensure_wasm;

const ORDER: &str = r#"{"model":"e-family","options":["PAINT-RED","TOWBAR"],"delivery":"2027-03-01","comment":"Leave it with the neighbour at No. 5 if we're out; ring twice.","billing":{"name":"Zoë Ørsted","street":"Østerbrogade 12","city":"København Ø","postcode":"2100","country":"DK"}}"#;

fn edge(policy: String) -> Result<(Backend, Envoy)> {
    let wasm = ensure_wasm()?;
    let backend = Backend::start("127.0.0.1:0")?;
    let mut o = EdgeOptions::new("retail", backend.addr, &wasm);
    o.concurrency = 2;
    o.plugin_config = PluginConfig::Text(policy);
    Ok((backend, Envoy::start(&o)?))
}

fn main() -> Result<()> {
    let shipped: serde_json::Value = serde_json::from_str(tollgate_policies::RETAIL)?;
    let mut stripped = shipped.clone();
    if let Some(routes) = stripped["routes"].as_array_mut() {
        for r in routes {
            if let Some(o) = r.as_object_mut() {
                o.remove("validate");
            }
        }
    }
    let with = edge(shipped.to_string())?;
    let without = edge(stripped.to_string())?;
    let script = harness::scratch_dir("validation-bench")?.join("order.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = [[{ORDER}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer t\"\nwrk.headers[\"X-Forwarded-For\"] = \"192.0.2.10\"\n"
        ),
    )?;
    let load = Load {
        path: "/v1/orders",
        headers: vec![],
        threads: 1,
        connections: 8,
        duration: Duration::from_secs(5),
        script: Some(&script),
    };
    let mut rows = [
        ("with validation", Vec::new(), Vec::new()),
        ("without", Vec::new(), Vec::new()),
    ];
    for round in 0..3 {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let envoy = if i == 0 { &with.1 } else { &without.1 };
            let cpu0 = cpu_seconds(envoy.pid())?;
            let r = wrk(envoy.addr, &load)?;
            let cpu = cpu_seconds(envoy.pid())? - cpu0;
            if r.non_2xx > 0 {
                bail!("{} refusals: the benchmark needs valid requests", r.non_2xx);
            }
            if let Some(row) = rows.get_mut(i) {
                row.1.push(r.rps);
                row.2.push(cpu * 1e6 / r.requests as f64);
            }
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!("POST /v1/orders (valid order), Envoy --concurrency 2, wrk -t1 -c8, 3 × 5 s alternating; medians:");
    let mut out = Vec::new();
    for (name, rps, cpu) in &mut rows {
        let (r, c) = (med(rps), med(cpu));
        println!("  {name:<16} {r:>8.0} rps  {c:>6.1} µs Envoy CPU/request");
        out.push((r, c));
    }
    if let [(r1, c1), (r0, c0)] = out.as_slice() {
        println!(
            "  ratio: {:.3} of the rps without validation; +{:.1} µs CPU per request",
            r1 / r0,
            c1 - c0
        );
    }
    Ok(())
}
