//! Request validation: what a route accepts, checked before anything reaches the backend.
//!
//! Per route: sizes (path, query, header count, header bytes, body), typed path parameters,
//! query parameters (unknown ones refused if the route says so, repeated ones always), typed
//! headers, the content types it accepts, and for JSON bodies structural limits (checked as the
//! body arrives, see [`json`]) and a schema (see [`schema`]). Every check is one linear pass; no
//! regular expression engine that can backtrack ever sees client input.
//!
//! A refusal names the parameter and the rule broken, in words for a legitimate client; names
//! that came from the client (an unknown parameter or member) are shown only when they are plain
//! (letters, digits, `_-.`, at most 40), and values never are.

pub mod json;
pub mod schema;
pub mod types;

use crate::{Mode, Request, RuleId};

pub use json::{JsonLimits, JsonScan, JsonViolation};
pub use schema::Schema;
pub use types::{Pattern, ValueType};

/// Size caps of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Path, without the query, in bytes.
    pub path: usize,
    /// Query string, in bytes.
    pub query: usize,
    /// Number of headers.
    pub headers: usize,
    /// All header names and values, in bytes.
    pub header_bytes: usize,
    /// Request body, in bytes.
    pub body: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            path: 2048,
            query: 4096,
            headers: 100,
            header_bytes: 32 * 1024,
            body: 1024 * 1024,
        }
    }
}

/// A typed value that may be required.
#[derive(Clone, Debug)]
pub struct Param {
    /// Its type.
    pub ty: ValueType,
    /// Whether it must be present.
    pub required: bool,
}

/// What one route accepts.
#[derive(Clone, Debug)]
pub struct RouteValidation {
    /// The rule refusals count under.
    pub rule: RuleId,
    /// Enforce or shadow.
    pub mode: Mode,
    /// Path parameters by name.
    pub path: Vec<(String, ValueType)>,
    /// Query parameters by name.
    pub query: Vec<(String, Param)>,
    /// Refuse query parameters the route does not declare.
    pub refuse_unknown_query: bool,
    /// Headers by (lower-case) name.
    pub headers: Vec<(String, Param)>,
    /// Accepted media types of a body (lower-case, without parameters); empty: any.
    pub content_types: Vec<String>,
    /// Size caps.
    pub max: Sizes,
    /// Structural limits of a JSON body.
    pub json: JsonLimits,
    /// The body's schema, if any.
    pub schema: Option<Schema>,
}

impl RouteValidation {
    /// Whether a body on this route is read: to cap it, scan it or check it against a schema.
    pub fn reads_body(&self) -> bool {
        self.schema.is_some() || self.wants_json()
    }

    /// Whether bodies here are JSON (the route accepts only JSON media types, or has a schema).
    pub fn wants_json(&self) -> bool {
        self.schema.is_some()
            || (!self.content_types.is_empty() && self.content_types.iter().all(|t| is_json(t)))
    }
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// One thing wrong with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Where: `path`, `query`, `header` or `body`.
    pub location: &'static str,
    /// The parameter, header, or body JSON pointer.
    pub name: String,
    /// What is wrong, in words for a legitimate client.
    pub reason: String,
}

/// A refusal by validation: its status, problem type, and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 413, 414, 415 or 431.
    pub status: u16,
    /// Everything found (at most ten).
    pub problems: Vec<Invalid>,
}

/// Most problems reported for one request.
const MAX_PROBLEMS: usize = 10;

fn invalid(location: &'static str, name: &str, reason: impl Into<String>) -> Invalid {
    Invalid {
        location,
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// A client-supplied name, if plain enough to show back.
fn shown(name: &str) -> String {
    if schema::is_plain(name) {
        name.to_owned()
    } else {
        "(not shown)".to_owned()
    }
}

/// Decodes `%XX` escapes (and `+` as a space, in a query); `None` if an escape is malformed or
/// the result is not UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hi = (hex.first()? as &u8).to_owned();
                let lo = (hex.get(1)? as &u8).to_owned();
                let v = (char::from(hi).to_digit(16)? << 4) | char::from(lo).to_digit(16)?;
                out.push(v as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

impl RouteValidation {
    /// Checks everything but the body. `path_params` are the route template's raw captures.
    pub fn check_head(&self, req: &Request<'_>, path_params: &[(&str, &str)]) -> Option<Refusal> {
        let (path, query) = req.path.split_once('?').unwrap_or((req.path, ""));
        // Sizes first: a request over a cap is refused without looking further.
        if path.len() > self.max.path || query.len() > self.max.query {
            return Some(Refusal {
                status: 414,
                problems: vec![invalid(
                    if path.len() > self.max.path {
                        "path"
                    } else {
                        "query"
                    },
                    "",
                    format!(
                        "is longer than {} bytes",
                        if path.len() > self.max.path {
                            self.max.path
                        } else {
                            self.max.query
                        }
                    ),
                )],
            });
        }
        let header_bytes: usize = req.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        if req.headers.len() > self.max.headers || header_bytes > self.max.header_bytes {
            return Some(Refusal {
                status: 431,
                problems: vec![invalid(
                    "header",
                    "",
                    format!(
                        "at most {} headers of {} bytes in all are accepted",
                        self.max.headers, self.max.header_bytes
                    ),
                )],
            });
        }
        if let Some(len) = req
            .header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            if len > self.max.body as u64 {
                return Some(Refusal {
                    status: 413,
                    problems: vec![invalid(
                        "body",
                        "",
                        format!("is larger than {} bytes", self.max.body),
                    )],
                });
            }
        }
        if !self.content_types.is_empty() && has_body(req) {
            let media = req
                .header("content-type")
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(|v| {
                    v.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                });
            if !media
                .as_deref()
                .is_some_and(|m| self.content_types.iter().any(|t| t == m))
            {
                return Some(Refusal {
                    status: 415,
                    problems: vec![invalid(
                        "header",
                        "content-type",
                        format!("must be one of: {}", self.content_types.join(", ")),
                    )],
                });
            }
        }

        let mut problems = Vec::new();
        for (name, ty) in &self.path {
            let Some((_, raw)) = path_params.iter().find(|(n, _)| n == name) else {
                continue;
            };
            match percent_decode(raw, false) {
                Some(v) => {
                    if let Some(r) = ty.check(&v) {
                        problems.push(invalid("path", name, r));
                    }
                }
                None => problems.push(invalid("path", name, "is not valid percent-encoded UTF-8")),
            }
        }
        self.check_query(query, &mut problems);
        for (name, p) in &self.headers {
            // A second copy could carry what the first one's check let through.
            if req
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .count()
                > 1
            {
                problems.push(invalid("header", name, "may appear only once"));
                continue;
            }
            match req.header(name) {
                None if p.required => problems.push(invalid("header", name, "is required")),
                None => {}
                Some(v) => match std::str::from_utf8(v) {
                    Ok(v) => {
                        if let Some(r) = p.ty.check(v) {
                            problems.push(invalid("header", name, r));
                        }
                    }
                    Err(_) => problems.push(invalid("header", name, "must be text")),
                },
            }
        }
        problems.truncate(MAX_PROBLEMS);
        (!problems.is_empty()).then_some(Refusal {
            status: 400,
            problems,
        })
    }

    fn check_query(&self, query: &str, problems: &mut Vec<Invalid>) {
        let mut seen: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            if problems.len() >= MAX_PROBLEMS {
                return;
            }
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(name), Some(value)) = (
                percent_decode(raw_name, true),
                percent_decode(raw_value, true),
            ) else {
                problems.push(invalid("query", "", "is not valid percent-encoded UTF-8"));
                continue;
            };
            match self.query.iter().find(|(n, _)| *n == name) {
                Some((n, p)) => {
                    if seen.contains(&n.as_str()) {
                        problems.push(invalid("query", n, "may appear only once"));
                        continue;
                    }
                    seen.push(n);
                    if let Some(r) = p.ty.check(&value) {
                        problems.push(invalid("query", n, r));
                    }
                }
                None if self.refuse_unknown_query => {
                    problems.push(invalid(
                        "query",
                        &shown(&name),
                        "is not a parameter of this route",
                    ));
                }
                None => {}
            }
        }
        for (n, p) in &self.query {
            if p.required && !seen.contains(&n.as_str()) {
                problems.push(invalid("query", n, "is required"));
            }
        }
    }

    /// Checks a complete body (after its structure passed the scan). A JSON body comes back
    /// parsed, for limits keyed on its fields.
    pub fn check_body(&self, body: &[u8]) -> Result<Option<serde_json::Value>, Refusal> {
        if body.len() > self.max.body {
            return Err(Refusal {
                status: 413,
                problems: vec![invalid(
                    "body",
                    "",
                    format!("is larger than {} bytes", self.max.body),
                )],
            });
        }
        // Duplicate members are refused: a backend that keeps the first copy would see another
        // body than the one checked here (which keeps the last).
        let parsed = std::str::from_utf8(body)
            .map_err(|_| None)
            .and_then(|t| crate::strict::from_str(t).map_err(Some));
        if !self.wants_json() {
            return Ok(parsed.ok());
        }
        let value: serde_json::Value = match parsed {
            Ok(v) => v,
            Err(None) => {
                return Err(Refusal {
                    status: 400,
                    problems: vec![invalid("body", "", "is not UTF-8 text")],
                })
            }
            Err(Some(e)) => {
                return Err(Refusal {
                    status: 400,
                    problems: vec![invalid(
                        "body",
                        "",
                        format!(
                            "is not valid JSON (line {}, column {})",
                            e.line(),
                            e.column()
                        ),
                    )],
                })
            }
        };
        let Some(schema) = self.schema.as_ref() else {
            return Ok(Some(value));
        };
        let problems: Vec<Invalid> = schema
            .validate(&value)
            .into_iter()
            .map(|(pointer, reason)| invalid("body", &pointer, reason))
            .collect();
        if problems.is_empty() {
            Ok(Some(value))
        } else {
            Err(Refusal {
                status: 400,
                problems,
            })
        }
    }

    /// A body whose structure broke a limit while it arrived.
    pub fn scan_refusal(&self, v: JsonViolation) -> Refusal {
        Refusal {
            status: 400,
            problems: vec![invalid("body", "", v.reason())],
        }
    }

    /// A body over the route's cap (or `cap`, if smaller).
    pub fn too_large(&self, cap: usize) -> Refusal {
        Refusal {
            status: 413,
            problems: vec![invalid("body", "", format!("is larger than {cap} bytes"))],
        }
    }
}

/// Whether a body follows the request's headers.
pub fn has_body(req: &Request<'_>) -> bool {
    req.body_expected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert_eq!(percent_decode("%C3%A9", false).unwrap(), "é");
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%ff", false), None, "not UTF-8");
    }
}
