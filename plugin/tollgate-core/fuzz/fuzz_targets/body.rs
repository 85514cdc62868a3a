//! Any request body against every route of the shipped policies that reads bodies: the JSON
//! structure scan fed in chunks the input chooses, then the full check (parse and schema).
//! Neither may panic; a scan that passes and a body that parses must agree with the limits
//! (a parsed body never nests deeper than the scan allowed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tollgate_core::validate::{JsonScan, RouteValidation};
use tollgate_core::Policy;

fn routes() -> &'static Vec<RouteValidation> {
    static R: OnceLock<Vec<RouteValidation>> = OnceLock::new();
    R.get_or_init(|| {
        let mut out = Vec::new();
        for json in [tollgate_policies::RETAIL, tollgate_policies::DEALER] {
            let p = Policy::from_json(json).unwrap();
            for i in 0..p.route_names().count() {
                if let Some(v) = p.validation(Some(i)).filter(|v| v.reads_body()) {
                    out.push(v.clone());
                }
            }
        }
        out
    })
}

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Some((&chunk, body)) = rest.split_first() else { return };
    let routes = routes();
    let rv = &routes[pick as usize % routes.len()];
    let mut scan = JsonScan::new(rv.json);
    let mut ok = true;
    for c in body.chunks(chunk as usize % 64 + 1) {
        if scan.feed(c).is_err() {
            ok = false;
            break;
        }
    }
    let checked = rv.check_body(body);
    if ok {
        if let Ok(Some(v)) = &checked {
            assert!(depth(v) <= rv.json.depth, "the scan let through a body deeper than its limit");
        }
    }
});
