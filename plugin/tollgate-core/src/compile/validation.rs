//! The `validation` defaults and each route's `validate` block.

use serde_json::{Map, Value};

use super::{index, join, kind, Cx};
use crate::validate::{JsonLimits, Param, Pattern, RouteValidation, Schema, Sizes, ValueType};
use crate::{Mode, PathTemplate, RuleId};

/// Caps a policy may set: large enough for any API, small enough that a typo is caught.
const MAX_SIZE: u64 = 64 * 1024 * 1024;

/// What every route starts from.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Defaults {
    pub(super) max: Sizes,
    pub(super) json: JsonLimits,
}

impl Cx {
    /// The top-level `validation` object: `max` and `json` defaults for every route.
    pub(super) fn validation_defaults(&mut self, v: Option<&Value>) -> Defaults {
        let mut d = Defaults::default();
        let Some(v) = v else { return d };
        let Some(m) = self.object(v, "validation", &["max", "json"]) else {
            return d;
        };
        if let Some(x) = m.get("max") {
            d.max = self.sizes(x, "validation.max", d.max);
        }
        if let Some(x) = m.get("json") {
            d.json = self.json_limits(x, "validation.json", d.json);
        }
        d
    }

    fn size(&mut self, m: &Map<String, Value>, path: &str, key: &str, base: usize) -> usize {
        match m.get(key) {
            None => base,
            Some(v) => match self.uint(v, &join(path, key), MAX_SIZE) {
                Some(0) => {
                    self.err(&join(path, key), "must be at least 1");
                    base
                }
                Some(n) => n as usize,
                None => base,
            },
        }
    }

    fn sizes(&mut self, v: &Value, path: &str, base: Sizes) -> Sizes {
        let Some(m) = self.object(
            v,
            path,
            &["path", "query", "headers", "header_bytes", "body"],
        ) else {
            return base;
        };
        Sizes {
            path: self.size(m, path, "path", base.path),
            query: self.size(m, path, "query", base.query),
            headers: self.size(m, path, "headers", base.headers),
            header_bytes: self.size(m, path, "header_bytes", base.header_bytes),
            body: self.size(m, path, "body", base.body),
        }
    }

    fn json_limits(&mut self, v: &Value, path: &str, base: JsonLimits) -> JsonLimits {
        let Some(m) = self.object(v, path, &["depth", "array", "keys", "string"]) else {
            return base;
        };
        let depth = self.size(m, path, "depth", base.depth);
        if depth > 64 {
            self.err(&join(path, "depth"), "depth may be at most 64");
        }
        JsonLimits {
            depth: depth.min(64),
            array: self.size(m, path, "array", base.array),
            keys: self.size(m, path, "keys", base.keys),
            string: self.size(m, path, "string", base.string),
        }
    }

    /// A typed parameter: `{type: ..., required?, and the type's own fields}`.
    fn param(&mut self, v: &Value, path: &str) -> Option<Param> {
        let m = self.object(
            v,
            path,
            &[
                "type",
                "required",
                "min",
                "max",
                "values",
                "min_length",
                "max_length",
                "pattern",
                "check_digit",
            ],
        )?;
        let required = match m.get("required") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.err(
                    &join(path, "required"),
                    format!("expected true or false, found {}", kind(other)),
                );
                false
            }
        };
        let tp = join(path, "type");
        let ty_name = self
            .required(m, path, "type")
            .and_then(|t| self.string(t, &tp))?;
        let allowed: &[&str] = match ty_name {
            "integer" => &["min", "max"],
            "enum" => &["values"],
            "string" => &["min_length", "max_length", "pattern"],
            "vin" => &["check_digit"],
            "uuid" | "date" | "date-time" => &[],
            other => {
                self.err(
                    &tp,
                    format!("unknown type {other:?}; expected integer, enum, string, uuid, date, date-time or vin"),
                );
                return None;
            }
        };
        for key in m.keys() {
            if !["type", "required"].contains(&key.as_str()) && !allowed.contains(&key.as_str()) {
                self.err(&join(path, key), format!("not a field of type {ty_name:?}"));
            }
        }
        let int = |cx: &mut Cx, key: &str| -> Option<i64> {
            let v = m.get(key)?;
            // A protobuf Struct (Istio's pluginConfig) carries every number as a double.
            let whole = v.as_i64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            });
            match whole {
                Some(n) => Some(n),
                None => {
                    cx.err(&join(path, key), "expected a whole number");
                    None
                }
            }
        };
        let ty = match ty_name {
            "integer" => {
                let (min, max) = (
                    int(self, "min").unwrap_or(i64::MIN),
                    int(self, "max").unwrap_or(i64::MAX),
                );
                if min > max {
                    self.err(path, "min is greater than max");
                }
                ValueType::Integer { min, max }
            }
            "enum" => {
                let vp = join(path, "values");
                let list = self
                    .required(m, path, "values")
                    .and_then(|l| self.array(l, &vp))?;
                if list.is_empty() {
                    self.err(&vp, "name at least one value");
                }
                let mut values = Vec::new();
                for (i, x) in list.iter().enumerate() {
                    if let Some(s) = self.string(x, &index(&vp, i)) {
                        values.push(s.to_owned());
                    }
                }
                ValueType::Enum(values)
            }
            "string" => {
                let min = m
                    .get("min_length")
                    .and_then(|v| self.uint(v, &join(path, "min_length"), MAX_SIZE))
                    .unwrap_or(0) as usize;
                let max = m
                    .get("max_length")
                    .and_then(|v| self.uint(v, &join(path, "max_length"), MAX_SIZE))
                    .unwrap_or(256) as usize;
                if min > max {
                    self.err(path, "min_length is greater than max_length");
                }
                let pattern = match m.get("pattern") {
                    None => None,
                    Some(p) => {
                        let pp = join(path, "pattern");
                        let s = self.string(p, &pp)?;
                        match Pattern::new(s) {
                            Ok(p) => Some(p),
                            Err(e) => {
                                self.err(&pp, e);
                                None
                            }
                        }
                    }
                };
                ValueType::Text { min, max, pattern }
            }
            "vin" => ValueType::Vin {
                check_digit: match m.get("check_digit") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        self.err(&join(path, "check_digit"), "expected true or false");
                        false
                    }
                },
            },
            "uuid" => ValueType::Uuid,
            "date" => ValueType::Date,
            _ => ValueType::DateTime,
        };
        Some(Param { ty, required })
    }

    fn params(&mut self, v: &Value, path: &str, header_names: bool) -> Vec<(String, Param)> {
        let mut out = Vec::new();
        let Some(m) = v.as_object() else {
            self.err(
                path,
                format!("expected an object of parameters, found {}", kind(v)),
            );
            return out;
        };
        for (name, spec) in m {
            let p = join(path, name);
            let name = if header_names {
                match self.header_name(&Value::String(name.clone()), &p) {
                    Some(n) => n,
                    None => continue,
                }
            } else {
                name.clone()
            };
            if let Some(param) = self.param(spec, &p) {
                out.push((name, param));
            }
        }
        out
    }

    /// A route's `validate` block (or the defaults, under the policy-wide `validation` rule).
    pub(super) fn route_validation(
        &mut self,
        v: Option<&Value>,
        path: &str,
        route: &str,
        template: Option<&PathTemplate>,
        d: Defaults,
        default_rule: RuleId,
    ) -> RouteValidation {
        let mut rv = RouteValidation {
            rule: default_rule,
            mode: Mode::Enforce,
            path: Vec::new(),
            query: Vec::new(),
            refuse_unknown_query: false,
            headers: Vec::new(),
            content_types: Vec::new(),
            max: d.max,
            json: d.json,
            schema: None,
        };
        let Some(v) = v else { return rv };
        let vp = join(path, "validate");
        let Some(m) = self.object(
            v,
            &vp,
            &[
                "mode",
                "path",
                "query",
                "headers",
                "content_types",
                "max",
                "json",
                "schema",
            ],
        ) else {
            return rv;
        };
        rv.mode = self.mode(m, &vp);
        rv.rule = self.rule(format!("route.{route}.validation"), rv.mode);
        if let Some(x) = m.get("path") {
            let pp = join(&vp, "path");
            for (name, p) in self.params(x, &pp, false) {
                if template.is_some_and(|t| !t.param_names().any(|n| n == name)) {
                    self.err(
                        &join(&pp, &name),
                        format!("the route's path has no parameter {{{name}}}"),
                    );
                }
                if p.required {
                    self.err(
                        &join(&pp, &name),
                        "path parameters are always required; leave out `required`",
                    );
                }
                rv.path.push((name, p.ty));
            }
        }
        if let Some(x) = m.get("query") {
            let qp = join(&vp, "query");
            if let Some(q) = self.object(x, &qp, &["unknown", "params"]) {
                rv.refuse_unknown_query = self.choice(
                    q,
                    &qp,
                    "unknown",
                    "choice",
                    &[("refuse", true), ("allow", false)],
                    false,
                );
                if let Some(ps) = q.get("params") {
                    rv.query = self.params(ps, &join(&qp, "params"), false);
                }
            }
        }
        if let Some(x) = m.get("headers") {
            rv.headers = self.params(x, &join(&vp, "headers"), true);
        }
        if let Some(x) = m.get("content_types") {
            let cp = join(&vp, "content_types");
            if let Some(list) = self.array(x, &cp) {
                for (i, t) in list.iter().enumerate() {
                    let p = index(&cp, i);
                    if let Some(s) = self.string(t, &p) {
                        let ok = s.split_once('/').is_some_and(|(a, b)| {
                            !a.is_empty() && !b.is_empty() && !s.contains([';', ' '])
                        });
                        if ok {
                            rv.content_types.push(s.to_ascii_lowercase());
                        } else {
                            self.err(
                                &p,
                                format!("{s:?} is not a media type such as application/json"),
                            );
                        }
                    }
                }
            }
        }
        if let Some(x) = m.get("max") {
            rv.max = self.sizes(x, &join(&vp, "max"), rv.max);
        }
        if let Some(x) = m.get("json") {
            rv.json = self.json_limits(x, &join(&vp, "json"), rv.json);
        }
        if let Some(x) = m.get("schema") {
            let mut errors = Vec::new();
            let s = Schema::compile(x, &join(&vp, "schema"), &mut errors);
            for (p, e) in errors {
                self.err(&p, e);
            }
            rv.schema = Some(s);
        }
        rv
    }
}
