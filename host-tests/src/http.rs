//! The scenario vocabulary: what a client sends, what the upstream gets and answers, and what
//! the client sees in the end.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::state::{Headers, LocalResponse, LogLine};
use crate::vm::Trap;

/// A request as a client sends it to the edge.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// `:authority`.
    pub authority: String,
    /// Headers, in order (names are lower-cased when the request is built).
    pub headers: Headers,
    /// The body, in the chunks Envoy would deliver.
    pub body: Vec<Vec<u8>>,
    /// Trailers, if any.
    pub trailers: Option<Headers>,
    /// The connection's peer.
    pub source: SocketAddr,
    /// The URI SAN of the client certificate, on an mTLS connection.
    pub peer_identity: Option<String>,
}

impl Request {
    /// A request from 127.0.0.1 to `edge.test`, without headers or body.
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            authority: "edge.test".to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            trailers: None,
            source: SocketAddr::from(([127, 0, 0, 1], 40000)),
            peer_identity: None,
        }
    }

    /// Arrives over mTLS with a client certificate whose URI SAN is `san`.
    pub fn mtls(mut self, san: &str) -> Self {
        self.peer_identity = Some(san.to_owned());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((
            name.to_ascii_lowercase().into_bytes(),
            value.as_ref().to_vec(),
        ));
        self
    }

    /// Sets the body, delivered in one chunk.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = vec![body.into()];
        self
    }

    /// Sets the body, delivered in these chunks.
    pub fn chunks(mut self, chunks: Vec<Vec<u8>>) -> Self {
        self.body = chunks;
        self
    }

    /// Adds a trailer.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.get_or_insert_with(Vec::new).push((
            name.to_ascii_lowercase().into_bytes(),
            value.as_bytes().to_vec(),
        ));
        self
    }

    /// Sets the connection's peer.
    pub fn source(mut self, addr: SocketAddr) -> Self {
        self.source = addr;
        self
    }

    /// Sets `:authority`.
    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = authority.to_owned();
        self
    }

    /// The header map Envoy hands the filter: pseudo-headers first.
    pub(crate) fn header_map(&self) -> Headers {
        let mut h: Headers = vec![
            (b":authority".to_vec(), self.authority.as_bytes().to_vec()),
            (b":path".to_vec(), self.path.as_bytes().to_vec()),
            (b":method".to_vec(), self.method.as_bytes().to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
        ];
        h.extend(self.headers.iter().cloned());
        // A body comes with its length, as an HTTP/1.1 client sends it (unless the test set
        // its own framing header).
        let framed = h.iter().any(|(k, _)| {
            k.as_slice() == b"content-length" || k.as_slice() == b"transfer-encoding"
        });
        let len: usize = self.body.iter().map(Vec::len).sum();
        if len > 0 && !framed {
            h.push((b"content-length".to_vec(), len.to_string().into_bytes()));
        }
        h
    }
}

/// A response: from the upstream, a local reply, or what the client finally receives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u32,
    /// Headers without `:status`.
    pub headers: Headers,
    /// Body.
    pub body: Vec<u8>,
    /// Trailers, if any.
    pub trailers: Option<Headers>,
}

impl Response {
    /// A response with this status and body and no headers.
    pub fn new(status: u32, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            trailers: None,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((
            name.to_ascii_lowercase().into_bytes(),
            value.as_bytes().to_vec(),
        ));
        self
    }

    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }

    /// The body as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The header map Envoy hands the filter: `:status` first.
    pub(crate) fn header_map(&self) -> Headers {
        let mut h: Headers = vec![(b":status".to_vec(), self.status.to_string().into_bytes())];
        h.extend(self.headers.iter().cloned());
        h
    }

    /// Back from a header map: `:status` taken out.
    pub(crate) fn from_map(map: Headers, body: Vec<u8>, trailers: Option<Headers>) -> Self {
        let mut status = 0;
        let headers = map
            .into_iter()
            .filter(|(k, v)| {
                if k.as_slice() == b":status" {
                    status = std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    false
                } else {
                    true
                }
            })
            .collect();
        Response {
            status,
            headers,
            body,
            trailers,
        }
    }
}

fn first<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// What the upstream received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// Headers, pseudo-headers included, as the filter left them.
    pub headers: Headers,
    /// Body.
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: Option<Headers>,
}

impl Forwarded {
    /// The first value of a header (or pseudo-header such as `:path`), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }
}

/// The upstream: answers each forwarded request.
pub type Upstream = Arc<dyn Fn(&Forwarded) -> Response + Send + Sync>;

/// An upstream that answers like the demo backend: 200 with a JSON echo of the method, path,
/// edge (`x-tollgate-edge`), request id, header names and body size.
pub fn echo_upstream() -> Upstream {
    Arc::new(|f: &Forwarded| {
        let names: Vec<String> = f
            .headers
            .iter()
            .filter(|(k, _)| !k.starts_with(b":"))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        let body = serde_json::json!({
            "backend": "tollgate-demo",
            "edge": f.header("x-tollgate-edge"),
            "method": f.header(":method"),
            "path": f.header(":path"),
            "request_id": f.header("x-request-id"),
            "header_names": names,
            "body_bytes": f.body.len(),
        })
        .to_string();
        Response::new(200, body)
            .with_header("content-type", "application/json")
            .with_header("x-demo-backend", "1")
    })
}

/// One request's story.
#[derive(Clone, Debug, Default)]
pub struct Exchange {
    /// The worker that served it.
    pub worker: usize,
    /// Its HTTP context id.
    pub context: u32,
    /// What the client received; `None` while the stream waits (paused, or a callout pending).
    pub response: Option<Response>,
    /// What reached the upstream, if anything did.
    pub forwarded: Option<Forwarded>,
    /// The local reply the plugin asked for, if any.
    pub local: Option<LocalResponse>,
    /// Envoy's response code details: `via_upstream`, the plugin's details for a local reply,
    /// `wasm_fail_stream` after a trap, `wasm_close_stream` after `proxy_close_stream`.
    pub details: String,
    /// The stream was reset rather than answered.
    pub reset: bool,
    /// A trap in one of this stream's callbacks.
    pub trap: Option<Trap>,
    /// Log lines written during this exchange's callbacks.
    pub logs: Vec<LogLine>,
    /// The response could not be parsed by the client (a header with a bare CR, LF or NUL,
    /// which Envoy writes as the plugin gave it): what went wrong. `response` is then `None`.
    pub client_error: Option<String>,
}

impl Exchange {
    /// The status the client saw.
    pub fn status(&self) -> Option<u32> {
        self.response.as_ref().map(|r| r.status)
    }

    /// Whether the stream is still waiting.
    pub fn pending(&self) -> bool {
        self.response.is_none() && !self.reset && self.client_error.is_none()
    }
}
