//! The per-client state a policy keeps between requests (rate limits, bans, enumeration rules),
//! seen as tables, and what a table's contents mean. When a new policy is pushed, a table whose
//! identity is unchanged keeps its state; a new or changed one starts empty.
//!
//! A table's identity is what gives its entries their meaning: the key, the arithmetic (rate and
//! burst; statuses, threshold, window and duration; the counted value, limit and window) and its
//! size. A rule's mode, routes, per-route cost and failure mode are not part of it: taking a rule
//! from shadow to enforce, or adding a route to it, keeps every client's state, so a push never
//! hands every client a fresh bucket.

use std::hash::{Hash, Hasher};

use crate::Policy;

/// What kind of rule a table belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// A `rate_limits[]` entry.
    RateLimit,
    /// A `bans[]` entry.
    Ban,
    /// An `enumeration[]` entry.
    Enumeration,
}

impl TableKind {
    /// The policy field it comes from, singular (`rate_limit`, `ban`, `enumeration`).
    pub fn label(self) -> &'static str {
        match self {
            TableKind::RateLimit => "rate_limit",
            TableKind::Ban => "ban",
            TableKind::Enumeration => "enumeration",
        }
    }
}

/// One rule's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// The kind of rule.
    pub kind: TableKind,
    /// The rule's name.
    pub name: String,
    /// What the entries mean; equal identities can share state.
    pub identity: u64,
    /// Slots in the table.
    pub max_keys: u32,
}

impl Table {
    /// `kind.name`, as in logs and `tollgate diff`.
    pub fn label(&self) -> String {
        format!("{}.{}", self.kind.label(), self.name)
    }
}

/// Collects what `Hash` feeds it and hashes it with the limits' fingerprint under seed 0:
/// deterministic (unlike std's randomly keyed hasher), so every worker and every configuration
/// computes the same identity for the same definition.
struct Stable(Vec<u8>);

impl Hasher for Stable {
    fn finish(&self) -> u64 {
        fingerprint(&self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

fn identity(parts: impl Hash) -> u64 {
    let mut h = Stable(Vec::new());
    parts.hash(&mut h);
    h.finish()
}

/// A stable 64-bit hash of bytes, e.g. of a plugin configuration.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    crate::limits::fingerprint(0, bytes)
}

impl Policy {
    /// Every table the policy keeps, in a fixed order: rate limits, bans, enumeration rules.
    pub fn tables(&self) -> Vec<Table> {
        let limits = self.rate_limits.iter().map(|l| Table {
            kind: TableKind::RateLimit,
            name: l.name.clone(),
            identity: identity((&l.key, l.requests, l.period_secs, l.burst, l.max_keys)),
            max_keys: l.max_keys,
        });
        let bans = self.bans.iter().map(|b| Table {
            kind: TableKind::Ban,
            name: b.name.clone(),
            identity: identity((
                &b.key,
                &b.statuses,
                b.threshold,
                b.window,
                b.duration,
                b.max_keys,
            )),
            max_keys: b.max_keys,
        });
        let enumerations = self.enumerations.iter().map(|e| Table {
            kind: TableKind::Enumeration,
            name: e.name.clone(),
            identity: identity((&e.key, &e.value, e.max_distinct, e.window, e.max_keys)),
            max_keys: e.max_keys,
        });
        limits.chain(bans).chain(enumerations).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::Policy;

    fn policy(limit: &str) -> Policy {
        let doc = format!(
            r#"{{"version": "t", "edge": "e",
                "routes": [{{"name": "a", "path": "/a", "methods": ["GET"]}},
                           {{"name": "b", "path": "/b", "methods": ["GET"]}}],
                "rate_limits": [{limit}]}}"#
        );
        match Policy::from_json(&doc) {
            Ok(p) => p,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn identity(limit: &str) -> u64 {
        policy(limit).tables()[0].identity
    }

    #[test]
    fn mode_routes_cost_and_failure_mode_keep_the_identity() {
        let base = identity(r#"{"name": "l", "key": ["client_ip"], "rate": "10/s", "burst": 5}"#);
        for same in [
            r#"{"name": "l", "key": ["client_ip"], "rate": "10/s", "burst": 5, "mode": "shadow"}"#,
            r#"{"name": "l", "key": ["client_ip"], "rate": "10/s", "burst": 5, "routes": ["a"]}"#,
            r#"{"name": "l", "key": ["client_ip"], "rate": "10/s", "burst": 5, "cost": 2}"#,
            r#"{"name": "l", "key": ["client_ip"], "rate": "10/s", "burst": 5, "on_failure": "closed"}"#,
        ] {
            assert_eq!(identity(same), base, "{same}");
        }
    }

    #[test]
    fn key_rate_burst_and_size_change_the_identity() {
        let base = identity(r#"{"name": "l", "key": ["client_ip"], "rate": "10/s", "burst": 5}"#);
        for changed in [
            r#"{"name": "l", "key": [{"header": "x-a"}], "rate": "10/s", "burst": 5}"#,
            r#"{"name": "l", "key": ["client_ip"], "rate": "11/s", "burst": 5}"#,
            r#"{"name": "l", "key": ["client_ip"], "rate": "10/min", "burst": 5}"#,
            r#"{"name": "l", "key": ["client_ip"], "rate": "10/s", "burst": 6}"#,
            r#"{"name": "l", "key": ["client_ip"], "rate": "10/s", "burst": 5, "max_keys": 64}"#,
        ] {
            assert_ne!(identity(changed), base, "{changed}");
        }
    }

    #[test]
    fn identities_are_stable_across_compilations() {
        let l = r#"{"name": "l", "key": ["client_ip"], "rate": "10/s", "burst": 5}"#;
        assert_eq!(policy(l).tables(), policy(l).tables());
    }
}
