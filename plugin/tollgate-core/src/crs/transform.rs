//! SecLang transformation functions (`t:urlDecodeUni`, `t:lowercase`, …), as the rules of the
//! OWASP Core Rule Set expect them.
//!
//! Each function works on bytes and follows libmodsecurity v3.0.x (its quirks included, since
//! the rule set is written and tested against them): invalid escapes are kept as they are,
//! decoders yield one byte per escape, and case folding is ASCII only. Every function makes a
//! bounded number of passes over its input, so the whole chain stays linear in the value.
//!
//! Where libmodsecurity releases differ, the newest behaviour is kept: `htmlEntityDecode` reads
//! every digit of a numeric entity and matches named entities by their whole name (the fixes
//! that followed 3.0.13), and `base64Decode` validates as the mbedTLS it links does.
//!
//! [`Transform::apply`] reports whether the output differs from the input. libmodsecurity's own
//! "changed" flag (which feeds `multiMatch`) means the same for most functions; where it is
//! computed loosely (for instance `cmdLine` compares lengths only, and `length` and the base64
//! and hex functions always say "changed"), this module gives the true answer, so that a caller
//! may keep its previous value whenever `apply` returns `false`.

use serde::{Deserialize, Serialize};

/// One SecLang transformation (`t:name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Transform {
    /// `t:lowercase`: ASCII letters to lower case.
    Lowercase,
    /// `t:uppercase`: ASCII letters to upper case.
    Uppercase,
    /// `t:urlDecode`: `%XX` decoded and `+` to a space; invalid `%` sequences kept.
    UrlDecode,
    /// `t:urlDecodeUni`: as `urlDecode`, plus IIS `%uXXXX` (its low byte, full-width ASCII folded).
    UrlDecodeUni,
    /// `t:htmlEntityDecode`: `&#DDD;`, `&#xHH;` and a few named entities, each to one byte.
    HtmlEntityDecode,
    /// `t:jsDecode`: JavaScript escapes (`\uHHHH`, `\xHH`, `\OOO`, `\n` and the like).
    JsDecode,
    /// `t:cssDecode`: CSS 2 escapes (`\HHHHHH`, an escaped newline, `\X`).
    CssDecode,
    /// `t:cmdLine`: the command-line normalisation of ModSecurity (quotes and carets removed, …).
    CmdLine,
    /// `t:compressWhitespace`: each run of whitespace to one space.
    CompressWhitespace,
    /// `t:removeWhitespace`: whitespace (and the bytes of a UTF-8 NBSP) removed.
    RemoveWhitespace,
    /// `t:removeNulls`: NUL bytes removed.
    RemoveNulls,
    /// `t:replaceNulls`: NUL bytes to spaces.
    ReplaceNulls,
    /// `t:replaceComments`: each C comment `/* … */` to one space.
    ReplaceComments,
    /// `t:removeComments`: C and HTML comments removed, the value cut at `--` or `#`.
    RemoveComments,
    /// `t:removeCommentsChar`: the comment markers `/*`, `*/`, `<!--`, `-->`, `--` and `#` removed.
    RemoveCommentsChar,
    /// `t:normalizePath` (or `normalisePath`): `.` and `..` segments resolved, `//` collapsed.
    NormalizePath,
    /// `t:normalizePathWin` (or `normalisePathWin`): as `normalizePath`, `\` read as `/`.
    NormalizePathWin,
    /// `t:utf8toUnicode`: multi-byte UTF-8 sequences to `%uHHHH`.
    Utf8ToUnicode,
    /// `t:length`: the length of the value, in decimal.
    Length,
    /// `t:hexEncode`: each byte to two lower-case hex digits.
    HexEncode,
    /// `t:hexDecode`: pairs of hex digits to bytes.
    HexDecode,
    /// `t:sqlHexDecode`: SQL hex literals (`0x414243`) decoded.
    SqlHexDecode,
    /// `t:base64Decode`: strict base64; an invalid value decodes to nothing.
    Base64Decode,
    /// `t:base64DecodeExt`: forgiving base64, skipping characters outside the alphabet.
    Base64DecodeExt,
    /// `t:base64Encode`: base64 with padding.
    Base64Encode,
    /// `t:trim`: whitespace removed at both ends.
    Trim,
    /// `t:trimLeft`: whitespace removed at the start.
    TrimLeft,
    /// `t:trimRight`: whitespace removed at the end.
    TrimRight,
    /// `t:escapeSeqDecode`: ANSI C escapes (`\n`, `\x41`, `\101`, …).
    EscapeSeqDecode,
}

/// Every transformation, in declaration order.
pub const ALL: [Transform; 29] = [
    Transform::Lowercase,
    Transform::Uppercase,
    Transform::UrlDecode,
    Transform::UrlDecodeUni,
    Transform::HtmlEntityDecode,
    Transform::JsDecode,
    Transform::CssDecode,
    Transform::CmdLine,
    Transform::CompressWhitespace,
    Transform::RemoveWhitespace,
    Transform::RemoveNulls,
    Transform::ReplaceNulls,
    Transform::ReplaceComments,
    Transform::RemoveComments,
    Transform::RemoveCommentsChar,
    Transform::NormalizePath,
    Transform::NormalizePathWin,
    Transform::Utf8ToUnicode,
    Transform::Length,
    Transform::HexEncode,
    Transform::HexDecode,
    Transform::SqlHexDecode,
    Transform::Base64Decode,
    Transform::Base64DecodeExt,
    Transform::Base64Encode,
    Transform::Trim,
    Transform::TrimLeft,
    Transform::TrimRight,
    Transform::EscapeSeqDecode,
];

impl Transform {
    /// The transformation named `name` in a rule (`t:urlDecodeUni`), case-insensitive.
    ///
    /// `None` for an unknown name and for `none` (the caller handles `t:none`, which clears the
    /// list). `normalisePath` and `normalisePathWin` are accepted for `normalizePath` and
    /// `normalizePathWin`.
    pub fn from_name(name: &str) -> Option<Transform> {
        if name.eq_ignore_ascii_case("normalisePath") {
            return Some(Transform::NormalizePath);
        }
        if name.eq_ignore_ascii_case("normalisePathWin") {
            return Some(Transform::NormalizePathWin);
        }
        ALL.iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The canonical SecLang name (`urlDecodeUni`).
    pub fn name(self) -> &'static str {
        match self {
            Transform::Lowercase => "lowercase",
            Transform::Uppercase => "uppercase",
            Transform::UrlDecode => "urlDecode",
            Transform::UrlDecodeUni => "urlDecodeUni",
            Transform::HtmlEntityDecode => "htmlEntityDecode",
            Transform::JsDecode => "jsDecode",
            Transform::CssDecode => "cssDecode",
            Transform::CmdLine => "cmdLine",
            Transform::CompressWhitespace => "compressWhitespace",
            Transform::RemoveWhitespace => "removeWhitespace",
            Transform::RemoveNulls => "removeNulls",
            Transform::ReplaceNulls => "replaceNulls",
            Transform::ReplaceComments => "replaceComments",
            Transform::RemoveComments => "removeComments",
            Transform::RemoveCommentsChar => "removeCommentsChar",
            Transform::NormalizePath => "normalizePath",
            Transform::NormalizePathWin => "normalizePathWin",
            Transform::Utf8ToUnicode => "utf8toUnicode",
            Transform::Length => "length",
            Transform::HexEncode => "hexEncode",
            Transform::HexDecode => "hexDecode",
            Transform::SqlHexDecode => "sqlHexDecode",
            Transform::Base64Decode => "base64Decode",
            Transform::Base64DecodeExt => "base64DecodeExt",
            Transform::Base64Encode => "base64Encode",
            Transform::Trim => "trim",
            Transform::TrimLeft => "trimLeft",
            Transform::TrimRight => "trimRight",
            Transform::EscapeSeqDecode => "escapeSeqDecode",
        }
    }

    /// Applies the transformation to `input`, writing the result to `out` (cleared first).
    ///
    /// Returns whether the output differs from the input (the "changed" flag that `multiMatch`
    /// reads; see the module documentation).
    pub fn apply(self, input: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        match self {
            Transform::Lowercase => out.extend(input.iter().map(u8::to_ascii_lowercase)),
            Transform::Uppercase => out.extend(input.iter().map(u8::to_ascii_uppercase)),
            Transform::UrlDecode => url_decode(input, false, out),
            Transform::UrlDecodeUni => url_decode(input, true, out),
            Transform::HtmlEntityDecode => html_entity_decode(input, out),
            Transform::JsDecode => js_decode(input, out),
            Transform::CssDecode => css_decode(input, out),
            Transform::CmdLine => cmd_line(input, out),
            Transform::CompressWhitespace => compress_whitespace(input, out),
            Transform::RemoveWhitespace => {
                out.extend(input.iter().filter(|&&b| !is_removed_whitespace(b)));
            }
            Transform::RemoveNulls => out.extend(input.iter().copied().filter(|&b| b != 0)),
            Transform::ReplaceNulls => {
                out.extend(input.iter().map(|&b| if b == 0 { b' ' } else { b }));
            }
            Transform::ReplaceComments => replace_comments(input, out),
            Transform::RemoveComments => remove_comments(input, out),
            Transform::RemoveCommentsChar => remove_comments_char(input, out),
            Transform::NormalizePath => normalize_path(input, false, out),
            Transform::NormalizePathWin => normalize_path(input, true, out),
            Transform::Utf8ToUnicode => utf8_to_unicode(input, out),
            Transform::Length => out.extend_from_slice(input.len().to_string().as_bytes()),
            Transform::HexEncode => hex_encode(input, out),
            Transform::HexDecode => hex_decode(input, out),
            Transform::SqlHexDecode => sql_hex_decode(input, out),
            Transform::Base64Decode => base64_decode(input, out),
            Transform::Base64DecodeExt => base64_decode_ext(input, out),
            Transform::Base64Encode => base64_encode(input, out),
            Transform::Trim => out.extend_from_slice(trim(input, true, true)),
            Transform::TrimLeft => out.extend_from_slice(trim(input, true, false)),
            Transform::TrimRight => out.extend_from_slice(trim(input, false, true)),
            Transform::EscapeSeqDecode => escape_seq_decode(input, out),
        }
        out.as_slice() != input
    }
}

/// Two buffers that [`apply_all`] and [`apply_chain`] reuse from one value to the next.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    a: Vec<u8>,
    b: Vec<u8>,
}

impl Scratch {
    /// Empty buffers.
    pub fn new() -> Scratch {
        Scratch::default()
    }

    /// The bytes its buffers hold allocated.
    pub fn capacity(&self) -> usize {
        self.a.capacity() + self.b.capacity()
    }
}

/// Applies a chain of transformations in order and returns the final value, borrowed from
/// `input` (an empty chain) or from `scratch` (no allocation once the buffers have grown).
pub fn apply_chain<'a>(chain: &[Transform], input: &'a [u8], scratch: &'a mut Scratch) -> &'a [u8] {
    let Some((first, rest)) = chain.split_first() else {
        return input;
    };
    let Scratch { a, b } = scratch;
    first.apply(input, a);
    for t in rest {
        t.apply(a.as_slice(), b);
        std::mem::swap(a, b);
    }
    let result: &'a Vec<u8> = a;
    result.as_slice()
}

/// Which values a transformation can change: those holding one of `bytes` (ASCII), a byte of
/// 0x80 or more (`high`), an upper- or lower-case letter (`case`, for the case functions), or
/// any value at all (`always`). A value that holds none passes unchanged, so its transformed
/// form need not be computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Triggers {
    /// ASCII bytes, one bit each.
    pub bytes: u128,
    /// Bytes of 0x80 and above.
    pub high: bool,
    /// Letters (the case functions).
    pub case: bool,
    /// Every value (length, encodings).
    pub always: bool,
}

impl Triggers {
    fn of(set: &[u8]) -> Triggers {
        Triggers {
            bytes: set.iter().fold(0u128, |m, b| m | (1u128 << (b & 0x7f))),
            ..Triggers::default()
        }
    }

    /// Whether a value holding `held` may change (`case`: letters count, as for the value
    /// itself; without, only what changes more than case).
    pub fn touch(self, held: Triggers, case: bool) -> bool {
        self.always
            || self.bytes & held.bytes != 0
            || (self.high && held.high)
            || (case && self.case && held.case)
    }

    /// Both sets.
    pub fn union(self, o: Triggers) -> Triggers {
        Triggers {
            bytes: self.bytes | o.bytes,
            high: self.high || o.high,
            case: self.case || o.case,
            always: self.always || o.always,
        }
    }
}

const SPACE: &[u8] = b" \t\n\x0b\x0c\r";

impl Transform {
    /// A small number naming the transformation (every one differs), for keys.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The values this transformation can change (a superset is always safe).
    pub fn triggers(self) -> Triggers {
        use Transform::*;
        let with_space = |extra: &[u8]| Triggers::of(SPACE).union(Triggers::of(extra));
        match self {
            Lowercase | Uppercase => Triggers {
                case: true,
                ..Triggers::default()
            },
            UrlDecode | UrlDecodeUni => Triggers::of(b"%+"),
            HtmlEntityDecode => Triggers::of(b"&"),
            JsDecode | CssDecode | EscapeSeqDecode => Triggers::of(b"\\"),
            Utf8ToUnicode => Triggers {
                high: true,
                ..Triggers::default()
            },
            RemoveNulls | ReplaceNulls => Triggers::of(b"\0"),
            CompressWhitespace | Trim | TrimLeft | TrimRight => with_space(b""),
            RemoveWhitespace => Triggers {
                high: true,
                ..with_space(b"")
            },
            ReplaceComments => Triggers::of(b"/*"),
            RemoveComments => Triggers::of(b"/*-#<"),
            RemoveCommentsChar => Triggers::of(b"/*-#"),
            NormalizePath => Triggers::of(b"/."),
            NormalizePathWin => Triggers::of(b"/.\\"),
            CmdLine => Triggers {
                case: true,
                ..with_space(b"\\\"'^,;/(")
            },
            SqlHexDecode => Triggers::of(b"0"),
            Length | HexEncode | HexDecode | Base64Decode | Base64DecodeExt | Base64Encode => {
                Triggers {
                    always: true,
                    ..Triggers::default()
                }
            }
        }
    }
}

/// Applies a chain of transformations in order, using two scratch buffers; returns the final
/// value. `scratch` is reused across calls to avoid allocation.
pub fn apply_all(chain: &[Transform], input: &[u8], scratch: &mut Scratch) -> Vec<u8> {
    apply_chain(chain, input, scratch).to_vec()
}

// ---------------------------------------------------------------------------------------------
// Byte helpers (C locale).

/// `isspace` in the C locale: space, `\t`, `\n`, `\v`, `\f`, `\r`.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What `removeWhitespace` drops: C whitespace, and 0xa0 and 0xc2 (the bytes of a UTF-8 NBSP,
/// each removed wherever it appears, as libmodsecurity does).
fn is_removed_whitespace(b: u8) -> bool {
    is_c_space(b) || b == 0xa0 || b == 0xc2
}

/// An octal digit.
fn is_odigit(b: u8) -> bool {
    (b'0'..=b'7').contains(&b)
}

/// libmodsecurity's `xsingle2c`: the value of one hex digit. Callers check the digit first,
/// except `hexDecode`, which (like libmodsecurity) decodes whatever it is given.
fn hex_nibble(b: u8) -> u8 {
    if b >= b'A' {
        (b & 0xdf).wrapping_sub(b'A').wrapping_add(10)
    } else {
        b.wrapping_sub(b'0')
    }
}

/// libmodsecurity's `x2c`: two hex digits to a byte.
fn x2c(hi: u8, lo: u8) -> u8 {
    hex_nibble(hi).wrapping_mul(16).wrapping_add(hex_nibble(lo))
}

/// The byte a four-digit Unicode escape (`%uHHHH`, `\uHHHH`, a CSS escape) decodes to: the low
/// byte, plus 0x20 for full-width ASCII (`FF01`–`FF5E` become `!`–`~`).
fn unicode_low_byte(h1: u8, h2: u8, h3: u8, h4: u8) -> u8 {
    let b = x2c(h3, h4);
    if (1..0x5f).contains(&b) && (h1 | 0x20) == b'f' && (h2 | 0x20) == b'f' {
        b + 0x20
    } else {
        b
    }
}

/// Four hex digits at `input[at..at + 4]`, if they are there.
fn four_hex(input: &[u8], at: usize) -> Option<[u8; 4]> {
    match input.get(at..at + 4) {
        Some(&[a, b, c, d]) if [a, b, c, d].iter().all(u8::is_ascii_hexdigit) => Some([a, b, c, d]),
        _ => None,
    }
}

/// Two hex digits at `input[at..at + 2]`, decoded, if they are there.
fn two_hex(input: &[u8], at: usize) -> Option<u8> {
    match input.get(at..at + 2) {
        Some(&[h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => Some(x2c(h, l)),
        _ => None,
    }
}

/// A lower-case hex digit.
fn hex_digit(nibble: u8) -> u8 {
    let n = nibble & 0x0f;
    if n < 10 {
        b'0' + n
    } else {
        b'a' + (n - 10)
    }
}

/// How many of the first `max` bytes of `s` `pred` accepts in a row.
fn leading(s: &[u8], max: usize, pred: fn(&u8) -> bool) -> usize {
    s.iter().take(max).take_while(|&b| pred(b)).count()
}

/// Up to three octal digits from `input[start..]` (the first one is known to be there), as a
/// byte, and how many digits were used. With `byte_only`, three digits starting above `3` are
/// cut to two (jsDecode); without, the value is truncated to its low byte (escapeSeqDecode).
fn octal_run(input: &[u8], start: usize, byte_only: bool) -> (u8, usize) {
    let digits = input.get(start..).unwrap_or_default();
    let mut count = leading(digits, 3, |&b| is_odigit(b));
    if byte_only && count == 3 && digits.first().is_some_and(|&b| b > b'3') {
        count = 2;
    }
    let value = digits
        .iter()
        .take(count)
        .fold(0u32, |acc, &b| acc * 8 + u32::from(b.wrapping_sub(b'0')));
    ((value & 0xff) as u8, count)
}

// ---------------------------------------------------------------------------------------------
// Decoders.

/// `urlDecode` and, with `uni`, `urlDecodeUni`.
fn url_decode(input: &[u8], uni: bool, out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        match c {
            b'%' => {
                let next = input.get(i + 1).copied();
                if uni && matches!(next, Some(b'u' | b'U')) {
                    if let Some([a, b, c, d]) = four_hex(input, i + 2) {
                        out.push(unicode_low_byte(a, b, c, d));
                        i += 6;
                    } else {
                        // Not four hex digits: `%u` is kept as it is.
                        out.push(b'%');
                        out.extend(next);
                        i += 2;
                    }
                } else if let Some(byte) = two_hex(input, i + 1) {
                    out.push(byte);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// The named entities `htmlEntityDecode` knows (compared case-insensitively, whole name only):
/// libmodsecurity's current table, all of them ASCII but `nbsp`.
const NAMED_ENTITIES: [(&[u8], u8); 32] = [
    (b"amp", b'&'),
    (b"apos", b'\''),
    (b"ast", b'*'),
    (b"bsol", b'\\'),
    (b"caret", b'^'),
    (b"colon", b':'),
    (b"comma", b','),
    (b"commat", b'@'),
    (b"dollar", b'$'),
    (b"equals", b'='),
    (b"grave", b'`'),
    (b"gt", b'>'),
    (b"hyphen", b'-'),
    (b"lbrace", b'{'),
    (b"lbrack", b'['),
    (b"lowbar", b'_'),
    (b"lpar", b'('),
    (b"lt", b'<'),
    (b"nbsp", 0xa0),
    (b"num", b'#'),
    (b"percnt", b'%'),
    (b"period", b'.'),
    (b"plus", b'+'),
    (b"quest", b'?'),
    (b"quot", b'"'),
    (b"rbrace", b'}'),
    (b"rbrack", b']'),
    (b"rpar", b')'),
    (b"semi", b';'),
    (b"sol", b'/'),
    (b"tilde", b'~'),
    (b"verbar", b'|'),
];

/// What an `&` starts.
enum Entity {
    /// An entity decoded to a byte; its name or digits end at the index (an optional `;`
    /// follows).
    Decoded(u8, usize),
    /// Not an entity: this many bytes (from the `&`) are copied as they are.
    Raw(usize),
}

/// The index of the first byte at or after `start` that `pred` refuses.
fn run_end(input: &[u8], start: usize, pred: fn(&u8) -> bool) -> usize {
    let rest = input.get(start..).unwrap_or_default();
    start + leading(rest, usize::MAX, pred)
}

/// A byte of `NAMED_ENTITIES` by its name.
fn named_entity(name: &[u8]) -> Option<u8> {
    for &(entity, byte) in &NAMED_ENTITIES {
        if entity.eq_ignore_ascii_case(name) {
            return Some(byte);
        }
    }
    None
}

/// `strtol` over a run of digits, cast to a byte as libmodsecurity does: a value past
/// `LONG_MAX` (64-bit) saturates, so its low byte is 0xff.
fn parse_number_byte(digits: &[u8], radix: u32) -> u8 {
    let limit = i64::MAX as u64;
    let mut value: u64 = 0;
    for &d in digits {
        let digit = u64::from(char::from(d).to_digit(radix).unwrap_or(0));
        value = value.saturating_mul(u64::from(radix)).saturating_add(digit);
        if value > limit {
            return 0xff;
        }
    }
    (value & 0xff) as u8
}

/// Reads the entity starting with the `&` at `amp`.
fn entity_at(input: &[u8], amp: usize) -> Entity {
    let j = amp + 1;
    match input.get(j) {
        None => Entity::Raw(1),
        Some(b'#') => {
            // `&#x41` (hex) or `&#65` (decimal); without digits, the bytes read stay as they are.
            let numeric = |start: usize, radix: u32, digit: fn(&u8) -> bool| {
                let end = run_end(input, start, digit);
                match input.get(start..end) {
                    Some(digits) if end > start => {
                        Entity::Decoded(parse_number_byte(digits, radix), end)
                    }
                    _ => Entity::Raw(start - amp),
                }
            };
            match input.get(j + 1) {
                None => Entity::Raw(2),
                Some(b'x' | b'X') => numeric(j + 2, 16, u8::is_ascii_hexdigit),
                Some(_) => numeric(j + 1, 10, u8::is_ascii_digit),
            }
        }
        Some(_) => {
            let end = run_end(input, j, u8::is_ascii_alphanumeric);
            if end == j {
                return Entity::Raw(1);
            }
            let name = input.get(j..end).unwrap_or_default();
            match named_entity(name) {
                Some(byte) => Entity::Decoded(byte, end),
                None => Entity::Raw(end - j + 1),
            }
        }
    }
}

/// `htmlEntityDecode`.
fn html_entity_decode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        if c != b'&' {
            out.push(c);
            i += 1;
            continue;
        }
        match entity_at(input, i) {
            Entity::Decoded(byte, end) => {
                out.push(byte);
                // The `;` is optional.
                let semicolon = input.get(end) == Some(&b';');
                i = if semicolon { end + 1 } else { end };
            }
            Entity::Raw(copy) => {
                let end = (i + copy).min(input.len());
                out.extend_from_slice(input.get(i..end).unwrap_or_default());
                i = end;
            }
        }
    }
}

/// `jsDecode`.
fn js_decode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&next) = input.get(i + 1) else {
            // A backslash at the very end is kept.
            out.push(c);
            i += 1;
            continue;
        };
        if next == b'u' {
            if let Some([a, b, c, d]) = four_hex(input, i + 2) {
                out.push(unicode_low_byte(a, b, c, d));
                i += 6;
                continue;
            }
        }
        if next == b'x' {
            if let Some(byte) = two_hex(input, i + 2) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        if is_odigit(next) {
            let (byte, used) = octal_run(input, i + 1, true);
            out.push(byte);
            i += 1 + used;
            continue;
        }
        out.push(match next {
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            // `\\`, `\'`, `\"`, an incomplete `\u` or `\x`, any other: the character itself.
            other => other,
        });
        i += 2;
    }
}

/// The byte a CSS escape of one to six hex digits decodes to: the last two digits, with the
/// full-width ASCII fold when the value is at most 0xFFFF written on four or more digits.
fn css_hex_byte(digits: &[u8]) -> u8 {
    match *digits {
        [d] => hex_nibble(d),
        [h, l] | [_, h, l] => x2c(h, l),
        [f1, f2, h, l] => unicode_low_byte(f1, f2, h, l),
        [z, f1, f2, h, l] => {
            if z == b'0' {
                unicode_low_byte(f1, f2, h, l)
            } else {
                x2c(h, l)
            }
        }
        [z1, z2, f1, f2, h, l] => {
            if z1 == b'0' && z2 == b'0' {
                unicode_low_byte(f1, f2, h, l)
            } else {
                x2c(h, l)
            }
        }
        _ => 0,
    }
}

/// `cssDecode`.
fn css_decode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        // The backslash itself is never kept (a trailing one is dropped).
        i += 1;
        let rest = input.get(i..).unwrap_or_default();
        let digits = leading(rest, 6, u8::is_ascii_hexdigit);
        if digits > 0 {
            out.push(css_hex_byte(rest.get(..digits).unwrap_or_default()));
            i += digits;
            // One whitespace character after a hex escape belongs to the escape.
            if input.get(i).is_some_and(|&b| is_c_space(b)) {
                i += 1;
            }
        } else if rest.first() == Some(&b'\n') {
            // An escaped newline is a line continuation.
            i += 1;
        } else if let Some(&other) = rest.first() {
            out.push(other);
            i += 1;
        }
    }
}

/// `cmdLine`: `\ " ' ^` deleted; space, tab, CR, LF, `,` and `;` to one space per run; the
/// space before a `/` or `(` deleted; ASCII to lower case.
fn cmd_line(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut space = false;
    for &c in input {
        match c {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    // The last byte written is that space.
                    out.pop();
                }
                space = false;
                out.push(c);
            }
            _ => {
                out.push(c.to_ascii_lowercase());
                space = false;
            }
        }
    }
}

/// `compressWhitespace`: each run of C whitespace to one space.
fn compress_whitespace(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut in_space = false;
    for &c in input {
        if is_c_space(c) {
            if !in_space {
                out.push(b' ');
                in_space = true;
            }
        } else {
            in_space = false;
            out.push(c);
        }
    }
}

/// `replaceComments`: `/* … */` to one space; an unterminated comment also becomes a space.
fn replace_comments(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut in_comment = false;
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        let rest = input.get(i..).unwrap_or_default();
        if !in_comment {
            if rest.starts_with(b"/*") {
                in_comment = true;
                i += 2;
            } else {
                out.push(c);
                i += 1;
            }
        } else if rest.starts_with(b"*/") {
            in_comment = false;
            out.push(b' ');
            i += 2;
        } else {
            i += 1;
        }
    }
    if in_comment {
        out.push(b' ');
    }
}

/// `removeComments`, as libmodsecurity does it: `/* … */` and `<!-- … -->` removed (an
/// unterminated one becomes a space), and everything from a `--` or `#` outside a comment on
/// dropped. The byte after a closing `*/` or `-->` is copied without being looked at; when the
/// comment closes at the very end, that byte is libmodsecurity's string terminator, a NUL.
fn remove_comments(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut in_comment = false;
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        let rest = input.get(i..).unwrap_or_default();
        if !in_comment {
            if rest.starts_with(b"/*") {
                in_comment = true;
                i += 2;
            } else if rest.starts_with(b"<!--") {
                in_comment = true;
                i += 4;
            } else if rest.starts_with(b"--") || c == b'#' {
                break;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            let close = if rest.starts_with(b"*/") {
                2
            } else if rest.starts_with(b"-->") {
                3
            } else {
                0
            };
            if close == 0 {
                i += 1;
            } else {
                in_comment = false;
                i += close;
                out.push(input.get(i).copied().unwrap_or(0));
                i += 1;
            }
        }
    }
    if in_comment {
        out.push(b' ');
    }
}

/// `removeCommentsChar`: the markers `/*`, `*/`, `<!--`, `-->`, `--` and `#` removed.
fn remove_comments_char(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        let rest = input.get(i..).unwrap_or_default();
        if rest.starts_with(b"/*") || rest.starts_with(b"*/") {
            i += 2;
        } else if rest.starts_with(b"<!--") {
            i += 4;
        } else if rest.starts_with(b"-->") {
            i += 3;
        } else if rest.starts_with(b"--") {
            i += 2;
        } else if c == b'#' {
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
}

/// A byte already written to `out`, or 0 past its end.
fn written(out: &[u8], at: usize) -> u8 {
    out.get(at).copied().unwrap_or(0)
}

/// `normalizePath` and, with `win`, `normalizePathWin` (libmodsecurity's
/// `normalize_path_inplace`): `.` segments dropped, `..` segments resolved against the
/// previous one (a relative path keeps the `..` it cannot resolve, an absolute one stops at the
/// root), runs of `/` collapsed, and a trailing `/` kept only if the input had one.
///
/// `dst` is the write position in `out`; moving it back and writing again is how a segment is
/// removed, so `out` is truncated to `dst` before each write and at the end. Each byte written
/// is walked back over at most once, so the whole is linear.
fn normalize_path(input: &[u8], win: bool, out: &mut Vec<u8>) {
    let Some(last) = input.len().checked_sub(1) else {
        return;
    };
    let at = |k: usize| -> u8 {
        match input.get(k).copied() {
            Some(b'\\') if win => b'/',
            Some(b) => b,
            None => 0,
        }
    };
    out.reserve(input.len());
    let relative = at(0) != b'/';
    let trailing = at(last) == b'/';
    let mut src = 0usize;
    let mut dst = 0usize;
    let mut hit_root = false;
    let mut done = false;
    while !done && src <= last && dst <= last {
        // Normalise at the end of each segment, and always at the end of the input.
        let segment_end = if src == last {
            done = true;
            true
        } else {
            at(src + 1) == b'/'
        };
        if segment_end {
            let cur = at(src);
            // An empty segment (`//`) is left to the copy below, which collapses it.
            let empty_segment = cur == b'/' && src != last;
            if !empty_segment {
                if cur == b'.' {
                    if dst > 0 && written(out, dst - 1) == b'.' {
                        // A back-reference (`..`).
                        if relative && (hit_root || dst <= 2) {
                            // Nothing left to go back to: the `..` is kept.
                            hit_root = true;
                        } else {
                            // Remove the `..` and the segment before it.
                            dst = dst.saturating_sub(3);
                            while dst > 0 && written(out, dst) != b'/' {
                                dst -= 1;
                            }
                            if dst == 0 {
                                // Never above the root.
                                hit_root = true;
                                if !relative && src == last {
                                    // Keep the root slash.
                                    dst = 1;
                                }
                            }
                            if done {
                                continue;
                            }
                            src += 1;
                        }
                    } else if dst == 0 {
                        // A leading self-reference (`./`).
                        if done {
                            continue;
                        }
                        src += 1;
                    } else if written(out, dst - 1) == b'/' {
                        // A self-reference (`/./`).
                        if done {
                            continue;
                        }
                        dst -= 1;
                        src += 1;
                    }
                } else if dst > 0 {
                    // A regular segment.
                    hit_root = false;
                }
            }
        }
        // Copy the byte at `src`, the last of a run of slashes.
        if at(src) == b'/' {
            while src < last && at(src + 1) == b'/' {
                src += 1;
            }
            if relative && dst == 0 {
                // A relative path does not start with a slash.
                src += 1;
                continue;
            }
        }
        out.truncate(dst);
        out.push(at(src));
        dst += 1;
        src += 1;
    }
    if !trailing && dst > 0 && written(out, dst - 1) == b'/' {
        dst -= 1;
    }
    out.truncate(dst);
}

/// Writes `%u` and `cp` in lower-case hex, at least four digits.
fn push_percent_u(out: &mut Vec<u8>, cp: u32) {
    out.extend_from_slice(b"%u");
    let digits = (32 - cp.leading_zeros()).div_ceil(4).max(4);
    for k in (0..digits).rev() {
        out.push(hex_digit(((cp >> (4 * k)) & 0x0f) as u8));
    }
}

/// `utf8toUnicode`, with libmodsecurity's handling of what is not valid UTF-8: a lead byte
/// whose sequence is cut short or broken is dropped (its continuation bytes are then kept one
/// by one); an overlong form or a surrogate is encoded and followed by its lead byte; a lead
/// byte 0xF5–0xF7 is kept before its sequence; a NUL byte is dropped unless it is the last.
fn utf8_to_unicode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let total = input.len();
    let byte = |k: usize| input.get(k).copied().unwrap_or(0);
    let cont = |k: usize| byte(k) & 0xc0 == 0x80;
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        let mut seq = 0usize;
        let mut cp = 0u32;
        if c & 0x80 == 0 {
            if c != 0 || i + 1 >= total {
                out.push(c);
            }
        } else if c & 0xe0 == 0xc0 {
            if total >= 2 && cont(i + 1) {
                seq = 2;
                cp = (u32::from(c & 0x1f) << 6) | u32::from(byte(i + 1) & 0x3f);
            }
        } else if c & 0xf0 == 0xe0 {
            if total >= 3 && cont(i + 1) && cont(i + 2) {
                seq = 3;
                cp = (u32::from(c & 0x0f) << 12)
                    | (u32::from(byte(i + 1) & 0x3f) << 6)
                    | u32::from(byte(i + 2) & 0x3f);
            }
        } else if c & 0xf8 == 0xf0 {
            if c >= 0xf5 {
                out.push(c);
            }
            if total >= 4 && cont(i + 1) && cont(i + 2) && cont(i + 3) {
                seq = 4;
                cp = (u32::from(c & 0x07) << 18)
                    | (u32::from(byte(i + 1) & 0x3f) << 12)
                    | (u32::from(byte(i + 2) & 0x3f) << 6)
                    | u32::from(byte(i + 3) & 0x3f);
            }
        } else {
            // A stray continuation byte or an invalid lead byte.
            out.push(c);
        }
        if seq == 0 {
            i += 1;
            continue;
        }
        push_percent_u(out, cp);
        if (0xd800..=0xdfff).contains(&cp) {
            out.push(c);
        }
        let overlong = match seq {
            2 => cp < 0x80,
            3 => cp < 0x800,
            _ => cp < 0x1_0000,
        };
        if overlong {
            out.push(c);
        }
        i += seq;
    }
}

/// `hexEncode`: lower-case hex.
fn hex_encode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len() * 2);
    for &b in input {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b));
    }
}

/// `hexDecode`: each pair of characters through `x2c` (not checked, as in libmodsecurity); an
/// odd last character is dropped.
fn hex_decode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len() / 2);
    for pair in input.chunks_exact(2) {
        if let [h, l] = *pair {
            out.push(x2c(h, l));
        }
    }
}

/// `sqlHexDecode`: `0x` (or `0X`) and at least one pair of hex digits decoded, pair by pair;
/// anything else (an odd last digit included) kept.
fn sql_hex_decode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        let literal = c == b'0'
            && matches!(input.get(i + 1), Some(b'x' | b'X'))
            && two_hex(input, i + 2).is_some();
        if !literal {
            out.push(c);
            i += 1;
            continue;
        }
        i += 2;
        while let Some(byte) = two_hex(input, i) {
            out.push(byte);
            i += 2;
        }
    }
}

/// The base64 alphabet.
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The value of a base64 character.
fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// The base64 character for the low six bits of `v`.
fn base64_char(v: u8) -> u8 {
    BASE64.get(usize::from(v & 0x3f)).copied().unwrap_or(b'=')
}

/// `base64Encode`: standard alphabet, padded.
fn base64_encode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        match *chunk {
            [a, b, c] => {
                out.push(base64_char(a >> 2));
                out.push(base64_char((a << 4) | (b >> 4)));
                out.push(base64_char((b << 2) | (c >> 6)));
                out.push(base64_char(c));
            }
            [a, b] => {
                out.push(base64_char(a >> 2));
                out.push(base64_char((a << 4) | (b >> 4)));
                out.push(base64_char(b << 2));
                out.push(b'=');
            }
            [a] => {
                out.push(base64_char(a >> 2));
                out.push(base64_char(a << 4));
                out.extend_from_slice(b"==");
            }
            _ => {}
        }
    }
}

/// Whether mbedTLS's `mbedtls_base64_decode` (which libmodsecurity's `base64Decode` calls)
/// accepts `src`: alphabet characters, then at most two `=`; line breaks (`\n`, `\r\n`)
/// anywhere; spaces only just before a line break or at the end.
fn base64_strict_valid(src: &[u8]) -> bool {
    let mut equals = 0;
    let mut spaces = false;
    let mut i = 0;
    while let Some(&c) = src.get(i) {
        i += 1;
        if c == b' ' {
            spaces = true;
            continue;
        }
        if c == b'\n' || (c == b'\r' && src.get(i) == Some(&b'\n')) {
            spaces = false;
            continue;
        }
        if spaces {
            return false;
        }
        if c == b'=' {
            equals += 1;
            if equals > 2 {
                return false;
            }
        } else if equals != 0 || base64_value(c).is_none() {
            return false;
        }
    }
    true
}

/// `base64Decode`: the value up to its first NUL byte (libmodsecurity passes a C string),
/// decoded strictly; anything invalid decodes to nothing, and an incomplete last group of
/// characters is dropped.
fn base64_decode(input: &[u8], out: &mut Vec<u8>) {
    let src = match memchr::memchr(0, input) {
        Some(nul) => input.get(..nul).unwrap_or_default(),
        None => input,
    };
    if !base64_strict_valid(src) {
        return;
    }
    out.reserve(src.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut count = 0;
    let mut equals = 0;
    for &b in src {
        if matches!(b, b'\r' | b'\n' | b' ') {
            continue;
        }
        acc <<= 6;
        if b == b'=' {
            equals += 1;
        } else {
            acc |= u32::from(base64_value(b).unwrap_or(0));
        }
        count += 1;
        if count == 4 {
            count = 0;
            out.push((acc >> 16) as u8);
            if equals <= 1 {
                out.push((acc >> 8) as u8);
            }
            if equals == 0 {
                out.push(acc as u8);
            }
        }
    }
}

/// `base64DecodeExt`, libmodsecurity's forgiving decoder: characters outside the alphabet are
/// skipped, `=` is skipped too, and only complete bytes are kept. A `=` that ends a run of
/// `=` one character into a group of four makes the whole result empty, and so does a value
/// whose last character is `9` in that position (libmodsecurity mistakes its value, 61, for
/// the code of `=`).
fn base64_decode_ext(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len() / 4 * 3);
    let pad = i32::from(b'=');
    let mut symbols = 0usize;
    let mut pending = 0u8;
    let mut last = 0i32;
    for (idx, &raw) in input.iter().enumerate() {
        if raw == b'=' {
            let next = input.get(idx + 1).copied().unwrap_or(0);
            if next != b'=' && symbols % 4 == 1 {
                out.clear();
                return;
            }
            last = pad;
            continue;
        }
        let Some(v) = base64_value(raw) else {
            last = -1;
            continue;
        };
        last = i32::from(v);
        match symbols % 4 {
            0 => pending = v << 2,
            1 => {
                out.push(pending | (v >> 4));
                pending = (v & 0x0f) << 4;
            }
            2 => {
                out.push(pending | (v >> 2));
                pending = (v & 0x03) << 6;
            }
            _ => out.push(pending | v),
        }
        symbols += 1;
    }
    if last == pad && symbols % 4 == 1 {
        out.clear();
    }
}

/// `trim`, `trimLeft`, `trimRight`: C whitespace removed at the chosen ends.
fn trim(input: &[u8], left: bool, right: bool) -> &[u8] {
    let mut s = input;
    if left {
        while let Some((&first, rest)) = s.split_first() {
            if !is_c_space(first) {
                break;
            }
            s = rest;
        }
    }
    if right {
        while let Some((&last, rest)) = s.split_last() {
            if !is_c_space(last) {
                break;
            }
            s = rest;
        }
    }
    s
}

/// `escapeSeqDecode`: `\a \b \f \n \r \t \v \\ \? \' \"`, `\xHH` (or `\XHH`) and up to three
/// octal digits (the value cut to a byte); any other escaped character stands for itself (the
/// backslash dropped); a backslash at the very end is kept.
fn escape_seq_decode(input: &[u8], out: &mut Vec<u8>) {
    out.reserve(input.len());
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        let next = match input.get(i + 1) {
            Some(&n) if c == b'\\' => n,
            _ => {
                out.push(c);
                i += 1;
                continue;
            }
        };
        let simple = match next {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' | b'?' | b'\'' | b'"' => Some(next),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
            continue;
        }
        if next == b'x' || next == b'X' {
            if let Some(byte) = two_hex(input, i + 2) {
                out.push(byte);
                i += 4;
                continue;
            }
        } else if is_odigit(next) {
            let (byte, used) = octal_run(input, i + 1, false);
            out.push(byte);
            i += 1 + used;
            continue;
        }
        out.push(next);
        i += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a transformation over `input => expected` pairs of byte strings.
    macro_rules! check {
        ($t:expr, $($i:expr => $o:expr),* $(,)?) => {
            check_cases($t, &[$((&$i[..], &$o[..])),*])
        };
    }

    /// Checks each case's output and "changed" flag, with `out` holding garbage beforehand
    /// (`apply` must clear it).
    fn check_cases(t: Transform, cases: &[(&[u8], &[u8])]) {
        for &(input, expected) in cases {
            let mut out = b"garbage".to_vec();
            let changed = t.apply(input, &mut out);
            assert_eq!(
                out,
                expected,
                "{}({:?}) gave {:?}",
                t.name(),
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(&out)
            );
            assert_eq!(
                changed,
                input != expected,
                "{}({:?}): changed flag",
                t.name(),
                String::from_utf8_lossy(input)
            );
        }
    }

    fn named(name: &str) -> Option<Transform> {
        Transform::from_name(name)
    }

    #[test]
    fn names_round_trip() {
        for t in ALL {
            assert_eq!(named(t.name()), Some(t), "{t:?}");
            let upper = t.name().to_ascii_uppercase();
            assert_eq!(named(&upper), Some(t), "{t:?}");
            let lower = t.name().to_ascii_lowercase();
            assert_eq!(named(&lower), Some(t), "{t:?}");
        }
        let mut sorted = ALL.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ALL.len());
    }

    #[test]
    fn names_aliases_and_unknown() {
        assert_eq!(named("normalisePath"), Some(Transform::NormalizePath));
        let win = Some(Transform::NormalizePathWin);
        assert_eq!(named("NORMALISEPATHWIN"), win);
        assert_eq!(named("normalizePathWin"), win);
        assert_eq!(named("utf8toUnicode"), Some(Transform::Utf8ToUnicode));
        assert_eq!(named("urldecodeuni"), Some(Transform::UrlDecodeUni));
        assert_eq!(named("none"), None);
        assert_eq!(named("None"), None);
        assert_eq!(named("md5"), None);
        assert_eq!(named(""), None);
        assert_eq!(named("urlDecodeUnix"), None);
        assert_eq!(Transform::Utf8ToUnicode.name(), "utf8toUnicode");
        assert_eq!(Transform::NormalizePath.name(), "normalizePath");
    }

    #[test]
    fn serde_names() {
        let json = serde_json::to_string(&Transform::UrlDecodeUni).unwrap();
        assert_eq!(json, "\"urlDecodeUni\"");
        let t: Transform = serde_json::from_str("\"base64DecodeExt\"").unwrap();
        assert_eq!(t, Transform::Base64DecodeExt);
        for t in ALL {
            let s = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Transform>(&s).unwrap(), t);
        }
    }

    #[test]
    fn empty_input() {
        for t in ALL {
            let mut out = b"garbage".to_vec();
            let changed = t.apply(b"", &mut out);
            if t == Transform::Length {
                assert_eq!(out, b"0");
                assert!(changed);
            } else {
                assert!(out.is_empty(), "{t:?}");
                assert!(!changed, "{t:?}");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_and_cut_escapes() {
        // Nothing may panic on any byte, nor on an escape cut short by the end of the value.
        let all: Vec<u8> = (0..=255u8).collect();
        let prefixes = b"% %u %uff &# &#x & \\ \\u \\uff \\x \\0 0x /* */ <!- <!-- - -- ../ /..";
        let mut values = vec![all.repeat(3), all];
        for prefix in prefixes.split(|&b| b == b' ') {
            values.push(prefix.to_vec());
            for b in 0..=255u8 {
                let mut v = prefix.to_vec();
                v.push(b);
                values.push(v);
            }
        }
        let mut out = Vec::new();
        for t in ALL {
            for v in &values {
                t.apply(v, &mut out);
                assert!(out.len() <= 7 * v.len() + 20, "{t:?}");
            }
        }
    }

    #[test]
    fn long_inputs_stay_fast() {
        // Quadratic behaviour would show here (worst cases of about 100 kB each).
        let inputs = [
            b"../".repeat(40_000),
            b"a/../".repeat(20_000),
            b"a/".repeat(50_000),
            b"/*".repeat(50_000),
            b"&#0000".repeat(20_000),
            b"&".repeat(100_000),
            b"\\".repeat(100_000),
            b"%u".repeat(50_000),
            b"\xf0\x9f".repeat(50_000),
            b"0x41".repeat(25_000),
            b"=".repeat(100_000),
        ];
        let mut out = Vec::new();
        for t in ALL {
            for v in &inputs {
                t.apply(v, &mut out);
            }
        }
    }

    #[test]
    fn lowercase_uppercase() {
        check!(Transform::Lowercase,
            b"TestCase" => b"testcase",
            b"testcase" => b"testcase",
            b"Test\x00Case" => b"test\x00case",
            b"\xc3\x89A\xff" => b"\xc3\x89a\xff",
        );
        check!(Transform::Uppercase,
            b"TestCase" => b"TESTCASE",
            b"TEST" => b"TEST",
            b"\xe9a\x80" => b"\xe9A\x80",
        );
    }

    #[test]
    fn url_decode() {
        check!(Transform::UrlDecode,
            b"Test+Case" => b"Test Case",
            b"%41%42%43" => b"ABC",
            b"%4a%4A" => b"JJ",
            b"%00%ff%FF" => b"\x00\xff\xff",
            b"%" => b"%",
            b"%4" => b"%4",
            b"a%" => b"a%",
            b"%zz" => b"%zz",
            b"%%41" => b"%A",
            b"%4g%41" => b"%4gA",
            b"%+" => b"% ",
            b"%u0041" => b"%u0041",
            b"\xff%20\x80" => b"\xff \x80",
            b"plain" => b"plain",
        );
    }

    #[test]
    fn url_decode_uni() {
        check!(Transform::UrlDecodeUni,
            b"%u0041%U0042" => b"AB",
            b"%u1141" => b"A",
            b"%uff01%uFF5e%uff5f%uff00%uffff" => b"!~\x5f\x00\xff",
            b"%ufe01" => b"\x01",
            b"%u004" => b"%u004",
            b"%u00zz" => b"%u00zz",
            b"%u" => b"%u",
            b"%u%41" => b"%uA",
            b"%41+%2b" => b"A +",
            b"%" => b"%",
            b"%zz" => b"%zz",
            b"%0" => b"%0",
            b"%uD83D%uDE00" => b"\x3d\x00",
        );
    }

    #[test]
    fn html_entity_decode() {
        check!(Transform::HtmlEntityDecode,
            b"&lt;script&gt;" => b"<script>",
            b"&quot;&amp;&nbsp;&apos;" => b"\"&\xa0'",
            b"&LT;&Gt" => b"<>",
            b"&lpar;&rpar;&colon;&sol;" => b"():/",
            b"&#65;&#x41;&#X41;" => b"AAA",
            b"&#65&#x42g" => b"ABg",
            b"&#x;" => b"&#x;",
            b"&#;" => b"&#;",
            b"&#" => b"&#",
            b"&#x" => b"&#x",
            b"&" => b"&",
            b"a&" => b"a&",
            b"& b" => b"& b",
            b"&foo;" => b"&foo;",
            b"&ltest;" => b"&ltest;",
            b"&#xg;&#X2g;&#3a" => b"&#xg;\x02g;\x03a",
            b"&#x24;&#00000000000000000000000000000000000000000000000123;" => b"${",
            b"&#x0000041;" => b"A",
            b"&#321;" => b"A",
            b"&#x141;" => b"A",
            b"&#99999999999999999999;" => b"\xff",
            b"&#0;x" => b"\x00x",
            b"\xff&amp\x80" => b"\xff&\x80",
            b"&&lt;" => b"&<",
            b"plain" => b"plain",
        );
    }

    #[test]
    fn js_decode() {
        check!(Transform::JsDecode,
            b"\\x41\\u0042\\103" => b"ABC",
            b"\\uff01\\uFF5E" => b"!~",
            b"\\u1141" => b"A",
            b"\\a\\b\\f\\n\\r\\t\\v" => b"\x07\x08\x0c\n\r\t\x0b",
            b"\\\\\\'\\\"\\?" => b"\\'\"?",
            b"\\0\\12\\123\\1234" => b"\x00\x0a\x53\x534",
            b"\\477" => b"\x277",
            b"\\377\\400" => b"\xff\x200",
            b"\\x" => b"x",
            b"\\x4" => b"x4",
            b"\\xzz" => b"xzz",
            b"\\u" => b"u",
            b"\\u012" => b"u012",
            b"\\U0041" => b"U0041",
            b"\\X41" => b"X41",
            b"\\" => b"\\",
            b"a\\" => b"a\\",
            b"\\8" => b"8",
            b"\\\xff" => b"\xff",
            b"plain" => b"plain",
        );
    }

    #[test]
    fn css_decode() {
        check!(Transform::CssDecode,
            b"\\41\\42 C" => b"ABC",
            b"\\a" => b"\n",
            b"\\1A\\1 A" => b"\x1a\x01A",
            b"\\123" => b"#",
            b"\\1234" => b"4",
            b"\\12345" => b"E",
            b"\\123456" => b"V",
            b"\\1234567" => b"V7",
            b"\\ff01\\FF5E\\0ff01\\00ff01\\1ff01" => b"!~!!\x01",
            b"\\000041" => b"A",
            b"\\n\\r\\?\\'" => b"nr?'",
            b"a\\\nb" => b"ab",
            b"test\\" => b"test",
            b"\\" => b"",
            b"\\41\t\tx" => b"A\tx",
            b"\\\xff" => b"\xff",
            b"plain" => b"plain",
        );
    }

    #[test]
    fn cmd_line() {
        check!(Transform::CmdLine,
            b"C^OMMAND /C DIR" => b"command/c dir",
            b"cmd,/c DiR" => b"cmd/c dir",
            b"\"command\" /c DiR" => b"command/c dir",
            b"c\\a't\" /etc/passwd" => b"cat/etc/passwd",
            b"echo  ;\t\r\n x" => b"echo x",
            b"foo (bar)" => b"foo(bar)",
            b" /" => b"/",
            b"a \"/b" => b"a/b",
            b"test" => b"test",
            b"\xc3\x89T" => b"\xc3\x89t",
        );
    }

    #[test]
    fn compress_whitespace() {
        check!(Transform::CompressWhitespace,
            b"  Test  \t   Case  " => b" Test Case ",
            b"a\x0b\x0c\r\nb" => b"a b",
            b"Test Case" => b"Test Case",
            b"a\xa0\xa0b" => b"a\xa0\xa0b",
            b"a\x00b" => b"a\x00b",
            b" " => b" ",
            b"\t" => b" ",
        );
    }

    #[test]
    fn remove_whitespace() {
        check!(Transform::RemoveWhitespace,
            b"  Test  \t   Case  " => b"TestCase",
            b"a\xc2\xa0b" => b"ab",
            b"\xc3\xa9\xc2" => b"\xc3\xa9",
            b"a\x00b" => b"a\x00b",
            b"TestCase" => b"TestCase",
        );
    }

    #[test]
    fn nulls() {
        check!(Transform::RemoveNulls,
            b"\x00Test\x00\x00Case\x00" => b"TestCase",
            b"Test\x01Case" => b"Test\x01Case",
            b"\x00" => b"",
        );
        check!(Transform::ReplaceNulls,
            b"\x00Test\x00\x00Case\x00" => b" Test  Case ",
            b"TestCase" => b"TestCase",
            b"\x00" => b" ",
        );
    }

    #[test]
    fn replace_comments() {
        check!(Transform::ReplaceComments,
            b"/* TestCase */" => b" ",
            b"Before/* TestCase */After" => b"Before After",
            b"Before /* TestCase */ After" => b"Before   After",
            b"Before /* Test\nCase " => b"Before  ",
            b"Test */After" => b"Test */After",
            b"a/**/b/*" => b"a b ",
            b"/*/" => b" ",
            b"a/" => b"a/",
            b"un/*i*/on sel/**/ect" => b"un on sel ect",
        );
    }

    #[test]
    fn remove_comments() {
        check!(Transform::RemoveComments,
            b"Before/* TestCase */After" => b"BeforeAfter",
            b"Before/* T*/ /* e */ /* s */ /* t */\r\nCase " => b"Before   \r\nCase ",
            b"Test\nCase /**/ After" => b"Test\nCase  After",
            b"/* TestCase */" => b"\x00",
            b"Before /* Test\nCase " => b"Before  ",
            b"Before TestCase */ After" => b"Before TestCase */ After",
            b"a<!-- b -->c" => b"ac",
            b"a<!-- b" => b"a ",
            b"1 OR 1=1-- comment" => b"1 OR 1=1",
            b"1 OR 1=1# comment" => b"1 OR 1=1",
            b"#all" => b"",
            b"a-b" => b"a-b",
            b"a/*x*/#b" => b"a#b",
            b"TestCase" => b"TestCase",
        );
    }

    #[test]
    fn remove_comments_char() {
        check!(Transform::RemoveCommentsChar,
            b"/* TestCase */" => b" TestCase ",
            b"Before/* TestCase */After" => b"Before TestCase After",
            b"Test\nCase */ After" => b"Test\nCase  After",
            b"<!--x-->" => b"x",
            b"a--b#c" => b"abc",
            b"a-b*c/d" => b"a-b*c/d",
            b"--->" => b"->",
            b"TestCase" => b"TestCase",
        );
    }

    #[test]
    fn normalize_path() {
        check!(Transform::NormalizePath,
            b"/foo/bar/baz" => b"/foo/bar/baz",
            b"x" => b"x",
            b"." => b"",
            b"./" => b"",
            b"./.." => b"..",
            b"./../" => b"../",
            b".." => b"..",
            b"../." => b"..",
            b"../.." => b"../..",
            b"/dir/foo//bar" => b"/dir/foo/bar",
            b"dir/foo//bar/" => b"dir/foo/bar/",
            b"dir/../foo" => b"foo",
            b"dir/../../foo" => b"../foo",
            b"dir/./.././../../foo/bar" => b"../../foo/bar",
            b"dir/./.././../../foo/bar/." => b"../../foo/bar",
            b"dir/./.././../../foo/bar/.." => b"../../foo",
            b"dir//.//..//.//..//..//foo//bar//" => b"../../foo/bar/",
            b"dir/subdir/subsubdir/subsubsubdir/../../.." => b"dir",
            b"/dir/./subdir/../subsubdir/../subsubsubdir/../" => b"/dir/",
            b"/./.././../../../../../../../\x00/../etc/./passwd" => b"/etc/passwd",
            b"/.." => b"",
            b"/../" => b"/",
            b"/a/b/../../.." => b"",
            b"//" => b"/",
            b"a\\..\\b" => b"a\\..\\b",
            b"/\xff/../\x80" => b"/\x80",
        );
    }

    #[test]
    fn normalize_path_win() {
        check!(Transform::NormalizePathWin,
            b"\\foo\\bar\\baz" => b"/foo/bar/baz",
            b".\\" => b"",
            b"..\\" => b"../",
            b"..\\..\\" => b"../../",
            b"\\dir\\foo\\\\bar" => b"/dir/foo/bar",
            b"dir\\.\\..\\.\\..\\..\\foo\\bar\\." => b"../../foo/bar",
            b"\\dir\\.\\subdir\\..\\subsubdir\\..\\subsubsubdir\\..\\" => b"/dir/",
            b"c:\\windows\\..\\boot.ini" => b"c:/boot.ini",
            b"/mixed\\/path" => b"/mixed/path",
            b"x" => b"x",
            b".." => b"..",
        );
    }

    #[test]
    fn utf8_to_unicode() {
        check!(Transform::Utf8ToUnicode,
            b"\xc3\xa9" => b"%u00e9",
            b"a\xd0\x80b" => b"a%u0400b",
            b"\xe2\x96\xa0" => b"%u25a0",
            b"\xef\xbc\x81" => b"%uff01",
            b"\xf0\x9f\x98\x80" => b"%u1f600",
            b"\xf4\x8f\xbf\xbf" => b"%u10ffff",
            b"\xc0\x80" => b"%u0000\xc0",
            b"\xc1\xbf" => b"%u007f\xc1",
            b"\xe0\x80\xaf" => b"%u002f\xe0",
            b"\xed\xa0\x80" => b"%ud800\xed",
            b"\xf5\x80\x80\x80" => b"\xf5%u140000",
            b"\xf7(" => b"\xf7(",
            b"\xc3(" => b"(",
            b"\xc3" => b"",
            b"x\xe2\x82" => b"x\x82",
            b"\x80\xbf" => b"\x80\xbf",
            b"\xff\xfe" => b"\xff\xfe",
            b"a\x00b" => b"ab",
            b"a\x00" => b"a\x00",
            b"plain ascii" => b"plain ascii",
        );
    }

    #[test]
    fn length() {
        check!(Transform::Length,
            b"" => b"0",
            b"0123456789abcdef" => b"16",
            b"Test\x00Case" => b"9",
            b"\xff\xfe" => b"2",
            b"1" => b"1",
        );
    }

    #[test]
    fn hex_encode_decode() {
        check!(Transform::HexEncode,
            b"TestCase" => b"5465737443617365",
            b"\x00\xff\x0a" => b"00ff0a",
        );
        check!(Transform::HexDecode,
            b"5465737443617365" => b"TestCase",
            b"546573740043617365" => b"Test\x00Case",
            b"4A4a" => b"JJ",
            b"01234567890a" => b"\x01\x23\x45\x67\x89\x0a",
            b"0z01" => b"\x23\x01",
            b"01234567890a0" => b"\x01\x23\x45\x67\x89\x0a",
            b"a" => b"",
            b"zz" => b"\x53",
        );
    }

    #[test]
    fn sql_hex_decode() {
        check!(Transform::SqlHexDecode,
            b"0x414243" => b"ABC",
            b"SELECT 0x61646d696e, 0X42" => b"SELECT admin, B",
            b"0x4142434" => b"ABC4",
            b"0x4" => b"0x4",
            b"0x" => b"0x",
            b"0xzz" => b"0xzz",
            b"00x41" => b"0A",
            b"x0x41" => b"xA",
            b"0x41\xff" => b"A\xff",
            b"plain" => b"plain",
        );
    }

    #[test]
    fn base64_encode() {
        check!(Transform::Base64Encode,
            b"TestCase" => b"VGVzdENhc2U=",
            b"TestCase1" => b"VGVzdENhc2Ux",
            b"TestCase12" => b"VGVzdENhc2UxMg==",
            b"Test\x00Case" => b"VGVzdABDYXNl",
            b"\xff\xfe\xfd" => b"//79",
        );
    }

    #[test]
    fn base64_decode() {
        check!(Transform::Base64Decode,
            b"VGVzdENhc2U=" => b"TestCase",
            b"VGVzdENhc2Ux" => b"TestCase1",
            b"VGVzdENhc2UxMg==" => b"TestCase12",
            b"VGVzdABDYXNl" => b"Test\x00Case",
            b"VGVzdENhc2U=\x00VGVzdENhc2U=" => b"TestCase",
            b"VGVz\r\ndENh\nc2U=" => b"TestCase",
            b"VGVz  \ndENh" => b"TestCa",
            b"VGVz  \r\ndENh" => b"TestCa",
            b"VGVzdENh  " => b"TestCa",
            b"VGVz dENh" => b"",
            b"VGVz\tdENh" => b"",
            b"VGVz\rdENh" => b"",
            b"VGVzdENh!" => b"",
            b"VGVzd=Nh" => b"",
            b"QQ===" => b"",
            b"VGVzdA" => b"Tes",
            b"VGVzdENhc2U" => b"TestCa",
            b"QQ" => b"",
            b"=" => b"",
            b"\x00QUJD" => b"",
            b"\xffQUJD" => b"",
            b"//79" => b"\xff\xfe\xfd",
        );
    }

    #[test]
    fn base64_decode_ext() {
        check!(Transform::Base64DecodeExt,
            b"VGVzdENhc2U=" => b"TestCase",
            b"VGVzdENhc2UxMg==" => b"TestCase12",
            b"P.HNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==" => b"<script>alert(1)</script>",
            b"VGVz dENh\tc2U" => b"TestCase",
            b"VG\x00Vz\xff" => b"Tes",
            b"VGVzdA" => b"Test",
            b"QUJDR" => b"ABC",
            b"QUJDR=" => b"",
            b"QUJDR==" => b"",
            b"QUJD9" => b"",
            b"QUJD9x" => b"ABC\xf7",
            b"QQ=QQ" => b"A\x04\x10",
            b"!!!" => b"",
        );
    }

    #[test]
    fn trims() {
        check!(Transform::Trim,
            b"    TestCase    " => b"TestCase",
            b" \t   Test \x00 Case \t  \t   \r\n  " => b"Test \x00 Case",
            b"\x0b\x0cx\x0b\x0c" => b"x",
            b"\xa0x\xa0" => b"\xa0x\xa0",
            b"   " => b"",
            b"TestCase" => b"TestCase",
        );
        check!(Transform::TrimLeft,
            b"    TestCase    " => b"TestCase    ",
            b"TestCase    " => b"TestCase    ",
            b"\t\n" => b"",
        );
        check!(Transform::TrimRight,
            b"    TestCase    " => b"    TestCase",
            b"    TestCase" => b"    TestCase",
            b"\r\n" => b"",
        );
    }

    #[test]
    fn escape_seq_decode() {
        check!(Transform::EscapeSeqDecode,
            b"\\a\\b\\f\\n\\r\\t\\v\\?\\'\\\"\\\\" => b"\x07\x08\x0c\n\r\t\x0b?'\"\\",
            b"\\0\\12\\123\\x00\\xff\\X41" => b"\x00\n\x53\x00\xffA",
            b"\\8\\9\\666\\xag\\xga\\0123" => b"89\xb6xagxga\n3",
            b"\\777" => b"\xff",
            b"\\x" => b"x",
            b"\\x\\x0" => b"xx0",
            b"\\" => b"\\",
            b"a\\" => b"a\\",
            b"\\\\u0000" => b"\\u0000",
            b"\\q" => b"q",
            b"\\\xff" => b"\xff",
            b"plain" => b"plain",
        );
    }

    #[test]
    fn chains() {
        let mut scratch = Scratch::new();
        let html = [
            Transform::UrlDecodeUni,
            Transform::HtmlEntityDecode,
            Transform::Lowercase,
        ];
        let out = apply_all(&html, b"%26lt;SCRIPT%3E", &mut scratch);
        assert_eq!(out, b"<script>");
        // The same buffers serve the next value.
        let out = apply_all(&html, b"A%2BB", &mut scratch);
        assert_eq!(out, b"a+b");
        let out = apply_all(&[], b"As Is", &mut scratch);
        assert_eq!(out, b"As Is");
        let out = apply_all(&[Transform::Length], b"abc", &mut scratch);
        assert_eq!(out, b"3");
        let four = [
            Transform::CmdLine,
            Transform::RemoveWhitespace,
            Transform::Length,
            Transform::HexEncode,
        ];
        let out = apply_all(&four, b"C^AT /ETC", &mut scratch);
        assert_eq!(out, b"37");
        assert_eq!(apply_chain(&four, b"C^AT /ETC", &mut scratch), b"37");
        assert_eq!(apply_chain(&[], b"x", &mut scratch), b"x");
    }
}
