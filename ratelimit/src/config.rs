//! Limits configured in the service, in the format of Envoy's reference rate-limit service
//! (`domain`, nested `descriptors` of `key`, optional `value`, `rate_limit: {unit,
//! requests_per_unit}`), so one file serves both. A request's descriptor may instead carry its
//! own limit (the override Tollgate sends when its policy states a `rate`), which wins.

use serde::Deserialize;

/// A window's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day.
    Day,
}

impl Unit {
    /// Seconds in the unit.
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
        }
    }

    /// The protocol's number for it.
    pub fn number(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
        }
    }

    /// The unit of a protocol number.
    pub fn from_number(n: i32) -> Option<Unit> {
        match n {
            1 => Some(Unit::Second),
            2 => Some(Unit::Minute),
            3 => Some(Unit::Hour),
            4 => Some(Unit::Day),
            _ => None,
        }
    }
}

/// A limit: hits per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// The window.
    pub unit: Unit,
    /// Hits admitted per window.
    pub requests_per_unit: u32,
}

/// One node of a domain's descriptor tree.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// The entry key it matches.
    pub key: String,
    /// The entry value it matches; absent, any value (each value counted apart).
    #[serde(default)]
    pub value: Option<String>,
    /// The limit of a descriptor that ends here.
    #[serde(default)]
    pub rate_limit: Option<Limit>,
    /// Counted, reported, but never over the limit.
    #[serde(default)]
    pub shadow_mode: bool,
    /// Never limited.
    #[serde(default)]
    pub unlimited: bool,
    /// Deeper entries.
    #[serde(default)]
    pub descriptors: Vec<Descriptor>,
}

/// One domain's limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The domain requests name.
    pub domain: String,
    /// Its descriptor trees.
    #[serde(default)]
    pub descriptors: Vec<Descriptor>,
}

/// Every domain the service knows.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The domains.
    pub domains: Vec<Domain>,
}

/// What applies to one descriptor of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The limit.
    pub limit: Limit,
    /// Counted but never refused.
    pub shadow: bool,
}

impl Config {
    /// Reads a file holding one domain document, or a list of them.
    pub fn parse(text: &str) -> Result<Config, String> {
        if let Ok(list) = serde_saphyr::from_str::<Vec<Domain>>(text) {
            return Ok(Config { domains: list });
        }
        serde_saphyr::from_str::<Domain>(text)
            .map(|d| Config { domains: vec![d] })
            .map_err(|e| e.to_string())
    }

    /// The configured limit of a descriptor (its entries, in order), as Envoy's reference
    /// service finds it: at each level an exact `key`+`value` node first, else a `key` node
    /// without a value; the limit is that of the node the last entry reaches.
    pub fn lookup(&self, domain: &str, entries: &[(&str, &str)]) -> Option<Applied> {
        let d = self.domains.iter().find(|d| d.domain == domain)?;
        let mut level = &d.descriptors;
        let mut node = None;
        for (key, value) in entries {
            let found = level
                .iter()
                .find(|n| n.key == *key && n.value.as_deref() == Some(*value))
                .or_else(|| level.iter().find(|n| n.key == *key && n.value.is_none()))?;
            level = &found.descriptors;
            node = Some(found);
        }
        let node = node?;
        if node.unlimited {
            return None;
        }
        node.rate_limit.map(|limit| Applied {
            limit,
            shadow: node.shadow_mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
domain: tollgate
descriptors:
  - key: tollgate_limit
    value: login
    descriptors:
      - key: client_ip
        rate_limit: {unit: minute, requests_per_unit: 10}
      - key: client_ip
        value: 192.0.2.1
        unlimited: true
  - key: tollgate_limit
    rate_limit: {unit: second, requests_per_unit: 1}
    shadow_mode: true
"#;

    #[test]
    fn lookups_follow_the_reference_services_matching() {
        let c = Config::parse(CONFIG).unwrap();
        let minute = Limit {
            unit: Unit::Minute,
            requests_per_unit: 10,
        };
        assert_eq!(
            c.lookup(
                "tollgate",
                &[("tollgate_limit", "login"), ("client_ip", "x")]
            ),
            Some(Applied {
                limit: minute,
                shadow: false
            })
        );
        // The exact value wins over the wildcard: unlimited.
        assert_eq!(
            c.lookup(
                "tollgate",
                &[("tollgate_limit", "login"), ("client_ip", "192.0.2.1")]
            ),
            None
        );
        // A shorter descriptor ends at a node without a limit.
        assert_eq!(c.lookup("tollgate", &[("tollgate_limit", "login")]), None);
        // Another limit name falls to the wildcard node, in shadow mode.
        assert!(c
            .lookup("tollgate", &[("tollgate_limit", "search")])
            .is_some_and(|a| a.shadow));
        assert_eq!(c.lookup("other", &[("tollgate_limit", "login")]), None);
    }

    #[test]
    fn a_bad_file_is_an_error_that_says_where() {
        let e = Config::parse("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n")
            .unwrap_err();
        assert!(e.contains("fortnight") || e.contains("line"), "{e}");
        assert!(Config::parse("domain: d\nextra: 1\n").is_err());
    }
}
