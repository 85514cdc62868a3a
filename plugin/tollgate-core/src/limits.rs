//! Rate limits and response-driven bans: what the policy says, how a request's key is formed,
//! and the arithmetic. Time is passed in and state is passed in and out as bytes, so all of it
//! is pure; the filter keeps the state in proxy-wasm shared data (compare-and-swap), which makes
//! a limit hold across Envoy's workers.
//!
//! A limit is a GCRA (generic cell rate algorithm): one timestamp per key, the theoretical
//! arrival time (TAT). With emission interval `T = period / requests` and burst `B`, a request
//! of cost `c` arriving at `now` is admitted when `max(TAT, now) + c·T − now ≤ B·T`, and then
//! TAT becomes `max(TAT, now) + c·T`. Over a time `t` a key is admitted at most `B + t/T`
//! requests: the configured rate, plus the burst.
//!
//! State is bounded: each limit (and ban) owns a table of `max_keys` slots, stored in shared data
//! as blocks of [`BLOCK`] slots, one shared-data key per block. A key hashes to a block and may
//! use any of [`WAYS`] slots in it; a free or idle one is taken first, otherwise the stalest is
//! evicted (and counted). Shared data has no delete in the ABI, so the table itself is the
//! ceiling: it never holds more than `max_keys` entries.
//!
//! Every block is created when the policy is configured, before any request, because the ABI's
//! compare-and-swap cannot protect the creation of a key (a write to a missing key always
//! succeeds): two workers creating the same slot at once would lose an update. Afterwards every
//! write is a compare-and-swap on an existing block.

use std::net::IpAddr;

use crate::{Mode, Request, RuleId};

/// Slots a key may use in its block, starting at its hash.
pub const WAYS: usize = 4;

/// Slots per shared-data key: small enough that a request copies little (16 × 16 bytes for a
/// rate limit), large enough that a table of 100,000 keys is 6,250 shared-data entries.
pub const BLOCK: usize = 16;

/// One part of a limit's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// The client address (as the policy's `client_ip` settings determine it).
    ClientIp,
    /// A request header's value, e.g. an API key or `x-dealer-id`.
    Header(String),
    /// A claim of a JWT that Envoy's `jwt_authn` verified and forwarded as its payload in
    /// `header` (`forward_payload_header`: base64url JSON).
    Claim {
        /// The header `jwt_authn` writes the payload to.
        header: String,
        /// The top-level claim, e.g. `sub`.
        claim: String,
    },
    /// The mTLS peer's identity: the URI SAN of its certificate (Envoy's
    /// `connection.uri_san_peer_certificate`).
    PeerIdentity,
    /// A top-level string field of the JSON request body (e.g. the account a login names),
    /// trimmed and lower-cased; requests without it share one bucket. The filter holds the
    /// request until the body is in, reading at most [`MAX_KEYED_BODY`] bytes (a larger body is
    /// refused with 413).
    BodyField(String),
}

/// Largest request body read to find a body-field key.
pub const MAX_KEYED_BODY: usize = 16 * 1024;

/// What a limit does when its state cannot be read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureMode {
    /// Let the request through (counted).
    Open,
    /// Refuse it with 503 (counted).
    Closed,
}

/// A compiled rate limit.
#[derive(Clone, Debug)]
pub struct RateLimit {
    /// Metric-safe name.
    pub name: String,
    /// Its rule (for the per-rule counters and problem bodies).
    pub rule: RuleId,
    /// Enforce or shadow.
    pub mode: Mode,
    /// The key's parts; a request lacking any part is not limited by this limit.
    pub key: Vec<KeyPart>,
    /// Requests per `period_secs`, as configured.
    pub requests: u64,
    /// The period, in seconds.
    pub period_secs: u64,
    /// Emission interval `T`, in nanoseconds.
    pub interval: u64,
    /// Burst `B`: requests admitted at once from a fresh key.
    pub burst: u64,
    /// Routes it applies to, with each route's cost; `None`: every route, cost `cost`.
    pub routes: Option<Vec<(usize, u64)>>,
    /// Cost of a request on a route listed without a cost (or on any route).
    pub cost: u64,
    /// Slots in its table.
    pub max_keys: u32,
    /// What to do when shared data fails.
    pub on_failure: FailureMode,
}

/// The outcome of one GCRA step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The TAT to store (unchanged when refused).
    pub tat: u64,
    /// Requests still admissible right now (the `r` of the `RateLimit` header).
    pub remaining: u64,
    /// Seconds until the key is back to a full burst (the `t` of the `RateLimit` header).
    pub reset_secs: u64,
    /// When refused: seconds until this request would be admitted (`Retry-After`, at least 1).
    pub retry_after_secs: u64,
}

const NANOS: u64 = 1_000_000_000;

fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS)
}

impl RateLimit {
    /// The cost of a request on `route`, or `None` if the limit does not apply there.
    pub fn cost_on(&self, route: Option<usize>) -> Option<u64> {
        match (&self.routes, route) {
            (None, _) => Some(self.cost),
            (Some(list), Some(r)) => list.iter().find(|(i, _)| *i == r).map(|(_, c)| *c),
            (Some(_), None) => None,
        }
    }

    /// One GCRA step for a key whose stored TAT is `tat` (0 for a fresh key).
    pub fn admit(&self, tat: u64, now: u64, cost: u64) -> Admission {
        let capacity = self.burst.saturating_mul(self.interval);
        let base = tat.max(now);
        let next = base.saturating_add(cost.saturating_mul(self.interval));
        let ahead = next - now;
        if ahead <= capacity {
            let remaining = (capacity - ahead) / self.interval.max(1);
            Admission {
                allowed: true,
                tat: next,
                remaining,
                reset_secs: ceil_secs(ahead),
                retry_after_secs: 0,
            }
        } else {
            let current = base - now;
            Admission {
                allowed: false,
                tat,
                remaining: capacity.saturating_sub(current) / self.interval.max(1),
                reset_secs: ceil_secs(current),
                retry_after_secs: ceil_secs(ahead - capacity).max(1),
            }
        }
    }

    /// The `RateLimit-Policy` member for this limit: quota = burst, window = the time to earn a
    /// full burst back (draft-ietf-httpapi-ratelimit-headers, structured fields).
    pub fn policy_header(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name,
            self.burst,
            ceil_secs(self.burst.saturating_mul(self.interval)).max(1)
        )
    }

    /// The `RateLimit` member after an admission.
    pub fn state_header(&self, a: &Admission) -> String {
        format!("\"{}\";r={};t={}", self.name, a.remaining, a.reset_secs)
    }
}

/// A compiled response-driven ban: too many responses with given statuses for one key within a
/// window bans the key for a while.
#[derive(Clone, Debug)]
pub struct Ban {
    /// Metric-safe name.
    pub name: String,
    /// Its rule.
    pub rule: RuleId,
    /// Enforce or shadow.
    pub mode: Mode,
    /// The key's parts.
    pub key: Vec<KeyPart>,
    /// Routes whose responses count and whose requests a ban refuses; `None`: every route.
    pub routes: Option<Vec<usize>>,
    /// Response statuses that count.
    pub statuses: Vec<u16>,
    /// Counted responses within `window` that trigger a ban.
    pub threshold: u32,
    /// The counting window, in nanoseconds.
    pub window: u64,
    /// How long a ban lasts, in nanoseconds.
    pub duration: u64,
    /// Slots in its table.
    pub max_keys: u32,
    /// What to do when shared data fails.
    pub on_failure: FailureMode,
}

impl Ban {
    /// Whether the ban applies to `route`.
    pub fn applies(&self, route: Option<usize>) -> bool {
        match (&self.routes, route) {
            (None, _) => true,
            (Some(list), Some(r)) => list.contains(&r),
            (Some(_), None) => false,
        }
    }

    /// Whether a response status counts.
    pub fn counts(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }

    /// If the key is banned at `now`: seconds until the ban ends.
    pub fn banned(&self, entry: &BanEntry, now: u64) -> Option<u64> {
        (entry.banned_until > now).then(|| ceil_secs(entry.banned_until - now).max(1))
    }

    /// Counts one response; returns the new entry and whether this response started a ban.
    pub fn record(&self, entry: &BanEntry, fingerprint: u64, now: u64) -> (BanEntry, bool) {
        let mut e = if entry.fingerprint == fingerprint
            && now.saturating_sub(entry.window_start) < self.window
        {
            *entry
        } else {
            BanEntry {
                fingerprint,
                window_start: now,
                count: 0,
                banned_until: if entry.fingerprint == fingerprint {
                    entry.banned_until
                } else {
                    0
                },
            }
        };
        e.count = e.count.saturating_add(1);
        let mut started = false;
        if e.count >= self.threshold && e.banned_until <= now {
            e.banned_until = now.saturating_add(self.duration);
            e.count = 0;
            e.window_start = now;
            started = true;
        }
        (e, started)
    }
}

/// A rate-limit slot: whose it is and its TAT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitEntry {
    /// The key's fingerprint (0: free).
    pub fingerprint: u64,
    /// Theoretical arrival time, nanoseconds.
    pub tat: u64,
}

impl LimitEntry {
    /// 16 bytes, little-endian.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.fingerprint.to_le_bytes());
        out[8..].copy_from_slice(&self.tat.to_le_bytes());
        out
    }

    /// Reads what `encode` wrote; anything else is a free slot.
    pub fn decode(b: &[u8]) -> LimitEntry {
        match (u64_at(b, 0), u64_at(b, 8)) {
            (Some(fingerprint), Some(tat)) if b.len() == 16 => LimitEntry { fingerprint, tat },
            _ => LimitEntry::default(),
        }
    }

    /// Idle: its TAT has passed, so it holds a full burst, as a fresh key would.
    pub fn idle(&self, now: u64) -> bool {
        self.fingerprint == 0 || self.tat <= now
    }
}

/// A ban slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BanEntry {
    /// The key's fingerprint (0: free).
    pub fingerprint: u64,
    /// Start of the counting window.
    pub window_start: u64,
    /// Counted responses in the window.
    pub count: u32,
    /// Banned until (0: not banned).
    pub banned_until: u64,
}

impl BanEntry {
    /// 28 bytes, little-endian.
    pub fn encode(&self) -> [u8; 28] {
        let mut out = [0u8; 28];
        out[..8].copy_from_slice(&self.fingerprint.to_le_bytes());
        out[8..16].copy_from_slice(&self.window_start.to_le_bytes());
        out[16..20].copy_from_slice(&self.count.to_le_bytes());
        out[20..].copy_from_slice(&self.banned_until.to_le_bytes());
        out
    }

    /// Reads what `encode` wrote; anything else is a free slot.
    pub fn decode(b: &[u8]) -> BanEntry {
        let count = b
            .get(16..20)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_le_bytes);
        match (u64_at(b, 0), u64_at(b, 8), count, u64_at(b, 20)) {
            (Some(fingerprint), Some(window_start), Some(count), Some(banned_until))
                if b.len() == 28 =>
            {
                BanEntry {
                    fingerprint,
                    window_start,
                    count,
                    banned_until,
                }
            }
            _ => BanEntry::default(),
        }
    }

    /// Idle: not banned and its window is over.
    pub fn idle(&self, now: u64, window: u64) -> bool {
        self.fingerprint == 0
            || (self.banned_until <= now && now.saturating_sub(self.window_start) >= window)
    }
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
}

/// Which slot a key takes among the candidates read so far, each `(slot, fingerprint, idle)`:
/// its own if present, else the first idle one, else the stalest (`age` smallest = evict).
/// Returns the slot and whether taking it evicts a live key.
pub fn choose_slot(candidates: &[(u32, u64, bool, u64)], fingerprint: u64) -> Option<(u32, bool)> {
    if let Some(c) = candidates.iter().find(|c| c.1 == fingerprint) {
        return Some((c.0, false));
    }
    if let Some(c) = candidates.iter().find(|c| c.2) {
        return Some((c.0, false));
    }
    candidates.iter().min_by_key(|c| c.3).map(|c| (c.0, true))
}

/// Number of blocks of a table of `max_keys` slots.
pub fn blocks(max_keys: u32) -> u32 {
    (max_keys.max(1) as usize).div_ceil(BLOCK) as u32
}

/// Slots in block `block` of a table of `max_keys` (the last block may be short).
pub fn block_len(block: u32, max_keys: u32) -> usize {
    let start = block as usize * BLOCK;
    (max_keys as usize).saturating_sub(start).clamp(1, BLOCK)
}

/// The block a fingerprint lives in, and the slots (indices in that block) it may use.
pub fn place(fingerprint: u64, max_keys: u32) -> (u32, Vec<usize>) {
    let n = u64::from(blocks(max_keys));
    let block = (fingerprint % n) as u32;
    let len = block_len(block, max_keys);
    let base = ((fingerprint / n) % len as u64) as usize;
    let ways = (0..WAYS.min(len)).map(|w| (base + w) % len).collect();
    (block, ways)
}

/// Encodes a block of entries, each `size` bytes.
pub fn encode_block<const N: usize>(entries: &[[u8; N]]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.iter().copied()).collect()
}

/// Splits a block into its entries' bytes; a block of the wrong size reads as `len` free slots.
pub fn split_block(bytes: &[u8], size: usize, len: usize) -> Vec<&[u8]> {
    if bytes.len() == size * len {
        bytes.chunks(size).collect()
    } else {
        vec![&[][..]; len]
    }
}

/// 64-bit FNV-1a of the key under a per-process seed, never 0 (0 marks a free slot). Keys come
/// from clients, so the seed (random per Envoy process, shared by its workers) keeps an outsider
/// from aiming collisions at someone else's slot.
pub fn fingerprint(seed: u64, key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Finalise (splitmix64) so the low bits used for the slot are well mixed.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h.max(1)
}

/// What the filter knows beyond the request headers when forming keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyContext<'a> {
    /// The client address, if determined.
    pub client: Option<IpAddr>,
    /// The mTLS peer's URI SAN, if any.
    pub peer_identity: Option<&'a str>,
    /// The request body parsed as JSON, if the body was read and is JSON.
    pub body: Option<&'a serde_json::Value>,
}

/// Largest JWT payload header read for a claim.
const MAX_PAYLOAD: usize = 8 * 1024;

/// The key of a request for these parts, or `None` if any part is missing. Parts are joined
/// with a byte that cannot occur in header values (0x1f).
pub fn key_of(parts: &[KeyPart], req: &Request<'_>, cx: &KeyContext<'_>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0x1f);
        }
        match part {
            KeyPart::ClientIp => out.extend_from_slice(cx.client?.to_string().as_bytes()),
            KeyPart::Header(name) => {
                let v = req.header(name)?;
                if v.is_empty() {
                    return None;
                }
                out.extend_from_slice(v);
            }
            KeyPart::Claim { header, claim } => {
                let v = req.header(header)?;
                out.extend_from_slice(&claim_value(v, claim)?);
            }
            KeyPart::PeerIdentity => {
                let id = cx.peer_identity.filter(|s| !s.is_empty())?;
                out.extend_from_slice(id.as_bytes());
            }
            KeyPart::BodyField(field) => {
                // A body without the field (or none at all, or not JSON) shares one bucket:
                // leaving the field out must not be a way around the limit.
                match cx
                    .body
                    .and_then(|b| b.get(field))
                    .and_then(|v| v.as_str())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                {
                    Some(v) => out.extend_from_slice(v.to_lowercase().as_bytes()),
                    None => out.extend_from_slice(b"\x00(missing)"),
                }
            }
        }
    }
    Some(out)
}

/// A top-level claim of a base64url-encoded JSON payload, as text (strings as they are,
/// numbers as written).
pub(crate) fn claim_value(payload_b64: &[u8], claim: &str) -> Option<Vec<u8>> {
    if payload_b64.len() > MAX_PAYLOAD {
        return None;
    }
    let json = base64url_decode(payload_b64)?;
    let v: serde_json::Value = serde_json::from_slice(&json).ok()?;
    match v.get(claim)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.as_bytes().to_vec()),
        serde_json::Value::Number(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// base64url without padding (padding and standard alphabet tolerated).
fn base64url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
