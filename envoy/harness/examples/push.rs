//! Envoy's memory over many policy pushes through ECDS, each waited for (`update_success`)
//! before the next, as a deployment pushes. Prints the resident set size every 50 pushes. Not a
//! test (the test suite runs a bounded version: `push::envoy_memory_stays_bounded_over_500_pushes`):
//!
//! ```sh
//! cargo run --release -p harness --example push -- [PUSHES] [retail|small|alternate|versions]
//! ```
//!
//! `retail`: each push is the full retail policy with a new version and a new burst for its
//! first limit (the policy compiled again in every VM, one 100,000-key table reset). `small`: a
//! one-route policy with a new version each time. `alternate`: the full retail policy, two
//! versions pushed in turn (every push still a change, but only two distinct configurations).
//! `versions`: the full retail policy with only a new version each time (no table reset).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use harness::load::rss_bytes;
use serde_json::json;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pushes: usize = args.first().map_or(Ok(500), |a| a.parse())?;
    let kind = args.get(1).map_or("retail", String::as_str);
    let wasm = harness::wasm::ensure_wasm()?;
    let backend = harness::backend::Backend::start("127.0.0.1:0")?;
    let mut o = EdgeOptions::new("retail", backend.addr, &wasm);
    o.concurrency = 2;
    let envoy = Envoy::start(&o)?;
    let retail: serde_json::Value = serde_json::from_str(tollgate_policies::RETAIL)?;
    let variant = |i: usize| -> PluginConfig {
        let p = match kind {
            "small" => json!({"version": format!("small-{i}"), "edge": "retail",
                "routes": [{"name": "x", "path": "/x", "methods": ["GET"]}]}),
            "alternate" => {
                let mut p = retail.clone();
                p["version"] = json!(format!("retail-push-{}", i % 2));
                p["rate_limits"][0]["burst"] = json!(10 + i % 2);
                p
            }
            "versions" => {
                let mut p = retail.clone();
                p["version"] = json!(format!("retail-push-{i}"));
                p
            }
            _ => {
                let mut p = retail.clone();
                p["version"] = json!(format!("retail-push-{i}"));
                p["rate_limits"][0]["burst"] = json!(10 + i % 7);
                p
            }
        };
        PluginConfig::Text(p.to_string())
    };
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let start_rss = rss_bytes(envoy.pid())?;
    println!("pushes  rss_mib  ms_per_push");
    println!("{:>6}  {:>7.1}", 0, mib(start_rss));
    let mut t = Instant::now();
    for i in 1..=pushes {
        if !envoy.push_and_wait(&variant(i), Duration::from_secs(10))? {
            bail!("push {i} was rejected");
        }
        if i % 50 == 0 {
            println!(
                "{:>6}  {:>7.1}  {:>11.1}",
                i,
                mib(rss_bytes(envoy.pid())?),
                t.elapsed().as_secs_f64() * 1e3 / 50.0
            );
            t = Instant::now();
        }
    }
    Ok(())
}
