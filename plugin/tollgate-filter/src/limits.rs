//! Rate limits and bans in the filter: keys from the request, state in shared data under
//! compare-and-swap, so a limit holds across Envoy's workers. The arithmetic and the slot choice
//! are `tollgate_core::limits`; this module reads and writes the blocks of slots.
//!
//! Block keys: `tg/<edge>/rl/<limit>/<block>` and `tg/<edge>/ban/<ban>/<block>`, each holding
//! `BLOCK` entries. All of them are created in `on_configure` ([`prepare`]): a write to a missing
//! key cannot be a compare-and-swap, so creating blocks while requests run could lose an update.
//! The fingerprint seed is `tg/<edge>/seed`.

use tollgate_core::enumeration::{EnumEntry, Enumeration, Observed, ENTRY_BYTES};
use tollgate_core::limits::{
    block_len, blocks, choose_slot, encode_block, fingerprint, place, split_block, Admission, Ban,
    BanEntry, LimitEntry, RateLimit,
};
use tollgate_core::tables::{Table, TableKind};
use tollgate_core::Policy;

use crate::shared::{self, Read, Unavailable, Write};

/// Attempts of a compare-and-swap before the limit's failure mode applies.
const CAS_ATTEMPTS: usize = 8;

/// Bytes of one rate-limit and one ban entry.
const LIMIT_ENTRY: usize = 16;
const BAN_ENTRY: usize = 28;

fn limit_prefix(edge: &str, l: &RateLimit) -> String {
    prefix(edge, TableKind::RateLimit, &l.name)
}

fn ban_prefix(edge: &str, b: &Ban) -> String {
    prefix(edge, TableKind::Ban, &b.name)
}

fn enum_prefix(edge: &str, e: &Enumeration) -> String {
    prefix(edge, TableKind::Enumeration, &e.name)
}

/// The key prefix of a rule's table: `tg/<edge>/<rl|ban|enum>/<name>`.
fn prefix(edge: &str, kind: TableKind, name: &str) -> String {
    let short = match kind {
        TableKind::RateLimit => "rl",
        TableKind::Ban => "ban",
        TableKind::Enumeration => "enum",
    };
    format!("tg/{edge}/{short}/{name}")
}

fn table_prefix(edge: &str, t: &Table) -> String {
    prefix(edge, t.kind, &t.name)
}

fn entry_bytes(kind: TableKind) -> usize {
    match kind {
        TableKind::RateLimit => LIMIT_ENTRY,
        TableKind::Ban => BAN_ENTRY,
        TableKind::Enumeration => ENTRY_BYTES,
    }
}

/// One line of the table registry (`tg/<edge>/tables`): a table's key prefix, identity, number
/// of blocks and label, as the last configuration to change them left it.
#[derive(Debug, PartialEq, Eq)]
struct Registered {
    prefix: String,
    identity: u64,
    blocks: u32,
    label: String,
}

fn parse_registry(bytes: &[u8]) -> Vec<Registered> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|line| {
            let mut it = line.split(' ');
            let prefix = it.next()?.to_owned();
            let identity = u64::from_str_radix(it.next()?, 16).ok()?;
            let blocks = it.next()?.parse().ok()?;
            let label = it.next()?.to_owned();
            Some(Registered {
                prefix,
                identity,
                blocks,
                label,
            })
        })
        .collect()
}

/// What [`prepare`] did to the tables a previous configuration left.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// Tables whose definition changed: emptied, their state starts fresh.
    pub(crate) reset: Vec<String>,
    /// Tables of rules the policy no longer has: their blocks emptied to free the memory.
    pub(crate) freed: Vec<String>,
}

/// Makes shared data hold exactly the tables `policy` needs. A table registered with the same
/// identity and size keeps its blocks untouched; a new or changed table is
/// written empty; a table the policy no longer has, and blocks past a shrunk table's end, are
/// set to empty values (the ABI has no delete). The first configuration of a push to get here
/// does the work and rewrites the registry; every later one (the other workers) finds the
/// registry matching and changes nothing.
pub(crate) fn prepare(policy: &Policy) -> Result<Prepared, Unavailable> {
    let edge = policy.edge();
    let registry_key = format!("tg/{edge}/tables");
    let old_bytes = match shared::get(&registry_key)? {
        Read::Found(bytes, _) => bytes,
        Read::Missing => Vec::new(),
    };
    let old = parse_registry(&old_bytes);
    let mut out = Prepared::default();
    let mut registry = String::new();
    let mut current = Vec::new();
    for t in policy.tables() {
        let prefix = table_prefix(edge, &t);
        let n = blocks(t.max_keys);
        let size = entry_bytes(t.kind);
        let previous = old.iter().find(|r| r.prefix == prefix);
        let same = previous.is_some_and(|r| r.identity == t.identity && r.blocks == n);
        // An unchanged table is left alone: its blocks were written when it was registered,
        // and every later worker of a push (or a reloaded VM) gets here in a few host calls.
        if !same {
            for block in 0..n {
                let key = format!("{prefix}/{block}");
                shared::set(&key, &vec![0u8; size * block_len(block, t.max_keys)], 0)?;
            }
        }
        if let Some(r) = previous.filter(|_| !same) {
            for block in n..r.blocks {
                shared::set(&format!("{prefix}/{block}"), &[], 0)?;
            }
            out.reset.push(t.label());
        }
        registry.push_str(&format!("{prefix} {:x} {n} {}\n", t.identity, t.label()));
        current.push(prefix);
    }
    for r in old.iter().filter(|r| !current.contains(&r.prefix)) {
        for block in 0..r.blocks {
            shared::set(&format!("{}/{block}", r.prefix), &[], 0)?;
        }
        out.freed.push(r.label.clone());
    }
    if registry.as_bytes() != old_bytes.as_slice() {
        shared::set(&registry_key, registry.as_bytes(), 0)?;
    }
    Ok(out)
}

/// A block as read: its key, entries' bytes and CAS.
struct Block {
    key: String,
    bytes: Vec<u8>,
    cas: u32,
}

fn read_block(prefix: &str, block: u32) -> Result<Block, Unavailable> {
    let key = format!("{prefix}/{block}");
    match shared::get(&key)? {
        // An empty value is a block a newer configuration freed (a removed rule, or past the end
        // of a shrunk table): a VM still on the old policy must not write it back.
        Read::Found(bytes, cas) if cas != 0 && !bytes.is_empty() => Ok(Block { key, bytes, cas }),
        // Every block was created at configuration; a missing one means the store was reset.
        _ => Err(Unavailable),
    }
}

/// What a rate-limit check found.
pub(crate) enum LimitOutcome {
    /// Admitted or refused by the arithmetic; `evicted` when a live key lost its slot.
    Checked { admission: Admission, evicted: bool },
    /// The store failed or CAS kept losing.
    Failed,
}

/// A GCRA step read but not yet written: the block as read, with the key's new entry patched in.
pub(crate) struct Plan {
    key: String,
    bytes: Vec<u8>,
    cas: u32,
    /// What the step decided.
    pub(crate) admission: Admission,
    /// Taking the slot evicts a live key.
    pub(crate) evicted: bool,
}

/// Reads the key's block and decides, without writing: several limits on one request are all
/// decided before any is charged, so a request refused by one costs the others nothing.
pub(crate) fn plan(
    edge: &str,
    l: &RateLimit,
    fp: u64,
    cost: u64,
    now: u64,
) -> Result<Plan, Unavailable> {
    let (block, ways) = place(fp, l.max_keys);
    let len = block_len(block, l.max_keys);
    let b = read_block(&limit_prefix(edge, l), block)?;
    let mut bytes = b.bytes;
    if bytes.len() != LIMIT_ENTRY * len {
        bytes = vec![0; LIMIT_ENTRY * len];
    }
    let entry_at = |bytes: &[u8], i: usize| {
        LimitEntry::decode(
            bytes
                .get(i * LIMIT_ENTRY..(i + 1) * LIMIT_ENTRY)
                .unwrap_or(&[]),
        )
    };
    let candidates: Vec<(u32, u64, bool, u64)> = ways
        .iter()
        .map(|i| {
            let e = entry_at(&bytes, *i);
            (*i as u32, e.fingerprint, e.idle(now), e.tat)
        })
        .collect();
    let (slot, evicted) = choose_slot(&candidates, fp).ok_or(Unavailable)?;
    let slot = slot as usize;
    let current = entry_at(&bytes, slot);
    let tat = if current.fingerprint == fp {
        current.tat
    } else {
        0
    };
    let admission = l.admit(tat, now, cost);
    if admission.allowed {
        let entry = LimitEntry {
            fingerprint: fp,
            tat: admission.tat,
        };
        bytes
            .get_mut(slot * LIMIT_ENTRY..(slot + 1) * LIMIT_ENTRY)
            .ok_or(Unavailable)?
            .copy_from_slice(&entry.encode());
    }
    Ok(Plan {
        key: b.key,
        bytes,
        cas: b.cas,
        admission,
        evicted: evicted && admission.allowed,
    })
}

/// Writes a plan that admitted; `Ok(false)` if the block changed since it was read.
pub(crate) fn commit(p: &Plan) -> Result<bool, Unavailable> {
    match shared::set(&p.key, &p.bytes, p.cas)? {
        Write::Done => Ok(true),
        Write::CasMismatch => Ok(false),
    }
}

/// One GCRA step for `fp` against limit `l`, under compare-and-swap: plan and commit until the
/// block did not change in between (or the attempts run out).
pub(crate) fn check(edge: &str, l: &RateLimit, fp: u64, cost: u64, now: u64) -> LimitOutcome {
    for _ in 0..CAS_ATTEMPTS {
        let Ok(p) = plan(edge, l, fp, cost, now) else {
            return LimitOutcome::Failed;
        };
        if !p.admission.allowed {
            // A refusal changes nothing: no write.
            return LimitOutcome::Checked {
                admission: p.admission,
                evicted: false,
            };
        }
        match commit(&p) {
            Ok(true) => {
                return LimitOutcome::Checked {
                    admission: p.admission,
                    evicted: p.evicted,
                }
            }
            Ok(false) => continue,
            Err(Unavailable) => return LimitOutcome::Failed,
        }
    }
    LimitOutcome::Failed
}

fn ban_entries(b: &Block, len: usize) -> Vec<BanEntry> {
    split_block(&b.bytes, BAN_ENTRY, len)
        .into_iter()
        .map(BanEntry::decode)
        .collect()
}

/// Whether `fp` is banned: `Ok(Some(seconds left))`, `Ok(None)`, or the store failed.
pub(crate) fn banned(edge: &str, b: &Ban, fp: u64, now: u64) -> Result<Option<u64>, Unavailable> {
    let (block, ways) = place(fp, b.max_keys);
    let blk = read_block(&ban_prefix(edge, b), block)?;
    let entries = ban_entries(&blk, block_len(block, b.max_keys));
    Ok(ways
        .iter()
        .filter_map(|i| entries.get(*i))
        .find(|e| e.fingerprint == fp)
        .and_then(|e| b.banned(e, now)))
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
    let prefix = ban_prefix(edge, b);
    let (block, ways) = place(fp, b.max_keys);
    let len = block_len(block, b.max_keys);
    for _ in 0..CAS_ATTEMPTS {
        let blk = read_block(&prefix, block)?;
        let mut entries = ban_entries(&blk, len);
        let candidates: Vec<(u32, u64, bool, u64)> = ways
            .iter()
            .filter_map(|i| {
                entries.get(*i).map(|e| {
                    // Staleness: the later of its window start and its ban's end.
                    let age = e.window_start.max(e.banned_until);
                    (*i as u32, e.fingerprint, e.idle(now, b.window), age)
                })
            })
            .collect();
        let Some((slot, evicted)) = choose_slot(&candidates, fp) else {
            return Err(Unavailable);
        };
        let Some(entry) = entries.get_mut(slot as usize) else {
            return Err(Unavailable);
        };
        let current = if entry.fingerprint == fp {
            *entry
        } else {
            BanEntry::default()
        };
        let (next, started) = b.record(&current, fp, now);
        *entry = next;
        let encoded: Vec<[u8; BAN_ENTRY]> = entries.iter().map(BanEntry::encode).collect();
        match shared::set(&blk.key, &encode_block(&encoded), blk.cas)? {
            Write::Done => return Ok(Recorded { started, evicted }),
            Write::CasMismatch => continue,
        }
    }
    Err(Unavailable)
}

/// Records a value for client `fp` under enumeration rule `e`, under compare-and-swap. A value
/// already seen writes nothing, nor does a look-up by a client already locked; the look-up that
/// takes a client past the limit writes the lock (and, for a flagging rule, the value).
pub(crate) fn observe(
    edge: &str,
    e: &Enumeration,
    fp: u64,
    value_hash: u64,
    now: u64,
) -> Result<Observed, Unavailable> {
    let prefix = enum_prefix(edge, e);
    let (block, ways) = place(fp, e.max_keys);
    let len = block_len(block, e.max_keys);
    for _ in 0..CAS_ATTEMPTS {
        let blk = read_block(&prefix, block)?;
        let mut entries: Vec<EnumEntry> = split_block(&blk.bytes, ENTRY_BYTES, len)
            .into_iter()
            .map(EnumEntry::decode)
            .collect();
        let candidates: Vec<(u32, u64, bool, u64)> = ways
            .iter()
            .filter_map(|i| {
                entries.get(*i).map(|x| {
                    (
                        *i as u32,
                        x.fingerprint,
                        x.idle(now, e.window),
                        x.window_start,
                    )
                })
            })
            .collect();
        let (slot, _) = choose_slot(&candidates, fp).ok_or(Unavailable)?;
        let entry = entries.get_mut(slot as usize).ok_or(Unavailable)?;
        let observed = e.observe(entry, fp, value_hash, now);
        let Some(next) = observed.next else {
            return Ok(observed);
        };
        *entry = next;
        let encoded: Vec<[u8; ENTRY_BYTES]> = entries.iter().map(EnumEntry::encode).collect();
        match shared::set(&blk.key, &encode_block(&encoded), blk.cas)? {
            Write::Done => return Ok(observed),
            Write::CasMismatch => continue,
        }
    }
    Err(Unavailable)
}

/// Expires idle keys of a rate limit in `count` blocks from `start`; returns how many it
/// expired. An expired slot is free for the next key.
pub(crate) fn expire(edge: &str, l: &RateLimit, start: u32, count: u32, now: u64) -> u32 {
    let prefix = limit_prefix(edge, l);
    let n = blocks(l.max_keys);
    let mut expired = 0;
    for i in 0..count.min(n) {
        let block = start.wrapping_add(i) % n;
        let Ok(b) = read_block(&prefix, block) else {
            continue;
        };
        let mut entries: Vec<LimitEntry> =
            split_block(&b.bytes, LIMIT_ENTRY, block_len(block, l.max_keys))
                .into_iter()
                .map(LimitEntry::decode)
                .collect();
        let mut changed = 0;
        for e in entries.iter_mut() {
            if e.fingerprint != 0 && e.idle(now) {
                *e = LimitEntry::default();
                changed += 1;
            }
        }
        if changed > 0 {
            let encoded: Vec<[u8; LIMIT_ENTRY]> = entries.iter().map(LimitEntry::encode).collect();
            // Lost to a concurrent update: the next pass will see it again.
            if let Ok(Write::Done) = shared::set(&b.key, &encode_block(&encoded), b.cas) {
                expired += changed;
            }
        }
    }
    expired
}

/// The fingerprint seed shared by this process's workers: read it, or write one and read back
/// whatever won.
pub(crate) fn seed(edge: &str, candidate: u64) -> u64 {
    let key = format!("tg/{edge}/seed");
    let decode = |v: &[u8]| <[u8; 8]>::try_from(v).ok().map(u64::from_le_bytes);
    match shared::get(&key) {
        Ok(Read::Found(v, _)) => decode(&v).unwrap_or(candidate),
        // Written only when missing: a failed read must not replace the seed every worker
        // uses (that would rehash every key and lift every ban).
        Ok(Read::Missing) => {
            let _ = shared::set(&key, &candidate.to_le_bytes(), 0);
            match shared::get(&key) {
                Ok(Read::Found(v, _)) => decode(&v).unwrap_or(candidate),
                _ => candidate,
            }
        }
        Err(_) => candidate,
    }
}

/// The fingerprint of a key under the seed.
pub(crate) fn fp(seed: u64, key: &[u8]) -> u64 {
    fingerprint(seed, key)
}
