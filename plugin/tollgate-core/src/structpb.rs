//! Decodes a `google.protobuf.Struct` from its protobuf wire form into JSON.
//!
//! Envoy hands a plugin its configuration as bytes: the text of a `StringValue`, or, for any
//! other message type, the message's serialised protobuf. So a policy written in the Envoy
//! bootstrap as a `Struct` (YAML, comments and all) arrives as protobuf, and this module turns it
//! back into the JSON the policy compiler reads. Istio's `pluginConfig` is converted to a JSON
//! `StringValue` by istiod and does not come through here.
//!
//! Input is bounded: nesting deeper than [`MAX_DEPTH`] is refused, lengths are checked against
//! the remaining input, and no call recurses without consuming bytes.

use serde_json::{Map, Number, Value};

use crate::wire::{Field, Wire};

/// Deepest nesting of structs and lists accepted.
pub const MAX_DEPTH: usize = 32;

/// Decodes a serialised `google.protobuf.Struct`.
pub fn decode_struct(bytes: &[u8]) -> Result<Value, String> {
    struct_fields(bytes, 0).map(Value::Object)
}

fn struct_fields(bytes: &[u8], depth: usize) -> Result<Map<String, Value>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    let mut map = Map::new();
    let mut w = Wire::new(bytes);
    while let Some((num, f)) = w.next()? {
        if let (1, Field::Bytes(entry)) = (num, f) {
            let (k, v) = map_entry(entry, depth)?;
            if map.contains_key(&k) {
                return Err(format!("key {k:?} appears twice in one object"));
            }
            map.insert(k, v);
        }
    }
    Ok(map)
}

fn map_entry(bytes: &[u8], depth: usize) -> Result<(String, Value), String> {
    let mut key = String::new();
    let mut value = Value::Null;
    let mut w = Wire::new(bytes);
    while let Some((num, f)) = w.next()? {
        match (num, f) {
            (1, Field::Bytes(k)) => {
                key = std::str::from_utf8(k)
                    .map_err(|_| "a key is not UTF-8")?
                    .to_string()
            }
            (2, Field::Bytes(v)) => value = value_of(v, depth)?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn value_of(bytes: &[u8], depth: usize) -> Result<Value, String> {
    let mut out = Value::Null;
    let mut w = Wire::new(bytes);
    while let Some((num, f)) = w.next()? {
        out = match (num, f) {
            (1, Field::Varint(_)) => Value::Null,
            (2, Field::Fixed64(bits)) => {
                let n = Number::from_f64(f64::from_bits(bits)).ok_or("a number is not finite")?;
                Value::Number(n)
            }
            (3, Field::Bytes(s)) => Value::String(
                std::str::from_utf8(s)
                    .map_err(|_| "a string is not UTF-8")?
                    .to_string(),
            ),
            (4, Field::Varint(b)) => Value::Bool(b != 0),
            (5, Field::Bytes(s)) => Value::Object(struct_fields(s, depth + 1)?),
            (6, Field::Bytes(l)) => Value::Array(list(l, depth + 1)?),
            _ => continue,
        };
    }
    Ok(out)
}

fn list(bytes: &[u8], depth: usize) -> Result<Vec<Value>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    let mut out = Vec::new();
    let mut w = Wire::new(bytes);
    while let Some((num, f)) = w.next()? {
        if let (1, Field::Bytes(v)) = (num, f) {
            out.push(value_of(v, depth)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // A tiny encoder, for tests only, so cases are written as JSON.
    fn len(tag: u8, body: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        let mut n = body.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(body);
    }

    fn enc_value(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        match v {
            Value::Null => out.extend_from_slice(&[0x08, 0]),
            Value::Number(n) => {
                out.push(0x11);
                out.extend_from_slice(&n.as_f64().unwrap().to_le_bytes());
            }
            Value::String(s) => len(0x1a, s.as_bytes(), &mut out),
            Value::Bool(b) => out.extend_from_slice(&[0x20, u8::from(*b)]),
            Value::Object(_) => len(0x2a, &enc_struct(v), &mut out),
            Value::Array(a) => {
                let mut l = Vec::new();
                for x in a {
                    len(0x0a, &enc_value(x), &mut l);
                }
                len(0x32, &l, &mut out);
            }
        }
        out
    }

    fn enc_struct(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, x) in v.as_object().unwrap() {
            let mut e = Vec::new();
            len(0x0a, k.as_bytes(), &mut e);
            len(0x12, &enc_value(x), &mut e);
            len(0x0a, &e, &mut out);
        }
        out
    }

    #[test]
    fn round_trips_every_value_kind() {
        let doc = json!({
            "version": "v1", "n": 1.0, "neg": -2.5, "flag": true, "none": null,
            "list": ["a", 2.0, [false], {"deep": {"er": "x"}}], "empty": {}
        });
        let back = decode_struct(&enc_struct(&doc)).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn truncated_and_hostile_inputs_are_errors_not_panics() {
        let good = enc_struct(&json!({"a": {"b": [1.0, "x"]}}));
        for cut in 0..good.len() {
            let _ = decode_struct(&good[..cut]);
        }
        assert!(decode_struct(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(
            decode_struct(&[0x0b]).is_err(),
            "wire type 3 is not supported"
        );
        assert!(decode_struct(&[0x0a; 11]).is_err());
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let one = enc_struct(&json!({"mode": "shadow"}));
        let twice = [one.clone(), one].concat();
        let err = decode_struct(&twice).unwrap_err();
        assert!(err.contains("appears twice"), "{err}");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut v = json!("leaf");
        for _ in 0..(MAX_DEPTH + 2) {
            v = json!({ "k": v });
        }
        let err = decode_struct(&enc_struct(&v)).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
    }
}
