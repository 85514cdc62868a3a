//! `tollgate-ratelimit`: the RLS v3 service on Redis.
//!
//! ```text
//! tollgate-ratelimit [--listen ADDR] [--redis URL] [--config FILE] [--threads N]
//! ```
//!
//! Prints `listening on ADDR` once it accepts calls (ADDR with the port it got, for `:0`).
//! SIGTERM or SIGINT stops it: it stops accepting, finishes the calls in flight, and exits 0.

use std::io::Write;

use anyhow::{bail, Context, Result};
use tollgate_ratelimit::{config::Config, Limiter, RateLimitServer};

struct Args {
    listen: String,
    redis: String,
    config: Option<String>,
    threads: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        listen: "127.0.0.1:8081".into(),
        redis: "redis://127.0.0.1:6379".into(),
        config: None,
        threads: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => a.listen = value()?,
            "--redis" => a.redis = value()?,
            "--config" => a.config = Some(value()?),
            "--threads" => a.threads = value()?.parse().context("--threads takes a number")?,
            "-h" | "--help" => {
                println!("usage: tollgate-ratelimit [--listen ADDR] [--redis URL] [--config FILE] [--threads N]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("tollgate-ratelimit: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let a = args()?;
    let config = match &a.config {
        None => Config::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
            Config::parse(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?
        }
    };
    let mut rt = if a.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if a.threads > 1 {
            b.worker_threads(a.threads);
        }
        b
    };
    rt.enable_all().build()?.block_on(serve(a, config))
}

async fn serve(a: Args, config: Config) -> Result<()> {
    let limiter = Limiter::new(config, &a.redis)?;
    limiter.warm();
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    std::io::stdout().flush()?;
    let stop = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
        eprintln!("tollgate-ratelimit: stopping");
    };
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(RateLimitServer::new(limiter))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            stop,
        )
        .await?;
    Ok(())
}
