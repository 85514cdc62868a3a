//! Enumeration: clients that sweep identifiers (a dealer pulling thousands of VINs, a client
//! walking order numbers). Per client key, the distinct values of a named identifier seen in a
//! window are counted, approximately and in bounded space, across Envoy's workers.
//!
//! Each client slot holds a bitmap of [`BITS`] bits: a value sets the bit its seeded hash picks,
//! and the number of distinct values is estimated from the zero bits by linear counting
//! (`m · ln(m / zeros)`), which corrects for two values sharing a bit. With 1024 bits the
//! estimate stays within a few percent up to about 2,000 values, so `max_distinct` is capped at
//! [`MAX_DISTINCT`]. A value already seen costs nothing. A new one past the limit locks the
//! client for the rest of its window: from then on every look-up is refused (`action: block`,
//! 429 with `Retry-After` until the window ends) or passed on marked (`action: flag`). Windows are fixed, starting at the client's first value. The slots live in
//! the same kind of pre-created shared-data blocks as the rate limits (see [`crate::limits`]).

use crate::limits::{FailureMode, KeyPart};
use crate::{Mode, Request, RuleId};

/// Bits of one client's bitmap.
pub const BITS: usize = 1024;
/// Largest `max_distinct` the bitmap estimates well.
pub const MAX_DISTINCT: u32 = 2000;
/// Bytes of one encoded slot: fingerprint, window start, bitmap.
pub const ENTRY_BYTES: usize = 16 + BITS / 8;

/// Where the counted identifier is read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ValueSource {
    /// A path parameter of the route's template.
    PathParam(String),
    /// A query parameter.
    Query(String),
    /// A request header.
    Header(String),
    /// A top-level string member of a JSON body.
    BodyField(String),
}

/// One `enumeration` rule.
#[derive(Clone, Debug)]
pub struct Enumeration {
    /// Its name (metric-safe).
    pub name: String,
    /// The rule its hits count under.
    pub rule: RuleId,
    /// Enforce refuses (`action: block`); shadow passes the request on marked (`action: flag`).
    pub mode: Mode,
    /// Who is counted.
    pub key: Vec<KeyPart>,
    /// What is counted.
    pub value: ValueSource,
    /// Route indices it applies to.
    pub routes: Vec<usize>,
    /// Distinct values a client may look up per window.
    pub max_distinct: u32,
    /// Window length, in nanoseconds.
    pub window: u64,
    /// Slots (clients tracked at once).
    pub max_keys: u32,
    /// What happens when the state cannot be read or written.
    pub on_failure: FailureMode,
}

/// One client's slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnumEntry {
    /// The client key's fingerprint (0: free).
    pub fingerprint: u64,
    /// When the window started (ns).
    pub window_start: u64,
    /// The bitmap.
    pub bits: [u64; BITS / 64],
    /// The client went past the limit in this window: every look-up is over until it ends.
    pub locked: bool,
}

impl Default for EnumEntry {
    fn default() -> Self {
        EnumEntry {
            fingerprint: 0,
            window_start: 0,
            bits: [0; BITS / 64],
            locked: false,
        }
    }
}

/// The top bit of the encoded window start carries the lock (times in ns stay below 2^63).
const LOCK: u64 = 1 << 63;

impl EnumEntry {
    /// Little-endian bytes.
    pub fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut out = [0u8; ENTRY_BYTES];
        let start = if self.locked {
            self.window_start | LOCK
        } else {
            self.window_start & !LOCK
        };
        let words = [self.fingerprint, start]
            .into_iter()
            .chain(self.bits.iter().copied());
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// From bytes; anything short or garbled reads as free.
    pub fn decode(b: &[u8]) -> EnumEntry {
        if b.len() != ENTRY_BYTES {
            return EnumEntry::default();
        }
        let mut words = b
            .chunks_exact(8)
            .map(|c| <[u8; 8]>::try_from(c).map_or(0, u64::from_le_bytes));
        let fingerprint = words.next().unwrap_or(0);
        let start = words.next().unwrap_or(0);
        let mut bits = [0u64; BITS / 64];
        for (slot, w) in bits.iter_mut().zip(words) {
            *slot = w;
        }
        EnumEntry {
            fingerprint,
            window_start: start & !LOCK,
            bits,
            locked: start & LOCK != 0,
        }
    }

    /// Free, or its window is over.
    pub fn idle(&self, now: u64, window: u64) -> bool {
        self.fingerprint == 0 || now >= self.window_start.saturating_add(window)
    }

    /// Estimated distinct values (linear counting).
    pub fn distinct(&self) -> u32 {
        let ones: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        let m = BITS as f64;
        let zeros = (BITS as u32).saturating_sub(ones);
        if zeros == 0 {
            return (m * m.ln()).round() as u32;
        }
        (m * (m / f64::from(zeros)).ln()).round() as u32
    }

    fn has(&self, bit: usize) -> bool {
        self.bits
            .get(bit / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    fn set(&mut self, bit: usize) {
        if let Some(w) = self.bits.get_mut(bit / 64) {
            *w |= 1 << (bit % 64);
        }
    }
}

/// What one observation decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The value is new and takes the client past `max_distinct`.
    pub over: bool,
    /// The slot with the value recorded; `None` when nothing changes (a value already seen).
    pub next: Option<EnumEntry>,
    /// Distinct values counting this one.
    pub distinct: u32,
    /// Seconds until the client's window ends.
    pub retry_after: u64,
}

impl Enumeration {
    /// Whether it applies to the route.
    pub fn applies(&self, route: Option<usize>) -> bool {
        route.is_some_and(|r| self.routes.contains(&r))
    }

    /// Records `value_hash` for the client whose slot is `entry` (fingerprint `fp`) at `now`.
    pub fn observe(&self, entry: &EnumEntry, fp: u64, value_hash: u64, now: u64) -> Observed {
        let cur = if entry.fingerprint == fp && !entry.idle(now, self.window) {
            *entry
        } else {
            EnumEntry {
                fingerprint: fp,
                window_start: now,
                ..EnumEntry::default()
            }
        };
        let ends = cur.window_start.saturating_add(self.window);
        let retry_after = ends.saturating_sub(now).div_ceil(1_000_000_000).max(1);
        let observed = |over, next, distinct| Observed {
            over,
            next,
            distinct,
            retry_after,
        };
        if cur.locked {
            return observed(true, None, cur.distinct());
        }
        let bit = (value_hash % BITS as u64) as usize;
        if cur.has(bit) {
            return observed(false, None, cur.distinct());
        }
        let mut added = cur;
        added.set(bit);
        let distinct = added.distinct();
        if distinct <= self.max_distinct {
            return observed(false, Some(added), distinct);
        }
        // Past the limit, the client stays over until its window ends: the bitmap cannot tell a
        // value seen before from a new one that shares its bit, so without the lock a sweep
        // would keep getting through at the rate bits are set. Blocking records the lock, not
        // the refused value; flagging records both.
        let mut locked = if self.mode == Mode::Enforce {
            cur
        } else {
            added
        };
        locked.locked = true;
        observed(true, Some(locked), distinct)
    }

    /// The identifier in a request: trimmed, ASCII upper case (VINs and order numbers are case
    /// blind), at most 256 bytes; `None` when the request has none.
    pub fn value_of(
        &self,
        req: &Request<'_>,
        path_params: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Option<Vec<u8>> {
        let raw: Vec<u8> = match &self.value {
            ValueSource::PathParam(name) => {
                let (_, v) = path_params.iter().find(|(n, _)| n == name)?;
                crate::validate::percent_decode(v, false)?.into_bytes()
            }
            ValueSource::Query(name) => {
                let query = req.path.split_once('?').map(|(_, q)| q)?;
                query.split('&').find_map(|pair| {
                    let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let n = crate::validate::percent_decode(n, true)?;
                    (n == *name)
                        .then(|| crate::validate::percent_decode(v, true))
                        .flatten()
                })?
            }
            .into_bytes(),
            ValueSource::Header(name) => req.header(name)?.to_vec(),
            ValueSource::BodyField(field) => match body?.get(field)? {
                serde_json::Value::String(s) => s.clone().into_bytes(),
                serde_json::Value::Number(n) => n.to_string().into_bytes(),
                _ => return None,
            },
        };
        let v = raw.trim_ascii();
        if v.is_empty() {
            return None;
        }
        Some(v.iter().take(256).map(u8::to_ascii_uppercase).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max: u32) -> Enumeration {
        Enumeration {
            name: "t".into(),
            rule: RuleId(0),
            mode: Mode::Enforce,
            key: vec![KeyPart::ClientIp],
            value: ValueSource::PathParam("vin".into()),
            routes: vec![0],
            max_distinct: max,
            window: 3_600_000_000_000,
            max_keys: 16,
            on_failure: FailureMode::Open,
        }
    }

    fn hash(i: u64) -> u64 {
        crate::limits::fingerprint(7, &i.to_le_bytes())
    }

    #[test]
    fn counts_distinct_values_and_refuses_past_the_limit() {
        let r = rule(200);
        let mut e = EnumEntry::default();
        let mut first_over = None;
        for i in 0..400u64 {
            let o = r.observe(&e, 42, hash(i), 1_000);
            if o.over && first_over.is_none() {
                first_over = Some(i);
            }
            if !o.over {
                if let Some(n) = o.next {
                    e = n;
                }
            }
            // Repeating a value already seen never counts.
            assert_eq!(r.observe(&e, 42, hash(0), 1_000).next, None);
        }
        let at = first_over.unwrap();
        assert!(
            (190..=215).contains(&at),
            "refused from the {at}th distinct value"
        );
        assert_eq!(EnumEntry::decode(&e.encode()), e);
    }

    #[test]
    fn estimate_is_close_over_the_allowed_range() {
        for n in [10u64, 100, 500, 1000, 2000] {
            let mut e = EnumEntry::default();
            for i in 0..n {
                e.set((hash(i + n * 1_000_000) % BITS as u64) as usize);
            }
            let d = f64::from(e.distinct());
            let err = (d - n as f64).abs() / n as f64;
            assert!(err < 0.1, "{n}: estimated {d}");
        }
    }

    #[test]
    fn windows_end_and_other_clients_start_fresh() {
        let r = rule(1);
        let e = r
            .observe(&EnumEntry::default(), 42, hash(1), 0)
            .next
            .unwrap();
        assert!(r.observe(&e, 42, hash(2), 10).over);
        assert_eq!(r.observe(&e, 42, hash(2), 10).retry_after, 3600);
        // After the window, or for another client, the slot starts over.
        assert!(!r.observe(&e, 42, hash(2), r.window).over);
        assert!(!r.observe(&e, 43, hash(2), 10).over);
    }

    #[test]
    fn past_the_limit_the_client_is_locked_until_its_window_ends() {
        let r = rule(1);
        let e = r
            .observe(&EnumEntry::default(), 42, hash(1), 0)
            .next
            .unwrap();
        let o = r.observe(&e, 42, hash(2), 10);
        let locked = o.next.unwrap();
        assert!(o.over && locked.locked);
        // Blocking records the lock, not the refused value.
        assert_eq!(locked.bits, e.bits);
        assert_eq!(EnumEntry::decode(&locked.encode()), locked);
        // Now even the value seen before is over, and nothing more is written.
        let again = r.observe(&locked, 42, hash(1), 20);
        assert!(again.over);
        assert_eq!(again.next, None);
        // A new window starts unlocked.
        assert!(!r.observe(&locked, 42, hash(1), r.window).over);
    }
}
