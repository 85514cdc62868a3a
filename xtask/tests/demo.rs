//! `cargo xtask demo --global` as a user runs it: it comes up (the backend, Redis, the rate-limit
//! service and four Envoys), refuses the sixth login of one account spread over both retail
//! replicas, and a SIGTERM stops every process it started.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[test]
fn the_global_demo_limits_across_replicas_and_sigterm_stops_everything_it_started() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--global"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(demo.stdout.take().unwrap());
    let mut redis = None;
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("the demo ended before it was ready: {:?}", demo.wait());
        }
        if let Some(rest) = line.strip_prefix("Global limits: Redis on ") {
            redis = rest
                .split_whitespace()
                .next()
                .map(|a| a.trim_end_matches(',').to_owned());
        }
        if line.contains("stops everything") {
            break;
        }
    }
    let redis: SocketAddr = redis.expect("the Redis address").parse().unwrap();
    let ports = [8080, 10000, 10001, 10002, 10003, 9901, 9902, 9903, 9904];
    for p in ports {
        assert!(open(p), "port {p} is not up");
    }

    // Warm each replica's workers first (a cold worker's first call may outlive the 20 ms
    // timeout while V8 compiles, and on_failure: open then admits it uncounted).
    for i in 0..8 {
        for port in [10000, 10002] {
            let _ = harness::http::Request::new("POST", "/v1/auth/login")
                .header("x-forwarded-for", &format!("192.0.2.{}", 200 + i))
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"email":"warm-{port}-{i}@example.com","password":"x"}}"#
                ))
                .send(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    // Six logins for one account, alternating between the two retail replicas (from six
    // addresses, so no per-address limit is involved): five pass, the sixth is refused.
    let statuses: Vec<u16> = (1..=6)
        .map(|i| {
            let port = if i % 2 == 0 { 10000 } else { 10002 };
            harness::http::Request::new("POST", "/v1/auth/login")
                .header("x-forwarded-for", &format!("192.0.2.{}", 100 + i))
                .header("content-type", "application/json")
                .body(r#"{"email":"sigterm-test@example.com","password":"x"}"#)
                .send(SocketAddr::from(([127, 0, 0, 1], port)))
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(statuses[5], 429, "{statuses:?}");
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");

    let t = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(s) = demo.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // Nothing it started is left: every port it listened on is closed.
    std::thread::sleep(Duration::from_millis(300));
    for p in ports.iter().copied().chain([redis.port()]) {
        assert!(!open(p), "port {p} still open after the demo stopped");
    }
}
