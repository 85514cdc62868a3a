//! Tollgate's policy core.
//!
//! A policy arrives as JSON (Envoy hands it to the filter as plugin configuration). It is parsed,
//! validated with *every* error reported against its path, and compiled once into an immutable
//! [`Policy`]. Each request is then judged by the pure function [`Policy::decide`], which returns a
//! [`Verdict`]; the proxy-wasm glue in `tollgate-filter` only reads the request from the host and
//! applies the verdict.
//!
//! Nothing in this crate talks to a host, reads a clock or panics on input: it builds natively and
//! is tested natively.
#![forbid(unsafe_code)]

mod cidr;
mod compile;
pub mod crs;
mod decide;
pub mod detect;
pub mod enumeration;
mod error;
#[cfg(feature = "schema")]
pub mod format;
pub mod global;
pub mod limits;
mod problem;
mod request;
mod strict;
mod structpb;
pub mod tables;
mod template;
pub mod validate;
mod whole;
mod wire;
#[cfg(feature = "yaml")]
pub mod yamlpos;

/// The version of the policy format: what a policy document may say and what it means. A
/// change that makes an accepted document mean something else, or refuses one, raises it.
pub const POLICY_FORMAT: u32 = 1;

pub use cidr::Cidr;
pub use compile::{config_edge, load_plugin_config, parse_duration_secs, parse_rate, Embedded};
pub use decide::{Block, BlockKind, Verdict};
pub use error::PolicyError;
pub use problem::{sanitize_request_id, Problem};
pub use request::{parse_socket_address, Request};
pub use structpb::decode_struct;
pub use template::PathTemplate;
pub use whole::{BodyHold, BodyRefusal, Whole};

use std::net::IpAddr;

/// Whether a rule refuses requests or only reports what it would have refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A hit refuses the request.
    Enforce,
    /// A hit is logged and counted; the request goes on.
    Shadow,
}

/// Index of a rule in [`Policy::rules`]; used for per-rule counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleId(pub usize);

/// A rule as the outside world sees it: a stable, metric-safe name and its mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Metric-safe name such as `ip_list.abuse-networks` or `route.vin-lookup.required_headers`.
    pub name: String,
    /// Enforce or shadow.
    pub mode: Mode,
}

/// A compiled, immutable policy. Build it with [`Policy::from_json`] or [`load_plugin_config`].
#[derive(Debug)]
pub struct Policy {
    pub(crate) version: String,
    pub(crate) edge: String,
    pub(crate) default_deny: bool,
    pub(crate) routing_rule: RuleId,
    pub(crate) client_address_rule: RuleId,
    pub(crate) trusted_hops: usize,
    /// When not empty, the connection's peer must be one of these (the proxies that write the
    /// trusted `X-Forwarded-For` hops).
    pub(crate) trusted_proxies: Vec<Cidr>,
    pub(crate) ip_lists: Vec<IpList>,
    pub(crate) routes: Vec<Route>,
    pub(crate) rate_limits: Vec<limits::RateLimit>,
    /// Rate limits counted by a rate-limit service (`scope: global`).
    pub(crate) global_limits: Vec<global::GlobalLimit>,
    pub(crate) bans: Vec<limits::Ban>,
    pub(crate) detection: Option<detect::Detection>,
    pub(crate) enumerations: Vec<enumeration::Enumeration>,
    pub(crate) rules: Vec<Rule>,
}

impl Policy {
    /// Parses, validates and compiles a policy document. On failure, returns every error found.
    pub fn from_json(text: &str) -> Result<Policy, Vec<PolicyError>> {
        compile::from_json(text)
    }

    /// The policy's version string, as written by its author.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The edge this policy guards (`retail`, `dealer`, ...), used in metric names.
    pub fn edge(&self) -> &str {
        &self.edge
    }

    /// Every rule, indexed by [`RuleId`].
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The name of a rule (`unknown` for an id from another policy).
    pub fn rule_name(&self, rule: RuleId) -> &str {
        self.rules
            .get(rule.0)
            .map_or("unknown", |r| r.name.as_str())
    }

    /// Names of the routes, in policy order.
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| r.name.as_str())
    }

    /// True when deciding needs the connection's source address: IP lists with no trusted
    /// proxies in front, or trusted proxies to check the peer against. (The host is asked for it
    /// only then: every host call costs a crossing into the VM's host.)
    pub fn needs_source_address(&self) -> bool {
        let keyed_on_client = self.keys().any(|k| k.contains(&limits::KeyPart::ClientIp));
        (self.trusted_hops == 0 && (!self.ip_lists.is_empty() || keyed_on_client))
            || !self.trusted_proxies.is_empty()
    }

    /// True when a limit or ban is keyed on the mTLS peer identity (the filter then reads
    /// `connection.uri_san_peer_certificate`).
    pub fn needs_peer_identity(&self) -> bool {
        self.keys()
            .any(|k| k.contains(&limits::KeyPart::PeerIdentity))
    }

    /// The keys of every limit, ban and enumeration rule.
    fn keys(&self) -> impl Iterator<Item = &Vec<limits::KeyPart>> {
        self.rate_limits
            .iter()
            .map(|l| &l.key)
            .chain(self.global_limits.iter().map(|g| &g.key))
            .chain(self.bans.iter().map(|b| &b.key))
            .chain(self.enumerations.iter().map(|e| &e.key))
    }

    /// True when a limit or ban that applies to `route` is keyed on a body field: the filter
    /// then waits for the body before deciding.
    pub fn needs_body(&self, route: Option<usize>) -> bool {
        let keyed =
            |k: &Vec<limits::KeyPart>| k.iter().any(|p| matches!(p, limits::KeyPart::BodyField(_)));
        self.rate_limits
            .iter()
            .any(|l| l.cost_on(route).is_some() && keyed(&l.key))
            || self
                .global_limits
                .iter()
                .any(|g| g.cost_on(route).is_some() && keyed(&g.key))
            || self.bans.iter().any(|b| b.applies(route) && keyed(&b.key))
            || self.enumerations.iter().any(|e| {
                e.applies(route)
                    && (keyed(&e.key) || matches!(e.value, enumeration::ValueSource::BodyField(_)))
            })
    }

    /// The enumeration rules, in policy order.
    pub fn enumerations(&self) -> &[enumeration::Enumeration] {
        &self.enumerations
    }

    /// The path parameters of a request on its route, raw (percent-encoded).
    pub fn path_params<'r>(
        &'r self,
        route: Option<usize>,
        req: &Request<'r>,
    ) -> Vec<(&'r str, &'r str)> {
        route
            .and_then(|r| self.routes.get(r))
            .map(|r| r.path.captures(req.path_only()))
            .unwrap_or_default()
    }

    /// The anomaly score at which detection refuses on `route`; `None` when detection is off
    /// there (or in the whole policy).
    pub fn detection_threshold(&self, route: Option<usize>) -> Option<u32> {
        let d = self.detection.as_ref()?;
        match route.and_then(|r| self.routes.get(r)) {
            Some(r) => r.detection,
            None => Some(d.threshold),
        }
    }

    /// Whether detection reads this request's body (on for the route, and a text media type).
    pub fn inspects_body(&self, route: Option<usize>, req: &Request<'_>) -> bool {
        let crs = self
            .detection
            .as_ref()
            .and_then(|d| d.crs.as_ref())
            .is_some_and(|c| c.mode.is_some());
        self.detection_threshold(route).is_some()
            && (detect::Detection::reads_media(req.header("content-type"))
                || (crs && detect::Detection::is_multipart(req.header("content-type"))))
    }

    /// The detectors, when the policy has a `detection` block.
    pub fn detection(&self) -> Option<&detect::Detection> {
        self.detection.as_ref()
    }

    /// The rate limits, in policy order.
    pub fn rate_limits(&self) -> &[limits::RateLimit] {
        &self.rate_limits
    }

    /// The global rate limits (`scope: global`), in policy order.
    pub fn global_limits(&self) -> &[global::GlobalLimit] {
        &self.global_limits
    }

    /// The bans, in policy order.
    pub fn bans(&self) -> &[limits::Ban] {
        &self.bans
    }

    /// What a route accepts (its `validate` block, or the policy's defaults).
    pub fn validation(&self, route: Option<usize>) -> Option<&validate::RouteValidation> {
        route
            .and_then(|r| self.routes.get(r))
            .map(|r| &r.validation)
    }

    /// Whether the route shows `RateLimit` headers on allowed responses.
    pub fn rate_limit_headers_on(&self, route: Option<usize>) -> bool {
        route
            .and_then(|r| self.routes.get(r))
            .is_none_or(|r| r.rate_limit_headers)
    }

    /// The client address as the policy's `client_ip` settings determine it.
    pub fn client_of(&self, req: &Request<'_>) -> Option<IpAddr> {
        request::client_address(req, self.trusted_hops, &self.trusted_proxies)
            .ok()
            .flatten()
    }
}

#[derive(Debug)]
pub(crate) struct IpList {
    pub(crate) rule: RuleId,
    pub(crate) allow: bool,
    pub(crate) cidrs: Vec<Cidr>,
    /// Route indices this list applies to; `None` means every request.
    pub(crate) routes: Option<Vec<usize>>,
}

impl IpList {
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|c| c.contains(ip))
    }
}

#[derive(Debug)]
pub(crate) enum HostPattern {
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
}

#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) name: String,
    /// Empty means any host.
    pub(crate) hosts: Vec<HostPattern>,
    pub(crate) path: PathTemplate,
    pub(crate) methods: u16,
    pub(crate) required: Vec<HeaderRequirement>,
    pub(crate) headers_rule: Option<RuleId>,
    pub(crate) rate_limit_headers: bool,
    pub(crate) validation: validate::RouteValidation,
    /// The anomaly score at which detection refuses here; `None`: detection off.
    pub(crate) detection: Option<u32>,
}

/// One required header, or a set of which at least one must be present.
#[derive(Debug)]
pub(crate) struct HeaderRequirement {
    /// Lower-case names; one name for a plain requirement, several for `any_of`.
    pub(crate) any_of: Vec<String>,
}

/// The HTTP methods a policy may name, with the bit each takes in a route's method mask.
pub(crate) const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

pub(crate) fn method_bit(method: &str) -> Option<u16> {
    METHODS.iter().position(|m| *m == method).map(|i| 1u16 << i)
}

pub(crate) fn methods_list(mask: u16) -> String {
    let mut out = String::new();
    for (i, m) in METHODS.iter().enumerate() {
        if mask & (1 << i) != 0 {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(m);
        }
    }
    out
}
