//! The decision: a pure function from a request to a verdict.
//!
//! Order of checks: route matching, the client address (when IP lists or trusted proxies need
//! it), IP lists, the routing default, then the matched route's required headers. A hit on an
//! enforcing rule ends the walk with a block; a hit on a shadow rule is recorded and the walk goes
//! on, so one request may report several shadow hits and still be blocked by a later enforcing
//! rule.

use crate::request::client_address;
use crate::{method_bit, methods_list, HostPattern, IpList, Mode, Policy, Request, Route, RuleId};

/// Why a rule refused a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// No client address: `X-Forwarded-For` lacks a usable hop where trusted hops are declared,
    /// or the connection does not come from a declared trusted proxy.
    ClientAddress,
    /// The client address is in a deny list.
    ClientDenied,
    /// The client address is outside an allow list (or unknown).
    ClientNotAllowed,
    /// No route matches the path (or host).
    RouteNotFound,
    /// A route matches the path but not the method; `allow` is the value of the `Allow` header.
    MethodNotAllowed {
        /// Methods the matching routes accept, as `GET, HEAD`.
        allow: String,
    },
    /// A required header is missing.
    MissingHeader {
        /// The header, or the alternatives of which one is needed.
        any_of: Vec<String>,
    },
    /// A rate limit refused the request.
    RateLimited {
        /// Seconds until it would be admitted (`Retry-After`).
        retry_after: u64,
    },
    /// The client's key is banned (too many failed attempts).
    Banned {
        /// Seconds until the ban ends (`Retry-After`).
        retry_after: u64,
    },
    /// A limit's state could not be read or written and the limit fails closed.
    LimitUnavailable,
    /// The request is not what the route accepts (validation).
    Invalid(crate::validate::Refusal),
    /// The body is larger than the route can read.
    BodyTooLarge {
        /// The limit, in bytes.
        max: usize,
    },
    /// Attack detection scored the request at or over the threshold.
    Attack {
        /// The detector classes that scored, highest first.
        classes: Vec<crate::detect::Class>,
        /// The Core Rule Set rules that scored, in evaluation order.
        crs: Vec<u32>,
        /// The anomaly score.
        score: u32,
    },
    /// The client looked up more distinct identifiers than an enumeration rule allows.
    Enumeration {
        /// Seconds until its window ends (`Retry-After`).
        retry_after: u64,
    },
}

/// A rule's refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The rule that refused.
    pub rule: RuleId,
    /// Why.
    pub kind: BlockKind,
}

impl Block {
    /// The HTTP status the client gets.
    pub fn status(&self) -> u16 {
        match &self.kind {
            BlockKind::ClientAddress | BlockKind::MissingHeader { .. } => 400,
            BlockKind::ClientDenied | BlockKind::ClientNotAllowed | BlockKind::Attack { .. } => 403,
            BlockKind::RouteNotFound => 404,
            BlockKind::MethodNotAllowed { .. } => 405,
            BlockKind::RateLimited { .. }
            | BlockKind::Banned { .. }
            | BlockKind::Enumeration { .. } => 429,
            BlockKind::LimitUnavailable => 503,
            BlockKind::BodyTooLarge { .. } => 413,
            BlockKind::Invalid(r) => r.status,
        }
    }

    /// Seconds for `Retry-After`, when the refusal has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self.kind {
            BlockKind::RateLimited { retry_after }
            | BlockKind::Banned { retry_after }
            | BlockKind::Enumeration { retry_after } => Some(retry_after),
            BlockKind::LimitUnavailable => Some(1),
            _ => None,
        }
    }

    /// Short, stable problem-type slug (the end of the problem `type` URI).
    pub fn slug(&self) -> &'static str {
        match &self.kind {
            BlockKind::ClientAddress => "client-address",
            BlockKind::ClientDenied | BlockKind::ClientNotAllowed => "client-forbidden",
            BlockKind::RouteNotFound => "route-not-found",
            BlockKind::MethodNotAllowed { .. } => "method-not-allowed",
            BlockKind::MissingHeader { .. } => "missing-header",
            BlockKind::RateLimited { .. } => "rate-limited",
            BlockKind::Banned { .. } => "banned",
            BlockKind::LimitUnavailable => "rate-limit-unavailable",
            BlockKind::BodyTooLarge { .. } => "body-too-large",
            BlockKind::Attack { .. } => "attack-detected",
            BlockKind::Enumeration { .. } => "enumeration",
            BlockKind::Invalid(r) => match r.status {
                413 => "body-too-large",
                414 => "uri-too-long",
                415 => "unsupported-media-type",
                431 => "headers-too-large",
                _ => "invalid-request",
            },
        }
    }

    /// Human title of the problem type.
    pub fn title(&self) -> &'static str {
        match &self.kind {
            BlockKind::ClientAddress => "Client address not determined",
            BlockKind::ClientDenied | BlockKind::ClientNotAllowed => "Client not allowed",
            BlockKind::RouteNotFound => "Not found",
            BlockKind::MethodNotAllowed { .. } => "Method not allowed",
            BlockKind::MissingHeader { .. } => "Required header missing",
            BlockKind::RateLimited { .. } => "Too many requests",
            BlockKind::Banned { .. } => "Too many failed attempts",
            BlockKind::LimitUnavailable => "Rate limiting unavailable",
            BlockKind::BodyTooLarge { .. } => "Request body too large",
            BlockKind::Attack { .. } => "Request blocked",
            BlockKind::Enumeration { .. } => "Too many distinct look-ups",
            BlockKind::Invalid(r) => match r.status {
                413 => "Request body too large",
                414 => "Request URI too long",
                415 => "Unsupported media type",
                431 => "Request headers too large",
                _ => "Invalid request",
            },
        }
    }

    /// What a legitimate client needs to know, without echoing anything it sent.
    pub fn detail(&self) -> String {
        match &self.kind {
            BlockKind::ClientAddress => {
                "The request did not arrive through the proxies this API expects.".into()
            }
            BlockKind::ClientDenied | BlockKind::ClientNotAllowed => {
                "Requests from this network are not accepted here.".into()
            }
            BlockKind::RouteNotFound => "No API route matches this path.".into(),
            BlockKind::MethodNotAllowed { allow } => {
                format!("This route accepts {allow}; see the Allow header.")
            }
            BlockKind::MissingHeader { any_of } => match any_of.as_slice() {
                [one] => format!("The request must carry the header {one}."),
                many => format!(
                    "The request must carry one of the headers {}.",
                    many.join(", ")
                ),
            },
            BlockKind::RateLimited { retry_after } => format!(
                "This client has used up its allowance for these requests; retry after {retry_after} seconds (see Retry-After and RateLimit)."
            ),
            BlockKind::Banned { retry_after } => format!(
                "Too many failed attempts from this client; it is blocked for {retry_after} more seconds."
            ),
            BlockKind::LimitUnavailable => {
                "The rate limit could not be checked; retry shortly.".into()
            }
            BlockKind::BodyTooLarge { max } => {
                format!("This route accepts request bodies of at most {max} bytes.")
            }
            BlockKind::Attack { classes, crs, .. } => {
                let mut names: Vec<String> = classes.iter().map(|c| c.label().to_string()).collect();
                if !crs.is_empty() {
                    let ids: Vec<String> = crs.iter().map(u32::to_string).collect();
                    names.push(format!("Core Rule Set rules {}", ids.join(", ")));
                }
                format!(
                    "The request was refused by attack detection ({}).",
                    names.join("; ")
                )
            }
            BlockKind::Enumeration { retry_after } => format!(
                "This client has looked up more distinct identifiers than this API allows in a window; retry after {retry_after} seconds."
            ),
            BlockKind::Invalid(r) => {
                let Some(first) = r.problems.first() else {
                    return "The request is not what this route accepts.".into();
                };
                let subject = match (first.location, first.name.is_empty()) {
                    ("path", false) => format!("The path parameter {}", first.name),
                    ("path", true) => "The path".into(),
                    ("query", false) => format!("The query parameter {}", first.name),
                    ("query", true) => "The query string".into(),
                    ("header", false) => format!("The header {}", first.name),
                    ("header", true) => "The request's headers".into(),
                    (_, false) => format!("The body at {}", first.name),
                    (_, true) => "The body".into(),
                };
                let more = match r.problems.len() {
                    1 => String::new(),
                    n => format!(" ({} more problems; see invalid_params)", n - 1),
                };
                format!("{subject} {}.{more}", first.reason)
            }
        }
    }
}

/// What the policy decided for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Index of the matched route, if any (see [`Policy::route_names`]).
    pub route: Option<usize>,
    /// The enforcing rule that refused the request; `None` lets it through.
    pub block: Option<Block>,
    /// Shadow rules that would have refused it.
    pub shadowed: Vec<Block>,
    /// What attack detection found in the request so far (the body's findings join these).
    pub findings: crate::detect::Findings,
    /// The Core Rule Set rules that matched (run once, on the head or with the body).
    pub crs: Vec<crate::crs::Match>,
}

impl Verdict {
    /// True when the request goes on to the upstream.
    pub fn allowed(&self) -> bool {
        self.block.is_none()
    }
}

enum RouteMatch {
    Found(usize),
    WrongMethod(u16),
    NotFound,
}

impl Policy {
    /// Judges one request. Pure: same policy and request, same verdict.
    pub fn decide(&self, req: &Request<'_>) -> Verdict {
        let mut v = Verdict::default();
        let _ = self.walk(req, &mut v);
        v
    }

    fn walk(&self, req: &Request<'_>, v: &mut Verdict) -> Result<(), ()> {
        let matched = self.match_route(req);
        if let RouteMatch::Found(i) = matched {
            v.route = Some(i);
        }

        let route = v.route;
        let applies = move |list: &&IpList| match (&list.routes, route) {
            (None, _) => true,
            (Some(rs), Some(r)) => rs.contains(&r),
            (Some(_), None) => false,
        };
        let mut lists = self.ip_lists.iter().filter(applies);
        if lists.next().is_some() || !self.trusted_proxies.is_empty() {
            match client_address(req, self.trusted_hops, &self.trusted_proxies) {
                Ok(client) => {
                    for list in self.ip_lists.iter().filter(applies) {
                        let inside = client.map(|ip| list.contains(ip));
                        if let Some(kind) = ip_list_refusal(list.allow, inside) {
                            self.hit(v, list.rule, kind)?;
                        }
                    }
                }
                Err(()) => {
                    // Without a client address no list can be checked. That refuses the request
                    // when trusted proxies are declared or an enforcing list applies; with only
                    // shadow lists it is a shadow hit, like theirs would have been.
                    let enforced = !self.trusted_proxies.is_empty()
                        || self
                            .ip_lists
                            .iter()
                            .filter(applies)
                            .any(|l| self.mode_of(l.rule) == Mode::Enforce);
                    let mode = if enforced {
                        Mode::Enforce
                    } else {
                        Mode::Shadow
                    };
                    self.hit_as(v, self.client_address_rule, mode, BlockKind::ClientAddress)?;
                }
            }
        }

        if self.default_deny {
            match matched {
                RouteMatch::Found(_) => {}
                RouteMatch::WrongMethod(mask) => self.hit(
                    v,
                    self.routing_rule,
                    BlockKind::MethodNotAllowed {
                        allow: methods_list(mask),
                    },
                )?,
                RouteMatch::NotFound => self.hit(v, self.routing_rule, BlockKind::RouteNotFound)?,
            }
        }

        if let Some(route) = v.route.and_then(|i| self.routes.get(i)) {
            if let Some(rule) = route.headers_rule {
                for need in &route.required {
                    if !need.any_of.iter().any(|h| req.has_header(h)) {
                        let any_of = need.any_of.clone();
                        self.hit(v, rule, BlockKind::MissingHeader { any_of })?;
                        // One report per rule is enough, in shadow mode too.
                        break;
                    }
                }
            }
            let rv = &route.validation;
            let params = route.path.captures(req.path_only());
            if let Some(refusal) = rv.check_head(req, &params) {
                self.hit_as(v, rv.rule, rv.mode, BlockKind::Invalid(refusal))?;
            }
        }
        if let (Some(d), Some(threshold)) =
            (self.detection.as_ref(), self.detection_threshold(v.route))
        {
            d.inspect_head(req, &mut v.findings);
            if let Some(c) = d.crs.as_ref().filter(|c| c.mode.is_some()) {
                // With a body to read, the rule set runs once, when the body is in.
                if !(req.body_expected && self.inspects_body(v.route, req)) {
                    v.crs = c.run(req, None, self.client_of(req));
                }
            }
            if let Some(found) = d.judge(threshold, &v.findings, &v.crs) {
                let kind = BlockKind::Attack {
                    classes: found.classes,
                    crs: found.crs,
                    score: found.score,
                };
                self.hit_as(v, found.rule, found.mode, kind)?;
            }
        }
        Ok(())
    }

    /// Adds a request body's findings to the verdict and judges the request again. A refusal
    /// lands in `v.block`; a shadow hit replaces the head's, so a request is reported once.
    pub fn detect_body(
        &self,
        v: &mut Verdict,
        req: &Request<'_>,
        body: &[u8],
        parsed: Option<&serde_json::Value>,
    ) {
        let (Some(d), Some(threshold)) =
            (self.detection.as_ref(), self.detection_threshold(v.route))
        else {
            return;
        };
        let mut found = crate::detect::Findings::default();
        d.inspect_body(body, req.header("content-type"), parsed, &mut found);
        // The rule set ran on the head unless the body was to be read (see `walk`).
        let crs = match d.crs.as_ref().filter(|c| c.mode.is_some()) {
            Some(c) if self.inspects_body(v.route, req) => {
                c.run(req, Some(body), self.client_of(req))
            }
            _ => std::mem::take(&mut v.crs),
        };
        if found.is_empty() && crs.is_empty() {
            return;
        }
        v.findings.merge(&found);
        v.crs = crs;
        if let Some(found) = d.judge(threshold, &v.findings, &v.crs) {
            v.shadowed
                .retain(|b| !matches!(b.kind, BlockKind::Attack { .. }));
            let kind = BlockKind::Attack {
                classes: found.classes,
                crs: found.crs,
                score: found.score,
            };
            let _ = self.hit_as(v, found.rule, found.mode, kind);
        }
    }

    fn mode_of(&self, rule: RuleId) -> Mode {
        self.rules.get(rule.0).map_or(Mode::Enforce, |r| r.mode)
    }

    /// Records a rule hit in the rule's mode.
    fn hit(&self, v: &mut Verdict, rule: RuleId, kind: BlockKind) -> Result<(), ()> {
        self.hit_as(v, rule, self.mode_of(rule), kind)
    }

    /// Records a hit. Enforced, it stops the walk (`Err`); shadowed, the walk goes on.
    fn hit_as(&self, v: &mut Verdict, rule: RuleId, mode: Mode, kind: BlockKind) -> Result<(), ()> {
        let block = Block { rule, kind };
        match mode {
            Mode::Shadow => {
                v.shadowed.push(block);
                Ok(())
            }
            Mode::Enforce => {
                v.block = Some(block);
                Err(())
            }
        }
    }

    fn match_route(&self, req: &Request<'_>) -> RouteMatch {
        let host = req.host();
        let path = req.path_only();
        let method = method_bit(req.method).unwrap_or(0);
        let mut allowed = 0u16;
        for (i, route) in self.routes.iter().enumerate() {
            if !host_matches(route, host) || !route.path.matches(path) {
                continue;
            }
            if route.methods & method != 0 {
                return RouteMatch::Found(i);
            }
            allowed |= route.methods;
        }
        if allowed != 0 {
            RouteMatch::WrongMethod(allowed)
        } else {
            RouteMatch::NotFound
        }
    }
}

/// For an allow list, a client outside it (or unknown) is refused; for a deny list, one inside.
fn ip_list_refusal(allow: bool, inside: Option<bool>) -> Option<BlockKind> {
    match (allow, inside) {
        (true, Some(true)) | (false, Some(false)) | (false, None) => None,
        (true, _) => Some(BlockKind::ClientNotAllowed),
        (false, Some(true)) => Some(BlockKind::ClientDenied),
    }
}

fn host_matches(route: &Route, host: &str) -> bool {
    if route.hosts.is_empty() {
        return true;
    }
    route.hosts.iter().any(|p| match p {
        HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
        HostPattern::Suffix(s) => {
            host.len() > s.len()
                && host
                    .get(host.len() - s.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(s))
        }
    })
}
