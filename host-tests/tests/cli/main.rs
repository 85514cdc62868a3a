//! The `tollgate` command, run as a user runs it.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::Command;

fn tollgate(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .expect("running tollgate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = harness::scratch_dir("cli").unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn test_runs_the_shipped_cases_and_passes() {
    let (code, out) = tollgate(&["test"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("policies/cases/retail.yaml"), "{out}");
    assert!(
        out.contains("  ok    an unknown route is refused by default"),
        "{out}"
    );
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn test_fails_with_a_readable_difference() {
    let cases = scratch(
        "wrong.yaml",
        "edge: retail\ncases:\n  - name: this expectation is wrong\n    request:\n      path: /internal/admin\n      headers: {x-forwarded-for: 192.0.2.10}\n    expect:\n      status: 200\n      body: {rule: nothing}\n      metrics: {requests.allowed: 1}\n",
    );
    let (code, out) = tollgate(&["test", cases.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  this expectation is wrong"), "{out}");
    assert!(out.contains("status: expected 200, got 404"), "{out}");
    assert!(
        out.contains(r#"body.rule: expected "nothing", got "routing""#),
        "{out}"
    );
    assert!(
        out.contains("metric requests.allowed: expected +1, got +0"),
        "{out}"
    );
    assert!(out.contains("1 cases, 0 passed, 1 failed"), "{out}");
}

#[test]
fn check_accepts_the_shipped_policies() {
    let root = harness::workspace_root();
    for p in ["policies/retail.yaml", "policies/dealer.yaml"] {
        let path = root.join(p);
        let (code, out) = tollgate(&["check", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(": ok: policy "), "{out}");
    }
}

#[test]
fn check_prints_every_error_with_its_line_and_path() {
    let policy = scratch(
        "bad.yaml",
        "version: v1\nedge: retail\nroutes:\n  - name: orders\n    path: /v1/orders\n    methods:\n      - GET\n      - GETT\nip_lists:\n  - name: x\n    action: maybe\n    cidrs: [10.0.0.0/33]\n",
    );
    let (code, out) = tollgate(&["check", policy.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let shown = policy.display().to_string();
    assert!(
        out.contains(&format!("{shown}:8: routes[0].methods[1]:")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{shown}:11: ip_lists[0].action:")),
        "{out}"
    );
    assert!(
        out.contains(&format!("{shown}:12: ip_lists[0].cidrs[0]:")),
        "{out}"
    );
    assert!(out.contains("3 error(s)"), "{out}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, out) = tollgate(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(out.contains("usage:"), "{out}");
}
