//! Any request against the machine's Core Rule Set (`/usr/share/modsecurity-crs`, which
//! `cargo xtask setup` installs), imported once at paranoia 4 and run at the level the input
//! picks. The input reads like an HTTP/1 request: two flag bytes, then the method, the URI and
//! header lines (`name: value`), each ending in `\n`, an empty line, and the body. The flags pick
//! the paranoia level, a Content-Type when the headers carry none (so the fuzzer reaches every
//! body processor quickly), whether the request has a body, the client address and the protocol.
//! Evaluation never panics, and only rules the engine holds match.
#![no_main]

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_core::crs::{dir, Engine, Exclusions, Input};

const CRS_DIR: &str = "/usr/share/modsecurity-crs";

/// Content-Types the flags add (empty: none), one per body processor and a few near misses.
const CONTENT_TYPES: [&[u8]; 8] = [
    b"",
    b"application/json",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=x",
    b"application/xml",
    b"text/xml; charset=utf-8",
    b"multipart/form-data",
    b"text/plain",
];

const PROTOCOLS: [&str; 4] = ["HTTP/1.1", "HTTP/2", "HTTP/1.0", "HTTP/3"];

/// The CRS compiled once per executing paranoia level (1 to 4), and its rule ids.
struct Crs {
    engines: Vec<Engine>,
    ids: HashSet<u32>,
}

fn crs() -> &'static Crs {
    static CRS: OnceLock<Crs> = OnceLock::new();
    CRS.get_or_init(|| {
        let (set, _) = dir::import_dir(Path::new(CRS_DIR), 4).unwrap_or_else(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!(
                "import {CRS_DIR} (`cargo xtask setup` installs the Core Rule Set):\n{}",
                lines.join("\n")
            )
        });
        let engines: Vec<Engine> = (1..=4)
            .map(|paranoia| {
                let mut e = Engine::compile(&set, &Exclusions::default())
                    .unwrap_or_else(|errors| panic!("compile {CRS_DIR}:\n{}", errors.join("\n")));
                e.configure(paranoia, &[]);
                e
            })
            .collect();
        let ids = engines[0].rule_ids().collect();
        Crs { engines, ids }
    })
}

/// The bytes up to the next `\n` (without it); `rest` moves past it.
fn take_line<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = &rest[..i];
            *rest = &rest[i + 1..];
            line
        }
        None => std::mem::take(rest),
    }
}

fuzz_target!(|bytes: &[u8]| {
    let &[flags, extra, ref rest @ ..] = bytes else { return };
    let mut rest: &[u8] = rest;
    let method = String::from_utf8_lossy(take_line(&mut rest)).into_owned();
    let uri = String::from_utf8_lossy(take_line(&mut rest)).into_owned();
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    while !rest.is_empty() {
        let line = take_line(&mut rest);
        if line.is_empty() {
            break;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => (&line[..i], line[i + 1..].trim_ascii_start()),
            None => (line, &[][..]),
        };
        let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
        headers.push((name, value.to_vec()));
    }
    let content_type = CONTENT_TYPES[usize::from((flags >> 2) & 7)];
    if !content_type.is_empty() && !headers.iter().any(|(k, _)| k == "content-type") {
        headers.push(("content-type".to_string(), content_type.to_vec()));
    }
    let body = (flags & 0x20 == 0).then_some(rest);
    let remote_addr = match flags >> 6 {
        0 => None,
        1 => Some(IpAddr::from([192, 0, 2, extra])),
        2 => Some(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(extra)])),
        _ => Some(IpAddr::from([127, 0, 0, 1])),
    };
    let input = Input {
        method: &method,
        uri: &uri,
        protocol: PROTOCOLS[usize::from(extra) % PROTOCOLS.len()],
        headers: &headers,
        body,
        remote_addr,
    };
    let crs = crs();
    let out = crs.engines[usize::from(flags & 3)].evaluate(&input);
    for m in &out.matched {
        assert!(crs.ids.contains(&m.id), "rule {} matched but the engine does not hold it", m.id);
    }
    let _ = out.score();
});
