//! A small HTTP/1.1 client over `TcpStream`, one request per connection, with timeouts. Enough
//! for tests and the demo to send exactly the bytes they mean (odd methods, repeated headers).

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A response as the client saw it.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers with lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("body is not JSON: {}", self.text()))
    }
}

/// A request to send.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method, sent as is.
    pub method: String,
    /// Path and query, sent as is.
    pub path: String,
    /// Extra headers (Connection is added, and Host unless one is here); values are bytes,
    /// sent as given.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body; sent with Content-Length when present.
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A request with no headers or body.
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// Adds a header whose value need not be UTF-8 (HTTP allows obs-text bytes).
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.into(), value.to_vec()));
        self
    }

    /// Sets a body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// The request's bytes on the wire (`host` is the address unless a header sets it).
    pub fn to_bytes(&self, addr: SocketAddr) -> Vec<u8> {
        let own_host = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"));
        let host = if own_host {
            String::new()
        } else {
            format!("host: {addr}\r\n")
        };
        let mut head = format!(
            "{} {} HTTP/1.1\r\n{host}connection: close\r\n",
            self.method, self.path
        )
        .into_bytes();
        for (k, v) in &self.headers {
            head.extend_from_slice(k.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(v);
            head.extend_from_slice(b"\r\n");
        }
        if let Some(b) = &self.body {
            head.extend_from_slice(format!("content-length: {}\r\n", b.len()).as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        if let Some(b) = &self.body {
            head.extend_from_slice(b);
        }
        head
    }

    /// Sends the request to `addr` and reads the whole response.
    pub fn send(&self, addr: SocketAddr) -> Result<Response> {
        send_raw(addr, &self.to_bytes(addr), self.method == "HEAD")
    }
}

/// Sends bytes as they are (malformed requests included) and reads the whole response.
pub fn send_raw(addr: SocketAddr, bytes: &[u8], head_only: bool) -> Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(bytes)?;
    // Read until the response is complete, not until the connection closes: after a local reply
    // Envoy waits up to its delayed-close timeout (1 s) for the client to close first.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).context("reading the response")?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
        if complete(&raw, head_only) {
            break;
        }
    }
    parse_response(&raw, head_only)
}

/// Whether `raw` holds a whole response: headers, then the body its framing announces.
fn complete(raw: &[u8], head_only: bool) -> bool {
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut hs);
    let Ok(httparse::Status::Complete(n)) = r.parse(raw) else {
        return false;
    };
    if head_only || matches!(r.code, Some(100..=199 | 204 | 304)) {
        return true;
    }
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        return raw.len() >= n + len;
    }
    if header("transfer-encoding").as_deref() == Some("chunked") {
        return raw.ends_with(b"\r\n0\r\n\r\n") || raw.get(n..) == Some(&b"0\r\n\r\n"[..]);
    }
    false
}

/// `GET path` with no extra headers.
pub fn get(addr: SocketAddr, path: &str) -> Result<Response> {
    Request::new("GET", path).send(addr)
}

fn parse_response(raw: &[u8], head_only: bool) -> Result<Response> {
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut hs);
    let n = match r.parse(raw)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => bail!("incomplete response ({} bytes)", raw.len()),
    };
    let status = r.code.context("no status")?;
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let rest = raw.get(n..).unwrap_or_default();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        read_chunked(&mut std::io::Cursor::new(rest), usize::MAX)?
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Reads a chunked body (and its trailers) from `r`, at most `max` bytes of payload.
pub fn read_chunked(r: &mut impl BufRead, max: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t == "\r\n" {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > max {
            bail!("body over {max} bytes");
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}
