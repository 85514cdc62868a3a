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
}
