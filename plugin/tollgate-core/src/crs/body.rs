//! ModSecurity's request parsers, reproduced as pure functions over bytes.
//!
//! Each function here rebuilds what libmodsecurity 3.0.15 puts into its collections for one part of
//! a request, as measured against the real library (`oracle/SEMANTICS.md` lists every fact with the
//! input that shows it; the unit tests at the bottom are those facts):
//!
//! - [`urlencoded`]: the query string and `application/x-www-form-urlencoded` bodies (ARGS_GET,
//!   ARGS_POST): split on `&` and the first `=`, `+` and `%XX` decoded, invalid `%` kept.
//! - [`cookies`]: a `Cookie` header value (REQUEST_COOKIES), ModSecurity v3's split on `;`.
//! - [`json`]: a JSON body as the YAJL-based processor names its arguments (`json.a.array_0`),
//!   with YAJL's own error texts for REQBODY_ERROR_MSG and its string-decoding quirks.
//! - [`multipart`]: `multipart/form-data` (ARGS_POST, FILES, FILES_NAMES, FILES_SIZES,
//!   MULTIPART_PART_HEADERS and every MULTIPART_* flag), a port of ModSecurity's line-buffered state
//!   machine including its 4096-byte line buffer and its known oddities.
//! - [`xml_text`] / [`xml_parse`]: what `XML:/*` yields — the text of the root element — from a
//!   well-formedness checking parser that never expands DTD entities.
//!
//! Collections in libmodsecurity are hash maps, so its iteration order is arbitrary; these functions
//! return document order. Everything runs in time linear in the input (the JSON processor's
//! argument names, which ModSecurity lets grow quadratically, are capped by a budget), uses no
//! recursion on the call stack, and never panics.

use memchr::{memchr, memchr2, memmem};
use std::collections::{HashMap, HashSet};

/// A name and a value, as ModSecurity collects them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pair {
    /// The variable's key (the part after `ARGS:`).
    pub name: Vec<u8>,
    /// The variable's value.
    pub value: Vec<u8>,
}

impl Pair {
    fn new(name: &[u8], value: &[u8]) -> Self {
        Pair {
            name: name.to_vec(),
            value: value.to_vec(),
        }
    }
}

/// The byte at `i`, or 0 past the end: how the C code reads its NUL-terminated buffers.
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// C's `isspace` in the "C" locale.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The pieces `std::getline(stream, token, sep)` yields: like `split`, but nothing for an empty
/// input and no empty piece after a final separator.
fn getline_split(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let body = if s.is_empty() {
        None
    } else {
        Some(s.strip_suffix(&[sep]).unwrap_or(s))
    };
    body.into_iter()
        .flat_map(move |b| b.split(move |c| *c == sep))
}

// ------------------------------------------------------------------------------------------------
// URL-encoded arguments
// ------------------------------------------------------------------------------------------------

/// ModSecurity's non-strict URL decoding: `+` is a space, `%XX` (either case) a byte; a `%` not
/// followed by two hex digits stays and decoding resumes right after it. Returns whether such an
/// invalid `%` was seen.
fn url_decode_into(src: &[u8], dst: &mut Vec<u8>) -> bool {
    let mut invalid = false;
    let mut rest = src;
    while let Some(i) = memchr2(b'%', b'+', rest) {
        dst.extend_from_slice(rest.get(..i).unwrap_or_default());
        let tail = rest.get(i..).unwrap_or_default();
        rest = match tail {
            [b'+', more @ ..] => {
                dst.push(b' ');
                more
            }
            [b'%', more @ ..] => match more {
                [h, l, after @ ..] => match (hex_val(*h), hex_val(*l)) {
                    (Some(h), Some(l)) => {
                        dst.push((h << 4) | l);
                        after
                    }
                    _ => {
                        invalid = true;
                        dst.push(b'%');
                        more
                    }
                },
                _ => {
                    invalid = true;
                    dst.push(b'%');
                    more
                }
            },
            _ => {
                // memchr2 found one of the two bytes at `i`, so this arm is never taken.
                dst.extend_from_slice(tail);
                &[]
            }
        };
    }
    dst.extend_from_slice(rest);
    invalid
}

/// Query strings and URL-encoded bodies: ModSecurity's argument split and decoding.
///
/// Split on `&` (never `;`), then at the first `=`; a piece without `=` is a name with an empty
/// value, empty pieces are kept (`&&a=1` gives two arguments with empty names) except one after a
/// final `&`. Names and values are decoded alike (`+`, `%XX`; `%u0027` and invalid `%zz` stay).
pub fn urlencoded(s: &[u8], out: &mut Vec<Pair>) {
    urlencoded_checked(s, out);
}

/// [`urlencoded`], also telling whether a *value* held an invalid `%` (ModSecurity's
/// URLENCODED_ERROR; it resets its count between the name and the value, so an invalid `%` in a
/// name is not reported).
pub fn urlencoded_checked(s: &[u8], out: &mut Vec<Pair>) -> bool {
    let mut invalid = false;
    for piece in getline_split(s, b'&') {
        let (k, v) = match memchr(b'=', piece) {
            Some(i) => (
                piece.get(..i).unwrap_or_default(),
                piece.get(i + 1..).unwrap_or_default(),
            ),
            None => (piece, &[][..]),
        };
        let mut pair = Pair::default();
        url_decode_into(k, &mut pair.name);
        invalid |= url_decode_into(v, &mut pair.value);
        out.push(pair);
    }
    invalid
}

// ------------------------------------------------------------------------------------------------
// Cookies
// ------------------------------------------------------------------------------------------------

/// `Cookie` header values: ModSecurity's v3 cookie split.
///
/// Split on `;` only; the last piece loses its trailing whitespace; each piece is cut at its first
/// `=` (no `=`: a name with an empty value); leading whitespace is removed from the name, nothing
/// else is trimmed or decoded; pieces that are empty, or whose name is empty, are skipped.
pub fn cookies(header: &[u8], out: &mut Vec<Pair>) {
    let mut pieces = getline_split(header, b';').peekable();
    while let Some(mut piece) = pieces.next() {
        if pieces.peek().is_none() {
            while let [rest @ .., last] = piece {
                if !is_c_space(*last) {
                    break;
                }
                piece = rest;
            }
        }
        if piece.is_empty() {
            continue;
        }
        let (mut k, v) = match memchr(b'=', piece) {
            Some(i) => (
                piece.get(..i).unwrap_or_default(),
                piece.get(i + 1..).unwrap_or_default(),
            ),
            None => (piece, &[][..]),
        };
        while let [first, rest @ ..] = k {
            if !is_c_space(*first) {
                break;
            }
            k = rest;
        }
        if k.is_empty() {
            continue;
        }
        out.push(Pair::new(k, v));
    }
}

// ------------------------------------------------------------------------------------------------
// JSON
// ------------------------------------------------------------------------------------------------

/// ModSecurity's default JSON nesting limit (`SecRequestBodyJsonDepthLimit`): 10 000 containers
/// parse, the 10 001st is an error.
pub const JSON_MAX_DEPTH: usize = 10_000;

/// The argument names of a JSON body may hold at most this many bytes per body byte, plus
/// [`JSON_NAME_BUDGET_SLACK`]. ModSecurity repeats the whole path in every name, so a deep body
/// with many leaves makes names quadratic in the body size; past the budget [`json`] stops with
/// an error (REQBODY_ERROR, which the recommended rule 200002 refuses) instead.
pub const JSON_NAME_BUDGET_FACTOR: usize = 32;

/// Bytes of argument names always allowed, whatever the body size (see
/// [`JSON_NAME_BUDGET_FACTOR`]).
pub const JSON_NAME_BUDGET_SLACK: usize = 1 << 20;

const JSON_PREMATURE_EOF: &str = "parse error: premature EOF\n";
const JSON_TRAILING_GARBAGE: &str = "parse error: trailing garbage\n";
const JSON_DEPTH: &str =
    "parse error: client cancelled parse via callback return value\n. Parsing depth limit exceeded";
const JSON_BUDGET: &str = "parse error: argument names exceed their budget\n";

/// A JSON body as ModSecurity's JSON processor names its arguments; `Err` with a short reason for
/// invalid JSON (REQBODY_ERROR).
///
/// Names: `json` for a scalar document, `<parent>.<key>` for a member (an empty key is
/// `empty-key`), `<parent>.array_<index>` for an array element; values: strings decoded, numbers
/// as written, `true`/`false`, and an empty value for `null`; empty containers give nothing.
/// Arguments parsed before an error stay in `out`, as they do in ModSecurity. The reason is the
/// YAJL message ModSecurity stores: REQBODY_ERROR_MSG is `"JSON parsing error: " + reason`
/// (YAJL's messages end with `\n`). An empty body is no error. Iterative, linear time, at most
/// [`JSON_MAX_DEPTH`] levels.
pub fn json(body: &[u8], out: &mut Vec<Pair>) -> Result<(), &'static str> {
    json_with_depth(body, out, JSON_MAX_DEPTH)
}

/// [`json`] with another nesting limit (`SecRequestBodyJsonDepthLimit`).
pub fn json_with_depth(
    body: &[u8],
    out: &mut Vec<Pair>,
    max_depth: usize,
) -> Result<(), &'static str> {
    if body.is_empty() {
        return Ok(());
    }
    let budget = JSON_NAME_BUDGET_FACTOR
        .saturating_mul(body.len())
        .saturating_add(JSON_NAME_BUDGET_SLACK);
    let mut p = JsonParser {
        lex: JsonLexer { body },
        out,
        stack: Vec::new(),
        root: JsonState::Start,
        path: Vec::new(),
        key: Vec::new(),
        names: 0,
        budget,
        max_depth,
    };
    p.run()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JsonState {
    Start,
    Complete,
    MapStart,
    MapNeedKey,
    MapSep,
    MapNeedVal,
    MapGotVal,
    ArrayStart,
    ArrayNeedVal,
    ArrayGotVal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JsonTok {
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    /// A string's content (without its quotes), and whether it holds a backslash.
    Str(usize, usize, bool),
    Num(usize, usize),
    True,
    False,
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lexed {
    Tok(JsonTok, usize),
    /// The input ended inside a token or before one.
    Eof,
    Err(&'static str),
}

/// YAJL's lexer over the body followed by one space: ModSecurity parses the body in one chunk and
/// then completes the parse, which feeds YAJL a single `" "`.
#[derive(Debug)]
struct JsonLexer<'a> {
    body: &'a [u8],
}

impl JsonLexer<'_> {
    fn get(&self, i: usize) -> Option<u8> {
        match self.body.get(i) {
            Some(c) => Some(*c),
            None if i == self.body.len() => Some(b' '),
            None => None,
        }
    }

    fn lex(&self, mut pos: usize) -> Lexed {
        loop {
            let Some(c) = self.get(pos) else {
                return Lexed::Eof;
            };
            let tok = match c {
                b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => {
                    pos += 1;
                    continue;
                }
                b'{' => JsonTok::LBrace,
                b'}' => JsonTok::RBrace,
                b'[' => JsonTok::LBracket,
                b']' => JsonTok::RBracket,
                b',' => JsonTok::Comma,
                b':' => JsonTok::Colon,
                b't' => return self.literal(pos + 1, b"rue", JsonTok::True),
                b'f' => return self.literal(pos + 1, b"alse", JsonTok::False),
                b'n' => return self.literal(pos + 1, b"ull", JsonTok::Null),
                b'"' => return self.string(pos + 1),
                b'-' | b'0'..=b'9' => return self.number(pos),
                b'/' => {
                    return Lexed::Err(
                        "lexical error: probable comment found in input text, comments are not enabled.\n",
                    )
                }
                _ => return Lexed::Err("lexical error: invalid char in json text.\n"),
            };
            return Lexed::Tok(tok, pos + 1);
        }
    }

    fn literal(&self, mut pos: usize, want: &[u8], tok: JsonTok) -> Lexed {
        for w in want {
            match self.get(pos) {
                None => return Lexed::Eof,
                Some(c) if c == *w => pos += 1,
                Some(_) => return Lexed::Err("lexical error: invalid string in json text.\n"),
            }
        }
        Lexed::Tok(tok, pos)
    }

    fn string(&self, start: usize) -> Lexed {
        let mut pos = start;
        let mut escapes = false;
        loop {
            let Some(c) = self.get(pos) else {
                return Lexed::Eof;
            };
            pos += 1;
            if c == b'"' {
                return Lexed::Tok(JsonTok::Str(start, pos - 1, escapes), pos);
            }
            if c == b'\\' {
                escapes = true;
                let Some(e) = self.get(pos) else {
                    return Lexed::Eof;
                };
                pos += 1;
                if e == b'u' {
                    for _ in 0..4 {
                        let Some(h) = self.get(pos) else {
                            return Lexed::Eof;
                        };
                        if !h.is_ascii_hexdigit() {
                            return Lexed::Err(
                                "lexical error: invalid (non-hex) character occurs after '\\u' inside string.\n",
                            );
                        }
                        pos += 1;
                    }
                } else if !matches!(e, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') {
                    return Lexed::Err(
                        "lexical error: inside a string, '\\' occurs before a character which it may not.\n",
                    );
                }
            } else if c < 0x20 {
                return Lexed::Err("lexical error: invalid character inside string.\n");
            } else if c >= 0x80 {
                // YAJL only checks the lead byte and the number of continuation bytes.
                let need = if c >> 5 == 0x6 {
                    1
                } else if c >> 4 == 0xe {
                    2
                } else if c >> 3 == 0x1e {
                    3
                } else {
                    return Lexed::Err("lexical error: invalid bytes in UTF8 string.\n");
                };
                for _ in 0..need {
                    let Some(b) = self.get(pos) else {
                        return Lexed::Eof;
                    };
                    pos += 1;
                    if b >> 6 != 0x2 {
                        return Lexed::Err("lexical error: invalid bytes in UTF8 string.\n");
                    }
                }
            }
        }
    }

    fn number(&self, start: usize) -> Lexed {
        const MINUS: &str =
            "lexical error: malformed number, a digit is required after the minus sign.\n";
        const DECIMAL: &str =
            "lexical error: malformed number, a digit is required after the decimal point.\n";
        const EXPONENT: &str =
            "lexical error: malformed number, a digit is required after the exponent.\n";
        let mut pos = start;
        // The next byte; `None` ends the token as YAJL does when its input runs out.
        let step = |pos: &mut usize| -> Option<u8> {
            let c = self.get(*pos)?;
            *pos += 1;
            Some(c)
        };
        let Some(mut c) = step(&mut pos) else {
            return Lexed::Eof;
        };
        if c == b'-' {
            let Some(n) = step(&mut pos) else {
                return Lexed::Eof;
            };
            c = n;
        }
        if c == b'0' {
            let Some(n) = step(&mut pos) else {
                return Lexed::Eof;
            };
            c = n;
        } else if c.is_ascii_digit() {
            while c.is_ascii_digit() {
                let Some(n) = step(&mut pos) else {
                    return Lexed::Eof;
                };
                c = n;
            }
        } else {
            return Lexed::Err(MINUS);
        }
        if c == b'.' {
            let Some(n) = step(&mut pos) else {
                return Lexed::Eof;
            };
            c = n;
            let mut digits = 0usize;
            while c.is_ascii_digit() {
                digits += 1;
                let Some(n) = step(&mut pos) else {
                    return Lexed::Eof;
                };
                c = n;
            }
            if digits == 0 {
                return Lexed::Err(DECIMAL);
            }
        }
        if c == b'e' || c == b'E' {
            let Some(n) = step(&mut pos) else {
                return Lexed::Eof;
            };
            c = n;
            if c == b'+' || c == b'-' {
                let Some(n) = step(&mut pos) else {
                    return Lexed::Eof;
                };
                c = n;
            }
            if !c.is_ascii_digit() {
                return Lexed::Err(EXPONENT);
            }
            while c.is_ascii_digit() {
                let Some(n) = step(&mut pos) else {
                    return Lexed::Eof;
                };
                c = n;
            }
        }
        // `c` is not part of the number.
        let end = pos - 1;
        Lexed::Tok(JsonTok::Num(start, end), end)
    }
}

/// YAJL's `hexToDigit`: four characters to a number, with no check (the lexer checked them,
/// except where YAJL's surrogate handling shifts the decoder off the escapes it validated).
fn yajl_hex4(body: &[u8], from: usize) -> u32 {
    let mut val: u32 = 0;
    for i in 0..4 {
        let mut c = at(body, from.saturating_add(i));
        if c >= b'A' {
            c = (c & !0x20).wrapping_sub(7);
        }
        c = c.wrapping_sub(b'0');
        val = (val << 4) | u32::from(c);
    }
    val
}

/// YAJL's `Utf32toUtf8`.
fn yajl_utf8(cp: u32, out: &mut Vec<u8>) {
    // Each `as u8` keeps the low bits on purpose, as YAJL's `(char)` casts do.
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[((cp >> 6) | 0xc0) as u8, ((cp & 0x3f) | 0x80) as u8]);
    } else if cp < 0x10000 {
        out.extend_from_slice(&[
            ((cp >> 12) | 0xe0) as u8,
            (((cp >> 6) & 0x3f) | 0x80) as u8,
            ((cp & 0x3f) | 0x80) as u8,
        ]);
    } else if cp < 0x0020_0000 {
        out.extend_from_slice(&[
            ((cp >> 18) | 0xf0) as u8,
            (((cp >> 12) & 0x3f) | 0x80) as u8,
            (((cp >> 6) & 0x3f) | 0x80) as u8,
            ((cp & 0x3f) | 0x80) as u8,
        ]);
    } else {
        out.push(b'?');
    }
}

/// YAJL's `yajl_string_decode` over the string content `body[start..end]`. Like YAJL it may read
/// the closing quote and what follows it when a high surrogate is not followed by `\u`: it then
/// writes `?` and skips the next byte.
fn yajl_decode(body: &[u8], start: usize, end: usize, out: &mut Vec<u8>) {
    let mut beg = start;
    let mut e = start;
    while e < end {
        if at(body, e) != b'\\' {
            e += 1;
            continue;
        }
        out.extend_from_slice(body.get(beg..e).unwrap_or_default());
        e += 1;
        match at(body, e) {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'"' => out.push(b'"'),
            b'f' => out.push(0x0c),
            b'b' => out.push(0x08),
            b't' => out.push(b'\t'),
            b'u' => {
                e += 1;
                let mut cp = yajl_hex4(body, e);
                e += 3;
                let mut lone = false;
                if (cp & 0xfc00) == 0xd800 {
                    e += 1;
                    if at(body, e) == b'\\' && at(body, e + 1) == b'u' {
                        let low = yajl_hex4(body, e + 2);
                        cp = ((cp & 0x3f) << 10) | ((((cp >> 6) & 0xf) + 1) << 16) | (low & 0x3ff);
                        e += 5;
                    } else {
                        lone = true;
                    }
                }
                if lone {
                    out.push(b'?');
                } else if cp == 0 {
                    out.push(0);
                } else {
                    yajl_utf8(cp, out);
                }
            }
            _ => out.push(b'?'),
        }
        e += 1;
        beg = e;
    }
    if beg < e {
        out.extend_from_slice(body.get(beg..e).unwrap_or_default());
    }
}

#[derive(Clone, Copy, Debug)]
struct JsonFrame {
    is_array: bool,
    state: JsonState,
    index: usize,
    /// The length of [`JsonParser::path`] before this container's name was appended.
    path_len: usize,
}

#[derive(Debug)]
struct JsonParser<'a, 'o> {
    lex: JsonLexer<'a>,
    out: &'o mut Vec<Pair>,
    stack: Vec<JsonFrame>,
    root: JsonState,
    /// The full name of the innermost container (`json.a.array_3`), empty at the root.
    path: Vec<u8>,
    /// The last map key seen.
    key: Vec<u8>,
    names: usize,
    budget: usize,
    max_depth: usize,
}

impl JsonParser<'_, '_> {
    fn state(&self) -> JsonState {
        self.stack.last().map_or(self.root, |f| f.state)
    }

    fn set_state(&mut self, s: JsonState) {
        match self.stack.last_mut() {
            Some(f) => f.state = s,
            None => self.root = s,
        }
    }

    /// Appends to `path` the name a value gets at the current position.
    fn push_name(&mut self) {
        match self.stack.last() {
            None => self.path.extend_from_slice(b"json"),
            Some(f) if f.is_array => {
                self.path.extend_from_slice(b".array_");
                self.path.extend_from_slice(f.index.to_string().as_bytes());
            }
            Some(_) => {
                self.path.push(b'.');
                if self.key.is_empty() {
                    self.path.extend_from_slice(b"empty-key");
                } else {
                    self.path.extend_from_slice(&self.key);
                }
                self.key.clear();
            }
        }
    }

    /// The state after a value (or a container's start) at the current position.
    fn advance(&mut self) {
        let next = match self.state() {
            JsonState::Start => JsonState::Complete,
            JsonState::MapNeedVal => JsonState::MapGotVal,
            _ => JsonState::ArrayGotVal,
        };
        self.set_state(next);
    }

    fn scalar(&mut self, value: Vec<u8>) -> Result<(), &'static str> {
        let base = self.path.len();
        self.push_name();
        self.names = self.names.saturating_add(self.path.len());
        if self.names > self.budget {
            return Err(JSON_BUDGET);
        }
        self.out.push(Pair {
            name: self.path.clone(),
            value,
        });
        self.path.truncate(base);
        if let Some(f) = self.stack.last_mut() {
            if f.is_array {
                f.index += 1;
            }
        }
        self.advance();
        Ok(())
    }

    fn open(&mut self, is_array: bool) -> Result<(), &'static str> {
        if self.stack.len() >= self.max_depth {
            return Err(JSON_DEPTH);
        }
        self.advance();
        let path_len = self.path.len();
        self.push_name();
        self.stack.push(JsonFrame {
            is_array,
            state: if is_array {
                JsonState::ArrayStart
            } else {
                JsonState::MapStart
            },
            index: 0,
            path_len,
        });
        Ok(())
    }

    fn close(&mut self) {
        if let Some(f) = self.stack.pop() {
            self.path.truncate(f.path_len);
        }
        if let Some(f) = self.stack.last_mut() {
            if f.is_array {
                f.index += 1;
            }
        }
    }

    fn string(&self, start: usize, end: usize, escapes: bool) -> Vec<u8> {
        let raw = self.lex.body.get(start..end).unwrap_or_default();
        if !escapes {
            return raw.to_vec();
        }
        let mut v = Vec::with_capacity(raw.len());
        yajl_decode(self.lex.body, start, end, &mut v);
        v
    }

    fn run(&mut self) -> Result<(), &'static str> {
        let mut pos = 0;
        loop {
            let st = self.state();
            let (tok, next) = match self.lex.lex(pos) {
                Lexed::Eof if st == JsonState::Complete => return Ok(()),
                Lexed::Eof => return Err(JSON_PREMATURE_EOF),
                Lexed::Err(_) if st == JsonState::Complete => return Err(JSON_TRAILING_GARBAGE),
                Lexed::Err(e) => return Err(e),
                Lexed::Tok(t, n) => (t, n),
            };
            pos = next;
            match st {
                JsonState::Complete => return Err(JSON_TRAILING_GARBAGE),
                JsonState::Start
                | JsonState::MapNeedVal
                | JsonState::ArrayNeedVal
                | JsonState::ArrayStart => match tok {
                    JsonTok::Str(s, e, esc) => {
                        let v = self.string(s, e, esc);
                        self.scalar(v)?;
                    }
                    JsonTok::Num(s, e) => {
                        let v = self.lex.body.get(s..e).unwrap_or_default().to_vec();
                        self.scalar(v)?;
                    }
                    JsonTok::True => self.scalar(b"true".to_vec())?,
                    JsonTok::False => self.scalar(b"false".to_vec())?,
                    JsonTok::Null => self.scalar(Vec::new())?,
                    JsonTok::LBrace => self.open(false)?,
                    JsonTok::LBracket => self.open(true)?,
                    JsonTok::RBracket if st == JsonState::ArrayStart => self.close(),
                    _ => return Err("parse error: unallowed token at this point in JSON text\n"),
                },
                JsonState::MapStart | JsonState::MapNeedKey => match tok {
                    JsonTok::Str(s, e, esc) => {
                        self.key = self.string(s, e, esc);
                        self.set_state(JsonState::MapSep);
                    }
                    JsonTok::RBrace if st == JsonState::MapStart => self.close(),
                    _ => return Err("parse error: invalid object key (must be a string)\n"),
                },
                JsonState::MapSep => match tok {
                    JsonTok::Colon => self.set_state(JsonState::MapNeedVal),
                    _ => return Err(
                        "parse error: object key and value must be separated by a colon (':')\n",
                    ),
                },
                JsonState::MapGotVal => {
                    match tok {
                        JsonTok::RBrace => self.close(),
                        JsonTok::Comma => self.set_state(JsonState::MapNeedKey),
                        _ => return Err(
                            "parse error: after key and value, inside map, I expect ',' or '}'\n",
                        ),
                    }
                }
                JsonState::ArrayGotVal => match tok {
                    JsonTok::RBracket => self.close(),
                    JsonTok::Comma => self.set_state(JsonState::ArrayNeedVal),
                    _ => return Err("parse error: after array element, I expect ',' or ']'\n"),
                },
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Multipart
// ------------------------------------------------------------------------------------------------

/// ModSecurity's multipart line buffer: a line longer than this is handled in pieces.
const MP_BUF: usize = 4096;

/// What a multipart/form-data body yields.
///
/// The boolean flags are the MULTIPART_* variables ModSecurity sets (`1` when true); they are all
/// false when the body could not be parsed at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Multipart {
    /// Form fields (ARGS_POST, and ARGS): name, value. Empty when the body ended badly (a missing
    /// final boundary, or a hard error), as in ModSecurity.
    pub args: Vec<Pair>,
    /// File parts (FILES; FILES_NAMES holds the names): name: field name, value: file name.
    pub files: Vec<Pair>,
    /// FILES_SIZES: the size of each file in [`Multipart::files`], in the same order.
    pub file_sizes: Vec<u64>,
    /// MULTIPART_PART_HEADERS: name: field name, value: one header line as ModSecurity stores it
    /// (the raw line without its line ending; folded lines joined with one space).
    pub part_headers: Vec<Pair>,
    /// MULTIPART_STRICT_ERROR: any of the flags below (but `unmatched_boundary` and
    /// `crlf_lf_lines`), or a hard parse error.
    pub strict_error: bool,
    /// MULTIPART_UNMATCHED_BOUNDARY `== 1` (what ModSecurity's rule 200004 tests).
    pub unmatched_boundary: bool,
    /// MULTIPART_UNMATCHED_BOUNDARY's exact value: 0; 1 when a line looked like a boundary but was
    /// not ours; 2 once a second boundary line has been matched (overwriting a 1).
    pub unmatched_boundary_value: u8,
    /// MULTIPART_INVALID_QUOTING: single quotes around or inside a name or file name.
    pub invalid_quoting: bool,
    /// MULTIPART_INVALID_HEADER_FOLDING: a folded part header started with whitespace other than
    /// space or tab.
    pub invalid_header_folding: bool,
    /// MULTIPART_HEADER_FOLDING: a folded part header.
    pub header_folding: bool,
    /// MULTIPART_LF_LINE: a line ended with LF alone.
    pub lf_line: bool,
    /// MULTIPART_CRLF_LF_LINES: both CRLF and LF line endings.
    pub crlf_lf_lines: bool,
    /// MULTIPART_DATA_BEFORE: bytes before the first boundary.
    pub data_before: bool,
    /// MULTIPART_DATA_AFTER: bytes after the final boundary.
    pub data_after: bool,
    /// MULTIPART_MISSING_SEMICOLON: no `;` before `boundary` in the Content-Type.
    pub missing_semicolon: bool,
    /// MULTIPART_FILE_LIMIT_EXCEEDED. Never set: ModSecurity only counts files it writes to disk,
    /// and leaves this variable empty.
    pub file_limit_exceeded: bool,
    /// MULTIPART_INVALID_PART: a part without a name, or a boundary where part data should start.
    pub invalid_part: bool,
    /// MULTIPART_BOUNDARY_QUOTED: `boundary="…"`.
    pub boundary_quoted: bool,
    /// MULTIPART_BOUNDARY_WHITESPACE: whitespace around the `=` of the boundary parameter.
    pub boundary_whitespace: bool,
    /// The parse error (REQBODY_ERROR=1), as ModSecurity's message without its variable part:
    /// REQBODY_ERROR_MSG is `"Multipart parsing error: "` followed by it and, for some, a copy of
    /// the offending text.
    pub error: Option<&'static str>,
}

/// The last part-header line, stored when the next line shows it is complete.
#[derive(Clone, Debug, Default)]
enum LastLine {
    #[default]
    None,
    /// A header line as sent, without its line ending.
    Raw(Vec<u8>),
    /// A folded header: `<name>: <value[..len]>` of header `idx`.
    Folded(usize, usize),
}

#[derive(Clone, Debug, Default)]
struct MpPart {
    name: Vec<u8>,
    filename: Vec<u8>,
    is_file: bool,
    /// Header name as sent, value.
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Lower-cased header name to its index in `headers` (header names are case-insensitive).
    index: HashMap<Vec<u8>, usize>,
    /// The header a folded line continues.
    last_header: Option<usize>,
    last_line: LastLine,
    lines: Vec<Vec<u8>>,
    value: Vec<u8>,
    size: u64,
}

impl MpPart {
    fn flush_last_line(&mut self) {
        match std::mem::take(&mut self.last_line) {
            LastLine::None => {}
            LastLine::Raw(l) => self.lines.push(l),
            LastLine::Folded(idx, len) => {
                if let Some((name, value)) = self.headers.get(idx) {
                    let mut l = Vec::with_capacity(name.len() + 2 + len);
                    l.extend_from_slice(name);
                    l.extend_from_slice(b": ");
                    l.extend_from_slice(value.get(..len).unwrap_or(value.as_slice()));
                    self.lines.push(l);
                }
            }
        }
    }
}

/// How a buffered line ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineEnd {
    /// With `\n`.
    Newline,
    /// The 4096-byte buffer filled up.
    Full,
    /// 4095 bytes and a `\r` next, which ModSecurity keeps for the next line.
    HeldCr,
}

#[derive(Debug)]
struct MpParser {
    boundary: Vec<u8>,
    /// `--` + boundary.
    finder: memmem::Finder<'static>,
    m: Multipart,
    flag_error: bool,
    crlf_line: bool,
    boundary_count: usize,
    is_complete: bool,
    /// Whether the buffer starts at the beginning of a line.
    buf_contains_line: bool,
    /// Whether the previous line ended with LF alone (ModSecurity's `m_crlf_state_buf_end == 2`).
    prev_lf: bool,
    part: Option<MpPart>,
    /// Reading part data (ModSecurity's `m_mpp_state == 1`), else part headers.
    in_data: bool,
    /// A data line has been read in this part.
    data_read: bool,
    /// The line ending held back from the previous data line (0, 1 or 2 bytes).
    reserve: usize,
    parts: Vec<MpPart>,
    /// Bytes of MULTIPART_PART_HEADERS still allowed.
    header_budget: usize,
}

const MIME_CHARSET_SPECIAL: &[u8] = b"!#$%&+-^_`{}~";
const ATTR_CHAR_SPECIAL: &[u8] = b"!#$&+-.^_`~";

fn is_token_char(c: u8) -> bool {
    (33..127).contains(&c) && !b"()<>@,;:\\\"/[]?=".contains(&c)
}

fn boundary_chars_valid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| {
        c.is_ascii_alphanumeric() || (*c == b' ' && i + 1 < b.len()) || b"'()+_,-./:=?".contains(c)
    })
}

/// How many times `boundary` (any case) appears with a `=` somewhere after it.
fn count_boundary_params(s: &[u8]) -> usize {
    let lower = s.to_ascii_lowercase();
    let Some(last_eq) = memchr::memrchr(b'=', &lower) else {
        return 0;
    };
    memmem::find_iter(&lower, b"boundary")
        .filter(|i| i + 8 <= last_eq)
        .count()
}

/// ModSecurity's `chomp`: drops the trailing `\r`/`\n` bytes, but leaves a string made only of
/// them as it is.
fn chomp(s: &[u8]) -> &[u8] {
    match s.iter().rposition(|c| *c != b'\r' && *c != b'\n') {
        Some(i) => s.get(..=i).unwrap_or(s),
        None => s,
    }
}

fn skip_while(s: &[u8], from: usize, f: impl Fn(u8) -> bool) -> usize {
    let mut p = from;
    while let Some(c) = s.get(p) {
        if !f(*c) {
            break;
        }
        p += 1;
    }
    p
}

/// ModSecurity's Content-Type check; returns the boundary. `Err(None)`: the body is silently not
/// parsed (`boundary=` or `boundary=""`).
fn mp_init(ct: &[u8], m: &mut Multipart) -> Result<Vec<u8>, Option<&'static str>> {
    if ct.is_empty() {
        return Err(Some("Multipart: Content-Type header not available."));
    }
    if ct.len() > 1024 {
        return Err(Some("Multipart: Invalid boundary in C-T (length)."));
    }
    let ct = match memchr(0, ct) {
        Some(i) => ct.get(..i).unwrap_or_default(),
        None => ct,
    };
    let prefix = b"multipart/form-data";
    if !ct
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    {
        return Err(Some("Multipart: Invalid MIME type."));
    }
    if count_boundary_params(ct) > 1 {
        return Err(Some("Multipart: Multiple boundary parameters in C-T."));
    }
    let Some(pos) = memmem::find(ct, b"boundary") else {
        if count_boundary_params(ct) > 0 {
            return Err(Some(
                "Multipart: Invalid boundary in C-T (case sensitivity).",
            ));
        }
        return Err(Some("Multipart: Boundary not found in C-T."));
    };
    let mut seen_semicolon = false;
    for c in ct.get(prefix.len()..pos).unwrap_or_default() {
        if is_c_space(*c) {
            continue;
        }
        if *c == b';' && !seen_semicolon {
            seen_semicolon = true;
        } else {
            return Err(Some("Multipart: Invalid boundary in C-T (malformed)."));
        }
    }
    if !seen_semicolon {
        m.missing_semicolon = true;
    }
    let after_name = pos + 8;
    let Some(eq) = ct
        .get(after_name..)
        .and_then(|r| memchr(b'=', r))
        .map(|i| after_name + i)
    else {
        return Err(Some("Multipart: Invalid boundary in C-T (malformed)."));
    };
    for c in ct.get(after_name..eq).unwrap_or_default() {
        if is_c_space(*c) {
            m.boundary_whitespace = true;
        } else {
            return Err(Some("Multipart: Invalid boundary in C-T (parameter name)."));
        }
    }
    let value = ct.get(eq + 1..).unwrap_or_default();
    if value.first().is_some_and(|c| is_c_space(*c)) {
        m.boundary_whitespace = true;
    }
    let mut boundary = match value {
        [b'"', inner @ .., b'"'] => {
            if inner.is_empty() {
                return Err(None);
            }
            m.boundary_quoted = true;
            inner.to_vec()
        }
        [b'"', ..] | [_, .., b'"'] => {
            return Err(Some("Multipart: Invalid boundary in C-T (quote)."));
        }
        [] => return Err(None),
        v => v.to_vec(),
    };
    if count_boundary_params(&boundary) != 0 {
        return Err(Some("Multipart: Invalid boundary in C-T (content)."));
    }
    if !boundary_chars_valid(&boundary) {
        // A `; charset=…` after the boundary is tolerated.
        if let Some(i) = memchr(b';', &boundary) {
            boundary.truncate(i);
        }
    }
    if !boundary_chars_valid(&boundary) {
        return Err(Some("Multipart: Invalid boundary in C-T (characters)."));
    }
    if boundary.is_empty() {
        return Err(Some("Multipart: Invalid boundary in C-T (empty)."));
    }
    Ok(boundary)
}

/// ModSecurity's `parse_content_disposition`: fills the part's name and file name. `Err` for any
/// value it does not accept.
fn parse_content_disposition(
    v: &[u8],
    part: &mut MpPart,
    invalid_quoting: &mut bool,
) -> Result<(), ()> {
    let c = |i: usize| at(v, i);
    let ws = |ch: u8| ch == b' ' || ch == b'\t';
    if !v.starts_with(b"form-data") {
        return Err(());
    }
    let mut p = skip_while(v, 9, ws);
    if c(p) == 0 {
        return Ok(());
    }
    if c(p) != b';' {
        return Err(());
    }
    p += 1;
    let mut filename_star: Vec<u8> = Vec::new();
    while c(p) != 0 {
        p = skip_while(v, p, ws);
        if c(p) == 0 {
            return Err(());
        }
        let start = p;
        p = skip_while(v, p, |ch| ch != 0 && ch != b'=' && !ws(ch));
        if c(p) == 0 {
            return Err(());
        }
        let name = v.get(start..p).unwrap_or_default();
        p = skip_while(v, p, ws);
        if c(p) != b'=' {
            return Err(());
        }
        p = skip_while(v, p + 1, ws);
        if c(p) == 0 {
            return Err(());
        }
        let mut quote = 0u8;
        let mut value: Vec<u8> = Vec::new();
        if name == b"filename*" {
            // filename*=charset'[language]'filename
            let charset = p;
            p = skip_while(v, p, |ch| {
                ch != 0 && (ch.is_ascii_alphanumeric() || MIME_CHARSET_SPECIAL.contains(&ch))
            });
            if c(p) != b'\'' || p == charset {
                return Err(());
            }
            p = skip_while(v, p + 1, |ch| ch != 0 && ch != b'\'');
            if c(p) != b'\'' {
                return Err(());
            }
            p += 1;
            let start = p;
            while c(p) != 0 && c(p) != b';' {
                if c(p) == b'%' {
                    if !c(p + 1).is_ascii_hexdigit() || !c(p + 2).is_ascii_hexdigit() {
                        return Err(());
                    }
                    p += 3;
                } else if c(p).is_ascii_alphanumeric() || ATTR_CHAR_SPECIAL.contains(&c(p)) {
                    p += 1;
                } else {
                    return Err(());
                }
            }
            value.extend_from_slice(v.get(start..p).unwrap_or_default());
        } else if c(p) == b'"' || c(p) == b'\'' {
            quote = c(p);
            if quote == b'\'' {
                *invalid_quoting = true;
            }
            p += 1;
            if c(p) == 0 {
                return Err(());
            }
            loop {
                let ch = c(p);
                if ch == 0 {
                    // No closing quote: ModSecurity reads past the end of the string here
                    // (undefined behaviour); 3.0.15 was measured to refuse the header and flag
                    // the quoting.
                    *invalid_quoting = true;
                    return Err(());
                }
                if ch == b'\\' {
                    if c(p + 1) == 0 {
                        return Err(());
                    }
                    // Only the quote and the backslash can be escaped; any other backslash stays.
                    if c(p + 1) == quote || c(p + 1) == b'\\' {
                        p += 1;
                    }
                } else if ch == quote {
                    break;
                }
                value.push(c(p));
                p += 1;
            }
            p += 1;
        } else {
            let start = p;
            p = skip_while(v, p, is_token_char);
            value.extend_from_slice(v.get(start..p).unwrap_or_default());
        }
        let validate_quotes = |value: &[u8], flag: &mut bool| {
            if quote != b'"' && value.contains(&b'\'') {
                *flag = true;
            }
        };
        match name {
            b"name" => {
                validate_quotes(&value, invalid_quoting);
                if !part.name.is_empty() {
                    return Err(());
                }
                part.name = value;
            }
            b"filename" => {
                validate_quotes(&value, invalid_quoting);
                if !part.filename.is_empty() {
                    return Err(());
                }
                part.filename = value;
            }
            b"filename*" => {
                if !filename_star.is_empty() {
                    return Err(());
                }
                filename_star = value;
            }
            _ => return Err(()),
        }
        if c(p) != 0 {
            p = skip_while(v, p, ws);
            if c(p) != 0 {
                if c(p) != b';' {
                    let prev = c(p.saturating_sub(1));
                    if prev == b'\'' || prev == b'"' {
                        *invalid_quoting = true;
                    }
                    return Err(());
                }
                p += 1;
            }
        }
    }
    if !filename_star.is_empty() && part.filename.is_empty() {
        return Err(());
    }
    Ok(())
}

impl MpParser {
    fn soft_error(&mut self, e: &'static str) {
        self.m.error = Some(e);
    }

    /// One buffered line (or 4096/4095-byte piece). `Err` is a hard error: parsing stops.
    fn line(&mut self, line: &[u8], end: LineEnd) -> Result<(), &'static str> {
        let cstr = match memchr(0, line) {
            Some(i) => line.get(..i).unwrap_or_default(),
            None => line,
        };
        let blen = self.boundary.len();
        let mut as_boundary = false;
        if self.buf_contains_line && cstr.len() > 3 && cstr.starts_with(b"--") {
            if cstr.len() >= blen + 2 && cstr.get(2..2 + blen) == Some(self.boundary.as_slice()) {
                if self.prev_lf {
                    self.m.lf_line = true;
                }
                if !self.data_read && self.boundary_count > 0 {
                    // Our boundary where part data should begin.
                    self.m.invalid_part = true;
                } else {
                    if self.boundary_count > 0 {
                        self.m.unmatched_boundary_value = 2;
                    }
                    let mut be = 2 + blen;
                    let is_final = at(line, be) == b'-' && at(line, be + 1) == b'-';
                    if is_final {
                        be += 2;
                        if self.is_complete {
                            return Err("Multipart: Invalid boundary (final duplicate).");
                        }
                    }
                    let crlf =
                        at(line, be) == b'\r' && at(line, be + 1) == b'\n' && at(line, be + 2) == 0;
                    let lf = at(line, be) == b'\n' && at(line, be + 1) == 0;
                    if !crlf && !lf {
                        return Err("Multipart: Invalid boundary: ");
                    }
                    if lf {
                        self.m.lf_line = true;
                    } else {
                        self.crlf_line = true;
                    }
                    self.boundary_line(is_final);
                    if is_final {
                        self.is_complete = true;
                    }
                    as_boundary = true;
                    self.boundary_count += 1;
                }
            } else {
                if self.m.boundary_quoted
                    && cstr.len() >= blen + 3
                    && at(cstr, 2) == b'"'
                    && cstr.get(3..3 + blen) == Some(self.boundary.as_slice())
                {
                    return Err("Multipart: Invalid boundary (quotes).");
                }
                let p = skip_while(cstr, 2, is_c_space);
                if p != 2
                    && cstr
                        .get(p..)
                        .unwrap_or_default()
                        .starts_with(&self.boundary)
                {
                    return Err("Multipart: Invalid boundary (whitespace).");
                }
                self.m.unmatched_boundary_value = 1;
            }
        } else if self.buf_contains_line && self.finder.find(line).is_some() {
            self.m.unmatched_boundary_value = 1;
        }
        if as_boundary {
            return Ok(());
        }
        if self.part.is_none() {
            self.m.data_before = true;
        } else if !self.in_data {
            if end != LineEnd::Newline || line.len() >= MP_BUF {
                return Err("Multipart: Part header line over 4096 bytes long");
            }
            self.header_line(line);
        } else {
            self.data_line(line);
        }
        Ok(())
    }

    fn header_line(&mut self, line: &[u8]) {
        if memchr(0, line).is_some() {
            self.soft_error("Multipart: Nul byte in part headers.");
            return;
        }
        let len = line.len();
        let mut without_end = len.saturating_sub(1);
        if len > 1 && at(line, len - 2) == b'\r' {
            self.crlf_line = true;
            without_end -= 1;
        } else {
            self.m.lf_line = true;
        }
        let Some(part) = self.part.as_mut() else {
            return;
        };
        if line == b"\r\n" || line == b"\n" {
            part.flush_last_line();
            let Some(&cd) = part.index.get(b"content-disposition".as_slice()) else {
                self.soft_error("Multipart: Part missing Content-Disposition header.");
                return;
            };
            let value = part
                .headers
                .get(cd)
                .map(|h| h.1.clone())
                .unwrap_or_default();
            let mut invalid_quoting = false;
            let rc = parse_content_disposition(&value, part, &mut invalid_quoting);
            let no_name = part.name.is_empty();
            let filename_ok =
                part.filename.is_empty() || memmem::find(&value, b"filename=").is_some();
            let is_file = !part.filename.is_empty();
            if invalid_quoting {
                self.m.invalid_quoting = true;
            }
            if rc.is_err() {
                self.soft_error("Multipart: Invalid Content-Disposition header");
                return;
            }
            if no_name {
                self.soft_error("Multipart: Content-Disposition header missing name field.");
                return;
            }
            if !filename_ok {
                self.soft_error("Multipart: Invalid Content-Disposition header (filename).");
                return;
            }
            part.is_file = is_file;
            part.last_header = None;
            self.in_data = true;
            self.data_read = false;
        } else if line.first().is_some_and(|c| is_c_space(*c)) {
            // A folded header line.
            self.m.header_folding = true;
            if !matches!(line.first(), Some(b' ' | b'\t')) {
                self.m.invalid_header_folding = true;
            }
            let Some(idx) = part.last_header else {
                self.soft_error("Multipart: Invalid part header (folding error).");
                return;
            };
            let data = skip_while(line, 0, is_c_space);
            if line
                .get(..data)
                .unwrap_or_default()
                .iter()
                .any(|c| *c != b' ' && *c != b'\t')
            {
                self.m.invalid_header_folding = true;
            }
            let more = chomp(line.get(data..).unwrap_or_default());
            let Some((_, value)) = part.headers.get_mut(idx) else {
                return;
            };
            value.push(b' ');
            value.extend_from_slice(more);
            let vlen = value.len();
            if vlen > MP_BUF {
                self.soft_error("Multipart: Part header too long.");
                return;
            }
            part.last_line = LastLine::Folded(idx, vlen);
        } else {
            part.flush_last_line();
            let Some(colon) = memchr(b':', line) else {
                self.soft_error("Multipart: Invalid part header (colon missing): ");
                return;
            };
            if colon == 0 {
                self.soft_error("Multipart: Invalid part header (header name missing).");
                return;
            }
            let name = line.get(..colon).unwrap_or_default();
            if name.iter().any(|c| !(33..=126).contains(c)) {
                self.soft_error("Multipart: Invalid part header (contains invalid character).");
                return;
            }
            let vstart = skip_while(line, colon + 1, |c| c == b' ' || c == b'\t');
            let value = chomp(line.get(vstart..).unwrap_or_default());
            let key = name.to_ascii_lowercase();
            if part.index.contains_key(&key) {
                // ModSecurity drops a repeated part header without any error.
                return;
            }
            let idx = part.headers.len();
            part.index.insert(key, idx);
            part.headers.push((name.to_vec(), value.to_vec()));
            part.last_header = Some(idx);
            part.last_line = if without_end > 0 {
                LastLine::Raw(line.get(..without_end).unwrap_or_default().to_vec())
            } else {
                LastLine::None
            };
        }
    }

    fn data_line(&mut self, line: &[u8]) {
        self.data_read = true;
        let reserved = match line {
            [.., b'\r', b'\n'] => 2,
            [.., b'\n'] => 1,
            _ => 0,
        };
        let data = line.get(..line.len() - reserved).unwrap_or_default();
        if let Some(part) = self.part.as_mut() {
            if part.is_file {
                part.size = part
                    .size
                    .saturating_add(data.len() as u64)
                    .saturating_add(self.reserve as u64);
            } else {
                // ModSecurity drops the line ending it held back from the previous line: a field
                // value loses its inner line breaks.
                part.value.extend_from_slice(data);
            }
        }
        self.reserve = reserved;
    }

    fn boundary_line(&mut self, last: bool) {
        if let Some(mut part) = self.part.take() {
            for l in std::mem::take(&mut part.lines) {
                let cost = part.name.len().saturating_add(l.len());
                if cost > self.header_budget {
                    self.soft_error("Multipart: part headers exceed their budget.");
                    break;
                }
                self.header_budget -= cost;
                self.m.part_headers.push(Pair {
                    name: part.name.clone(),
                    value: l,
                });
            }
            if part.name.is_empty() {
                self.m.invalid_part = true;
            } else {
                self.parts.push(part);
            }
        }
        if !last {
            self.part = Some(MpPart::default());
            self.in_data = false;
            self.data_read = false;
            self.reserve = 0;
        }
    }

    /// Feeds the whole body; returns the bytes left in the line buffer.
    fn process<'b>(&mut self, body: &'b [u8]) -> &'b [u8] {
        let n = body.len();
        let mut start = 0;
        while start < n {
            let avail = body.get(start..).unwrap_or_default();
            let head = avail.get(..MP_BUF - 1).unwrap_or(avail);
            let (len, end) = match memchr(b'\n', head) {
                Some(k) => (k + 1, LineEnd::Newline),
                None => match avail.get(MP_BUF - 1) {
                    None => return avail,
                    Some(b'\r') => (MP_BUF - 1, LineEnd::HeldCr),
                    Some(b'\n') => (MP_BUF, LineEnd::Newline),
                    Some(_) => (MP_BUF, LineEnd::Full),
                },
            };
            let line = avail.get(..len).unwrap_or(avail);
            if let Err(e) = self.line(line, end) {
                self.m.error = Some(e);
                self.flag_error = true;
                return line;
            }
            let stop = start + len;
            self.buf_contains_line = end == LineEnd::Newline;
            self.prev_lf = end == LineEnd::Newline && (stop < 2 || at(body, stop - 2) != b'\r');
            start = stop;
            if self.is_complete && start < n {
                self.m.data_after = true;
                return &[];
            }
        }
        &[]
    }

    fn complete(mut self, seen_data: bool, pending: &[u8]) -> Multipart {
        let mut strict = self.flag_error
            || self.m.boundary_quoted
            || self.m.boundary_whitespace
            || self.m.data_before
            || self.m.data_after
            || self.m.header_folding
            || self.m.lf_line
            || self.m.missing_semicolon
            || self.m.invalid_quoting
            || self.m.invalid_part
            || self.m.invalid_header_folding
            || self.m.file_limit_exceeded;
        let mut done = true;
        if seen_data && !self.is_complete {
            if self.boundary_count > 0 {
                let closing = pending.len() == self.boundary.len() + 4
                    && pending.starts_with(b"--")
                    && pending.get(2..2 + self.boundary.len()) == Some(self.boundary.as_slice())
                    && pending.ends_with(b"--");
                if self.buf_contains_line && closing {
                    if self.prev_lf && !self.m.lf_line {
                        self.m.lf_line = true;
                        strict = true;
                    }
                    if !self.data_read && !self.m.invalid_part {
                        // Looks like the final boundary, but where part data should begin.
                        self.m.invalid_part = true;
                        strict = true;
                    }
                    self.boundary_line(true);
                    self.is_complete = true;
                }
                if !self.is_complete {
                    self.m.error = Some("Multipart: Final boundary missing.");
                    done = false;
                }
            } else {
                self.m.error = Some("Multipart: No boundaries found in payload.");
                done = false;
            }
        }
        self.m.strict_error = strict;
        self.m.crlf_lf_lines = self.crlf_line && self.m.lf_line;
        self.m.unmatched_boundary = self.m.unmatched_boundary_value == 1;
        if done {
            for p in std::mem::take(&mut self.parts) {
                if p.is_file {
                    self.m.files.push(Pair {
                        name: p.name,
                        value: p.filename,
                    });
                    self.m.file_sizes.push(p.size);
                } else {
                    self.m.args.push(Pair {
                        name: p.name,
                        value: p.value,
                    });
                }
            }
        }
        self.m
    }
}

/// Parses multipart/form-data given the Content-Type header value (the boundary is read from it).
///
/// A port of ModSecurity's processor: lines are read through its 4096-byte buffer; a part's
/// headers end at a blank line; a field's value is its data lines, each without its own line
/// ending (so inner line breaks are lost, as in ModSecurity); files keep only their name and size.
/// Errors in part headers are remembered in [`Multipart::error`] and parsing goes on; a malformed
/// boundary line stops it; when the final boundary is missing, no field or file is returned.
pub fn multipart(content_type: &[u8], body: &[u8]) -> Multipart {
    let mut m = Multipart::default();
    let boundary = match mp_init(content_type, &mut m) {
        Ok(b) => b,
        Err(None) => {
            m.strict_error = m.missing_semicolon || m.boundary_whitespace || m.boundary_quoted;
            return m;
        }
        Err(Some(e)) => {
            m.error = Some(e);
            m.strict_error = true;
            return m;
        }
    };
    let mut dashed = b"--".to_vec();
    dashed.extend_from_slice(&boundary);
    let mut p = MpParser {
        finder: memmem::Finder::new(&dashed).into_owned(),
        boundary,
        m,
        flag_error: false,
        crlf_line: false,
        boundary_count: 0,
        is_complete: false,
        buf_contains_line: true,
        prev_lf: false,
        part: None,
        in_data: false,
        data_read: false,
        reserve: 0,
        parts: Vec::new(),
        header_budget: body.len().saturating_mul(4).saturating_add(1 << 20),
    };
    if body.is_empty() {
        return p.complete(false, &[]);
    }
    let pending = p.process(body);
    p.complete(true, pending)
}

// ------------------------------------------------------------------------------------------------
// XML
// ------------------------------------------------------------------------------------------------

/// libxml2's default nesting limit, as ModSecurity 3.0.15 runs it: 257 nested elements parse,
/// one more is an error.
pub const XML_MAX_DEPTH: usize = 257;

/// REQBODY_ERROR_MSG after any XML error in ModSecurity 3.0.15, whatever the cause.
pub const XML_ERROR_MSG: &str = "XML parsing error: XML: Failed to parse document.";

/// The outcome of [`xml_parse`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XmlParsed {
    /// What `XML:/*` yields: the text of the root element (as much as was read before an error,
    /// as libxml2 leaves it).
    pub text: Vec<u8>,
    /// Why the document is not well-formed (REQBODY_ERROR=1; see [`XML_ERROR_MSG`]).
    pub error: Option<&'static str>,
}

/// XML body as text (what `XML:/*` yields); `Err` for malformed XML.
///
/// The text is every character-data and CDATA section inside the root element, in document order,
/// whitespace included, with line ends in character data normalised (`\r\n`, `\r` → `\n`; as in
/// libxml2 2.9, not inside CDATA sections) and the predefined
/// entities and character references decoded; attributes, comments and processing instructions
/// give nothing. UTF-8 (with or without BOM), UTF-16 with a BOM, and declared ISO-8859-1,
/// US-ASCII or windows-1252 are read; the text is UTF-8. DTD entities are never expanded
/// (ModSecurity's libxml2 expands internal ones; see [`xml_parse`]). Linear time, iterative.
pub fn xml_text(body: &[u8]) -> Result<Vec<u8>, &'static str> {
    let p = xml_parse(body);
    match p.error {
        Some(e) => Err(e),
        None => Ok(p.text),
    }
}

/// [`xml_text`], keeping the text read before an error as libxml2 does.
///
/// A reference to an entity declared in the document's DTD yields nothing: neither internal
/// entities (which libxml2 expands, and where it refuses deep expansions) nor external ones
/// (which ModSecurity does not load either) are expanded, so no XXE and no billion laughs. A
/// reference to an undeclared entity is an error unless the DTD has an external subset or a
/// parameter-entity reference (and the document is not `standalone="yes"`), as in libxml2.
pub fn xml_parse(body: &[u8]) -> XmlParsed {
    let (doc, decode_error) = xml_decode(body);
    let mut p = XmlParser {
        d: &doc,
        b: doc.as_bytes(),
        pos: 0,
        text: Vec::new(),
        entities: HashSet::new(),
        external_entities: HashSet::new(),
        external: false,
        pe_refs: false,
        standalone: false,
        attrs: HashSet::new(),
    };
    let parse_error = p.document().err();
    XmlParsed {
        text: p.text,
        error: parse_error.or(decode_error),
    }
}

/// XML 1.0's `Char`.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// windows-1252's 0x80..=0x9F; `None` where it has no character.
fn cp1252(b: u8) -> Option<char> {
    const HIGH: [u16; 32] = [
        0x20ac, 0, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039,
        0x0152, 0, 0x017d, 0, 0, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc,
        0x2122, 0x0161, 0x203a, 0x0153, 0, 0x017e, 0x0178,
    ];
    if !(0x80..=0x9f).contains(&b) {
        return Some(char::from(b));
    }
    let cp = HIGH.get(usize::from(b - 0x80)).copied().unwrap_or(0);
    if cp == 0 {
        None
    } else {
        char::from_u32(u32::from(cp))
    }
}

/// The encoding named in an XML declaration at the very start, lower-cased.
fn declared_encoding(body: &[u8]) -> Option<Vec<u8>> {
    let rest = body.strip_prefix(b"<?xml")?;
    if !matches!(rest.first(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        return None;
    }
    let decl = rest.get(..memmem::find(rest, b"?>")?)?;
    let i = memmem::find(decl, b"encoding")?;
    let mut p = i + 8;
    let ws = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    p = skip_while(decl, p, ws);
    if at(decl, p) != b'=' {
        return None;
    }
    p = skip_while(decl, p + 1, ws);
    let q = at(decl, p);
    if q != b'"' && q != b'\'' {
        return None;
    }
    let v = decl.get(p + 1..)?;
    let end = memchr(q, v)?;
    Some(v.get(..end)?.to_ascii_lowercase())
}

fn utf16_decode(b: &[u8], little: bool, out: &mut String) -> Option<&'static str> {
    let chunks = b.chunks_exact(2);
    let odd = !chunks.remainder().is_empty();
    let units = chunks.map(|c| match c {
        [x, y] if little => u16::from_le_bytes([*x, *y]),
        [x, y] => u16::from_be_bytes([*x, *y]),
        _ => 0,
    });
    for c in char::decode_utf16(units) {
        match c {
            Ok(c) => out.push(c),
            Err(_) => return Some("XML: invalid UTF-16"),
        }
    }
    if odd {
        return Some("XML: invalid UTF-16");
    }
    None
}

/// The document as UTF-8, cut at the first character that is not an XML character (with the
/// reason).
fn xml_decode(body: &[u8]) -> (String, Option<&'static str>) {
    let mut s = String::with_capacity(body.len());
    let mut err = None;
    match body {
        [0xef, 0xbb, 0xbf, rest @ ..] => match std::str::from_utf8(rest) {
            Ok(t) => s.push_str(t),
            Err(e) => {
                s.push_str(
                    std::str::from_utf8(rest.get(..e.valid_up_to()).unwrap_or_default())
                        .unwrap_or(""),
                );
                err = Some("XML: invalid UTF-8");
            }
        },
        [0xff, 0xfe, rest @ ..] => err = utf16_decode(rest, true, &mut s),
        [0xfe, 0xff, rest @ ..] => err = utf16_decode(rest, false, &mut s),
        [0x3c, 0, 0x3f, 0, ..] => err = utf16_decode(body, true, &mut s),
        [0, 0x3c, 0, 0x3f, ..] => err = utf16_decode(body, false, &mut s),
        _ => {
            let enc = declared_encoding(body).unwrap_or_else(|| b"utf-8".to_vec());
            match enc.as_slice() {
                b"utf-8" | b"utf8" => match std::str::from_utf8(body) {
                    Ok(t) => s.push_str(t),
                    Err(e) => {
                        s.push_str(
                            std::str::from_utf8(body.get(..e.valid_up_to()).unwrap_or_default())
                                .unwrap_or(""),
                        );
                        err = Some("XML: invalid UTF-8");
                    }
                },
                b"iso-8859-1" | b"iso8859-1" | b"iso_8859-1" | b"iso_8859-1:1987" | b"latin1"
                | b"latin-1" | b"l1" | b"iso-latin-1" | b"iso-ir-100" | b"cp819" | b"ibm819"
                | b"csisolatin1" => s.extend(body.iter().map(|b| char::from(*b))),
                b"us-ascii" | b"ascii" | b"us" | b"iso646-us" | b"ansi_x3.4-1968"
                | b"ansi_x3.4-1986" | b"cp367" | b"ibm367" | b"iso-ir-6" | b"csascii" => {
                    for b in body {
                        if !b.is_ascii() {
                            err = Some("XML: byte outside the declared encoding");
                            break;
                        }
                        s.push(char::from(*b));
                    }
                }
                b"windows-1252" | b"cp1252" => {
                    for b in body {
                        match cp1252(*b) {
                            Some(c) => s.push(c),
                            None => {
                                err = Some("XML: byte outside the declared encoding");
                                break;
                            }
                        }
                    }
                }
                b"utf-16" | b"utf-16le" | b"utf-16be" | b"utf16" | b"ucs-2" | b"ucs2" => {
                    err = Some("XML: document labelled UTF-16 without a byte order mark");
                }
                _ => err = Some("XML: unsupported encoding"),
            }
        }
    }
    // Cut at the first character XML does not allow.
    let bad = s
        .char_indices()
        .find(|(_, c)| !is_xml_char(*c))
        .map(|(i, _)| i);
    if let Some(i) = bad {
        s.truncate(i);
        return (s, Some("XML: invalid character"));
    }
    (s, err)
}

/// Character data as libxml2 2.9 reports it: `\r\n` and a lone `\r` become `\n` (in CDATA
/// sections it leaves them as they are).
fn push_char_data(run: &[u8], text: &mut Vec<u8>) {
    let mut rest = run;
    while let Some(i) = memchr(b'\r', rest) {
        text.extend_from_slice(rest.get(..i).unwrap_or_default());
        text.push(b'\n');
        let after = rest.get(i + 1..).unwrap_or_default();
        rest = after.strip_prefix(b"\n").unwrap_or(after);
    }
    text.extend_from_slice(rest);
}

#[derive(Debug)]
struct XmlParser<'d> {
    d: &'d str,
    b: &'d [u8],
    pos: usize,
    text: Vec<u8>,
    /// General entities the internal subset declares.
    entities: HashSet<&'d str>,
    /// Those of them that are external (refused in attribute values).
    external_entities: HashSet<&'d str>,
    /// The DOCTYPE names an external subset.
    external: bool,
    /// The internal subset holds a parameter-entity reference.
    pe_refs: bool,
    standalone: bool,
    /// The attribute names of the current start tag.
    attrs: HashSet<&'d str>,
}

type XmlResult = Result<(), &'static str>;

impl<'d> XmlParser<'d> {
    fn rest(&self) -> &'d str {
        self.d.get(self.pos..).unwrap_or("")
    }

    fn rest_bytes(&self) -> &'d [u8] {
        self.b.get(self.pos..).unwrap_or_default()
    }

    fn starts(&self, p: &str) -> bool {
        self.rest().starts_with(p)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        self.pos = skip_while(self.b, self.pos, |c| {
            matches!(c, b' ' | b'\t' | b'\n' | b'\r')
        });
        self.pos != start
    }

    fn want(&mut self, s: &str, e: &'static str) -> XmlResult {
        if self.starts(s) {
            self.pos += s.len();
            Ok(())
        } else {
            Err(e)
        }
    }

    fn name(&mut self) -> Option<&'d str> {
        let rest = self.rest();
        let first = rest.chars().next()?;
        if !is_name_start(first) {
            return None;
        }
        let end = rest
            .char_indices()
            .find(|(_, c)| !is_name_char(*c))
            .map_or(rest.len(), |(i, _)| i);
        self.pos += end;
        rest.get(..end)
    }

    /// A quoted literal; returns its content.
    fn quoted(&mut self) -> Result<&'d str, &'static str> {
        let q = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            _ => return Err("XML: quoted literal expected"),
        };
        let Some(end) = memchr(q, self.b.get(self.pos + 1..).unwrap_or_default()) else {
            return Err("XML: unterminated literal");
        };
        let v = self.d.get(self.pos + 1..self.pos + 1 + end).unwrap_or("");
        self.pos += end + 2;
        Ok(v)
    }

    /// `S? '=' S?`
    fn eq_sign(&mut self) -> XmlResult {
        self.skip_ws();
        self.want("=", "XML: '=' expected")?;
        self.skip_ws();
        Ok(())
    }

    fn document(&mut self) -> XmlResult {
        let mut doctype = false;
        loop {
            self.skip_ws();
            let at_start = self.pos == 0;
            if self.pos >= self.b.len() {
                return Err("XML: document is empty");
            }
            if self.starts("<?") {
                self.pi(at_start)?;
            } else if self.starts("<!--") {
                self.comment()?;
            } else if self.starts("<!DOCTYPE") && !doctype {
                doctype = true;
                self.doctype()?;
            } else if self.starts("<") {
                break;
            } else {
                return Err("XML: start tag expected");
            }
        }
        self.element()?;
        loop {
            self.skip_ws();
            if self.pos >= self.b.len() {
                return Ok(());
            }
            if self.starts("<?") {
                self.pi(false)?;
            } else if self.starts("<!--") {
                self.comment()?;
            } else {
                return Err("XML: extra content at the end of the document");
            }
        }
    }

    fn pi(&mut self, at_start: bool) -> XmlResult {
        self.pos += 2;
        let Some(target) = self.name() else {
            return Err("XML: processing instruction without a target");
        };
        if target == "xml" {
            if at_start {
                return self.xml_decl();
            }
            return Err("XML: XML declaration allowed only at the start of the document");
        }
        if target.eq_ignore_ascii_case("xml") {
            return Err("XML: reserved processing instruction target");
        }
        if self.starts("?>") {
            self.pos += 2;
            return Ok(());
        }
        if !self.skip_ws() {
            return Err("XML: malformed processing instruction");
        }
        match memmem::find(self.rest_bytes(), b"?>") {
            Some(i) => {
                self.pos += i + 2;
                Ok(())
            }
            None => Err("XML: unterminated processing instruction"),
        }
    }

    fn xml_decl(&mut self) -> XmlResult {
        const BAD: &str = "XML: malformed XML declaration";
        if !self.skip_ws() {
            return Err(BAD);
        }
        self.want("version", "XML: XML declaration without version")?;
        self.eq_sign()?;
        let v = self.quoted()?;
        // libxml2 accepts `1.` followed by any digits, even none.
        let Some(minor) = v.strip_prefix("1.") else {
            return Err("XML: unsupported XML version");
        };
        if !minor.bytes().all(|c| c.is_ascii_digit()) {
            return Err("XML: unsupported XML version");
        }
        let mut ws = self.skip_ws();
        if ws && self.starts("encoding") {
            self.pos += 8;
            self.eq_sign()?;
            let e = self.quoted()?;
            let mut bytes = e.bytes();
            let ok = bytes.next().is_some_and(|c| c.is_ascii_alphabetic())
                && bytes.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
            if !ok {
                return Err("XML: invalid encoding name");
            }
            ws = self.skip_ws();
        }
        if ws && self.starts("standalone") {
            self.pos += 10;
            self.eq_sign()?;
            match self.quoted()? {
                "yes" => self.standalone = true,
                "no" => {}
                _ => return Err(BAD),
            }
            self.skip_ws();
        }
        self.want("?>", BAD)
    }

    fn comment(&mut self) -> XmlResult {
        self.pos += 4;
        let rest = self.rest_bytes();
        match memmem::find(rest, b"--") {
            Some(i) if rest.get(i + 2) == Some(&b'>') => {
                self.pos += i + 3;
                Ok(())
            }
            Some(_) => Err("XML: '--' not allowed in a comment"),
            None => Err("XML: unterminated comment"),
        }
    }

    fn external_id(&mut self) -> XmlResult {
        const BAD: &str = "XML: malformed external identifier";
        if self.starts("SYSTEM") {
            self.pos += 6;
            if !self.skip_ws() {
                return Err(BAD);
            }
            self.quoted()?;
        } else if self.starts("PUBLIC") {
            self.pos += 6;
            if !self.skip_ws() {
                return Err(BAD);
            }
            self.quoted()?;
            if !self.skip_ws() {
                return Err(BAD);
            }
            self.quoted()?;
        } else {
            return Err(BAD);
        }
        Ok(())
    }

    fn doctype(&mut self) -> XmlResult {
        const BAD: &str = "XML: malformed DOCTYPE";
        self.pos += 9;
        // libxml2 does not insist on the space after `<!DOCTYPE`.
        self.skip_ws();
        if self.name().is_none() {
            return Err(BAD);
        }
        let ws = self.skip_ws();
        if ws && (self.starts("SYSTEM") || self.starts("PUBLIC")) {
            self.external_id()?;
            self.external = true;
            self.skip_ws();
        }
        if self.starts("[") {
            self.pos += 1;
            self.internal_subset()?;
            self.skip_ws();
        }
        self.want(">", BAD)
    }

    fn internal_subset(&mut self) -> XmlResult {
        loop {
            self.skip_ws();
            match self.peek() {
                None => return Err("XML: unterminated DOCTYPE"),
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'%') => {
                    self.pos += 1;
                    if self.name().is_none() {
                        return Err("XML: malformed parameter-entity reference");
                    }
                    self.want(";", "XML: malformed parameter-entity reference")?;
                    self.pe_refs = true;
                }
                Some(b'<') => {
                    if self.starts("<!--") {
                        self.comment()?;
                    } else if self.starts("<?") {
                        self.pi(false)?;
                    } else if self.starts("<!ENTITY") {
                        self.entity_decl()?;
                    } else if self.starts("<!ELEMENT")
                        || self.starts("<!ATTLIST")
                        || self.starts("<!NOTATION")
                    {
                        self.skip_decl()?;
                    } else {
                        return Err("XML: invalid markup declaration");
                    }
                }
                Some(_) => return Err("XML: invalid content in the internal subset"),
            }
        }
    }

    /// Skips a markup declaration up to its `>`, quoted literals included.
    fn skip_decl(&mut self) -> XmlResult {
        loop {
            match self.peek() {
                None => return Err("XML: unterminated markup declaration"),
                Some(b'"' | b'\'') => {
                    self.quoted()?;
                }
                Some(b'>') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    fn entity_decl(&mut self) -> XmlResult {
        const BAD: &str = "XML: malformed entity declaration";
        self.pos += 8;
        if !self.skip_ws() {
            return Err(BAD);
        }
        let parameter = self.peek() == Some(b'%');
        if parameter {
            self.pos += 1;
            if !self.skip_ws() {
                return Err(BAD);
            }
        }
        let Some(name) = self.name() else {
            return Err(BAD);
        };
        if !self.skip_ws() {
            return Err(BAD);
        }
        let internal = matches!(self.peek(), Some(b'"' | b'\''));
        if internal {
            let value = self.quoted()?;
            if value.contains('%') {
                return Err("XML: PEReferences forbidden in internal subset");
            }
            if !entity_value_refs_ok(value) {
                return Err(BAD);
            }
        } else {
            self.external_id()?;
            if !parameter && self.skip_ws() && self.starts("NDATA") {
                self.pos += 5;
                if !self.skip_ws() || self.name().is_none() {
                    return Err(BAD);
                }
            }
        }
        self.skip_ws();
        self.want(">", BAD)?;
        if !parameter {
            self.entities.insert(name);
            if !internal {
                self.external_entities.insert(name);
            }
        }
        Ok(())
    }

    /// `&…;` at `pos`; in content, appends what it stands for.
    fn reference(&mut self, in_content: bool) -> XmlResult {
        const BAD: &str = "XML: malformed reference";
        self.pos += 1;
        if self.starts("#") {
            self.pos += 1;
            let hex = self.starts("x");
            if hex {
                self.pos += 1;
            }
            let digits = skip_while(self.b, self.pos, |c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            }) - self.pos;
            let ds = self.d.get(self.pos..self.pos + digits).unwrap_or("");
            self.pos += digits;
            self.want(";", BAD)?;
            let cp = if ds.is_empty() {
                None
            } else {
                u32::from_str_radix(ds, if hex { 16 } else { 10 }).ok()
            };
            let Some(c) = cp.and_then(char::from_u32).filter(|c| is_xml_char(*c)) else {
                return Err("XML: invalid character reference");
            };
            if in_content {
                let mut buf = [0u8; 4];
                self.text
                    .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            return Ok(());
        }
        let Some(name) = self.name() else {
            return Err(BAD);
        };
        self.want(";", BAD)?;
        let predefined = match name {
            "lt" => Some(b'<'),
            "gt" => Some(b'>'),
            "amp" => Some(b'&'),
            "apos" => Some(b'\''),
            "quot" => Some(b'"'),
            _ => None,
        };
        if let Some(c) = predefined {
            if in_content {
                self.text.push(c);
            }
        } else if !in_content && self.external_entities.contains(name) {
            return Err("XML: attribute references an external entity");
        } else if !self.entities.contains(name)
            && (self.standalone || (!self.external && !self.pe_refs))
        {
            return Err("XML: undefined entity");
        }
        Ok(())
    }

    /// A start tag at `pos`; pushes the element unless it is empty (`<a/>`).
    fn start_tag(&mut self, stack: &mut Vec<&'d str>) -> XmlResult {
        if stack.len() >= XML_MAX_DEPTH {
            return Err("XML: excessive depth in document");
        }
        self.pos += 1;
        let Some(name) = self.name() else {
            return Err("XML: invalid element name");
        };
        self.attrs.clear();
        loop {
            let ws = self.skip_ws();
            if self.starts("/>") {
                self.pos += 2;
                return Ok(());
            }
            if self.starts(">") {
                self.pos += 1;
                stack.push(name);
                return Ok(());
            }
            if !ws {
                return Err("XML: attributes construct error");
            }
            let Some(attr) = self.name() else {
                return Err("XML: attributes construct error");
            };
            self.eq_sign()?;
            let q = match self.peek() {
                Some(q @ (b'"' | b'\'')) => q,
                _ => return Err("XML: attribute value must be quoted"),
            };
            self.pos += 1;
            loop {
                match memchr::memchr3(q, b'<', b'&', self.rest_bytes()) {
                    None => return Err("XML: unterminated attribute value"),
                    Some(i) => {
                        self.pos += i;
                        match self.peek() {
                            Some(b'<') => return Err("XML: '<' in an attribute value"),
                            Some(b'&') => self.reference(false)?,
                            _ => {
                                self.pos += 1;
                                break;
                            }
                        }
                    }
                }
            }
            if !self.attrs.insert(attr) {
                return Err("XML: attribute redefined");
            }
        }
    }

    /// The root element and everything in it, without recursion.
    fn element(&mut self) -> XmlResult {
        let mut stack: Vec<&'d str> = Vec::new();
        self.start_tag(&mut stack)?;
        while let Some(&top) = stack.last() {
            let rest = self.rest_bytes();
            let next = memchr2(b'<', b'&', rest);
            let run = rest.get(..next.unwrap_or(rest.len())).unwrap_or_default();
            if memmem::find(run, b"]]>").is_some() {
                return Err("XML: ']]>' not allowed in content");
            }
            push_char_data(run, &mut self.text);
            self.pos += run.len();
            if next.is_none() {
                return Err("XML: premature end of data");
            }
            if self.starts("&") {
                self.reference(true)?;
            } else if self.starts("</") {
                self.pos += 2;
                if self.name() != Some(top) {
                    return Err("XML: mismatched end tag");
                }
                self.skip_ws();
                self.want(">", "XML: malformed end tag")?;
                stack.pop();
            } else if self.starts("<!--") {
                self.comment()?;
            } else if self.starts("<![CDATA[") {
                self.pos += 9;
                let rest = self.rest_bytes();
                let Some(i) = memmem::find(rest, b"]]>") else {
                    return Err("XML: unterminated CDATA section");
                };
                self.text
                    .extend_from_slice(rest.get(..i).unwrap_or_default());
                self.pos += i + 3;
            } else if self.starts("<?") {
                self.pi(false)?;
            } else if self.starts("<!") {
                return Err("XML: markup declaration in content");
            } else {
                self.start_tag(&mut stack)?;
            }
        }
        Ok(())
    }
}

/// Whether every `&` in an entity value starts a well-formed reference.
fn entity_value_refs_ok(v: &str) -> bool {
    let mut rest = v;
    while let Some(i) = rest.find('&') {
        let after = rest.get(i + 1..).unwrap_or("");
        let Some(end) = after.find(';') else {
            return false;
        };
        let body = after.get(..end).unwrap_or("");
        let ok = if let Some(h) = body.strip_prefix("#x") {
            !h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit())
        } else if let Some(d) = body.strip_prefix('#') {
            !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())
        } else {
            let mut cs = body.chars();
            cs.next().is_some_and(is_name_start) && cs.all(is_name_char)
        };
        if !ok {
            return false;
        }
        rest = after.get(end + 1..).unwrap_or("");
    }
    true
}

#[cfg(test)]
mod tests {
    //! Each test names the fact of `oracle/SEMANTICS.md` it checks (measured on libmodsecurity
    //! 3.0.15). Pairs are shown as `name=value`, joined with `|`, bytes escaped.
    use super::*;

    fn show(out: &[Pair]) -> String {
        out.iter()
            .map(|p| format!("{}={}", p.name.escape_ascii(), p.value.escape_ascii()))
            .collect::<Vec<_>>()
            .join("|")
    }

    fn ue(s: &[u8]) -> String {
        let mut out = Vec::new();
        urlencoded(s, &mut out);
        show(&out)
    }

    fn ck(s: &[u8]) -> String {
        let mut out = Vec::new();
        cookies(s, &mut out);
        show(&out)
    }

    fn js(body: &[u8]) -> (String, Result<(), &'static str>) {
        let mut out = Vec::new();
        let r = json(body, &mut out);
        (show(&out), r)
    }

    fn js_ok(body: &[u8]) -> String {
        let (s, r) = js(body);
        assert_eq!(r, Ok(()), "{}", body.escape_ascii());
        s
    }

    // --- query strings and URL-encoded bodies ---

    #[test]
    fn args_plus_and_percent_are_decoded_in_names_and_values() {
        assert_eq!(ue(b"x=1%27&y"), r"x=1\'|y=");
        assert_eq!(ue(b"a+b=c+d"), "a b=c d");
        assert_eq!(ue(b"a=%E2%80%A8"), r"a=\xe2\x80\xa8");
        assert_eq!(ue(b"a=%c3%a9&b=%C3%A9"), r"a=\xc3\xa9|b=\xc3\xa9");
        assert_eq!(ue(b"%00a=1%00"), r"\x00a=1\x00");
        assert_eq!(ue(b"a%3db=1"), "a=b=1");
        assert_eq!(ue(b"+=1&%20=2"), " =1| =2");
    }

    #[test]
    fn args_invalid_percent_stays_and_sets_urlencoded_error() {
        assert_eq!(ue(b"a=%zz&b=%2"), "a=%zz|b=%2");
        assert_eq!(ue(b"a=%u0027&b=%U0027"), "a=%u0027|b=%U0027");
        assert_eq!(ue(b"%=1"), "%=1");
        assert_eq!(ue(b"a=%%41"), "a=%A");
        assert_eq!(ue(b"a=1%"), "a=1%");
        assert_eq!(ue(b"a=%4"), "a=%4");
        let mut out = Vec::new();
        assert!(urlencoded_checked(b"a=%zz", &mut out));
        assert!(urlencoded_checked(b"a=%", &mut out));
        assert!(!urlencoded_checked(b"a=%41&b=+", &mut out));
        // Only values count.
        assert!(!urlencoded_checked(b"%zz=1&f%z0&%", &mut out));
    }

    #[test]
    fn args_split_on_ampersand_and_first_equals_only() {
        assert_eq!(ue(b"a;b=1;c"), "a;b=1;c");
        assert_eq!(ue(b"a=b=c"), "a=b=c");
        assert_eq!(ue(b"x"), "x=");
        assert_eq!(ue(b"=v"), "=v");
        assert_eq!(ue(b"a=1&a=2"), "a=1|a=2");
        assert_eq!(ue(b" a =1"), " a =1");
        assert_eq!(ue(b"a[]=1&a[b]=2"), "a[]=1|a[b]=2");
        assert_eq!(ue(b"x?y=1"), "x?y=1");
    }

    #[test]
    fn args_empty_pieces_kept_except_after_the_final_ampersand() {
        assert_eq!(ue(b"&&a=1&&"), "=|=|a=1|=");
        assert_eq!(ue(b"a=1&"), "a=1");
        assert_eq!(ue(b"&"), "=");
        assert_eq!(ue(b""), "");
    }

    // --- cookies ---

    #[test]
    fn cookies_split_on_semicolon_and_trim_leading_name_whitespace() {
        assert_eq!(ck(b"a=1; b=2"), "a=1|b=2");
        assert_eq!(ck(b"a=1;b=2"), "a=1|b=2");
        assert_eq!(ck(b"a=1;\tb=2"), "a=1|b=2");
        assert_eq!(ck(b"a=1, b=2"), "a=1, b=2");
        assert_eq!(ck(b"x y=1"), "x y=1");
    }

    #[test]
    fn cookies_values_untouched_only_last_pair_right_trimmed() {
        // `b ` keeps its trailing space, `1 ` too; the last pair loses its trailing space.
        assert_eq!(ck(b"a=1 ;  b = 2 "), "a=1 |b = 2");
        assert_eq!(ck(b" a=1\t"), "a=1");
        assert_eq!(ck(b"a=b=c"), "a=b=c");
        assert_eq!(ck(b"a=\"q v\""), "a=\\\"q v\\\"");
        assert_eq!(ck(b"a=%27x%27+y"), "a=%27x%27+y");
        assert_eq!(ck(b"a=1\x00b; c=2"), r"a=1\x00b|c=2");
    }

    #[test]
    fn cookies_without_equals_or_empty_are_handled_like_v3() {
        assert_eq!(ck(b"flag"), "flag=");
        assert_eq!(ck(b";;a=1;;"), "a=1");
        assert_eq!(ck(b"  =bar; c=1"), "c=1");
        assert_eq!(ck(b""), "");
        assert_eq!(ck(b" "), "");
        assert_eq!(ck(b"a=1;"), "a=1");
        assert_eq!(ck(b"a=1; a=2"), "a=1|a=2");
    }

    // --- JSON ---

    #[test]
    fn json_names_objects_arrays_and_scalars() {
        assert_eq!(
            js_ok(br#"{"a":[1,2],"b":{"c":"d"}}"#),
            "json.a.array_0=1|json.a.array_1=2|json.b.c=d"
        );
        assert_eq!(
            js_ok(b"[1,2,3]"),
            "json.array_0=1|json.array_1=2|json.array_2=3"
        );
        assert_eq!(
            js_ok(br#"[{"a":1},{"b":2}]"#),
            "json.array_0.a=1|json.array_1.b=2"
        );
        assert_eq!(
            js_ok(b"[[1,2],[3]]"),
            "json.array_0.array_0=1|json.array_0.array_1=2|json.array_1.array_0=3"
        );
        assert_eq!(
            js_ok(br#"{"a":[[1,2],[3,{"x":[4]}]]}"#),
            "json.a.array_0.array_0=1|json.a.array_0.array_1=2|json.a.array_1.array_0=3|json.a.array_1.array_1.x.array_0=4"
        );
        assert_eq!(
            js_ok(br#"{"a":{"b":[1,{"c":2}],"d":3}}"#),
            "json.a.b.array_0=1|json.a.b.array_1.c=2|json.a.d=3"
        );
    }

    #[test]
    fn json_scalar_documents_are_named_json() {
        assert_eq!(js_ok(br#""str""#), "json=str");
        assert_eq!(js_ok(b"42"), "json=42");
        assert_eq!(js_ok(b"true"), "json=true");
        assert_eq!(js_ok(b"null"), "json=");
        assert_eq!(js_ok(b"12 "), "json=12");
    }

    #[test]
    fn json_values_numbers_as_written_booleans_as_words_null_empty() {
        assert_eq!(
            js_ok(br#"{"a":true,"b":false,"c":null,"d":1.5e3,"e":-0}"#),
            "json.a=true|json.b=false|json.c=|json.d=1.5e3|json.e=-0"
        );
        assert_eq!(js_ok(br#"{"a":1e999}"#), "json.a=1e999");
        assert_eq!(
            js_ok(br#"{"a":123456789012345678901234567890}"#),
            "json.a=123456789012345678901234567890"
        );
        assert_eq!(js_ok(b"[1.5E+3]"), "json.array_0=1.5E+3");
        assert_eq!(js_ok(b"[-0.0e-0]"), "json.array_0=-0.0e-0");
    }

    #[test]
    fn json_empty_containers_give_nothing_but_take_an_index() {
        for b in [&br#"{"a":[]}"#[..], br#"{"a":{}}"#, b"[]", b"{}"] {
            assert_eq!(js_ok(b), "");
        }
        assert_eq!(
            js_ok(br#"{"a":[1,[],2]}"#),
            "json.a.array_0=1|json.a.array_2=2"
        );
        assert_eq!(js_ok(br#"{"x":[{}, 1]}"#), "json.x.array_1=1");
        assert_eq!(js_ok(br#"{"a":{},"b":1}"#), "json.b=1");
    }

    #[test]
    fn json_empty_key_and_raw_keys() {
        assert_eq!(js_ok(br#"{"":1}"#), "json.empty-key=1");
        assert_eq!(js_ok(br#"{"a":{"":1}}"#), "json.a.empty-key=1");
        assert_eq!(js_ok(br#"[{"":1}]"#), "json.array_0.empty-key=1");
        assert_eq!(js_ok(br#"{"a":[{"":5}]}"#), "json.a.array_0.empty-key=5");
        assert_eq!(js_ok(br#"{"a.b":1}"#), "json.a.b=1");
        assert_eq!(js_ok(br#"{"\u0041":1}"#), "json.A=1");
        assert_eq!(js_ok(br#"{"a\u0000b":1}"#), r"json.a\x00b=1");
        assert_eq!(js_ok(br#"{"a":1,"a":2}"#), "json.a=1|json.a=2");
    }

    #[test]
    fn json_string_escapes_follow_yajl_including_surrogate_quirks() {
        assert_eq!(js_ok(br#"{"a":"\u0027\n\"x"}"#), r#"json.a=\'\n\"x"#);
        assert_eq!(js_ok(br#""\u0000x""#), r"json=\x00x");
        assert_eq!(js_ok(br#""\ud83d\ude00""#), r"json=\xf0\x9f\x98\x80");
        assert_eq!(js_ok(br#""\uD83D\uDE00""#), r"json=\xf0\x9f\x98\x80");
        assert_eq!(js_ok(br#""\udc00""#), r"json=\xed\xb0\x80");
        assert_eq!(js_ok(br#""\ud800\u0041""#), r"json=\xf0\x90\x81\x81");
        assert_eq!(js_ok(br#""\ud800x""#), "json=?");
        assert_eq!(js_ok(br#""\ud800\n""#), "json=?n");
        assert_eq!(js_ok(br#""\ud800\"x""#), r#"json=?\"x"#);
        assert_eq!(js_ok(br#""a\ud800""#), "json=a?");
        assert_eq!(js_ok(br#""\ud800""#), "json=?");
        assert_eq!(js_ok(br#""\/\b\f\r\t""#), r"json=/\x08\x0c\r\t");
        assert_eq!(js_ok(br#""\u00e9""#), r"json=\xc3\xa9");
    }

    #[test]
    fn json_utf8_checked_loosely_and_control_bytes_refused() {
        assert_eq!(js_ok(b"\"\xc0\x80\""), r"json=\xc0\x80");
        assert_eq!(js_ok(b"\"\xed\xa0\x80\""), r"json=\xed\xa0\x80");
        assert_eq!(js_ok(b"\"\xf7\xbf\xbf\xbf\""), r"json=\xf7\xbf\xbf\xbf");
        assert_eq!(js_ok(b"\"\x7f\""), r"json=\x7f");
        assert_eq!(js_ok(b"{\"a\":\"\xc3\xa9\"}"), r"json.a=\xc3\xa9");
        let utf8 = Err("lexical error: invalid bytes in UTF8 string.\n");
        assert_eq!(js(b"{\"a\":\"\xff\"}"), (String::new(), utf8));
        assert_eq!(js(b"\"\xf8\x80\x80\x80\x80\"").1, utf8);
        assert_eq!(js(b"\"\xe2\x82\"").1, utf8);
        assert_eq!(
            js(b"{\"a\":\"tab\there\"}").1,
            Err("lexical error: invalid character inside string.\n")
        );
    }

    #[test]
    fn json_whitespace_includes_vt_and_ff_but_not_a_bom() {
        assert_eq!(js_ok(b"\x0b[1]\x0c"), "json.array_0=1");
        assert_eq!(js_ok(b"  {\"a\":1}  "), "json.a=1");
        assert_eq!(js_ok(b"{\"a\":1}\n"), "json.a=1");
        assert_eq!(
            js(b"\xef\xbb\xbf{\"a\":1}"),
            (
                String::new(),
                Err("lexical error: invalid char in json text.\n")
            )
        );
    }

    #[test]
    fn json_errors_keep_the_arguments_parsed_before_them() {
        let cases: &[(&[u8], &str, &str)] = &[
            (br#"{"a":1"#, "json.a=1", "parse error: premature EOF\n"),
            (
                br#"{"a":1}x"#,
                "json.a=1",
                "parse error: trailing garbage\n",
            ),
            (
                br#"{"a":1} {"b":2}"#,
                "json.a=1",
                "parse error: trailing garbage\n",
            ),
            (
                br#"{"a":01}"#,
                "json.a=0",
                "parse error: after key and value, inside map, I expect ',' or '}'\n",
            ),
            (
                b"[-01]",
                "json.array_0=-0",
                "parse error: after array element, I expect ',' or ']'\n",
            ),
            (
                b"[truex]",
                "json.array_0=true",
                "lexical error: invalid char in json text.\n",
            ),
            (
                b"[true1]",
                "json.array_0=true",
                "parse error: after array element, I expect ',' or ']'\n",
            ),
            (
                b"[1true]",
                "json.array_0=1",
                "parse error: after array element, I expect ',' or ']'\n",
            ),
            (
                br#"["a"1]"#,
                "json.array_0=a",
                "parse error: after array element, I expect ',' or ']'\n",
            ),
            (
                b"[1.5.3]",
                "json.array_0=1.5",
                "lexical error: invalid char in json text.\n",
            ),
            (
                b"[0x10]",
                "json.array_0=0",
                "lexical error: invalid char in json text.\n",
            ),
            (
                b"[1e5x]",
                "json.array_0=1e5",
                "lexical error: invalid char in json text.\n",
            ),
            (
                b"[1,]",
                "json.array_0=1",
                "parse error: unallowed token at this point in JSON text\n",
            ),
            (
                b"[1,,2]",
                "json.array_0=1",
                "parse error: unallowed token at this point in JSON text\n",
            ),
            (
                b"[,1]",
                "",
                "parse error: unallowed token at this point in JSON text\n",
            ),
            (
                br#"{"a":}"#,
                "",
                "parse error: unallowed token at this point in JSON text\n",
            ),
            (
                br#"{"a":1,}"#,
                "json.a=1",
                "parse error: invalid object key (must be a string)\n",
            ),
            (
                b"{1:2}",
                "",
                "parse error: invalid object key (must be a string)\n",
            ),
            (
                b"{,}",
                "",
                "parse error: invalid object key (must be a string)\n",
            ),
            (
                br#"{"a" 1}"#,
                "",
                "parse error: object key and value must be separated by a colon (':')\n",
            ),
            (
                br#"{"a":1,"b"}"#,
                "json.a=1",
                "parse error: object key and value must be separated by a colon (':')\n",
            ),
            (
                br#"{"a":1 "b":2}"#,
                "json.a=1",
                "parse error: after key and value, inside map, I expect ',' or '}'\n",
            ),
            (
                br#"{"a":[1,2}"#,
                "json.a.array_0=1|json.a.array_1=2",
                "parse error: after array element, I expect ',' or ']'\n",
            ),
            (
                b"[1,2",
                "json.array_0=1|json.array_1=2",
                "parse error: premature EOF\n",
            ),
            (
                b"[1 2]",
                "json.array_0=1",
                "parse error: after array element, I expect ',' or ']'\n",
            ),
            (
                br#"{"a":1}}"#,
                "json.a=1",
                "parse error: trailing garbage\n",
            ),
        ];
        for (body, args, err) in cases {
            assert_eq!(
                js(body),
                (args.to_string(), Err(*err)),
                "{}",
                body.escape_ascii()
            );
        }
    }

    #[test]
    fn json_lexical_error_messages_are_yajls() {
        let cases: &[(&[u8], &str)] = &[
            (b"{'a':1}", "lexical error: invalid char in json text.\n"),
            (br#"{"a":NaN}"#, "lexical error: invalid char in json text.\n"),
            (b"[.5]", "lexical error: invalid char in json text.\n"),
            (b"[+1]", "lexical error: invalid char in json text.\n"),
            (b"\x00", "lexical error: invalid char in json text.\n"),
            (br#"{"a":tru}"#, "lexical error: invalid string in json text.\n"),
            (b"nul", "lexical error: invalid string in json text.\n"),
            (b"[nulL]", "lexical error: invalid string in json text.\n"),
            (b"[1.]", "lexical error: malformed number, a digit is required after the decimal point.\n"),
            (b"1.", "lexical error: malformed number, a digit is required after the decimal point.\n"),
            (b"[1e]", "lexical error: malformed number, a digit is required after the exponent.\n"),
            (b"[-]", "lexical error: malformed number, a digit is required after the minus sign.\n"),
            (b"-", "lexical error: malformed number, a digit is required after the minus sign.\n"),
            (br#"{"a":/*c*/1}"#, "lexical error: probable comment found in input text, comments are not enabled.\n"),
            (br#""\u12""#, "lexical error: invalid (non-hex) character occurs after '\\u' inside string.\n"),
            (br#""\u12g4""#, "lexical error: invalid (non-hex) character occurs after '\\u' inside string.\n"),
            (br#"{"a":"\x41"}"#, "lexical error: inside a string, '\\' occurs before a character which it may not.\n"),
            (b"[", "parse error: premature EOF\n"),
            (br#"{"a""#, "parse error: premature EOF\n"),
            (br#"{"a":"#, "parse error: premature EOF\n"),
            (br#""abc"#, "parse error: premature EOF\n"),
        ];
        for (body, err) in cases {
            assert_eq!(js(body).1, Err(*err), "{}", body.escape_ascii());
        }
    }

    #[test]
    fn json_after_the_document_only_an_unterminated_string_is_accepted() {
        assert_eq!(js(br#"[1] "abc"#), ("json.array_0=1".into(), Ok(())));
        assert_eq!(js(br#"[1] ""#), ("json.array_0=1".into(), Ok(())));
        for body in [
            &b"[1] tru"[..],
            b"[1] 12",
            b"[1] /",
            b"[1] ]",
            b"[1]\x00",
            b"[1] [2]",
            b"[1]x",
        ] {
            assert_eq!(
                js(body),
                (
                    "json.array_0=1".into(),
                    Err("parse error: trailing garbage\n")
                ),
                "{}",
                body.escape_ascii()
            );
        }
    }

    #[test]
    fn json_empty_body_is_no_error_a_blank_one_is() {
        assert_eq!(js(b""), (String::new(), Ok(())));
        assert_eq!(
            js(b" "),
            (String::new(), Err("parse error: premature EOF\n"))
        );
    }

    #[test]
    fn json_depth_10000_parses_10001_is_refused() {
        let deep = |n: usize| {
            let mut b = vec![b'['; n];
            b.extend_from_slice(&vec![b']'; n]);
            b
        };
        assert_eq!(js(&deep(10_000)), (String::new(), Ok(())));
        assert_eq!(
            js(&deep(10_001)).1,
            Err("parse error: client cancelled parse via callback return value\n. Parsing depth limit exceeded")
        );
        let mut out = Vec::new();
        assert_eq!(json_with_depth(b"[[1]]", &mut out, 1), Err(JSON_DEPTH));
    }

    #[test]
    fn json_names_over_budget_stop_with_an_error() {
        // Deliberate difference: ModSecurity would build ~40 KB of name for every leaf.
        let mut b = vec![b'['; 5000];
        for _ in 0..1000 {
            b.extend_from_slice(b"1,");
        }
        b.push(b'1');
        b.extend_from_slice(&[b']'; 5000]);
        let mut out = Vec::new();
        assert_eq!(json(&b, &mut out), Err(JSON_BUDGET));
        assert!(!out.is_empty() && out.len() < 1001);
        assert!(out.iter().all(|p| p.value == b"1"));
    }

    // --- multipart ---

    const CT: &[u8] = b"multipart/form-data; boundary=XX";

    fn field(name: &str, value: &[u8]) -> Vec<u8> {
        let mut b =
            format!("--XX\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").into_bytes();
        b.extend_from_slice(value);
        b.extend_from_slice(b"\r\n");
        b
    }

    /// The flags that are set, by their MULTIPART_* names.
    fn flags(m: &Multipart) -> String {
        let all = [
            ("strict_error", m.strict_error),
            ("unmatched_boundary", m.unmatched_boundary),
            ("invalid_quoting", m.invalid_quoting),
            ("invalid_header_folding", m.invalid_header_folding),
            ("header_folding", m.header_folding),
            ("lf_line", m.lf_line),
            ("crlf_lf_lines", m.crlf_lf_lines),
            ("data_before", m.data_before),
            ("data_after", m.data_after),
            ("missing_semicolon", m.missing_semicolon),
            ("file_limit_exceeded", m.file_limit_exceeded),
            ("invalid_part", m.invalid_part),
            ("boundary_quoted", m.boundary_quoted),
            ("boundary_whitespace", m.boundary_whitespace),
        ];
        all.iter()
            .filter(|(_, v)| *v)
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn multipart_fields_files_part_headers_and_unmatched_boundary_2() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue1\r\n--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.php\"\r\nContent-Type: text/plain\r\n\r\nfile\r\ndata\r\n--XX--\r\n";
        let m = multipart(CT, body);
        assert_eq!(show(&m.args), "a=value1");
        assert_eq!(show(&m.files), "f=x.php");
        assert_eq!(m.file_sizes, [10]);
        assert_eq!(
            show(&m.part_headers),
            "a=Content-Disposition: form-data; name=\\\"a\\\"|f=Content-Disposition: form-data; name=\\\"f\\\"; filename=\\\"x.php\\\"|f=Content-Type: text/plain"
        );
        assert_eq!(m.unmatched_boundary_value, 2);
        assert_eq!(flags(&m), "");
        assert_eq!(m.error, None);
    }

    #[test]
    fn multipart_value_lines_lose_their_line_breaks() {
        let m = multipart(CT, b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nline1\r\nline2\nline3\r\n--XX--\r\n");
        assert_eq!(show(&m.args), "a=line1line2line3");
        let m = multipart(
            CT,
            &[field("a", b"a\x00b"), b"--XX--\r\n".to_vec()].concat(),
        );
        assert_eq!(show(&m.args), r"a=a\x00b");
        let m = multipart(CT, &[field("a", b""), b"--XX--\r\n".to_vec()].concat());
        assert_eq!(show(&m.args), "a=");
    }

    #[test]
    fn multipart_final_boundary_without_line_end_is_accepted() {
        let m = multipart(CT, &[field("a", b"v"), b"--XX--".to_vec()].concat());
        assert_eq!(show(&m.args), "a=v");
        assert_eq!(
            (m.error, m.unmatched_boundary_value, flags(&m)),
            (None, 0, String::new())
        );
        // `v\n--XX--`: the LF before the closing boundary counts.
        let m = multipart(
            CT,
            b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\n--XX--",
        );
        assert_eq!(show(&m.args), "a=v");
        assert_eq!(flags(&m), "strict_error,lf_line,crlf_lf_lines");
    }

    #[test]
    fn multipart_missing_final_boundary_drops_every_field() {
        for tail in [&b""[..], b"--XX\r\n", b"--XX", b"--XX--  "] {
            let m = multipart(CT, &[field("a", b"v"), tail.to_vec()].concat());
            assert!(m.args.is_empty(), "{}", tail.escape_ascii());
            assert_eq!(m.error, Some("Multipart: Final boundary missing."));
        }
        // Part headers of parts closed by a boundary are still there.
        let m = multipart(CT, &[field("a", b"v"), b"--XX\r\n".to_vec()].concat());
        assert_eq!(
            show(&m.part_headers),
            "a=Content-Disposition: form-data; name=\\\"a\\\""
        );
        assert_eq!(m.unmatched_boundary_value, 2);
    }

    #[test]
    fn multipart_data_before_after_and_line_end_flags() {
        let m = multipart(
            CT,
            &[field("a", b"v"), b"--XX--\r\ntrailer".to_vec()].concat(),
        );
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a=v".into(), "strict_error,data_after".into())
        );
        let m = multipart(
            CT,
            &[
                b"preamble\r\n".to_vec(),
                field("a", b"v"),
                b"--XX--\r\n".to_vec(),
            ]
            .concat(),
        );
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a=v".into(), "strict_error,data_before".into())
        );
        let m = multipart(
            CT,
            &[b"\r\n".to_vec(), field("a", b"v"), b"--XX--\r\n".to_vec()].concat(),
        );
        assert_eq!(flags(&m), "strict_error,data_before");
        let m = multipart(
            CT,
            b"--XX\nContent-Disposition: form-data; name=\"a\"\n\nv\n--XX--\n",
        );
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a=v".into(), "strict_error,lf_line".into())
        );
        let m = multipart(
            CT,
            b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\n--XX--\r\n",
        );
        assert_eq!(flags(&m), "strict_error,lf_line,crlf_lf_lines");
        let m = multipart(
            CT,
            &[field("a", b"v"), b"--XX--\r\n--XX--\r\n".to_vec()].concat(),
        );
        assert_eq!(flags(&m), "strict_error,data_after");
    }

    #[test]
    fn multipart_empty_body_and_body_without_boundary() {
        let m = multipart(CT, b"");
        assert_eq!((m.error, flags(&m)), (None, String::new()));
        let m = multipart(CT, b"no boundaries here");
        assert_eq!(m.error, Some("Multipart: No boundaries found in payload."));
        let m = multipart(CT, b"--XX--\r\n");
        assert_eq!((m.error, m.args.len(), flags(&m)), (None, 0, String::new()));
    }

    fn one_part(cd: &[u8]) -> Multipart {
        multipart(
            CT,
            &[&b"--XX\r\n"[..], cd, b"\r\n\r\nv\r\n--XX--\r\n"].concat(),
        )
    }

    #[test]
    fn multipart_content_disposition_accepted_forms() {
        for cd in [
            &b"Content-Disposition: form-data; name=a"[..],
            b"content-disposition: form-data; name=\"a\"",
            b"Content-Disposition: form-data; name = \"a\"",
            b"Content-Disposition:form-data; name=\"a\"",
            b"Content-Disposition:   form-data; name=\"a\"",
            b"Content-Disposition: form-data; name=\"a\";",
            b"Content-Disposition: form-data;name=\"a\";filename=\"\"",
        ] {
            let m = one_part(cd);
            assert_eq!(
                (show(&m.args), m.error, flags(&m)),
                ("a=v".into(), None, String::new()),
                "{}",
                cd.escape_ascii()
            );
        }
        let m = one_part(br#"Content-Disposition: form-data; name="a\"b\\c\d""#);
        assert_eq!(show(&m.args), r#"a\"b\\c\\d=v"#);
    }

    #[test]
    fn multipart_quoting_flags() {
        let m = one_part(b"Content-Disposition: form-data; name='a'");
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a=v".into(), "strict_error,invalid_quoting".into())
        );
        let m = one_part(b"Content-Disposition: form-data; name=a'b");
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a\\'b=v".into(), "strict_error,invalid_quoting".into())
        );
        let m = one_part(b"Content-Disposition: form-data; name=\"a'b\"");
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a\\'b=v".into(), String::new())
        );
    }

    #[test]
    fn multipart_bad_content_disposition_poisons_the_rest_of_the_body() {
        for cd in [
            &b"Content-Disposition: form-data; name=\"a\"; foo=\"b\""[..],
            b"Content-Disposition: form-data",
            b"Content-Disposition: form-data;",
            b"Content-Disposition: form-data; ",
            b"Content-Disposition: attachment; name=\"a\"",
            b"Content-Disposition: FORM-DATA; name=\"a\"",
            b"Content-Disposition: form-data; name=\"a\"; name=\"b\"",
            b"Content-Disposition: form-data; name=\"a\"x",
            b"Content-Disposition: form-data; name=\"\"",
            b"Content-Disposition: form-data; name=a\"b",
            b"Content-Disposition: form-data; name=a b",
            b"Content-Disposition: form-data; name=\"a\"; FILENAME=\"f\"",
            b"Content-Disposition: form-data; Name=\"a\"",
            b"Content-Disposition: form-data; name=\"a\"; filename*=UTF-8''f%20x.txt",
            b"X-A: 1",
        ] {
            let m = one_part(cd);
            assert!(
                m.args.is_empty() && m.files.is_empty() && m.part_headers.is_empty(),
                "{}",
                cd.escape_ascii()
            );
            assert_eq!(
                m.error,
                Some("Multipart: Final boundary missing."),
                "{}",
                cd.escape_ascii()
            );
            assert!(m.invalid_part && m.strict_error, "{}", cd.escape_ascii());
        }
        let m = one_part(b"Content-Disposition: form-data; name=\"a\"x");
        assert!(m.invalid_quoting);
        let m = one_part(b"Content-Disposition: form-data; name=\"a");
        assert_eq!(
            (m.invalid_quoting, m.invalid_part, m.error),
            (true, true, Some("Multipart: Final boundary missing."))
        );
    }

    #[test]
    fn multipart_files_and_file_names() {
        let m = one_part(b"Content-Disposition: form-data; name=\"a\" ; filename=\"f\"");
        assert_eq!((show(&m.files), m.args.len()), ("a=f".into(), 0));
        assert_eq!(m.file_sizes, [1]);
        let m = one_part(
            b"Content-Disposition: form-data; name=\"a\"; filename*=UTF-8''f.txt; filename=\"g\"",
        );
        assert_eq!(show(&m.files), "a=g");
        let m = one_part(br#"Content-Disposition: form-data; name="a"; filename="a\b.txt""#);
        assert_eq!(show(&m.files), r"a=a\\b.txt");
        let mut body =
            b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n".to_vec();
        body.extend_from_slice(&[b'A'; 5000]);
        body.extend_from_slice(b"\r\nB\nC\r\n--XX--\r\n");
        let m = multipart(CT, &body);
        assert_eq!(show(&m.files), "f=x");
        assert_eq!(m.file_sizes, [5005]);
    }

    fn with_headers(h: &[u8]) -> Multipart {
        multipart(CT, &[&b"--XX\r\n"[..], h, b"\r\nv\r\n--XX--\r\n"].concat())
    }

    const CD: &[u8] = b"Content-Disposition: form-data; name=\"a\"\r\n";

    #[test]
    fn multipart_header_folding() {
        let m = with_headers(b"Content-Disposition: form-data;\r\n name=\"a\"\r\n");
        assert_eq!(
            show(&m.part_headers),
            "a=Content-Disposition: form-data; name=\\\"a\\\""
        );
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a=v".into(), "strict_error,header_folding".into())
        );
        let m = with_headers(b"Content-Disposition: form-data;\r\n\tname=\"a\"\r\n");
        assert_eq!(flags(&m), "strict_error,header_folding");
        let m = with_headers(b"Content-Disposition: form-data;\r\n\x0bname=\"a\"\r\n");
        assert_eq!(
            (show(&m.args), flags(&m)),
            (
                "a=v".into(),
                "strict_error,invalid_header_folding,header_folding".into()
            )
        );
        let m = with_headers(&[CD, b"X-A: 1\r\n  more\r\n"].concat());
        assert_eq!(
            show(&m.part_headers),
            "a=Content-Disposition: form-data; name=\\\"a\\\"|a=X-A: 1 more"
        );
        let m = with_headers(&[&b" folded: x\r\n"[..], CD].concat());
        assert_eq!(show(&m.args), "a=v");
        assert_eq!(
            m.error,
            Some("Multipart: Invalid part header (folding error).")
        );
        assert_eq!(flags(&m), "strict_error,header_folding");
    }

    #[test]
    fn multipart_bad_part_header_lines_are_remembered_and_skipped() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"X-A 1\r\n",
                "Multipart: Invalid part header (colon missing): ",
            ),
            (
                b": 1\r\n",
                "Multipart: Invalid part header (header name missing).",
            ),
            (
                b"X\x01A: 1\r\n",
                "Multipart: Invalid part header (contains invalid character).",
            ),
            (b"X-A: a\x00b\r\n", "Multipart: Nul byte in part headers."),
        ];
        for (h, e) in cases {
            let m = with_headers(&[CD, *h].concat());
            assert_eq!(show(&m.args), "a=v");
            assert_eq!(m.error, Some(*e));
            assert_eq!(flags(&m), "", "{}", h.escape_ascii());
            assert_eq!(
                show(&m.part_headers),
                "a=Content-Disposition: form-data; name=\\\"a\\\""
            );
        }
    }

    #[test]
    fn multipart_part_header_lines_stored_raw_duplicates_dropped() {
        let m = with_headers(&[CD, b"X-A: 1\r\nx-a: 2\r\n"].concat());
        assert_eq!(
            show(&m.part_headers),
            "a=Content-Disposition: form-data; name=\\\"a\\\"|a=X-A: 1"
        );
        assert_eq!(m.error, None);
        let m = with_headers(&[CD, CD].concat());
        assert_eq!((show(&m.args), m.error), ("a=v".into(), None));
        let m = with_headers(&[CD, b"X-A:\t  v \r\n"].concat());
        assert_eq!(
            show(&m.part_headers),
            "a=Content-Disposition: form-data; name=\\\"a\\\"|a=X-A:\\t  v "
        );
        let m = with_headers(&[CD, b"X-A:\r\n"].concat());
        assert_eq!(
            show(&m.part_headers),
            "a=Content-Disposition: form-data; name=\\\"a\\\"|a=X-A:"
        );
        let m = multipart(
            CT,
            b"--XX\r\nContent-Disposition: form-data; name=\"a\"\nX-A: 1\r\n\r\nv\r\n--XX--\r\n",
        );
        assert_eq!(flags(&m), "strict_error,lf_line,crlf_lf_lines");
    }

    #[test]
    fn multipart_boundary_lookalikes_in_data() {
        let m = multipart(
            CT,
            &[field("a", b"x\r\nab--XXcd"), b"--XX--\r\n".to_vec()].concat(),
        );
        assert_eq!(
            (show(&m.args), m.unmatched_boundary_value),
            ("a=xab--XXcd".into(), 2)
        );
        let m = multipart(
            CT,
            &[field("a", b"x\r\n--X"), b"--XX--\r\n".to_vec()].concat(),
        );
        assert_eq!(show(&m.args), "a=x--X");
        // A boundary that is not followed by a line end stops the parse.
        for bad in [
            &b"x\r\n--XXY"[..],
            b"x\r\n--XX \r\n",
            b"x\r\n-- XX",
            b"x\r\n--XX",
        ] {
            let m = multipart(CT, &[field("a", bad), b"--XX--\r\n".to_vec()].concat());
            assert!(m.args.is_empty(), "{}", bad.escape_ascii());
            assert_eq!(m.error, Some("Multipart: Final boundary missing."));
            assert!(m.strict_error);
        }
        // Our boundary right where part data should start.
        let m = multipart(
            CT,
            b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--XX--\r\n",
        );
        assert_eq!(
            (m.args.len(), m.invalid_part, m.error),
            (0, true, Some("Multipart: Final boundary missing."))
        );
    }

    #[test]
    fn multipart_lines_longer_than_the_4096_byte_buffer() {
        let value = |a: usize, tail: &[u8]| {
            let mut v = vec![b'A'; a];
            v.extend_from_slice(tail);
            let m = multipart(CT, &[field("a", &v), b"--XX--\r\n".to_vec()].concat());
            assert_eq!(m.error, None);
            (m.args.first().map_or(0, |p| p.value.len()), m.lf_line)
        };
        assert_eq!(value(5000, b"\r\nB"), (5001, false));
        assert_eq!(value(4095, b"\r\nB"), (4096, false));
        assert_eq!(value(4094, b"\r\nB"), (4095, false));
        assert_eq!(value(4096, b"\r\nB"), (4097, false));
        assert_eq!(value(4095, b""), (4095, false));
        assert_eq!(value(4096, b""), (4096, false));
        assert_eq!(value(8190, b""), (8190, false));
        // 4095 bytes then a bare LF: the line before the boundary ends with LF alone.
        let mut v = vec![b'A'; 4095];
        v.extend_from_slice(b"\n--XX--\r\n");
        let m = multipart(
            CT,
            &[b"--XX\r\n".to_vec(), CD.to_vec(), b"\r\n".to_vec(), v].concat(),
        );
        assert_eq!(
            (m.args.first().map(|p| p.value.len()), flags(&m)),
            (Some(4095), "strict_error,lf_line,crlf_lf_lines".into())
        );
    }

    #[test]
    fn multipart_part_header_line_of_4096_bytes_is_a_hard_error() {
        let long = |n: usize| {
            let mut h = CD.to_vec();
            h.extend_from_slice(b"X-Long: ");
            h.extend_from_slice(&vec![b'A'; n]);
            h.extend_from_slice(b"\r\n");
            with_headers(&h)
        };
        let m = long(5000);
        assert_eq!(
            (m.args.len(), m.error, m.strict_error),
            (0, Some("Multipart: Final boundary missing."), true)
        );
        let m = long(4085);
        assert_eq!((show(&m.args), m.error), ("a=v".into(), None));
        let m = long(4086);
        assert_eq!((m.args.len(), m.strict_error), (0, true));
    }

    #[test]
    fn multipart_repeated_field_names_all_kept() {
        let m = multipart(
            CT,
            &[field("a", b"v"), field("a", b"w"), b"--XX--\r\n".to_vec()].concat(),
        );
        assert_eq!(show(&m.args), "a=v|a=w");
    }

    fn ct_case(ct: &[u8], b: &str) -> Multipart {
        let body =
            format!("--{b}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--{b}--\r\n");
        multipart(ct, body.as_bytes())
    }

    #[test]
    fn multipart_content_type_boundary_parameter() {
        let m = ct_case(b"multipart/form-data; boundary=\"XX\"", "XX");
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a=v".into(), "strict_error,boundary_quoted".into())
        );
        let m = ct_case(b"multipart/form-data boundary=XX", "XX");
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a=v".into(), "strict_error,missing_semicolon".into())
        );
        let m = ct_case(b"multipart/form-data;boundary=XX", "XX");
        assert_eq!((show(&m.args), flags(&m)), ("a=v".into(), String::new()));
        let m = ct_case(b"multipart/form-data; boundary\t=XX", "XX");
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a=v".into(), "strict_error,boundary_whitespace".into())
        );
        let m = ct_case(b"multipart/form-data; boundary= XX", " XX");
        assert_eq!(
            (show(&m.args), flags(&m)),
            ("a=v".into(), "strict_error,boundary_whitespace".into())
        );
        let m = ct_case(b"multipart/form-data; boundary = XX", "XX");
        assert_eq!(m.error, Some("Multipart: No boundaries found in payload."));
        assert_eq!(
            flags(&m),
            "strict_error,unmatched_boundary,data_before,boundary_whitespace"
        );
        for (ct, b) in [
            (
                &b"multipart/form-data; boundary=XX; charset=utf-8"[..],
                "XX",
            ),
            (b"multipart/form-data; boundary=XX;", "XX"),
            (b"MULTIPART/FORM-DATA; boundary=XX", "XX"),
            (b"multipart/form-data;\tboundary=XX", "XX"),
            (b"multipart/form-data; boundary=a b", "a b"),
            (b"multipart/form-data; boundary=x=y", "x=y"),
            (b"multipart/form-data; boundary=xboundaryx", "xboundaryx"),
            (
                b"multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
                "----WebKitFormBoundary7MA4YWxkTrZu0gW",
            ),
        ] {
            let m = ct_case(ct, b);
            assert_eq!(
                (show(&m.args), m.error, flags(&m)),
                ("a=v".into(), None, String::new()),
                "{}",
                ct.escape_ascii()
            );
        }
    }

    #[test]
    fn multipart_content_type_errors() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (
                b"multipart/form-data; charset=utf-8; boundary=XX",
                Some("Multipart: Invalid boundary in C-T (malformed)."),
            ),
            (
                b"multipart/form-data;; boundary=XX",
                Some("Multipart: Invalid boundary in C-T (malformed)."),
            ),
            (
                b"multipart/form-dataX; boundary=XX",
                Some("Multipart: Invalid boundary in C-T (malformed)."),
            ),
            (
                b"multipart/form-data; boundary=XX; boundary=YY",
                Some("Multipart: Multiple boundary parameters in C-T."),
            ),
            (
                b"multipart/form-data; BOUNDARY=XX",
                Some("Multipart: Invalid boundary in C-T (case sensitivity)."),
            ),
            (
                b"multipart/form-data",
                Some("Multipart: Boundary not found in C-T."),
            ),
            (
                b"multipart/form-data; boundary=\"XX",
                Some("Multipart: Invalid boundary in C-T (quote)."),
            ),
            (
                b"multipart/form-data; boundary=XX\"",
                Some("Multipart: Invalid boundary in C-T (quote)."),
            ),
            (
                b"multipart/form-data; boundary=\"XX\"; charset=utf-8",
                Some("Multipart: Invalid boundary in C-T (quote)."),
            ),
            (
                b"multipart/form-data; boundary=X{X",
                Some("Multipart: Invalid boundary in C-T (characters)."),
            ),
            (
                b"multipart/form-data; boundary=XX ",
                Some("Multipart: Invalid boundary in C-T (characters)."),
            ),
            (
                b"multipart/form-data; boundary=;",
                Some("Multipart: Invalid boundary in C-T (empty)."),
            ),
            (
                b"multipart/form-data; boundaryx=XX",
                Some("Multipart: Invalid boundary in C-T (parameter name)."),
            ),
            (
                b"text/plain; boundary=XX",
                Some("Multipart: Invalid MIME type."),
            ),
            (b"", Some("Multipart: Content-Type header not available.")),
        ];
        for (ct, e) in cases {
            let m = ct_case(ct, "XX");
            assert_eq!(
                (m.args.len(), m.error, m.strict_error),
                (0, *e, true),
                "{}",
                ct.escape_ascii()
            );
        }
        let mut long = b"multipart/form-data; boundary=".to_vec();
        long.extend_from_slice(&[b'X'; 1010]);
        assert_eq!(
            ct_case(&long, "XX").error,
            Some("Multipart: Invalid boundary in C-T (length).")
        );
        // An empty boundary: nothing parsed, no error, no flag.
        for ct in [
            &b"multipart/form-data; boundary="[..],
            b"multipart/form-data; boundary=\"\"",
        ] {
            let m = ct_case(ct, "XX");
            assert_eq!((m.args.len(), m.error, flags(&m)), (0, None, String::new()));
        }
        // A quoted boundary written with its quotes in the body.
        let m = ct_case(b"multipart/form-data; boundary=\"XX\"", "\"XX\"");
        assert_eq!(
            (m.args.len(), m.error),
            (0, Some("Multipart: No boundaries found in payload."))
        );
    }

    // --- XML ---

    fn xt(b: &[u8]) -> String {
        match xml_text(b) {
            Ok(t) => t.escape_ascii().to_string(),
            Err(e) => panic!("{}: {e}", b.escape_ascii()),
        }
    }

    #[test]
    fn xml_text_is_the_root_elements_text_in_document_order() {
        assert_eq!(xt(b"<r>hello</r>"), "hello");
        assert_eq!(
            xt(b"<r a=\"attr\">t1<c>t2</c> t3 <d x=\"y\"/><![CDATA[cd<>]]><!-- comment --><?pi data?>t4</r>"),
            "t1t2 t3 cd<>t4"
        );
        assert_eq!(
            xt(b"<?xml version=\"1.0\"?>\n<r>\n  <a>1</a>\n  <b>2</b>\n</r>\n"),
            r"\n  1\n  2\n"
        );
        assert_eq!(xt(b"<a><b>1</b><c><d>2</d></c></a>"), "12");
        assert_eq!(xt(b"<r a=\"1\"><a>x</a><a>y</a></r>"), "xy");
        assert_eq!(xt(b"<r><a/><a/>text</r>"), "text");
        assert_eq!(xt(b"<r a=\"x\ty\nz\r\nw\">v</r>"), "v");
        assert_eq!(xt(b"<!-- c --><r>x</r><!-- d -->"), "x");
        assert_eq!(xt(b"<r/>  \n"), "");
        assert_eq!(xt(b"<r/>\n<!--c-->\n<?p?>\n"), "");
        assert_eq!(xt(b"  <r>lead ws</r>"), "lead ws");
        assert_eq!(xt(b"<r\n a\n=\n\"1\"\n/>"), "");
        assert_eq!(xt(b"<r >x</r >"), "x");
        assert_eq!(xt(b"<x:r>a</x:r>"), "a");
        assert_eq!(xt(b"<r xmlns=\"urn:x\"><a>x</a></r>"), "x");
        assert_eq!(xt(b"<?pi?><r>x</r>"), "x");
        assert_eq!(xt(b"<r><?xml-stylesheet x?></r>"), "");
    }

    #[test]
    fn xml_references_cdata_and_line_ends() {
        assert_eq!(
            xt(b"<r>&lt;&amp;&gt;&quot;&apos;&#65;&#x42;</r>"),
            r#"<&>\"\'AB"#
        );
        assert_eq!(xt(b"<r>&#x10FFFF;</r>"), r"\xf4\x8f\xbf\xbf");
        assert_eq!(xt(b"<r a=\"&amp;&#60;\">x</r>"), "x");
        assert_eq!(xt(b"<r>a\r\nb\rc</r>"), r"a\nb\nc");
        assert_eq!(xt(b"<r>\r</r>"), r"\n");
        assert_eq!(xt(b"<r>a\r<b/>\r\nc\r</r>"), r"a\n\nc\n");
        assert_eq!(xt(b"<r>\r\r\n</r>"), r"\n\n");
        assert_eq!(xt(b"<r>&#xD;\r</r>"), r"\r\n");
        // libxml2 2.9 leaves line ends in CDATA sections alone.
        assert_eq!(xt(b"<r><![CDATA[a\r\r\nb\n\rc]]></r>"), r"a\r\r\nb\n\rc");
        assert_eq!(xt(b"<r><![CDATA[x]]]></r>"), "x]");
        assert_eq!(xt(b"<r><![CDATA[a]]>b<![CDATA[]]></r>"), "ab");
        assert_eq!(xt(b"<r>\t\n</r>"), r"\t\n");
        assert_eq!(xt(b"<r>\xc2\x85\xe2\x80\xa8</r>"), r"\xc2\x85\xe2\x80\xa8");
    }

    #[test]
    fn xml_dtd_entities_are_never_expanded() {
        // Deliberate difference: libxml2 gives `aEXPANDEDb` here.
        assert_eq!(
            xt(b"<!DOCTYPE r [<!ENTITY e \"EXPANDED\">]><r>a&e;b</r>"),
            "ab"
        );
        assert_eq!(
            xt(b"<!DOCTYPE r [<!ENTITY e SYSTEM \"file:///etc/hostname\">]><r>a&e;b</r>"),
            "ab"
        );
        assert_eq!(xt(b"<!DOCTYPE r SYSTEM \"x.dtd\"><r>&u;</r>"), "");
        assert_eq!(xt(b"<!DOCTYPE r><r>x</r>"), "x");
        assert_eq!(xt(b"<!DOCTYPEr><r>x</r>"), "x");
        assert_eq!(xt(b"<!DOCTYPE:r><r>x</r>"), "x");
        assert_eq!(xt(b"<!DOCTYPE r PUBLIC \"p\" \"s\"><r>x</r>"), "x");
        assert_eq!(
            xt(b"<!DOCTYPE r [<!ELEMENT r (#PCDATA)><!ATTLIST r a CDATA \"d>x\"><!NOTATION n SYSTEM \"u\">]><r>x</r>"),
            "x"
        );
        assert_eq!(
            xt(b"<!DOCTYPE r [<!ENTITY e \"x\">]><r a=\"&e;\">y</r>"),
            "y"
        );
        assert_eq!(xt(b"<r>&#13;</r>"), r"\r");
        for b in [
            &b"<!DOCTYPE r [<!ENTITY e SYSTEM \"f\">]><r a=\"&e;\">y</r>"[..],
            b"<r a=\"&u;\">y</r>",
            b"<!DOCTYPE r [<!ENTITY e \"a%b\">]><r>x</r>",
            b"<!DOCTYPE r [<!ENTITY e \"a&b\">]><r>x</r>",
            b"<r><!---></r>",
            b"<r>x</r><!DOCTYPE r>",
            b"<!DOCTYPE r><!DOCTYPE r><r/>",
        ] {
            assert!(xml_text(b).is_err(), "{}", b.escape_ascii());
        }
        let laughs = b"<!DOCTYPE r [<!ENTITY a \"xxxxxxxxxx\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><r>&c;</r>";
        assert_eq!(xt(laughs), "");
        assert!(xml_text(b"<r>&undefined;</r>").is_err());
        assert!(xml_text(b"<!DOCTYPE r [ ]><r>&u;</r>").is_err());
        assert!(xml_text(b"<!DOCTYPE r [<!ENTITY % p \"x\">]><r>&u;</r>").is_err());
    }

    #[test]
    fn xml_malformed_documents_are_errors() {
        for b in [
            &b"<r>unclosed"[..],
            b"<r></r><x/>",
            b"not xml",
            b"",
            b"<r a=\"1\" a=\"2\">x</r>",
            b"<r>a]]>b</r>",
            b"<r><!-- a -- b --></r>",
            b"<r>\x01</r>",
            b"<r></s>",
            b"<r><a></r></a>",
            b"<r a=1>x</r>",
            b"<r a=\"<\">x</r>",
            b"<r>a & b</r>",
            b"<r>&#0;</r>",
            b"<r>&#xD800;</r>",
            b"<r>&#65</r>",
            b"<r>&amp</r>",
            b" <?xml version=\"1.0\"?><r/>",
            b"<r><?xml version=\"1.0\"?></r>",
            b"<r>x</r>\x00",
            b"<1r>x</1r>",
            b"<?xml version=\"2.0\"?><r>x</r>",
            b"<?xml encoding=\"UTF-8\"?><r>x</r>",
            b"<r>x<![CDATA[unterminated</r>",
            b"<r>x</r><r>y</r>",
            b"<r/>trailing",
            b"<r a=\"1\"b=\"2\">x</r>",
            b"<r>\xff</r>",
            b"<r>\xc0\x80</r>",
            b"<r>\xed\xa0\x80</r>",
            b"<r>\xef\xbf\xbe</r>",
            b"<r>a\x00b</r>",
        ] {
            assert!(xml_text(b).is_err(), "{}", b.escape_ascii());
        }
    }

    #[test]
    fn xml_error_keeps_the_text_read_so_far() {
        assert_eq!(xml_parse(b"<r>unclosed").text, b"unclosed");
        assert_eq!(xml_parse(b"<r>a\x00b</r>").text, b"a");
        assert_eq!(xml_parse(b"<r>x</r><r>y</r>").text, b"x");
        assert_eq!(xml_parse(b"<r>a & b</r>").text, b"a ");
        assert_eq!(xml_parse(b"<r>a]]>b</r>").text, b"");
    }

    #[test]
    fn xml_declaration_versions_and_standalone() {
        assert_eq!(xt(b"<?xml version=\"1.0\"?><r/>"), "");
        assert_eq!(xt(b"<?xml version=\"1.1\"?><r>x</r>"), "x");
        assert_eq!(xt(b"<?xml version=\"1.\"?><r/>"), "");
        assert_eq!(xt(b"<?xml version = '1.0' encoding=\"UTF-8\" ?><r/>"), "");
        for b in [
            &b"<?xml version=\"1.0x\"?><r/>"[..],
            b"<?xml version=\"1.0\"encoding=\"UTF-8\"?><r/>",
            b"<?xml version=\"1.0\" standalone=\"maybe\"?><r/>",
            b"<?xml version=\"1.0\" foo=\"x\"?><r/>",
            b"<?XML version=\"1.0\"?><r/>",
            b"<r><?XmL x?></r>",
        ] {
            assert!(xml_text(b).is_err(), "{}", b.escape_ascii());
        }
        assert_eq!(
            xt(b"<?xml version=\"1.0\" standalone=\"yes\"?><r>x</r>"),
            "x"
        );
        assert!(xml_text(
            b"<?xml version=\"1.0\" standalone=\"yes\"?><!DOCTYPE r SYSTEM \"x.dtd\"><r>&u;</r>"
        )
        .is_err());
    }

    #[test]
    fn xml_depth_257_parses_258_is_refused() {
        let nest = |n: usize, inner: &[u8]| {
            let mut b = b"<a>".repeat(n);
            b.extend_from_slice(inner);
            b.extend(b"</a>".repeat(n));
            b
        };
        assert_eq!(xml_text(&nest(257, b"x")), Ok(b"x".to_vec()));
        assert!(xml_text(&nest(258, b"x")).is_err());
        assert!(xml_text(&nest(257, b"<b/>")).is_err());
        assert!(xml_text(&nest(5000, b"x")).is_err());
    }

    #[test]
    fn xml_encodings() {
        assert_eq!(xt(b"\xef\xbb\xbf<r>bom</r>"), "bom");
        assert_eq!(xt(b"\xff\xfe<\x00r\x00>\x00x\x00<\x00/\x00r\x00>\x00"), "x");
        assert_eq!(
            xt(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r>\xe9</r>"),
            r"\xc3\xa9"
        );
        assert_eq!(
            xt(b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><r>\x80</r>"),
            r"\xe2\x82\xac"
        );
        assert_eq!(
            xt(b"<r>\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80</r>"),
            r"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
        );
        assert!(xml_text(b"<?xml version=\"1.0\" encoding=\"US-ASCII\"?><r>\xe9</r>").is_err());
        assert!(xml_text(b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><r>x</r>").is_err());
    }

    #[test]
    fn xml_long_inputs_stay_linear() {
        let mut b = b"<r>".to_vec();
        b.extend(b"&lt;".repeat(100_000));
        b.extend_from_slice(b"</r>");
        assert_eq!(xml_text(&b).map(|t| t.len()), Ok(100_000));
        let mut b = b"<r>".to_vec();
        b.extend(b"<a x=\"1\" y='2'/>".repeat(20_000));
        b.extend_from_slice(b"</r>");
        assert_eq!(xml_text(&b), Ok(Vec::new()));
    }
}
