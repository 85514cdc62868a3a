//! The policies Tollgate ships: `retail.yaml` and `dealer.yaml` beside this crate, turned into
//! JSON at build time (and refused at build time if invalid). The plugin embeds them, so an Envoy
//! configuration can say `{"embedded": "retail"}` instead of carrying the whole policy.
#![forbid(unsafe_code)]

/// The retail edge's policy, as JSON.
pub const RETAIL: &str = include_str!(concat!(env!("OUT_DIR"), "/retail.json"));

/// The dealer edge's policy, as JSON.
pub const DEALER: &str = include_str!(concat!(env!("OUT_DIR"), "/dealer.json"));

/// Every embedded policy by the name an Envoy configuration selects it with.
pub const EMBEDDED: &[(&str, &str)] = &[("retail", RETAIL), ("dealer", DEALER)];
