//! `detection.crs`: an imported Core Rule Set, its paranoia level, mode, per-rule shadow list,
//! setup overrides and exclusions.

use serde_json::Value;

use super::{index, join, kind, Cx};
use crate::crs::{Engine, Exclusions, Ruleset};
use crate::detect::CrsRules;
use crate::Mode;

/// The fields of `detection.crs`.
pub(crate) const FIELDS: &[&str] = &[
    "ruleset",
    "paranoia",
    "mode",
    "shadow",
    "setup",
    "exclusions",
];

impl Cx {
    /// Compiles `detection.crs`; `default` is the detection block's mode.
    pub(super) fn crs(&mut self, v: &Value, path: &str, default: Mode) -> Option<CrsRules> {
        let m = self.object(v, path, FIELDS)?;
        let mode = self.choice(
            m,
            path,
            "mode",
            "CRS mode",
            &[
                ("enforce", Some(Mode::Enforce)),
                ("shadow", Some(Mode::Shadow)),
                ("off", None),
            ],
            Some(default),
        );
        let rp = join(path, "ruleset");
        let set = self
            .required(m, path, "ruleset")
            .and_then(|r| self.ruleset(r, &rp));
        let paranoia = match m.get("paranoia") {
            None => 1,
            Some(p) => match self.uint(p, &join(path, "paranoia"), 4) {
                Some(0) | None => {
                    if m.get("paranoia").and_then(Value::as_u64) == Some(0) {
                        self.err(&join(path, "paranoia"), "paranoia level must be 1 to 4");
                    }
                    1
                }
                Some(n) => n as u8,
            },
        };
        if let Some(s) = &set {
            if paranoia > s.paranoia {
                self.err(
                    &join(path, "paranoia"),
                    format!(
                        "paranoia level {paranoia} is above the {} the rule set was imported at: import it again with --paranoia {paranoia}",
                        s.paranoia
                    ),
                );
            }
        }
        let mut shadow = Vec::new();
        if let Some(list) = m.get("shadow") {
            let sp = join(path, "shadow");
            if let Some(items) = self.array(list, &sp) {
                for (i, x) in items.iter().enumerate() {
                    if let Some(id) = self.uint(x, &index(&sp, i), u64::from(u32::MAX)) {
                        shadow.push(id as u32);
                    }
                }
            }
        }
        let mut tx = Vec::new();
        if let Some(s) = m.get("setup") {
            let sp = join(path, "setup");
            match s.as_object() {
                Some(obj) => {
                    for (k, v) in obj {
                        let valid = !k.is_empty()
                            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                        if !valid {
                            self.err(
                                &join(&sp, k),
                                "setup variable names are letters, digits and _",
                            );
                            continue;
                        }
                        match v {
                            Value::String(s) => tx.push((k.to_ascii_lowercase(), s.clone())),
                            Value::Number(n) => tx.push((k.to_ascii_lowercase(), n.to_string())),
                            other => self.err(
                                &join(&sp, k),
                                format!("expected a string or a number, found {}", kind(other)),
                            ),
                        }
                    }
                }
                None => self.err(&sp, format!("expected an object, found {}", kind(s))),
            }
        }
        let mut ex = Exclusions::default();
        if let Some(list) = m.get("exclusions") {
            let ep = join(path, "exclusions");
            if let Some(items) = self.array(list, &ep) {
                for (i, x) in items.iter().enumerate() {
                    let ip = index(&ep, i);
                    let Some(e) = self.object(x, &ip, &["rule", "tag", "target", "reason"]) else {
                        continue;
                    };
                    if self
                        .required(e, &ip, "reason")
                        .and_then(|r| self.string(r, &join(&ip, "reason")))
                        .is_some_and(|r| r.trim().is_empty())
                    {
                        self.err(&join(&ip, "reason"), "say why the exclusion is needed");
                    }
                    let rule = e
                        .get("rule")
                        .and_then(|r| self.uint(r, &join(&ip, "rule"), u64::from(u32::MAX)))
                        .map(|n| n as u32);
                    let tag = e.get("tag").and_then(|t| self.string(t, &join(&ip, "tag")));
                    let target = e
                        .get("target")
                        .and_then(|t| self.string(t, &join(&ip, "target")));
                    match (rule, tag, target) {
                        (Some(id), None, None) => ex.remove.push(id),
                        (Some(id), None, Some(t)) => ex.remove_targets.push((id, t.to_string())),
                        (None, Some(tag), None) => ex.remove_tags.push(tag.to_string()),
                        (None, None, Some(t)) => ex.remove_targets_everywhere.push(t.to_string()),
                        _ => self.err(
                            &ip,
                            "an exclusion names a rule (optionally with a target), a tag, or a target alone (read by no rule)",
                        ),
                    }
                }
            }
        }
        let set = set?;
        for id in ex
            .remove
            .iter()
            .chain(ex.remove_targets.iter().map(|(id, _)| id))
            .chain(shadow.iter())
        {
            let known = set
                .items
                .iter()
                .any(|i| matches!(i, crate::crs::ruleset::Item::Rule(r) if r.id == *id));
            if !known {
                self.err(path, format!("rule {id} is not in the rule set"));
            }
        }
        let mut engine = match Engine::compile(&set, &ex) {
            Ok(e) => e,
            Err(errors) => {
                for e in errors {
                    self.err(&rp, e);
                }
                return None;
            }
        };
        engine.configure(paranoia, &tx);
        let rule = self.rule("detection.crs".into(), mode.unwrap_or(Mode::Shadow));
        Some(CrsRules {
            engine,
            mode,
            shadow,
            rule,
        })
    }

    /// The imported document. Numbers that arrive as doubles (a protobuf `Struct`) are read as
    /// the whole numbers they are.
    fn ruleset(&mut self, v: &Value, path: &str) -> Option<Ruleset> {
        if let Some(dir) = v.get("import") {
            self.err(
                path,
                format!(
                    "the rule set at {dir} was not imported: tooling (the policies build, `tollgate check`) resolves {{\"import\": DIR}} when DIR holds a Core Rule Set; install it (cargo xtask setup) and build again"
                ),
            );
            return None;
        }
        let mut v = v.clone();
        integers(&mut v);
        match serde_json::from_value::<Ruleset>(v) {
            Ok(s) if s.format == crate::crs::ruleset::FORMAT => Some(s),
            Ok(s) => {
                self.err(
                    path,
                    format!(
                        "rule set format {} is not {}: import it again with this version's `tollgate crs import`",
                        s.format,
                        crate::crs::ruleset::FORMAT
                    ),
                );
                None
            }
            Err(e) => {
                self.err(path, format!("not an imported rule set: {e}"));
                None
            }
        }
    }
}

/// Doubles with no fraction become integers, everywhere in `v`.
fn integers(v: &mut Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Number(n) => {
                if let Some(f) = n
                    .as_f64()
                    .filter(|f| n.is_f64() && f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                {
                    *v = Value::from(f as u64);
                }
            }
            Value::Array(a) => stack.extend(a.iter_mut()),
            Value::Object(m) => stack.extend(m.values_mut()),
            _ => {}
        }
    }
}
