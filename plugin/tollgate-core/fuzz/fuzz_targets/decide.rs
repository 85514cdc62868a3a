//! Any request against the shipped policies. The input is read as header fields: a byte picking
//! the name, a length byte, then the value. Every verdict must be a 4xx with a problem body that
//! parses as JSON, or a pass.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tollgate_core::{Policy, Request};

const NAMES: [&str; 12] = [
    ":method", ":path", ":authority", "host", "x-forwarded-for", "x-dealer-id",
    "authorization", "x-api-key", "x-request-id", "x-client-version", "content-type",
    "content-length",
];

fn policies() -> &'static [Policy; 2] {
    static P: OnceLock<[Policy; 2]> = OnceLock::new();
    P.get_or_init(|| {
        [
            Policy::from_json(tollgate_policies::RETAIL).unwrap(),
            Policy::from_json(tollgate_policies::DEALER).unwrap(),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else { return };
    let mut headers = Vec::new();
    while let [name, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (value, next) = tail.split_at(n);
        headers.push((NAMES[*name as usize % NAMES.len()].to_string(), value.to_vec()));
        rest = next;
    }
    let source = (first & 0x80 != 0).then(|| std::net::IpAddr::from([192, 0, 2, first]));
    let policy = &policies()[usize::from(first & 1)];
    let req = Request::from_headers(&headers, source);
    let verdict = policy.decide(&req);
    if let Some(block) = &verdict.block {
        assert!((400..500).contains(&block.status()));
        let id = req.request_id().and_then(tollgate_core::sanitize_request_id);
        let body = policy.problem(block, id).to_json();
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
    }
});
