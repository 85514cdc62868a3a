//! The labelled corpus (`policies/corpus/`) against the shipped policies' detection: every
//! attack line as a query value and as a JSON string in a body (scanner lines as `User-Agent`),
//! every benign value in the same places, every benign `User-Agent`. Prints the detection rate
//! per class and the false-positive rate.
//!
//! Detection is deterministic, so each set is held to what it measures, with no margin:
//! - the main corpus: every attack line refused, no benign value refused;
//! - `holdout/` and `holdout2/`: written apart from the detectors, but tuned on after their
//!   first runs (their READMEs say so), so they are training data now: held to today's counts;
//! - `holdout3/`: written by an author who saw neither the detectors nor the rules nor the
//!   other sets, and frozen by the checksums below. **Nobody tunes on it**: it is measured and
//!   held to its first run, and a change to any of its files fails
//!   `the_third_holdout_is_frozen`.
//!
//! `cargo test -p tollgate-core --test corpus -- --nocapture` shows the table.

// Tests may unwrap, index and panic (clippy.toml allows it inside #[test] functions only).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use tollgate_core::{Policy, Request};

const CLASSES: [&str; 6] = ["sqli", "xss", "traversal", "command", "ssrf", "scanner"];

fn corpus(rel: &str) -> Vec<String> {
    let path = format!("{}/../../policies/corpus/{rel}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Percent-encodes everything but unreserved characters, as a client library would.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether the policy's detection refuses `value` in `place` (`query`, `body` or `ua`). Each
/// request otherwise looks like a browser's, so only the value can score.
fn refused(policy: &Policy, place: &str, value: &str) -> bool {
    let d = policy
        .detection()
        .expect("the shipped policies enable detection");
    let threshold = policy.detection_threshold(None).unwrap_or(5);
    let path = match place {
        "query" => format!("/v1/search?q={}", encode(value)),
        _ => "/v1/search".to_string(),
    };
    let ua = if place == "ua" {
        value
    } else {
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
    };
    let headers: Vec<(String, Vec<u8>)> = vec![
        (
            ":method".into(),
            if place == "body" { "POST" } else { "GET" }
                .as_bytes()
                .to_vec(),
        ),
        (":path".into(), path.into_bytes()),
        (":authority".into(), b"api.example.com".to_vec()),
        ("user-agent".into(), ua.as_bytes().to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
    ];
    let req = Request::from_headers(&headers, None).with_body(place == "body");
    let mut v = tollgate_core::Verdict::default();
    d.inspect_head(&req, &mut v.findings);
    if place == "body" {
        let body = serde_json::json!({ "comment": value }).to_string();
        d.inspect_body(
            body.as_bytes(),
            Some(b"application/json"),
            None,
            &mut v.findings,
        );
    }
    d.judge(threshold, &v.findings, &v.crs).is_some()
}

struct Rates {
    lines: Vec<(String, usize, usize)>,
    benign: (usize, usize),
}

fn measure(policy: &Policy, dir: &str) -> Rates {
    let mut lines = Vec::new();
    for class in CLASSES {
        let (mut n, mut hit) = (0, 0);
        for line in corpus(&format!("{dir}attack/{class}.txt")) {
            let places: &[&str] = if class == "scanner" {
                &["ua"]
            } else {
                &["query", "body"]
            };
            for place in places {
                n += 1;
                if refused(policy, place, &line) {
                    hit += 1;
                } else {
                    println!("  missed {class} in {place}: {line}");
                }
            }
        }
        lines.push((class.to_string(), hit, n));
    }
    let (mut n, mut fp) = (0, 0);
    for line in corpus(&format!("{dir}benign/values.txt")) {
        for place in ["query", "body"] {
            n += 1;
            if refused(policy, place, &line) {
                fp += 1;
                println!("  false positive in {place}: {line}");
            }
        }
    }
    for line in corpus(&format!("{dir}benign/user-agents.txt")) {
        n += 1;
        if refused(policy, "ua", &line) {
            fp += 1;
            println!("  false positive as User-Agent: {line}");
        }
    }
    Rates {
        lines,
        benign: (fp, n),
    }
}

fn report(title: &str, r: &Rates) {
    println!("{title}");
    println!("  {:<10} {:>9} {:>8}", "class", "detected", "rate");
    let (mut all, mut total) = (0, 0);
    for (class, hit, n) in &r.lines {
        println!("  {class:<10} {:>4}/{:<4} {:>7.1}%", hit, n, pct(*hit, *n));
        all += hit;
        total += n;
    }
    println!(
        "  {:<10} {:>4}/{:<4} {:>7.1}%",
        "all",
        all,
        total,
        pct(all, total)
    );
    let (fp, n) = r.benign;
    println!("  false positives {fp}/{n} = {:.2}%", pct(fp, n));
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

#[test]
fn corpus_detection_and_false_positives() {
    for (name, json) in tollgate_policies::EMBEDDED {
        let policy = Policy::from_json(json).unwrap();
        let r = measure(&policy, "");
        report(&format!("corpus, {name} policy"), &r);
        for (class, hit, n) in &r.lines {
            assert_eq!(hit, n, "{name}: {class} detected {hit}/{n}");
        }
        let (fp, n) = r.benign;
        assert_eq!(fp, 0, "{name}: {fp}/{n} false positives");
    }
}

// Measured 2026-12-02 (`cargo test -p tollgate-core --test corpus -- --nocapture`). Each
// attack line counts twice (query and body) except scanner lines (User-Agent).
const HOLDOUT: [usize; 6] = [168, 176, 126, 130, 110, 32];
const HOLDOUT_FP: usize = 0;
const HOLDOUT2: [usize; 6] = [164, 180, 114, 154, 92, 29];
const HOLDOUT2_FP: usize = 0;
/// holdout3's first run, the day it was written (308 of 310, no false positive of 190): the
/// figure for how detection generalises. Not to be tuned on.
const HOLDOUT3: [usize; 6] = [60, 60, 60, 58, 50, 20];
const HOLDOUT3_FP: usize = 0;

/// Per set: the attack lines refused per class (in `CLASSES` order) and the benign items
/// refused, as measured with the shipped retail policy. A set may do better (then raise its
/// line here); doing worse fails.
const MEASURED: [(&str, [usize; 6], usize); 3] = [
    ("holdout/", HOLDOUT, HOLDOUT_FP),
    ("holdout2/", HOLDOUT2, HOLDOUT2_FP),
    ("holdout3/", HOLDOUT3, HOLDOUT3_FP),
];

#[test]
fn holdout_detection_and_false_positives() {
    let policy = Policy::from_json(tollgate_policies::RETAIL).unwrap();
    for (dir, hits, fps) in MEASURED {
        let r = measure(&policy, dir);
        report(&format!("held-out corpus {dir}, retail policy"), &r);
        for ((class, hit, n), floor) in r.lines.iter().zip(hits) {
            assert!(
                *hit >= floor,
                "{dir} {class}: {hit}/{n} detected, measured {floor}"
            );
        }
        let (fp, n) = r.benign;
        assert!(fp <= fps, "{dir}: {fp}/{n} false positives, measured {fps}");
    }
}

/// `holdout3/`'s files and their SHA-256, taken when it was written (2026-12-02).
const HOLDOUT3_SHA256: &[(&str, &str)] = &[
    (
        "README.md",
        "09a3519325f71b9b6897b5b1d39ab5cb06b5ed37d510f0702553657503e075fa",
    ),
    (
        "attack/command.txt",
        "ddd560837ff8f4b19293467c1f595e6307d5dec3b1086ff0aef32f329aa96ad1",
    ),
    (
        "attack/scanner.txt",
        "ad855bb9296efd2894fe3a79b37eb74d2570ce985191093ee5a0a142686165ea",
    ),
    (
        "attack/sqli.txt",
        "d24e59114342756b3e5fdad190202bcce836cb068c927fae4a4e643b6aab2031",
    ),
    (
        "attack/ssrf.txt",
        "6e8ef531a8b0aa9cf195cbcdf6fd1e49a21a2896c58856615314fe2146748e98",
    ),
    (
        "attack/traversal.txt",
        "045964df616f6fa26ffd95091d5abaac5d6ae466dcd609b1da8dc6e3b6c76b6e",
    ),
    (
        "attack/xss.txt",
        "286ba7cf6ba32f21b6d82b814539a2de25d377e4ee23641fe119b5cc23258442",
    ),
    (
        "benign/user-agents.txt",
        "1cada446da71f332a2c778b2085e1f437e143c74fd472da1412fbfb8cbef18c0",
    ),
    (
        "benign/values.txt",
        "37354d485ffd525a56c1397324101ff613c2825da6ec9338418165e71ef74921",
    ),
];

#[test]
fn the_third_holdout_is_frozen() {
    use sha2::Digest;
    let dir = format!(
        "{}/../../policies/corpus/holdout3",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut files: Vec<String> = Vec::new();
    for sub in ["", "attack", "benign"] {
        for e in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                files.push(p.strip_prefix(&dir).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    let listed: Vec<String> = HOLDOUT3_SHA256.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(files, listed, "holdout3/ gained or lost a file");
    for (file, sum) in HOLDOUT3_SHA256 {
        let bytes = std::fs::read(format!("{dir}/{file}")).unwrap();
        let got: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            got, *sum,
            "holdout3/{file} changed: the set is frozen (write a new one instead)"
        );
    }
}
