//! A JSON Schema subset for request bodies, compiled once from the policy. Supported keywords:
//! `type` (one or a list of `null`, `boolean`, `integer`, `number`, `string`, `array`,
//! `object`), `properties`, `required`, `additionalProperties` (a boolean), `items`, `minItems`,
//! `maxItems`, `minLength`, `maxLength` (in characters), `pattern` (whole value, linear time),
//! `format` (`uuid`, `date`, `date-time`, `vin`, `vin-north-america`), `enum`, `minimum`,
//! `maximum`; `title`, `description` and `$comment` are accepted and ignored. Any other keyword
//! is an error in the policy, so a schema never silently checks less than its author thinks.

use serde_json::Value;

use super::types::{Pattern, ValueType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Null,
    Boolean,
    Integer,
    Number,
    String,
    Array,
    Object,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "null" => Ty::Null,
            "boolean" => Ty::Boolean,
            "integer" => Ty::Integer,
            "number" => Ty::Number,
            "string" => Ty::String,
            "array" => Ty::Array,
            "object" => Ty::Object,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Ty::Null => "null",
            Ty::Boolean => "a boolean",
            Ty::Integer => "an integer",
            Ty::Number => "a number",
            Ty::String => "a string",
            Ty::Array => "an array",
            Ty::Object => "an object",
        }
    }

    fn matches(self, v: &Value) -> bool {
        match self {
            Ty::Null => v.is_null(),
            Ty::Boolean => v.is_boolean(),
            Ty::Integer => v.as_i64().is_some() || v.as_u64().is_some(),
            Ty::Number => v.is_number(),
            Ty::String => v.is_string(),
            Ty::Array => v.is_array(),
            Ty::Object => v.is_object(),
        }
    }
}

/// A compiled schema.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    types: Vec<Ty>,
    properties: Vec<(String, Schema)>,
    required: Vec<String>,
    additional: bool,
    items: Option<Box<Schema>>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<Pattern>,
    format: Option<ValueType>,
    enumeration: Option<Vec<Value>>,
    minimum: Option<f64>,
    maximum: Option<f64>,
}

const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "enum",
    "minimum",
    "maximum",
    "title",
    "description",
    "$comment",
];

/// Deepest schema nesting a policy may write.
const MAX_SCHEMA_DEPTH: usize = 16;

/// Most problems reported for one body.
const MAX_REPORTED: usize = 10;

impl Schema {
    /// Compiles a schema; errors are `(path below the schema, message)`.
    pub fn compile(v: &Value, path: &str, errors: &mut Vec<(String, String)>) -> Schema {
        compile(v, path, errors, 0)
    }

    /// Checks a body; returns up to ten `(JSON pointer, reason)` problems.
    pub fn validate(&self, v: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.check(v, &mut String::new(), &mut out);
        out
    }

    fn check(&self, v: &Value, at: &mut String, out: &mut Vec<(String, String)>) {
        if out.len() >= MAX_REPORTED {
            return;
        }
        let mut report = |at: &str, reason: String| {
            if out.len() < MAX_REPORTED {
                out.push((
                    if at.is_empty() {
                        "/".into()
                    } else {
                        at.to_owned()
                    },
                    reason,
                ));
            }
        };
        if !self.types.is_empty() && !self.types.iter().any(|t| t.matches(v)) {
            let names: Vec<&str> = self.types.iter().map(|t| t.name()).collect();
            report(at, format!("must be {}", names.join(" or ")));
            return;
        }
        if let Some(values) = &self.enumeration {
            if !values.contains(v) {
                report(at, "is not one of the accepted values".into());
            }
        }
        match v {
            Value::String(s) => {
                let n = s.chars().count();
                if self.min_length.is_some_and(|m| n < m) || self.max_length.is_some_and(|m| n > m)
                {
                    report(
                        at,
                        format!(
                            "must have {} to {} characters",
                            self.min_length.unwrap_or(0),
                            self.max_length
                                .map_or("any number of".into(), |m| m.to_string())
                        ),
                    );
                } else if self.pattern.as_ref().is_some_and(|p| !p.matches(s)) {
                    report(at, "does not have the expected format".into());
                } else if let Some(problem) = self.format.as_ref().and_then(|f| f.check(s)) {
                    report(at, problem);
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                // A NaN compares as neither: it fails both bounds.
                let below = self
                    .minimum
                    .is_some_and(|m| x.partial_cmp(&m).is_none_or(|o| o.is_lt()));
                let above = self
                    .maximum
                    .is_some_and(|m| x.partial_cmp(&m).is_none_or(|o| o.is_gt()));
                if below || above {
                    report(
                        at,
                        format!(
                            "must be from {} to {}",
                            self.minimum.map_or("-∞".into(), fmt_num),
                            self.maximum.map_or("∞".into(), fmt_num)
                        ),
                    );
                }
            }
            Value::Array(items) => {
                if self.min_items.is_some_and(|m| items.len() < m)
                    || self.max_items.is_some_and(|m| items.len() > m)
                {
                    report(
                        at,
                        format!(
                            "must have {} to {} elements",
                            self.min_items.unwrap_or(0),
                            self.max_items
                                .map_or("any number of".into(), |m| m.to_string())
                        ),
                    );
                }
                if let Some(item) = &self.items {
                    for (i, x) in items.iter().enumerate() {
                        let len = at.len();
                        at.push_str(&format!("/{i}"));
                        item.check(x, at, out);
                        at.truncate(len);
                        if out.len() >= MAX_REPORTED {
                            return;
                        }
                    }
                }
            }
            Value::Object(members) => {
                for name in &self.required {
                    if !members.contains_key(name) {
                        let mut p = at.clone();
                        p.push('/');
                        p.push_str(name);
                        if out.len() < MAX_REPORTED {
                            out.push((p, "is required".into()));
                        }
                    }
                }
                for (name, x) in members {
                    let len = at.len();
                    match self.properties.iter().find(|(n, _)| n == name) {
                        Some((_, s)) => {
                            at.push('/');
                            at.push_str(name);
                            s.check(x, at, out);
                        }
                        None if !self.additional => {
                            // The name came from the client: shown only if it is plain.
                            at.push('/');
                            at.push_str(if is_plain(name) { name } else { "(member)" });
                            if out.len() < MAX_REPORTED {
                                out.push((at.clone(), "is not an accepted member".into()));
                            }
                        }
                        None => {}
                    }
                    at.truncate(len);
                    if out.len() >= MAX_REPORTED {
                        return;
                    }
                }
            }
            _ => {}
        }
    }
}

fn whole_as_integer(v: &Value) -> Value {
    match v.as_f64() {
        Some(f) if v.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
        _ => v.clone(),
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// A member name safe to show back: 1 to 40 letters, digits, `_`, `-`, `.`.
pub(crate) fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn compile(v: &Value, path: &str, errors: &mut Vec<(String, String)>, depth: usize) -> Schema {
    let mut s = Schema {
        additional: true,
        ..Schema::default()
    };
    let Some(map) = v.as_object() else {
        errors.push((path.to_owned(), "a schema must be an object".into()));
        return s;
    };
    if depth > MAX_SCHEMA_DEPTH {
        errors.push((
            path.to_owned(),
            format!("schemas nest at most {MAX_SCHEMA_DEPTH} levels"),
        ));
        return s;
    }
    let at = |k: &str| format!("{path}.{k}");
    for (k, val) in map {
        let p = at(k);
        let count = |val: &Value, errors: &mut Vec<(String, String)>| -> Option<usize> {
            // A protobuf Struct (Istio's pluginConfig) carries every number as a double.
            let n = val
                .as_u64()
                .or_else(|| {
                    val.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .filter(|n| *n <= 1_000_000)
                .map(|n| n as usize);
            if n.is_none() {
                errors.push((p.clone(), "expected a whole number up to 1000000".into()));
            }
            n
        };
        match k.as_str() {
            "type" => {
                let names: Vec<&Value> = match val {
                    Value::Array(list) => list.iter().collect(),
                    other => vec![other],
                };
                for n in names {
                    match n.as_str().and_then(Ty::parse) {
                        Some(t) => s.types.push(t),
                        None => errors.push((p.clone(), format!("unknown type {n}"))),
                    }
                }
            }
            "properties" => match val.as_object() {
                Some(props) => {
                    for (name, sub) in props {
                        let child = compile(sub, &format!("{p}.{name}"), errors, depth + 1);
                        s.properties.push((name.clone(), child));
                    }
                }
                None => errors.push((p, "expected an object of schemas".into())),
            },
            "required" => match val.as_array() {
                Some(list) => {
                    for (i, n) in list.iter().enumerate() {
                        match n.as_str() {
                            Some(n) => s.required.push(n.to_owned()),
                            None => {
                                errors.push((format!("{p}[{i}]"), "expected a member name".into()))
                            }
                        }
                    }
                }
                None => errors.push((p, "expected a list of member names".into())),
            },
            "additionalProperties" => match val.as_bool() {
                Some(b) => s.additional = b,
                None => errors.push((p, "only true or false is supported".into())),
            },
            "items" => s.items = Some(Box::new(compile(val, &p, errors, depth + 1))),
            "minItems" => s.min_items = count(val, errors),
            "maxItems" => s.max_items = count(val, errors),
            "minLength" => s.min_length = count(val, errors),
            "maxLength" => s.max_length = count(val, errors),
            "pattern" => match val.as_str().map(Pattern::new) {
                Some(Ok(pat)) => s.pattern = Some(pat),
                Some(Err(e)) => errors.push((p, e)),
                None => errors.push((p, "expected a pattern".into())),
            },
            "format" => {
                s.format = match val.as_str() {
                    Some("uuid") => Some(ValueType::Uuid),
                    Some("date") => Some(ValueType::Date),
                    Some("date-time") => Some(ValueType::DateTime),
                    Some("vin") => Some(ValueType::Vin { check_digit: false }),
                    Some("vin-north-america") => Some(ValueType::Vin { check_digit: true }),
                    _ => {
                        errors.push((
                            p,
                            "supported formats: uuid, date, date-time, vin, vin-north-america"
                                .into(),
                        ));
                        None
                    }
                }
            }
            "enum" => match val.as_array() {
                Some(list) if !list.is_empty() => {
                    // A protobuf Struct turns 1 into 1.0; bodies say 1.
                    s.enumeration = Some(list.iter().map(whole_as_integer).collect())
                }
                _ => errors.push((p, "expected a non-empty list of values".into())),
            },
            "minimum" | "maximum" => match val.as_f64() {
                Some(x) if k == "minimum" => s.minimum = Some(x),
                Some(x) => s.maximum = Some(x),
                None => errors.push((p, "expected a number".into())),
            },
            "title" | "description" | "$comment" => {}
            other => errors.push((
                p.clone(),
                format!(
                    "keyword {other:?} is not supported; supported: {}",
                    KEYWORDS.join(", ")
                ),
            )),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> Schema {
        let mut errors = Vec::new();
        let s = Schema::compile(&v, "schema", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        s
    }

    #[test]
    fn an_order_body() {
        let s = schema(json!({
            "type": "object",
            "required": ["model", "items"],
            "additionalProperties": false,
            "properties": {
                "model": {"type": "string", "enum": ["e-sport", "e-family"]},
                "items": {"type": "array", "minItems": 1, "maxItems": 3,
                          "items": {"type": "object", "required": ["code"],
                                    "properties": {"code": {"type": "string", "pattern": "[A-Z0-9-]{2,12}"},
                                                   "qty": {"type": "integer", "minimum": 1, "maximum": 5}}}},
                "note": {"type": ["string", "null"], "maxLength": 500},
                "delivery": {"type": "string", "format": "date"}
            }
        }));
        let ok = json!({"model": "e-sport", "items": [{"code": "PAINT-RED", "qty": 1}],
                        "note": "Please call Mrs O'Brien — she's at Königstraße 5", "delivery": "2027-02-28"});
        assert!(s.validate(&ok).is_empty());
        let bad = json!({"model": "tank", "items": [{"qty": 9}], "delivery": "2027-02-30",
                         "<script>": 1, "note": null});
        let problems = s.validate(&bad);
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"/model"), "{problems:?}");
        assert!(paths.contains(&"/items/0/code"), "{problems:?}");
        assert!(paths.contains(&"/items/0/qty"), "{problems:?}");
        assert!(paths.contains(&"/delivery"), "{problems:?}");
        assert!(
            paths.contains(&"/(member)"),
            "the client's member name is not echoed: {problems:?}"
        );
    }

    #[test]
    fn unknown_keywords_and_bad_values_are_policy_errors() {
        let mut errors = Vec::new();
        Schema::compile(
            &json!({"type": "strin", "oneOf": [], "pattern": "(", "minItems": -1,
                    "properties": {"a": {"format": "email"}}}),
            "s",
            &mut errors,
        );
        let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        for want in [
            "s.type",
            "s.oneOf",
            "s.pattern",
            "s.minItems",
            "s.properties.a.format",
        ] {
            assert!(paths.contains(&want), "{want}: {errors:?}");
        }
    }
}

#[cfg(test)]
mod struct_numbers {
    use super::*;

    #[test]
    fn whole_doubles_count_as_whole_numbers() {
        // As a protobuf Struct delivers `maxLength: 5`.
        let mut errors = Vec::new();
        let s = Schema::compile(
            &serde_json::json!({"type": "string", "maxLength": 5.0}),
            "s",
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!s.validate(&serde_json::json!("toolong")).is_empty());
        Schema::compile(&serde_json::json!({"maxLength": 5.5}), "s", &mut errors);
        assert_eq!(errors.len(), 1);
    }
}

#[cfg(test)]
mod struct_enums {
    use super::*;

    #[test]
    fn a_numeric_enum_from_a_struct_matches_integers() {
        let mut errors = Vec::new();
        let s = Schema::compile(&serde_json::json!({"enum": [1.0, 2.0]}), "s", &mut errors);
        assert!(errors.is_empty());
        assert!(s.validate(&serde_json::json!(1)).is_empty());
        assert!(!s.validate(&serde_json::json!(3)).is_empty());
    }
}
