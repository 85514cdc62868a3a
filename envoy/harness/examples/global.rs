//! The global-limits benchmark: Redis, the rate-limit service and two Envoy replicas on
//! loopback, measured in one run. Not a test:
//!
//! ```sh
//! cargo run --release -p harness --example global -- [REQUESTS]
//! ```
//!
//! - accuracy: one client sends 2×LIMIT requests from 8 threads spread over both replicas; the
//!   admitted count against the limit (1,000 per hour);
//! - added latency: sequential requests on one route with a global limit and one without,
//!   interleaved (REQUESTS of each, default 2,000): p50 and p99 of each and the difference;
//! - the service down: Redis hung (SIGSTOP), Redis killed, the service killed: each request's
//!   time, against the 20 ms timeout (the pause is the request's time less the unlimited
//!   route's p50);
//! - the service alone: `ShouldRateLimit` calls per second it decides on one core (a
//!   current-thread runtime), Redis on loopback, from a client with 64 calls in flight on the
//!   other core.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use harness::backend::Backend;
use harness::envoy::{EdgeOptions, Envoy, PluginConfig};
use harness::http::Request;
use harness::ratelimit::{Redis, Rls};
use tollgate_ratelimit::proto::{Entry, RateLimitDescriptor, RateLimitOverride, RateLimitRequest};

const LIMIT: usize = 1000;
const TIMEOUT_MS: u64 = 20;

fn policy() -> String {
    format!(
        r#"{{"version":"bench","edge":"retail","client_ip":{{"trusted_hops":1}},
            "routes":[{{"name":"limited","path":"/limited/{{id}}","methods":["GET"]}},
                      {{"name":"free","path":"/free/{{id}}","methods":["GET"]}}],
            "rate_limits":[{{"name":"fleet","scope":"global","key":["client_ip"],
                "rate":"{LIMIT}/hour","routes":["limited"],
                "service":{{"cluster":"ratelimit","domain":"bench","timeout":"{TIMEOUT_MS}ms"}},
                "on_failure":"open"}}]}}"#
    )
}

fn timed(envoy: &Envoy, path: &str, client: &str) -> (u16, Duration) {
    let t = Instant::now();
    let r = Request::new("GET", path)
        .header("x-forwarded-for", client)
        .send(envoy.addr);
    (r.map_or(0, |r| r.status), t.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() -> Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2000);
    let mut redis = Redis::start()?;
    let mut rls = Rls::start(&redis.url())?;
    let wasm = harness::wasm::ensure_wasm()?;
    let backend = Backend::start("127.0.0.1:0")?;
    let mut o = EdgeOptions::new("retail", backend.addr, &wasm);
    o.plugin_config = PluginConfig::Text(policy());
    o.ratelimit = Some(rls.addr);
    let a = Envoy::start(&o)?;
    let b = Envoy::start(&o)?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() % 200;
    // Warm both replicas' connections to the service.
    for e in [&a, &b] {
        for i in 0..20 {
            timed(e, "/limited/1", &format!("10.250.{run}.{i}"));
        }
    }

    // Accuracy.
    let client = format!("10.251.{run}.1");
    let admitted = AtomicUsize::new(0);
    let sent = AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for th in 0..8 {
            let (a, b, client, admitted, sent) = (&a, &b, &client, &admitted, &sent);
            s.spawn(move || loop {
                let i = sent.fetch_add(1, Ordering::Relaxed);
                if i >= 2 * LIMIT {
                    break;
                }
                let e = if (i + th) % 2 == 0 { a } else { b };
                if timed(e, "/limited/1", client).0 == 200 {
                    admitted.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let got = admitted.load(Ordering::Relaxed);
    let failed: u64 = [&a, &b]
        .iter()
        .map(|e| {
            e.stat("wasmcustom.tollgate.retail.rate_limit.fleet.failure_open")
                .ok()
                .flatten()
                .unwrap_or(0)
        })
        .sum();
    println!(
        "accuracy: {got} of {} requests admitted over two replicas against a limit of {LIMIT} ({:+.2} %), in {:.1} s; calls that failed (admitted: on_failure open): {failed}",
        2 * LIMIT,
        (got as f64 / LIMIT as f64 - 1.0) * 100.0,
        t.elapsed().as_secs_f64()
    );

    // Added latency.
    let (mut limited, mut free) = (Vec::new(), Vec::new());
    for i in 0..n {
        let e = if i % 2 == 0 { &a } else { &b };
        let c = format!(
            "10.{}.{}.{}",
            100 + i / 62_500,
            (i / 250) % 250,
            i % 250 + 1
        );
        limited.push(timed(e, "/limited/1", &c).1);
        free.push(timed(e, "/free/1", &c).1);
    }
    limited.sort();
    free.sort();
    let (lp50, lp99, fp50, fp99) = (
        percentile(&limited, 0.5),
        percentile(&limited, 0.99),
        percentile(&free, 0.5),
        percentile(&free, 0.99),
    );
    println!(
        "latency ({n} each): with the global limit p50 {} p99 {}; without p50 {} p99 {}; added p50 {} p99 {}",
        ms(lp50),
        ms(lp99),
        ms(fp50),
        ms(fp99),
        ms(lp50.saturating_sub(fp50)),
        ms(lp99.saturating_sub(fp99)),
    );

    // The service down.
    let down = |name: &str, count: usize| {
        let mut times: Vec<Duration> = (0..count)
            .map(|i| {
                timed(
                    if i % 2 == 0 { &a } else { &b },
                    "/limited/1",
                    &format!("10.252.{}.{}", i / 250, i % 250 + 1),
                )
                .1
            })
            .collect();
        times.sort();
        let over = times
            .iter()
            .filter(|t| t.saturating_sub(fp50) > Duration::from_millis(TIMEOUT_MS + 5))
            .count();
        println!(
            "{name}: {count} requests, p50 {} max {}; paused longer than the timeout + 5 ms: {over}",
            ms(percentile(&times, 0.5)),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
        );
    };
    redis.pause(true)?;
    down("redis hung", 200);
    redis.pause(false)?;
    redis.kill();
    down("redis killed", 200);
    rls.kill();
    down("service killed", 200);
    redis.restart()?;
    rls.restart()?;
    drop((a, b));

    // The service alone on one core.
    let rate = service_alone(&redis.url())?;
    println!("rate-limit service, one core: {rate:.0} decisions/s");
    Ok(())
}

fn service_alone(redis_url: &str) -> Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let url = redis_url.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let limiter =
                tollgate_ratelimit::Limiter::new(Default::default(), &url).expect("limiter");
            limiter.warm();
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(tollgate_ratelimit::RateLimitServer::new(limiter))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut channels = Vec::new();
        for _ in 0..4 {
            channels.push(
                tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                    .tcp_nodelay(true)
                    .connect()
                    .await?,
            );
        }
        let done = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut tasks = Vec::new();
        for k in 0..64 {
            let channel = channels[k % channels.len()].clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                let mut grpc = tonic::client::Grpc::new(channel);
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    let req = RateLimitRequest {
                        domain: "bench".into(),
                        descriptors: vec![RateLimitDescriptor {
                            entries: vec![
                                Entry {
                                    key: "tollgate_limit".into(),
                                    value: "fleet".into(),
                                },
                                Entry {
                                    key: "client_ip".into(),
                                    value: format!("{k}-{}", i % 1000),
                                },
                            ],
                            limit: Some(RateLimitOverride {
                                requests_per_unit: 1_000_000,
                                unit: 4,
                            }),
                            hits_addend: None,
                        }],
                        hits_addend: 1,
                    };
                    if grpc.ready().await.is_err() {
                        break;
                    }
                    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                        "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
                    );
                    let r: Result<
                        tonic::Response<tollgate_ratelimit::proto::RateLimitResponse>,
                        _,
                    > = grpc
                        .unary(
                            tonic::Request::new(req),
                            path,
                            tonic_prost::ProstCodec::default(),
                        )
                        .await;
                    if r.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        let t = Instant::now();
        for task in tasks {
            let _ = task.await;
        }
        Ok(done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64())
    })
}
