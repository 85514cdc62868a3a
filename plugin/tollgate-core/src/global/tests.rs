use super::*;
use crate::wire::{Field, Wire};
use crate::Policy;

fn policy(limit: &str) -> Result<Policy, Vec<crate::PolicyError>> {
    Policy::from_json(&format!(
        r#"{{"version": "t", "edge": "e",
            "client_ip": {{"trusted_hops": 1}},
            "routes": [{{"name": "login", "path": "/login", "methods": ["POST"]}},
                       {{"name": "other", "path": "/other", "methods": ["GET"]}}],
            "rate_limits": [{limit}]}}"#
    ))
}

fn errors(limit: &str) -> Vec<String> {
    match policy(limit) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
    }
}

const GOOD: &str = r#"{"name": "fleet", "scope": "global", "key": ["client_ip", {"header": "x-api-key"}],
    "rate": "100/min", "routes": [{"route": "login", "cost": 3}],
    "service": {"cluster": "ratelimit", "domain": "tollgate", "timeout": "50ms"},
    "on_failure": "closed", "mode": "shadow"}"#;

#[test]
fn a_global_limit_compiles_apart_from_the_local_ones() {
    let p = policy(GOOD).unwrap();
    assert!(p.rate_limits().is_empty());
    assert!(p.tables().is_empty(), "a global limit has no table here");
    let g = &p.global_limits()[0];
    assert_eq!(g.name, "fleet");
    assert_eq!(
        (g.cluster.as_str(), g.domain.as_str(), g.timeout_ms),
        ("ratelimit", "tollgate", 50)
    );
    assert_eq!(g.rate, Some((100, Unit::Minute)));
    assert_eq!(g.on_failure, FailureMode::Closed);
    assert_eq!(g.mode, Mode::Shadow);
    assert_eq!(g.cost_on(Some(0)), Some(3));
    assert_eq!(g.cost_on(Some(1)), None);
    assert_eq!(p.rule_name(g.rule), "rate_limit.fleet");
    // Keyed on the client address: the filter must determine it.
    assert!(!p.needs_source_address() || p.global_limits().len() == 1);
}

#[test]
fn defaults_are_local_scope_a_20ms_timeout_and_failing_open() {
    let p = policy(
        r#"{"name": "g", "scope": "global", "key": ["client_ip"],
            "service": {"cluster": "rls", "domain": "d"}}"#,
    )
    .unwrap();
    let g = &p.global_limits()[0];
    assert_eq!(g.timeout_ms, DEFAULT_TIMEOUT_MS);
    assert_eq!(g.on_failure, FailureMode::Open);
    assert_eq!(g.rate, None);
    let local =
        policy(r#"{"name": "l", "key": ["client_ip"], "rate": "5/s", "burst": 5}"#).unwrap();
    assert_eq!(local.rate_limits().len(), 1);
    assert!(local.global_limits().is_empty());
    let explicit = policy(
        r#"{"name": "l", "scope": "local", "key": ["client_ip"], "rate": "5/s", "burst": 5}"#,
    )
    .unwrap();
    assert_eq!(explicit.rate_limits().len(), 1);
}

#[test]
fn every_error_of_a_global_limit_is_reported_with_its_path() {
    let e = errors(
        r#"{"name": "Bad Name", "scope": "global", "key": [], "rate": "5/30s", "burst": 3,
            "max_keys": 100, "cost": 0, "routes": ["nowhere"],
            "service": {"cluster": "has space", "domain": "", "timeout": "9s", "extra": 1},
            "on_failure": "maybe"}"#,
    );
    for want in [
        "rate_limits[0].name:",
        "rate_limits[0].key:",
        "rate_limits[0].rate:",
        "rate_limits[0].burst: a global limit has no burst",
        "rate_limits[0].max_keys: a global limit has no max_keys",
        "rate_limits[0].cost:",
        "rate_limits[0].routes[0]: no route named",
        "rate_limits[0].service.cluster:",
        "rate_limits[0].service.domain:",
        "rate_limits[0].service.timeout:",
        "rate_limits[0].service.extra:",
        "rate_limits[0].on_failure:",
    ] {
        assert!(
            e.iter().any(|x| x.starts_with(want)),
            "missing {want:?} in {e:#?}"
        );
    }
    assert!(
        errors(r#"{"name": "g", "scope": "global", "key": ["client_ip"]}"#)
            .iter()
            .any(|x| x.starts_with("rate_limits[0].service: required"))
    );
    // Istio's cluster names pass; spaces do not.
    assert!(errors(
        r#"{"name": "g", "scope": "global", "key": ["client_ip"],
            "service": {"cluster": "outbound|8081||rls.tollgate-system.svc.cluster.local", "domain": "d"}}"#
    )
    .is_empty());
    assert!(errors(
        r#"{"name": "g", "scope": "fleet", "key": ["client_ip"], "rate": "1/s", "burst": 1}"#
    )
    .iter()
    .any(|x| x.starts_with("rate_limits[0].scope: unknown scope")));
    // A local and a global limit share one namespace of names.
    let dup = format!(
        "{GOOD}, {}",
        r#"{"name": "fleet", "key": ["client_ip"], "rate": "1/s", "burst": 1}"#
    );
    assert!(errors(&dup)
        .iter()
        .any(|x| x.starts_with("rate_limits[1].name: rate limit name \"fleet\" is used twice")));
}

#[test]
fn the_descriptor_names_the_limit_then_each_key_part_in_order() {
    let p = policy(GOOD).unwrap();
    let g = &p.global_limits()[0];
    let headers = vec![
        ("x-forwarded-for".to_owned(), b"192.0.2.7".to_vec()),
        ("x-api-key".to_owned(), b"k-1".to_vec()),
    ];
    let req = Request::from_headers(&headers, None);
    let cx = KeyContext {
        client: p.client_of(&req),
        ..KeyContext::default()
    };
    let d = g.descriptor(&req, &cx).unwrap();
    let pairs: Vec<(&str, &str)> = d
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("tollgate_limit", "fleet"),
            ("client_ip", "192.0.2.7"),
            ("header:x-api-key", "k-1")
        ]
    );
    // Without the header, the limit does not apply (as a local limit's key).
    let headers = vec![("x-forwarded-for".to_owned(), b"192.0.2.7".to_vec())];
    let req = Request::from_headers(&headers, None);
    assert!(g.descriptor(&req, &cx).is_none());
}

/// A reader of the request as the service sees it, written apart from the encoder: the fields
/// of a `RateLimitRequest`, flattened.
/// A request as read: domain, entries, the override (requests, unit) and hits.
type Read = (String, Vec<(String, String)>, Option<(u64, u64)>, u64);

fn read_request(bytes: &[u8]) -> Read {
    let mut r = Wire::new(bytes);
    let (mut domain, mut entries, mut limit, mut hits) = (String::new(), Vec::new(), None, 0);
    while let Some((f, v)) = r.next().unwrap() {
        match (f, v) {
            (1, Field::Bytes(b)) => domain = String::from_utf8(b.to_vec()).unwrap(),
            (2, Field::Bytes(b)) => {
                let mut d = Wire::new(b);
                while let Some((f, v)) = d.next().unwrap() {
                    match (f, v) {
                        (1, Field::Bytes(e)) => {
                            let mut er = Wire::new(e);
                            let (mut k, mut val) = (String::new(), String::new());
                            while let Some((f, v)) = er.next().unwrap() {
                                if let Field::Bytes(x) = v {
                                    let s = String::from_utf8(x.to_vec()).unwrap();
                                    if f == 1 {
                                        k = s
                                    } else {
                                        val = s
                                    }
                                }
                            }
                            entries.push((k, val));
                        }
                        (2, Field::Bytes(l)) => {
                            let mut lr = Wire::new(l);
                            let (mut n, mut u) = (0, 0);
                            while let Some((f, v)) = lr.next().unwrap() {
                                if let Field::Varint(x) = v {
                                    if f == 1 {
                                        n = x
                                    } else {
                                        u = x
                                    }
                                }
                            }
                            limit = Some((n, u));
                        }
                        _ => panic!("unexpected descriptor field {f}"),
                    }
                }
            }
            (3, Field::Varint(h)) => hits = h,
            _ => panic!("unexpected request field {f}"),
        }
    }
    (domain, entries, limit, hits)
}

#[test]
fn the_request_carries_domain_descriptor_override_and_hits() {
    let entries = vec![
        Entry {
            key: "tollgate_limit".into(),
            value: "fleet".into(),
        },
        Entry {
            key: "client_ip".into(),
            value: "2001:db8::1".into(),
        },
    ];
    let bytes = encode_request("tollgate", &entries, Some((300, Unit::Hour)), 3);
    let (domain, got, limit, hits) = read_request(&bytes);
    assert_eq!(domain, "tollgate");
    assert_eq!(
        got,
        vec![
            ("tollgate_limit".into(), "fleet".into()),
            ("client_ip".into(), "2001:db8::1".into())
        ]
    );
    assert_eq!(limit, Some((300, 3)));
    assert_eq!(hits, 3);
    // Cost 1 and no override: neither field is written (hits_addend 0 means 1).
    let (_, _, limit, hits) = read_request(&encode_request("d", &entries, None, 1));
    assert_eq!((limit, hits), (None, 1));
}

#[test]
fn the_grpc_service_names_the_cluster_as_envoy_grpc() {
    let b = grpc_service("ratelimit");
    // GrpcService { envoy_grpc (1) { cluster_name (1): "ratelimit" } }
    let mut want = vec![0x0a, 11, 0x0a, 9];
    want.extend_from_slice(b"ratelimit");
    assert_eq!(b, want);
}

/// An answer as a service writes it, built field by field.
fn answer(overall: u64, status: Option<(u64, u64, u64, u64, u64)>) -> Vec<u8> {
    let mut out = Vec::new();
    put_uint(&mut out, 1, overall);
    if let Some((code, rpu, unit, remaining, secs)) = status {
        let mut s = Vec::new();
        put_uint(&mut s, 1, code);
        let mut limit = Vec::new();
        put_bytes(&mut limit, 3, b"fleet");
        put_uint(&mut limit, 1, rpu);
        put_uint(&mut limit, 2, unit);
        put_bytes(&mut s, 2, &limit);
        put_uint(&mut s, 3, remaining);
        let mut d = Vec::new();
        put_uint(&mut d, 1, secs);
        put_uint(&mut d, 2, 250_000_000);
        put_bytes(&mut s, 4, &d);
        put_bytes(&mut out, 2, &s);
    }
    // A field this reader does not know (raw_body), skipped.
    put_bytes(&mut out, 5, b"ignored");
    out
}

#[test]
fn answers_decode_to_codes_limits_and_headers() {
    let p = policy(GOOD).unwrap();
    let g = &p.global_limits()[0];
    let over = decode_response(&answer(2, Some((2, 100, 2, 0, 41)))).unwrap();
    assert!(over.over_limit());
    let s = over.status();
    assert_eq!(s.code, Code::OverLimit);
    assert_eq!(s.limit, Some((100, Unit::Minute)));
    assert_eq!(s.reset_secs, Some(42), "41.25 s rounds up");
    assert_eq!(g.policy_header(&s).unwrap(), "\"fleet\";q=100;w=60");
    assert_eq!(g.state_header(&s), "\"fleet\";r=0;t=42");

    let ok = decode_response(&answer(1, Some((1, 100, 2, 57, 3)))).unwrap();
    assert!(!ok.over_limit());
    assert_eq!(g.state_header(&ok.status()), "\"fleet\";r=57;t=4");
    // No statuses: the override names the policy, and UNKNOWN admits (as Envoy reads it).
    let bare = decode_response(&answer(0, None)).unwrap();
    assert!(!bare.over_limit());
    assert_eq!(
        g.policy_header(&bare.status()).unwrap(),
        "\"fleet\";q=100;w=60"
    );
    assert_eq!(decode_response(&[]).unwrap().overall, Code::Unknown);
}

#[test]
fn malformed_answers_are_errors_never_panics() {
    for bad in [
        &[0x08][..],             // truncated varint
        &[0x12, 0x05, 0x08][..], // length past the end
        &[0x0a, 0x01, 0x00][..], // overall_code as bytes
        &[0x00, 0x01][..],       // field 0
        &[0x0b][..],             // wire type 3 (groups)
        &[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ][..],
    ] {
        assert!(decode_response(bad).is_err(), "{bad:?}");
    }
    // Every prefix and every one-byte change of a real answer: an answer or an error.
    let good = answer(2, Some((2, 100, 2, 0, 41)));
    for n in 0..good.len() {
        let _ = decode_response(&good[..n]);
        for x in [0x00u8, 0x7f, 0x80, 0xff] {
            let mut m = good.clone();
            m[n] = x;
            let _ = decode_response(&m);
        }
    }
    // A pseudo-random stream of bytes, seeded.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2_000 {
        let mut b = Vec::new();
        for _ in 0..(seed % 64) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b.push(seed as u8);
        }
        let _ = decode_response(&b);
    }
}
