//! The OWASP Core Rule Set (or any SecLang rule set of its kind), run in linear time.
//!
//! - [`seclang`] reads SecLang text into directives, [`import`] turns the setup file and the
//!   `REQUEST-*.conf` files into a [`Ruleset`] document and a [`Report`] of what it left out.
//!   [`dir`] (feature `crs-dir`, tooling only) reads a CRS release directory from disk.
//! - [`engine`] compiles a [`Ruleset`] once and runs the request phases on each request;
//!   [`pcre`] translates PCRE patterns for the `regex` crate (refusing look-around and back
//!   references), [`transform`] holds the `t:` functions and [`body`] the body processors.
//!
//! Nothing here reads a file, a clock or the network, and nothing panics on any input: a policy
//! can carry a rule set written by anyone.

pub mod body;
#[cfg(feature = "crs-dir")]
pub mod dir;
pub mod engine;
pub mod import;
mod memo;
pub mod pcre;
pub mod prefilter;
pub mod ruleset;
pub mod seclang;
pub mod transform;
mod txn;

pub use engine::{Engine, Exclusions, Input, Match, Outcome};
pub use import::{import, ImportError, Source};
pub use ruleset::{Report, Ruleset};
