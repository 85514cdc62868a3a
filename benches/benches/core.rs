//! The policy core, natively: deciding representative retail and dealer requests with and
//! without the validation their routes declare, and checking JSON bodies. Run with
//! `cargo bench -p tollgate-benches`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tollgate_core::{load_plugin_config, Policy, Request};

fn policy(name: &str) -> Policy {
    load_plugin_config(
        format!(r#"{{"embedded": "{name}"}}"#).as_bytes(),
        tollgate_policies::EMBEDDED,
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
}

/// The same policy with every route's `validate` block removed (the defaults' size caps stay).
fn without_validation(name: &str) -> Policy {
    let json = tollgate_policies::EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, j)| *j)
        .unwrap_or_default();
    let mut doc: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    if let Some(routes) = doc.get_mut("routes").and_then(|r| r.as_array_mut()) {
        for r in routes {
            if let Some(o) = r.as_object_mut() {
                o.remove("validate");
            }
        }
    }
    Policy::from_json(&doc.to_string()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn headers(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "retail",
            "configurator query",
            headers(&[
                (":method", "GET"),
                (":path", "/v1/configurator/models?market=de&page=2"),
                (":authority", "shop.example.com"),
                ("x-forwarded-for", "192.0.2.10"),
                ("user-agent", "Mozilla/5.0"),
                ("accept", "application/json"),
            ]),
        ),
        (
            "retail",
            "order (path id)",
            headers(&[
                (":method", "GET"),
                (":path", "/v1/orders/12345678"),
                (":authority", "shop.example.com"),
                ("x-forwarded-for", "192.0.2.10"),
                ("authorization", "Bearer t"),
            ]),
        ),
        (
            "dealer",
            "VIN look-up",
            headers(&[
                (":method", "GET"),
                (":path", "/v1/vehicles/WVWZZZ1JZXW000001"),
                (":authority", "dealers.example.com"),
                ("x-forwarded-for", "192.0.2.10"),
                ("x-dealer-id", "D-1001"),
                ("authorization", "Bearer t"),
            ]),
        ),
        (
            "dealer",
            "inventory query",
            headers(&[
                (":method", "GET"),
                (":path", "/v1/inventory?model=e-sport&year=2025&page=3"),
                (":authority", "dealers.example.com"),
                ("x-forwarded-for", "192.0.2.10"),
                ("x-dealer-id", "D-1001"),
                ("x-api-key", "k-123"),
            ]),
        ),
    ];
    let mut g = c.benchmark_group("decide");
    for (edge, name, h) in &cases {
        let with = policy(edge);
        let without = without_validation(edge);
        g.bench_function(format!("{edge} {name}: with validation"), |b| {
            b.iter(|| with.decide(black_box(&Request::from_headers(h, None))))
        });
        g.bench_function(format!("{edge} {name}: without validation"), |b| {
            b.iter(|| without.decide(black_box(&Request::from_headers(h, None))))
        });
    }
    g.finish();

    let retail = policy("retail");
    let dealer = policy("dealer");
    let order_route = retail.route_names().position(|n| n == "order-create");
    let claim_route = dealer.route_names().position(|n| n == "warranty-claims");
    let order = br#"{"model":"e-family","options":["PAINT-RED","TOWBAR"],"delivery":"2027-03-01","comment":"Leave it with the neighbour at No. 5 if we're out; ring twice.","billing":{"name":"Zoe Orsted","street":"Osterbrogade 12","city":"Copenhagen","postcode":"2100","country":"DK"}}"#;
    let claim = br#"{"vin":"WVWZZZ1JZXW000001","mileage_km":48210,"failure_code":"EL1042","repair_date":"2026-11-20","comment":"Rattle near the B-pillar","parts":[{"part_no":"5Q0-121-251","qty":1},{"part_no":"5Q0-121-252","qty":2}]}"#;
    let mut g = c.benchmark_group("body");
    for (name, rv, body) in [
        ("retail order", retail.validation(order_route), &order[..]),
        (
            "dealer warranty claim",
            dealer.validation(claim_route),
            &claim[..],
        ),
    ] {
        let Some(rv) = rv else { continue };
        g.bench_function(format!("{name}: structure scan + parse + schema"), |b| {
            b.iter(|| {
                let mut scan = tollgate_core::validate::JsonScan::new(rv.json);
                let _ = scan.feed(black_box(body));
                rv.check_body(black_box(body))
            })
        });
        g.bench_function(format!("{name}: parse only"), |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
