//! RFC 9457 problem details for refused requests.

use serde::Serialize;

use crate::{Block, Policy};

/// Where the problem types live; the slug of the block follows.
pub const PROBLEM_TYPE_BASE: &str = "urn:tollgate:problem:";

/// The body of a refusal: `application/problem+json`. It names the rule and carries the request
/// id; it never carries the policy's internals or anything the client sent.
#[derive(Debug, Serialize)]
pub struct Problem<'a> {
    /// `urn:tollgate:problem:<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The problem type's title.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What was wrong, for a legitimate client.
    pub detail: String,
    /// The rule that refused the request.
    pub rule: &'a str,
    /// The request id (`x-request-id`), for support and log correlation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    /// For a validation refusal: every parameter found wrong, and why (RFC 9457 §3's example
    /// extension, `in` saying where: path, query, header or body).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
    /// For an attack-detection refusal: the detector classes that scored (never the payload).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<&'static str>,
    /// For an attack-detection refusal: the Core Rule Set rule ids that scored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crs_rules: Vec<u32>,
}

/// One entry of `invalid_params`.
#[derive(Debug, Serialize)]
pub struct InvalidParam {
    /// `path`, `query`, `header` or `body`.
    #[serde(rename = "in")]
    pub location: &'static str,
    /// The parameter, header or JSON pointer (empty for the whole part).
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

impl<'a> Problem<'a> {
    /// Renders the body. Falls back to a fixed minimal body if serialisation were ever to fail.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                "{{\"type\":\"about:blank\",\"title\":\"Request refused\",\"status\":{}}}",
                self.status
            )
        })
    }
}

impl Policy {
    /// The problem details for a block under this policy.
    pub fn problem<'a>(&'a self, block: &Block, request_id: Option<&'a str>) -> Problem<'a> {
        Problem {
            kind: format!("{PROBLEM_TYPE_BASE}{}", block.slug()),
            title: block.title(),
            status: block.status(),
            detail: block.detail(),
            rule: self.rule_name(block.rule),
            request_id,
            invalid_params: match &block.kind {
                crate::BlockKind::Invalid(r) => r
                    .problems
                    .iter()
                    .map(|p| InvalidParam {
                        location: p.location,
                        name: p.name.clone(),
                        reason: p.reason.clone(),
                    })
                    .collect(),
                _ => Vec::new(),
            },
            detectors: match &block.kind {
                crate::BlockKind::Attack { classes, .. } => {
                    classes.iter().map(|c| c.label()).collect()
                }
                _ => Vec::new(),
            },
            crs_rules: match &block.kind {
                crate::BlockKind::Attack { crs, .. } => crs.clone(),
                _ => Vec::new(),
            },
        }
    }
}

/// A request id fit to echo: 1 to 128 characters of letters, digits and `-._:`. Anything else
/// (a client's attempt to inject into bodies or logs) is dropped.
pub fn sanitize_request_id(raw: &[u8]) -> Option<&str> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'));
    if ok {
        std::str::from_utf8(raw).ok()
    } else {
        None
    }
}
