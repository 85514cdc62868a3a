//! The policy engine as a WebAssembly component (`wit/tollgate.wit`), loaded by wasmtime
//! through `component::bindgen!`: `check` gives the core's errors, with lines, for the shipped
//! policies and broken ones; `decide` gives the filter's answer on every policy case.

use std::sync::OnceLock;
use std::time::Instant;

use host_tests::cases::{self, Target, WasmTarget};
use wasmtime::component::{Component, Linker, ResourceAny};
use wasmtime::{Engine, Store};

use crate::common::tollgate;

/// The world's bindings (its `Engine` is not wasmtime's).
mod wit {
    wasmtime::component::bindgen!({ path: "../wit", world: "engine" });
}

use wit::exports::tollgate::policy::api::{PolicyError, Request, Verdict};

struct Loaded {
    store: Store<()>,
    engine: wit::Engine,
}

/// The component, compiled once per test binary.
fn compiled() -> &'static (Engine, Component) {
    static COMPILED: OnceLock<(Engine, Component)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let path = harness::wasm::ensure_component().unwrap();
        let engine = Engine::default();
        let started = Instant::now();
        let component = Component::from_file(&engine, &path).unwrap();
        eprintln!(
            "component: {} bytes, compiled in {:.1} s",
            std::fs::metadata(&path).unwrap().len(),
            started.elapsed().as_secs_f64()
        );
        (engine, component)
    })
}

fn load_component() -> Loaded {
    let (engine, component) = compiled();
    let linker = Linker::new(engine);
    let mut store = Store::new(engine, ());
    let world = wit::Engine::instantiate(&mut store, component, &linker)
        .expect("instantiating with no imports at all");
    Loaded {
        store,
        engine: world,
    }
}

impl Loaded {
    fn check(&mut self, document: &str) -> Result<(), Vec<PolicyError>> {
        self.engine
            .tollgate_policy_api()
            .call_check(&mut self.store, document)
            .unwrap()
    }

    fn load(&mut self, document: &str) -> ResourceAny {
        self.engine
            .tollgate_policy_api()
            .policy()
            .call_load(&mut self.store, document)
            .unwrap()
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn decide(&mut self, policy: ResourceAny, req: &Request) -> Verdict {
        self.engine
            .tollgate_policy_api()
            .policy()
            .call_decide(&mut self.store, policy, req)
            .unwrap()
    }

    fn version(&mut self, policy: ResourceAny) -> String {
        self.engine
            .tollgate_policy_api()
            .policy()
            .call_version(&mut self.store, policy)
            .unwrap()
    }
}

/// The core's own errors for a document, with the lines `tollgate check` prints.
fn core_errors(document: &str) -> Vec<(String, Option<u32>, String)> {
    let value: serde_json::Value = serde_saphyr::from_str(document).unwrap();
    let pos = tollgate_core::yamlpos::Positions::parse(document);
    match tollgate_core::Policy::from_json(&value.to_string()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| {
                let line = pos.as_ref().map(|p| p.line(&e.path) as u32);
                (e.path.clone(), line, e.message.clone())
            })
            .collect(),
    }
}

fn flat(errors: Vec<PolicyError>) -> Vec<(String, Option<u32>, String)> {
    errors
        .into_iter()
        .map(|e| (e.path, e.line, e.message))
        .collect()
}

const BROKEN: &[&str] = &[
    "version: v1\nedge: retail\nroutes:\n  - name: orders\n    path: /v1/orders\n    methods:\n      - GET\n      - GETT\nip_lists:\n  - name: x\n    action: maybe\n    cidrs: [10.0.0.0/33]\n",
    r#"{"version":"v","edge":"t","routes":[{"name":"a","path":"nope","methods":["GET"]}],
        "rate_limits":[{"name":"l","key":["client_ip"],"rate":"0/s","burst":0,"routes":["b"]}]}"#,
    "version: v\nedge: t\nroutes: {}\n",
];

#[test]
fn check_gives_the_cores_errors_with_their_lines() {
    let mut c = load_component();
    // The shipped policies, with the machine's Core Rule Set imported (the component reads no
    // files: a host resolves `{"import": DIR}` first, as the policies' build did).
    for (name, json) in [
        ("retail", tollgate_policies::RETAIL),
        ("dealer", tollgate_policies::DEALER),
    ] {
        let started = Instant::now();
        assert_eq!(c.check(json).map_err(flat), Ok(()), "{name}");
        let through = started.elapsed();
        // The same policy without its Core Rule Set (whose hundreds of patterns dominate).
        let mut own: serde_json::Value = serde_json::from_str(json).unwrap();
        own["detection"]
            .as_object_mut()
            .map(|d| d.remove("crs"))
            .unwrap();
        let own = own.to_string();
        let started = Instant::now();
        assert_eq!(c.check(&own).map_err(flat), Ok(()), "{name} without CRS");
        let without = started.elapsed();
        let started = Instant::now();
        tollgate_core::Policy::from_json(json).unwrap();
        let native = started.elapsed();
        eprintln!(
            "check of the shipped {name} policy through wasmtime: {:.1} ms ({:.2} ms without its Core Rule Set; natively in this test build {:.1} ms)",
            through.as_secs_f64() * 1e3,
            without.as_secs_f64() * 1e3,
            native.as_secs_f64() * 1e3
        );
    }
    for doc in BROKEN {
        let errors = flat(c.check(doc).expect_err("a broken policy"));
        assert_eq!(errors, core_errors(doc), "{doc}");
        assert!(!errors.is_empty());
    }
    // The YAML case names each error's line, as `tollgate check` does.
    let lines: Vec<Option<u32>> = flat(c.check(BROKEN[0]).unwrap_err())
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(lines, [Some(8), Some(11), Some(12)]);
    // Not YAML at all: one error, no line.
    let errors = flat(c.check("{ nope").unwrap_err());
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].2.starts_with("not valid YAML or JSON"),
        "{errors:?}"
    );
    // An unresolved Core Rule Set import is named, not read.
    let unresolved = r#"{"version":"v","edge":"t","routes":[],"detection":{"crs":{"ruleset":{"import":"/usr/share/modsecurity-crs"}}}}"#;
    let errors = flat(c.check(unresolved).unwrap_err());
    assert_eq!(errors, core_errors(unresolved));
    assert!(errors[0].2.contains("was not imported"), "{errors:?}");
}

/// The problem body without its request id (the filter's carries Envoy's; the component's
/// none, since the case requests have no `x-request-id`).
fn without_id(text: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(text).unwrap();
    if let Some(m) = v.as_object_mut() {
        m.remove("request_id");
    }
    v
}

#[test]
fn decide_answers_as_the_filter_does_on_every_policy_case() {
    let mut c = load_component();
    let dir = harness::workspace_root().join("policies/cases");
    let mut compared = 0;
    for file in cases::files_in(&dir).unwrap() {
        let cases = cases::load(&file).unwrap();
        let json = match cases.edge.as_str() {
            "retail" => tollgate_policies::RETAIL,
            _ => tollgate_policies::DEALER,
        };
        let policy = c.load(json);
        let expected: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(c.version(policy), expected["version"].as_str().unwrap());
        let mut filter = WasmTarget::start(&tollgate(), &cases.edge).unwrap();
        for case in &cases.cases {
            let r = &case.request;
            let body = r.body.clone().map(String::into_bytes);
            let mut headers: Vec<(String, Vec<u8>)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes()))
                .collect();
            if let Some(b) = body.as_ref().filter(|b| !b.is_empty()) {
                headers.push(("content-length".into(), b.len().to_string().into_bytes()));
            }
            let req = Request {
                method: r.method.clone(),
                authority: "edge.test".into(),
                path: r.path.clone(),
                headers,
                source: Some("127.0.0.1:40000".into()),
                body,
            };
            for _ in 0..r.repeat.unwrap_or(1).max(1) {
                let seen = filter.send(r).unwrap();
                let v = c.decide(policy, &req);
                let what = format!("{}: {}", cases.edge, case.name);
                compared += 1;
                if seen.status == u32::from(v.status) {
                    assert_eq!(v.allowed, seen.status < 400, "{what}: {v:?}");
                    if let Some(problem) = &v.problem {
                        assert_eq!(
                            without_id(problem.as_bytes()),
                            without_id(&seen.body),
                            "{what}"
                        );
                        assert_eq!(
                            v.rule.as_deref(),
                            without_id(&seen.body)["rule"].as_str(),
                            "{what}"
                        );
                    }
                    continue;
                }
                // Otherwise only state tells them apart: the filter refused for a limit, ban
                // or enumeration rule that the component names as stateful.
                let rule = without_id(&seen.body)["rule"].as_str().map(str::to_owned);
                assert!(
                    v.allowed
                        && rule
                            .as_ref()
                            .is_some_and(|r| v.shadowed.contains(&format!("state:{r}"))),
                    "{what}: the filter answered {} ({rule:?}), the component {v:?}",
                    seen.status
                );
            }
        }
    }
    assert!(compared > 60, "only {compared} requests compared");
}

/// A few requests to the retail policy: allowed, unknown route, wrong method, an attack, a body.
fn sample_requests() -> Vec<Request> {
    let browser = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0";
    let req = |method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>| {
        let mut h: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect();
        if let Some(b) = body {
            h.push(("content-length".into(), b.len().to_string().into_bytes()));
        }
        Request {
            method: method.into(),
            authority: "edge.test".into(),
            path: path.into(),
            headers: h,
            source: Some("127.0.0.1:40000".into()),
            body: body.map(|b| b.as_bytes().to_vec()),
        }
    };
    let xff = ("x-forwarded-for", "192.0.2.10");
    vec![
        req(
            "GET",
            "/v1/configurator/models?market=de",
            &[xff, ("user-agent", browser)],
            None,
        ),
        req("GET", "/v1/nowhere", &[xff, ("x-request-id", "py-1")], None),
        req(
            "DELETE",
            "/v1/configurator/models",
            &[xff, ("user-agent", browser)],
            None,
        ),
        req(
            "GET",
            "/v1/configurator/models?market=de%27%20OR%201%3D1--",
            &[xff, ("user-agent", browser)],
            None,
        ),
        req(
            "POST",
            "/v1/test-drives",
            &[
                xff,
                ("user-agent", browser),
                ("authorization", "Bearer t"),
                ("content-type", "application/json"),
            ],
            Some(
                r#"{"dealer_id":"D-1001","model":"e-sport","slot":"2026-12-03T09:30:00+01:00","name":"Ann Example","comment":"<script>alert(1)</script>"}"#,
            ),
        ),
    ]
}

fn verdict_json(v: &Verdict) -> serde_json::Value {
    serde_json::json!({
        "allowed": v.allowed, "status": v.status, "route": v.route, "rule": v.rule,
        "problem": v.problem, "shadowed": v.shadowed,
    })
}

#[test]
fn the_python_wasmtime_package_gets_the_same_answers() {
    let component = harness::wasm::ensure_component().unwrap();
    let mut c = load_component();
    let unresolved = r#"{"version":"v","edge":"t","routes":[],"detection":{"crs":{"ruleset":{"import":"/usr/share/modsecurity-crs"}}}}"#;
    let checks = [
        tollgate_policies::RETAIL,
        tollgate_policies::DEALER,
        BROKEN[0],
        unresolved,
    ];
    let requests = sample_requests();
    let input = serde_json::json!({
        "check": checks,
        "load": tollgate_policies::RETAIL,
        "requests": requests.iter().map(|r| serde_json::json!({
            "method": r.method, "authority": r.authority, "path": r.path,
            "headers": r.headers.iter()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect::<Vec<_>>(),
            "source": r.source,
            "body": r.body.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
        })).collect::<Vec<_>>(),
    });
    let dir = harness::workspace_root().join("target/component");
    let (in_path, out_path) = (dir.join("python-in.json"), dir.join("python-out.json"));
    std::fs::write(&in_path, input.to_string()).unwrap();
    let _ = std::fs::remove_file(&out_path);
    let python = harness::workspace_root().join(".venv/bin/python");
    let script = harness::workspace_root().join("host-tests/python/component.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&component)
        .arg(&in_path)
        .arg(&out_path)
        .output()
        .expect("running the Python host (cargo xtask setup installs wasmtime in .venv)");
    assert!(
        out.status.success(),
        "the Python host failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    eprintln!(
        "load of the retail policy from Python: {:.1} ms",
        seen["load_ms"]
    );

    // Checks: the same errors, in the same order, from both hosts.
    for (i, doc) in checks.iter().enumerate() {
        let ours = match c.check(doc) {
            Ok(()) => serde_json::Value::Null,
            Err(errors) => flat(errors)
                .into_iter()
                .map(|(p, l, m)| serde_json::json!([p, l, m]))
                .collect(),
        };
        assert_eq!(seen["check"][i], ours, "check {i}");
    }
    assert!(seen["check"][0].is_null() && seen["check"][1].is_null());
    assert_eq!(seen["check"][2].as_array().map(Vec::len), Some(3));

    // Decisions: the same verdicts, problem bodies included.
    let policy = c.load(tollgate_policies::RETAIL);
    assert_eq!(seen["version"], c.version(policy));
    let ours: Vec<serde_json::Value> = requests
        .iter()
        .map(|r| verdict_json(&c.decide(policy, r)))
        .collect();
    assert_eq!(seen["verdicts"], serde_json::Value::from(ours.clone()));
    // And they are the verdicts they should be.
    let statuses: Vec<u64> = ours.iter().map(|v| v["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 404, 405, 400, 403], "{ours:#?}");
    assert_eq!(ours[1]["rule"], "routing");
    // The query's market fails its pattern before detection; the comment is an attack.
    assert_eq!(ours[3]["rule"], "route.configurator-models.validation");
    assert!(
        ours[4]["rule"].as_str().unwrap().starts_with("detection."),
        "{ours:#?}"
    );
    let problem: serde_json::Value =
        serde_json::from_str(ours[1]["problem"].as_str().unwrap()).unwrap();
    assert_eq!(problem["request_id"], "py-1");
    assert_eq!(ours[0]["route"], "configurator-models");
}
