//! Any bytes through attack detection, in every place a value can come from: normalisation, each
//! detector, whole bodies of every media type. Nothing may panic, normalisation never grows a
//! value (memory stays bounded by the input), and a verdict is the same when asked twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tollgate_core::detect::{normalize, Findings, Location};
use tollgate_core::Policy;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| Policy::from_json(tollgate_policies::RETAIL).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, value)) = data.split_first() else { return };
    let d = policy().detection().unwrap();
    let form = pick & 1 == 1;
    let mut buf = Vec::new();
    normalize(value, form, &mut buf);
    assert!(buf.len() <= value.len(), "normalisation grew a value");
    let loc = match (pick >> 1) % 4 {
        0 => Location::PathSegment,
        1 => Location::Name,
        2 => Location::Value,
        _ => Location::UserAgent,
    };
    let mut a = Findings::default();
    d.value(value, form, loc, &mut buf, &mut a);
    let mut b = Findings::default();
    d.value(value, form, loc, &mut buf, &mut b);
    assert_eq!(a, b, "the same value scored twice differently");
    let media: &[u8] = match (pick >> 3) % 4 {
        0 => b"application/json",
        1 => b"application/x-www-form-urlencoded",
        2 => b"text/plain",
        _ => b"application/xml",
    };
    let mut f = Findings::default();
    d.inspect_body(value, Some(media), None, &mut f);
    let _ = d.judge(5, &f);
});
