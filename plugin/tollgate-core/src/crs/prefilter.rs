//! Literal prefilters: for each pattern, a set of strings one of which every match contains.
//!
//! The engine runs one Aho-Corasick pass per value and transformation chain over the literals of
//! every rule that reads it, and runs a rule's regular expression only on values that contain
//! one of its literals: most values never meet most patterns. The set comes from the pattern's
//! syntax tree (`regex-syntax`), ASCII-lower-cased (the automaton compares case-insensitively),
//! and is `None` when no such set exists (then the pattern always runs).

use regex_syntax::hir::{Class, Hir, HirKind};

/// At most this many strings in one set (an alternation of more runs without a prefilter).
const MAX_SET: usize = 256;

/// The literals one of which every match of `pattern` (already translated) contains.
#[allow(clippy::result_large_err)]
pub fn required(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .dot_matches_new_line(true)
        .multi_line(true)
        .build()
        .parse(pattern)
        .ok()?;
    let set = need(&hir)?;
    if set.is_empty() || set.iter().any(Vec::is_empty) {
        return None;
    }
    Some(set)
}

/// One byte a node matches exactly, case aside: a one-byte literal, or a class of one ASCII
/// letter in both cases (what `(?i)` makes of a letter) or of one byte.
fn single(h: &Hir) -> Option<u8> {
    match h.kind() {
        HirKind::Literal(l) => match l.0.as_ref() {
            [b] => Some(b.to_ascii_lowercase()),
            _ => None,
        },
        HirKind::Class(Class::Bytes(c)) => {
            let mut bytes = c.iter().flat_map(|r| r.start()..=r.end());
            one_letter(&mut bytes)
        }
        HirKind::Class(Class::Unicode(c)) => {
            let mut chars = c
                .iter()
                .flat_map(|r| (r.start() as u32)..=(r.end() as u32))
                .take(3)
                .map(|u| u8::try_from(u).unwrap_or(0x80));
            one_letter(&mut chars)
        }
        _ => None,
    }
}

/// `[a]`, `[aA]` → `a`; anything else → `None`.
fn one_letter(it: &mut dyn Iterator<Item = u8>) -> Option<u8> {
    let first = it.next()?;
    match (it.next(), it.next()) {
        (None, _) if first < 0x80 => Some(first.to_ascii_lowercase()),
        (Some(second), None)
            if first < 0x80
                && first.is_ascii_alphabetic()
                && first.eq_ignore_ascii_case(&second) =>
        {
            Some(first.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// How good a set is as a prefilter: its shortest string (longer is rarer), then fewer strings.
fn quality(set: &[Vec<u8>]) -> (usize, std::cmp::Reverse<usize>) {
    (
        set.iter().map(Vec::len).min().unwrap_or(0),
        std::cmp::Reverse(set.len()),
    )
}

fn need(h: &Hir) -> Option<Vec<Vec<u8>>> {
    match h.kind() {
        HirKind::Literal(l) => Some(vec![l.0.to_ascii_lowercase()]),
        HirKind::Class(_) => single(h).map(|b| vec![vec![b]]),
        HirKind::Capture(c) => need(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => need(&r.sub),
        HirKind::Repetition(_) | HirKind::Look(_) | HirKind::Empty => None,
        HirKind::Alternation(alts) => {
            let mut out: Vec<Vec<u8>> = Vec::new();
            for a in alts {
                out.extend(need(a)?);
                if out.len() > MAX_SET {
                    return None;
                }
            }
            out.sort();
            out.dedup();
            Some(out)
        }
        HirKind::Concat(children) => {
            let mut best: Option<Vec<Vec<u8>>> = None;
            let consider = |set: Vec<Vec<u8>>, best: &mut Option<Vec<Vec<u8>>>| {
                if best.as_ref().is_none_or(|b| quality(&set) > quality(b)) {
                    *best = Some(set);
                }
            };
            // A run of exactly-known bytes is a literal of its own.
            let mut run: Vec<u8> = Vec::new();
            for c in children {
                match (c.kind(), single(c)) {
                    (_, Some(b)) => run.push(b),
                    (HirKind::Literal(l), None) => run.extend(l.0.to_ascii_lowercase()),
                    _ => {
                        if !run.is_empty() {
                            consider(vec![std::mem::take(&mut run)], &mut best);
                        }
                        if let Some(set) = need(c) {
                            consider(set, &mut best);
                        }
                    }
                }
            }
            if !run.is_empty() {
                consider(vec![run], &mut best);
            }
            best
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(p: &str) -> Option<Vec<String>> {
        required(p).map(|s| {
            s.into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect()
        })
    }

    #[test]
    fn literals_that_every_match_contains() {
        assert_eq!(
            req("(?i)union.*?select.*?from"),
            Some(vec!["select".into()])
        );
        assert_eq!(req("a(?:bc|de)f"), Some(vec!["bc".into(), "de".into()]));
        assert_eq!(req("x+yz"), Some(vec!["yz".into()]));
        assert_eq!(req("(?i)<script"), Some(vec!["<script".into()]));
        assert_eq!(req(r"^\d+$"), None);
        assert_eq!(req("a?b?"), None);
        assert_eq!(req("(?:foo|)"), None);
    }

    #[test]
    fn a_set_never_misses_a_match() {
        for (p, hay) in [
            ("(?i)union.*?select.*?from", "UnIoN all SeLeCt x FROM y"),
            ("(?i)(?:java|vb)script:", "JaVaScRiPt:alert(1)"),
            ("a(?:bc|de)f", "xxadefxx"),
        ] {
            let set = required(p).unwrap();
            let lower = hay.to_ascii_lowercase();
            assert!(
                set.iter()
                    .any(|s| lower.as_bytes().windows(s.len()).any(|w| w == s.as_slice())),
                "{p} on {hay}"
            );
        }
    }
}
