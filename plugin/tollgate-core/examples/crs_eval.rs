//! Runs corpus lines (`oracle/corpus.py`'s JSON lines, on stdin) through the CRS engine and
//! prints, per line, the id, the anomaly score and the rules that matched: the engine's side of
//! `oracle/modsec.py`, for looking at one disagreement.
//!
//! `cargo run -p tollgate-core --example crs_eval -- [CRS_DIR] [PARANOIA] < corpus.jsonl`

// A tool for looking at one request: indexing a JSON value that lacks a field gives null.
#![allow(clippy::indexing_slicing)]

use std::io::BufRead;
use std::path::Path;

use tollgate_core::crs::{self, Engine, Exclusions, Input};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .map_or("/usr/share/modsecurity-crs", String::as_str);
    let paranoia: u8 = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(1);
    let (set, _) = match crs::dir::import_dir(Path::new(dir), paranoia) {
        Ok(x) => x,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    };
    let mut engine = match Engine::compile(&set, &Exclusions::default()) {
        Ok(e) => e,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    };
    let tx: Vec<(String, String)> = std::env::var("TOLLGATE_CRS_SET")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    engine.configure(paranoia, &tx);
    let (filtered, unfiltered) = engine.prefilter_coverage();
    eprintln!(
        "crs_eval: {} rules ({} folded), patterns: {filtered} behind a prefilter, {unfiltered} on every value",
        engine.rule_count(),
        engine.folded()
    );
    let (mut spent, mut n) = (std::time::Duration::ZERO, 0u32);
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Ok(req) = serde_json::from_str::<serde_json::Value>(&line) else {
            println!("{{\"error\":\"not JSON\"}}");
            continue;
        };
        let headers: Vec<(String, Vec<u8>)> = req["headers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|h| {
                        (
                            h[0].as_str().unwrap_or("").to_ascii_lowercase(),
                            h[1].as_str().unwrap_or("").as_bytes().to_vec(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let protocol = format!("HTTP/{}", req["version"].as_str().unwrap_or("1.1"));
        let input = Input {
            method: req["method"].as_str().unwrap_or("GET"),
            uri: req["uri"].as_str().unwrap_or("/"),
            protocol: &protocol,
            headers: &headers,
            body: req["body"].as_str().map(str::as_bytes),
            remote_addr: "127.0.0.1".parse().ok(),
        };
        let start = std::time::Instant::now();
        let out = engine.evaluate(&input);
        spent += start.elapsed();
        n += 1;
        let rules: Vec<String> = out
            .matched
            .iter()
            .filter(|m| m.logged)
            .map(|m| format!("{}:{}", m.id, m.score))
            .collect();
        println!(
            "{{\"id\":{},\"score\":{},\"rules\":\"{}\"}}",
            req["id"],
            out.score(),
            rules.join(" ")
        );
    }
    if n > 0 {
        eprintln!(
            "crs_eval: {n} requests, {:.1} us per request in the engine",
            spent.as_secs_f64() * 1e6 / f64::from(n)
        );
    }
}
