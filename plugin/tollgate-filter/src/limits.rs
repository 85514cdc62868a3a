//! Rate limits and bans in the filter: keys from the request, state in shared data under
//! compare-and-swap, so a limit holds across Envoy's workers. The arithmetic and the slot choice
//! are `tollgate_core::limits`; this module only reads and writes the slots.
//!
//! Slot keys: `tg/<edge>/rl/<limit>/<slot>` and `tg/<edge>/ban/<ban>/<slot>`. The fingerprint
//! seed is `tg/<edge>/seed`, written once per process (per `vm_id`) and read back by every worker.

use tollgate_core::limits::{
    choose_slot, fingerprint, slots, Admission, Ban, BanEntry, LimitEntry, RateLimit,
};

use crate::shared::{self, Read, Unavailable, Write};

/// Attempts of a compare-and-swap before the limit's failure mode applies.
const CAS_ATTEMPTS: usize = 8;

/// A slot as read: where, what, and its CAS (0 when the key does not exist yet).
struct Slot<E> {
    key: String,
    entry: E,
    cas: u32,
}

/// Reads the slots a fingerprint may use, stopping at its own or at one never written. (Slots
/// are taken in order and never deleted, so a key is never behind a never-written slot; an
/// expired slot is written with an empty entry and does not stop the scan.)
fn read_slots<E>(
    prefix: &str,
    fp: u64,
    max_keys: u32,
    decode: impl Fn(&[u8]) -> E,
    owner: impl Fn(&E) -> u64,
) -> Result<Vec<(u32, Slot<E>)>, Unavailable> {
    let mut out = Vec::new();
    for slot in slots(fp, max_keys) {
        let key = format!("{prefix}/{slot}");
        let (entry, cas) = match shared::get(&key)? {
            Read::Found(v, cas) => (decode(&v), cas),
            Read::Missing => (decode(&[]), 0),
        };
        let stop = owner(&entry) == fp || cas == 0;
        out.push((slot, Slot { key, entry, cas }));
        if stop {
            break;
        }
    }
    Ok(out)
}

/// What a rate-limit check found.
pub(crate) enum LimitOutcome {
    /// Admitted or refused by the arithmetic; `evicted` when a live key lost its slot.
    Checked { admission: Admission, evicted: bool },
    /// The store failed or CAS kept losing.
    Failed,
}

/// One GCRA step for `fp` against limit `l`, under compare-and-swap.
pub(crate) fn check(edge: &str, l: &RateLimit, fp: u64, cost: u64, now: u64) -> LimitOutcome {
    let prefix = format!("tg/{edge}/rl/{}", l.name);
    for _ in 0..CAS_ATTEMPTS {
        let Ok(read) = read_slots(&prefix, fp, l.max_keys, LimitEntry::decode, |e| {
            e.fingerprint
        }) else {
            return LimitOutcome::Failed;
        };
        let candidates: Vec<(u32, u64, bool, u64)> = read
            .iter()
            .map(|(i, s)| (*i, s.entry.fingerprint, s.entry.idle(now), s.entry.tat))
            .collect();
        let Some((slot, evicted)) = choose_slot(&candidates, fp) else {
            return LimitOutcome::Failed;
        };
        let Some((_, s)) = read.iter().find(|(i, _)| *i == slot) else {
            return LimitOutcome::Failed;
        };
        let tat = if s.entry.fingerprint == fp {
            s.entry.tat
        } else {
            0
        };
        let admission = l.admit(tat, now, cost);
        if !admission.allowed {
            // A refusal changes nothing: no write.
            return LimitOutcome::Checked {
                admission,
                evicted: false,
            };
        }
        let entry = LimitEntry {
            fingerprint: fp,
            tat: admission.tat,
        };
        match shared::set(&s.key, &entry.encode(), s.cas) {
            Ok(Write::Done) => return LimitOutcome::Checked { admission, evicted },
            Ok(Write::CasMismatch) => continue,
            Err(Unavailable) => return LimitOutcome::Failed,
        }
    }
    LimitOutcome::Failed
}

/// Whether `fp` is banned: `Ok(Some(seconds left))`, `Ok(None)`, or the store failed.
pub(crate) fn banned(edge: &str, b: &Ban, fp: u64, now: u64) -> Result<Option<u64>, Unavailable> {
    let prefix = format!("tg/{edge}/ban/{}", b.name);
    let read = read_slots(&prefix, fp, b.max_keys, BanEntry::decode, |e| e.fingerprint)?;
    Ok(read
        .iter()
        .find(|(_, s)| s.entry.fingerprint == fp)
        .and_then(|(_, s)| b.banned(&s.entry, now)))
}

/// What recording a counted response did.
pub(crate) struct Recorded {
    /// This response started a ban.
    pub(crate) started: bool,
    /// A live key lost its slot.
    pub(crate) evicted: bool,
}

/// Counts one response for `fp` under compare-and-swap.
pub(crate) fn record(edge: &str, b: &Ban, fp: u64, now: u64) -> Result<Recorded, Unavailable> {
    let prefix = format!("tg/{edge}/ban/{}", b.name);
    for _ in 0..CAS_ATTEMPTS {
        let read = read_slots(&prefix, fp, b.max_keys, BanEntry::decode, |e| e.fingerprint)?;
        let candidates: Vec<(u32, u64, bool, u64)> = read
            .iter()
            .map(|(i, s)| {
                let e = &s.entry;
                // Staleness: the later of its window start and its ban's end.
                let age = e.window_start.max(e.banned_until);
                (*i, e.fingerprint, e.idle(now, b.window), age)
            })
            .collect();
        let Some((slot, evicted)) = choose_slot(&candidates, fp) else {
            return Err(Unavailable);
        };
        let Some((_, s)) = read.iter().find(|(i, _)| *i == slot) else {
            return Err(Unavailable);
        };
        let current = if s.entry.fingerprint == fp {
            s.entry
        } else {
            BanEntry::default()
        };
        let (entry, started) = b.record(&current, fp, now);
        match shared::set(&s.key, &entry.encode(), s.cas)? {
            Write::Done => return Ok(Recorded { started, evicted }),
            Write::CasMismatch => continue,
        }
    }
    Err(Unavailable)
}

/// Expires idle keys of a rate limit, `count` slots from `start`; returns how many it expired.
/// Shared data has no delete: an expired slot holds an empty entry, free for the next key, and
/// the table never holds more than `max_keys` entries either way.
pub(crate) fn expire(edge: &str, l: &RateLimit, start: u32, count: u32, now: u64) -> u32 {
    let mut cleared = 0;
    for i in 0..count.min(l.max_keys) {
        let slot = (start.wrapping_add(i)) % l.max_keys.max(1);
        let key = format!("tg/{edge}/rl/{}/{slot}", l.name);
        if let Ok(Read::Found(v, cas)) = shared::get(&key) {
            let e = LimitEntry::decode(&v);
            if e.fingerprint != 0 && e.idle(now) {
                if let Ok(Write::Done) = shared::set(&key, &LimitEntry::default().encode(), cas) {
                    cleared += 1;
                }
            }
        }
    }
    cleared
}

/// The fingerprint seed shared by this process's workers: read it, or write one and read back
/// whatever won.
pub(crate) fn seed(edge: &str, candidate: u64) -> u64 {
    let key = format!("tg/{edge}/seed");
    let read = |k: &str| match shared::get(k) {
        Ok(Read::Found(v, _)) => <[u8; 8]>::try_from(v.as_slice())
            .ok()
            .map(u64::from_le_bytes),
        _ => None,
    };
    if let Some(s) = read(&key) {
        return s;
    }
    let _ = shared::set(&key, &candidate.to_le_bytes(), 0);
    read(&key).unwrap_or(candidate)
}

/// The fingerprint of a key under the seed.
pub(crate) fn fp(seed: u64, key: &[u8]) -> u64 {
    fingerprint(seed, key)
}
