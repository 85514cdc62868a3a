//! Rate limits and bans of the real filter, in the host: exact across workers running in
//! parallel, headers, bounded memory, bans, failure modes.

use std::sync::Arc;
use std::time::Duration;

use host_tests::{
    Forwarded, Plugin, PluginOptions, PluginSpec, Request, Response, SharedFault, Worker,
};

use crate::common::tollgate;

/// A policy with one route and the given limits and bans (JSON fragments).
fn policy(limits: &str, bans: &str) -> String {
    format!(
        r#"{{"version":"t1","edge":"t","client_ip":{{"trusted_hops":1}},
            "routes":[{{"name":"login","path":"/login","methods":["POST"]}},
                      {{"name":"items","path":"/items/{{id}}","methods":["GET"]}},
                      {{"name":"open","path":"/open","methods":["GET"],"rate_limit_headers":false}}],
            "rate_limits":[{limits}], "bans":[{bans}]}}"#
    )
}

fn start(policy: &str, workers: usize) -> Plugin {
    Plugin::start(
        &tollgate(),
        PluginOptions::new(PluginSpec::new(policy))
            .workers(workers)
            .edge(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn get(path: &str, client: &str) -> Request {
    Request::new("GET", path).header("x-forwarded-for", client)
}

#[test]
fn a_limit_is_exact_across_workers_sending_in_parallel() {
    let p = policy(
        r#"{"name":"per-ip","key":["client_ip"],"rate":"100/s","burst":20,"routes":["items"]}"#,
        "",
    );
    let mut plugin = start(&p, 4);
    let admitted = |plugin: &mut Plugin, each: usize| -> usize {
        std::thread::scope(|s| {
            let handles: Vec<_> = plugin
                .workers_mut()
                .iter_mut()
                .map(|w: &mut Worker| {
                    s.spawn(move || {
                        (0..each)
                            .filter(|_| w.send(get("/items/1", "192.0.2.1")).status() == Some(200))
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        })
    };
    // The clock stands still: 400 requests from 4 workers at once admit exactly the burst.
    assert_eq!(admitted(&mut plugin, 100), 20);
    // Then a second of steady pressure, 10 ms at a time, 20 requests per step from the four
    // workers at once: exactly the rate more (one per 10 ms).
    let mut more = 0;
    for _ in 0..100 {
        plugin.advance(Duration::from_millis(10));
        more += admitted(&mut plugin, 5);
    }
    assert_eq!(more, 100);
    assert_eq!(
        plugin.metric("tollgate.t.rate_limit.per-ip.allowed"),
        Some(120)
    );
    assert_eq!(
        plugin.metric("tollgate.t.rate_limit.per-ip.limited"),
        Some(2280)
    );
    // Another client has its own allowance.
    assert_eq!(
        plugin.send(get("/items/1", "192.0.2.2")).status(),
        Some(200)
    );
}

#[test]
fn answers_carry_ratelimit_headers_and_429_says_when_to_retry() {
    let p = policy(
        r#"{"name":"items","key":["client_ip"],"rate":"60/min","burst":3,"routes":["items","open"]}"#,
        "",
    );
    let mut plugin = start(&p, 1);
    let header = |ex: &host_tests::Exchange, h: &str| {
        ex.response.as_ref().unwrap().header(h).map(str::to_owned)
    };
    let ex = plugin.send(get("/items/1", "192.0.2.1"));
    assert_eq!(
        header(&ex, "ratelimit-policy").as_deref(),
        Some("\"items\";q=3;w=3")
    );
    assert_eq!(
        header(&ex, "ratelimit").as_deref(),
        Some("\"items\";r=2;t=1")
    );
    plugin.send(get("/items/1", "192.0.2.1"));
    let ex = plugin.send(get("/items/1", "192.0.2.1"));
    assert_eq!(
        header(&ex, "ratelimit").as_deref(),
        Some("\"items\";r=0;t=3")
    );
    let ex = plugin.send(get("/items/1", "192.0.2.1"));
    assert_eq!(ex.status(), Some(429));
    assert!(ex.forwarded.is_none());
    assert_eq!(header(&ex, "retry-after").as_deref(), Some("1"));
    assert_eq!(
        header(&ex, "ratelimit").as_deref(),
        Some("\"items\";r=0;t=3")
    );
    let body = ex.response.as_ref().unwrap().json().unwrap();
    assert_eq!(body["type"], "urn:tollgate:problem:rate-limited");
    assert_eq!(body["rule"], "rate_limit.items");
    assert!(body["request_id"].is_string());
    // A second later one more is admitted.
    plugin.advance(Duration::from_secs(1));
    assert_eq!(
        plugin.send(get("/items/1", "192.0.2.1")).status(),
        Some(200)
    );
    // A route that hides the headers: none on allowed answers.
    let ex = plugin.send(get("/open", "192.0.2.9"));
    assert_eq!(ex.status(), Some(200));
    assert_eq!(header(&ex, "ratelimit"), None);
}

#[test]
fn the_tightest_of_several_limits_decides_and_costs_weigh_requests() {
    let p = policy(
        r#"{"name":"burst","key":["client_ip"],"rate":"10/s","burst":10,"routes":["items"]},
           {"name":"hourly","key":[{"header":"x-dealer-id"}],"rate":"3/h","burst":3,"routes":["items",{"route":"login","cost":3}]}"#,
        "",
    );
    let mut plugin = start(&p, 1);
    let dealer = |path: &str, ip: &str| get(path, ip).header("x-dealer-id", "D-1");
    for _ in 0..3 {
        assert_eq!(
            plugin.send(dealer("/items/1", "192.0.2.1")).status(),
            Some(200)
        );
    }
    let ex = plugin.send(dealer("/items/1", "192.0.2.1"));
    assert_eq!(ex.status(), Some(429));
    assert_eq!(
        ex.response.unwrap().json().unwrap()["rule"],
        "rate_limit.hourly"
    );
    // Another dealer: the per-address burst still has room, the hourly quota is its own.
    let other = get("/items/1", "192.0.2.1").header("x-dealer-id", "D-2");
    assert_eq!(plugin.send(other).status(), Some(200));
    // A login costs 3 of a fresh dealer's 3.
    let login = |d: &str| {
        Request::new("POST", "/login")
            .header("x-forwarded-for", "192.0.2.7")
            .header("x-dealer-id", d)
    };
    assert_eq!(plugin.send(login("D-3")).status(), Some(200));
    assert_eq!(plugin.send(login("D-3")).status(), Some(429));
    // A request without the key's header is not limited by that limit.
    for _ in 0..5 {
        assert_eq!(
            plugin.send(get("/items/1", "192.0.2.8")).status(),
            Some(200)
        );
    }
}

#[test]
fn keys_from_claims_and_mtls_identities() {
    let p = policy(
        r#"{"name":"per-sub","key":[{"claim":"sub"}],"rate":"1/h","burst":1,"routes":["items"]},
           {"name":"per-peer","key":["peer_identity"],"rate":"1/h","burst":1,"routes":["login"]}"#,
        "",
    );
    let mut plugin = start(&p, 1);
    // {"sub":"cust-42"} and {"sub":"cust-43"}, base64url as jwt_authn forwards them.
    let claims = |payload: &str| get("/items/1", "192.0.2.1").header("x-jwt-payload", payload);
    assert_eq!(
        plugin.send(claims("eyJzdWIiOiJjdXN0LTQyIn0")).status(),
        Some(200)
    );
    assert_eq!(
        plugin.send(claims("eyJzdWIiOiJjdXN0LTQyIn0")).status(),
        Some(429)
    );
    assert_eq!(
        plugin.send(claims("eyJzdWIiOiJjdXN0LTQzIn0")).status(),
        Some(200)
    );
    let peer = |san: &str| {
        Request::new("POST", "/login")
            .header("x-forwarded-for", "192.0.2.1")
            .mtls(san)
    };
    assert_eq!(
        plugin.send(peer("spiffe://dealers/d-1")).status(),
        Some(200)
    );
    assert_eq!(
        plugin.send(peer("spiffe://dealers/d-1")).status(),
        Some(429)
    );
    assert_eq!(
        plugin.send(peer("spiffe://dealers/d-2")).status(),
        Some(200)
    );
}

#[test]
fn a_flood_of_distinct_keys_stays_within_the_ceiling() {
    let p = policy(
        r#"{"name":"per-ip","key":["client_ip"],"rate":"1/s","burst":5,"routes":["items"],"max_keys":1000}"#,
        "",
    );
    let mut plugin = start(&p, 2);
    // A persistent client uses up its burst first.
    for _ in 0..5 {
        assert_eq!(
            plugin.send(get("/items/1", "198.51.100.1")).status(),
            Some(200)
        );
    }
    for i in 0..20_000u32 {
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        assert_eq!(plugin.send(get("/items/1", &ip)).status(), Some(200));
        if i % 1000 == 0 {
            // The persistent client keeps asking: it stays limited, never evicted as stalest.
            assert_eq!(
                plugin.send(get("/items/1", "198.51.100.1")).status(),
                Some(429)
            );
        }
    }
    // 1000 slots are 63 blocks of at most 16 entries of 16 bytes, made at configuration.
    let (keys, bytes) = plugin.process().shared_size("tollgate");
    assert_eq!(
        keys,
        63 + 3,
        "63 blocks, the seed, the table registry and the policy record"
    );
    assert!(bytes <= 1000 * 16 + 66 * 32 + 256, "{bytes} bytes");
    let evicted = plugin
        .metric("tollgate.t.rate_limit.per-ip.evicted")
        .unwrap();
    assert!(evicted > 15_000, "evicted {evicted}");
    // Idle keys expire on the tick, a chunk of slots per second per worker.
    plugin.advance(Duration::from_secs(10));
    let expired = plugin
        .metric("tollgate.t.rate_limit.per-ip.expired")
        .unwrap();
    assert!(expired >= 900, "expired {expired}");
}

/// An upstream that answers 401 to logins whose password is "wrong".
fn identity_service() -> host_tests::Upstream {
    Arc::new(|f: &Forwarded| {
        if String::from_utf8_lossy(&f.body).contains("wrong") {
            Response::new(401, "")
        } else {
            Response::new(200, "{}")
        }
    })
}

#[test]
fn failed_logins_ban_the_address_across_workers_until_the_ban_ends() {
    let p = policy(
        "",
        r#"{"name":"stuffing","key":["client_ip"],"routes":["login"],"statuses":[401],"threshold":5,"window":"1m","duration":"10m"}"#,
    );
    let mut plugin = Plugin::start(
        &tollgate(),
        PluginOptions::new(PluginSpec::new(p))
            .workers(2)
            .edge()
            .upstream(identity_service()),
    )
    .unwrap();
    let login = |ip: &str, pw: &str| {
        Request::new("POST", "/login")
            .header("x-forwarded-for", ip)
            .body(format!(r#"{{"password":"{pw}"}}"#))
    };
    // Five failures, alternating workers.
    for _ in 0..5 {
        assert_eq!(
            plugin.send(login("192.0.2.66", "wrong")).status(),
            Some(401)
        );
    }
    assert_eq!(plugin.metric("tollgate.t.ban.stuffing.banned"), Some(1));
    // Banned on both workers, even with the right password.
    for w in 0..2 {
        let ex = plugin.send_on(w, login("192.0.2.66", "right"));
        assert_eq!(ex.status(), Some(429), "worker {w}");
        assert!(ex.forwarded.is_none());
        let r = ex.response.unwrap();
        assert_eq!(r.header("retry-after"), Some("600"));
        assert_eq!(r.json().unwrap()["type"], "urn:tollgate:problem:banned");
    }
    assert_eq!(plugin.metric("tollgate.t.ban.stuffing.refused"), Some(2));
    // Others are not affected, and a successful login does not count: four failures, then
    // twenty successes, then a fifth failure is the first that bans.
    for _ in 0..4 {
        assert_eq!(
            plugin.send(login("192.0.2.67", "wrong")).status(),
            Some(401)
        );
    }
    for _ in 0..20 {
        assert_eq!(
            plugin.send(login("192.0.2.67", "right")).status(),
            Some(200)
        );
    }
    assert_eq!(plugin.metric("tollgate.t.ban.stuffing.banned"), Some(1));
    assert_eq!(
        plugin.send(login("192.0.2.67", "wrong")).status(),
        Some(401)
    );
    assert_eq!(plugin.metric("tollgate.t.ban.stuffing.banned"), Some(2));
    assert_eq!(
        plugin.send(login("192.0.2.67", "right")).status(),
        Some(429)
    );
    // The ban ends.
    plugin.advance(Duration::from_secs(600));
    assert_eq!(
        plugin.send(login("192.0.2.66", "right")).status(),
        Some(200)
    );
}

#[test]
fn failure_modes_apply_when_shared_data_fails_and_nothing_traps() {
    let p = policy(
        r#"{"name":"lenient","key":["client_ip"],"rate":"1/h","burst":2,"routes":["items"],"on_failure":"open"},
           {"name":"strict","key":["client_ip"],"rate":"1/h","burst":1,"routes":["login"],"on_failure":"closed"}"#,
        "",
    );
    let mut plugin = start(&p, 1);
    plugin
        .process()
        .inject_shared_fault(Some(SharedFault::Unavailable));
    assert_eq!(
        plugin.send(get("/items/1", "192.0.2.1")).status(),
        Some(200)
    );
    assert_eq!(
        plugin.send(get("/items/1", "192.0.2.1")).status(),
        Some(200)
    );
    assert_eq!(
        plugin.metric("tollgate.t.rate_limit.lenient.failure_open"),
        Some(2)
    );
    let login = || Request::new("POST", "/login").header("x-forwarded-for", "192.0.2.1");
    let ex = plugin.send(login());
    assert_eq!(ex.status(), Some(503));
    assert_eq!(
        ex.response.unwrap().json().unwrap()["type"],
        "urn:tollgate:problem:rate-limit-unavailable"
    );
    assert_eq!(
        plugin.metric("tollgate.t.rate_limit.strict.failure_closed"),
        Some(1)
    );
    // CAS that keeps losing is the same failure.
    plugin
        .process()
        .inject_shared_fault(Some(SharedFault::CasAlwaysLoses));
    // Every write is a compare-and-swap on an existing block: each admission fails over.
    for n in [3, 4] {
        assert_eq!(
            plugin.send(get("/items/1", "192.0.2.5")).status(),
            Some(200)
        );
        assert_eq!(
            plugin.metric("tollgate.t.rate_limit.lenient.failure_open"),
            Some(n)
        );
    }
    // Healed: the limit works again.
    plugin.process().inject_shared_fault(None);
    for _ in 0..2 {
        assert_eq!(
            plugin.send(get("/items/1", "192.0.2.9")).status(),
            Some(200)
        );
    }
    assert_eq!(
        plugin.send(get("/items/1", "192.0.2.9")).status(),
        Some(429)
    );
    assert!(plugin.traps().is_empty());
}

#[test]
fn a_login_body_larger_than_the_key_reader_takes_is_refused() {
    let p = policy(
        r#"{"name":"per-account","key":[{"body_field":"email"}],"rate":"1/h","burst":1,"routes":["login"]}"#,
        "",
    );
    let mut plugin = start(&p, 1);
    let login = |body: Vec<u8>| {
        Request::new("POST", "/login")
            .header("x-forwarded-for", "192.0.2.1")
            .chunks(body.chunks(4096).map(<[u8]>::to_vec).collect())
    };
    let ok = login(br#"{"email":"a@example.com"}"#.to_vec());
    assert_eq!(plugin.send(ok.clone()).status(), Some(200));
    assert_eq!(plugin.send(ok).status(), Some(429));
    let mut big = br#"{"email":"b@example.com","pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 20_000));
    big.extend(br#""}"#);
    let ex = plugin.send(login(big));
    assert_eq!(ex.status(), Some(413));
    assert!(ex.forwarded.is_none());
    // Not JSON: no key, so this limit does not apply (other rules still do).
    assert_eq!(
        plugin.send(login(b"email=a@example.com".to_vec())).status(),
        Some(200)
    );
}
