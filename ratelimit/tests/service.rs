//! The service against a real Redis (Debian's `redis-server`, started here on loopback), and the
//! binary's life: calls over gRPC, counting, limits from overrides and from configuration,
//! failures when Redis is gone, and a clean stop on SIGTERM. The requests come from Tollgate's
//! own encoder (`tollgate_core::global`) and the answers go back through its decoder, so both
//! ends of the protocol are checked against prost's reading of the same messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use tollgate_core::global::{decode_response, encode_request, Code, Entry, Unit};
use tollgate_ratelimit::config::Config;
use tollgate_ratelimit::proto::{RateLimitRequest, RateLimitResponse};
use tollgate_ratelimit::Limiter;

struct Redis(Child, u16);

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (cargo xtask setup installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child, port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.1)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn entries(limit: &str, client: &str) -> Vec<Entry> {
    vec![
        Entry {
            key: "tollgate_limit".into(),
            value: limit.into(),
        },
        Entry {
            key: "client_ip".into(),
            value: client.into(),
        },
    ]
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Tollgate's bytes, read by prost, decided, written by prost, read by Tollgate. (One runtime
/// per test: the Redis connection lives on it.)
fn decide(l: &std::sync::Arc<Limiter>, bytes: &[u8]) -> tollgate_core::global::Answer {
    thread_local! {
        static RT: tokio::runtime::Runtime = rt();
    }
    let req = RateLimitRequest::decode(bytes).expect("prost reads Tollgate's request");
    let resp = RT
        .with(|rt| rt.block_on(l.decide(&req, tollgate_ratelimit::REDIS_TIMEOUT)))
        .expect("decided");
    decode_response(&resp.encode_to_vec()).expect("Tollgate reads prost's answer")
}

#[test]
fn prost_reads_tollgates_request_field_for_field() {
    let bytes = encode_request(
        "tollgate",
        &entries("fleet", "2001:db8::7"),
        Some((30, Unit::Hour)),
        4,
    );
    let req = RateLimitRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(req.domain, "tollgate");
    assert_eq!(req.hits_addend, 4);
    let d = &req.descriptors[0];
    let got: Vec<(&str, &str)> = d
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        got,
        [("tollgate_limit", "fleet"), ("client_ip", "2001:db8::7")]
    );
    let o = d.limit.as_ref().unwrap();
    assert_eq!((o.requests_per_unit, o.unit), (30, 3));
}

#[test]
fn an_override_limit_is_counted_exactly_in_redis() {
    let redis = Redis::start();
    let l = Limiter::new(Config::default(), &redis.url()).unwrap();
    let e = entries("fleet", "192.0.2.1");
    let req = encode_request("t", &e, Some((5, Unit::Hour)), 2);
    // Cost 2 against 5 per hour: 2, 4 admitted, 6 over.
    let a = decide(&l, &req);
    assert_eq!(a.overall, Code::Ok);
    let s = a.status();
    assert_eq!(s.limit, Some((5, Unit::Hour)));
    assert_eq!(s.remaining, 3);
    assert!(s.reset_secs.is_some_and(|t| (1..=3600).contains(&t)));
    assert_eq!(decide(&l, &req).status().remaining, 1);
    let over = decide(&l, &req);
    assert!(over.over_limit());
    assert_eq!(over.status().remaining, 0);
    // Another client has its own count.
    let other = encode_request(
        "t",
        &entries("fleet", "192.0.2.2"),
        Some((5, Unit::Hour)),
        1,
    );
    assert_eq!(decide(&l, &other).status().remaining, 4);
    // A descriptor with no limit anywhere is OK and not counted.
    let free = encode_request("t", &entries("unknown", "192.0.2.1"), None, 1);
    let a = decide(&l, &free);
    assert_eq!((a.overall, a.status().limit), (Code::Ok, None));
}

#[test]
fn without_an_override_the_configured_limit_applies() {
    let redis = Redis::start();
    let config = Config::parse(
        "domain: t\ndescriptors:\n  - key: tollgate_limit\n    value: fleet\n    descriptors:\n      - key: client_ip\n        rate_limit: {unit: minute, requests_per_unit: 2}\n",
    )
    .unwrap();
    let l = Limiter::new(config, &redis.url()).unwrap();
    let req = encode_request("t", &entries("fleet", "192.0.2.9"), None, 1);
    assert!(!decide(&l, &req).over_limit());
    let s = decide(&l, &req).status();
    assert_eq!((s.limit, s.remaining), (Some((2, Unit::Minute)), 0));
    assert!(decide(&l, &req).over_limit());
}

#[test]
fn without_redis_a_decision_fails_quickly() {
    let redis = Redis::start();
    let url = redis.url();
    drop(redis);
    let l = Limiter::new(Config::default(), &url).unwrap();
    let req = RateLimitRequest::decode(
        encode_request("t", &entries("fleet", "x"), Some((1, Unit::Second)), 1).as_slice(),
    )
    .unwrap();
    let t = Instant::now();
    assert!(rt()
        .block_on(l.decide(&req, tollgate_ratelimit::REDIS_TIMEOUT))
        .is_err());
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn the_binary_serves_grpc_and_stops_cleanly_on_sigterm() {
    let redis = Redis::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-ratelimit"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--redis",
            &redis.url(),
            "--threads",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();

    // A call over gRPC, as Envoy makes it (HTTP/2, the method's path, prost's codec).
    let answer = rt().block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let req = RateLimitRequest::decode(
            encode_request("t", &entries("fleet", "x"), Some((3, Unit::Minute)), 1).as_slice(),
        )
        .unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
        );
        let resp: tonic::Response<RateLimitResponse> = grpc
            .unary(
                tonic::Request::new(req),
                path,
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap();
        resp.into_inner()
    });
    assert_eq!(answer.overall_code, 1);
    assert_eq!(answer.statuses[0].limit_remaining, 2);

    let t = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}
