//! One request through the rule set: the variables it offers, the transaction variables its
//! rules write, and the rules that match.
//!
//! The request's values are read once into a table (headers, cookies, arguments, the URI's
//! forms; the body's collections join when phase 2 starts). A value's transformed form is
//! computed once per transformation chain and kept for the request, and with it the
//! prefilter's verdict: which patterns of that chain have a literal in it. A rule's regular
//! expression runs only on values its prefilter flagged.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use rustc_hash::FxHashMap;

use super::body::{self, Multipart, Pair};
use super::engine::{
    CLink, COp, CRule, CSetVar, CTarget, Cmp, Coll, Engine, Macro, Match, Outcome, Part, Prefilter,
    Sel, Step, COLLECTIONS,
};
use super::memo::{Detector, Memo};
use super::ruleset::{Ctl, SetOp};
use super::transform::{self, Transform, Triggers};
use super::Input;

/// Runs both request phases.
pub(super) fn evaluate(engine: &Engine, input: &Input<'_>) -> Outcome {
    let mut t = Txn::new(engine, input, engine.tables.take(engine));
    t.run(engine, 1);
    if !t.st.engine_off {
        t.process_body();
        t.run(engine, 2);
    }
    t.table.remember(engine);
    engine.tables.give(t.table);
    t.st.outcome
}

/// Whether a rule that reads only transaction variables matches on the engine's base values
/// (its first failing link decides; nothing is recorded).
pub(super) fn matches_on_base(engine: &Engine, rule: &CRule) -> bool {
    let input = Input {
        method: "",
        uri: "",
        protocol: "",
        headers: &[],
        body: None,
        remote_addr: None,
    };
    let mut t = Txn::new(engine, &input, engine.tables.take(engine));
    let matched = rule.links.iter().all(|l| t.link(rule.id, l).0);
    engine.tables.give(t.table);
    matched
}

/// One value of the request: its member name (empty for a scalar) and its bytes, side by
/// side in the table's `bytes`.
#[derive(Clone, Copy)]
struct Entry {
    at: usize,
    name: usize,
    value: usize,
}

impl Entry {
    fn name<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        bytes.get(self.at..self.at + self.name).unwrap_or(&[])
    }

    fn value<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        let from = self.at + self.name;
        bytes.get(from..from + self.value).unwrap_or(&[])
    }
}

/// What a value becomes through the transformations that changed it, in order: computed once
/// and shared by every chain that comes to the same steps (a step that cannot change the value
/// at hand, or did not, is no step).
struct Form {
    /// The value's previous form (a list per value, newest first).
    prev: Option<u32>,
    /// The steps that made it, each of which changed its input (see [`step_key`]).
    steps: u128,
    /// Its bytes: `at..at + len` of the table's `form_bytes`.
    at: usize,
    len: usize,
    mask: Triggers,
    /// The form it came from (`None`: the raw value) when the last step changed only case:
    /// the prefilter, which ignores case, says the same of both.
    case_of: Option<Option<u32>>,
    /// Where the prefilter's verdict (link gids, one bit each) starts in the table's `bits`:
    /// [`NOT_YET`] until computed, [`SHARED`] when it is another's (see `case_of`, or bytes
    /// equal to the raw ones but for case).
    flags: u32,
}

/// A verdict or a group's list not computed yet.
const NOT_YET: u32 = u32::MAX;
/// A form whose prefilter verdict is another's.
const SHARED: u32 = u32::MAX - 1;

/// The request's values, by base collection. A value is named by `2 × entry + (1 if the
/// entry's name is meant)`.
///
/// Everything a request computes lives in a few arenas (bytes, forms, verdict words), so
/// that a table cleared for the next request keeps its capacity: the engine keeps a few
/// (see [`Tables`]) and a request in the common case allocates nothing for its values.
pub(super) struct Table {
    /// Every entry's name and value.
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Per collection, the entries' index range.
    ranges: [(u32, u32); COLLECTIONS],
    /// Per value: which ASCII bytes it holds, whether it holds high bytes and letters.
    masks: Vec<Option<Triggers>>,
    /// Per value: where the prefilter's verdict on the raw bytes starts in `bits` ([`NOT_YET`]
    /// until computed).
    raw_flags: Vec<u32>,
    /// The chains computed per value, as lists in one arena: `view_head[v]` is the index + 1
    /// of value `v`'s newest entry in `view_links`, an entry is `(chain, at, next + 1)`, and
    /// `at` is 1 for the raw value, `2 + i` for `forms[i]`. A request with many values meets
    /// few chains per value: a table of values × chains would cost megabytes for a body of
    /// small parts.
    view_head: Vec<u32>,
    view_links: Vec<(u32, u32, u32)>,
    forms: Vec<Form>,
    /// Every form's bytes.
    form_bytes: Vec<u8>,
    /// What a transformation writes before it joins `form_bytes`.
    out: Vec<u8>,
    /// Per value: its newest form.
    newest: Vec<Option<u32>>,
    scratch: transform::Scratch,
    /// The prefilter's verdicts and the links known not to match, `words` words each.
    bits: Vec<u64>,
    words: usize,
    /// Per target group: its values in this phase, a range of `group_values` (`NOT_YET`
    /// until resolved).
    groups: Vec<(u32, u32)>,
    /// The groups' values, `(collection read, value)`.
    group_values: Vec<(Coll, u32)>,
    /// Per (group, chain): where the prefilter's verdicts over all of the group's values,
    /// OR-ed, start in `bits`.
    unions: FxHashMap<(u32, u32), u32>,
    /// Per value: its place in `remembered` ([`UNSEEN`] until a link asks, [`FORGOT`] when
    /// it is not remembered).
    miss_at: Vec<u32>,
    /// The values looked up in the engine's [`Misses`](super::memo::Misses): the value, its
    /// key, and whether this request learnt a miss on it.
    remembered: Vec<(u32, u64, bool)>,
    /// Per remembered value, `words` words: the links known not to match it.
    missed: Vec<u64>,
    /// Per target group, once asked: where the links known not to match any of its values
    /// in this phase (the AND of theirs, and what this request learnt of the whole group)
    /// start in `bits` ([`NOT_YET`] before).
    group_missed: Vec<u32>,
}

/// A value no link has asked about yet.
const UNSEEN: u32 = u32::MAX;
/// A value not remembered across requests (too long, or past [`MAX_REMEMBERED`]).
const FORGOT: u32 = u32::MAX - 1;
/// How many of a request's values are looked up and remembered: a body of thousands of parts
/// costs no more memory for them than this.
const MAX_REMEMBERED: usize = 256;
/// How many cleared tables the engine keeps for the requests to come (one per request in
/// flight on a worker is enough: a worker evaluates one at a time).
const POOLED: usize = 4;
/// A table that grew past this (a large body) is dropped after its request, not kept.
const POOLED_BYTES: usize = 256 << 10;

/// The tables the engine keeps between requests: at most [`POOLED`], each under
/// [`POOLED_BYTES`], so a burst of large bodies leaves no large buffers behind.
#[derive(Default)]
pub(super) struct Tables(Mutex<Vec<Table>>);

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tables")
    }
}

impl Tables {
    fn take(&self, engine: &Engine) -> Table {
        let mut t = self
            .0
            .lock()
            .ok()
            .and_then(|mut kept| kept.pop())
            .unwrap_or_default();
        t.words = (engine.link_count as usize).div_ceil(64);
        t
    }

    fn give(&self, mut t: Table) {
        if t.footprint() > POOLED_BYTES {
            return;
        }
        t.clear();
        if let Ok(mut kept) = self.0.lock() {
            if kept.len() < POOLED {
                kept.push(t);
            }
        }
    }
}

/// Where a value's prefilter verdict through a chain is kept.
enum Verdict {
    /// No prefilter: every link is a candidate.
    Always,
    /// In `forms[i].flags`.
    Form(usize),
    /// In `raw_flags[v]` (the chain does not change the value for the prefilter).
    Raw(u32),
}

fn has_bit(bits: &[u64], gid: u32) -> bool {
    bits.get((gid / 64) as usize)
        .is_some_and(|w| (w >> (gid % 64)) & 1 == 1)
}

/// Value `v`'s raw bytes: entry `v / 2`'s value, or its name when `v` is odd.
fn raw_of<'b>(entries: &[Entry], bytes: &'b [u8], v: u32) -> &'b [u8] {
    match entries.get((v / 2) as usize) {
        Some(e) if v % 2 == 1 => e.name(bytes),
        Some(e) => e.value(bytes),
        None => &[],
    }
}

/// The bytes a value holds, in the shape of a chain's triggers.
fn mask_of(v: &[u8]) -> Triggers {
    let mut t = Triggers::default();
    for b in v {
        if *b >= 0x80 {
            t.high = true;
        } else {
            t.bytes |= 1u128 << b;
            t.case |= b.is_ascii_alphabetic();
        }
    }
    t
}

/// An offset into `bits` as kept in the table (`NOT_YET`, computed again, past `u32`).
fn offset(at: usize) -> u32 {
    u32::try_from(at)
        .ok()
        .filter(|a| *a < SHARED)
        .unwrap_or(NOT_YET)
}

impl Default for Table {
    fn default() -> Table {
        Table {
            bytes: Vec::with_capacity(4096),
            entries: Vec::with_capacity(32),
            ranges: [(0, 0); COLLECTIONS],
            masks: Vec::new(),
            raw_flags: Vec::new(),
            view_head: Vec::new(),
            view_links: Vec::with_capacity(256),
            forms: Vec::with_capacity(64),
            form_bytes: Vec::with_capacity(4096),
            out: Vec::new(),
            newest: Vec::new(),
            scratch: transform::Scratch::default(),
            bits: Vec::with_capacity(1024),
            words: 0,
            groups: Vec::new(),
            group_values: Vec::new(),
            unions: FxHashMap::default(),
            miss_at: Vec::new(),
            remembered: Vec::with_capacity(64),
            missed: Vec::new(),
            group_missed: Vec::new(),
        }
    }
}

impl Table {
    /// Empties the table, keeping what it allocated.
    fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        self.ranges = [(0, 0); COLLECTIONS];
        self.masks.clear();
        self.raw_flags.clear();
        self.view_head.clear();
        self.view_links.clear();
        self.forms.clear();
        self.form_bytes.clear();
        self.out.clear();
        self.newest.clear();
        self.bits.clear();
        self.groups.clear();
        self.group_values.clear();
        self.unions.clear();
        self.miss_at.clear();
        self.remembered.clear();
        self.missed.clear();
        self.group_missed.clear();
    }

    /// Roughly what the table holds allocated, in bytes.
    fn footprint(&self) -> usize {
        use std::mem::size_of;
        self.bytes.capacity()
            + self.form_bytes.capacity()
            + self.out.capacity()
            + self.scratch.capacity()
            + self.entries.capacity() * size_of::<Entry>()
            + self.forms.capacity() * size_of::<Form>()
            + self.masks.capacity() * size_of::<Option<Triggers>>()
            + self.view_links.capacity() * size_of::<(u32, u32, u32)>()
            + self.group_values.capacity() * size_of::<(Coll, u32)>()
            + (self.bits.capacity() + self.missed.capacity()) * size_of::<u64>()
            + (self.raw_flags.capacity()
                + self.view_head.capacity()
                + self.miss_at.capacity()
                + self.group_missed.capacity())
                * size_of::<u32>()
            + self.newest.capacity() * size_of::<Option<u32>>()
            + self.groups.capacity() * size_of::<(u32, u32)>()
            + self.remembered.capacity() * size_of::<(u32, u64, bool)>()
    }

    /// One entry (the collection's range is set by [`Table::close`]).
    fn add(&mut self, name: &[u8], value: &[u8]) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.entries.push(Entry {
            at,
            name: name.len(),
            value: value.len(),
        });
    }

    /// Collection `coll` holds the entries added since `start`.
    fn close(&mut self, coll: Coll, start: usize) {
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        let end = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        if let Some(r) = self.ranges.get_mut(coll as usize) {
            *r = (start, end);
        }
        let values = self.entries.len() * 2;
        self.masks.resize(values, None);
        self.raw_flags.resize(values, NOT_YET);
        self.newest.resize(values, None);
        self.view_head.resize(values, 0);
        self.miss_at.resize(values, UNSEEN);
    }

    fn push<N: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        coll: Coll,
        items: impl IntoIterator<Item = (N, V)>,
    ) {
        let start = self.entries.len();
        for (name, value) in items {
            self.add(name.as_ref(), value.as_ref());
        }
        self.close(coll, start);
    }

    fn scalar(&mut self, coll: Coll, value: &[u8]) {
        let start = self.entries.len();
        self.add(&[], value);
        self.close(coll, start);
    }

    fn range(&self, coll: Coll) -> std::ops::Range<u32> {
        let (a, b) = self.ranges.get(coll as usize).copied().unwrap_or((0, 0));
        a..b
    }

    fn raw(&self, v: u32) -> &[u8] {
        raw_of(&self.entries, &self.bytes, v)
    }

    /// Entry `i`'s name.
    fn name(&self, i: u32) -> &[u8] {
        self.entries
            .get(i as usize)
            .map_or(&[][..], |e| e.name(&self.bytes))
    }

    /// `words` words of `bits` from `at` (`None` for [`NOT_YET`] and [`SHARED`], whose sum
    /// with `words` would overflow a 32-bit `usize`).
    fn bits_at(&self, at: u32) -> Option<&[u64]> {
        let at = at as usize;
        self.bits.get(at..at.checked_add(self.words)?)
    }

    fn mask(&mut self, v: u32) -> Triggers {
        if let Some(Some(m)) = self.masks.get(v as usize) {
            return *m;
        }
        let m = mask_of(self.raw(v));
        if let Some(slot) = self.masks.get_mut(v as usize) {
            *slot = Some(m);
        }
        m
    }

    /// Value `v`'s place among the remembered values, looked up on first use.
    fn remembered_at(&mut self, engine: &Engine, v: u32) -> Option<usize> {
        let at = *self.miss_at.get(v as usize)?;
        if at == FORGOT {
            return None;
        }
        if at != UNSEEN {
            return Some(at as usize);
        }
        let key = (self.remembered.len() < MAX_REMEMBERED)
            .then(|| engine.misses.key(self.raw(v)))
            .flatten();
        let Some(key) = key else {
            if let Some(slot) = self.miss_at.get_mut(v as usize) {
                *slot = FORGOT;
            }
            return None;
        };
        let words = self.words;
        let i = self.remembered.len();
        self.remembered.push((v, key, false));
        self.missed.resize((i + 1) * words, 0);
        if let Some(bits) = self.missed.get_mut(i * words..) {
            engine
                .misses
                .load(key, raw_of(&self.entries, &self.bytes, v), bits);
        }
        if let Some(slot) = self.miss_at.get_mut(v as usize) {
            *slot = u32::try_from(i).unwrap_or(FORGOT);
        }
        Some(i)
    }

    /// Whether link `gid` (a pure one) is known not to match value `v`.
    fn missed(&mut self, engine: &Engine, v: u32, gid: u32) -> bool {
        let Some(i) = self.remembered_at(engine, v) else {
            return false;
        };
        let words = self.words;
        self.missed
            .get(i * words..(i + 1) * words)
            .is_some_and(|b| has_bit(b, gid))
    }

    /// Records that link `gid` (a pure one) does not match value `v`.
    fn learn(&mut self, engine: &Engine, v: u32, gid: u32) {
        let Some(i) = self.remembered_at(engine, v) else {
            return;
        };
        if let Some(w) = self.missed.get_mut(i * self.words + (gid / 64) as usize) {
            *w |= 1 << (gid % 64);
        }
        if let Some(r) = self.remembered.get_mut(i) {
            r.2 = true;
        }
    }

    /// Group `g`'s values (resolved) as a range of `group_values`.
    fn group(&self, g: u32) -> std::ops::Range<usize> {
        match self.groups.get(g as usize) {
            Some(&(a, b)) if a != NOT_YET => a as usize..b as usize,
            _ => 0..0,
        }
    }

    /// Whether link `gid` (a pure one) is known not to match any value of group `g`
    /// (resolved).
    fn group_missed(&mut self, engine: &Engine, g: u32, gid: u32) -> bool {
        if let Some(bits) = self
            .group_missed
            .get(g as usize)
            .and_then(|at| self.bits_at(*at))
        {
            return has_bit(bits, gid);
        }
        let words = self.words;
        let at = self.bits.len();
        self.bits.resize(at + words, u64::MAX);
        for i in self.group(g) {
            let Some(&(_, v)) = self.group_values.get(i) else {
                continue;
            };
            let known = self
                .remembered_at(engine, v)
                .and_then(|r| self.missed.get(r * words..(r + 1) * words));
            match (known, self.bits.get_mut(at..at + words)) {
                (Some(bits), Some(all)) => all.iter_mut().zip(bits).for_each(|(a, b)| *a &= *b),
                (None, Some(all)) => all.fill(0),
                _ => {}
            }
        }
        if self.group_missed.len() <= g as usize {
            self.group_missed.resize(g as usize + 1, NOT_YET);
        }
        if let Some(slot) = self.group_missed.get_mut(g as usize) {
            *slot = offset(at);
        }
        self.bits
            .get(at..at + words)
            .is_some_and(|b| has_bit(b, gid))
    }

    /// Records that link `gid` (a pure one) matches no value of group `g` (resolved).
    fn group_learn(&mut self, engine: &Engine, g: u32, gid: u32) {
        for i in self.group(g) {
            if let Some(&(_, v)) = self.group_values.get(i) {
                self.learn(engine, v, gid);
            }
        }
        let at = self
            .group_missed
            .get(g as usize)
            .copied()
            .unwrap_or(NOT_YET);
        if at != NOT_YET {
            let w = at as usize + (gid / 64) as usize;
            if let Some(w) = self.bits.get_mut(w) {
                *w |= 1 << (gid % 64);
            }
        }
    }

    /// Hands what this request learnt to the engine's table, for the requests after it.
    fn remember(&self, engine: &Engine) {
        let words = self.words;
        for (i, (v, key, learnt)) in self.remembered.iter().enumerate() {
            if let (true, Some(bits)) = (*learnt, self.missed.get(i * words..(i + 1) * words)) {
                engine.misses.store(*key, self.raw(*v), bits);
            }
        }
    }

    /// A form's bytes.
    fn form_bytes(&self, i: usize) -> &[u8] {
        self.forms
            .get(i)
            .and_then(|f| self.form_bytes.get(f.at..f.at + f.len))
            .unwrap_or(&[])
    }

    /// Value `v` through chain `chain`: `None` for the raw bytes, else the form's index.
    fn view(&mut self, engine: &Engine, v: u32, chain: usize) -> Option<usize> {
        let c = u32::try_from(chain).unwrap_or(u32::MAX);
        let mut link = self.view_head.get(v as usize).copied().unwrap_or(0);
        while let Some(&(x, at, next)) = link
            .checked_sub(1)
            .and_then(|i| self.view_links.get(i as usize))
        {
            if x == c {
                return match at {
                    0 | 1 => None,
                    at => Some(at as usize - 2),
                };
            }
            link = next;
        }
        let steps = engine.chains.get(chain).map_or(&[][..], Vec::as_slice);
        let mut at: Option<usize> = None;
        let mut mask = self.mask(v);
        let mut done: Option<u128> = Some(0);
        let mut out = std::mem::take(&mut self.out);
        for t in steps {
            if !t.triggers().touch(mask, true) {
                continue;
            }
            let before = done;
            done = done.and_then(|k| step_key(k, *t));
            if let Some(i) = done.and_then(|k| self.form_of(v, k)) {
                at = Some(i);
                mask = self.forms.get(i).map_or(mask, |f| f.mask);
                continue;
            }
            let input = match at {
                Some(i) => self.form_bytes(i),
                None => self.raw(v),
            };
            out.clear();
            if !t.apply(input, &mut out) {
                done = before;
                continue;
            }
            let case_only = matches!(t, Transform::Lowercase | Transform::Uppercase);
            mask = mask_of(&out);
            let prev = self.newest.get(v as usize).copied().flatten();
            if let Some(n) = self.newest.get_mut(v as usize) {
                *n = u32::try_from(self.forms.len()).ok();
            }
            let start = self.form_bytes.len();
            self.form_bytes.extend_from_slice(&out);
            self.forms.push(Form {
                prev,
                // A chain too long for a key shares nothing.
                steps: done.unwrap_or(u128::MAX),
                at: start,
                len: out.len(),
                mask,
                case_of: case_only.then(|| at.and_then(|i| u32::try_from(i).ok())),
                flags: NOT_YET,
            });
            at = Some(self.forms.len() - 1);
        }
        self.out = out;
        if let Some(head) = self.view_head.get_mut(v as usize) {
            let at = at.map_or(1, |i| u32::try_from(i + 2).unwrap_or(1));
            self.view_links.push((c, at, *head));
            *head = u32::try_from(self.view_links.len()).unwrap_or(0);
        }
        at
    }

    /// Value `v`'s form made by `steps`, if there is one yet.
    fn form_of(&self, v: u32, steps: u128) -> Option<usize> {
        let mut at = self.newest.get(v as usize).copied().flatten();
        while let Some(i) = at {
            let f = self.forms.get(i as usize)?;
            if f.steps == steps {
                return Some(i as usize);
            }
            at = f.prev;
        }
        None
    }

    /// Value `v` through chain `chain`.
    fn value(&mut self, engine: &Engine, v: u32, chain: usize) -> &[u8] {
        match self.view(engine, v, chain) {
            Some(i) => self.form_bytes(i),
            None => self.raw(v),
        }
    }

    /// Computes value `v`'s prefilter verdict through `chain` (once) and says where it is.
    fn verdict(&mut self, engine: &Engine, v: u32, chain: usize) -> Verdict {
        let Some(pf) = engine.prefilter.as_ref() else {
            return Verdict::Always;
        };
        let chain = engine.blind.get(chain).copied().unwrap_or(chain);
        let mut at = self.view(engine, v, chain);
        // Down the case-only steps: their verdict is their source's.
        while let Some(Form {
            case_of: Some(from),
            ..
        }) = at.and_then(|i| self.forms.get(i))
        {
            at = from.map(|x| x as usize);
        }
        if let Some(i) = at {
            if self.forms.get(i).is_some_and(|f| f.flags == NOT_YET) {
                let form = self.form_bytes(i);
                let flags = if form.eq_ignore_ascii_case(self.raw(v)) {
                    SHARED
                } else {
                    let at = self.bits.len();
                    let words = self.words;
                    let form = self
                        .forms
                        .get(i)
                        .and_then(|f| self.form_bytes.get(f.at..f.at + f.len))
                        .unwrap_or(&[]);
                    scan(pf, form, words, &mut self.bits);
                    offset(at)
                };
                if let Some(f) = self.forms.get_mut(i) {
                    f.flags = flags;
                }
            }
            if self
                .forms
                .get(i)
                .is_some_and(|f| f.flags != NOT_YET && f.flags != SHARED)
            {
                return Verdict::Form(i);
            }
        }
        if self.raw_flags.get(v as usize) == Some(&NOT_YET) {
            let at = self.bits.len();
            let raw = raw_of(&self.entries, &self.bytes, v);
            scan(pf, raw, self.words, &mut self.bits);
            if let Some(slot) = self.raw_flags.get_mut(v as usize) {
                *slot = offset(at);
            }
        }
        Verdict::Raw(v)
    }

    fn verdict_bits(&self, at: &Verdict) -> Option<&[u64]> {
        match at {
            Verdict::Always => None,
            Verdict::Form(i) => self.forms.get(*i).and_then(|f| self.bits_at(f.flags)),
            Verdict::Raw(v) => self
                .raw_flags
                .get(*v as usize)
                .and_then(|at| self.bits_at(*at)),
        }
    }

    /// Whether link `gid` (reading through `chain`) may match value `v`: one of its literals
    /// occurs in the value's transformed form.
    fn flagged(&mut self, engine: &Engine, v: u32, chain: usize, gid: u32) -> bool {
        let at = self.verdict(engine, v, chain);
        match at {
            Verdict::Always => true,
            _ => self.verdict_bits(&at).is_some_and(|b| has_bit(b, gid)),
        }
    }

    /// Whether link `gid` may match any value of group `g` (resolved) through `chain`: one
    /// verdict per group and chain serves every link that shares them.
    fn group_flagged(&mut self, engine: &Engine, g: u32, chain: usize, gid: u32) -> bool {
        let key = (g, u32::try_from(chain).unwrap_or(u32::MAX));
        if let Some(bits) = self.unions.get(&key).and_then(|at| self.bits_at(*at)) {
            return has_bit(bits, gid);
        }
        let words = self.words;
        let acc = self.bits.len();
        self.bits.resize(acc + words, 0);
        for i in self.group(g) {
            let Some(&(_, v)) = self.group_values.get(i) else {
                continue;
            };
            let at = self.verdict(engine, v, chain);
            if matches!(at, Verdict::Always) {
                if let Some(all) = self.bits.get_mut(acc..acc + words) {
                    all.fill(u64::MAX);
                }
                break;
            }
            let from = match at {
                Verdict::Form(i) => self.forms.get(i).map_or(NOT_YET, |f| f.flags),
                Verdict::Raw(v) => self.raw_flags.get(v as usize).copied().unwrap_or(NOT_YET),
                Verdict::Always => NOT_YET,
            };
            if from == NOT_YET || from == SHARED {
                continue;
            }
            for k in 0..words {
                let w = self.bits.get(from as usize + k).copied().unwrap_or(0);
                if let Some(a) = self.bits.get_mut(acc + k) {
                    *a |= w;
                }
            }
        }
        let hit = self
            .bits
            .get(acc..acc + words)
            .is_some_and(|b| has_bit(b, gid));
        let at = offset(acc);
        if at != NOT_YET {
            self.unions.insert(key, at);
        }
        hit
    }
}

/// `key` (a sequence of steps) followed by `t`; `None` past 24 steps.
fn step_key(key: u128, t: Transform) -> Option<u128> {
    if key >> 115 != 0 {
        return None;
    }
    Some(key * 32 + u128::from(t.code()) + 1)
}

/// One pass of the prefilter automaton: the links one of whose literals occurs in `value`,
/// written as `words` words at the end of `bits`.
fn scan(pf: &Prefilter, value: &[u8], words: usize, bits: &mut Vec<u64>) {
    let at = bits.len();
    bits.resize(at + words, 0);
    let mut set = |g: u32| {
        if let Some(w) = bits.get_mut(at + (g / 64) as usize) {
            *w |= 1 << (g % 64);
        }
    };
    if let Some(ac) = &pf.ac {
        for m in ac.find_overlapping_iter(value) {
            if let Some(g) = pf.links.get(m.pattern().as_usize()) {
                set(*g);
            }
        }
    }
    if !pf.bytes.is_empty() {
        let mut held = [0u64; 4];
        for b in value {
            if let Some(w) = held.get_mut(usize::from(b / 64)) {
                *w |= 1 << (b % 64);
            }
        }
        for (g, want) in &pf.bytes {
            if want.iter().zip(&held).any(|(a, b)| a & b != 0) {
                set(*g);
            }
        }
    }
}

/// Transaction variables: the engine's base with this request's writes over it.
struct Tx<'e> {
    base: &'e FxHashMap<String, String>,
    /// Names here can come from the request (`tx.header_name_%{tx.0}`): a keyed hash (foldhash,
    /// seeded; std's SipHash cost about 250 instructions a look-up, and a request's writes are
    /// bounded by the setvars its rules run, so a crafted collision slows one request at most).
    over: HashMap<String, Option<String>, foldhash::fast::RandomState>,
}

impl Tx<'_> {
    fn get(&self, k: &str) -> Option<&str> {
        match self.over.get(k) {
            Some(v) => v.as_deref(),
            None => self.base.get(k).map(String::as_str),
        }
    }

    fn set(&mut self, k: &str, v: String) {
        match self.over.get_mut(k) {
            Some(slot) => *slot = Some(v),
            None => {
                self.over.insert(k.to_owned(), Some(v));
            }
        }
    }

    fn remove(&mut self, k: &str) {
        match self.over.get_mut(k) {
            Some(slot) => *slot = None,
            None => {
                self.over.insert(k.to_owned(), None);
            }
        }
    }

    /// The variables a selector names, sorted by name.
    fn walk(&self, sel: &Sel) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .base
            .iter()
            .filter(|(k, _)| selected(sel, k.as_bytes()) && !self.over.contains_key(*k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(self.over.iter().filter_map(|(k, v)| match v {
                Some(v) if selected(sel, k.as_bytes()) => Some((k.as_str(), v.as_str())),
                _ => None,
            }))
            .collect();
        out.sort_unstable();
        out
    }
}

/// What rules write and read besides the request's values.
struct State<'e, 'a> {
    memo: &'e Memo,
    input: &'a Input<'a>,
    headers: Vec<(String, &'a [u8])>,
    tx: Tx<'e>,
    processor: Option<String>,
    matched_var: Vec<u8>,
    matched_var_name: String,
    matched_vars: Vec<(String, Vec<u8>)>,
    removed: Vec<u32>,
    removed_targets: Vec<(u32, String)>,
    engine_off: bool,
    outcome: Outcome,
}

/// A request in evaluation.
struct Txn<'e, 'a> {
    engine: &'e Engine,
    table: Table,
    st: State<'e, 'a>,
    phase: u8,
    /// Scratch lists reused by every link (no allocation per rule).
    srcs: Vec<(Coll, Src<'e>)>,
    buf: Vec<Src<'e>>,
}

/// Where a target's values come from.
enum Src<'e> {
    /// A value of the table (see [`Table`]).
    Entry(u32),
    /// One transaction variable, read when tested.
    Tx(&'e str),
    /// A value computed for this look-up (MATCHED_*, a TX walk).
    Own(String, Vec<u8>),
    /// How many values a target has (`&ARGS`).
    Count(Coll, usize),
}

impl<'e, 'a> Txn<'e, 'a> {
    fn new(engine: &'e Engine, input: &'a Input<'a>, mut table: Table) -> Self {
        let mut headers: Vec<(String, &[u8])> = Vec::with_capacity(input.headers.len());
        let has_host = input.headers.iter().any(|(k, _)| k == "host");
        for (k, v) in input.headers {
            if k == ":authority" && !has_host {
                headers.push(("host".into(), v.as_slice()));
            } else if !k.starts_with(':') {
                headers.push((k.to_ascii_lowercase(), v.as_slice()));
            }
        }
        let uri = input.uri.split_once('#').map_or(input.uri, |(u, _)| u);
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let mut args = Vec::new();
        if let Some(q) = query {
            body::urlencoded(q.as_bytes(), &mut args);
        }
        table.push(Coll::ArgsGet, args.into_iter().map(|p| (p.name, p.value)));
        let mut cookies = Vec::new();
        for (k, v) in &headers {
            if k == "cookie" {
                body::cookies(v, &mut cookies);
            }
        }
        table.push(
            Coll::Cookies,
            cookies.into_iter().map(|p| (p.name, p.value)),
        );
        table.push(
            Coll::Headers,
            headers.iter().map(|(k, v)| (k.as_bytes(), *v)),
        );
        // The URI and file name are percent-decoded (not `+`); the raw forms are not.
        table.scalar(Coll::Uri, &percent_decode(uri.as_bytes()));
        table.scalar(Coll::UriRaw, input.uri.as_bytes());
        let file = percent_decode(path.as_bytes());
        let base = file
            .rsplit(|c| *c == b'/' || *c == b'\\')
            .next()
            .unwrap_or(&file);
        table.scalar(Coll::Filename, &file);
        table.scalar(Coll::Basename, base);
        let start = table.entries.len();
        table.add(&[], input.method.as_bytes());
        table.bytes.push(b' ');
        table.bytes.extend_from_slice(input.uri.as_bytes());
        table.bytes.push(b' ');
        table.bytes.extend_from_slice(input.protocol.as_bytes());
        if let Some(e) = table.entries.last_mut() {
            e.value = input.method.len() + input.uri.len() + input.protocol.len() + 2;
        }
        table.close(Coll::Line, start);
        table.scalar(Coll::Method, input.method.as_bytes());
        table.scalar(Coll::Protocol, input.protocol.as_bytes());
        if let Some(q) = query {
            table.scalar(Coll::QueryString, q.as_bytes());
        }
        if let Some(ip) = input.remote_addr {
            table.scalar(Coll::RemoteAddr, ip.to_string().as_bytes());
        }
        // The body processor ModSecurity's recommended configuration picks by Content-Type.
        let processor = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .and_then(|(_, v)| processor_for(v));
        Txn {
            engine,
            table,
            st: State {
                memo: &engine.memo,
                input,
                headers,
                tx: Tx {
                    base: &engine.base,
                    over: HashMap::with_hasher(foldhash::fast::RandomState::default()),
                },
                processor,
                matched_var: Vec::new(),
                matched_var_name: String::new(),
                matched_vars: Vec::new(),
                removed: Vec::new(),
                removed_targets: Vec::new(),
                engine_off: false,
                outcome: Outcome::default(),
            },
            phase: 1,
            srcs: Vec::with_capacity(64),
            buf: Vec::with_capacity(64),
        }
    }

    /// Phase 2 starts: the body's collections join the table.
    fn process_body(&mut self) {
        self.phase = 2;
        let Some(b) = self.st.input.body else {
            return;
        };
        let t = &mut self.table;
        let pairs = |v: Vec<Pair>| v.into_iter().map(|p| (p.name, p.value));
        // REQUEST_BODY holds the raw body whatever the processor.
        t.scalar(Coll::Body, b);
        t.scalar(Coll::BodyLength, b.len().to_string().as_bytes());
        let mut error: Option<&'static str> = None;
        let mut post = Vec::new();
        let mut json = Vec::new();
        let mut multipart: Option<Multipart> = None;
        match self.st.processor.as_deref() {
            Some("URLENCODED") => body::urlencoded(b, &mut post),
            Some("JSON") => {
                if let Err(e) = body::json(b, &mut json) {
                    error = Some(e);
                }
            }
            Some("MULTIPART") => {
                let ct = self.st.header("content-type").unwrap_or(&[]);
                let m = body::multipart(ct, b);
                error = m.error;
                post.extend(m.args.iter().cloned());
                multipart = Some(m);
            }
            Some("XML") => {
                // After an error XML:/* still holds the text read before it, as libxml2
                // leaves it.
                let p = body::xml_parse(b);
                error = p.error;
                t.scalar(Coll::Xml, &p.text);
            }
            _ => {}
        }
        let combined: usize = t
            .range(Coll::ArgsGet)
            .filter_map(|i| t.entries.get(i as usize))
            .map(|e| e.name + e.value)
            .chain(
                post.iter()
                    .chain(json.iter())
                    .map(|p| p.name.len() + p.value.len()),
            )
            .sum();
        t.scalar(Coll::ArgsCombinedSize, combined.to_string().as_bytes());
        t.push(Coll::ArgsPost, pairs(post));
        t.push(Coll::ArgsJson, pairs(json));
        if let Some(m) = multipart {
            let flag = |b: bool| if b { b"1" } else { b"0" };
            t.scalar(Coll::MultipartStrict, flag(m.strict_error));
            t.scalar(Coll::MultipartUnmatched, flag(m.unmatched_boundary));
            t.scalar(Coll::FilesCombinedSize, b"0");
            t.push(Coll::Files, pairs(m.files));
            t.push(Coll::PartHeaders, pairs(m.part_headers));
        }
        if self.st.processor.as_deref() != Some("URLENCODED") {
            t.scalar(
                Coll::ReqbodyError,
                if error.is_some() { b"1" } else { b"0" },
            );
        }
        if let Some(e) = error {
            t.scalar(Coll::ReqbodyErrorMsg, e.as_bytes());
        }
        // The groups' values change with the body's.
        t.groups.clear();
        t.group_values.clear();
        t.unions.clear();
        t.group_missed.clear();
    }

    fn run(&mut self, engine: &'e Engine, phase: u8) {
        let steps = if phase == 1 {
            &engine.phase1
        } else {
            &engine.phase2
        };
        let mut skip_to: Option<usize> = None;
        for step in steps {
            if self.st.engine_off {
                return;
            }
            match *step {
                Step::Marker(m) => {
                    if skip_to == Some(m) {
                        skip_to = None;
                    }
                }
                Step::Rule(_) if skip_to.is_some() => {}
                Step::Rule(i) => {
                    let Some(rule) = engine.rules.get(i) else {
                        continue;
                    };
                    if rule.never || self.st.removed.contains(&rule.id) {
                        continue;
                    }
                    if rule.always {
                        self.st.outcome.matched.push(Match {
                            id: rule.id,
                            score: rule.score,
                            logged: rule.log,
                        });
                        if let Some(m) = rule.skip_after {
                            skip_to = Some(m);
                        }
                        continue;
                    }
                    if self.rule(rule) {
                        if let Some(m) = rule.skip_after {
                            skip_to = Some(m);
                        }
                    }
                }
            }
        }
    }

    /// Evaluates a rule and its chain; records it when the whole chain matched.
    fn rule(&mut self, rule: &'e CRule) -> bool {
        // Matched variables are cleared after every rule.
        self.st.matched_vars.clear();
        self.st.matched_var.clear();
        self.st.matched_var_name.clear();
        let mut score = 0;
        for link in &rule.links {
            let (matched, s) = self.link(rule.id, link);
            score += s;
            if !matched {
                return false;
            }
        }
        for link in &rule.links {
            for c in &link.ctl {
                match c {
                    // REQUEST_BODY is always filled here.
                    Ctl::ForceRequestBodyVariable => {}
                    Ctl::RequestBodyProcessor(p) => self.st.processor = Some(p.clone()),
                    Ctl::RuleEngineOff => self.st.engine_off = true,
                    Ctl::RuleRemoveById(id) => self.st.removed.push(*id),
                    Ctl::RuleRemoveTargetById(id, t) => {
                        self.st.removed_targets.push((*id, t.clone()))
                    }
                }
            }
        }
        self.st.outcome.matched.push(Match {
            id: rule.id,
            score,
            logged: rule.log,
        });
        true
    }

    /// The values a target yields, as sources.
    fn sources(&self, t: &'e CTarget, out: &mut Vec<Src<'e>>) {
        let start = out.len();
        let table = &self.table;
        let entries = |out: &mut Vec<Src>, coll: Coll, names: bool| {
            for i in table.range(coll) {
                if selected(&t.sel, table.name(i)) {
                    out.push(Src::Entry(i * 2 + u32::from(names)));
                }
            }
        };
        let label = t.coll.label();
        let own = |out: &mut Vec<Src>, v: &[u8]| out.push(Src::Own(label.to_string(), v.to_vec()));
        match t.coll {
            Coll::Args | Coll::ArgsNames => {
                let names = t.coll == Coll::ArgsNames;
                for c in [Coll::ArgsGet, Coll::ArgsPost, Coll::ArgsJson] {
                    entries(out, c, names);
                }
            }
            Coll::ArgsGet | Coll::ArgsPost => entries(out, t.coll, false),
            Coll::ArgsGetNames => entries(out, Coll::ArgsGet, true),
            Coll::ArgsPostNames => entries(out, Coll::ArgsPost, true),
            Coll::Cookies => entries(out, Coll::Cookies, false),
            Coll::CookiesNames => entries(out, Coll::Cookies, true),
            Coll::Headers => entries(out, Coll::Headers, false),
            Coll::HeadersNames => entries(out, Coll::Headers, true),
            Coll::Files => entries(out, Coll::Files, false),
            Coll::FilesNames => entries(out, Coll::Files, true),
            Coll::PartHeaders => entries(out, Coll::PartHeaders, false),
            Coll::ReqbodyProcessor => {
                if let Some(p) = &self.st.processor {
                    own(out, p.as_bytes());
                }
            }
            Coll::Tx => match &t.sel {
                // One variable (names are lower case): a look-up, not a walk.
                Sel::Name(n) => {
                    if self.st.tx.get(n).is_some() {
                        out.push(Src::Tx(n));
                    }
                }
                sel => {
                    for (k, v) in self.st.tx.walk(sel) {
                        out.push(Src::Own(format!("TX:{k}"), v.as_bytes().to_vec()));
                    }
                }
            },
            Coll::MatchedVar => own(out, &self.st.matched_var),
            Coll::MatchedVarName => own(out, self.st.matched_var_name.as_bytes()),
            Coll::MatchedVars | Coll::MatchedVarsNames => {
                for (n, v) in &self.st.matched_vars {
                    let value = if t.coll == Coll::MatchedVars {
                        v.clone()
                    } else {
                        n.as_bytes().to_vec()
                    };
                    out.push(Src::Own(format!("MATCHED_VARS:{n}"), value));
                }
            }
            // Scalars: the entry itself, whatever the selector (`XML:/*` names an XPath: the
            // whole text).
            c => out.extend(table.range(c).map(|i| Src::Entry(i * 2))),
        }
        if t.count {
            let n = out.len() - start;
            out.truncate(start);
            out.push(Src::Count(t.coll, n));
        }
    }

    /// The name a matched value reads as (`ARGS:q`).
    fn name_of(&self, target: Coll, src: &Src<'_>) -> String {
        match src {
            Src::Own(n, _) => n.clone(),
            Src::Count(c, _) => format!("&{}", c.label()),
            Src::Tx(k) => format!("TX:{k}"),
            Src::Entry(v) => {
                let label = target.label();
                match self.table.name(*v / 2) {
                    name if !name.is_empty() => {
                        format!("{label}:{}", String::from_utf8_lossy(name))
                    }
                    _ => label.to_string(),
                }
            }
        }
    }

    /// Evaluates one link; returns whether any value matched and the score its setvars added.
    fn link(&mut self, id: u32, link: &'e CLink) -> (bool, u32) {
        let mut srcs = std::mem::take(&mut self.srcs);
        srcs.clear();
        // A `ctl` of this request removed a target of this rule: the group's list does not
        // apply.
        let ctl_removed = self.st.removed_targets.iter().any(|(r, _)| *r == id);
        match link.group {
            Some(g) if !ctl_removed => {
                self.resolve_group(g);
                if link.pure && self.table.group_missed(self.engine, g, link.gid) {
                    self.srcs = srcs;
                    return (false, 0);
                }
                if link.filtered
                    && !self
                        .table
                        .group_flagged(self.engine, g, link.chain, link.gid)
                {
                    if link.pure {
                        self.table.group_learn(self.engine, g, link.gid);
                    }
                    self.srcs = srcs;
                    return (false, 0);
                }
                let list = self.table.group(g);
                if let Some(list) = self.table.group_values.get(list) {
                    srcs.extend(list.iter().map(|(c, v)| (*c, Src::Entry(*v))));
                }
            }
            _ => self.link_sources(id, link, &mut srcs),
        }
        let mut any = false;
        let mut score = 0;
        for (coll, src) in srcs.drain(..) {
            let hits = self.test_source(link, &src);
            if hits.is_empty() {
                continue;
            }
            let name = self.name_of(coll, &src);
            for (captures, value) in hits {
                any = true;
                if link.capture {
                    for (i, c) in captures.into_iter().enumerate() {
                        let key = i.to_string();
                        self.st
                            .tx
                            .set(&key, String::from_utf8_lossy(&c).into_owned());
                    }
                }
                self.st.matched_var = value;
                self.st.matched_var_name = name.clone();
                self.st
                    .matched_vars
                    .push((name.clone(), self.st.matched_var.clone()));
                for sv in &link.setvars {
                    score += self.st.setvar(sv);
                }
            }
        }
        self.srcs = srcs;
        (any, score)
    }

    /// Resolves group `g`'s values for this phase (once).
    fn resolve_group(&mut self, g: u32) {
        if self
            .table
            .groups
            .get(g as usize)
            .is_some_and(|(a, _)| *a != NOT_YET)
        {
            return;
        }
        let Some(group) = self.engine.groups.get(g as usize) else {
            return;
        };
        let mut buf = std::mem::take(&mut self.buf);
        let start = self.table.group_values.len();
        for t in &group.targets {
            buf.clear();
            self.sources(t, &mut buf);
            for s in buf.drain(..) {
                if let Src::Entry(v) = s {
                    if !self.excluded(&group.excludes, t.coll, v) {
                        self.table.group_values.push((t.coll, v));
                    }
                }
            }
        }
        self.buf = buf;
        let range = (
            u32::try_from(start).unwrap_or(NOT_YET),
            u32::try_from(self.table.group_values.len()).unwrap_or(NOT_YET),
        );
        let at = g as usize;
        if self.table.groups.len() <= at {
            self.table.groups.resize(at + 1, (NOT_YET, NOT_YET));
        }
        if let Some(slot) = self.table.groups.get_mut(at) {
            *slot = range;
        }
    }

    /// Whether an exclusion (`!REQUEST_COOKIES:/__utm/`) drops value `v` of collection `coll`.
    fn excluded(&self, excludes: &[CTarget], coll: Coll, v: u32) -> bool {
        if excludes.is_empty() {
            return false;
        }
        let name = self.table.name(v / 2);
        excludes
            .iter()
            .any(|x| x.coll == coll && selected(&x.sel, name))
    }

    /// A link's sources, target by target (links outside any group, and rules a `ctl` changed).
    fn link_sources(&mut self, id: u32, link: &'e CLink, srcs: &mut Vec<(Coll, Src<'e>)>) {
        let mut buf = std::mem::take(&mut self.buf);
        for t in &link.targets {
            buf.clear();
            self.sources(t, &mut buf);
            for s in buf.drain(..) {
                let dropped = match &s {
                    Src::Entry(v) => self.excluded(&link.excludes, t.coll, *v),
                    _ => false,
                };
                if !dropped {
                    srcs.push((t.coll, s));
                }
            }
        }
        self.buf = buf;
        if !self.st.removed_targets.is_empty() {
            let gone: Vec<String> = self
                .st
                .removed_targets
                .iter()
                .filter(|(r, _)| *r == id)
                .map(|(_, t)| t.to_ascii_lowercase())
                .collect();
            if !gone.is_empty() {
                srcs.retain(|(c, s)| !gone.contains(&self.name_of(*c, s).to_ascii_lowercase()));
            }
        }
        if link.targets.is_empty() {
            // A SecAction: one empty value, always.
            srcs.push((Coll::Tx, Src::Own(String::new(), Vec::new())));
        }
    }

    /// The operator over one source: every success (once, or per changed step with
    /// `multiMatch`), with its captures and the value it matched.
    #[allow(clippy::type_complexity)]
    fn test_source(&mut self, link: &CLink, src: &Src<'_>) -> Vec<(Vec<Vec<u8>>, Vec<u8>)> {
        let mut hits = Vec::new();
        if let (Src::Tx(k), false, true) = (src, link.multi_match, link.transforms.is_empty()) {
            let value = self.st.tx.get(k).unwrap_or("").as_bytes();
            if let Some(c) = self.st.test(link, value) {
                hits.push((c, value.to_vec()));
            }
            return hits;
        }
        if let (Src::Entry(v), false) = (src, link.multi_match) {
            if link.pure && self.table.missed(self.engine, *v, link.gid) {
                return hits;
            }
            if link.filtered && !self.table.flagged(self.engine, *v, link.chain, link.gid) {
                if link.pure {
                    self.table.learn(self.engine, *v, link.gid);
                }
                return hits;
            }
            let value = self.table.value(self.engine, *v, link.chain);
            match self.st.test(link, value) {
                Some(c) => hits.push((c, value.to_vec())),
                None if link.pure => self.table.learn(self.engine, *v, link.gid),
                None => {}
            }
            return hits;
        }
        if let (Src::Count(_, n), false, true) = (src, link.multi_match, link.transforms.is_empty())
        {
            let mut digits = [0u8; 20];
            let value = decimal(*n, &mut digits);
            if let Some(c) = self.st.test(link, value) {
                hits.push((c, value.to_vec()));
            }
            return hits;
        }
        if let (Src::Entry(v), true) = (src, link.pure) {
            if self.table.missed(self.engine, *v, link.gid) {
                return hits;
            }
        }
        let value: Vec<u8> = match src {
            Src::Own(_, v) => v.clone(),
            Src::Count(_, n) => n.to_string().into_bytes(),
            Src::Tx(k) => self.st.tx.get(k).unwrap_or("").as_bytes().to_vec(),
            Src::Entry(v) => self.table.raw(*v).to_vec(),
        };
        if link.multi_match {
            let mut cur = value;
            if let Some(c) = self.st.test(link, &cur) {
                hits.push((c, cur.clone()));
            }
            for t in &link.transforms {
                let mut next = Vec::new();
                if t.apply(&cur, &mut next) {
                    cur = next;
                    if let Some(c) = self.st.test(link, &cur) {
                        hits.push((c, cur.clone()));
                    }
                }
            }
        } else {
            let v = transform::apply_all(&link.transforms, &value, &mut self.table.scratch);
            if let Some(c) = self.st.test(link, &v) {
                hits.push((c, v));
            }
        }
        if let (Src::Entry(v), true, true) = (src, link.pure, hits.is_empty()) {
            self.table.learn(self.engine, *v, link.gid);
        }
        hits
    }
}

impl State<'_, '_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The operator over one value: `Some(captures)` on a match (after negation).
    fn test(&self, link: &CLink, v: &[u8]) -> Option<Vec<Vec<u8>>> {
        let (hit, caps) = self.op(&link.op, v, link.capture);
        if hit != link.negated {
            Some(caps)
        } else {
            None
        }
    }

    fn op(&self, op: &COp, v: &[u8], capture: bool) -> (bool, Vec<Vec<u8>>) {
        let plain = |b: bool| (b, Vec::new());
        match op {
            COp::Rx(re) => {
                if capture {
                    match re.captures(v) {
                        Some(c) => (
                            true,
                            c.iter()
                                .take(10)
                                .map(|m| m.map(|m| m.as_bytes().to_vec()).unwrap_or_default())
                                .collect(),
                        ),
                        None => plain(false),
                    }
                } else {
                    plain(re.is_match(v))
                }
            }
            COp::Pm(ac) => match ac.find(v) {
                Some(m) => (true, vec![v.get(m.range()).unwrap_or(&[]).to_vec()]),
                None => plain(false),
            },
            // A single word of letters, digits, `_`, `.` and `-` is one token: never an
            // injection to libinjection, so it is not tokenised at all.
            COp::Sqli | COp::Xss if plain_word(v) => plain(false),
            COp::Sqli => {
                let found = self.memo.get_or(Detector::Sqli, v, |v| {
                    let r = libinjectionrs::detect_sqli(v);
                    r.is_injection().then(|| {
                        r.fingerprint
                            .map(|f| f.to_string())
                            .unwrap_or_default()
                            .into_bytes()
                    })
                });
                match found {
                    Some(fp) => (true, vec![fp]),
                    None => plain(false),
                }
            }
            COp::Xss => {
                let found = self.memo.get_or(Detector::Xss, v, |v| {
                    libinjectionrs::detect_xss(v)
                        .is_injection()
                        .then(|| v.to_vec())
                });
                match found {
                    Some(c) => (true, vec![c]),
                    None => plain(false),
                }
            }
            COp::ByteRange(set) => plain(v.iter().any(|b| {
                set.get(usize::from(b / 64))
                    .is_some_and(|w| (w >> (b % 64)) & 1 == 0)
            })),
            COp::UrlEncoding => plain(bad_url_encoding(v)),
            COp::Utf8 => plain(std::str::from_utf8(v).is_err()),
            COp::Within(m) => {
                let hay = self.expand(m);
                plain(v.is_empty() || memchr::memmem::find(hay.as_bytes(), v).is_some())
            }
            COp::Num(cmp, m) => {
                let a = atoi(v);
                let b = atoi(self.expand(m).as_bytes());
                plain(match cmp {
                    Cmp::Eq => a == b,
                    Cmp::Ge => a >= b,
                    Cmp::Gt => a > b,
                    Cmp::Lt => a < b,
                    Cmp::Le => a <= b,
                })
            }
            COp::Streq(m) => plain(self.expand(m).as_bytes() == v),
            COp::BeginsWith(m) => plain(v.starts_with(self.expand(m).as_bytes())),
            COp::EndsWith(m) => plain(v.ends_with(self.expand(m).as_bytes())),
            COp::Contains(m) => {
                let needle = self.expand(m);
                plain(memchr::memmem::find(v, needle.as_bytes()).is_some())
            }
            COp::ContainsWord(m) => plain(contains_word(v, self.expand(m).as_bytes())),
            COp::Ip(list) => {
                let ip = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<IpAddr>().ok());
                plain(ip.is_some_and(|ip| list.iter().any(|c| c.contains(ip))))
            }
            COp::Always => plain(true),
            COp::Never => plain(false),
        }
    }

    fn expand<'s>(&'s self, m: &'s Macro) -> Cow<'s, str> {
        match m.0.as_slice() {
            [] => return Cow::Borrowed(""),
            [Part::Lit(s)] => return Cow::Borrowed(s),
            [Part::Tx(k)] => return Cow::Borrowed(self.tx.get(k).unwrap_or("")),
            _ => {}
        }
        let mut out = String::new();
        for p in &m.0 {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Tx(k) => {
                    if let Some(v) = self.tx.get(k) {
                        out.push_str(v);
                    }
                }
                Part::MatchedVar => out.push_str(&String::from_utf8_lossy(&self.matched_var)),
                Part::MatchedVarName => out.push_str(&self.matched_var_name),
                Part::RuleId => {}
                Part::RemoteAddr => {
                    if let Some(ip) = self.input.remote_addr {
                        out.push_str(&ip.to_string());
                    }
                }
                Part::Header(h) => {
                    if let Some(v) = self.header(h) {
                        out.push_str(&String::from_utf8_lossy(v));
                    }
                }
                Part::Empty => {}
            }
        }
        Cow::Owned(out)
    }

    /// Runs one setvar; returns what it added to the inbound anomaly score.
    fn setvar(&mut self, sv: &CSetVar) -> u32 {
        let name: Cow<'_, str> = match &sv.lower {
            Some(n) => Cow::Borrowed(n.as_str()),
            None => Cow::Owned(self.expand(&sv.name).to_ascii_lowercase()),
        };
        match sv.op {
            SetOp::Set => {
                let value = self.expand(&sv.value).into_owned();
                self.tx.set(&name, value);
                0
            }
            SetOp::Delete => {
                self.tx.remove(&name);
                0
            }
            SetOp::Add | SetOp::Sub => {
                let d = atoi(self.expand(&sv.value).as_bytes());
                let cur = self.tx.get(&name).map_or(0, |v| atoi(v.as_bytes()));
                let new = if sv.op == SetOp::Add {
                    cur.saturating_add(d)
                } else {
                    cur.saturating_sub(d)
                };
                self.tx.set(&name, new.to_string());
                if sv.scores && sv.op == SetOp::Add {
                    u32::try_from(d.max(0)).unwrap_or(0)
                } else {
                    0
                }
            }
        }
    }
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    buf.get(at..).unwrap_or(&[])
}

fn plain_word(v: &[u8]) -> bool {
    v.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn selected(sel: &Sel, name: &[u8]) -> bool {
    match sel {
        Sel::All => true,
        Sel::Name(n) => n.as_bytes().eq_ignore_ascii_case(name),
        Sel::Contains(lit) => {
            lit.is_empty() || name.windows(lit.len()).any(|w| w.eq_ignore_ascii_case(lit))
        }
        Sel::Prefix(lit) => name
            .get(..lit.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(lit)),
        Sel::Regex(re) => re.is_match(name),
    }
}

fn processor_for(content_type: &[u8]) -> Option<String> {
    let ct = String::from_utf8_lossy(content_type).to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or("").trim();
    if media == "application/x-www-form-urlencoded" {
        Some("URLENCODED".into())
    } else if media.starts_with("multipart/form-data") {
        Some("MULTIPART".into())
    } else if ct.starts_with("application/json") {
        Some("JSON".into())
    } else if ct.starts_with("application/xml")
        || ct.starts_with("text/xml")
        || ct.starts_with("application/soap+xml")
    {
        Some("XML".into())
    } else {
        None
    }
}

/// `%XX` decoded, everything else (`+`, broken escapes) as it is.
fn percent_decode(v: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while let Some(&c) = v.get(i) {
        if c == b'%' {
            if let (Some(a), Some(b)) = (
                v.get(i + 1).and_then(|x| hex(*x)),
                v.get(i + 2).and_then(|x| hex(*x)),
            ) {
                out.push((a * 16 + b) as u8);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// C's `atoi`: optional sign, leading digits, 0 otherwise.
pub(super) fn atoi(v: &[u8]) -> i64 {
    let s = v.trim_ascii_start();
    let (neg, digits) = match s.split_first() {
        Some((b'-', r)) => (true, r),
        Some((b'+', r)) => (false, r),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

fn bad_url_encoding(v: &[u8]) -> bool {
    let mut it = v.iter();
    while let Some(c) = it.next() {
        if *c == b'%' {
            let a = it.next();
            let b = it.next();
            match (a, b) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {}
                _ => return true,
            }
        }
    }
    false
}

fn contains_word(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let word = |b: Option<&u8>| b.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
    memchr::memmem::find_iter(hay, needle).any(|p| {
        let before = p.checked_sub(1).and_then(|i| hay.get(i));
        let after = hay.get(p + needle.len());
        !word(before) && !word(after)
    })
}
