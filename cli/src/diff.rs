//! `tollgate diff OLD NEW`: what pushing NEW over OLD changes, said the way a reviewer needs it.
//! Named things (routes, IP lists, rate limits, bans, enumeration rules) are matched by name;
//! each difference is classed as loosening (more traffic gets through), tightening (less does)
//! or a plain change, and the state each limit keeps or loses is taken from the core's own
//! table identities (`Policy::tables`), so what `diff` says is what the plugin will do.

use std::fmt::Write as _;

use serde_json::Value;
use tollgate_core::tables::Table;
use tollgate_core::Policy;

/// How a difference moves the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// More requests get through than before.
    Loosened,
    /// Fewer requests get through.
    Tightened,
    /// Neither, or it depends on the traffic.
    Changed,
}

impl Effect {
    fn word(self) -> &'static str {
        match self {
            Effect::Loosened => "loosened",
            Effect::Tightened => "tightened",
            Effect::Changed => "changed",
        }
    }

    fn flip(self) -> Effect {
        match self {
            Effect::Loosened => Effect::Tightened,
            Effect::Tightened => Effect::Loosened,
            Effect::Changed => Effect::Changed,
        }
    }
}

/// One difference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Its effect.
    pub effect: Effect,
    /// Where: `rate_limit login-per-ip`, `route orders`, `detection`, ...
    pub subject: String,
    /// What.
    pub what: String,
}

/// What a push changes.
#[derive(Debug, Default)]
pub struct Diff {
    /// Rules and routes added.
    pub added: Vec<Change>,
    /// Rules and routes removed.
    pub removed: Vec<Change>,
    /// Everything else that differs.
    pub changed: Vec<Change>,
    /// Per limit table: `kept`, `reset` (definition changed), `new` or `freed`.
    pub state: Vec<(String, &'static str)>,
}

/// The named collections of a policy: field, singular label, and how adding an item moves the
/// edge (a new route opens a path; a new limit or list closes some).
const COLLECTIONS: [(&str, &str, Effect); 5] = [
    ("routes", "route", Effect::Loosened),
    ("ip_lists", "ip_list", Effect::Tightened),
    ("rate_limits", "rate_limit", Effect::Tightened),
    ("bans", "ban", Effect::Tightened),
    ("enumeration", "enumeration", Effect::Tightened),
];

/// Compares two valid policies, given as documents and compiled.
pub fn diff(old: &Value, new: &Value, old_p: &Policy, new_p: &Policy) -> Diff {
    let mut d = Diff::default();
    for (field, label, added_effect) in COLLECTIONS {
        let items = |doc: &Value| -> Vec<(String, Value)> {
            doc.get(field)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| (name_of(v), v.clone()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let (before, after) = (items(old), items(new));
        for (name, v) in &after {
            let subject = format!("{label} {name}");
            match before.iter().find(|(n, _)| n == name) {
                None => d.added.push(Change {
                    effect: added_by(label, v, added_effect),
                    subject,
                    what: describe(label, v),
                }),
                Some((_, was)) => compare(label, &subject, "", was, v, &mut d.changed),
            }
        }
        for (name, v) in &before {
            if !after.iter().any(|(n, _)| n == name) {
                d.removed.push(Change {
                    effect: added_by(label, v, added_effect).flip(),
                    subject: format!("{label} {name}"),
                    what: describe(label, v),
                });
            }
        }
    }
    for field in [
        "version",
        "edge",
        "client_ip",
        "routing",
        "validation",
        "detection",
    ] {
        let none = Value::Null;
        let (a, b) = (
            old.get(field).unwrap_or(&none),
            new.get(field).unwrap_or(&none),
        );
        compare(field, field, "", a, b, &mut d.changed);
    }
    order_changes(old, new, &mut d.changed);
    d.state = if old_p.edge() == new_p.edge() {
        state(&old_p.tables(), &new_p.tables())
    } else {
        // Tables live under the edge's name: a renamed edge starts every table empty, and the
        // old edge's stay in shared data (the ABI cannot delete) until Envoy restarts.
        new_p
            .tables()
            .iter()
            .map(|t| (t.label(), "new (edge renamed: starts empty)"))
            .chain(old_p.tables().iter().map(|t| {
                (
                    format!("{} (edge {})", t.label(), old_p.edge()),
                    "left behind until Envoy restarts (edge renamed)",
                )
            }))
            .collect()
    };
    d
}

/// Routes and IP lists are tried in order: the same ones in another order decide differently.
fn order_changes(old: &Value, new: &Value, out: &mut Vec<Change>) {
    for field in ["routes", "ip_lists"] {
        let names = |doc: &Value| -> Vec<String> {
            doc.get(field)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(name_of).collect())
                .unwrap_or_default()
        };
        let (a, b) = (names(old), names(new));
        let common_a: Vec<&String> = a.iter().filter(|n| b.contains(n)).collect();
        let common_b: Vec<&String> = b.iter().filter(|n| a.contains(n)).collect();
        if common_a != common_b {
            out.push(Change {
                effect: Effect::Changed,
                subject: field.into(),
                what: format!(
                    "order: {} → {}",
                    common_a
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    common_b
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
}

fn state(old: &[Table], new: &[Table]) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = new
        .iter()
        .map(|t| {
            let word = match old.iter().find(|o| o.kind == t.kind && o.name == t.name) {
                Some(o) if o.identity == t.identity => "kept",
                Some(_) => "reset (definition changed)",
                None => "new (starts empty)",
            };
            (t.label(), word)
        })
        .collect();
    for o in old {
        if !new.iter().any(|t| t.kind == o.kind && t.name == o.name) {
            out.push((o.label(), "freed (rule removed)"));
        }
    }
    out
}

fn name_of(v: &Value) -> String {
    v.get("name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned()
}

/// An added IP list loosens nothing and tightens if it denies, but an allow list also tightens
/// (everyone outside it is refused); an added enumeration rule that only flags changes nothing
/// for the client.
fn added_by(label: &str, v: &Value, default: Effect) -> Effect {
    if is_shadow(v) {
        return Effect::Changed;
    }
    match (label, v.get("action").and_then(Value::as_str)) {
        ("enumeration", Some("flag")) => Effect::Changed,
        _ => default,
    }
}

fn is_shadow(v: &Value) -> bool {
    v.get("mode").and_then(Value::as_str) == Some("shadow")
}

fn describe(label: &str, v: &Value) -> String {
    let s = |k: &str| v.get(k).map(short).unwrap_or_default();
    let mode = if is_shadow(v) { " (shadow)" } else { "" };
    match label {
        "route" => format!("{} {}{mode}", s("methods"), s("path")),
        "rate_limit" => format!("{} burst {} by {}{mode}", s("rate"), s("burst"), s("key")),
        "ban" => format!(
            "{} × {} in {} → banned {}{mode}",
            s("threshold"),
            s("statuses"),
            s("window"),
            s("duration")
        ),
        "enumeration" => format!(
            "{} distinct {} per {} by {}{mode}",
            s("max_distinct"),
            s("value"),
            s("window"),
            s("key")
        ),
        "ip_list" => format!("{} {}{mode}", s("action"), s("cidrs")),
        _ => short(v),
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(unset)".into(),
        other => other.to_string(),
    }
}

/// Requests per second of a rate such as `10/min` (the compiler's own parser).
fn per_second(v: &Value) -> Option<f64> {
    let (n, period) = tollgate_core::parse_rate(v.as_str()?).ok()?;
    Some(n as f64 / period as f64)
}

/// Seconds of a duration such as `30s` or `5m` (the compiler's own parser).
fn seconds(v: &Value) -> Option<f64> {
    tollgate_core::parse_duration_secs(v.as_str()?).map(|s| s as f64)
}

/// What the compiler assumes for a field left out, where a change from or to it has a
/// direction: an absent `mode` is `enforce`, and so on.
fn default_of(label: &str, key: &str) -> Option<Value> {
    Some(match (label, key) {
        (_, "mode") => Value::from("enforce"),
        (_, "on_failure") => Value::from("open"),
        ("routing", "default") => Value::from("deny"),
        ("enumeration", "action") => Value::from("block"),
        (_, "cost") => Value::from(1),
        ("detection", "threshold") => Value::from(5),
        ("route", "rate_limit_headers") => Value::from(true),
        _ => return None,
    })
}

/// How strict a mode is: enforce > shadow > off.
fn strictness(v: &Value) -> Option<u8> {
    match v.as_str()? {
        "enforce" | "block" | "deny" | "closed" => Some(2),
        "shadow" | "flag" | "allow" | "open" => Some(1),
        "off" => Some(0),
        _ => None,
    }
}

fn ordered(a: Option<f64>, b: Option<f64>, higher: Effect) -> Effect {
    match (a, b) {
        (Some(a), Some(b)) if b > a => higher,
        (Some(a), Some(b)) if b < a => higher.flip(),
        _ => Effect::Changed,
    }
}

/// The effect of one field's change, by the field's meaning.
fn effect_of(label: &str, path: &str, key: &str, a: &Value, b: &Value) -> Effect {
    let fill = |v: &Value| match v {
        Value::Null => default_of(label, key).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let (a, b) = (&fill(a), &fill(b));
    let num = |v: &Value| v.as_f64();
    match key {
        "rate" => ordered(per_second(a), per_second(b), Effect::Loosened),
        // More allowed at once, more failures before a ban, more distinct values, a higher
        // anomaly score before a refusal, bigger size caps: all let more through.
        "burst" | "max_distinct" => ordered(num(a), num(b), Effect::Loosened),
        "threshold" => ordered(num(a), num(b), Effect::Loosened),
        "cost" => ordered(num(a), num(b), Effect::Tightened),
        // More slots, fewer evictions: an evicted client starts with a fresh bucket or loses
        // its ban.
        "max_keys" => ordered(num(a), num(b), Effect::Tightened),
        "duration" | "window" => ordered(seconds(a), seconds(b), Effect::Tightened),
        "mode" | "on_failure" | "action" if label != "ip_list" || key != "action" => ordered(
            strictness(a).map(f64::from),
            strictness(b).map(f64::from),
            Effect::Tightened,
        ),
        "default" if label == "routing" => ordered(
            strictness(a).map(f64::from),
            strictness(b).map(f64::from),
            Effect::Tightened,
        ),
        _ if path.starts_with("detectors.") => ordered(
            strictness(a).map(f64::from),
            strictness(b).map(f64::from),
            Effect::Tightened,
        ),
        "detection" if label == "route" => match (a.as_str(), b.as_str()) {
            (_, Some("off")) => Effect::Loosened,
            (Some("off"), _) => Effect::Tightened,
            _ => Effect::Changed,
        },
        _ if path.contains("max.") || key.starts_with("max_") => {
            ordered(num(a), num(b), Effect::Loosened)
        }
        _ => Effect::Changed,
    }
}

/// A list field where an added entry moves the edge one way: methods and hosts open more,
/// required headers and statuses close more; CIDRs depend on the list's action; a rule's
/// `routes` cover more requests (absent: every route).
fn list_effect(label: &str, key: &str, whole: &Value, added: bool) -> Effect {
    let more = match (label, key) {
        ("route", "methods" | "hosts") => Effect::Loosened,
        ("route", "required_headers") | ("ban", "statuses") => Effect::Tightened,
        ("ip_list", "cidrs") => match whole.get("action").and_then(Value::as_str) {
            Some("allow") => Effect::Loosened,
            _ => Effect::Tightened,
        },
        ("detection", "headers") => Effect::Tightened,
        (_, "routes") => Effect::Tightened,
        _ => Effect::Changed,
    };
    if added {
        more
    } else {
        more.flip()
    }
}

/// Compares two values of `subject` at `path`, pushing one change per differing leaf (and one
/// per added or removed list entry).
fn compare(label: &str, subject: &str, path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    compare_in(label, subject, path, a, b, a, b, out);
}

#[allow(clippy::too_many_arguments)]
fn compare_in(
    label: &str,
    subject: &str,
    path: &str,
    a: &Value,
    b: &Value,
    whole_a: &Value,
    whole_b: &Value,
    out: &mut Vec<Change>,
) {
    if a == b {
        return;
    }
    let key = path.rsplit('.').next().unwrap_or(path);
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: Vec<&String> = x
                .keys()
                .chain(y.keys().filter(|k| !x.contains_key(*k)))
                .collect();
            for k in keys {
                let none = Value::Null;
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                compare_in(
                    label,
                    subject,
                    &p,
                    x.get(k).unwrap_or(&none),
                    y.get(k).unwrap_or(&none),
                    whole_a,
                    whole_b,
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if is_set_like(x) && is_set_like(y) => {
            for v in y.iter().filter(|v| !x.contains(v)) {
                out.push(Change {
                    effect: list_effect(label, key, whole_b, true),
                    subject: subject.into(),
                    what: format!("{path} + {}", short(v)),
                });
            }
            for v in x.iter().filter(|v| !y.contains(v)) {
                out.push(Change {
                    effect: list_effect(label, key, whole_a, false),
                    subject: subject.into(),
                    what: format!("{path} − {}", short(v)),
                });
            }
        }
        // A rule's `routes` absent means every route.
        (Value::Null, Value::Array(_)) if key == "routes" => out.push(Change {
            effect: Effect::Loosened,
            subject: subject.into(),
            what: format!("routes: every route → {}", short(b)),
        }),
        (Value::Array(_), Value::Null) if key == "routes" => out.push(Change {
            effect: Effect::Tightened,
            subject: subject.into(),
            what: format!("routes: {} → every route", short(a)),
        }),
        _ => {
            let effect = if label == "version" || label == "edge" {
                Effect::Changed
            } else {
                effect_of(label, path, key, a, b)
            };
            let shown = if path.is_empty() { label } else { path };
            out.push(Change {
                effect,
                subject: subject.into(),
                what: format!("{shown}: {} → {}", short(a), short(b)),
            });
        }
    }
}

/// Lists of scalars (methods, CIDRs, statuses, route names) compare as sets.
fn is_set_like(list: &[Value]) -> bool {
    list.iter().all(|v| !v.is_object() && !v.is_array())
}

impl Diff {
    /// Every change, added and removed first.
    pub fn all(&self) -> impl Iterator<Item = (&'static str, &Change)> {
        self.added
            .iter()
            .map(|c| ("added", c))
            .chain(self.removed.iter().map(|c| ("removed", c)))
            .chain(self.changed.iter().map(|c| ("", c)))
    }

    /// Changes with this effect.
    pub fn count(&self, effect: Effect) -> usize {
        self.all().filter(|(_, c)| c.effect == effect).count()
    }

    /// The changes as JSON (`tollgate diff --format json`).
    pub fn to_json(&self) -> Value {
        let changes: Vec<Value> = self
            .all()
            .map(|(kind, c)| {
                serde_json::json!({
                    "kind": if kind.is_empty() { "changed" } else { kind },
                    "effect": c.effect.word(),
                    "subject": c.subject,
                    "what": c.what,
                })
            })
            .collect();
        let state: serde_json::Map<String, Value> = self
            .state
            .iter()
            .map(|(t, w)| (t.clone(), Value::from(*w)))
            .collect();
        serde_json::json!({
            "changes": changes,
            "state": state,
            "added": self.added.len(),
            "removed": self.removed.len(),
            "changed": self.changed.len(),
            "loosened": self.count(Effect::Loosened),
            "tightened": self.count(Effect::Tightened),
            "neither": self.count(Effect::Changed),
        })
    }

    /// The report `tollgate diff` prints.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for (kind, c) in self.all() {
            let sign = match kind {
                "added" => "+",
                "removed" => "-",
                _ => "~",
            };
            let kind = if kind.is_empty() {
                String::new()
            } else {
                format!("{kind}, ")
            };
            let _ = writeln!(
                s,
                "{sign} {:<9} {}: {kind}{}",
                c.effect.word(),
                c.subject,
                c.what
            );
        }
        if !self.state.is_empty() {
            let _ = writeln!(s, "state on push:");
            for (table, word) in &self.state {
                let _ = writeln!(s, "  {table}: {word}");
            }
        }
        let _ = writeln!(
            s,
            "{} added, {} removed, {} changed: {} loosened, {} tightened, {} neither",
            self.added.len(),
            self.removed.len(),
            self.changed.len(),
            self.count(Effect::Loosened),
            self.count(Effect::Tightened),
            self.count(Effect::Changed)
        );
        s
    }
}
