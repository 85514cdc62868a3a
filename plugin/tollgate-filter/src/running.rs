//! Which policy runs: a record in shared data (`tg/<edge>/policy`) of the configuration in
//! force, its version and its generation. The generation counts the different configurations
//! accepted since Envoy started; every VM of one push (Envoy's canary, the main thread's and each
//! worker's) finds the same configuration fingerprint and so the same generation, and only the
//! first to see a new fingerprint advances it.
//!
//! Pushes in quick succession reach the VMs in order but not at once: a worker can still be
//! applying push N-1 when another VM has recorded push N. The record keeps the configurations it
//! replaced in the last few seconds, and a VM that applies one of them is late, not new: it
//! takes that configuration's generation and changes neither the record nor the gauges. A real
//! rollback to a configuration replaced less than [`LATE`] ago is taken for lateness too (it is
//! not counted as a new generation); one made later is counted.

use crate::shared::{self, Read, Write};

/// Attempts of the compare-and-swap that advances the generation.
const ATTEMPTS: usize = 8;

/// How long after it was replaced a configuration's application is taken as a late VM's.
const LATE: u64 = 5_000_000_000;

/// Replaced configurations kept in the record.
const RECENT: usize = 8;

/// The record of the configuration in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Running {
    /// 1 for the first configuration since Envoy started, then +1 per different one accepted.
    pub(crate) generation: u64,
    /// The configuration's fingerprint.
    fingerprint: u64,
    /// The policy's version string.
    pub(crate) version: String,
}

/// A configuration this record replaced: its fingerprint, its generation, and when (ns).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Replaced {
    fingerprint: u64,
    generation: u64,
    at: u64,
}

/// What `accept` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// The configuration's record.
    pub(crate) running: Running,
    /// The different configuration it replaced, when it advanced the generation.
    pub(crate) replaced: Option<Running>,
    /// A late VM applying a configuration that was replaced already: nothing was recorded.
    pub(crate) late: bool,
}

fn key(edge: &str) -> String {
    format!("tg/{edge}/policy")
}

/// `generation \n fingerprint \n count \n (fingerprint generation at \n){count} version`.
fn decode(bytes: &[u8]) -> Option<(Running, Vec<Replaced>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut it = text.splitn(4, '\n');
    let generation = it.next()?.parse().ok()?;
    let fingerprint = u64::from_str_radix(it.next()?, 16).ok()?;
    let count: usize = it.next()?.parse().ok()?;
    let mut rest = it.next()?;
    let mut recent = Vec::with_capacity(count.min(RECENT));
    for _ in 0..count.min(RECENT) {
        let (line, tail) = rest.split_once('\n')?;
        let mut w = line.split(' ');
        recent.push(Replaced {
            fingerprint: u64::from_str_radix(w.next()?, 16).ok()?,
            generation: w.next()?.parse().ok()?,
            at: w.next()?.parse().ok()?,
        });
        rest = tail;
    }
    let running = Running {
        generation,
        fingerprint,
        version: rest.to_owned(),
    };
    Some((running, recent))
}

fn encode(r: &Running, recent: &[Replaced]) -> Vec<u8> {
    let mut s = format!("{}\n{:x}\n{}\n", r.generation, r.fingerprint, recent.len());
    for p in recent {
        s.push_str(&format!("{:x} {} {}\n", p.fingerprint, p.generation, p.at));
    }
    s.push_str(&r.version);
    s.into_bytes()
}

/// The configuration in force for `edge`, if any was recorded.
pub(crate) fn current(edge: &str) -> Option<Running> {
    match shared::get(&key(edge)) {
        Ok(Read::Found(bytes, _)) => decode(&bytes).map(|(r, _)| r),
        _ => None,
    }
}

/// Records an accepted configuration; `None` if shared data could not be used.
pub(crate) fn accept(edge: &str, fingerprint: u64, version: &str) -> Option<Accepted> {
    let now = shared::now().unwrap_or(0);
    for _ in 0..ATTEMPTS {
        let (previous, cas) = match shared::get(&key(edge)).ok()? {
            Read::Found(bytes, cas) => (decode(&bytes), cas),
            Read::Missing => (None, 0),
        };
        let (previous, mut recent) = previous.map_or((None, Vec::new()), |(p, r)| (Some(p), r));
        if let Some(p) = previous.as_ref().filter(|p| p.fingerprint == fingerprint) {
            return Some(Accepted {
                running: p.clone(),
                replaced: None,
                late: false,
            });
        }
        if let Some(late) = recent
            .iter()
            .find(|r| r.fingerprint == fingerprint && now.saturating_sub(r.at) < LATE)
        {
            return Some(Accepted {
                running: Running {
                    generation: late.generation,
                    fingerprint,
                    version: version.to_owned(),
                },
                replaced: None,
                late: true,
            });
        }
        let next = Running {
            generation: previous.as_ref().map_or(0, |p| p.generation) + 1,
            fingerprint,
            version: version.to_owned(),
        };
        if let Some(p) = previous.as_ref() {
            recent.insert(
                0,
                Replaced {
                    fingerprint: p.fingerprint,
                    generation: p.generation,
                    at: now,
                },
            );
            recent.truncate(RECENT);
        }
        match shared::set(&key(edge), &encode(&next, &recent), cas).ok()? {
            Write::Done => {
                return Some(Accepted {
                    running: next,
                    replaced: previous,
                    late: false,
                })
            }
            Write::CasMismatch => continue,
        }
    }
    None
}
