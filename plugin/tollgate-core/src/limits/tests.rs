use super::*;
use crate::Policy;

fn limit(requests: u64, period_secs: u64, burst: u64) -> RateLimit {
    RateLimit {
        name: "l".into(),
        rule: RuleId(0),
        mode: Mode::Enforce,
        key: vec![KeyPart::ClientIp],
        requests,
        period_secs,
        interval: period_secs * NANOS / requests,
        burst,
        routes: None,
        cost: 1,
        max_keys: 100,
        on_failure: FailureMode::Open,
    }
}

#[test]
fn gcra_admits_the_burst_then_the_rate() {
    let l = limit(10, 1, 5); // 10/s, burst 5: T = 100 ms
    let mut tat = 0;
    let t0 = 1_000 * NANOS;
    let mut admitted = 0;
    for _ in 0..20 {
        let a = l.admit(tat, t0, 1);
        if a.allowed {
            admitted += 1;
            tat = a.tat;
        }
    }
    assert_eq!(admitted, 5, "a burst of 5 at once");
    // Refused now: the next slot opens in 100 ms, so Retry-After rounds up to 1 s.
    let a = l.admit(tat, t0, 1);
    assert!(!a.allowed);
    assert_eq!(a.retry_after_secs, 1);
    assert_eq!(a.remaining, 0);
    // Over the next 10 s, requests every 10 ms: 100 more admitted (the rate), give or take one.
    let mut more = 0;
    for i in 1..=1000 {
        let a = l.admit(tat, t0 + i * 10_000_000, 1);
        if a.allowed {
            more += 1;
            tat = a.tat;
        }
    }
    assert_eq!(more, 100);
}

#[test]
fn costs_weigh_requests_and_headers_report_state() {
    let l = limit(60, 60, 10); // 1/s, burst 10
    let now = 50 * NANOS;
    let a = l.admit(0, now, 4);
    assert!(a.allowed);
    assert_eq!(a.remaining, 6);
    assert_eq!(a.reset_secs, 4);
    assert_eq!(l.policy_header(), "\"l\";q=10;w=10");
    assert_eq!(l.state_header(&a), "\"l\";r=6;t=4");
    let b = l.admit(a.tat, now, 7);
    assert!(!b.allowed, "7 more exceed the 6 left");
    assert_eq!(b.retry_after_secs, 1);
    assert_eq!(b.tat, a.tat, "a refusal consumes nothing");
}

#[test]
fn entries_round_trip_and_garbage_is_a_free_slot() {
    let e = LimitEntry {
        fingerprint: 7,
        tat: 99,
    };
    assert_eq!(LimitEntry::decode(&e.encode()), e);
    assert_eq!(LimitEntry::decode(b"short"), LimitEntry::default());
    let b = BanEntry {
        fingerprint: 3,
        window_start: 10,
        count: 4,
        banned_until: 20,
    };
    assert_eq!(BanEntry::decode(&b.encode()), b);
    assert_eq!(BanEntry::decode(&[1; 27]), BanEntry::default());
}

#[test]
fn slots_prefer_own_then_idle_then_evict_the_stalest() {
    // (slot, fingerprint, idle, age)
    let c = [(1, 5, false, 30), (2, 6, false, 10), (3, 7, false, 20)];
    assert_eq!(choose_slot(&c, 6), Some((2, false)));
    assert_eq!(choose_slot(&c, 9), Some((2, true)), "evict the stalest");
    let c = [(1, 5, false, 30), (2, 0, true, 0)];
    assert_eq!(choose_slot(&c, 9), Some((2, false)));
    // 100 slots: six blocks of 16 and one of 4.
    assert_eq!(blocks(100), 7);
    assert_eq!(block_len(6, 100), 4);
    assert_eq!(block_len(0, 100), 16);
    let (b, ways) = place(37, 100);
    assert_eq!(b, 2);
    assert_eq!(ways, vec![5, 6, 7, 8]);
    // The short block: the ways wrap within it.
    let (b, ways) = place(13, 100);
    assert_eq!(b, 6);
    assert_eq!(ways, vec![1, 2, 3, 0]);
    // Blocks round-trip, and a garbled one reads as free slots.
    let e = LimitEntry {
        fingerprint: 9,
        tat: 1,
    }
    .encode();
    let bytes = encode_block(&[e, LimitEntry::default().encode()]);
    let parts = split_block(&bytes, 16, 2);
    assert_eq!(LimitEntry::decode(parts[0]).fingerprint, 9);
    assert!(split_block(&bytes[1..], 16, 2).iter().all(|p| p.is_empty()));
}

#[test]
fn fingerprints_depend_on_the_seed_and_are_never_zero() {
    assert_ne!(fingerprint(1, b"192.0.2.1"), fingerprint(2, b"192.0.2.1"));
    assert_ne!(fingerprint(1, b"192.0.2.1"), fingerprint(1, b"192.0.2.2"));
    assert_ne!(fingerprint(0, b""), 0);
}

#[test]
fn bans_count_within_the_window_and_expire() {
    let b = Ban {
        name: "b".into(),
        rule: RuleId(0),
        mode: Mode::Enforce,
        key: vec![KeyPart::ClientIp],
        routes: None,
        statuses: vec![401],
        threshold: 3,
        window: 60 * NANOS,
        duration: 300 * NANOS,
        max_keys: 10,
        on_failure: FailureMode::Open,
    };
    let t = 1_000 * NANOS;
    let (e, s1) = b.record(&BanEntry::default(), 42, t);
    let (e, s2) = b.record(&e, 42, t + NANOS);
    assert!(!s1 && !s2);
    assert_eq!(b.banned(&e, t + NANOS), None);
    let (e, s3) = b.record(&e, 42, t + 2 * NANOS);
    assert!(s3, "the third failure bans");
    assert_eq!(b.banned(&e, t + 2 * NANOS), Some(300));
    assert_eq!(b.banned(&e, t + 302 * NANOS), None, "and the ban ends");
    // Failures spread wider than the window never ban.
    let mut e = BanEntry::default();
    for i in 0..10 {
        let (n, s) = b.record(&e, 42, t + i * 61 * NANOS);
        assert!(!s);
        e = n;
    }
}

fn req(headers: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
}

#[test]
fn keys_combine_parts_and_skip_requests_lacking_one() {
    // {"sub":"cust-42","n":7}
    let payload = b"eyJzdWIiOiJjdXN0LTQyIiwibiI6N30";
    let h = req(&[("x-dealer-id", b"D-1"), ("x-jwt-payload", payload)]);
    let r = Request::from_headers(&h, None);
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let body: serde_json::Value =
        serde_json::json!({"email": "  O'Brien@Example.com ", "password": "x", "n": 3});
    let cx = KeyContext {
        client: Some(ip),
        peer_identity: Some("spiffe://dealers/d-1"),
        body: Some(&body),
    };
    let email = vec![KeyPart::BodyField("email".into())];
    assert_eq!(
        key_of(&email, &Request::from_headers(&h, None), &cx).unwrap(),
        b"o'brien@example.com"
    );
    // A field that is not text (or absent) shares the one "missing" bucket, so leaving it out
    // is no way around the limit.
    let not_text = vec![KeyPart::BodyField("n".into())];
    assert_eq!(
        key_of(&not_text, &Request::from_headers(&h, None), &cx).unwrap(),
        b"\x00(missing)"
    );
    let parts = vec![KeyPart::ClientIp, KeyPart::Header("x-dealer-id".into())];
    assert_eq!(key_of(&parts, &r, &cx).unwrap(), b"192.0.2.1\x1fD-1");
    let claim = vec![KeyPart::Claim {
        header: "x-jwt-payload".into(),
        claim: "sub".into(),
    }];
    assert_eq!(key_of(&claim, &r, &cx).unwrap(), b"cust-42");
    let num = vec![KeyPart::Claim {
        header: "x-jwt-payload".into(),
        claim: "n".into(),
    }];
    assert_eq!(key_of(&num, &r, &cx).unwrap(), b"7");
    assert_eq!(
        key_of(&[KeyPart::PeerIdentity], &r, &cx).unwrap(),
        b"spiffe://dealers/d-1"
    );
    let missing = vec![KeyPart::Header("x-api-key".into())];
    assert_eq!(key_of(&missing, &r, &cx), None);
    assert_eq!(
        key_of(&[KeyPart::ClientIp], &r, &KeyContext::default()),
        None
    );
    // A payload that is not base64url JSON gives no key (not a trap).
    let bad = req(&[("x-jwt-payload", b"%%%")]);
    assert_eq!(
        key_of(&claim, &Request::from_headers(&bad, None), &cx),
        None
    );
}

#[test]
fn policies_with_limits_compile_and_report_every_error() {
    let good = r#"{"version":"v","edge":"e","routes":[{"name":"login","path":"/login","methods":["POST"],"rate_limit_headers":false},{"name":"bulk","path":"/bulk","methods":["POST"]}],
      "rate_limits":[{"name":"per-ip","key":["client_ip"],"rate":"10/min","burst":5,"routes":["login",{"route":"bulk","cost":5}],"max_keys":1000,"on_failure":"closed"},
                     {"name":"per-dealer","key":[{"header":"x-dealer-id"},{"claim":"sub"}],"rate":"1000/h","burst":50}],
      "bans":[{"name":"stuffing","key":["client_ip"],"routes":["login"],"statuses":[401,403],"threshold":10,"window":"5m","duration":"15m"}]}"#;
    let p = Policy::from_json(good).unwrap();
    assert_eq!(p.rate_limits().len(), 2);
    let l = &p.rate_limits()[0];
    assert_eq!(l.cost_on(Some(1)), Some(5));
    assert_eq!(l.cost_on(Some(0)), Some(1));
    assert_eq!(l.interval, 6 * NANOS);
    assert_eq!(l.on_failure, FailureMode::Closed);
    assert_eq!(p.rate_limits()[1].cost_on(None), Some(1));
    assert!(!p.rate_limit_headers_on(Some(0)));
    assert!(p.rate_limit_headers_on(Some(1)));
    assert_eq!(p.bans()[0].window, 300 * NANOS);
    assert!(p.rules().iter().any(|r| r.name == "rate_limit.per-ip"));
    assert!(p.rules().iter().any(|r| r.name == "ban.stuffing"));

    let bad = r#"{"version":"v","edge":"e","routes":[{"name":"login","path":"/login","methods":["POST"]}],
      "rate_limits":[{"name":"x","key":["client_ipp"],"rate":"10/fortnight","burst":0,"routes":["nope"],"max_keys":2},
                     {"name":"y","key":[],"rate":"5/s","burst":2,"cost":3}],
      "bans":[{"name":"b","key":["client_ip"],"statuses":[99],"threshold":0,"window":"forever","duration":"1h"}]}"#;
    let errors = Policy::from_json(bad).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "rate_limits[0].key[0]",
        "rate_limits[0].rate",
        "rate_limits[0].burst",
        "rate_limits[0].routes[0]",
        "rate_limits[0].max_keys",
        "rate_limits[1].key",
        "rate_limits[1].cost",
        "bans[0].statuses[0]",
        "bans[0].threshold",
        "bans[0].window",
    ] {
        assert!(paths.contains(&want), "missing {want} in {errors:?}");
    }
}

#[test]
fn a_burst_whose_time_overflows_is_refused_and_tables_are_whole_blocks() {
    let over = r#"{"version":"v","edge":"e","routes":[{"name":"a","path":"/a","methods":["GET"]}],
      "rate_limits":[{"name":"slow","key":["client_ip"],"rate":"1/d","burst":300000}]}"#;
    let errors = Policy::from_json(over).unwrap_err();
    assert!(
        errors.iter().any(|e| e.path == "rate_limits[0].burst"),
        "{errors:?}"
    );
    let odd = r#"{"version":"v","edge":"e","routes":[{"name":"a","path":"/a","methods":["GET"]}],
      "rate_limits":[{"name":"l","key":["client_ip"],"rate":"1/s","burst":1,"max_keys":10001}]}"#;
    let p = Policy::from_json(odd).unwrap();
    assert_eq!(
        p.rate_limits()[0].max_keys,
        10_016,
        "rounded up to whole blocks of 16"
    );
}
