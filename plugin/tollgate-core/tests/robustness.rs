//! Whatever a client or a policy author sends, the core answers and never panics. Seeded random
//! inputs (bytes, mutated policies, hostile requests), bounded in count so they run in every
//! test run; the libFuzzer targets in `plugin/tollgate-core/fuzz` explore further.

// Tests may unwrap, index and panic (clippy.toml allows it inside #[test] functions only).
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

mod common;

use tollgate_core::{decode_struct, load_plugin_config, Policy, Request};

use common::Rng;

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "1",
    "1.5",
    "-1",
    "1e400",
    "\"routes\"",
    "\"name\"",
    "\"path\"",
    "\"/v1/{x}\"",
    "\"methods\"",
    "\"GET\"",
    "\"cidrs\"",
    "\"::/0\"",
    "\"ip_lists\"",
    "\"mode\"",
    "\"shadow\"",
    "\"embedded\"",
    "\"retail\"",
    "\u{0}",
    "\u{ff0f}",
];

#[test]
fn random_plugin_configurations_never_panic() {
    let mut rng = Rng(0x7011_6a7e);
    let embedded: &[(&str, &str)] = &[("retail", tollgate_policies::RETAIL)];
    for _ in 0..20_000 {
        let raw = rng.bytes(64);
        let _ = load_plugin_config(&raw, embedded);
        let _ = decode_struct(&raw);
    }
    for _ in 0..20_000 {
        let mut s = String::new();
        for _ in 0..rng.below(40) {
            s.push_str(TOKENS[rng.below(TOKENS.len())]);
        }
        let _ = load_plugin_config(s.as_bytes(), embedded);
    }
}

#[test]
fn mutated_shipped_policies_never_panic() {
    let mut rng = Rng(0x00de_a1e4);
    let (mut compiled, mut refused) = (0, 0);
    for src in [tollgate_policies::RETAIL, tollgate_policies::DEALER] {
        let base = src.as_bytes();
        for _ in 0..3_000 {
            let mut b = base.to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                match rng.below(3) {
                    0 => b[i] = rng.next() as u8,
                    1 => {
                        b.remove(i);
                    }
                    _ => {
                        let tok = TOKENS[rng.below(TOKENS.len())].as_bytes();
                        b.splice(i..i, tok.iter().copied());
                    }
                }
            }
            match load_plugin_config(&b, &[]) {
                Ok(p) => {
                    compiled += 1;
                    // Whatever survived mutation must still decide.
                    let h = vec![(":path".to_string(), b"/v1/orders/1".to_vec())];
                    let _ = p.decide(&Request::from_headers(&h, None));
                }
                Err(_) => refused += 1,
            }
        }
    }
    // Both branches ran, often: mutants that still compile (and decide), and mutants refused.
    // Seeded, so the counts repeat: 653 compiled and 5,347 refused when this was written.
    println!("mutated policies: {compiled} compiled, {refused} refused");
    assert!(
        compiled >= 600 && refused >= 5_000,
        "{compiled} compiled, {refused} refused"
    );
}

#[test]
fn hostile_requests_never_panic_and_always_get_a_verdict() {
    let mut rng = Rng(0xbad_c0de);
    let policies = [
        Policy::from_json(tollgate_policies::RETAIL).unwrap(),
        Policy::from_json(tollgate_policies::DEALER).unwrap(),
    ];
    let names = [
        ":method",
        ":path",
        ":authority",
        "host",
        "x-forwarded-for",
        "x-dealer-id",
        "authorization",
        "x-api-key",
        "x-request-id",
    ];
    let pieces: &[&[u8]] = &[
        b"/",
        b"v1",
        b"vehicles",
        b"{vin}",
        b"%2f",
        b"..",
        b"?",
        b",",
        b" ",
        b"[",
        b"]",
        b":",
        b"192.0.2.10",
        b"::ffff:",
        b"GET",
        b"\xff",
        b"\0",
        b"*",
    ];
    for i in 0..50_000 {
        let mut h = Vec::new();
        for _ in 0..rng.below(8) {
            let name = names[rng.below(names.len())].to_string();
            let mut v = Vec::new();
            for _ in 0..rng.below(8) {
                if rng.below(4) == 0 {
                    v.extend(rng.bytes(4));
                } else {
                    v.extend_from_slice(pieces[rng.below(pieces.len())]);
                }
            }
            h.push((name, v));
        }
        let source = if rng.below(2) == 0 {
            None
        } else {
            Some(std::net::IpAddr::from([10, 0, 0, (i % 256) as u8]))
        };
        let p = &policies[i % 2];
        let v = p.decide(&Request::from_headers(&h, source));
        if let Some(b) = &v.block {
            let body = p.problem(b, None).to_json();
            assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
            assert!((400..500).contains(&b.status()));
        }
    }
}
