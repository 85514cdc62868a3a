//! The CRS engine against ModSecurity itself: the same Core Rule Set (the machine's, imported
//! by `crs::dir`), the same requests (a seeded corpus from `oracle/corpus.py`), libmodsecurity
//! 3 through the `libmodsecurity` wheel in the project's venv (`oracle/modsec.py`).
//!
//! The bounded run here takes a few thousand requests; `TOLLGATE_ORACLE_COUNT` and
//! `TOLLGATE_ORACLE_SEED` make a long one (`oracle/README.md`). It prints agreement per class,
//! on block/allow and on the set of rule ids, and fails when block/allow agreement drops below
//! 99 % or when a rule disagrees that `oracle/known-differences.txt` does not explain.

// Tests may unwrap, index and panic (clippy.toml allows it inside #[test] functions only).
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tollgate_core::crs::{self, dir::CorpusRequest, Engine, Exclusions};

/// CRS's default inbound threshold, which the oracle runs with.
const THRESHOLD: u32 = 5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask setup` (it installs the libmodsecurity wheel)",
        p.display()
    );
    p
}

fn run(cmd: &mut Command, stdin: &[u8]) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", out.status);
    out.stdout
}

/// Rule ids to compare: those that log and are not the blocking evaluation.
fn comparable(id: u64) -> bool {
    !(949000..950000).contains(&id) && !(980000..981000).contains(&id) && id < 1_000_000
}

/// `rule id<TAB>reason` lines: rules whose firing may differ, with why.
fn known_differences() -> BTreeMap<u64, String> {
    let text =
        std::fs::read_to_string(root().join("oracle/known-differences.txt")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (id, why) = l.split_once(char::is_whitespace)?;
            Some((id.parse().ok()?, why.trim().to_string()))
        })
        .collect()
}

#[test]
fn agrees_with_modsecurity_on_a_generated_corpus() {
    let seed = std::env::var("TOLLGATE_ORACLE_SEED").unwrap_or_else(|_| "20261201".into());
    let count = std::env::var("TOLLGATE_ORACLE_COUNT").unwrap_or_else(|_| "3000".into());
    let py = python();
    let corpus = run(
        Command::new(&py)
            .arg(root().join("oracle/corpus.py"))
            .args(["--seed", &seed, "--count", &count]),
        b"",
    );
    let verdicts = run(
        Command::new(&py)
            .arg(root().join("oracle/modsec.py"))
            .args(["--paranoia", "1"]),
        &corpus,
    );
    let (set, _) = crs::dir::import_dir(Path::new("/usr/share/modsecurity-crs"), 1)
        .expect("import the machine's CRS (cargo xtask setup installs modsecurity-crs)");
    let mut engine = Engine::compile(&set, &Exclusions::default()).unwrap();
    engine.configure(1, &[]);
    let known = known_differences();

    #[derive(Default)]
    struct Tally {
        n: u32,
        agree: u32,
        same_rules: u32,
        ours: u32,
        theirs: u32,
    }
    let mut by_class: BTreeMap<String, Tally> = BTreeMap::new();
    let mut unexplained: BTreeMap<(u64, &'static str), Vec<String>> = BTreeMap::new();
    let mut errors = 0;
    for (line, verdict) in String::from_utf8(corpus)
        .unwrap()
        .lines()
        .zip(String::from_utf8(verdicts).unwrap().lines())
    {
        let req: Value = serde_json::from_str(line).unwrap();
        let want: Value = serde_json::from_str(verdict).unwrap();
        assert_eq!(req["id"], want["id"], "oracle output out of order");
        if want.get("error").is_some() {
            errors += 1;
            continue;
        }
        let parsed = CorpusRequest::parse(line).unwrap();
        let input = parsed.input(Some("127.0.0.1".parse().unwrap()));
        let out = engine.evaluate(&input);
        let ours: BTreeSet<u64> = out
            .matched
            .iter()
            .filter(|m| m.logged)
            .map(|m| u64::from(m.id))
            .filter(|id| comparable(*id))
            .collect();
        let theirs: BTreeSet<u64> = want["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .filter(|id| comparable(*id))
            .collect();
        let blocked = out.score() >= THRESHOLD;
        let class = req["class"].as_str().unwrap_or("?").to_string();
        let t = by_class.entry(class.clone()).or_default();
        t.n += 1;
        t.agree += u32::from(blocked == want["blocked"].as_bool().unwrap());
        t.same_rules += u32::from(ours == theirs);
        t.ours += u32::from(blocked);
        t.theirs += u32::from(want["blocked"].as_bool().unwrap());
        for id in ours.symmetric_difference(&theirs) {
            if known.contains_key(id) {
                continue;
            }
            let side = if ours.contains(id) {
                "only Tollgate"
            } else {
                "only ModSecurity"
            };
            let v = unexplained.entry((*id, side)).or_default();
            if v.len() < 3 {
                v.push(format!(
                    "{} {}",
                    req["method"].as_str().unwrap(),
                    line.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    println!(
        "{:<20} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "class", "n", "agree %", "rules %", "ours", "modsec"
    );
    let (mut n, mut agree) = (0, 0);
    for (c, t) in &by_class {
        n += t.n;
        agree += t.agree;
        println!(
            "{:<20} {:>6} {:>9.2} {:>9.2} {:>9} {:>9}",
            c,
            t.n,
            100.0 * f64::from(t.agree) / f64::from(t.n),
            100.0 * f64::from(t.same_rules) / f64::from(t.n),
            t.ours,
            t.theirs
        );
    }
    let rate = f64::from(agree) / f64::from(n.max(1));
    println!(
        "block/allow agreement: {:.2} % of {n} ({errors} oracle errors)",
        100.0 * rate
    );
    for ((id, side), examples) in &unexplained {
        println!("rule {id}: {side}");
        for e in examples {
            println!("    {e}");
        }
    }
    assert!(n > 0, "no request compared");
    assert!(
        rate >= 0.99,
        "block/allow agreement {:.2} % < 99 %",
        100.0 * rate
    );
    assert!(
        unexplained.is_empty(),
        "{} rule disagreements are not in oracle/known-differences.txt",
        unexplained.len()
    );
}
