//! Normalisation: the one canonical form every detector reads, so an encoding trick cannot walk
//! a payload past a detector that would see it in plain text.
//!
//! In order, each step one linear pass over a bounded buffer:
//! 1. percent-decoding, repeated while it still changes something (at most [`MAX_DECODES`]
//!    times), `%uXXXX` included, and `+` as a space in form and query values;
//! 2. overlong UTF-8 forms of `.`, `/` and `\` (`%c0%ae`, `%c0%af`, `%c1%9c`) folded to ASCII;
//!    full-width forms (U+FF01–U+FF5E) and the ideographic space folded to ASCII;
//! 3. ASCII case folded to lower case;
//! 4. NUL bytes removed, other control characters turned into spaces (line breaks stay, as `\n`:
//!    a shell reads them as command separators);
//! 5. SQL block comments: `/*…*/` becomes a space, a MySQL versioned comment `/*!50000…*/`
//!    keeps its content (MySQL runs it);
//! 6. runs of spaces collapsed to one, and the ends trimmed.
//!
//! What the steps saw is kept in [`Seen`]: a NUL byte, a line break, an invalid escape, a value
//! encoded more than once. The protocol detector reports those.

/// Percent-decoding passes at most (a value encoded three times over is already an anomaly).
pub const MAX_DECODES: usize = 4;

/// What normalisation met on the way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// A NUL byte (raw or decoded).
    pub nul: bool,
    /// A CR or LF (raw or decoded).
    pub line_break: bool,
    /// Another control character.
    pub control: bool,
    /// A `%` not followed by two hex digits.
    pub bad_escape: bool,
    /// Decoding once left more escapes to decode.
    pub multi_encoded: bool,
}

/// Normalises `raw` into `out` (cleared first). `form` decodes `+` as a space (query strings,
/// form bodies).
pub fn normalize(raw: &[u8], form: bool, out: &mut Vec<u8>) -> Seen {
    // Most values are plain printable ASCII with nothing to decode, fold or squeeze: lower-case
    // them in one pass.
    if is_plain(raw, form) {
        out.clear();
        out.extend(raw.iter().map(u8::to_ascii_lowercase));
        return Seen::default();
    }
    let mut seen = Seen::default();
    let mut a: Vec<u8> = Vec::with_capacity(raw.len());
    let mut b: Vec<u8> = Vec::with_capacity(raw.len());
    let mut changed = percent_decode(raw, form, &mut a, &mut seen.bad_escape);
    let mut passes = 1;
    while changed && passes < MAX_DECODES && a.contains(&b'%') {
        let mut ignored = false;
        b.clear();
        changed = percent_decode(&a, false, &mut b, &mut ignored);
        if changed {
            seen.multi_encoded = true;
        }
        std::mem::swap(&mut a, &mut b);
        passes += 1;
    }
    b.clear();
    fold_unicode(&a, &mut b);
    a.clear();
    controls_and_case(&b, &mut a, &mut seen);
    b.clear();
    sql_comments(&a, &mut b);
    out.clear();
    squeeze(&b, out);
    seen
}

/// Printable ASCII without `%`, `+` (in forms), `/*`, and without leading, trailing or doubled
/// spaces: normalisation would only fold its case.
fn is_plain(raw: &[u8], form: bool) -> bool {
    let mut prev = b' ';
    for &c in raw {
        let bad = !(0x20..0x7f).contains(&c)
            || c == b'%'
            || (form && c == b'+')
            || (prev == b'/' && c == b'*')
            || (prev == b' ' && c == b' ');
        if bad {
            return false;
        }
        prev = c;
    }
    prev != b' ' || raw.is_empty()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// One pass of percent-decoding; true if anything was decoded.
fn percent_decode(s: &[u8], form: bool, out: &mut Vec<u8>, bad: &mut bool) -> bool {
    let mut changed = false;
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'%' {
            let h = |k: usize| s.get(i + k).copied().and_then(hex);
            if let (Some(x), Some(y)) = (h(1), h(2)) {
                out.push(x << 4 | y);
                i += 3;
                changed = true;
                continue;
            }
            if matches!(s.get(i + 1), Some(b'u' | b'U')) {
                if let (Some(w), Some(x), Some(y), Some(z)) = (h(2), h(3), h(4), h(5)) {
                    let cp =
                        u32::from(w) << 12 | u32::from(x) << 8 | u32::from(y) << 4 | u32::from(z);
                    let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    changed = true;
                    continue;
                }
            }
            *bad = true;
            out.push(c);
        } else if c == b'+' && form {
            out.push(b' ');
            changed = true;
        } else {
            out.push(c);
        }
        i += 1;
    }
    changed
}

/// Overlong encodings of `.`, `/`, `\` and full-width forms to ASCII; other bytes as they are.
fn fold_unicode(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c < 0x80 {
            out.push(c);
            i += 1;
            continue;
        }
        let next = s.get(i + 1).copied();
        // Overlong two-byte forms (never valid UTF-8, but some decoders accept them).
        match (c, next) {
            (0xc0, Some(0xae)) => {
                out.push(b'.');
                i += 2;
                continue;
            }
            (0xc0, Some(0xaf)) => {
                out.push(b'/');
                i += 2;
                continue;
            }
            (0xc1, Some(0x9c)) => {
                out.push(b'\\');
                i += 2;
                continue;
            }
            (0xe0, Some(0x80)) => match s.get(i + 2) {
                Some(0xae) => {
                    out.push(b'.');
                    i += 3;
                    continue;
                }
                Some(0xaf) => {
                    out.push(b'/');
                    i += 3;
                    continue;
                }
                _ => {}
            },
            _ => {}
        }
        // A whole UTF-8 character: full-width forms (U+FF01..U+FF5E) and the ideographic space
        // to ASCII, and look-alikes a URL or path parser may fold: division and fraction
        // slashes, set minus, ideographic full stops, circled digits and letters, no-break
        // spaces.
        if let Some((ch, len)) = decode_char(s.get(i..).unwrap_or(&[])) {
            let cp = ch as u32;
            let folded = match cp {
                0xff01..=0xff5e => Some((cp - 0xfee0) as u8),
                0x3000 | 0x00a0 => Some(b' '),
                0x2215 | 0x2044 => Some(b'/'),
                0x2216 => Some(b'\\'),
                0x3002 | 0xff61 => Some(b'.'),
                0x24ea => Some(b'0'),
                0x2460..=0x2468 => Some(b'1' + (cp - 0x2460) as u8),
                0x24b6..=0x24cf => Some(b'a' + (cp - 0x24b6) as u8),
                0x24d0..=0x24e9 => Some(b'a' + (cp - 0x24d0) as u8),
                _ => None,
            };
            match folded {
                Some(b) => out.push(b),
                None => out.extend_from_slice(s.get(i..i + len).unwrap_or(&[])),
            }
            i += len;
            continue;
        }
        // Not UTF-8: a lone 0xA0 is Latin-1's no-break space, which some SQL parsers read as
        // a space.
        out.push(if c == 0xa0 { b' ' } else { c });
        i += 1;
    }
}

/// The UTF-8 character at the start of `s` and its length.
fn decode_char(s: &[u8]) -> Option<(char, usize)> {
    let len = match s.first()? {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let ch = std::str::from_utf8(s.get(..len)?).ok()?.chars().next()?;
    Some((ch, len))
}

fn controls_and_case(s: &[u8], out: &mut Vec<u8>, seen: &mut Seen) {
    for &c in s {
        match c {
            0 => seen.nul = true,
            b'\r' | b'\n' => {
                seen.line_break = true;
                out.push(b'\n');
            }
            b'\t' | 0x0b | 0x0c => out.push(b' '),
            0x01..=0x1f | 0x7f => {
                seen.control = true;
                out.push(b' ');
            }
            _ => out.push(c.to_ascii_lowercase()),
        }
    }
}

/// `/*…*/` to a space; `/*!NNNNN…*/` to its content. An unterminated comment stays as written
/// (SQL ends the statement there; the SQL detector reads it as a comment).
fn sql_comments(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'/' && s.get(i + 1) == Some(&b'*') {
            let body = i + 2;
            let Some(end) = find(s, body, b"*/") else {
                out.extend_from_slice(s.get(i..).unwrap_or(&[]));
                return;
            };
            if s.get(body) == Some(&b'!') {
                let mut k = body + 1;
                while s.get(k).is_some_and(u8::is_ascii_digit) {
                    k += 1;
                }
                out.push(b' ');
                out.extend_from_slice(s.get(k..end).unwrap_or(&[]));
            }
            out.push(b' ');
            i = end + 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
}

/// Position of `needle` in `s` at or after `from`.
pub(crate) fn find(s: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let hay = s.get(from..)?;
    hay.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn squeeze(s: &[u8], out: &mut Vec<u8>) {
    let mut space = true; // trims the start
    for &c in s {
        if c == b' ' {
            if !space {
                out.push(b' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    if out.last() == Some(&b' ') {
        out.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str, form: bool) -> (String, Seen) {
        let mut out = Vec::new();
        let seen = normalize(s.as_bytes(), form, &mut out);
        (String::from_utf8_lossy(&out).into_owned(), seen)
    }

    #[test]
    fn decodes_repeatedly_and_folds() {
        assert_eq!(norm("%252e%252e%252f", false).0, "../");
        assert!(norm("%252e", false).1.multi_encoded);
        assert_eq!(norm("a+b%20C", true).0, "a b c");
        assert_eq!(norm("a+b", false).0, "a+b");
        assert_eq!(norm("%u0027%U003C", false).0, "'<");
        assert_eq!(norm("%c0%ae%c0%ae%c0%af", false).0, "../");
        assert_eq!(norm("＜ｓｃｒｉｐｔ＞", false).0, "<script>");
        assert_eq!(norm("UNION/**/SELECT", false).0, "union select");
        assert_eq!(norm("/*!50000UNION*/ SELECT", false).0, "union select");
        assert_eq!(
            norm("a%00b", false),
            (
                "ab".into(),
                Seen {
                    nul: true,
                    ..Seen::default()
                }
            )
        );
        assert_eq!(norm(" a \t\t b%0a c ", false).0, "a b\n c");
        assert!(norm("100%zz", false).1.bad_escape);
        assert_eq!(norm("O'Brien", false).0, "o'brien");
        assert_eq!(norm("Zoë 山田", false).0, "zoë 山田");
    }

    #[test]
    fn bounded_passes() {
        // Five layers of encoding: decoded at most MAX_DECODES times.
        let mut s = String::from("'");
        for _ in 0..5 {
            s = s.replace('%', "%25").replace('\'', "%27");
        }
        let (out, seen) = norm(&s, false);
        assert!(seen.multi_encoded);
        assert!(out.starts_with('%'), "{out}");
    }
}
