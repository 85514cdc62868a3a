//! The shared engine behind global limits, on loopback: Debian's `redis-server` as a child
//! process, and the rate-limit service (`tollgate-ratelimit`) in this process, on a runtime of
//! its own. Both can be killed and started again on the same port, as the failure tests need;
//! dropping either stops it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Where Debian's package puts the server.
pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A port on 127.0.0.1 that was free a moment ago (for servers that cannot take port 0 and
/// report the one they got).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A Redis server on loopback: no persistence, no protected-mode surprises.
#[derive(Debug)]
pub struct Redis {
    child: Option<Child>,
    /// Its address.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Redis {
    /// Starts one on a free port and waits until it answers PING.
    pub fn start() -> Result<Redis> {
        let dir = crate::scratch_dir("redis")?;
        let mut r = Redis {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            log: dir.join("redis.log"),
        };
        r.restart()?;
        Ok(r)
    }

    /// The URL the rate-limit service connects to.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Starts it again, on the same port (after [`Redis::kill`]).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        if !std::path::Path::new(REDIS_SERVER).exists() {
            bail!("{REDIS_SERVER} is missing: run `cargo xtask setup` (it installs redis-server)");
        }
        let log = std::fs::File::create(&self.log)?;
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ping() {
            if Instant::now() > deadline {
                bail!(
                    "redis-server not answering on {}; its log:\n{}",
                    self.addr,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether it answers PING.
    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// Kills it (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) it: a server that holds its connections but
    /// answers nothing.
    pub fn pause(&self, stop: bool) -> Result<()> {
        let pid = self.child.as_ref().context("not running")?.id();
        let status = Command::new("kill")
            .arg(if stop { "-STOP" } else { "-CONT" })
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill failed: {status}");
        }
        Ok(())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.pause(false);
        self.kill();
    }
}

/// The rate-limit service, served from this process.
#[derive(Debug)]
pub struct Rls {
    /// Its address.
    pub addr: SocketAddr,
    redis_url: String,
    config: tollgate_ratelimit::config::Config,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Rls {
    /// Serves on a free port, counting in Redis at `redis_url`, with no configured limits (the
    /// limits Tollgate sends as overrides apply).
    pub fn start(redis_url: &str) -> Result<Rls> {
        Self::start_with(redis_url, tollgate_ratelimit::config::Config::default())
    }

    /// As [`Rls::start`], with limits configured in the service.
    pub fn start_with(redis_url: &str, config: tollgate_ratelimit::config::Config) -> Result<Rls> {
        let mut r = Rls {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            redis_url: redis_url.to_owned(),
            config,
            runtime: None,
        };
        r.restart()?;
        Ok(r)
    }

    /// Starts serving again, on the same port (after [`Rls::kill`]).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let limiter = tollgate_ratelimit::Limiter::new(self.config.clone(), &self.redis_url)?;
        let listener = runtime.block_on(async {
            limiter.warm();
            tokio::net::TcpListener::bind(self.addr).await
        })?;
        self.addr = listener.local_addr()?;
        runtime.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(tollgate_ratelimit::RateLimitServer::new(limiter))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        self.runtime = Some(runtime);
        Ok(())
    }

    /// Stops at once: the listener closes and every connection drops, as when the process dies.
    pub fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
            // The listening socket closes with its task; give the kernel a moment.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rls {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An edge's shipped policy (`policies/<edge>.yaml`, its Core Rule Set imported from this
/// machine) with the global limits `policies/global.yaml` gives that edge appended: the policy
/// of one replica in a fleet.
pub fn fleet_policy(edge: &str) -> Result<serde_json::Value> {
    let root = crate::workspace_root();
    let read = |p: &str| -> Result<serde_json::Value> {
        let text = std::fs::read_to_string(root.join(p)).with_context(|| format!("reading {p}"))?;
        serde_saphyr::from_str(&text).with_context(|| format!("parsing {p}"))
    };
    let mut doc = read(&format!("policies/{edge}.yaml"))?;
    let globals = read("policies/global.yaml")?;
    let extra = globals
        .get(edge)
        .and_then(serde_json::Value::as_array)
        .with_context(|| format!("policies/global.yaml has no list for {edge}"))?;
    doc.get_mut("rate_limits")
        .and_then(serde_json::Value::as_array_mut)
        .with_context(|| format!("policies/{edge}.yaml has no rate_limits"))?
        .extend(extra.iter().cloned());
    tollgate_core::crs::dir::resolve(&mut doc)
        .map_err(|e| anyhow::anyhow!("importing the Core Rule Set: {e}"))?;
    Ok(doc)
}
