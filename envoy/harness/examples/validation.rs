//! What validation costs in Envoy: the retail policy as shipped, against the same policy with
//! every route's `validate` block removed, side by side in one run (two Envoys at
//! `--concurrency 2`, wrk posting a valid order, 3 alternating rounds of 5 s). Not a test:
//!
//! ```sh
//! cargo run --release -p harness --example validation
//! ```

use std::time::Duration;

use anyhow::Result;
use harness::load::{print_comparison, side_by_side, Load};

const ORDER: &str = r#"{"model":"e-family","options":["PAINT-RED","TOWBAR"],"delivery":"2027-03-01","comment":"Leave it with the neighbour at No. 5 if we're out; ring twice.","billing":{"name":"Zoë Ørsted","street":"Østerbrogade 12","city":"København Ø","postcode":"2100","country":"DK"}}"#;

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
    let with = harness::envoy::edge_with_policy("retail", &shipped.to_string(), 2)?;
    let without = harness::envoy::edge_with_policy("retail", &stripped.to_string(), 2)?;
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
    let rows = side_by_side(
        &[("with validation", &with.1), ("without", &without.1)],
        &load,
        3,
    )?;
    print_comparison(
        "POST /v1/orders (valid order), Envoy --concurrency 2, wrk -t1 -c8, 3 × 5 s alternating",
        &rows,
        "validation",
    );
    Ok(())
}
