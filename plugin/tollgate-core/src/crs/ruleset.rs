//! The imported rule set as a document: what `tollgate crs import` prints and a policy carries
//! as `detection.crs.ruleset`. Plain data (serde), close to SecLang, with nothing compiled: the
//! engine ([`super::engine`]) compiles it when a policy loads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::transform::Transform;

/// The version of this document's format.
pub const FORMAT: u32 = 1;

/// A Core Rule Set (or any SecLang rule set) as imported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ruleset {
    /// [`FORMAT`].
    pub format: u32,
    /// The rule set's own name (`SecComponentSignature`), e.g. `OWASP_CRS/3.3.4`.
    pub source: String,
    /// The highest paranoia level whose rules were imported.
    pub paranoia: u8,
    /// Transaction variables every request starts with: the setup file's values and the
    /// defaults the initialization rules would set (lower-case names, without `tx.`).
    pub setup: BTreeMap<String, String>,
    /// Rules and markers, in file order.
    pub items: Vec<Item>,
    /// The phrase lists of `@pmFromFile`, by file name.
    #[serde(default)]
    pub data: BTreeMap<String, Vec<String>>,
}

/// A rule or a `SecMarker`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Item {
    /// A `SecRule` (with its chain) or a `SecAction`.
    Rule(Rule),
    /// A `SecMarker`, the target of `skipAfter`.
    Marker {
        /// Its name.
        name: String,
    },
}

/// One rule with its chained rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `id`.
    pub id: u32,
    /// `phase` (1 request headers, 2 request body).
    pub phase: u8,
    /// The file it came from.
    pub file: String,
    /// Its line there.
    pub line: u32,
    /// `severity`, upper case (`CRITICAL`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// From the `paranoia-level/N` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paranoia: Option<u8>,
    /// `tag`s, for exclusions by tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `msg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// Whether a match is logged (`nolog` clears it).
    pub log: bool,
    /// `skipAfter`: the marker evaluation jumps to after a match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_after: Option<String>,
    /// The rule itself, then each chained rule.
    pub links: Vec<Link>,
}

/// One `SecRule` of a chain (or a `SecAction`, with no targets and an unconditional match).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The variables it reads.
    pub targets: Vec<Target>,
    /// The operator.
    pub op: Operator,
    /// `t:` transformations, in order (after the last `t:none`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    /// `capture`: regex groups go to `TX:0`..`TX:9`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub capture: bool,
    /// `multiMatch`: the operator runs after every transformation.
    #[serde(default, skip_serializing_if = "is_false")]
    pub multi_match: bool,
    /// `setvar`s, run for each matching value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setvars: Vec<SetVar>,
    /// `ctl`s, run once the whole rule matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ctl: Vec<Ctl>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One variable of a target list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Upper-case collection (`ARGS`, `REQUEST_HEADERS`, `TX`, ...).
    pub collection: String,
    /// One member by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Members whose names match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// `!`: these are removed from the rule's targets.
    #[serde(default, skip_serializing_if = "is_false")]
    pub exclude: bool,
    /// `&`: the number of values.
    #[serde(default, skip_serializing_if = "is_false")]
    pub count: bool,
}

/// An operator and its argument (macros such as `%{tx.x}` expanded per request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// Lower-case name without `@` (`rx`, `pm`, `within`, ...).
    pub name: String,
    /// `!@`: the match is inverted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub negated: bool,
    /// The argument.
    #[serde(default)]
    pub arg: String,
}

/// `setvar:collection.name=value` and its variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVar {
    /// Lower-case variable name without `tx.` (may hold macros).
    pub name: String,
    /// What to do.
    pub op: SetOp,
    /// The value (may hold macros).
    #[serde(default)]
    pub value: String,
}

/// How `setvar` changes a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetOp {
    /// `=value`
    Set,
    /// `=+value`
    Add,
    /// `=-value`
    Sub,
    /// `!name`
    Delete,
}

/// The `ctl` actions the request phases use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Ctl {
    /// `ctl:forceRequestBodyVariable=On`: `REQUEST_BODY` holds the body whatever its type.
    ForceRequestBodyVariable,
    /// `ctl:requestBodyProcessor=NAME`.
    RequestBodyProcessor(String),
    /// `ctl:ruleEngine=Off`: no further rule runs for this request.
    RuleEngineOff,
    /// `ctl:ruleRemoveById=ID`.
    RuleRemoveById(u32),
    /// `ctl:ruleRemoveTargetById=ID;TARGET`.
    RuleRemoveTargetById(u32, String),
}

/// A rule the importer did not take, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Its id (0 for a directive without one).
    pub id: u32,
    /// File and line.
    pub file: String,
    /// Line.
    pub line: u32,
    /// Why.
    pub reason: String,
}

/// Per file: how many rules were imported, left above the paranoia level, or skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSummary {
    /// The file.
    pub file: String,
    /// Rules taken.
    pub imported: u32,
    /// Rules above the paranoia level asked for.
    pub above_paranoia: u32,
    /// Rules that cannot be represented (each listed in the report's `skipped`).
    pub skipped: u32,
}

/// What the importer says beside the rule set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Every rule not taken that is not merely above the paranoia level.
    pub skipped: Vec<Skipped>,
    /// One line per file.
    pub files: Vec<FileSummary>,
}
