//! Measurements for the rate limits, through real Envoy (`--concurrency 2`) under wrk. Not a
//! test: run it with
//!
//! ```sh
//! cargo run --release -p harness --example limits -- cost      # rps and CPU/request, with vs without a limit
//! cargo run --release -p harness --example limits -- memory 1000000   # RSS with N distinct client IPs
//! ```

use std::time::Duration;

use anyhow::{bail, Result};
use harness::backend::Backend;
use harness::envoy::Envoy;
use harness::load::{print_comparison, rss_bytes, side_by_side, wrk, Load};

fn policy(limits: &str) -> String {
    format!(
        r#"{{"version":"measure","edge":"retail","client_ip":{{"trusted_hops":1}},
            "routes":[{{"name":"ping","path":"/v1/ping","methods":["GET"]}}],
            "rate_limits":[{limits}]}}"#
    )
}

fn edge(policy: String) -> Result<(Backend, Envoy)> {
    harness::envoy::edge_with_policy("retail", &policy, 2)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("cost") => cost(),
        Some("memory") => memory(
            args.get(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1_000_000),
        ),
        _ => bail!("usage: limits cost | limits memory [N]"),
    }
}

/// Requests/s and Envoy CPU per request, with one per-IP limit (never refusing) and without,
/// alternating in rounds.
fn cost() -> Result<()> {
    let with = edge(policy(
        r#"{"name":"per-ip","key":["client_ip"],"rate":"1000000/s","burst":1000000}"#,
    ))?;
    let without = edge(policy(""))?;
    let load = Load {
        path: "/v1/ping",
        headers: vec![("x-forwarded-for", "192.0.2.1".into())],
        threads: 1,
        connections: 8,
        duration: Duration::from_secs(5),
        script: None,
    };
    let rows = side_by_side(
        &[("with limit", &with.1), ("without", &without.1)],
        &load,
        3,
    )?;
    print_comparison(
        "Envoy --concurrency 2, wrk -t1 -c8, 3 rounds of 5 s, alternating",
        &rows,
        "the limit",
    );
    Ok(())
}

/// Envoy's RSS before and after `n` requests from distinct client addresses, against a per-IP
/// limit with a ceiling of 100,000 keys.
fn memory(n: u64) -> Result<()> {
    let max_keys = 100_000;
    let (_backend, envoy) = edge(policy(&format!(
        r#"{{"name":"per-ip","key":["client_ip"],"rate":"10/s","burst":20,"max_keys":{max_keys}}}"#
    )))?;
    let script = harness::scratch_dir("limits-memory")?.join("distinct.lua");
    std::fs::write(
        &script,
        r#"
local offset = tonumber(os.getenv("TG_OFFSET") or "0")
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  count = 0
end
function request()
  count = count + 1
  local n = offset + count * 2 + tid
  local ip = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  return wrk.format("GET", "/v1/ping", {["x-forwarded-for"] = ip})
end
"#,
    )?;
    // Warm up with one address, then read the baseline.
    let warm = Load {
        path: "/v1/ping",
        headers: vec![("x-forwarded-for", "192.0.2.1".into())],
        threads: 1,
        connections: 4,
        duration: Duration::from_secs(2),
        script: None,
    };
    wrk(envoy.addr, &warm)?;
    let before = rss_bytes(envoy.pid())?;
    let mut sent = 0u64;
    while sent < n {
        std::env::set_var("TG_OFFSET", (sent * 2 + 1_000_000).to_string());
        let r = wrk(
            envoy.addr,
            &Load {
                path: "/v1/ping",
                headers: vec![],
                threads: 2,
                connections: 16,
                duration: Duration::from_secs(10),
                script: Some(&script),
            },
        )?;
        sent += r.requests;
        println!(
            "  {sent:>8} requests from distinct addresses: Envoy RSS {:.1} MiB ({:.0} rps)",
            rss_bytes(envoy.pid())? as f64 / 1048576.0,
            r.rps
        );
    }
    let after = rss_bytes(envoy.pid())?;
    let stat = |s: &str| {
        envoy
            .stat(&format!("wasmcustom.tollgate.retail.rate_limit.per-ip.{s}"))
            .ok()
            .flatten()
            .unwrap_or(0)
    };
    println!(
        "{sent} requests from distinct client addresses, per-IP limit with max_keys {max_keys}:"
    );
    println!(
        "  Envoy RSS: {:.1} MiB before, {:.1} MiB after ({:+.1} MiB)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after as f64 - before as f64) / 1048576.0
    );
    println!(
        "  allowed {}, evicted {}, expired {}",
        stat("allowed"),
        stat("evicted"),
        stat("expired")
    );
    let key_len = format!("tg/retail/rl/per-ip/{}", max_keys - 1).len();
    println!(
        "  shared data: at most {max_keys} entries of 16 bytes under keys of at most {key_len} bytes ({:.1} MiB of payload)",
        (max_keys as f64 * (16 + key_len) as f64) / 1048576.0
    );
    Ok(())
}
