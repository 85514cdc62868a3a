//! libinjection's verdicts, remembered across requests.
//!
//! `@detectSQLi` and `@detectXSS` cost more than any other operator (tens of microseconds on a
//! browser's User-Agent), and the values they read repeat from one request to the next: the
//! same browsers, the same Referers, the same cookies. The verdict depends on the bytes alone,
//! so a small table keyed by the bytes themselves (compared in full, never by hash alone)
//! returns it without tokenising again. The table is bounded: a fixed number of slots, values
//! up to a fixed length, each slot overwritten by the next value that hashes to it. A client
//! that sends a new value every time only misses, and pays what it would without the table.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Mutex;

/// How many values the table holds.
const SLOTS: usize = 512;
/// The longest value it holds (longer ones are tokenised every time).
pub(super) const MAX_LEN: usize = 512;

/// Which detector a verdict is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Detector {
    Sqli,
    Xss,
}

#[derive(Debug)]
struct Slot {
    detector: Detector,
    value: Vec<u8>,
    /// `None`: not an injection; `Some(capture)`: an injection, with what the operator
    /// captures (the SQL fingerprint, or the value).
    verdict: Option<Vec<u8>>,
}

/// The table (one per compiled rule set, shared by every request of its VM or process).
#[derive(Debug)]
pub(super) struct Memo {
    slots: Mutex<Vec<Option<Slot>>>,
    /// Keyed, so that which values share a slot is not known in advance.
    hasher: RandomState,
}

impl Default for Memo {
    fn default() -> Memo {
        Memo {
            slots: Mutex::new(Vec::new()),
            hasher: RandomState::new(),
        }
    }
}

impl Memo {
    /// Forgets every value.
    pub(super) fn clear(&self) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.clear();
        }
    }

    /// The verdict on `value`, from the table or from `detect` (then remembered).
    pub(super) fn get_or(
        &self,
        detector: Detector,
        value: &[u8],
        detect: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        if value.len() > MAX_LEN {
            return detect(value);
        }
        let at = (self.hasher.hash_one((detector as u8, value)) as usize) % SLOTS;
        if let Ok(slots) = self.slots.lock() {
            if let Some(Some(s)) = slots.get(at) {
                if s.detector == detector && s.value == value {
                    return s.verdict.clone();
                }
            }
        }
        let verdict = detect(value);
        if let Ok(mut slots) = self.slots.lock() {
            if slots.len() < SLOTS {
                slots.resize_with(SLOTS, || None);
            }
            if let Some(s) = slots.get_mut(at) {
                *s = Some(Slot {
                    detector,
                    value: value.to_vec(),
                    verdict: verdict.clone(),
                });
            }
        }
        verdict
    }

    /// How many values the table holds now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots
            .lock()
            .map_or(0, |s| s.iter().filter(|x| x.is_some()).count())
    }
}

/// How many values [`Misses`] holds.
const MISS_SLOTS: usize = 1024;
/// Slots per set: a value may sit in any of the [`WAYS`] slots of the set its hash names, and
/// the least recently used one gives way. With one slot per set, two values of the same
/// request that hash to the same slot evicted each other on every request (a request of 30
/// values met such a pair one run in three).
const WAYS: usize = 4;

/// What the rules said of values seen before: per value, the links known not to match it.
///
/// A link whose operator reads nothing but the value (a pattern, a phrase list, libinjection, a
/// byte range; no `%{...}` argument, no `multiMatch`) gives the same answer on the same bytes
/// whatever the request, through the same transformations. So once a value has been tested
/// by such a link and did not match, the next request that carries the same bytes (a
/// browser's User-Agent, Accept headers, a Referer, cookies, the same query arguments) skips
/// the link on it: no transformation, no prefilter pass, no pattern. Matches are not kept: a
/// value that matched is tested again, so what a match records (captures, the matched value)
/// is always computed. Values are compared in full, never by hash alone, so a client cannot
/// make another value's misses its own; a client that sends new values only misses here.
///
/// The table is bounded like [`Memo`]: a fixed number of slots, values up to [`MAX_LEN`]
/// bytes, in sets of [`WAYS`] slots, the set's least recently used slot taken by a new value.
/// One table per compiled rule set: a push compiles a new one, empty.
#[derive(Debug)]
pub(super) struct Misses {
    slots: Mutex<MissTable>,
    /// Fast (every value a request carries is hashed once) and seeded per table, weakly in
    /// wasm (from addresses): a value made to collide only evicts another from its slot, it
    /// never takes its misses (values are compared in full). The slot comes from the hash's
    /// high bits; foldhash's low bits are weak.
    hasher: foldhash::fast::RandomState,
}

#[derive(Debug, Default)]
struct MissTable {
    slots: Vec<Option<MissSlot>>,
    /// Counts uses: a slot's `used` is the count at its last use.
    clock: u64,
}

#[derive(Debug)]
struct MissSlot {
    value: Vec<u8>,
    /// Link gids, one bit each.
    missed: Vec<u64>,
    used: u64,
}

/// The slots of the set `key` names.
fn set_of(key: u64) -> std::ops::Range<usize> {
    let set = ((key >> 40) as usize) % (MISS_SLOTS / WAYS);
    set * WAYS..(set + 1) * WAYS
}

impl Default for Misses {
    fn default() -> Misses {
        Misses {
            slots: Mutex::new(MissTable::default()),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl Misses {
    /// Forgets every value.
    pub(super) fn clear(&self) {
        if let Ok(mut table) = self.slots.lock() {
            table.slots.clear();
        }
    }

    /// The key of `value` (`None`: too long to keep).
    pub(super) fn key(&self, value: &[u8]) -> Option<u64> {
        (value.len() <= MAX_LEN).then(|| self.hasher.hash_one(value))
    }

    /// ORs the misses known for `value` (key `key`) into `out`.
    pub(super) fn load(&self, key: u64, value: &[u8], out: &mut [u64]) {
        let Ok(mut table) = self.slots.lock() else {
            return;
        };
        table.clock += 1;
        let now = table.clock;
        let Some(set) = table.slots.get_mut(set_of(key)) else {
            return;
        };
        if let Some(s) = set.iter_mut().flatten().find(|s| s.value == value) {
            s.used = now;
            for (o, m) in out.iter_mut().zip(&s.missed) {
                *o |= *m;
            }
        }
    }

    /// Keeps `missed` as what is known of `value` (merged with what the slot knows of the
    /// same bytes; another value's slot is taken over).
    pub(super) fn store(&self, key: u64, value: &[u8], missed: &[u64]) {
        if value.len() > MAX_LEN {
            return;
        }
        let Ok(mut table) = self.slots.lock() else {
            return;
        };
        if table.slots.len() < MISS_SLOTS {
            table.slots.resize_with(MISS_SLOTS, || None);
        }
        table.clock += 1;
        let now = table.clock;
        let Some(set) = table.slots.get_mut(set_of(key)) else {
            return;
        };
        if let Some(s) = set.iter_mut().flatten().find(|s| s.value == value) {
            if s.missed.len() < missed.len() {
                s.missed.resize(missed.len(), 0);
            }
            for (m, n) in s.missed.iter_mut().zip(missed) {
                *m |= *n;
            }
            s.used = now;
            return;
        }
        // An empty slot of the set, else its least recently used.
        let victim = set
            .iter_mut()
            .min_by_key(|s| s.as_ref().map_or(0, |s| s.used.max(1)));
        if let Some(slot) = victim {
            *slot = Some(MissSlot {
                value: value.to_vec(),
                missed: missed.to_vec(),
                used: now,
            });
        }
    }

    /// How many values the table holds now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots
            .lock()
            .map_or(0, |t| t.slots.iter().filter(|x| x.is_some()).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_is_computed_once_per_value_and_detector() {
        let memo = Memo::default();
        let mut calls = 0;
        let mut ask = |d, v: &[u8]| {
            memo.get_or(d, v, |_| {
                calls += 1;
                (v == b"1' or '1'='1").then(|| b"s&sos".to_vec())
            })
        };
        assert_eq!(
            ask(Detector::Sqli, b"1' or '1'='1"),
            Some(b"s&sos".to_vec())
        );
        assert_eq!(
            ask(Detector::Sqli, b"1' or '1'='1"),
            Some(b"s&sos".to_vec())
        );
        assert_eq!(ask(Detector::Sqli, b"Mozilla/5.0"), None);
        assert_eq!(ask(Detector::Sqli, b"Mozilla/5.0"), None);
        // The other detector's verdict on the same bytes is its own.
        assert_eq!(ask(Detector::Xss, b"Mozilla/5.0"), None);
        assert_eq!(calls, 3);
    }

    #[test]
    fn the_table_stays_bounded() {
        let memo = Memo::default();
        for i in 0..(SLOTS * 8) {
            memo.get_or(Detector::Xss, format!("value {i}").as_bytes(), |_| None);
        }
        assert!(memo.len() <= SLOTS);
        let long = vec![b'a'; MAX_LEN + 1];
        let mut calls = 0;
        for _ in 0..3 {
            memo.get_or(Detector::Xss, &long, |_| {
                calls += 1;
                None
            });
        }
        assert_eq!(calls, 3, "a value over the length limit is never kept");
    }

    #[test]
    fn misses_are_kept_per_value_and_merged() {
        let m = Misses::default();
        let ua = b"Mozilla/5.0 (X11; Linux x86_64)";
        let k = m.key(ua).unwrap_or_default();
        m.store(k, ua, &[0b0101, 0]);
        m.store(k, ua, &[0b0010, 1]);
        let mut out = [0u64; 2];
        m.load(k, ua, &mut out);
        assert_eq!(out, [0b0111, 1]);
        // Another value, even one that claims the same key, learns nothing from this one.
        let mut other = [0u64; 2];
        m.load(k, b"Mozilla/5.0 (X11; Linux x86_64)!", &mut other);
        assert_eq!(other, [0, 0]);
        // A value over the length limit has no key and is never kept.
        let long = vec![b'a'; MAX_LEN + 1];
        assert_eq!(m.key(&long), None);
        m.store(7, &long, &[1]);
        let mut none = [0u64; 1];
        m.load(7, &long, &mut none);
        assert_eq!(none, [0]);
    }

    #[test]
    fn values_of_one_set_do_not_evict_each_other() {
        let m = Misses::default();
        // WAYS + 1 values whose keys name the same set.
        let mut same: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut first = None;
        for i in 0..200_000 {
            let v = format!("value {i}").into_bytes();
            let k = m.key(&v).unwrap_or_default();
            let set = set_of(k);
            if *first.get_or_insert(set.clone()) == set {
                same.push((v, k));
            }
            if same.len() == WAYS + 1 {
                break;
            }
        }
        assert_eq!(same.len(), WAYS + 1);
        for (i, (v, k)) in same.iter().take(WAYS).enumerate() {
            m.store(*k, v, &[1 << i]);
        }
        for (i, (v, k)) in same.iter().take(WAYS).enumerate() {
            let mut out = [0u64; 1];
            m.load(*k, v, &mut out);
            assert_eq!(out, [1 << i], "value {i} of the set is kept");
        }
        // The first is used again: the second is now the least recently used.
        let mut out = [0u64; 1];
        m.load(same[0].1, &same[0].0, &mut out);
        let (v, k) = &same[WAYS];
        m.store(*k, v, &[1 << 9]);
        let load = |i: usize| {
            let mut out = [0u64; 1];
            m.load(same[i].1, &same[i].0, &mut out);
            out[0]
        };
        assert_eq!(load(WAYS), 1 << 9);
        assert_eq!(load(0), 1, "recently used, so kept");
        assert_eq!(load(1), 0, "the least recently used gave way");
        assert!((2..WAYS).all(|i| load(i) == 1 << i));
    }

    #[test]
    fn the_misses_table_stays_bounded() {
        let m = Misses::default();
        for i in 0..(MISS_SLOTS * 4) {
            let v = format!("value {i}");
            let k = m.key(v.as_bytes()).unwrap_or_default();
            m.store(k, v.as_bytes(), &[1]);
        }
        assert!(m.len() <= MISS_SLOTS);
    }
}
