//! The load benchmark: what Tollgate costs in Envoy, side by side with what the alternatives
//! cost, in one run on this machine. Not a test:
//!
//! ```sh
//! cargo run --release -p harness --example load -- [SECONDS] [ROUNDS] [CONCURRENCY]
//! cargo run --release -p harness --example load -- parts [SECONDS] [ROUNDS] [CONCURRENCY]
//! ```
//!
//! `parts` loads the no-op filter and the retail policy with and without its detection and its
//! limits instead, to show where Tollgate's cost goes. `calls` loads the no-op filter making
//! host calls of each kind (the header map, the clock, a shared-data read and CAS write, two
//! counter increments) on every request: what each costs in this Envoy.
//!
//! Five targets, all on 127.0.0.1, loaded in turn by `wrk -t1 -c16` for SECONDS (default 5),
//! ROUNDS times (default 3), the order reversed every other round:
//!
//! - `backend`: the demo backend, directly;
//! - `bare envoy`: the retail bootstrap with no filter but the router;
//! - `no-op wasm`: a Rust proxy-wasm filter that does nothing (`benches/noop`): the floor any
//!   wasm filter pays for crossing into V8;
//! - `tollgate`: the retail bootstrap as shipped, the full retail policy (routing, IP lists,
//!   required headers, the catalogue's per-address rate limit, validation, detection);
//! - `native`: Envoy's own filters doing the nearest equivalent work: `local_ratelimit` (one
//!   token bucket; Envoy's filter has no per-client buckets without route descriptors) and two
//!   `rbac` filters (deny the abuse networks, allow only the API's methods and paths).
//!
//! Every Envoy runs with `--concurrency CONCURRENCY` (default 1: the machine has 2 cores, and
//! wrk and the backend need the other). The request is a browser's catalogue look-up
//! (`GET /v1/configurator/models?market=de&page=2` with a Chrome User-Agent, a Referer, three
//! cookies and a new client address from 198.18.0.0/15 each time, so no limit refuses). It prints
//! medians of requests/s, p50 and p99 latency and Envoy CPU time per request, the rps range
//! over the rounds, and the ratios the goals are stated in.

use std::time::Duration;

use anyhow::Result;
use harness::envoy::{EdgeOptions, Envoy};
use harness::load::{browser_script, rounds, Load, Row, Target};
use serde_json::json;

fn native_filters() -> Vec<serde_json::Value> {
    let percent = |key: &str| json!({"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": key});
    vec![
        json!({
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                "stat_prefix": "native",
                "token_bucket": {"max_tokens": 10_000_000, "tokens_per_fill": 10_000_000,
                                 "fill_interval": "1s"},
                "filter_enabled": percent("native.rl.enabled"),
                "filter_enforced": percent("native.rl.enforced"),
            }
        }),
        json!({
            "name": "envoy.filters.http.rbac.deny",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                "rules": {"action": "DENY", "policies": {"abuse-networks": {
                    "permissions": [{"any": true}],
                    "principals": [
                        {"remote_ip": {"address_prefix": "203.0.113.0", "prefix_len": 24}},
                        {"remote_ip": {"address_prefix": "2001:db8:bad::", "prefix_len": 48}}
                    ]
                }}}
            }
        }),
        json!({
            "name": "envoy.filters.http.rbac.allow",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                "rules": {"action": "ALLOW", "policies": {"api": {
                    "permissions": [{"and_rules": {"rules": [
                        {"or_rules": {"rules": [
                            {"header": {"name": ":method", "string_match": {"exact": "GET"}}},
                            {"header": {"name": ":method", "string_match": {"exact": "POST"}}}
                        ]}},
                        {"url_path": {"path": {"prefix": "/v1/"}}}
                    ]}}],
                    "principals": [{"any": true}]
                }}}
            }
        }),
    ]
}

fn main() -> Result<()> {
    let mut raw: Vec<String> = std::env::args().skip(1).collect();
    let mode = match raw.first().map(String::as_str) {
        Some(m @ ("parts" | "calls")) => {
            let m = m.to_owned();
            raw.remove(0);
            m
        }
        _ => "compare".to_owned(),
    };
    let parts = mode == "parts";
    let args: Vec<u64> = raw.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
    let seconds = args.first().copied().unwrap_or(5);
    let rounds_n = args.get(1).copied().unwrap_or(3) as usize;
    let concurrency = args.get(2).copied().unwrap_or(1) as u32;

    let wasm = harness::wasm::ensure_wasm()?;
    let noop = harness::wasm::ensure_noop()?;
    let backend = harness::backend::Backend::start("127.0.0.1:0")?;
    let base = {
        let mut o = EdgeOptions::new("retail", backend.addr, &wasm);
        o.concurrency = concurrency;
        o
    };
    let with = |filters: Option<Vec<serde_json::Value>>| -> Result<Envoy> {
        let mut o = base.clone();
        o.filters_instead = filters;
        Envoy::start(&o)
    };
    let noop_filter = |calls: &str| {
        json!({
            "name": "envoy.filters.http.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": "noop", "root_id": "noop",
                    "vm_config": {"vm_id": "noop", "runtime": "envoy.wasm.runtime.v8",
                                  "code": {"local": {"filename": noop.display().to_string()}}},
                    "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                      "value": calls}
                }
            }
        })
    };
    let no_op = with(Some(vec![noop_filter("")]))?;
    let tollgate = with(None)?;

    let dir = harness::scratch_dir("load-bench")?;
    let script = browser_script(&dir)?;
    let load = Load {
        path: "/v1/configurator/models?market=de&page=2",
        headers: vec![],
        threads: 1,
        connections: 16,
        duration: Duration::from_secs(seconds),
        script: Some(&script),
    };
    if mode == "calls" {
        let kinds = [
            "headers",
            "one-header",
            "one-header one-header one-header",
            "headers headers",
            "shared",
        ];
        let envoys: Vec<Envoy> = kinds
            .iter()
            .map(|k| with(Some(vec![noop_filter(k)])))
            .collect::<Result<_>>()?;
        let mut targets = vec![Target {
            name: "no-op wasm",
            addr: no_op.addr,
            pid: Some(no_op.pid()),
        }];
        targets.extend(kinds.iter().zip(&envoys).map(|(k, e)| Target {
            name: k,
            addr: e.addr,
            pid: Some(e.pid()),
        }));
        let rows = rounds(&targets, &load, rounds_n)?;
        print_table(&rows, seconds, rounds_n, concurrency);
        if let Some(floor) = rows.first() {
            println!();
            for r in rows.iter().skip(1) {
                println!(
                    "{:<14} {:+.1} µs Envoy CPU per request over the no-op filter",
                    r.name,
                    r.cpu_us - floor.cpu_us
                );
            }
        }
        return Ok(());
    }
    if parts {
        let retail: serde_json::Value = serde_json::from_str(tollgate_policies::RETAIL)?;
        let variant = |drop: &[&str]| -> Result<Envoy> {
            let mut p = retail.clone();
            for k in drop {
                if let Some(o) = p.as_object_mut() {
                    o.remove(*k);
                }
            }
            let mut o = base.clone();
            o.plugin_config = harness::envoy::PluginConfig::Text(p.to_string());
            Envoy::start(&o)
        };
        let full_text = variant(&[])?;
        let no_detection = variant(&["detection"])?;
        let no_limits = variant(&["rate_limits", "bans", "enumeration"])?;
        let neither = variant(&["detection", "rate_limits", "bans", "enumeration"])?;
        let t = |name, e: &Envoy| Target {
            name,
            addr: e.addr,
            pid: Some(e.pid()),
        };
        // TOLLGATE_WASM_B: another build of the filter, loaded side by side with this one.
        let other = match std::env::var("TOLLGATE_WASM_B") {
            Ok(path) => {
                let mut o = base.clone();
                o.wasm = path.into();
                Some(Envoy::start(&o)?)
            }
            Err(_) => None,
        };
        let mut targets = vec![
            t("no-op wasm", &no_op),
            t("tollgate", &tollgate),
            t("same as JSON", &full_text),
            t("no detection", &no_detection),
            t("no limits", &no_limits),
            t("neither", &neither),
        ];
        if let Some(e) = &other {
            targets.push(t("tollgate B", e));
        }
        let rows = rounds(&targets, &load, rounds_n)?;
        print_table(&rows, seconds, rounds_n, concurrency);
        return Ok(());
    }
    let bare = with(Some(vec![]))?;
    let native = with(Some(native_filters()))?;
    let targets = [
        Target {
            name: "backend",
            addr: backend.addr,
            pid: None,
        },
        Target {
            name: "bare envoy",
            addr: bare.addr,
            pid: Some(bare.pid()),
        },
        Target {
            name: "no-op wasm",
            addr: no_op.addr,
            pid: Some(no_op.pid()),
        },
        Target {
            name: "tollgate",
            addr: tollgate.addr,
            pid: Some(tollgate.pid()),
        },
        Target {
            name: "native",
            addr: native.addr,
            pid: Some(native.pid()),
        },
    ];
    let rows = rounds(&targets, &load, rounds_n)?;
    print_table(&rows, seconds, rounds_n, concurrency);
    Ok(())
}

fn print_table(rows: &[Row], seconds: u64, rounds_n: usize, concurrency: u32) {
    println!(
        "GET /v1/configurator/models (browser headers), wrk -t1 -c16, {rounds_n} rounds × {seconds} s alternating, Envoy --concurrency {concurrency}; medians"
    );
    println!(
        "{:<12} {:>9} {:>17} {:>8} {:>8} {:>13}",
        "target", "rps", "rps range", "p50 µs", "p99 µs", "CPU µs/req"
    );
    for r in rows {
        println!(
            "{:<12} {:>9.0} {:>8.0}–{:<8.0} {:>8.0} {:>8.0} {:>13.1}",
            r.name, r.rps, r.rps_range.0, r.rps_range.1, r.p50_us, r.p99_us, r.cpu_us
        );
    }
    let get = |n: &str| rows.iter().find(|r| r.name == n);
    if let (Some(bare), Some(noop), Some(t), Some(native)) = (
        get("bare envoy"),
        get("no-op wasm"),
        get("tollgate"),
        get("native"),
    ) {
        println!();
        println!(
            "tollgate / no-op wasm rps: {:.3} (goal ≥ 0.95)",
            t.rps / noop.rps
        );
        println!(
            "tollgate / bare envoy rps: {:.3} (goal ≥ 0.85)",
            t.rps / bare.rps
        );
        println!(
            "tollgate p99 added over bare envoy: {:+.0} µs (goal ≤ +100 µs); over no-op wasm: {:+.0} µs",
            t.p99_us - bare.p99_us,
            t.p99_us - noop.p99_us
        );
        println!(
            "Envoy CPU per request: tollgate {:+.1} µs over bare, {:+.1} µs over no-op; native filters {:+.1} µs over bare",
            t.cpu_us - bare.cpu_us,
            t.cpu_us - noop.cpu_us,
            native.cpu_us - bare.cpu_us
        );
        println!(
            "no-op wasm / bare envoy rps: {:.3}; native / bare envoy rps: {:.3}",
            noop.rps / bare.rps,
            native.rps / bare.rps
        );
    }
}
