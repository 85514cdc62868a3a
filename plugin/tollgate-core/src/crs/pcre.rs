//! PCRE patterns (what SecLang's `@rx` is written in) into the syntax of the `regex` crate,
//! which matches in linear time.
//!
//! Most CRS patterns mean the same in both. The translation rewrites what differs in spelling
//! only: possessive quantifiers and atomic groups (same matches for a yes/no question, the
//! backtracking they prevent never happens here), `\Z`, PCRE's `\h`, `\v` and `\R` classes,
//! octal escapes, `\Q...\E` and `\e`. What needs a backtracking engine — look-around and back
//! references — is refused with the reason, and such a rule never runs.

use std::fmt::Write;

/// Why a pattern cannot run in linear time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// Translates a PCRE pattern.
pub fn translate(p: &str) -> Result<String, Unsupported> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut class = 0usize; // nesting inside [...]
    let at = |i: usize| chars.get(i).copied();
    while let Some(c) = at(i) {
        match c {
            '\\' => {
                let Some(n) = at(i + 1) else {
                    return Err(Unsupported("pattern ends with a lone backslash".into()));
                };
                i += 2;
                match n {
                    'Q' => {
                        // Literal text up to \E.
                        while let Some(x) = at(i) {
                            if x == '\\' && at(i + 1) == Some('E') {
                                i += 2;
                                break;
                            }
                            push_literal(&mut out, x);
                            i += 1;
                        }
                    }
                    'E' => {}
                    'Z' if class == 0 => out.push_str("(?:\\n?\\z)"),
                    'h' => out.push_str(if class > 0 {
                        "\\t\\x20\\xA0"
                    } else {
                        "[\\t\\x20\\xA0]"
                    }),
                    'H' if class == 0 => out.push_str("[^\\t\\x20\\xA0]"),
                    'v' => out.push_str(if class > 0 {
                        "\\n\\x0B\\x0C\\r\\x85"
                    } else {
                        "[\\n\\x0B\\x0C\\r\\x85]"
                    }),
                    'V' if class == 0 => out.push_str("[^\\n\\x0B\\x0C\\r\\x85]"),
                    'R' if class == 0 => out.push_str("(?:\\r\\n|\\n|\\r)"),
                    'e' => out.push_str("\\x1B"),
                    'a' => out.push_str("\\x07"),
                    'c' => {
                        let Some(x) = at(i) else {
                            return Err(Unsupported("\\c at the end".into()));
                        };
                        i += 1;
                        let _ = write!(out, "\\x{:02X}", (x.to_ascii_uppercase() as u32) ^ 0x40);
                    }
                    '0'..='7' => {
                        // Octal (\0, \012) or, outside a class and not starting with 0, a back
                        // reference.
                        if n != '0' && class == 0 {
                            return Err(Unsupported(format!("back reference \\{n}")));
                        }
                        let mut v = n.to_digit(8).unwrap_or(0);
                        let mut k = 0;
                        while k < 2 {
                            match at(i).and_then(|d| d.to_digit(8)) {
                                Some(d) => {
                                    v = v * 8 + d;
                                    i += 1;
                                    k += 1;
                                }
                                None => break,
                            }
                        }
                        let _ = write!(out, "\\x{{{v:X}}}");
                    }
                    '8' | '9' if class == 0 => {
                        return Err(Unsupported(format!("back reference \\{n}")));
                    }
                    'g' | 'k' if class == 0 => {
                        return Err(Unsupported(format!("back reference \\{n}")));
                    }
                    'G' | 'K' | 'X' | 'C' => {
                        return Err(Unsupported(format!("PCRE-only escape \\{n}")));
                    }
                    n if n.is_ascii_alphanumeric() => {
                        out.push('\\');
                        out.push(n);
                    }
                    n => push_literal(&mut out, n),
                }
                continue;
            }
            '[' => {
                if class > 0 && at(i + 1) == Some(':') {
                    // A POSIX class [:alpha:] inside a bracket: copy through `:]`.
                    let mut j = i;
                    while let Some(x) = at(j) {
                        out.push(x);
                        j += 1;
                        if x == ']' {
                            break;
                        }
                    }
                    i = j;
                    continue;
                }
                if class > 0 {
                    // A literal `[` inside a class: PCRE allows it bare, regex wants it escaped.
                    out.push_str("\\[");
                    i += 1;
                    continue;
                }
                class = 1;
                out.push('[');
                i += 1;
                if at(i) == Some('^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` first in a class is a literal.
                if at(i) == Some(']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            ']' if class > 0 => {
                class = 0;
                out.push(']');
                i += 1;
                continue;
            }
            '&' | '~' | '-' if class > 0 && at(i + 1) == Some(c) => {
                // `&&`, `~~`, `--` are set operations in regex; PCRE reads them as literals.
                push_literal(&mut out, c);
                i += 1;
                continue;
            }
            '(' if class == 0 && at(i + 1) == Some('?') => {
                match (at(i + 2), at(i + 3)) {
                    (Some('=' | '!'), _) | (Some('<'), Some('=' | '!')) => {
                        return Err(Unsupported("look-around".into()));
                    }
                    (Some('>'), _) => {
                        out.push_str("(?:");
                        i += 3;
                        continue;
                    }
                    (Some('|'), _) => {
                        // Branch reset: the same matches as a plain group.
                        out.push_str("(?:");
                        i += 3;
                        continue;
                    }
                    (Some('#'), _) => {
                        // A comment group.
                        let mut j = i + 3;
                        while at(j).is_some_and(|x| x != ')') {
                            j += 1;
                        }
                        i = j + 1;
                        continue;
                    }
                    (Some('R' | '0'..='9' | '&' | '+'), _) | (Some('P'), Some('>' | '=')) => {
                        return Err(Unsupported("recursion or subroutine call".into()));
                    }
                    (Some('('), _) => {
                        return Err(Unsupported("conditional group".into()));
                    }
                    _ => {}
                }
                out.push(c);
                i += 1;
                continue;
            }
            '*' | '+' | '?' | '}' if class == 0 => {
                out.push(c);
                i += 1;
                // Possessive quantifier: drop the `+`.
                if at(i) == Some('+') {
                    i += 1;
                }
                continue;
            }
            '{' if class == 0 => {
                // PCRE reads `{` as a literal unless it opens a valid quantifier.
                let mut j = i + 1;
                let mut digits = 0;
                while at(j).is_some_and(|x| x.is_ascii_digit()) {
                    j += 1;
                    digits += 1;
                }
                let valid = digits > 0
                    && match at(j) {
                        Some('}') => true,
                        Some(',') => {
                            j += 1;
                            while at(j).is_some_and(|x| x.is_ascii_digit()) {
                                j += 1;
                            }
                            at(j) == Some('}')
                        }
                        _ => false,
                    };
                if valid {
                    out.push('{');
                } else {
                    out.push_str("\\{");
                }
                i += 1;
                continue;
            }
            _ => {
                push_char(&mut out, c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A character of the pattern as PCRE without UTF mode reads it: a non-ASCII character is
/// the bytes of its UTF-8 encoding, one literal byte each (a quantifier after it repeats the
/// last byte, a class holds each byte, `(?i)` folds none of them).
fn push_char(out: &mut String, c: char) {
    if c.is_ascii() {
        out.push(c);
        return;
    }
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        let _ = write!(out, "\\x{b:02X}");
    }
}

/// A literal character: escaped where it is a metacharacter of the `regex` crate, bare where
/// an escape would mean something else there (`\<` and `\>` are word boundaries in `regex`,
/// plain `<` and `>` in PCRE).
fn push_literal(out: &mut String, c: char) {
    if "\\.+*?()|[]{}^$#&-~".contains(c) {
        out.push('\\');
    }
    push_char(out, c);
}

/// The most a compiled pattern may take (a CRS pattern takes far less).
pub const PROGRAM_LIMIT: usize = 4 << 20;

/// The most one pattern's lazy DFA may cache per VM: with the 120-odd patterns of CRS at
/// paranoia level 1, under 32 MiB whatever clients send (past it, the engine searches more
/// slowly, still in linear time).
pub const DFA_CACHE_LIMIT: usize = 256 << 10;

/// Builds a linear-time matcher over bytes, as libmodsecurity compiles `@rx`: no UTF mode
/// (`.` is any byte, classes are ASCII), `.` matching newlines and `^`/`$` at every line
/// (PCRE2_DOTALL | PCRE2_MULTILINE), with bounded program and cache sizes.
pub fn build(pattern: &str) -> Result<regex::bytes::Regex, Unsupported> {
    let translated = translate(pattern)?;
    // No Unicode mode (the crate is built without its tables): the translation spells
    // non-ASCII text as bytes.
    regex::bytes::RegexBuilder::new(&translated)
        .unicode(false)
        .dot_matches_new_line(true)
        .multi_line(true)
        .size_limit(PROGRAM_LIMIT)
        .dfa_size_limit(DFA_CACHE_LIMIT)
        .build()
        .map_err(|e| Unsupported(first_line(&e.to_string())))
}

fn first_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.last().copied().unwrap_or(s).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        build(p).unwrap().is_match(s.as_bytes())
    }

    #[test]
    fn rewrites_what_only_differs_in_spelling() {
        assert!(m(r"a++b", "aab"));
        assert!(m(r"(?>ab|a)c", "abc"));
        assert!(m(r"x\Z", "x\n"));
        assert!(m(r"a\hb", "a\tb"));
        assert!(m(r"\Q(a)\E+", "(a)))"));
        assert!(m(r"\012", "\n"));
        assert!(m(r"[\/]", "/"));
        assert!(m(r"a{,2}", "a{,2}"));
        assert!(m(r"[a[]", "["));
        assert!(m(r"[]a]", "]"));
        assert!(m(r"[[:digit:]]+", "42"));
        assert!(m(r"(?i)select", "SeLeCt"));
        assert!(m(r"\x5c", "\\"));
        assert!(m(r"\e", "\u{1b}"));
        // `\<` is a literal in PCRE, a word boundary in `regex`.
        assert!(m(r"[\<\>\!]", "<"));
        assert!(m(r"a\<b", "a<b"));
        assert!(m(r"[\<\>\!]", "<"));
        assert!(m(r"a\<b", "a<b"));
    }

    #[test]
    fn refuses_what_needs_backtracking() {
        assert!(translate(r"a(?=b)").is_err());
        assert!(translate(r"(?<!a)b").is_err());
        assert!(translate(r"(a)\1").is_err());
        assert!(translate(r"(?(1)a|b)").is_err());
        assert!(translate(r"(?:a)(?<name>b)").is_ok());
    }

    #[test]
    fn bytes_mode() {
        assert!(m(r"^..$", "\u{e9}"));
        assert!(!m(r"^.$", "\u{e9}"));
        assert!(build(r"\xff").unwrap().is_match(&[0xff]));
        // Non-ASCII pattern text is its UTF-8 bytes, as PCRE without UTF mode reads it: a
        // quantifier repeats the last byte, a class holds each byte, `(?i)` folds ASCII only.
        let repeat = build("^\u{e9}+$").unwrap();
        assert!(repeat.is_match(&[0xc3, 0xa9, 0xa9]));
        assert!(!repeat.is_match("\u{e9}\u{e9}".as_bytes()));
        assert!(build("[\u{e9}]").unwrap().is_match(&[0xc3]));
        assert!(!m("(?i)\u{e9}", "\u{c9}"));
        assert!(!m("(?i)k", "\u{212a}"));
        assert!(m(r"\w", "a") && !m(r"\w", "\u{e9}"));
    }
}
