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
    let (code, stdout, stderr) = tollgate_split(args);
    (code, format!("{stdout}{stderr}"))
}

/// The exit status, stdout and stderr apart.
fn tollgate_split(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .expect("running tollgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// stdout as one JSON document.
fn json_of(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
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
    let (code, stdout, stderr) = tollgate_split(&["check", policy.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "errors go to stderr: {stdout}");
    let out = stderr;
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
fn usage_errors_exit_2_on_stderr() {
    for args in [
        &["frobnicate"][..],
        &[],
        &["check"],
        &["diff", "only-one.yaml"],
        &["test", "--wasm"],
        &[
            "crs",
            "import",
            "/usr/share/modsecurity-crs",
            "--paranoia",
            "5",
        ],
        &["check", "--format", "xml", "policies/retail.yaml"],
    ] {
        let (code, stdout, stderr) = tollgate_split(args);
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(
            stdout.is_empty(),
            "{args:?}: usage errors go to stderr: {stdout}"
        );
        assert!(
            stderr.contains("Usage:") || stderr.contains("try '--help'"),
            "{args:?}: {stderr}"
        );
    }
    // A file that cannot be read is not a policy failure.
    let (code, _, stderr) = tollgate_split(&["check", "/nonexistent/policy.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("reading /nonexistent/policy.yaml"),
        "{stderr}"
    );
}

#[test]
fn help_on_the_command_and_every_subcommand_exits_0() {
    for args in [
        &["--help"][..],
        &["help"],
        &["test", "--help"],
        &["check", "--help"],
        &["diff", "--help"],
        &["schema", "--help"],
        &["crs", "--help"],
        &["crs", "import", "--help"],
        &["completions", "--help"],
        &["help", "diff"],
    ] {
        let (code, stdout, stderr) = tollgate_split(args);
        assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
        assert!(stdout.contains("Usage: tollgate"), "{args:?}: {stdout}");
    }
    let (_, top, _) = tollgate_split(&["--help"]);
    for sub in ["test", "check", "diff", "schema", "crs", "completions"] {
        assert!(
            top.contains(&format!("  {sub} ")),
            "{sub} missing from:\n{top}"
        );
    }
    assert!(top.contains("Exit status: 0 ok; 1 "), "{top}");
}

#[test]
fn version_names_the_plugin_and_the_formats() {
    let (code, stdout, _) = tollgate_split(&["--version"]);
    assert_eq!(code, 0);
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(
        stdout.trim(),
        format!(
            "tollgate {v} (plugin {v}, policy format {}, CRS rule set format {})",
            tollgate_core_formats().0,
            tollgate_core_formats().1
        )
    );
}

/// The formats as the core declares them (read from its source, which the CLI compiles in).
fn tollgate_core_formats() -> (String, String) {
    let root = harness::workspace_root();
    let grab = |file: &str, name: &str| {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("pub const {name}: u32 = ")))
            .unwrap_or_else(|| panic!("{name} in {file}"));
        line.trim_end_matches(';')
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    };
    (
        grab("plugin/tollgate-core/src/lib.rs", "POLICY_FORMAT"),
        grab("plugin/tollgate-core/src/crs/ruleset.rs", "FORMAT"),
    )
}

#[test]
fn check_speaks_json_for_pipelines() {
    let root = harness::workspace_root();
    let good = root.join("policies/dealer.yaml");
    let bad = scratch(
        "bad-json.yaml",
        "version: v1\nedge: retail\nroutes:\n  - name: orders\n    path: /v1/orders\n    methods: [GETT]\n",
    );
    let (code, stdout, _) = tollgate_split(&["check", "--format", "json", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    let v = json_of(&stdout);
    assert_eq!(v["valid"], true);
    assert_eq!(v["files"][0]["edge"], "dealer");
    assert!(v["files"][0]["rules"].as_u64().unwrap() > 0, "{v}");

    let (code, stdout, _) = tollgate_split(&[
        "check",
        "--format",
        "json",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}");
    let v = json_of(&stdout);
    assert_eq!(v["valid"], false);
    assert_eq!(v["files"][0]["valid"], true);
    let errors = v["files"][1]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["path"], "routes[0].methods[0]");
    assert_eq!(errors[0]["line"], 6);
}

#[test]
fn test_speaks_json_for_pipelines() {
    let cases = scratch(
        "wrong-json.yaml",
        "edge: retail\ncases:\n  - name: this expectation is wrong\n    request:\n      path: /internal/admin\n      headers: {x-forwarded-for: 192.0.2.10}\n    expect:\n      status: 200\n  - name: this one holds\n    request:\n      path: /internal/admin\n      headers: {x-forwarded-for: 192.0.2.10}\n    expect:\n      status: 404\n",
    );
    let (code, stdout, _) = tollgate_split(&["test", "--format", "json", cases.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    let v = json_of(&stdout);
    assert_eq!(
        (v["total"].as_u64(), v["failed"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    let c = &v["files"][0]["cases"];
    assert_eq!(c[0]["passed"], false);
    assert_eq!(c[0]["problems"][0], "status: expected 200, got 404");
    assert_eq!(c[1]["passed"], true);
}

#[test]
fn completions_for_the_usual_shells() {
    for (shell, mark) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef tollgate"),
        ("fish", "complete -c tollgate"),
    ] {
        let (code, stdout, stderr) = tollgate_split(&["completions", shell]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains(mark), "{shell}: {stdout}");
        for sub in ["check", "diff", "import"] {
            assert!(stdout.contains(sub), "{shell} completes {sub}");
        }
    }
}

#[test]
fn diff_explains_what_a_push_changes() {
    let root = harness::workspace_root();
    let old_path = root.join("policies/retail.yaml");
    let old = std::fs::read_to_string(&old_path).unwrap();
    // A push that loosens some things and tightens others.
    let new = old
        .replace("version: retail-", "version: next-retail-")
        .replace("    rate: 10/min\n    burst: 5\n", "    rate: 20/min\n    burst: 5\n")
        .replace("    rate: 120/min\n    burst: 30\n", "    rate: 120/min\n    burst: 10\n")
        .replace("      - 203.0.113.0/24\n", "      - 203.0.113.0/24\n      - 198.18.0.0/15\n")
        .replace("  - name: configurator-models\n", "  - name: press-kit\n    path: /v1/press\n    methods: [GET]\n  - name: configurator-models\n")
        .replace("    rate: 5/min\n    burst: 5\n", "    rate: 5/min\n    burst: 5\n    mode: shadow\n");
    assert_ne!(new, old);
    let new_path = scratch("next.yaml", &new);
    let (code, out) = tollgate(&[
        "diff",
        old_path.to_str().unwrap(),
        new_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    for line in [
        "+ loosened  route press-kit: added, [\"GET\"] /v1/press",
        "~ loosened  rate_limit login-per-ip: rate: 10/min → 20/min",
        "~ tightened rate_limit orders-per-account: burst: 30 → 10",
        "~ tightened ip_list abuse-networks: cidrs + 198.18.0.0/15",
        "~ loosened  rate_limit login-per-account: mode: (unset) → shadow",
        "  rate_limit.login-per-account: kept",
        "~ changed   version: version: retail-",
        "  rate_limit.login-per-ip: reset (definition changed)",
        "  ban.login-failures: kept",
        "1 added, 0 removed, 5 changed: 3 loosened, 2 tightened, 1 neither",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }

    // Nothing changed: nothing reported, every table kept.
    let (code, out) = tollgate(&[
        "diff",
        old_path.to_str().unwrap(),
        old_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 added, 0 removed, 0 changed"), "{out}");
    assert!(!out.contains("reset"), "{out}");

    // An invalid side: its errors, and exit 1.
    let bad = scratch(
        "bad-next.yaml",
        &new.replace("methods: [GET]", "methods: [GIT]"),
    );
    let (code, out) = tollgate(&["diff", old_path.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("routes[0].methods[0]"), "{out}");

    // The same, as JSON.
    let (code, stdout, _) = tollgate_split(&[
        "diff",
        "--format",
        "json",
        old_path.to_str().unwrap(),
        new_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}");
    let v = json_of(&stdout);
    let d = &v["diff"];
    assert_eq!(
        (d["added"].as_u64(), d["changed"].as_u64()),
        (Some(1), Some(5)),
        "{v}"
    );
    assert_eq!(
        (d["loosened"].as_u64(), d["tightened"].as_u64()),
        (Some(3), Some(2)),
        "{v}"
    );
    assert_eq!(
        d["state"]["rate_limit.login-per-ip"],
        "reset (definition changed)"
    );
    assert!(
        d["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["subject"] == "route press-kit"
                && c["kind"] == "added"
                && c["effect"] == "loosened"),
        "{v}"
    );
    let (code, stdout, _) = tollgate_split(&[
        "diff",
        "--format",
        "json",
        old_path.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        json_of(&stdout)["invalid"][0]["errors"][0]["path"],
        "routes[0].methods[0]"
    );
}

fn schema_file() -> PathBuf {
    harness::workspace_root().join("policies/policy.schema.json")
}

#[test]
fn the_checked_in_schema_is_what_the_format_types_generate() {
    let (code, out) = tollgate(&["schema"]);
    assert_eq!(code, 0, "{out}");
    let file = std::fs::read_to_string(schema_file()).unwrap();
    assert!(
        out == file,
        "policies/policy.schema.json is stale: run `cargo run -p tollgate -- schema > policies/policy.schema.json`"
    );
}

fn shipped() -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<(String, serde_json::Value)> = ["retail", "dealer"]
        .iter()
        .map(|e| {
            let p = harness::workspace_root().join(format!("policies/{e}.yaml"));
            let text = std::fs::read_to_string(p).unwrap();
            (e.to_string(), serde_saphyr::from_str(&text).unwrap())
        })
        .collect();
    // And each edge's fleet policy: the same with the global limits of policies/global.yaml.
    let globals: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(harness::workspace_root().join("policies/global.yaml")).unwrap(),
    )
    .unwrap();
    for i in 0..out.len() {
        let (edge, mut doc) = out[i].clone();
        doc["rate_limits"]
            .as_array_mut()
            .unwrap()
            .extend(globals[&edge].as_array().unwrap().iter().cloned());
        out.push((format!("{edge} fleet"), doc));
    }
    out
}

#[test]
fn every_shipped_policy_fits_the_format_types() {
    for (edge, doc) in shipped() {
        let typed: tollgate_core::format::Policy =
            serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{edge}: {e}"));
        // And nothing is lost on the way through the types.
        assert_eq!(serde_json::to_value(&typed).unwrap(), doc, "{edge}");
    }
}

/// The object schemas a schema node can stand for (through `$ref`, `anyOf`, `oneOf`, `allOf`).
fn object_schemas<'a>(
    node: &'a serde_json::Value,
    defs: &'a serde_json::Value,
) -> Vec<&'a serde_json::Value> {
    let mut out = Vec::new();
    if let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
        out.extend(object_schemas(
            &defs[r.trim_start_matches("#/$defs/")],
            defs,
        ));
    }
    for k in ["anyOf", "oneOf", "allOf"] {
        for b in node.get(k).and_then(|v| v.as_array()).into_iter().flatten() {
            out.extend(object_schemas(b, defs));
        }
    }
    if node.get("properties").is_some() || node.get("items").is_some() {
        out.push(node);
    }
    out
}

/// Walks a policy and the schema together; at every object the schema describes, asks the
/// compiler which fields it accepts there (by adding an unknown one) and compares.
fn walk(
    doc: &serde_json::Value,
    node: &serde_json::Value,
    defs: &serde_json::Value,
    path: &str,
    pointer: &str,
    root: &serde_json::Value,
    checked: &mut usize,
) {
    use serde_json::Value;
    let candidates = object_schemas(node, defs);
    match doc {
        Value::Object(map) => {
            let Some(schema) = candidates.iter().find(|c| {
                c.get("properties")
                    .and_then(Value::as_object)
                    .is_some_and(|p| map.keys().all(|k| p.contains_key(k)))
            }) else {
                assert!(
                    candidates.iter().all(|c| c.get("properties").is_none()),
                    "{path}: the schema has no object with fields {:?}",
                    map.keys().collect::<Vec<_>>()
                );
                return; // free-form here (a body schema)
            };
            let props = schema["properties"].as_object().unwrap();
            let mut probe = root.clone();
            probe
                .pointer_mut(pointer)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert("zz_unknown".into(), Value::Bool(true));
            let errors = tollgate_core::Policy::from_json(&probe.to_string()).unwrap_err();
            let at = if path.is_empty() {
                "zz_unknown".to_string()
            } else {
                format!("{path}.zz_unknown")
            };
            let e = errors
                .iter()
                .find(|e| e.path == at)
                .unwrap_or_else(|| panic!("no error at {at}: {errors:?}"));
            let listed = e.message.split("expected one of: ").nth(1).unwrap();
            let mut compiler: Vec<&str> = listed.split(", ").collect();
            compiler.sort_unstable();
            let mut types: Vec<&str> = props.keys().map(String::as_str).collect();
            types.sort_unstable();
            assert_eq!(
                compiler,
                types,
                "fields at {}",
                if path.is_empty() { "(top)" } else { path }
            );
            *checked += 1;
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(
                    v,
                    &props[k],
                    defs,
                    &p,
                    &format!("{pointer}/{k}"),
                    root,
                    checked,
                );
            }
        }
        Value::Array(items) => {
            let Some(items_schema) = candidates.iter().find_map(|c| c.get("items")) else {
                return;
            };
            for (i, v) in items.iter().enumerate() {
                walk(
                    v,
                    items_schema,
                    defs,
                    &format!("{path}[{i}]"),
                    &format!("{pointer}/{i}"),
                    root,
                    checked,
                );
            }
        }
        _ => {}
    }
}

#[test]
fn the_schema_and_the_compiler_accept_the_same_fields_everywhere() {
    let schema: serde_json::Value =
        serde_json::from_str(&tollgate_core::format::schema_json()).unwrap();
    let defs = schema["$defs"].clone();
    for (edge, doc) in shipped() {
        let mut checked = 0;
        walk(&doc, &schema, &defs, "", "", &doc, &mut checked);
        assert!(checked > 50, "{edge}: only {checked} objects checked");
        println!("{edge}: {checked} objects agree");
    }
}
