//! What attack detection costs in Envoy: the retail policy as shipped, against the same policy
//! without its `detection` block, side by side in one run (two Envoys at `--concurrency 2`, 3
//! alternating rounds of 5 s each). Two kinds of traffic: a browser's catalogue request (long
//! User-Agent, Referer, cookies, a query) and a test-drive booking with free text in its JSON
//! body. Not a test:
//!
//! ```sh
//! cargo run --release -p harness --example detection
//! ```

use std::time::Duration;

use anyhow::Result;
use harness::load::{browser_script, print_comparison, side_by_side, Load, BROWSER_UA as UA};

const BOOKING: &str = r#"{"dealer_id":"D-1001","model":"e-sport","slot":"2026-12-03T09:30:00+01:00","name":"Siobhan O'Brien","phone":"+353 1 555 0100","comment":"Please have the sunroof version ready; I'm 1.95 m tall -- and my dog comes too (he's calm)."}"#;

fn main() -> Result<()> {
    let shipped: serde_json::Value = serde_json::from_str(tollgate_policies::RETAIL)?;
    let mut stripped = shipped.clone();
    if let Some(o) = stripped.as_object_mut() {
        o.remove("detection");
    }
    let with = harness::envoy::edge_with_policy("retail", &shipped.to_string(), 2)?;
    let without = harness::envoy::edge_with_policy("retail", &stripped.to_string(), 2)?;
    let dir = harness::scratch_dir("detection-bench")?;

    // A new client address per request, so the catalogue's per-address limit never refuses:
    // both Envoys do the same limit work.
    let browse = browser_script(&dir)?;
    let book = dir.join("book.lua");
    std::fs::write(
        &book,
        format!(
            "wrk.method = \"POST\"\nwrk.body = [[{BOOKING}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer t\"\nwrk.headers[\"X-Forwarded-For\"] = \"192.0.2.10\"\nwrk.headers[\"User-Agent\"] = \"{UA}\"\n"
        ),
    )?;
    let loads = [
        (
            "GET /v1/configurator/models?market=de&page=2 (browser headers)",
            "/v1/configurator/models?market=de&page=2",
            &browse,
        ),
        (
            "POST /v1/test-drives (booking with free text)",
            "/v1/test-drives",
            &book,
        ),
    ];
    for (title, path, script) in loads {
        let load = Load {
            path,
            headers: vec![],
            threads: 1,
            connections: 8,
            duration: Duration::from_secs(5),
            script: Some(script),
        };
        let rows = side_by_side(
            &[("with detection", &with.1), ("without", &without.1)],
            &load,
            3,
        )?;
        print_comparison(
            &format!("{title}, Envoy --concurrency 2, wrk -t1 -c8, 3 × 5 s alternating"),
            &rows,
            "detection",
        );
    }
    Ok(())
}
