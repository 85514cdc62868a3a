//! From JSON to a compiled [`Policy`]: one walk over the document that checks every field,
//! collects *every* error with its path, and builds the immutable policy when there are none.
//!
//! The walk works on `serde_json::Value` rather than derived `Deserialize` types because serde
//! stops at the first error, and a policy author should see all of them in one go.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::global::{self, GlobalLimit};
use crate::limits::{Ban, FailureMode, KeyPart, RateLimit, BLOCK, WAYS};
use crate::structpb::decode_struct;
use crate::{
    cidr::Cidr, method_bit, HeaderRequirement, HostPattern, IpList, Mode, PathTemplate, Policy,
    PolicyError, Route, Rule, RuleId,
};

/// Policies compiled into the plugin, by name (`retail`, `dealer`).
pub type Embedded<'a> = &'a [(&'a str, &'a str)];

/// Most hops of trusted proxies a policy may declare.
const MAX_TRUSTED_HOPS: u64 = 10;

/// Slots per rate limit or ban unless the policy says otherwise.
const DEFAULT_MAX_KEYS: u32 = 10_000;
/// Most slots a rate limit or ban may have (each is one shared-data entry of about 50 bytes).
const MAX_MAX_KEYS: u32 = 1_000_000;
/// Largest burst (and cost).
const MAX_BURST: u64 = 1_000_000;

/// `"N/unit"` with unit `s`, `min`, `h` or `d` (also `second`, `minute`, `hour`, `day`), as
/// (requests, period in seconds). The interval `period / requests` must be at least 1 µs.
pub fn parse_rate(s: &str) -> Result<(u64, u64), String> {
    let bad =
        || format!("{s:?} is not a rate; write e.g. \"10/s\", \"600/min\", \"1000/h\", \"5000/d\"");
    let (n, unit) = s.split_once('/').ok_or_else(bad)?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    let period = match unit.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        _ => return Err(bad()),
    };
    if n == 0 || n > period * 1_000_000 {
        return Err(format!(
            "{s:?}: the rate must be at least 1 and at most 1,000,000 per second"
        ));
    }
    Ok((n, period))
}

/// `"20ms"` or `"2s"` in milliseconds.
fn parse_millis(s: &str) -> Option<u32> {
    let s = s.trim();
    let (n, mult) = match s.strip_suffix("ms") {
        Some(n) => (n, 1),
        None => (s.strip_suffix('s')?, 1000),
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse::<u32>().ok()?.checked_mul(mult)
}

/// A rate limit as compiled: counted in this proxy, or by a rate-limit service.
enum AnyLimit {
    Local(RateLimit),
    Global(GlobalLimit),
}

/// `"30s"`, `"5m"`, `"2h"`, `"1d"` in seconds.
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Turns the plugin configuration Envoy hands over into a policy. The configuration is either a
/// policy document or `{"embedded": "NAME"}`, which selects a policy compiled into the plugin.
pub fn load_plugin_config(raw: &[u8], embedded: Embedded<'_>) -> Result<Policy, Vec<PolicyError>> {
    let names: Vec<&str> = embedded.iter().map(|(n, _)| *n).collect();
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(vec![PolicyError::new(
            "",
            format!(
                "configuration is empty; give a policy document or {{\"embedded\": NAME}} with NAME one of {names:?}"
            ),
        )]);
    }
    let value = match std::str::from_utf8(raw) {
        Ok(text) => match parse(text) {
            Ok(v) => v,
            // Not JSON: perhaps a google.protobuf.Struct, which Envoy passes as protobuf.
            Err(json_err) => decode_struct(raw).map_err(|_| json_err)?,
        },
        Err(_) => decode_struct(raw).map_err(|e| {
            vec![PolicyError::new(
                "",
                format!("configuration is neither JSON text nor a google.protobuf.Struct ({e})"),
            )]
        })?,
    };
    if let Some(sel) = value.as_object().and_then(|o| o.get("embedded")) {
        let mut cx = Cx::default();
        let _ = cx.object(&value, "", &["embedded"]);
        let name = cx.string(sel, "embedded");
        if !cx.errors.is_empty() {
            return Err(cx.errors);
        }
        return match embedded.iter().find(|(n, _)| Some(*n) == name) {
            Some((_, json)) => from_json(json),
            None => Err(vec![PolicyError::new(
                "embedded",
                format!(
                    "no embedded policy named {:?}; this build has {names:?}",
                    name.unwrap_or_default()
                ),
            )]),
        };
    }
    compile(&value)
}

/// The edge a plugin configuration names, if it is a policy document with a valid `edge`, or an
/// embedded selection: what a refusal's log line can say about the policy that stays in force.
pub fn config_edge(raw: &[u8], embedded: Embedded<'_>) -> Option<String> {
    let value = match std::str::from_utf8(raw).ok().map(parse) {
        Some(Ok(v)) => v,
        _ => decode_struct(raw).ok()?,
    };
    let o = value.as_object()?;
    if let Some(name) = o.get("embedded").and_then(Value::as_str) {
        let (_, json) = embedded.iter().find(|(n, _)| *n == name)?;
        return from_json(json).ok().map(|p| p.edge);
    }
    o.get("edge")
        .and_then(Value::as_str)
        .filter(|e| is_name(e))
        .map(str::to_owned)
}

pub(crate) fn from_json(text: &str) -> Result<Policy, Vec<PolicyError>> {
    compile(&parse(text)?)
}

fn parse(text: &str) -> Result<Value, Vec<PolicyError>> {
    crate::strict::from_str(text).map_err(|e| {
        vec![PolicyError::new(
            "",
            format!(
                "not valid JSON at line {} column {}: {}",
                e.line(),
                e.column(),
                e
            ),
        )]
    })
}

fn compile(doc: &Value) -> Result<Policy, Vec<PolicyError>> {
    let mut cx = Cx::default();
    let policy = cx.policy(doc);
    match policy {
        Some(p) if cx.errors.is_empty() => Ok(p),
        _ => {
            if cx.errors.is_empty() {
                cx.err("", "policy could not be compiled");
            }
            Err(cx.errors)
        }
    }
}

/// The walk's state: the errors found so far and the rules registered so far.
#[derive(Default)]
struct Cx {
    errors: Vec<PolicyError>,
    rules: Vec<Rule>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Names used in metrics and problem bodies: short, lower-case, unambiguous.
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// RFC 9110 token characters, as in header names.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

impl Cx {
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        self.errors.push(PolicyError::new(path, msg));
    }

    fn rule(&mut self, name: String, mode: Mode) -> RuleId {
        self.rules.push(Rule { name, mode });
        RuleId(self.rules.len() - 1)
    }

    /// An object whose keys are all in `allowed`; unknown keys are reported one by one.
    fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(map) = v.as_object() else {
            self.err(path, format!("expected an object, found {}", kind(v)));
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.err(
                    &join(path, key),
                    format!("unknown field; expected one of: {}", allowed.join(", ")),
                );
            }
        }
        Some(map)
    }

    fn required<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Option<&'v Value> {
        let v = map.get(key);
        if v.is_none() {
            self.err(&join(path, key), "required field is missing");
        }
        v
    }

    fn string<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v str> {
        match v.as_str() {
            Some(s) => Some(s),
            None => {
                self.err(path, format!("expected a string, found {}", kind(v)));
                None
            }
        }
    }

    fn array<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v [Value]> {
        match v.as_array() {
            Some(a) => Some(a.as_slice()),
            None => {
                self.err(path, format!("expected a list, found {}", kind(v)));
                None
            }
        }
    }

    /// A whole number in `0..=max`. `1.0` is accepted: a protobuf `Struct` (Istio's
    /// `pluginConfig`) carries every number as a double.
    fn uint(&mut self, v: &Value, path: &str, max: u64) -> Option<u64> {
        let n = match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= max as f64)
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        match n {
            Some(n) if n <= max => Some(n),
            _ => {
                self.err(path, format!("expected a whole number from 0 to {max}"));
                None
            }
        }
    }

    fn name(&mut self, v: &Value, path: &str) -> Option<String> {
        let s = self.string(v, path)?;
        if is_name(s) {
            Some(s.to_string())
        } else {
            self.err(
                path,
                format!(
                    "{s:?} is not a valid name: use 1 to 63 lower-case letters, digits, '-' or '_'"
                ),
            );
            None
        }
    }

    /// A field that names one of a few options (`mode: shadow`, `on_failure: closed`); the
    /// default when absent, and an error naming the options when unknown.
    fn choice<T: Copy>(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
        what: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(v) = map.get(key) else {
            return default;
        };
        let p = join(path, key);
        let Some(s) = self.string(v, &p) else {
            return default;
        };
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == s) {
            return *t;
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
        self.err(
            &p,
            format!("unknown {what} {s:?}; expected {}", names.join(" or ")),
        );
        default
    }

    fn mode(&mut self, map: &Map<String, Value>, path: &str) -> Mode {
        self.choice(
            map,
            path,
            "mode",
            "mode",
            &[("enforce", Mode::Enforce), ("shadow", Mode::Shadow)],
            Mode::Enforce,
        )
    }

    /// A list of named items (`ip_lists`, `rate_limits`, `bans`): each compiled by `item`, names
    /// checked for repeats.
    fn named_list<T>(
        &mut self,
        top: &Map<String, Value>,
        key: &str,
        what: &str,
        mut item: impl FnMut(&mut Cx, &Value, &str) -> Option<T>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        if let Some(list) = top.get(key).and_then(|v| self.array(v, key)) {
            self.unique_names(list, key, what);
            for (i, x) in list.iter().enumerate() {
                if let Some(t) = item(self, x, &index(key, i)) {
                    out.push(t);
                }
            }
        }
        out
    }

    /// Reports every `name` in `list` that an earlier item already used. Checked apart from the
    /// items themselves, so a duplicate is reported even when the item has other errors.
    fn unique_names(&mut self, list: &[Value], path: &str, what: &str) {
        let mut seen: Vec<&str> = Vec::new();
        for (i, item) in list.iter().enumerate() {
            if let Some(name) = item.get("name").and_then(Value::as_str) {
                if seen.contains(&name) {
                    self.err(
                        &join(&index(path, i), "name"),
                        format!("{what} name {name:?} is used twice"),
                    );
                }
                seen.push(name);
            }
        }
    }

    fn policy(&mut self, doc: &Value) -> Option<Policy> {
        let top = self.object(
            doc,
            "",
            &[
                "version",
                "edge",
                "client_ip",
                "routing",
                "ip_lists",
                "routes",
                "rate_limits",
                "bans",
                "validation",
                "detection",
                "enumeration",
            ],
        )?;

        let version = self.required(top, "", "version").and_then(|v| {
            let s = self.string(v, "version")?;
            if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
                self.err(
                    "version",
                    "expected 1 to 128 printable characters without spaces",
                );
                None
            } else {
                Some(s.to_string())
            }
        });
        let edge = self
            .required(top, "", "edge")
            .and_then(|v| self.name(v, "edge"));

        let (mut trusted_hops, mut trusted_proxies) = (0, Vec::new());
        if let Some(v) = top.get("client_ip") {
            if let Some(m) = self.object(v, "client_ip", &["trusted_hops", "trusted_proxies"]) {
                // `None` when given but invalid (already reported).
                let mut hops_ok = Some(0);
                if let Some(h) = m.get("trusted_hops") {
                    hops_ok = self.uint(h, "client_ip.trusted_hops", MAX_TRUSTED_HOPS);
                    trusted_hops = hops_ok.unwrap_or(0);
                }
                if let Some(p) = m.get("trusted_proxies") {
                    trusted_proxies = self.cidrs(p, "client_ip.trusted_proxies");
                    if hops_ok == Some(0) {
                        self.err(
                            "client_ip.trusted_proxies",
                            "trusted proxies need client_ip.trusted_hops of 1 or more",
                        );
                    }
                }
            }
        }

        let client_address_rule = self.rule("client_address".into(), Mode::Enforce);
        let (default_deny, routing_mode) = match top.get("routing") {
            None => (true, Mode::Enforce),
            Some(v) => match self.object(v, "routing", &["default", "mode"]) {
                Some(m) => {
                    let deny = self.choice(
                        m,
                        "routing",
                        "default",
                        "default",
                        &[("deny", true), ("allow", false)],
                        true,
                    );
                    (deny, self.mode(m, "routing"))
                }
                None => (true, Mode::Enforce),
            },
        };
        let routing_rule = self.rule("routing".into(), routing_mode);

        let defaults = self.validation_defaults(top.get("validation"));
        let detection = self.detection(top.get("detection"));
        let default_threshold = detection.as_ref().map(|d| d.threshold);
        let validation_rule = self.rule("validation".into(), Mode::Enforce);

        // Routes first: IP lists refer to them by name.
        let mut routes = Vec::new();
        let mut route_index: HashMap<String, usize> = HashMap::new();
        if let Some(list) = self
            .required(top, "", "routes")
            .and_then(|v| self.array(v, "routes"))
        {
            self.unique_names(list, "routes", "route");
            // Indexed by position in the document, so that an IP list naming a route with
            // errors of its own gets no second, misleading error. (With any error the policy is
            // refused, so the indices are only used when every route compiled.)
            for (i, r) in list.iter().enumerate() {
                if let Some(name) = r.get("name").and_then(Value::as_str) {
                    route_index.entry(name.to_string()).or_insert(i);
                }
                if let Some(route) = self.route(
                    r,
                    &index("routes", i),
                    defaults,
                    validation_rule,
                    default_threshold,
                ) {
                    routes.push(route);
                }
            }
        }

        let ip_lists = self.named_list(top, "ip_lists", "IP list", |cx, v, p| {
            cx.ip_list(v, p, &route_index)
        });
        let limits = self.named_list(top, "rate_limits", "rate limit", |cx, v, p| {
            cx.any_rate_limit(v, p, &route_index)
        });
        let (mut rate_limits, mut global_limits) = (Vec::new(), Vec::new());
        for l in limits {
            match l {
                AnyLimit::Local(l) => rate_limits.push(l),
                AnyLimit::Global(g) => global_limits.push(g),
            }
        }
        let bans = self.named_list(top, "bans", "ban", |cx, v, p| cx.ban(v, p, &route_index));
        let all_routes = top
            .get("routes")
            .and_then(Value::as_array)
            .is_some_and(|l| l.len() == routes.len());
        let compiled = all_routes.then_some(routes.as_slice());
        let enumerations = self.named_list(top, "enumeration", "enumeration rule", |cx, v, p| {
            cx.enumeration(v, p, &route_index, compiled)
        });

        Some(Policy {
            version: version?,
            edge: edge?,
            default_deny,
            routing_rule,
            client_address_rule,
            trusted_hops: usize::try_from(trusted_hops).ok()?,
            trusted_proxies,
            ip_lists,
            routes,
            rate_limits,
            global_limits,
            bans,
            detection,
            enumerations,
            rules: std::mem::take(&mut self.rules),
        })
    }

    /// The required `name` and `key` of a keyed rule (rate limit, ban, enumeration).
    fn name_and_key(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
    ) -> (Option<String>, Vec<KeyPart>) {
        let name = self
            .required(m, path, "name")
            .and_then(|n| self.name(n, &join(path, "name")));
        let key = match self.required(m, path, "key") {
            Some(k) => self.key_parts(k, &join(path, "key")),
            None => Vec::new(),
        };
        (name, key)
    }

    fn key_parts(&mut self, v: &Value, path: &str) -> Vec<KeyPart> {
        let mut out = Vec::new();
        let Some(list) = self.array(v, path) else {
            return out;
        };
        if list.is_empty() {
            self.err(path, "a key needs at least one part");
        }
        for (i, item) in list.iter().enumerate() {
            let p = index(path, i);
            let part = match item {
                Value::String(s) if s == "client_ip" => Some(KeyPart::ClientIp),
                Value::String(s) if s == "peer_identity" => Some(KeyPart::PeerIdentity),
                Value::Object(_) if item.get("header").is_some() && item.get("claim").is_none() => {
                    let _ = self.object(item, &p, &["header"]);
                    item.get("header")
                        .and_then(|h| self.header_name(h, &join(&p, "header")))
                        .map(KeyPart::Header)
                }
                Value::Object(_) if item.get("body_field").is_some() => {
                    let _ = self.object(item, &p, &["body_field"]);
                    item.get("body_field").and_then(|f| {
                        let fp = join(&p, "body_field");
                        let s = self.string(f, &fp)?;
                        if s.is_empty() || s.len() > 64 {
                            self.err(&fp, "expected a field name of 1 to 64 characters");
                            return None;
                        }
                        Some(KeyPart::BodyField(s.to_string()))
                    })
                }
                Value::Object(_) if item.get("claim").is_some() => {
                    let m = self.object(item, &p, &["claim", "header"]);
                    let claim = item.get("claim").and_then(|c| {
                        let cp = join(&p, "claim");
                        let s = self.string(c, &cp)?;
                        if s.is_empty() || s.len() > 64 {
                            self.err(&cp, "expected a claim name of 1 to 64 characters");
                            return None;
                        }
                        Some(s.to_string())
                    });
                    let header = match m.and_then(|m| m.get("header")) {
                        Some(h) => self.header_name(h, &join(&p, "header")),
                        None => Some("x-jwt-payload".to_string()),
                    };
                    match (claim, header) {
                        (Some(claim), Some(header)) => Some(KeyPart::Claim { header, claim }),
                        _ => None,
                    }
                }
                _ => {
                    self.err(
                        &p,
                        "expected \"client_ip\", \"peer_identity\", {\"header\": NAME}, {\"claim\": NAME, \"header\": NAME} or {\"body_field\": NAME}",
                    );
                    None
                }
            };
            if let Some(part) = part {
                if out.contains(&part) {
                    self.err(&p, "this key part is listed twice");
                } else {
                    out.push(part);
                }
            }
        }
        out
    }

    fn failure_mode(&mut self, m: &Map<String, Value>, path: &str) -> FailureMode {
        self.choice(
            m,
            path,
            "on_failure",
            "failure mode",
            &[("open", FailureMode::Open), ("closed", FailureMode::Closed)],
            FailureMode::Open,
        )
    }

    fn max_keys(&mut self, m: &Map<String, Value>, path: &str) -> u32 {
        match m.get("max_keys") {
            None => DEFAULT_MAX_KEYS,
            Some(v) => {
                let p = join(path, "max_keys");
                match self.uint(v, &p, u64::from(MAX_MAX_KEYS)) {
                    // Rounded up to whole blocks, so no block is too short for a key's ways.
                    Some(n) if n >= WAYS as u64 => (n as u32).div_ceil(BLOCK as u32) * BLOCK as u32,
                    Some(_) => {
                        self.err(&p, format!("max_keys must be at least {WAYS}"));
                        DEFAULT_MAX_KEYS
                    }
                    None => DEFAULT_MAX_KEYS,
                }
            }
        }
    }

    /// A rate limit, counted here (`scope: local`, the default) or by a rate-limit service
    /// (`scope: global`).
    fn any_rate_limit(
        &mut self,
        v: &Value,
        path: &str,
        route_index: &HashMap<String, usize>,
    ) -> Option<AnyLimit> {
        let scope = match v.get("scope") {
            None => Some(false),
            Some(s) => match s.as_str() {
                Some("local") => Some(false),
                Some("global") => Some(true),
                _ => {
                    self.err(
                        &join(path, "scope"),
                        "unknown scope; expected \"local\" or \"global\"",
                    );
                    None
                }
            },
        };
        match scope {
            Some(true) => self
                .global_limit(v, path, route_index)
                .map(AnyLimit::Global),
            Some(false) => self.rate_limit(v, path, route_index).map(AnyLimit::Local),
            // Still read as a local limit, for its other errors; the policy is refused anyway.
            None => {
                let _ = self.rate_limit(v, path, route_index);
                None
            }
        }
    }

    fn global_limit(
        &mut self,
        v: &Value,
        path: &str,
        route_index: &HashMap<String, usize>,
    ) -> Option<GlobalLimit> {
        let m = self.object(
            v,
            path,
            &[
                "name",
                "scope",
                "key",
                "rate",
                "cost",
                "routes",
                "service",
                "on_failure",
                "mode",
            ],
        )?;
        for local_only in ["burst", "max_keys"] {
            if m.contains_key(local_only) {
                self.err(
                    &join(path, local_only),
                    format!("a global limit has no {local_only}: the rate-limit service counts it (fixed windows, no per-proxy table)"),
                );
            }
        }
        let (name, key) = self.name_and_key(m, path);
        let rate = match m.get("rate") {
            None => Some(None),
            Some(r) => {
                let p = join(path, "rate");
                self.string(r, &p).and_then(|s| match parse_rate(s) {
                    Err(e) => {
                        self.err(&p, e);
                        None
                    }
                    Ok((n, period)) => match (global::Unit::of_period(period), u32::try_from(n)) {
                        (Some(unit), Ok(n)) => Some(Some((n, unit))),
                        _ => {
                            self.err(
                                &p,
                                format!("{s:?}: a global rate is counted in windows of one second, minute, hour or day; write e.g. \"100/min\""),
                            );
                            None
                        }
                    },
                })
            }
        };
        let cost = match m.get("cost") {
            Some(c) => self
                .uint(c, &join(path, "cost"), u64::from(u32::MAX))
                .unwrap_or(1),
            None => 1,
        };
        if cost == 0 {
            self.err(&join(path, "cost"), "a request's cost must be at least 1");
        }
        let routes = m
            .get("routes")
            .map(|r| self.weighted_routes(r, &join(path, "routes"), route_index, cost));
        if routes.iter().flatten().flatten().any(|(_, c)| *c == 0) {
            self.err(&join(path, "routes"), "a request's cost must be at least 1");
        }
        let service = self
            .required(m, path, "service")
            .and_then(|s| self.rls_service(s, &join(path, "service")));
        let on_failure = self.failure_mode(m, path);
        let mode = self.mode(m, path);
        let name = name?;
        let (cluster, domain, timeout_ms) = service?;
        let rule = self.rule(format!("rate_limit.{name}"), mode);
        Some(GlobalLimit {
            name,
            rule,
            mode,
            key,
            routes: match routes {
                Some(r) => Some(r?),
                None => None,
            },
            cost,
            cluster,
            domain,
            timeout_ms,
            rate: rate?,
            on_failure,
        })
    }

    /// A global limit's `service`: `{cluster, domain, timeout}`.
    fn rls_service(&mut self, v: &Value, path: &str) -> Option<(String, String, u32)> {
        let m = self.object(v, path, &["cluster", "domain", "timeout"])?;
        let cluster = self.required(m, path, "cluster").and_then(|c| {
            let p = join(path, "cluster");
            let s = self.string(c, &p)?;
            // Printable ASCII (Istio's `outbound|8081||host` included), at most 120 bytes: the
            // GrpcService the filter wraps it in stays ASCII.
            let ok = !s.is_empty() && s.len() <= 120 && s.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                self.err(&p, format!("{s:?} is not a cluster name Tollgate accepts (1 to 120 printable ASCII characters, no spaces)"));
            }
            ok.then(|| s.to_owned())
        });
        let domain = self.required(m, path, "domain").and_then(|d| {
            let p = join(path, "domain");
            let s = self.string(d, &p)?;
            let ok = !s.is_empty() && s.len() <= 255 && !s.bytes().any(|b| b.is_ascii_control());
            if !ok {
                self.err(
                    &p,
                    "a domain is 1 to 255 characters, none of them control characters",
                );
            }
            ok.then(|| s.to_owned())
        });
        let timeout = match m.get("timeout") {
            None => Some(global::DEFAULT_TIMEOUT_MS),
            Some(t) => {
                let p = join(path, "timeout");
                let ms = self.string(t, &p).and_then(parse_millis);
                match ms {
                    Some(ms) if (1..=global::MAX_TIMEOUT_MS).contains(&ms) => Some(ms),
                    _ => {
                        self.err(
                            &p,
                            format!(
                                "expected a timeout from 1ms to {}ms, e.g. \"20ms\" or \"1s\"",
                                global::MAX_TIMEOUT_MS
                            ),
                        );
                        None
                    }
                }
            }
        };
        Some((cluster?, domain?, timeout?))
    }

    fn rate_limit(
        &mut self,
        v: &Value,
        path: &str,
        route_index: &HashMap<String, usize>,
    ) -> Option<RateLimit> {
        let m = self.object(
            v,
            path,
            &[
                "name",
                "scope",
                "key",
                "rate",
                "burst",
                "cost",
                "routes",
                "max_keys",
                "on_failure",
                "mode",
            ],
        )?;
        let (name, key) = self.name_and_key(m, path);
        let rate = self.required(m, path, "rate").and_then(|r| {
            let p = join(path, "rate");
            let s = self.string(r, &p)?;
            parse_rate(s).map_err(|e| self.err(&p, e)).ok()
        });
        let burst = self
            .required(m, path, "burst")
            .and_then(|b| self.uint(b, &join(path, "burst"), MAX_BURST));
        if burst == Some(0) {
            self.err(&join(path, "burst"), "burst must be at least 1");
        }
        let cost = match m.get("cost") {
            Some(c) => self.uint(c, &join(path, "cost"), MAX_BURST).unwrap_or(1),
            None => 1,
        };
        let routes = m
            .get("routes")
            .map(|r| self.weighted_routes(r, &join(path, "routes"), route_index, cost));
        let route_costs = routes.iter().flatten().flatten().map(|(_, c)| *c);
        for (i, c) in std::iter::once(cost).chain(route_costs).enumerate() {
            if c == 0 || burst.is_some_and(|b| c > b) {
                let p = if i == 0 {
                    join(path, "cost")
                } else {
                    join(path, "routes")
                };
                self.err(
                    &p,
                    "a request's cost must be from 1 to the burst, or it could never be admitted",
                );
                break;
            }
        }
        let max_keys = self.max_keys(m, path);
        let on_failure = self.failure_mode(m, path);
        let mode = self.mode(m, path);
        let name = name?;
        let (requests, period_secs) = rate?;
        let interval = (period_secs * 1_000_000_000 / requests).max(1);
        // The burst's time must fit in the clock's range (it would saturate and admit anything).
        if burst.is_some_and(|b| {
            b.checked_mul(interval)
                .is_none_or(|t| t > 100 * 365 * 86_400 * 1_000_000_000)
        }) {
            self.err(
                &join(path, "burst"),
                "burst × (period / rate) is over 100 years: lower the burst or raise the rate",
            );
            return None;
        }
        let rule = self.rule(format!("rate_limit.{name}"), mode);
        Some(RateLimit {
            name,
            rule,
            mode,
            key,
            requests,
            period_secs,
            interval,
            burst: burst.filter(|b| *b > 0)?,
            routes: match routes {
                Some(r) => Some(r?),
                None => None,
            },
            cost,
            max_keys,
            on_failure,
        })
    }

    /// A list of route names, or `{route: NAME, cost: N}`; `None` if a name is unknown.
    fn weighted_routes(
        &mut self,
        v: &Value,
        path: &str,
        route_index: &HashMap<String, usize>,
        cost: u64,
    ) -> Option<Vec<(usize, u64)>> {
        let list = self.array(v, path)?;
        if list.is_empty() {
            self.err(path, "routes, when given, must name at least one route");
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in list.iter().enumerate() {
            let p = index(path, i);
            let (name, c) = match item {
                Value::Object(_) => {
                    let Some(m) = self.object(item, &p, &["route", "cost"]) else {
                        ok = false;
                        continue;
                    };
                    let name = self
                        .required(m, &p, "route")
                        .and_then(|n| self.string(n, &join(&p, "route")));
                    let c = match m.get("cost") {
                        Some(c) => self.uint(c, &join(&p, "cost"), MAX_BURST),
                        None => Some(cost),
                    };
                    (name, c)
                }
                _ => (self.string(item, &p), Some(cost)),
            };
            match (name.map(|n| (n, route_index.get(n))), c) {
                (Some((_, Some(idx))), Some(c)) => out.push((*idx, c)),
                (Some((n, None)), _) => {
                    self.err(&p, format!("no route named {n:?}"));
                    ok = false;
                }
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn route_names_list(
        &mut self,
        v: &Value,
        path: &str,
        route_index: &HashMap<String, usize>,
    ) -> Option<Vec<usize>> {
        self.weighted_routes(v, path, route_index, 1)
            .map(|l| l.into_iter().map(|(i, _)| i).collect())
    }

    fn ban(&mut self, v: &Value, path: &str, route_index: &HashMap<String, usize>) -> Option<Ban> {
        let m = self.object(
            v,
            path,
            &[
                "name",
                "key",
                "routes",
                "statuses",
                "threshold",
                "window",
                "duration",
                "max_keys",
                "on_failure",
                "mode",
            ],
        )?;
        let (name, key) = self.name_and_key(m, path);
        let routes = m
            .get("routes")
            .map(|r| self.route_names_list(r, &join(path, "routes"), route_index));
        let mut statuses = Vec::new();
        if let Some(list) = self
            .required(m, path, "statuses")
            .and_then(|s| self.array(s, &join(path, "statuses")))
        {
            if list.is_empty() {
                self.err(&join(path, "statuses"), "name at least one status");
            }
            for (i, s) in list.iter().enumerate() {
                let p = index(&join(path, "statuses"), i);
                match self.uint(s, &p, 599) {
                    Some(code) if code >= 100 => statuses.push(code as u16),
                    Some(_) => self.err(&p, "expected an HTTP status from 100 to 599"),
                    None => {}
                }
            }
        }
        let threshold = self
            .required(m, path, "threshold")
            .and_then(|t| self.uint(t, &join(path, "threshold"), 1_000_000));
        if threshold == Some(0) {
            self.err(&join(path, "threshold"), "threshold must be at least 1");
        }
        let window = self
            .required(m, path, "window")
            .and_then(|w| self.duration(w, &join(path, "window")));
        let duration = self
            .required(m, path, "duration")
            .and_then(|d| self.duration(d, &join(path, "duration")));
        let max_keys = self.max_keys(m, path);
        let on_failure = self.failure_mode(m, path);
        let mode = self.mode(m, path);
        let name = name?;
        let rule = self.rule(format!("ban.{name}"), mode);
        Some(Ban {
            name,
            rule,
            mode,
            key,
            routes: match routes {
                Some(r) => Some(r?),
                None => None,
            },
            statuses,
            threshold: threshold.filter(|t| *t > 0)? as u32,
            window: window?,
            duration: duration?,
            max_keys,
            on_failure,
        })
    }

    /// A duration as `"30s"`, `"5m"`, `"1h"`, `"1d"`, in nanoseconds; 1 s to 30 days.
    fn duration(&mut self, v: &Value, path: &str) -> Option<u64> {
        let s = self.string(v, path)?;
        match parse_duration_secs(s) {
            Some(secs) if (1..=30 * 86_400).contains(&secs) => Some(secs * 1_000_000_000),
            _ => {
                self.err(
                    path,
                    format!("{s:?} is not a duration from 1s to 30d (write e.g. \"30s\", \"5m\", \"1h\")"),
                );
                None
            }
        }
    }

    fn route(
        &mut self,
        v: &Value,
        path: &str,
        defaults: validation::Defaults,
        validation_rule: RuleId,
        default_threshold: Option<u32>,
    ) -> Option<Route> {
        let m = self.object(
            v,
            path,
            &[
                "name",
                "hosts",
                "path",
                "methods",
                "required_headers",
                "rate_limit_headers",
                "validate",
                "detection",
                "mode",
            ],
        )?;
        let name = self
            .required(m, path, "name")
            .and_then(|n| self.name(n, &join(path, "name")));
        let rate_limit_headers = match m.get("rate_limit_headers") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.err(
                    &join(path, "rate_limit_headers"),
                    format!("expected true or false, found {}", kind(other)),
                );
                true
            }
        };

        let mut hosts = Vec::new();
        if let Some(h) = m.get("hosts") {
            let hp = join(path, "hosts");
            if let Some(list) = self.array(h, &hp) {
                if list.is_empty() {
                    self.err(
                        &hp,
                        "hosts, when given, must name at least one host (\"*\" for any)",
                    );
                }
                for (i, h) in list.iter().enumerate() {
                    let p = index(&hp, i);
                    if let Some(s) = self.string(h, &p) {
                        match host_pattern(s) {
                            Ok(Some(pat)) => hosts.push(pat),
                            Ok(None) if list.len() == 1 => {}
                            Ok(None) => self.err(
                                &p,
                                "\"*\" matches every host; it cannot be combined with other hosts",
                            ),
                            Err(e) => self.err(&p, e),
                        }
                    }
                }
            }
        }

        let template = self.required(m, path, "path").and_then(|t| {
            let p = join(path, "path");
            let s = self.string(t, &p)?;
            PathTemplate::parse(s).map_err(|e| self.err(&p, e)).ok()
        });

        let mut methods = 0u16;
        if let Some(list) = self.required(m, path, "methods").and_then(|v| {
            let p = join(path, "methods");
            self.array(v, &p)
        }) {
            let mp = join(path, "methods");
            if list.is_empty() {
                self.err(&mp, "a route needs at least one method");
            }
            for (i, v) in list.iter().enumerate() {
                let p = index(&mp, i);
                let Some(s) = self.string(v, &p) else {
                    continue;
                };
                match method_bit(s) {
                    Some(bit) if methods & bit != 0 => {
                        self.err(&p, format!("method {s:?} is listed twice"))
                    }
                    Some(bit) => methods |= bit,
                    None => self.err(&p, format!("unknown method {s:?}")),
                }
            }
        }

        let mut required = Vec::new();
        if let Some(v) = m.get("required_headers") {
            let rp = join(path, "required_headers");
            if let Some(list) = self.array(v, &rp) {
                for (i, item) in list.iter().enumerate() {
                    let p = index(&rp, i);
                    if let Some(req) = self.header_requirement(item, &p) {
                        required.push(req);
                    }
                }
            }
        }
        let mode = self.mode(m, path);

        let validation = self.route_validation(
            m.get("validate"),
            path,
            name.as_deref().unwrap_or("unnamed"),
            template.as_ref(),
            defaults,
            validation_rule,
        );
        let detection = match self.route_detection(m.get("detection"), path) {
            None => default_threshold,
            Some(None) => None,
            Some(Some(t)) => {
                if default_threshold.is_none() {
                    self.err(
                        &join(path, "detection"),
                        "this policy has no top-level detection block to set a threshold for",
                    );
                }
                Some(t)
            }
        };
        let name = name?;
        let headers_rule = if required.is_empty() {
            None
        } else {
            Some(self.rule(format!("route.{name}.required_headers"), mode))
        };
        Some(Route {
            name,
            hosts,
            path: template?,
            methods,
            required,
            headers_rule,
            rate_limit_headers,
            validation,
            detection,
        })
    }

    fn header_name(&mut self, v: &Value, path: &str) -> Option<String> {
        let s = self.string(v, path)?;
        if s.starts_with(':') {
            self.err(
                path,
                format!("{s:?} is a pseudo-header; it cannot be required"),
            );
            None
        } else if !is_token(s) {
            self.err(path, format!("{s:?} is not a valid header name"));
            None
        } else {
            Some(s.to_ascii_lowercase())
        }
    }

    fn header_requirement(&mut self, v: &Value, path: &str) -> Option<HeaderRequirement> {
        if v.is_string() {
            let name = self.header_name(v, path)?;
            return Some(HeaderRequirement { any_of: vec![name] });
        }
        if !v.is_object() {
            self.err(
                path,
                format!(
                    "expected a header name or {{\"any_of\": [...]}}, found {}",
                    kind(v)
                ),
            );
            return None;
        }
        let m = self.object(v, path, &["any_of"])?;
        let ap = join(path, "any_of");
        let list = self
            .required(m, path, "any_of")
            .and_then(|l| self.array(l, &ap))?;
        if list.len() < 2 {
            self.err(&ap, "any_of needs at least two header names");
        }
        let mut any_of = Vec::new();
        for (i, h) in list.iter().enumerate() {
            if let Some(name) = self.header_name(h, &index(&ap, i)) {
                any_of.push(name);
            }
        }
        Some(HeaderRequirement { any_of })
    }

    /// A non-empty list of CIDR blocks.
    fn cidrs(&mut self, v: &Value, path: &str) -> Vec<Cidr> {
        let mut out = Vec::new();
        let Some(list) = self.array(v, path) else {
            return out;
        };
        if list.is_empty() {
            self.err(path, "the list needs at least one CIDR block");
        }
        for (i, c) in list.iter().enumerate() {
            let p = index(path, i);
            if let Some(s) = self.string(c, &p) {
                match s.parse::<Cidr>() {
                    Ok(c) => out.push(c),
                    Err(e) => self.err(&p, e),
                }
            }
        }
        out
    }

    fn ip_list(
        &mut self,
        v: &Value,
        path: &str,
        route_index: &HashMap<String, usize>,
    ) -> Option<IpList> {
        let m = self.object(v, path, &["name", "action", "mode", "cidrs", "routes"])?;
        let name = self
            .required(m, path, "name")
            .and_then(|n| self.name(n, &join(path, "name")));
        let allow = self.required(m, path, "action").and_then(|a| {
            let p = join(path, "action");
            match self.string(a, &p)? {
                "allow" => Some(true),
                "deny" => Some(false),
                other => {
                    self.err(
                        &p,
                        format!("unknown action {other:?}; expected \"allow\" or \"deny\""),
                    );
                    None
                }
            }
        });
        let mode = self.mode(m, path);

        let cidrs = match self.required(m, path, "cidrs") {
            Some(c) => self.cidrs(c, &join(path, "cidrs")),
            None => Vec::new(),
        };

        let mut routes = None;
        if let Some(r) = m.get("routes") {
            let rp = join(path, "routes");
            if let Some(list) = self.array(r, &rp) {
                if list.is_empty() {
                    self.err(&rp, "routes, when given, must name at least one route");
                }
                let mut idx = Vec::new();
                for (i, r) in list.iter().enumerate() {
                    let p = index(&rp, i);
                    if let Some(s) = self.string(r, &p) {
                        match route_index.get(s) {
                            Some(&ri) => idx.push(ri),
                            None => self.err(&p, format!("no route is named {s:?}")),
                        }
                    }
                }
                routes = Some(idx);
            }
        }

        let rule = self.rule(format!("ip_list.{}", name?), mode);
        Some(IpList {
            rule,
            allow: allow?,
            cidrs,
            routes,
        })
    }
}

/// `*` (any host: `Ok(None)`), `*.example.com`, or an exact host name.
fn host_pattern(s: &str) -> Result<Option<HostPattern>, String> {
    if s == "*" {
        return Ok(None);
    }
    let (suffix, name) = match s.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !name.starts_with('.')
        && !name.ends_with('.');
    if !valid {
        return Err(format!(
            "{s:?} is not a host name (a name such as api.example.com, or *.example.com)"
        ));
    }
    let name = name.to_ascii_lowercase();
    Ok(Some(if suffix {
        HostPattern::Suffix(format!(".{name}"))
    } else {
        HostPattern::Exact(name)
    }))
}

mod crs;
mod detection;
#[cfg(test)]
mod tests;
mod validation;
