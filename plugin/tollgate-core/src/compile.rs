//! From JSON to a compiled [`Policy`]: one walk over the document that checks every field,
//! collects *every* error with its path, and builds the immutable policy when there are none.
//!
//! The walk works on `serde_json::Value` rather than derived `Deserialize` types because serde
//! stops at the first error, and a policy author should see all of them in one go.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::structpb::decode_struct;
use crate::{
    cidr::Cidr, method_bit, HeaderRequirement, HostPattern, IpList, Mode, PathTemplate, Policy,
    PolicyError, Route, Rule, RuleId,
};

/// Policies compiled into the plugin, by name (`retail`, `dealer`).
pub type Embedded<'a> = &'a [(&'a str, &'a str)];

/// Most hops of trusted proxies a policy may declare.
const MAX_TRUSTED_HOPS: u64 = 10;

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

    fn mode(&mut self, map: &Map<String, Value>, path: &str) -> Mode {
        let Some(v) = map.get("mode") else {
            return Mode::Enforce;
        };
        let p = join(path, "mode");
        match self.string(v, &p) {
            Some("enforce") => Mode::Enforce,
            Some("shadow") => Mode::Shadow,
            Some(other) => {
                self.err(
                    &p,
                    format!("unknown mode {other:?}; expected \"enforce\" or \"shadow\""),
                );
                Mode::Enforce
            }
            None => Mode::Enforce,
        }
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
            Some(v) => {
                match self.object(v, "routing", &["default", "mode"]) {
                    Some(m) => {
                        let deny = match m.get("default") {
                            None => true,
                            Some(d) => match self.string(d, "routing.default") {
                                Some("deny") => true,
                                Some("allow") => false,
                                Some(other) => {
                                    self.err(
                                    "routing.default",
                                    format!("unknown default {other:?}; expected \"deny\" or \"allow\""),
                                );
                                    true
                                }
                                None => true,
                            },
                        };
                        (deny, self.mode(m, "routing"))
                    }
                    None => (true, Mode::Enforce),
                }
            }
        };
        let routing_rule = self.rule("routing".into(), routing_mode);

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
                if let Some(route) = self.route(r, &index("routes", i)) {
                    routes.push(route);
                }
            }
        }

        let mut ip_lists = Vec::new();
        if let Some(v) = top.get("ip_lists") {
            if let Some(list) = self.array(v, "ip_lists") {
                self.unique_names(list, "ip_lists", "IP list");
                for (i, l) in list.iter().enumerate() {
                    if let Some(ip_list) = self.ip_list(l, &index("ip_lists", i), &route_index) {
                        ip_lists.push(ip_list);
                    }
                }
            }
        }

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
            rules: std::mem::take(&mut self.rules),
        })
    }

    fn route(&mut self, v: &Value, path: &str) -> Option<Route> {
        let m = self.object(
            v,
            path,
            &[
                "name",
                "hosts",
                "path",
                "methods",
                "required_headers",
                "mode",
            ],
        )?;
        let name = self
            .required(m, path, "name")
            .and_then(|n| self.name(n, &join(path, "name")));

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

#[cfg(test)]
mod tests;
