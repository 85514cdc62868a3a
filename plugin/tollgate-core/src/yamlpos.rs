//! Where a policy path (`routes[3].methods[0]`) sits in a YAML file: the YAML is read once more
//! into a tree that keeps each value's line, so `tollgate check` (and the policy component) can
//! give file, line and path for every error the policy core reports.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML value with the line of each child.
#[derive(Debug)]
pub enum Node {
    /// A mapping: key, value with its position.
    Map(Vec<(String, Spanned<Node>)>),
    /// A sequence.
    Seq(Vec<Spanned<Node>>),
    /// Anything else.
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

macro_rules! scalar {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name<E>(self, _: $ty) -> Result<Node, E> { Ok(Node::Scalar) })*
    };
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    scalar!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Spanned<Node>>()? {
            items.push(v);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(k) = map.next_key::<serde_json::Value>()? {
            let key = match k {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            items.push((key, map.next_value::<Spanned<Node>>()?));
        }
        Ok(Node::Map(items))
    }
}

/// A parsed YAML document with positions.
#[derive(Debug)]
pub struct Positions {
    root: Spanned<Node>,
}

impl Positions {
    /// Reads the positions of a YAML document; `None` if it does not parse.
    pub fn parse(text: &str) -> Option<Positions> {
        serde_saphyr::from_str::<Spanned<Node>>(text)
            .ok()
            .map(|root| Positions { root })
    }

    /// The 1-based line of the deepest value on `path` that exists (the document's first line
    /// for an empty path).
    pub fn line(&self, path: &str) -> u64 {
        let mut node = &self.root;
        for seg in segments(path) {
            let next = match (&node.value, seg) {
                (Node::Map(items), Seg::Key(k)) => {
                    items.iter().find(|(name, _)| name == k).map(|(_, v)| v)
                }
                (Node::Seq(items), Seg::Index(i)) => items.get(i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.referenced.line().max(1)
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into `a`, `b`, `2`, `c`.
fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Seg::Key(name));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Positions;

    #[test]
    fn finds_the_line_of_a_path() {
        let yaml = "version: x\nroutes:\n  - name: a\n    methods: [GET]\n  - name: b\n    methods:\n      - GETT\n";
        let p = Positions::parse(yaml).unwrap();
        assert_eq!(p.line("version"), 1);
        assert_eq!(p.line("routes[1].name"), 5);
        assert_eq!(p.line("routes[1].methods[0]"), 7);
        // A missing tail resolves to the deepest part that exists.
        assert_eq!(p.line("routes[1].nope"), 5);
        assert_eq!(p.line(""), 1);
    }
}
