//! Tollgate's CRS engine and ModSecurity side by side in one run: the same seeded corpus
//! (`oracle/corpus.py`), the same Core Rule Set, each timed per request where it evaluates
//! (ModSecurity: `Transaction` calls through the `libmodsecurity` wheel, as `oracle/modsec.py`
//! times them; Tollgate: `Engine::evaluate`). A measurement, not a test.
//!
//! `cargo run --release -p tollgate-core --example crs_versus -- [COUNT] [SEED] [CRS_DIR]`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tollgate_core::crs::{self, dir::CorpusRequest, Engine, Exclusions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = args.first().map_or("2000", String::as_str);
    let seed = args.get(1).map_or("1", String::as_str);
    let dir = args
        .get(2)
        .map_or("/usr/share/modsecurity-crs", String::as_str);
    let py = root().join(".venv/bin/python");
    let corpus = Command::new(&py)
        .arg(root().join("oracle/corpus.py"))
        .args(["--seed", seed, "--count", count])
        .output()
        .map_err(|e| format!("corpus.py: {e} (run cargo xtask setup)"))?
        .stdout;
    let rules = if Path::new(dir).join("rules").is_dir() {
        Path::new(dir).join("rules")
    } else {
        PathBuf::from(dir)
    };
    let mut child = Command::new(&py)
        .arg(root().join("oracle/modsec.py"))
        .arg("--rules")
        .arg(&rules)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("modsec.py: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let data = corpus.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    let report = String::from_utf8_lossy(&out.stderr);
    let modsec_us: f64 = report
        .lines()
        .find_map(|l| {
            l.split("mean ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("modsec.py said no mean: {report}"))?;

    let (set, _) = crs::dir::import_dir(Path::new(dir), 1).map_err(|e| format!("{e:?}"))?;
    let mut engine = Engine::compile(&set, &Exclusions::default()).map_err(|e| e.join("\n"))?;
    engine.configure(1, &[]);
    let requests: Vec<CorpusRequest> = String::from_utf8_lossy(&corpus)
        .lines()
        .filter_map(CorpusRequest::parse)
        .collect();
    let remote = "127.0.0.1".parse().ok();
    let mut spent = Duration::ZERO;
    for r in &requests {
        let input = r.input(remote);
        let start = Instant::now();
        std::hint::black_box(engine.evaluate(std::hint::black_box(&input)));
        spent += start.elapsed();
    }
    let ours_us = spent.as_secs_f64() * 1e6 / requests.len().max(1) as f64;
    println!("{} requests (seed {seed}), {}", requests.len(), set.source);
    println!(
        "ModSecurity 3.0.15 + CRS (through the Python binding): {modsec_us:8.1} us per request"
    );
    println!(
        "Tollgate's engine, same rules:                          {ours_us:8.1} us per request"
    );
    println!(
        "ratio: Tollgate is {:.1}x cheaper",
        modsec_us / ours_us.max(0.001)
    );
    Ok(())
}
