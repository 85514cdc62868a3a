//! Policy case files (`policies/cases/*.yaml`): requests, and what the client must see. The
//! same cases run in the wasmtime host (`tollgate test`) and, in the conformance test, against
//! real Envoy; a [`Target`] is either.
//!
//! ```yaml
//! edge: retail                      # the policy under test: {"embedded": "<edge>"}
//! cases:
//!   - name: unknown routes are refused
//!     request:
//!       method: GET                 # default GET
//!       path: /internal/admin
//!       headers: {x-forwarded-for: 192.0.2.10}
//!       body: '{"a": 1}'            # optional, sent as is
//!       repeat: 6                   # optional: send it 6 times, check the last answer
//!     expect:
//!       status: 404
//!       upstream: false             # whether the backend saw the request
//!       headers: {content-type: application/problem+json, allow: null}   # null: absent
//!       body: {rule: routing}       # top-level fields of a JSON body
//!       metrics: {requests.blocked: 1, rule.routing.blocked: 1}          # increments
//!       not_forwarded: [x-tollgate-refused]   # request headers the backend must not receive
//! ```
//!
//! `not_forwarded` reads the backend's answer: both backends (the host's and the demo backend
//! in Envoy) list the names of the request headers they received in `header_names`.
//!
//! Metric names are relative to `tollgate.<edge>.`; each is compared as the change over the
//! case, so cases need not run alone.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::http::{echo_upstream, Forwarded, Request};
use crate::plugin::{Plugin, PluginOptions};
use crate::state::PluginSpec;
use crate::Host;

/// A case file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The edge whose embedded policy the cases test.
    pub edge: String,
    /// The cases, run in order.
    pub cases: Vec<Case>,
}

/// One request and its expected outcome.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows, in words.
    pub name: String,
    /// The request.
    pub request: CaseRequest,
    /// The outcome.
    pub expect: Expect,
}

/// A request in a case file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRequest {
    /// Method (default GET).
    #[serde(default = "get")]
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, in order.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body, sent as is.
    #[serde(default)]
    pub body: Option<String>,
    /// Send it this many times in a row (default 1); the expectations apply to the last answer,
    /// and metric increments to all of them.
    #[serde(default)]
    pub repeat: Option<u32>,
}

fn get() -> String {
    "GET".into()
}

/// What the client must see.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Status code.
    pub status: u32,
    /// Whether the request reached the backend.
    #[serde(default)]
    pub upstream: Option<bool>,
    /// Response headers: a value to match exactly, or null for "absent".
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    /// Top-level fields of the JSON body.
    #[serde(default)]
    pub body: BTreeMap<String, Value>,
    /// Metric increments over the case, names relative to `tollgate.<edge>.`.
    #[serde(default)]
    pub metrics: BTreeMap<String, i64>,
    /// Request headers the backend must not have received (from its `header_names`).
    #[serde(default)]
    pub not_forwarded: Vec<String>,
}

/// What a target observed for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// Status code.
    pub status: u32,
    /// Response headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
    /// Whether the backend saw the request.
    pub upstream: bool,
    /// Metric increments over the request, names relative to `tollgate.<edge>.`.
    pub metrics: BTreeMap<String, i64>,
}

impl Observed {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Somewhere to send case requests: the wasmtime host or a real Envoy.
pub trait Target {
    /// Sends one request and reports what the client saw and what the counters did.
    fn send(&mut self, req: &CaseRequest) -> Result<Observed>;
}

/// Reads a case file.
pub fn load(path: &Path) -> Result<CaseFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_saphyr::from_str(&text)
        .with_context(|| format!("{} is not a valid case file", path.display()))
}

/// The case files in a directory, sorted.
pub fn files_in(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    out.sort();
    if out.is_empty() {
        bail!("no case files in {}", dir.display());
    }
    Ok(out)
}

/// Every way `seen` differs from `expect`, one line each.
pub fn differences(expect: &Expect, seen: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    if seen.status != expect.status {
        out.push(format!(
            "status: expected {}, got {}",
            expect.status, seen.status
        ));
    }
    if let Some(up) = expect.upstream {
        if up != seen.upstream {
            out.push(format!(
                "upstream: expected the backend {} the request, but it {}",
                if up { "to see" } else { "not to see" },
                if seen.upstream { "did" } else { "did not" }
            ));
        }
    }
    for (name, want) in &expect.headers {
        let got = seen.header(name);
        if got != want.as_deref() {
            out.push(format!(
                "header {name}: expected {}, got {}",
                show(want.as_deref()),
                show(got)
            ));
        }
    }
    if !expect.body.is_empty() {
        match seen.json() {
            Some(Value::Object(body)) => {
                for (k, want) in &expect.body {
                    let got = body.get(k);
                    if got != Some(want) {
                        out.push(format!(
                            "body.{k}: expected {want}, got {}",
                            got.map_or("(absent)".into(), Value::to_string)
                        ));
                    }
                }
            }
            _ => out.push(format!(
                "body: expected a JSON object, got {:?}",
                String::from_utf8_lossy(&seen.body)
            )),
        }
    }
    if !expect.not_forwarded.is_empty() {
        let names = seen.json().and_then(|b| b.get("header_names").cloned());
        match names.as_ref().and_then(Value::as_array) {
            Some(list) => {
                for h in &expect.not_forwarded {
                    if list
                        .iter()
                        .any(|n| n.as_str().is_some_and(|n| n.eq_ignore_ascii_case(h)))
                    {
                        out.push(format!("not_forwarded: the backend received {h}"));
                    }
                }
            }
            None => {
                out.push("not_forwarded: the answer is not the backend's (no header_names)".into())
            }
        }
    }
    for (name, want) in &expect.metrics {
        let got = seen.metrics.get(name).copied().unwrap_or(0);
        if got != *want {
            out.push(format!("metric {name}: expected +{want}, got +{got}"));
        }
    }
    out
}

fn show(v: Option<&str>) -> String {
    v.map_or("(absent)".into(), |v| format!("{v:?}"))
}

/// One case's result.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// What was seen.
    pub observed: Option<Observed>,
    /// The differences from what was expected (empty: passed), or why it could not run.
    pub problems: Vec<String>,
}

/// Runs every case of a file against a target, in order.
pub fn run(file: &CaseFile, target: &mut dyn Target) -> Vec<CaseResult> {
    file.cases
        .iter()
        .map(|case| match send_repeated(target, &case.request) {
            Ok(seen) => CaseResult {
                name: case.name.clone(),
                problems: differences(&case.expect, &seen),
                observed: Some(seen),
            },
            Err(e) => CaseResult {
                name: case.name.clone(),
                observed: None,
                problems: vec![format!("could not send the request: {e:#}")],
            },
        })
        .collect()
}

/// Sends a case's request `repeat` times: the last answer, with the metric increments of all.
fn send_repeated(target: &mut dyn Target, req: &CaseRequest) -> Result<Observed> {
    let mut last = target.send(req)?;
    for _ in 1..req.repeat.unwrap_or(1).max(1) {
        let next = target.send(req)?;
        let mut metrics = last.metrics;
        for (k, v) in &next.metrics {
            *metrics.entry(k.clone()).or_insert(0) += v;
        }
        last = Observed { metrics, ..next };
    }
    Ok(last)
}

/// The wasmtime host as a target: the edge's embedded policy, the echo upstream with the
/// route's `x-tollgate-edge` header added (as the edges' route configuration adds it).
pub struct WasmTarget {
    plugin: Plugin,
    edge: String,
}

impl std::fmt::Debug for WasmTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmTarget")
            .field("edge", &self.edge)
            .finish()
    }
}

impl WasmTarget {
    /// Starts the edge's policy in the host.
    pub fn start(host: &Host, edge: &str) -> Result<WasmTarget> {
        let spec = PluginSpec::new(format!(r#"{{"embedded": "{edge}"}}"#));
        let echo = echo_upstream();
        let tag = edge.to_owned();
        let upstream = std::sync::Arc::new(move |f: &Forwarded| {
            let mut f = f.clone();
            f.headers
                .push((b"x-tollgate-edge".to_vec(), tag.as_bytes().to_vec()));
            echo(&f)
        });
        let plugin = Plugin::start(host, PluginOptions::new(spec).upstream(upstream).edge())
            .map_err(|r| anyhow::anyhow!("{r}"))?;
        Ok(WasmTarget {
            plugin,
            edge: edge.to_owned(),
        })
    }

    /// The plugin, for metrics and logs.
    pub fn plugin(&mut self) -> &mut Plugin {
        &mut self.plugin
    }
}

/// The counters of `edge`, names relative to `tollgate.<edge>.`.
pub fn edge_metrics(all: &BTreeMap<String, i64>, edge: &str) -> BTreeMap<String, i64> {
    let prefix = format!("tollgate.{edge}.");
    all.iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_owned(), *v)))
        .collect()
}

/// `after - before`, keeping only what changed.
pub fn metric_delta(
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d != 0).then(|| (k.clone(), d))
        })
        .collect()
}

impl Target for WasmTarget {
    fn send(&mut self, req: &CaseRequest) -> Result<Observed> {
        let before = edge_metrics(&self.plugin.process().metrics(), &self.edge);
        let mut r = Request::new(&req.method, &req.path);
        for (k, v) in &req.headers {
            r = r.header(k, v);
        }
        if let Some(b) = &req.body {
            r = r.body(b.as_bytes());
        }
        let ex = self.plugin.send(r);
        let Some(resp) = ex.response else {
            bail!("the stream did not finish (details {:?})", ex.details);
        };
        let after = edge_metrics(&self.plugin.process().metrics(), &self.edge);
        Ok(Observed {
            status: resp.status,
            headers: resp
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            body: resp.body,
            upstream: ex.forwarded.is_some(),
            metrics: metric_delta(&before, &after),
        })
    }
}

/// A readable report of one file's results: a line per case, the differences under each
/// failure. Returns the text and the number of failures.
pub fn report(path: &str, results: &[CaseResult]) -> (String, usize) {
    let mut out = format!("{path}\n");
    let mut failed = 0;
    for r in results {
        if r.problems.is_empty() {
            out.push_str(&format!("  ok    {}\n", r.name));
        } else {
            failed += 1;
            out.push_str(&format!("  FAIL  {}\n", r.name));
            for p in &r.problems {
                out.push_str(&format!("          {p}\n"));
            }
            if let Some(o) = &r.observed {
                let body = String::from_utf8_lossy(&o.body);
                let body: String = body.chars().take(300).collect();
                out.push_str(&format!("          (response body: {body})\n"));
            }
        }
    }
    (out, failed)
}
