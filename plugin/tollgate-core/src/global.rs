//! Global rate limits: limits counted by a rate-limit service shared by every replica, over
//! Envoy's rate-limit service protocol (RLS v3, `envoy.service.ratelimit.v3.RateLimitService/
//! ShouldRateLimit`), as Envoy's own `ratelimit` filter, Kuadrant's wasm-shim and Limitador use it.
//!
//! A policy's rate limit with `scope: global` compiles to a [`GlobalLimit`]: the cluster and
//! `domain` of the service, the descriptor its keys make, a timeout and a failure mode. The
//! counting is the service's; this module only builds the request's bytes and reads the answer's,
//! with a hand-written protobuf codec for the few messages involved (no `protoc`, no generated
//! code), and maps the answer to the IETF `RateLimit` headers. The filter dispatches the call and
//! pauses the request; nothing here talks to a host.
//!
//! The descriptor of a request under a limit is one entry naming the limit
//! (`("tollgate_limit", NAME)`) followed by one entry per key part, in key order:
//! `client_ip`, `header:<name>`, `claim:<name>`, `peer_identity`, `body_field:<name>`. When the
//! limit states a `rate`, it travels as the descriptor's limit override (RateLimitOverride),
//! which Envoy's reference service honours; a service without overrides (Limitador) counts by its
//! own configuration of the same descriptor.

use crate::limits::{claim_value, FailureMode, KeyContext, KeyPart};
use crate::wire::{Field, Wire};
use crate::{Mode, Request, RuleId};

/// The gRPC service and method called.
pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
/// See [`SERVICE`].
pub const METHOD: &str = "ShouldRateLimit";

/// Default time the filter waits for the service before `on_failure` applies.
pub const DEFAULT_TIMEOUT_MS: u32 = 20;
/// Longest timeout a policy may set: a request is never held longer than this for a limit.
pub const MAX_TIMEOUT_MS: u32 = 5_000;

/// The descriptor entry that names the limit.
pub const LIMIT_ENTRY: &str = "tollgate_limit";

/// A unit of the RLS protocol's limits (`RateLimitUnit`; the response's `Unit` numbers them the
/// same way for the units it has).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day.
    Day,
}

impl Unit {
    /// The protocol's number for the unit.
    pub fn number(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
        }
    }

    /// The unit of a protocol number, for the units a window can be counted in.
    pub fn from_number(n: u64) -> Option<Unit> {
        match n {
            1 => Some(Unit::Second),
            2 => Some(Unit::Minute),
            3 => Some(Unit::Hour),
            4 => Some(Unit::Day),
            _ => None,
        }
    }

    /// Its length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
        }
    }

    /// The unit a policy's rate names (`5/minute`), if the protocol has it.
    pub fn of_period(secs: u64) -> Option<Unit> {
        [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day]
            .into_iter()
            .find(|u| u.seconds() == secs)
    }
}

/// A compiled global rate limit.
#[derive(Clone, Debug)]
pub struct GlobalLimit {
    /// Metric-safe name (the local limits' namespace: names are unique across both).
    pub name: String,
    /// Its rule (`rate_limit.<name>`).
    pub rule: RuleId,
    /// Enforce or shadow.
    pub mode: Mode,
    /// The key's parts; a request lacking any part is not limited by this limit.
    pub key: Vec<KeyPart>,
    /// Routes it applies to, with each route's cost (the request's `hits_addend`); `None`: every
    /// route, cost `cost`.
    pub routes: Option<Vec<(usize, u64)>>,
    /// Cost of a request on a route listed without a cost (or on any route).
    pub cost: u64,
    /// The Envoy cluster of the service (HTTP/2).
    pub cluster: String,
    /// The RLS domain.
    pub domain: String,
    /// How long the filter waits for an answer.
    pub timeout_ms: u32,
    /// The limit sent as the descriptor's override: requests per unit.
    pub rate: Option<(u32, Unit)>,
    /// What to do when the service cannot answer.
    pub on_failure: FailureMode,
}

impl GlobalLimit {
    /// The cost of a request on `route`, or `None` if the limit does not apply there.
    pub fn cost_on(&self, route: Option<usize>) -> Option<u64> {
        match (&self.routes, route) {
            (None, _) => Some(self.cost),
            (Some(list), Some(r)) => list.iter().find(|(i, _)| *i == r).map(|(_, c)| *c),
            (Some(_), None) => None,
        }
    }

    /// The descriptor of a request, or `None` if a key part is missing (the limit then does not
    /// apply, as a local limit's key).
    pub fn descriptor(&self, req: &Request<'_>, cx: &KeyContext<'_>) -> Option<Vec<Entry>> {
        let mut out = vec![Entry {
            key: LIMIT_ENTRY.into(),
            value: self.name.clone(),
        }];
        for part in &self.key {
            let (key, value) = match part {
                KeyPart::ClientIp => ("client_ip".to_owned(), cx.client?.to_string()),
                KeyPart::Header(h) => {
                    let v = req.header(h).filter(|v| !v.is_empty())?;
                    (
                        format!("header:{h}"),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                }
                KeyPart::Claim { header, claim } => {
                    let v = claim_value(req.header(header)?, claim)?;
                    (
                        format!("claim:{claim}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                }
                KeyPart::PeerIdentity => (
                    "peer_identity".to_owned(),
                    cx.peer_identity.filter(|s| !s.is_empty())?.to_owned(),
                ),
                KeyPart::BodyField(f) => {
                    // As the local key: a body without the field shares one bucket.
                    let v = cx
                        .body
                        .and_then(|b| b.get(f))
                        .and_then(|v| v.as_str())
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map_or_else(|| "(missing)".to_owned(), str::to_lowercase);
                    (format!("body_field:{f}"), v)
                }
            };
            out.push(Entry { key, value });
        }
        Some(out)
    }

    /// The `RateLimitRequest` for a request of cost `cost` with this descriptor.
    pub fn request(&self, descriptor: &[Entry], cost: u64) -> Vec<u8> {
        encode_request(&self.domain, descriptor, self.rate, cost)
    }

    /// The `RateLimit-Policy` member for an answer (the limit the service reported, else the
    /// override).
    pub fn policy_header(&self, status: &DescriptorStatus) -> Option<String> {
        let (q, unit) = status
            .limit
            .or_else(|| self.rate.map(|(n, u)| (u64::from(n), u)))?;
        Some(format!("\"{}\";q={q};w={}", self.name, unit.seconds()))
    }

    /// The `RateLimit` member for an answer.
    pub fn state_header(&self, status: &DescriptorStatus) -> String {
        format!(
            "\"{}\";r={};t={}",
            self.name,
            status.remaining,
            status.reset_secs.unwrap_or(0)
        )
    }
}

/// One descriptor entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's key.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// An RLS answer code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The service did not say.
    Unknown,
    /// Under the limit.
    Ok,
    /// Over it.
    OverLimit,
}

impl Code {
    fn of(n: u64) -> Code {
        match n {
            1 => Code::Ok,
            2 => Code::OverLimit,
            _ => Code::Unknown,
        }
    }
}

/// What the service said about one descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorStatus {
    /// Its code.
    pub code: Code,
    /// The limit the service applied: requests per unit.
    pub limit: Option<(u64, Unit)>,
    /// Requests left in the window.
    pub remaining: u64,
    /// Seconds until the window resets (rounded up).
    pub reset_secs: Option<u64>,
}

/// A decoded `RateLimitResponse`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The overall code.
    pub overall: Code,
    /// One status per descriptor sent (possibly none: the service need not send them).
    pub statuses: Vec<DescriptorStatus>,
}

impl Answer {
    /// Whether the request is over the limit. As Envoy's `ratelimit` filter reads it: only
    /// `OVER_LIMIT` refuses; `OK` and `UNKNOWN` admit.
    pub fn over_limit(&self) -> bool {
        self.overall == Code::OverLimit
    }

    /// The status of the (single) descriptor, or one made of the overall code.
    pub fn status(&self) -> DescriptorStatus {
        self.statuses.first().copied().unwrap_or(DescriptorStatus {
            code: self.overall,
            limit: None,
            remaining: 0,
            reset_secs: None,
        })
    }
}

/// Why an answer could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

// --- protobuf, by hand -------------------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(out, (field << 3) | wire);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_tag(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_uint(out: &mut Vec<u8>, field: u64, v: u64) {
    if v != 0 {
        put_tag(out, field, 0);
        put_varint(out, v);
    }
}

/// Encodes a `RateLimitRequest` with one descriptor.
pub fn encode_request(
    domain: &str,
    entries: &[Entry],
    rate: Option<(u32, Unit)>,
    hits: u64,
) -> Vec<u8> {
    let mut descriptor = Vec::new();
    for e in entries {
        let mut entry = Vec::new();
        put_bytes(&mut entry, 1, e.key.as_bytes());
        put_bytes(&mut entry, 2, e.value.as_bytes());
        put_bytes(&mut descriptor, 1, &entry);
    }
    if let Some((n, unit)) = rate {
        let mut limit = Vec::new();
        put_uint(&mut limit, 1, u64::from(n));
        put_uint(&mut limit, 2, unit.number());
        put_bytes(&mut descriptor, 2, &limit);
    }
    let mut out = Vec::new();
    put_bytes(&mut out, 1, domain.as_bytes());
    put_bytes(&mut out, 2, &descriptor);
    // The request's hits_addend is a uint32; 0 means 1.
    put_uint(&mut out, 3, hits.min(u64::from(u32::MAX)));
    out
}

/// A `GrpcService` naming an Envoy cluster (`envoy_grpc.cluster_name`), which the filter passes
/// to `proxy_grpc_call` instead of the bare name: Envoy reads the argument as a serialized
/// `GrpcService` first, and a bare name that happened to parse as one would be misread.
pub fn grpc_service(cluster: &str) -> Vec<u8> {
    let mut envoy_grpc = Vec::new();
    put_bytes(&mut envoy_grpc, 1, cluster.as_bytes());
    let mut out = Vec::new();
    put_bytes(&mut out, 1, &envoy_grpc);
    out
}

/// Most descriptor statuses read from one answer (one per descriptor sent; more is garbage).
const MAX_STATUSES: usize = 64;

/// Decodes a `RateLimitResponse`. Unknown fields are skipped, as protobuf readers do.
pub fn decode_response(bytes: &[u8]) -> Result<Answer, DecodeError> {
    let mut r = Wire::new(bytes);
    let mut overall = Code::Unknown;
    let mut statuses = Vec::new();
    while let Some((field, value)) = r.next().map_err(DecodeError)? {
        match (field, value) {
            (1, Field::Varint(v)) => overall = Code::of(v),
            (2, Field::Bytes(b)) if statuses.len() < MAX_STATUSES => {
                statuses.push(decode_status(b)?);
            }
            // Past the most an answer can mean: skipped.
            (2, Field::Bytes(_)) => {}
            (1 | 2, _) => return Err(DecodeError("field of the wrong type".into())),
            _ => {}
        }
    }
    Ok(Answer { overall, statuses })
}

fn decode_status(bytes: &[u8]) -> Result<DescriptorStatus, DecodeError> {
    let mut r = Wire::new(bytes);
    let mut s = DescriptorStatus {
        code: Code::Unknown,
        limit: None,
        remaining: 0,
        reset_secs: None,
    };
    while let Some((field, value)) = r.next().map_err(DecodeError)? {
        match (field, value) {
            (1, Field::Varint(v)) => s.code = Code::of(v),
            (2, Field::Bytes(b)) => {
                let mut lr = Wire::new(b);
                let (mut n, mut unit) = (0, None);
                while let Some((f, v)) = lr.next().map_err(DecodeError)? {
                    match (f, v) {
                        (1, Field::Varint(x)) => n = x,
                        (2, Field::Varint(x)) => unit = Unit::from_number(x),
                        _ => {}
                    }
                }
                s.limit = unit.map(|u| (n, u));
            }
            (3, Field::Varint(v)) => s.remaining = v,
            (4, Field::Bytes(b)) => {
                let mut dr = Wire::new(b);
                let (mut secs, mut nanos) = (0u64, 0u64);
                while let Some((f, v)) = dr.next().map_err(DecodeError)? {
                    match (f, v) {
                        (1, Field::Varint(x)) => secs = x,
                        (2, Field::Varint(x)) => nanos = x,
                        _ => {}
                    }
                }
                // Negative durations arrive as huge varints: read as none.
                s.reset_secs = (secs <= u64::from(u32::MAX))
                    .then(|| secs + u64::from(nanos > 0 && nanos < 1_000_000_000));
            }
            (1 | 3, _) | (2 | 4, Field::Varint(_)) => {
                return Err(DecodeError("field of the wrong type".into()))
            }
            _ => {}
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests;
