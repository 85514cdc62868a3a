//! Which policy runs: a record in shared data (`tg/<edge>/policy`) of the configuration in
//! force, its version and its generation. The generation counts the different configurations
//! accepted since Envoy started; every worker (and Envoy's canary configuration) of one push
//! finds the same configuration fingerprint and so the same generation, and only the first to
//! see a new fingerprint advances it.

use crate::shared::{self, Read, Write};

/// Attempts of the compare-and-swap that advances the generation.
const ATTEMPTS: usize = 8;

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

fn key(edge: &str) -> String {
    format!("tg/{edge}/policy")
}

fn decode(bytes: &[u8]) -> Option<Running> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut it = text.splitn(3, '\n');
    Some(Running {
        generation: it.next()?.parse().ok()?,
        fingerprint: u64::from_str_radix(it.next()?, 16).ok()?,
        version: it.next()?.to_owned(),
    })
}

fn encode(r: &Running) -> Vec<u8> {
    format!("{}\n{:x}\n{}", r.generation, r.fingerprint, r.version).into_bytes()
}

/// The configuration in force for `edge`, if any was recorded.
pub(crate) fn current(edge: &str) -> Option<Running> {
    match shared::get(&key(edge)) {
        Ok(Read::Found(bytes, _)) => decode(&bytes),
        _ => None,
    }
}

/// Records an accepted configuration. Returns its record and, when it replaced a different
/// one, the record it replaced; `None` if shared data could not be used.
pub(crate) fn accept(
    edge: &str,
    fingerprint: u64,
    version: &str,
) -> Option<(Running, Option<Running>)> {
    for _ in 0..ATTEMPTS {
        let (previous, cas) = match shared::get(&key(edge)).ok()? {
            Read::Found(bytes, cas) => (decode(&bytes), cas),
            Read::Missing => (None, 0),
        };
        if let Some(p) = previous.as_ref().filter(|p| p.fingerprint == fingerprint) {
            return Some((p.clone(), None));
        }
        let next = Running {
            generation: previous.as_ref().map_or(0, |p| p.generation) + 1,
            fingerprint,
            version: version.to_owned(),
        };
        match shared::set(&key(edge), &encode(&next), cas).ok()? {
            Write::Done => return Some((next, previous)),
            Write::CasMismatch => continue,
        }
    }
    None
}
