//! The Grafana dashboard (`envoy/grafana/tollgate.json`) against what Envoy exports: both edges
//! as shipped take traffic (allowed requests, refusals by routing, by detection and the Core
//! Rule Set, requests a rate limit counts), then every metric and label the dashboard queries
//! must be in admin `/stats/prometheus`, so the dashboard cannot drift from the counters.

use std::collections::{BTreeMap, BTreeSet};

use harness::envoy::PluginConfig;
use harness::http::Request;

use crate::common::stack;

/// One series: its labels and value.
type Series = (BTreeMap<String, String>, f64);

/// Metric name → its series, from Prometheus text.
fn series(text: &str) -> BTreeMap<String, Vec<Series>> {
    let mut out: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (head, value) = line.rsplit_once(' ').unwrap_or((line, ""));
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        let labels = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        out.entry(name.to_string())
            .or_default()
            .push((labels, value.parse().unwrap_or(0.0)));
    }
    out
}

/// Every query of the dashboard: panel targets and template variables.
fn queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        _ => walk(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(dashboard, &mut out);
    out
}

/// The identifiers of a query that start with `prefix`.
fn words<'a>(q: &'a str, prefix: &str) -> BTreeSet<&'a str> {
    q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with(prefix))
        .collect()
}

#[test]
fn every_metric_and_label_the_dashboard_queries_is_exported() {
    let path = format!("{}/../grafana/tollgate.json", env!("CARGO_MANIFEST_DIR"));
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let qs = queries(&dashboard);
    assert!(qs.len() >= 10, "{path}: {} queries", qs.len());

    let retail = stack("retail", PluginConfig::Shipped);
    let dealer = stack("dealer", PluginConfig::Shipped);
    for i in 0..5 {
        let ok = retail.send(
            Request::new("GET", "/v1/configurator/models?market=de")
                .header("x-forwarded-for", &format!("192.0.2.{}", 10 + i))
                .header(
                    "user-agent",
                    "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
                ),
        );
        assert_eq!(ok.status, 200, "{}", ok.text());
    }
    let refused =
        retail.send(Request::new("GET", "/internal/admin").header("x-forwarded-for", "192.0.2.20"));
    assert_eq!(refused.status, 404, "{}", refused.text());
    let attack = retail.send(
        Request::new("GET", "/v1/configurator/models?market=de")
            .header("x-forwarded-for", "192.0.2.21")
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
            )
            .header(
                "referer",
                "https://x.example/<script>alert(document.cookie)</script>",
            ),
    );
    assert_eq!(attack.status, 403, "{}", attack.text());
    let partner = dealer.send(
        Request::new("GET", "/v1/vehicles/WVWZZZ1JZXW000001")
            .header("x-forwarded-for", "192.0.2.30")
            .header("x-dealer-id", "D-1001")
            .header("authorization", "Bearer t"),
    );
    assert!(partner.status < 500, "{}", partner.text());

    let mut exported = BTreeMap::new();
    for s in [&retail, &dealer] {
        let text = harness::http::get(s.envoy.admin, "/stats/prometheus")
            .unwrap()
            .text();
        for (name, sets) in series(&text) {
            exported.entry(name).or_insert_with(Vec::new).extend(sets);
        }
    }
    // Envoy exports proxy-wasm metrics under their own name, without `envoy_`.
    let tollgate: Vec<&String> = exported
        .keys()
        .filter(|k| k.starts_with("tollgate_"))
        .collect();
    assert!(
        !exported
            .keys()
            .any(|k| k.starts_with("tollgate_retail_") || k.starts_with("tollgate_dealer_")),
        "the edge must be a label, not part of the name: {tollgate:?}"
    );
    // The labels are the bootstraps' stats tags (the same in both).
    let tags = |edge: &str| -> BTreeSet<String> {
        let path = format!("{}/../{edge}.yaml", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- tag_name: "))
            .map(str::to_string)
            .collect()
    };
    let labels_known = tags("retail");
    assert_eq!(labels_known, tags("dealer"));
    assert!(labels_known.contains("edge") && labels_known.contains("crs_rule"));

    let mut missing = Vec::new();
    for q in &qs {
        let metrics = words(q, "tollgate_");
        let labels: BTreeSet<&str> = words(q, "")
            .into_iter()
            .filter(|w| labels_known.contains(*w))
            .collect();
        assert!(
            labels.contains("edge"),
            "a query not split or filtered by edge: {q}"
        );
        assert!(
            !metrics.is_empty(),
            "a query that reads no Tollgate metric: {q}"
        );
        for m in &metrics {
            match exported.get(*m) {
                None => missing.push(format!("metric {m} (in {q})")),
                Some(sets) => {
                    for l in &labels {
                        if !sets.iter().any(|(s, _)| s.contains_key(*l)) {
                            missing.push(format!("label {l} on {m} (in {q})"));
                        }
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries what Envoy does not export:\n{}\nexported: {tollgate:#?}",
        missing.join("\n")
    );

    // The traffic shows where the dashboard looks for it.
    let sum = |name: &str, label: &str, v: Option<&str>| -> f64 {
        exported.get(name).map_or(0.0, |sets| {
            sets.iter()
                .filter(|(s, _)| match v {
                    Some(v) => s.get(label).map(String::as_str) == Some(v),
                    None => s.contains_key(label),
                })
                .map(|(_, x)| x)
                .sum()
        })
    };
    let allowed = "tollgate_requests_allowed";
    assert!(sum(allowed, "edge", Some("retail")) >= 5.0);
    assert!(
        sum(allowed, "edge", Some("dealer"))
            + sum("tollgate_requests_blocked", "edge", Some("dealer"))
            >= 1.0
    );
    let blocked_rules: Vec<(&String, f64)> = exported["tollgate_rule_blocked"]
        .iter()
        .filter(|(_, x)| *x > 0.0)
        .filter_map(|(l, x)| Some((l.get("rule")?, *x)))
        .collect();
    assert!(
        sum("tollgate_rule_blocked", "rule", Some("routing")) >= 1.0,
        "{blocked_rules:?}"
    );
    assert!(
        blocked_rules
            .iter()
            .any(|(r, _)| r.starts_with("detection.")),
        "{blocked_rules:?}"
    );
    assert!(sum("tollgate_crs_detected", "crs_rule", None) >= 1.0);
    assert!(sum("tollgate_policy_generation", "edge", Some("retail")) >= 1.0);
    assert_eq!(
        exported["tollgate_policy_version"]
            .iter()
            .filter(|(s, x)| s.get("edge").map(String::as_str) == Some("retail") && *x == 1.0)
            .filter_map(|(s, _)| s.get("policy_version"))
            .count(),
        1,
        "one version in force on the retail edge"
    );
}
