//! The `detection` block, a route's `detection` override, and the `enumeration` rules.

use std::collections::HashMap;

use serde_json::Value;

use super::{index, join, kind, Cx};
use crate::detect::{Class, Detection, Engines};
use crate::enumeration::{Enumeration, ValueSource, MAX_DISTINCT};
use crate::{Mode, Route, RuleId};

/// Highest threshold a policy may set (every detector at once scores far less).
const MAX_THRESHOLD: u64 = 1000;

impl Cx {
    /// The top-level `detection` block; `None` when absent (detection off).
    pub(super) fn detection(&mut self, v: Option<&Value>) -> Option<Detection> {
        let v = v?;
        let path = "detection";
        let m = self.object(
            v,
            path,
            &["threshold", "mode", "detectors", "headers", "crs"],
        )?;
        let threshold = match m.get("threshold") {
            None => 5,
            Some(t) => match self.uint(t, &join(path, "threshold"), MAX_THRESHOLD) {
                Some(0) => {
                    self.err(&join(path, "threshold"), "threshold must be at least 1");
                    5
                }
                Some(n) => n as u32,
                None => 5,
            },
        };
        let default = self.mode(m, path);
        let mut modes = [Some(default); 7];
        if let Some(d) = m.get("detectors") {
            let dp = join(path, "detectors");
            let names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
            if let Some(dm) = self.object(d, &dp, &names) {
                for (i, class) in Class::ALL.iter().enumerate() {
                    let chosen = self.choice(
                        dm,
                        &dp,
                        class.name(),
                        "detector mode",
                        &[
                            ("enforce", Some(Mode::Enforce)),
                            ("shadow", Some(Mode::Shadow)),
                            ("off", None),
                        ],
                        Some(default),
                    );
                    if let Some(slot) = modes.get_mut(i) {
                        *slot = chosen;
                    }
                }
            }
        }
        let mut headers = Vec::new();
        if let Some(h) = m.get("headers") {
            let hp = join(path, "headers");
            if let Some(list) = self.array(h, &hp) {
                for (i, item) in list.iter().enumerate() {
                    if let Some(name) = self.header_name(item, &index(&hp, i)) {
                        headers.push(name);
                    }
                }
            }
        } else {
            headers.push("referer".to_string());
        }
        let mut rules = [RuleId(0); 7];
        for (i, class) in Class::ALL.iter().enumerate() {
            let mode = modes.get(i).copied().flatten().unwrap_or(Mode::Shadow);
            if let Some(r) = rules.get_mut(i) {
                *r = self.rule(format!("detection.{}", class.name()), mode);
            }
        }
        let crs = m
            .get("crs")
            .and_then(|c| self.crs(c, &join(path, "crs"), default));
        let Some(engines) = Engines::shared() else {
            self.err(path, "the detectors could not be built");
            return None;
        };
        Some(Detection {
            threshold,
            modes,
            rules,
            headers,
            engines,
            crs,
        })
    }

    /// A route's `detection`: `"off"`, or `{threshold: N}`. `Some(None)` is off.
    pub(super) fn route_detection(&mut self, v: Option<&Value>, path: &str) -> Option<Option<u32>> {
        let v = v?;
        let p = join(path, "detection");
        match v {
            Value::String(s) if s == "off" => Some(None),
            Value::Object(_) => {
                let m = self.object(v, &p, &["threshold"])?;
                let t = self.required(m, &p, "threshold")?;
                match self.uint(t, &join(&p, "threshold"), MAX_THRESHOLD) {
                    Some(0) => {
                        self.err(&join(&p, "threshold"), "threshold must be at least 1");
                        None
                    }
                    Some(n) => Some(Some(n as u32)),
                    None => None,
                }
            }
            other => {
                self.err(
                    &p,
                    format!(
                        "expected \"off\" or an object with a threshold, found {}",
                        kind(other)
                    ),
                );
                None
            }
        }
    }

    /// One `enumeration` rule.
    pub(super) fn enumeration(
        &mut self,
        v: &Value,
        path: &str,
        route_index: &HashMap<String, usize>,
        routes_compiled: Option<&[Route]>,
    ) -> Option<Enumeration> {
        let m = self.object(
            v,
            path,
            &[
                "name",
                "key",
                "value",
                "routes",
                "max_distinct",
                "window",
                "action",
                "max_keys",
                "on_failure",
            ],
        )?;
        let (name, key) = self.name_and_key(m, path);
        let routes = self
            .required(m, path, "routes")
            .and_then(|r| self.route_names_list(r, &join(path, "routes"), route_index));
        let value = self.required(m, path, "value").and_then(|v| {
            let vp = join(path, "value");
            let vm = self.object(v, &vp, &["path_param", "query", "header", "body_field"])?;
            if vm.len() != 1 {
                self.err(
                    &vp,
                    "name exactly one of path_param, query, header or body_field",
                );
                return None;
            }
            let (k, x) = vm.iter().next()?;
            let s = self.string(x, &join(&vp, k))?.to_string();
            if s.is_empty() {
                self.err(&join(&vp, k), "must not be empty");
                return None;
            }
            Some(match k.as_str() {
                "path_param" => ValueSource::PathParam(s),
                "query" => ValueSource::Query(s),
                "header" => ValueSource::Header(s.to_ascii_lowercase()),
                _ => ValueSource::BodyField(s),
            })
        });
        // A path parameter must exist in every route the rule names.
        // (Checked only when every route compiled: route indices are document positions.)
        if let (Some(ValueSource::PathParam(p)), Some(rs), Some(compiled)) =
            (&value, &routes, routes_compiled)
        {
            for r in rs {
                let has = compiled
                    .get(*r)
                    .is_none_or(|route| route.path.param_names().any(|n| n == p));
                if !has {
                    self.err(
                        &join(&join(path, "value"), "path_param"),
                        format!("a route this rule names has no path parameter {p:?}"),
                    );
                    break;
                }
            }
        }
        let max_distinct = self
            .required(m, path, "max_distinct")
            .and_then(|x| self.uint(x, &join(path, "max_distinct"), u64::from(MAX_DISTINCT)));
        if max_distinct == Some(0) {
            self.err(
                &join(path, "max_distinct"),
                "max_distinct must be at least 1",
            );
        }
        let window = self
            .required(m, path, "window")
            .and_then(|w| self.duration(w, &join(path, "window")));
        let mode = self.choice(
            m,
            path,
            "action",
            "action",
            &[("block", Mode::Enforce), ("flag", Mode::Shadow)],
            Mode::Enforce,
        );
        let max_keys = self.max_keys(m, path);
        let on_failure = self.failure_mode(m, path);
        let name = name?;
        let rule = self.rule(format!("enumeration.{name}"), mode);
        Some(Enumeration {
            name,
            rule,
            mode,
            key,
            value: value?,
            routes: routes?,
            max_distinct: max_distinct.filter(|n| *n > 0)? as u32,
            window: window?,
            max_keys,
            on_failure,
        })
    }
}
