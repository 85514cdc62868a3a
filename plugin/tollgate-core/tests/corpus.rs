//! The labelled corpus (`policies/corpus/`) against the shipped policies' detection: every
//! attack line as a query value and as a JSON string in a body (scanner lines as `User-Agent`),
//! every benign value in the same places, every benign `User-Agent`. Prints the detection rate
//! per class and the false-positive rate, and holds them to the project's goals (≥ 95 %
//! detected, ≤ 0.5 % false positives). The held-out sets (`corpus/holdout/`, `corpus/holdout2/`,
//! written apart from the detectors) are measured the same way and held to looser bounds.
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
            assert!(pct(*hit, *n) >= 95.0, "{name}: {class} detected {hit}/{n}");
        }
        let (fp, n) = r.benign;
        assert!(pct(fp, n) <= 0.5, "{name}: {fp}/{n} false positives");
    }
}

#[test]
fn holdout_detection_and_false_positives() {
    let policy = Policy::from_json(tollgate_policies::RETAIL).unwrap();
    for dir in ["holdout/", "holdout2/"] {
        let r = measure(&policy, dir);
        report(&format!("held-out corpus {dir}, retail policy"), &r);
        for (class, hit, n) in &r.lines {
            assert!(pct(*hit, *n) >= 80.0, "{dir} {class} detected {hit}/{n}");
        }
        let (fp, n) = r.benign;
        assert!(pct(fp, n) <= 1.0, "{dir}: {fp}/{n} false positives");
    }
}
