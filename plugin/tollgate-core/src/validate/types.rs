//! Typed values: what a path parameter, query parameter or header may hold. Every check is a
//! single pass over the value (patterns use `regex-lite`, whose matching is linear in the input,
//! compiled once with a size limit).

/// A compiled pattern that must match the whole value.
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    re: regex_lite::Regex,
}

/// Largest compiled pattern, in bytes of regex-lite's program.
const PATTERN_SIZE_LIMIT: usize = 64 * 1024;
/// Deepest nesting a pattern may have.
const PATTERN_NEST_LIMIT: u32 = 32;

impl Pattern {
    /// Compiles `source`, anchored at both ends.
    pub fn new(source: &str) -> Result<Pattern, String> {
        if source.len() > 1024 {
            return Err("a pattern may have at most 1024 characters".into());
        }
        let re = regex_lite::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(PATTERN_SIZE_LIMIT)
            .nest_limit(PATTERN_NEST_LIMIT)
            .build()
            .map_err(|e| format!("not a valid pattern: {e}"))?;
        Ok(Pattern {
            source: source.to_owned(),
            re,
        })
    }

    /// Whether the whole value matches.
    pub fn matches(&self, value: &str) -> bool {
        self.re.is_match(value)
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The type of a parameter or header value.
#[derive(Clone, Debug)]
pub enum ValueType {
    /// A decimal integer within a range.
    Integer {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// One of a fixed set of strings.
    Enum(Vec<String>),
    /// A string of a length range (in characters), optionally matching a pattern.
    Text {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
        /// Pattern the whole value must match.
        pattern: Option<Pattern>,
    },
    /// A UUID in its 8-4-4-4-12 hexadecimal form.
    Uuid,
    /// An ISO 8601 calendar date, `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 date and time, `2026-11-25T10:00:00Z` or with an offset.
    DateTime,
    /// A vehicle identification number (ISO 3779); the check digit (position 9) is verified
    /// only for North American VINs (49 CFR 565), which use it.
    Vin {
        /// Verify the check digit.
        check_digit: bool,
    },
}

impl ValueType {
    /// Why `v` is not of this type (words for a legitimate client), or `None` if it is.
    pub fn check(&self, v: &str) -> Option<String> {
        match self {
            ValueType::Integer { min, max } => match parse_int(v) {
                Some(n) if n >= *min && n <= *max => None,
                _ => Some(format!("must be a whole number from {min} to {max}")),
            },
            ValueType::Enum(values) => (!values.iter().any(|x| x == v))
                .then(|| format!("must be one of: {}", values.join(", "))),
            ValueType::Text { min, max, pattern } => {
                let n = v.chars().count();
                if n < *min || n > *max {
                    Some(format!("must have {min} to {max} characters"))
                } else if v.chars().any(char::is_control) {
                    Some("must not contain control characters".into())
                } else if pattern.as_ref().is_some_and(|p| !p.matches(v)) {
                    Some("does not have the expected format".into())
                } else {
                    None
                }
            }
            ValueType::Uuid => (!is_uuid(v)).then(|| "must be a UUID".into()),
            ValueType::Date => (!is_date(v)).then(|| "must be a date as YYYY-MM-DD".into()),
            ValueType::DateTime => (!is_date_time(v))
                .then(|| "must be a date and time as in RFC 3339 (2026-11-25T10:00:00Z)".into()),
            ValueType::Vin { check_digit } => vin_problem(v, *check_digit),
        }
    }

    /// The type's name, as policies write it.
    pub fn name(&self) -> &'static str {
        match self {
            ValueType::Integer { .. } => "integer",
            ValueType::Enum(_) => "enum",
            ValueType::Text { .. } => "string",
            ValueType::Uuid => "uuid",
            ValueType::Date => "date",
            ValueType::DateTime => "date-time",
            ValueType::Vin { .. } => "vin",
        }
    }
}

fn parse_int(v: &str) -> Option<i64> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn is_uuid(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn digits(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn is_date(v: &str) -> bool {
    let mut parts = v.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(y), digits(m), digits(d)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

fn is_time(t: &str) -> bool {
    let (hms, frac) = t.split_once('.').map_or((t, None), |(a, b)| (a, Some(b)));
    if frac.is_some_and(|f| f.is_empty() || f.len() > 9 || digits(f).is_none()) {
        return false;
    }
    let mut parts = hms.split(':');
    let (Some(h), Some(m), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    h.len() == 2
        && m.len() == 2
        && s.len() == 2
        && digits(h).is_some_and(|h| h < 24)
        && digits(m).is_some_and(|m| m < 60)
        && digits(s).is_some_and(|s| s <= 60)
}

fn is_date_time(v: &str) -> bool {
    let Some((date, rest)) = v.split_once(['T', 't']) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let (time, ok_offset) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, true)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, off) = rest.split_at(i);
        let off = off.get(1..).unwrap_or("");
        let ok = off.len() == 5
            && off.as_bytes().get(2) == Some(&b':')
            && off.get(..2).and_then(digits).is_some_and(|h| h < 24)
            && off.get(3..).and_then(digits).is_some_and(|m| m < 60);
        (t, ok)
    } else {
        return false;
    };
    ok_offset && is_time(time)
}

/// A VIN's characters: digits and capital letters except I, O and Q.
fn vin_value(c: u8) -> Option<u32> {
    Some(match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A' | b'J' => 1,
        b'B' | b'K' | b'S' => 2,
        b'C' | b'L' | b'T' => 3,
        b'D' | b'M' | b'U' => 4,
        b'E' | b'N' | b'V' => 5,
        b'F' | b'W' => 6,
        b'G' | b'P' | b'X' => 7,
        b'H' | b'Y' => 8,
        b'R' | b'Z' => 9,
        _ => return None,
    })
}

/// Weights of the 17 positions for the North American check digit (position 9 weighs 0).
const VIN_WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];

fn vin_problem(v: &str, check_digit: bool) -> Option<String> {
    let b = v.as_bytes();
    if b.len() != 17 {
        return Some("must be a VIN of 17 characters".into());
    }
    let mut sum = 0;
    for (c, w) in b.iter().zip(VIN_WEIGHTS) {
        match vin_value(*c) {
            Some(n) => sum += n * w,
            None => {
                return Some(
                    "must be a VIN: digits and capital letters other than I, O and Q".into(),
                )
            }
        }
    }
    if check_digit {
        let expected = match sum % 11 {
            10 => b'X',
            n => b'0' + n as u8,
        };
        if b.get(8) != Some(&expected) {
            return Some("is not a valid VIN: its check digit (position 9) does not match".into());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vins() {
        let na = ValueType::Vin { check_digit: true };
        let any = ValueType::Vin { check_digit: false };
        // A North American VIN with a valid check digit, and the classic textbook example.
        assert_eq!(na.check("1M8GDM9AXKP042788"), None);
        assert_eq!(na.check("11111111111111111"), None);
        // One character changed: the check digit no longer matches.
        assert!(na.check("1M8GDM9AXKP042789").is_some());
        // A European VIN (no check digit in use) is fine without the check...
        assert_eq!(any.check("WVWZZZ1JZXW000001"), None);
        // ...but I, O, Q and wrong lengths never are.
        assert!(any.check("WVWZZZ1JZXW00000I").is_some());
        assert!(any.check("WVWZZZ1JZXW0000O1").is_some());
        assert!(any.check("WVWZZZ1JZXW00001").is_some());
        assert!(any.check("wvwzzz1jzxw000001").is_some());
        assert!(any.check("WVWZZZ1JZXW000001'--").is_some());
    }

    #[test]
    fn dates_times_uuids_integers() {
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("2024-13-01"));
        assert!(!is_date("2024-1-01"));
        assert!(is_date_time("2026-11-25T10:00:00Z"));
        assert!(is_date_time("2026-11-25T10:00:00.123+01:00"));
        assert!(!is_date_time("2026-11-25 10:00:00Z"));
        assert!(!is_date_time("2026-11-25T25:00:00Z"));
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid("123e4567e89b12d3a456426614174000"));
        let int = ValueType::Integer { min: 1, max: 100 };
        assert_eq!(int.check("42"), None);
        assert!(int.check("0").is_some());
        assert!(int.check("4e2").is_some());
        assert!(int.check("99999999999999999999999").is_some());
        assert!(int.check("").is_some());
    }

    #[test]
    fn patterns_match_the_whole_value_in_linear_time() {
        let p = Pattern::new("D-[0-9]{4}").unwrap();
        assert!(p.matches("D-1001"));
        assert!(!p.matches("xD-1001"));
        assert!(!p.matches("D-10012"));
        // The classic catastrophic pattern for a backtracking engine is harmless here.
        let evil = Pattern::new("(a+)+b").unwrap();
        let input = "a".repeat(50_000);
        let t = std::time::Instant::now();
        assert!(!evil.matches(&input));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(Pattern::new("(").is_err());
        assert!(Pattern::new(&"(".repeat(40).to_string()).is_err());
        assert!(
            Pattern::new("a{1000}{1000}").is_err(),
            "too large a program"
        );
    }
}
