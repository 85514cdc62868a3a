//! Runs corpus lines (`oracle/corpus.py`'s JSON lines, on stdin) through the CRS engine and
//! prints, per line, the id, the anomaly score and the rules that matched: the engine's side of
//! `oracle/modsec.py`, for looking at one disagreement. On stderr: the rule count and the mean
//! time per request spent in the engine.
//!
//! `cargo run --release -p tollgate-core --example crs_eval -- [CRS_DIR] [PARANOIA] < corpus.jsonl`
//! (`TOLLGATE_CRS_SET=name=value,...` overrides setup variables, as `detection.crs.setup` does).

use std::io::BufRead;
use std::path::Path;

use tollgate_core::crs::{self, dir::CorpusRequest, Engine, Exclusions};

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
    let remote = "127.0.0.1".parse().ok();
    let (mut spent, mut n) = (std::time::Duration::ZERO, 0u32);
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Some(req) = CorpusRequest::parse(&line) else {
            println!("{{\"error\":\"not a corpus line\"}}");
            continue;
        };
        let input = req.input(remote);
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
            req.id,
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
