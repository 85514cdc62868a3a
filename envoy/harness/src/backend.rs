//! The demo backend: stands in for the retail and dealer services behind the edges. It answers
//! every request with 200 and a JSON echo of what reached it (edge, method, path, request id and
//! the names of the headers, never their values), so a test can see what Envoy forwarded.
//! HTTP/1.1 with keep-alive, a thread per connection. A request may ask for another status with
//! `x-demo-status: 401` (to play an identity service that refuses a password).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::http::read_chunked;

/// Largest request head the backend reads.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body it reads.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A running backend.
#[derive(Debug)]
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    served: Arc<AtomicU64>,
    window: Arc<Mutex<Option<(Instant, Instant)>>>,
}

impl Backend {
    /// Listens on `addr` (port 0 for an ephemeral one) and serves in background threads until
    /// the process exits.
    pub fn start(addr: &str) -> Result<Backend> {
        let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let window = Arc::new(Mutex::new(None));
        let (counter, times) = (served.clone(), window.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (counter, times) = (counter.clone(), times.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &counter, &times);
                });
            }
        });
        Ok(Backend {
            addr,
            served,
            window,
        })
    }

    /// When it answered its first and its last request.
    pub fn window(&self) -> Option<(Instant, Instant)> {
        *self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many requests it has answered.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

type Window = Mutex<Option<(Instant, Instant)>>;

fn serve(conn: TcpStream, served: &AtomicU64, window: &Window) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let _ = conn.set_nodelay(true);
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let head = match read_head(&mut reader)? {
            Some(h) => h,
            None => return Ok(()),
        };
        let mut hs = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut hs);
        if !matches!(req.parse(&head)?, httparse::Status::Complete(_)) {
            bail!("incomplete request head");
        }
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            read_chunked(&mut reader, MAX_BODY)?
        } else {
            let len: usize = header("content-length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if len > MAX_BODY {
                bail!("body too large");
            }
            let mut b = vec![0; len];
            reader.read_exact(&mut b)?;
            b
        };
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        // `x-demo-bytes: N` asks for a body of N bytes instead (at most MAX_BODY), for tests of
        // large responses.
        let padded: Option<usize> = header("x-demo-bytes")
            .and_then(|v| v.trim().parse().ok())
            .filter(|n| *n <= MAX_BODY);
        let reply = json!({
            "backend": "tollgate-demo",
            "edge": header("x-tollgate-edge"),
            "method": req.method,
            "path": req.path,
            "request_id": header("x-request-id"),
            "header_names": req.headers.iter().map(|h| h.name.to_ascii_lowercase()).collect::<Vec<_>>(),
            "body_bytes": body.len(),
        })
        .to_string();
        let reply = match padded {
            Some(n) => "x".repeat(n),
            None => reply,
        };
        served.fetch_add(1, Ordering::Relaxed);
        {
            let now = Instant::now();
            let mut w = window.lock().unwrap_or_else(|e| e.into_inner());
            *w = Some(w.map_or((now, now), |(first, _)| (first, now)));
        }
        let status: u16 = header("x-demo-status")
            .and_then(|s| s.trim().parse().ok())
            .filter(|s| (200..600).contains(s))
            .unwrap_or(200);
        // One write for head and body, so that a small response reaches Envoy in one read.
        let mut wire = format!(
            "HTTP/1.1 {status} Demo\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-demo-backend: 1\r\n{}\r\n",
            reply.len(),
            if close { "connection: close\r\n" } else { "" }
        )
        .into_bytes();
        if req.method != Some("HEAD") {
            wire.extend_from_slice(reply.as_bytes());
        }
        out.write_all(&wire)?;
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// Reads up to and including the blank line; `None` at a clean end of stream.
fn read_head(r: &mut impl BufRead) -> Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                bail!("truncated head")
            };
        }
        if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
            if head == b"\r\n" {
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            bail!("request head too large");
        }
    }
}
