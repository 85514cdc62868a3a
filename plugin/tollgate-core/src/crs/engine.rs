//! The request phases of SecLang, run on an imported rule set: what ModSecurity does with the
//! Core Rule Set between receiving a request and deciding, without its backtracking regex
//! engine, persistent collections or disruptive actions.
//!
//! A rule set compiles once ([`Engine::compile`]): patterns into linear-time automata, phrase
//! lists into Aho-Corasick automata, macros into parts. A request ([`Input`]) then runs phase 1
//! (headers), its body is processed (URL-encoded, JSON, multipart or XML, chosen by
//! `Content-Type` as ModSecurity's recommended configuration does, or by `ctl`), and phase 2
//! runs. Each rule reads its variables, transforms each value, applies its operator, and on a
//! match runs its `setvar`s for that value (as libmodsecurity v3 does), then its `ctl`s and
//! `skipAfter` once the whole chain matched. The result is the list of rules that matched, each
//! with the anomaly score its `setvar`s added: the policy's threshold decides, not a rule.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use aho_corasick::AhoCorasick;

use super::pcre;
use super::prefilter;
use super::ruleset::{Ctl, Item, Link, Ruleset, SetOp, Target};
use super::seclang;
use super::transform::Transform;
use crate::Cidr;

/// The collections the engine fills at request time.
pub const SUPPORTED_COLLECTIONS: &[&str] = &[
    "ARGS",
    "ARGS_NAMES",
    "ARGS_GET",
    "ARGS_GET_NAMES",
    "ARGS_POST",
    "ARGS_POST_NAMES",
    "ARGS_COMBINED_SIZE",
    "REQUEST_COOKIES",
    "REQUEST_COOKIES_NAMES",
    "REQUEST_HEADERS",
    "REQUEST_HEADERS_NAMES",
    "REQUEST_URI",
    "REQUEST_URI_RAW",
    "REQUEST_FILENAME",
    "REQUEST_BASENAME",
    "REQUEST_LINE",
    "REQUEST_METHOD",
    "REQUEST_PROTOCOL",
    "QUERY_STRING",
    "REQUEST_BODY",
    "REQUEST_BODY_LENGTH",
    "FILES",
    "FILES_NAMES",
    "FILES_COMBINED_SIZE",
    "MULTIPART_PART_HEADERS",
    "MULTIPART_STRICT_ERROR",
    "MULTIPART_UNMATCHED_BOUNDARY",
    "REQBODY_PROCESSOR",
    "REQBODY_ERROR",
    "REQBODY_ERROR_MSG",
    "XML",
    "TX",
    "REMOTE_ADDR",
    "MATCHED_VAR",
    "MATCHED_VAR_NAME",
    "MATCHED_VARS",
    "MATCHED_VARS_NAMES",
];

/// The operators the engine runs.
pub const SUPPORTED_OPERATORS: &[&str] = &[
    "rx",
    "pm",
    "pmfromfile",
    "detectsqli",
    "detectxss",
    "validatebyterange",
    "validateurlencoding",
    "validateutf8encoding",
    "within",
    "eq",
    "ge",
    "gt",
    "lt",
    "le",
    "streq",
    "strmatch",
    "beginswith",
    "endswith",
    "contains",
    "containsword",
    "ipmatch",
    "unconditionalmatch",
    "nomatch",
];

/// The request as the rules read it.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The method.
    pub method: &'a str,
    /// Path and query, as sent.
    pub uri: &'a str,
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub protocol: &'a str,
    /// Headers, lower-case names (pseudo-headers other than `:authority` are skipped; that one
    /// reads as `host` when no `host` header exists).
    pub headers: &'a [(String, Vec<u8>)],
    /// The body, when the request has one and it was read.
    pub body: Option<&'a [u8]>,
    /// The client address as the policy determined it.
    pub remote_addr: Option<IpAddr>,
}

/// One rule that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// Its id.
    pub id: u32,
    /// What its `setvar`s added to the inbound anomaly score.
    pub score: u32,
    /// Whether ModSecurity would log it (not `nolog`).
    pub logged: bool,
}

/// What the rules found in a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The rules that matched, in evaluation order.
    pub matched: Vec<Match>,
}

impl Outcome {
    /// The inbound anomaly score.
    pub fn score(&self) -> u32 {
        self.matched.iter().map(|m| m.score).sum()
    }
}

/// A rule set compiled for evaluation.
#[derive(Debug)]
pub struct Engine {
    pub(super) rules: Vec<CRule>,
    pub(super) phase1: Vec<Step>,
    pub(super) phase2: Vec<Step>,
    /// Transaction variables every request starts with (lower-case names): the setup's, the
    /// policy's, and the writes of the actions that open phase 1 (see [`Engine::configure`]).
    pub(super) base: FxHashMap<String, String>,
    /// The rule set's setup variables and the policy's, as configured.
    setup: FxHashMap<String, String>,
    /// libinjection's verdicts on values seen before.
    pub(super) memo: super::memo::Memo,
    /// The links known not to match values seen before.
    pub(super) misses: super::memo::Misses,
    /// Cleared value tables, reused by the requests to come.
    pub(super) tables: super::txn::Tables,
    /// The distinct transformation chains; a link names its chain by index.
    pub(super) chains: Vec<Vec<Transform>>,
    /// Per chain: the chain the prefilter reads it through, the same but for case steps that
    /// only later case-blind steps follow (the prefilter ignores case, so it need not compute
    /// them).
    pub(super) blind: Vec<usize>,
    /// One automaton over the required literals of every pattern (`None`: no pattern has any).
    pub(super) prefilter: Option<Prefilter>,
    /// How many links there are (gids run from 0).
    pub(super) link_count: u32,
    /// The distinct target lists of the links that read only the request's values; a request
    /// resolves each once per phase.
    pub(super) groups: Vec<Group>,
    source: String,
}

/// The required literals of the patterns and the phrases of `@pm`: a hit on literal `i` makes
/// link `links[i]` a candidate (on the value as transformed by that link's chain).
#[derive(Debug)]
pub(super) struct Prefilter {
    /// The literals of two bytes or more (`None`: there are none).
    pub(super) ac: Option<AhoCorasick>,
    pub(super) links: Vec<u32>,
    /// Links with one-byte literals, and those bytes (both cases of a letter): a value holding
    /// one of them makes the link a candidate. A byte as an automaton pattern would match on
    /// most values and cost a report per occurrence; a set of bytes costs one pass.
    pub(super) bytes: Vec<(u32, [u64; 4])>,
}

/// A target list (with its exclusions) that several links share.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) targets: Vec<CTarget>,
    pub(super) excludes: Vec<CTarget>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    Rule(usize),
    Marker(usize),
}

#[derive(Debug)]
pub(super) struct CRule {
    pub(super) id: u32,
    pub(super) log: bool,
    pub(super) links: Vec<CLink>,
    pub(super) skip_after: Option<usize>,
    /// `true` when the rule reads only transaction variables no rule writes and does not
    /// match on them as configured: it never matches, so it is not evaluated (the paranoia
    /// level's skips, the setup's defaults).
    pub(super) never: bool,
    /// `true` when the rule reads only such variables and matches on them, with no `setvar`,
    /// `ctl` or capture: it always matches (the paranoia level's `skipAfter`s), so it is
    /// recorded without being evaluated.
    pub(super) always: bool,
    /// What an `always` rule adds to the anomaly score.
    pub(super) score: u32,
}

#[derive(Debug)]
pub(super) struct CLink {
    /// Unique across the engine (the prefilters name links by it).
    pub(super) gid: u32,
    pub(super) targets: Vec<CTarget>,
    pub(super) excludes: Vec<CTarget>,
    pub(super) op: COp,
    pub(super) negated: bool,
    pub(super) transforms: Vec<Transform>,
    /// Index of `transforms` in [`Engine::chains`].
    pub(super) chain: usize,
    /// Index in [`Engine::groups`] when every target is one of the request's values (no TX,
    /// no MATCHED_*, no count).
    pub(super) group: Option<u32>,
    /// The pattern runs only on values its chain's prefilter flags.
    pub(super) filtered: bool,
    pub(super) capture: bool,
    pub(super) multi_match: bool,
    /// Its answer on a value depends on the value's bytes alone (see [`super::memo::Misses`]);
    /// with `multiMatch`, the answers of every step together.
    pub(super) pure: bool,
    pub(super) setvars: Vec<CSetVar>,
    pub(super) ctl: Vec<Ctl>,
}

#[derive(Debug, Clone)]
pub(super) struct CTarget {
    pub(super) coll: Coll,
    pub(super) sel: Sel,
    pub(super) count: bool,
}

#[derive(Debug, Clone)]
pub(super) enum Sel {
    All,
    Name(String),
    /// A selector pattern that is a lower-case literal: names holding it (`/__utm/`).
    Contains(Vec<u8>),
    /// A selector pattern `^literal` (`/^header_name_/`).
    Prefix(Vec<u8>),
    Regex(regex::bytes::Regex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coll {
    Args,
    ArgsNames,
    ArgsGet,
    ArgsGetNames,
    ArgsPost,
    ArgsPostNames,
    ArgsCombinedSize,
    Cookies,
    CookiesNames,
    Headers,
    HeadersNames,
    Uri,
    UriRaw,
    Filename,
    Basename,
    Line,
    Method,
    Protocol,
    QueryString,
    Body,
    BodyLength,
    Files,
    FilesNames,
    FilesCombinedSize,
    PartHeaders,
    MultipartStrict,
    MultipartUnmatched,
    ReqbodyProcessor,
    ReqbodyError,
    ReqbodyErrorMsg,
    Xml,
    Tx,
    RemoteAddr,
    MatchedVar,
    MatchedVarName,
    MatchedVars,
    MatchedVarsNames,
    /// A JSON body's arguments (inside ARGS and ARGS_NAMES; no name of its own).
    ArgsJson,
}

/// How many [`Coll`] variants there are.
pub(super) const COLLECTIONS: usize = Coll::ArgsJson as usize + 1;

impl Coll {
    fn from_name(n: &str) -> Option<Coll> {
        Some(match n {
            "ARGS" => Coll::Args,
            "ARGS_NAMES" => Coll::ArgsNames,
            "ARGS_GET" => Coll::ArgsGet,
            "ARGS_GET_NAMES" => Coll::ArgsGetNames,
            "ARGS_POST" => Coll::ArgsPost,
            "ARGS_POST_NAMES" => Coll::ArgsPostNames,
            "ARGS_COMBINED_SIZE" => Coll::ArgsCombinedSize,
            "REQUEST_COOKIES" => Coll::Cookies,
            "REQUEST_COOKIES_NAMES" => Coll::CookiesNames,
            "REQUEST_HEADERS" => Coll::Headers,
            "REQUEST_HEADERS_NAMES" => Coll::HeadersNames,
            "REQUEST_URI" => Coll::Uri,
            "REQUEST_URI_RAW" => Coll::UriRaw,
            "REQUEST_FILENAME" => Coll::Filename,
            "REQUEST_BASENAME" => Coll::Basename,
            "REQUEST_LINE" => Coll::Line,
            "REQUEST_METHOD" => Coll::Method,
            "REQUEST_PROTOCOL" => Coll::Protocol,
            "QUERY_STRING" => Coll::QueryString,
            "REQUEST_BODY" => Coll::Body,
            "REQUEST_BODY_LENGTH" => Coll::BodyLength,
            "FILES" => Coll::Files,
            "FILES_NAMES" => Coll::FilesNames,
            "FILES_COMBINED_SIZE" => Coll::FilesCombinedSize,
            "MULTIPART_PART_HEADERS" => Coll::PartHeaders,
            "MULTIPART_STRICT_ERROR" => Coll::MultipartStrict,
            "MULTIPART_UNMATCHED_BOUNDARY" => Coll::MultipartUnmatched,
            "REQBODY_PROCESSOR" => Coll::ReqbodyProcessor,
            "REQBODY_ERROR" => Coll::ReqbodyError,
            "REQBODY_ERROR_MSG" => Coll::ReqbodyErrorMsg,
            "XML" => Coll::Xml,
            "TX" => Coll::Tx,
            "REMOTE_ADDR" => Coll::RemoteAddr,
            "MATCHED_VAR" => Coll::MatchedVar,
            "MATCHED_VAR_NAME" => Coll::MatchedVarName,
            "MATCHED_VARS" => Coll::MatchedVars,
            "MATCHED_VARS_NAMES" => Coll::MatchedVarsNames,
            _ => return None,
        })
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Coll::Args => "ARGS",
            Coll::ArgsNames => "ARGS_NAMES",
            Coll::ArgsGet => "ARGS_GET",
            Coll::ArgsGetNames => "ARGS_GET_NAMES",
            Coll::ArgsPost => "ARGS_POST",
            Coll::ArgsPostNames => "ARGS_POST_NAMES",
            Coll::ArgsCombinedSize => "ARGS_COMBINED_SIZE",
            Coll::Cookies => "REQUEST_COOKIES",
            Coll::CookiesNames => "REQUEST_COOKIES_NAMES",
            Coll::Headers => "REQUEST_HEADERS",
            Coll::HeadersNames => "REQUEST_HEADERS_NAMES",
            Coll::Uri => "REQUEST_URI",
            Coll::UriRaw => "REQUEST_URI_RAW",
            Coll::Filename => "REQUEST_FILENAME",
            Coll::Basename => "REQUEST_BASENAME",
            Coll::Line => "REQUEST_LINE",
            Coll::Method => "REQUEST_METHOD",
            Coll::Protocol => "REQUEST_PROTOCOL",
            Coll::QueryString => "QUERY_STRING",
            Coll::Body => "REQUEST_BODY",
            Coll::BodyLength => "REQUEST_BODY_LENGTH",
            Coll::Files => "FILES",
            Coll::FilesNames => "FILES_NAMES",
            Coll::FilesCombinedSize => "FILES_COMBINED_SIZE",
            Coll::PartHeaders => "MULTIPART_PART_HEADERS",
            Coll::MultipartStrict => "MULTIPART_STRICT_ERROR",
            Coll::MultipartUnmatched => "MULTIPART_UNMATCHED_BOUNDARY",
            Coll::ReqbodyProcessor => "REQBODY_PROCESSOR",
            Coll::ReqbodyError => "REQBODY_ERROR",
            Coll::ReqbodyErrorMsg => "REQBODY_ERROR_MSG",
            Coll::Xml => "XML",
            Coll::Tx => "TX",
            Coll::RemoteAddr => "REMOTE_ADDR",
            Coll::MatchedVar => "MATCHED_VAR",
            Coll::MatchedVarName => "MATCHED_VAR_NAME",
            Coll::MatchedVars => "MATCHED_VARS",
            Coll::MatchedVarsNames => "MATCHED_VARS_NAMES",
            Coll::ArgsJson => "ARGS",
        }
    }
}

#[derive(Debug)]
pub(super) enum COp {
    Rx(regex::bytes::Regex),
    Pm(AhoCorasick),
    Sqli,
    Xss,
    ByteRange([u64; 4]),
    UrlEncoding,
    Utf8,
    Within(Macro),
    Num(Cmp, Macro),
    Streq(Macro),
    BeginsWith(Macro),
    EndsWith(Macro),
    Contains(Macro),
    ContainsWord(Macro),
    Ip(Vec<Cidr>),
    Always,
    Never,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Cmp {
    Eq,
    Ge,
    Gt,
    Lt,
    Le,
}

/// Text with `%{...}` references, split once at compile time.
#[derive(Debug, Clone)]
pub(super) struct Macro(pub(super) Vec<Part>);

#[derive(Debug, Clone)]
pub(super) enum Part {
    Lit(String),
    Tx(String),
    MatchedVar,
    MatchedVarName,
    RuleId,
    RemoteAddr,
    Header(String),
    Empty,
}

impl Macro {
    fn parse(s: &str) -> Macro {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(p) = rest.find("%{") {
            if p > 0 {
                parts.push(Part::Lit(rest.get(..p).unwrap_or("").into()));
            }
            let after = rest.get(p + 2..).unwrap_or("");
            let Some(end) = after.find('}') else {
                parts.push(Part::Lit(rest.get(p..).unwrap_or("").into()));
                rest = "";
                break;
            };
            let name = after.get(..end).unwrap_or("").to_ascii_lowercase();
            let (coll, key) = name.split_once('.').unwrap_or((name.as_str(), ""));
            parts.push(match (coll, key) {
                ("tx", k) => Part::Tx(k.into()),
                ("matched_var", _) => Part::MatchedVar,
                ("matched_var_name", _) => Part::MatchedVarName,
                ("rule", "id") => Part::RuleId,
                ("remote_addr", _) => Part::RemoteAddr,
                ("request_headers", k) => Part::Header(k.into()),
                _ => Part::Empty,
            });
            rest = after.get(end + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.into()));
        }
        Macro(parts)
    }

    pub(super) fn constant(&self) -> Option<&str> {
        match self.0.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(super) struct CSetVar {
    pub(super) name: Macro,
    /// The name, lower case, when it holds no macro.
    pub(super) lower: Option<String>,
    pub(super) op: SetOp,
    pub(super) value: Macro,
    /// Adds to the inbound anomaly score (`tx.anomaly_score_plN`, `tx.inbound_anomaly_score_plN`).
    pub(super) scores: bool,
}

/// Per-rule changes a policy makes: rules removed, targets removed.
#[derive(Clone, Debug, Default)]
pub struct Exclusions {
    /// Rule ids that never run.
    pub remove: Vec<u32>,
    /// Rule tags whose rules never run.
    pub remove_tags: Vec<String>,
    /// `(rule id, target)`: the target (`ARGS:comment`, `REQUEST_COOKIES:/^_ga/`) is not read
    /// by that rule.
    pub remove_targets: Vec<(u32, String)>,
    /// Targets no rule reads (a password field).
    pub remove_targets_everywhere: Vec<String>,
}

/// Parses `1-255` or `9,10,13,32-126` into a 256-bit set.
pub fn byte_ranges(arg: &str) -> Option<[u64; 4]> {
    let mut set = [0u64; 4];
    for part in arg.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u8>().ok()?, b.trim().parse::<u8>().ok()?),
            None => {
                let v = part.parse::<u8>().ok()?;
                (v, v)
            }
        };
        if a > b {
            return None;
        }
        for v in a..=b {
            if let Some(w) = set.get_mut(usize::from(v / 64)) {
                *w |= 1 << (v % 64);
            }
        }
    }
    Some(set)
}

/// The phrases of a `@pm` or `@pmFromFile` link, as bytes.
fn pm_phrases(l: &Link, set: &Ruleset) -> Vec<Vec<u8>> {
    let arg = &l.op.arg;
    match l.op.name.as_str() {
        "pm" => arg
            .split_whitespace()
            .map(|p| p.as_bytes().to_vec())
            .collect(),
        _ => arg
            .split_whitespace()
            .filter_map(|f| set.data.get(f))
            .flatten()
            .map(|p| p.as_bytes().to_vec())
            .collect(),
    }
}

/// A prefilter literal and the link (gid) it stands for.
type Literal = (Vec<u8>, u32);

fn pm_automaton(phrases: &[String]) -> Result<AhoCorasick, String> {
    aho_corasick::AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .build(phrases.iter().filter(|p| !p.is_empty()))
        .map_err(|e| e.to_string())
}

impl Engine {
    /// Compiles a rule set with the policy's exclusions; every rule that cannot compile is an
    /// error naming its id.
    pub fn compile(set: &Ruleset, ex: &Exclusions) -> Result<Engine, Vec<String>> {
        let mut errors = Vec::new();
        let mut markers: Vec<String> = Vec::new();
        for item in &set.items {
            if let Item::Marker { name } = item {
                markers.push(name.clone());
            }
        }
        let marker_index = |n: &str| markers.iter().position(|m| m == n);
        let mut rules = Vec::new();
        let mut phase1 = Vec::new();
        let mut phase2 = Vec::new();
        let mut chains: Vec<Vec<Transform>> = Vec::new();
        // Per chain: (literal, link gid) pairs for its prefilter.
        let mut literals: Vec<Vec<(Vec<u8>, u32)>> = Vec::new();
        let mut gid = 0u32;
        let mut groups: Vec<Group> = Vec::new();
        let mut group_keys: Vec<String> = Vec::new();
        for item in &set.items {
            match item {
                Item::Marker { name } => {
                    if let Some(i) = marker_index(name) {
                        phase1.push(Step::Marker(i));
                        phase2.push(Step::Marker(i));
                    }
                }
                Item::Rule(r) => {
                    if ex.remove.contains(&r.id)
                        || r.tags.iter().any(|t| ex.remove_tags.iter().any(|x| x == t))
                    {
                        continue;
                    }
                    let skip_after = match &r.skip_after {
                        Some(m) => match marker_index(m) {
                            Some(i) => Some(i),
                            None => {
                                errors
                                    .push(format!("rule {}: skipAfter:{m} names no marker", r.id));
                                continue;
                            }
                        },
                        None => None,
                    };
                    let mut links = Vec::new();
                    let mut ok = true;
                    for l in &r.links {
                        match compile_link(l, set) {
                            Ok((mut c, required)) => {
                                c.gid = gid;
                                gid += 1;
                                c.chain = match chains.iter().position(|x| *x == c.transforms) {
                                    Some(i) => i,
                                    None => {
                                        chains.push(c.transforms.clone());
                                        literals.push(Vec::new());
                                        chains.len() - 1
                                    }
                                };
                                // A phrase list is its own prefilter: a value holding no phrase
                                // cannot match.
                                let required = match (&c.op, required) {
                                    (COp::Pm(_), _) => Some(pm_phrases(l, set)),
                                    (_, r) => r,
                                };
                                if let (Some(req), false) = (required, c.multi_match || c.negated) {
                                    if let Some(list) = literals.get_mut(c.chain) {
                                        list.extend(
                                            req.into_iter()
                                                .filter(|lit| !lit.is_empty())
                                                .map(|lit| (lit.to_ascii_lowercase(), c.gid)),
                                        );
                                        c.filtered = true;
                                    }
                                }
                                links.push(c);
                            }
                            Err(e) => {
                                errors.push(format!("rule {}: {e}", r.id));
                                ok = false;
                            }
                        }
                    }
                    let everywhere = ex.remove_targets_everywhere.iter().map(|t| (&r.id, t));
                    for (id, target) in ex
                        .remove_targets
                        .iter()
                        .map(|(i, t)| (i, t))
                        .chain(everywhere)
                    {
                        if *id != r.id {
                            continue;
                        }
                        match parse_targets(target) {
                            Ok(ts) => {
                                for link in &mut links {
                                    for t in &ts {
                                        match compile_target(t) {
                                            Ok(c) => link.excludes.push(c),
                                            Err(e) => errors.push(format!("rule {id}: {e}")),
                                        }
                                    }
                                }
                            }
                            Err(e) => errors.push(format!("rule {id}: target {target:?}: {e}")),
                        }
                    }
                    if !ok {
                        continue;
                    }
                    for link in &mut links {
                        link.group = group_of(link, &mut groups, &mut group_keys);
                    }
                    let index = rules.len();
                    rules.push(CRule {
                        id: r.id,
                        log: r.log,
                        links,
                        skip_after,
                        never: false,
                        always: false,
                        score: 0,
                    });
                    match r.phase {
                        1 => phase1.push(Step::Rule(index)),
                        _ => phase2.push(Step::Rule(index)),
                    }
                }
            }
        }
        let (all, single): (Vec<Literal>, Vec<Literal>) = literals
            .into_iter()
            .flatten()
            .partition(|(lit, _)| lit.len() > 1);
        let mut bytes: Vec<(u32, [u64; 4])> = Vec::new();
        for (lit, g) in single {
            let Some(&b) = lit.first() else { continue };
            let at = match bytes.iter().position(|(x, _)| *x == g) {
                Some(i) => i,
                None => {
                    bytes.push((g, [0; 4]));
                    bytes.len() - 1
                }
            };
            if let Some((_, set)) = bytes.get_mut(at) {
                for c in [b.to_ascii_lowercase(), b.to_ascii_uppercase()] {
                    if let Some(w) = set.get_mut(usize::from(c / 64)) {
                        *w |= 1 << (c % 64);
                    }
                }
            }
        }
        let ac = if all.is_empty() {
            None
        } else {
            match aho_corasick::AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .build(all.iter().map(|(lit, _)| lit))
            {
                Ok(ac) => Some(ac),
                Err(e) => {
                    errors.push(format!("prefilter: {e}"));
                    None
                }
            }
        };
        let prefilter = (ac.is_some() || !bytes.is_empty()).then(|| Prefilter {
            ac,
            links: all.iter().map(|(_, g)| *g).collect(),
            bytes,
        });
        let mut blind = Vec::with_capacity(chains.len());
        for i in 0..chains.len() {
            let reduced = case_blind(chains.get(i).map_or(&[][..], Vec::as_slice));
            let at = match chains.iter().position(|c| *c == reduced) {
                Some(j) => j,
                None => {
                    chains.push(reduced);
                    chains.len() - 1
                }
            };
            blind.push(at);
        }
        // The reduced chains read through themselves.
        for i in blind.len()..chains.len() {
            blind.push(i);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut engine = Engine {
            rules,
            phase1,
            phase2,
            base: FxHashMap::default(),
            memo: super::memo::Memo::default(),
            misses: super::memo::Misses::default(),
            tables: super::txn::Tables::default(),
            setup: set
                .setup
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            chains,
            blind,
            prefilter,
            link_count: gid,
            groups,
            source: set.source.clone(),
        };
        engine.configure(set.paranoia, &[]);
        Ok(engine)
    }

    /// Sets the executing paranoia level (at most the imported one) and the setup variables a
    /// policy overrides; every later request starts from them.
    pub fn configure(&mut self, paranoia: u8, tx: &[(String, String)]) {
        for (k, v) in tx {
            self.setup.insert(k.to_ascii_lowercase(), v.clone());
        }
        for key in [
            "paranoia_level",
            "executing_paranoia_level",
            "blocking_paranoia_level",
            "detection_paranoia_level",
        ] {
            self.setup.insert(key.into(), paranoia.to_string());
        }
        self.base = self.setup.clone();
        for r in &mut self.rules {
            r.never = false;
            r.always = false;
            r.score = 0;
        }
        self.fold();
        self.fold_opening();
    }

    /// Runs the actions that open phase 1 (`SecAction`s of constant `setvar`s, such as the
    /// initialisation's scores at 0) into the base, once: before them only folded rules run,
    /// so every request would write the same values at the same point. They stay recorded as
    /// matched.
    fn fold_opening(&mut self) {
        for step in &self.phase1 {
            let Step::Rule(i) = *step else { continue };
            let Some(r) = self.rules.get(i) else { break };
            if r.never {
                continue;
            }
            if r.always && r.skip_after.is_none() {
                continue;
            }
            // A `SecAction`, or a rule over transaction variables only: here they hold the
            // base's values, so the base decides it.
            let action = matches!(r.links.as_slice(), [l] if l.targets.is_empty());
            let over_tx = r.links.iter().all(|l| {
                reads_only_tx(l, &|_| true, &|m| {
                    m.0.iter().all(|p| matches!(p, Part::Lit(_) | Part::Tx(_)))
                })
            });
            let constant = r.skip_after.is_none()
                && r.links.iter().all(|l| {
                    l.ctl.is_empty()
                        && !l.capture
                        && l.setvars.iter().all(|sv| {
                            sv.lower.is_some()
                                && sv
                                    .value
                                    .0
                                    .iter()
                                    .all(|p| matches!(p, Part::Lit(_) | Part::Tx(_)))
                        })
                });
            if !(action || over_tx) || !constant {
                break;
            }
            if !action && !super::txn::matches_on_base(self, r) {
                if let Some(r) = self.rules.get_mut(i) {
                    r.never = true;
                }
                continue;
            }
            let Some(r) = self.rules.get(i) else { break };
            let mut score = 0u32;
            for sv in r.links.iter().flat_map(|l| l.setvars.iter()) {
                let Some(name) = sv.lower.clone() else {
                    continue;
                };
                let value: String = sv
                    .value
                    .0
                    .iter()
                    .map(|p| match p {
                        Part::Lit(s) => s.as_str(),
                        Part::Tx(k) => self.base.get(k).map_or("", String::as_str),
                        _ => "",
                    })
                    .collect();
                match sv.op {
                    SetOp::Set => {
                        self.base.insert(name, value);
                    }
                    SetOp::Delete => {
                        self.base.remove(&name);
                    }
                    SetOp::Add | SetOp::Sub => {
                        let d = super::txn::atoi(value.as_bytes());
                        let cur = self
                            .base
                            .get(&name)
                            .map_or(0, |v| super::txn::atoi(v.as_bytes()));
                        let new = if sv.op == SetOp::Add {
                            cur.saturating_add(d)
                        } else {
                            cur.saturating_sub(d)
                        };
                        self.base.insert(name, new.to_string());
                        if sv.scores && sv.op == SetOp::Add {
                            score = score.saturating_add(u32::try_from(d.max(0)).unwrap_or(0));
                        }
                    }
                }
            }
            if let Some(r) = self.rules.get_mut(i) {
                r.always = true;
                r.score = score;
            }
        }
    }

    /// Marks the rules that cannot match with this configuration (see [`CRule::never`]).
    fn fold(&mut self) {
        // `&TX:x "@eq 0"` with x set up: false on every request, so its writes never happen.
        let default_of_set = |r: &CRule, base: &FxHashMap<String, String>| match r.links.as_slice()
        {
            [l] => {
                matches!(
                    (l.targets.as_slice(), &l.op),
                    ([t], COp::Num(Cmp::Eq, m))
                        if t.count && t.coll == Coll::Tx
                            && matches!(&t.sel, Sel::Name(n) if base.contains_key(n))
                            && m.constant().is_some_and(|c| c.trim() == "0")
                            && !l.negated
                )
            }
            _ => false,
        };
        let mut written: Vec<Vec<String>> = Vec::new();
        for r in &self.rules {
            if default_of_set(r, &self.base) {
                continue;
            }
            // (`capture` writes TX:0 to TX:9, which `fixed` never counts as fixed.)
            for l in &r.links {
                for sv in &l.setvars {
                    // The literal parts of the name: a variable is written if it holds them all.
                    written.push(
                        sv.name
                            .0
                            .iter()
                            .filter_map(|p| match p {
                                Part::Lit(s) => Some(s.to_ascii_lowercase()),
                                _ => None,
                            })
                            .collect(),
                    );
                }
            }
        }
        let fixed = |n: &str| {
            !n.is_empty()
                && !n.bytes().all(|b| b.is_ascii_digit())
                && !written
                    .iter()
                    .any(|parts| parts.iter().all(|p| n.contains(p.as_str())))
        };
        let static_macro = |m: &Macro| {
            m.0.iter().all(|p| match p {
                Part::Lit(_) => true,
                Part::Tx(k) => fixed(k),
                _ => false,
            })
        };
        let mut verdicts = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let foldable = r
                .links
                .iter()
                .all(|l| reads_only_tx(l, &fixed, &static_macro));
            let matches = foldable && super::txn::matches_on_base(self, r);
            let inert = r
                .links
                .iter()
                .all(|l| l.setvars.is_empty() && l.ctl.is_empty() && !l.capture);
            verdicts.push((foldable && !matches, matches && inert));
        }
        for (r, (never, always)) in self.rules.iter_mut().zip(verdicts) {
            r.never = never;
            r.always = always;
        }
    }

    /// The rule set's name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How many rules run.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Every rule id, in evaluation order.
    pub fn rule_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.rules.iter().map(|r| r.id)
    }

    /// Forgets every value remembered across requests (libinjection's verdicts, the links
    /// known not to match), as a push does by compiling a new engine: what measures the
    /// engine's growth with the size of a request compares cold requests of both sizes,
    /// since the bounded tables hold all of a small request's values and few of a large one's.
    pub fn forget(&self) {
        self.memo.clear();
        self.misses.clear();
    }

    /// Runs both request phases over a request.
    pub fn evaluate(&self, input: &Input<'_>) -> Outcome {
        super::txn::evaluate(self, input)
    }
}

/// Whether a link reads only transaction variables, by names `name_ok` accepts, untransformed,
/// through an operator whose argument `macro_ok` accepts: a link the base values can decide.
fn reads_only_tx(
    l: &CLink,
    name_ok: &dyn Fn(&str) -> bool,
    macro_ok: &dyn Fn(&Macro) -> bool,
) -> bool {
    !l.targets.is_empty()
        && l.transforms.is_empty()
        && !l.multi_match
        && l.targets
            .iter()
            .all(|t| t.coll == Coll::Tx && matches!(&t.sel, Sel::Name(n) if name_ok(n)))
        && match &l.op {
            COp::Num(_, m)
            | COp::Within(m)
            | COp::Streq(m)
            | COp::BeginsWith(m)
            | COp::EndsWith(m)
            | COp::Contains(m)
            | COp::ContainsWord(m) => macro_ok(m),
            COp::Rx(_) | COp::Pm(_) | COp::Always | COp::Never => true,
            _ => false,
        }
}

fn parse_targets(s: &str) -> Result<Vec<Target>, String> {
    Ok(seclang::variables(s)?
        .into_iter()
        .map(|v| {
            let (name, regex) = match v.selector {
                Some(seclang::Selector::Name(n)) => (Some(n), None),
                Some(seclang::Selector::Regex(r)) => (None, Some(r)),
                None => (None, None),
            };
            Target {
                collection: v.collection,
                name,
                regex,
                exclude: false,
                count: v.count,
            }
        })
        .collect())
}

fn compile_target(t: &Target) -> Result<CTarget, String> {
    let coll = Coll::from_name(&t.collection)
        .ok_or_else(|| format!("variable {} is not supported", t.collection))?;
    let sel = match (&t.name, &t.regex) {
        (Some(n), _) => Sel::Name(n.to_ascii_lowercase()),
        (None, Some(r)) => {
            let re =
                pcre::build(&format!("(?i){r}")).map_err(|e| format!("selector /{r}/: {}", e.0))?;
            literal_selector(r).unwrap_or(Sel::Regex(re))
        }
        (None, None) => Sel::All,
    };
    Ok(CTarget {
        coll,
        sel,
        count: t.count,
    })
}

/// A selector pattern that only asks for a literal (`__utm`, `^header_name_`, `rfi_parameter_.*`,
/// `multipart_headers_content_types_*`), as the literal test: names are short and many, and a
/// regular expression per name and rule costs more than the rule.
fn literal_selector(r: &str) -> Option<Sel> {
    let (anchored, rest) = match r.strip_prefix('^') {
        Some(x) => (true, x),
        None => (false, r),
    };
    // A trailing `.*`, or `c*` after a literal, adds nothing to an unanchored-at-the-end test.
    let mut body = rest.strip_suffix(".*").unwrap_or(rest);
    if let Some(x) = body.strip_suffix('*') {
        let mut chars = x.chars();
        match chars.next_back() {
            Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '-' => body = chars.as_str(),
            _ => return None,
        }
    }
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return None;
    }
    let lit = body.to_ascii_lowercase().into_bytes();
    Some(if anchored {
        Sel::Prefix(lit)
    } else {
        Sel::Contains(lit)
    })
}

/// The group a link's targets belong to (added when new), or `None` when a target is not one
/// of the request's values.
fn group_of(link: &CLink, groups: &mut Vec<Group>, keys: &mut Vec<String>) -> Option<u32> {
    let plain = |t: &CTarget| {
        !t.count
            && !matches!(
                t.coll,
                Coll::Tx
                    | Coll::MatchedVar
                    | Coll::MatchedVarName
                    | Coll::MatchedVars
                    | Coll::MatchedVarsNames
                    | Coll::ReqbodyProcessor
            )
    };
    if link.targets.is_empty() || !link.targets.iter().all(plain) {
        return None;
    }
    let key = format!("{:?} ! {:?}", link.targets, link.excludes);
    let at = match keys.iter().position(|k| *k == key) {
        Some(i) => i,
        None => {
            keys.push(key);
            groups.push(Group {
                targets: link.targets.clone(),
                excludes: link.excludes.clone(),
            });
            groups.len() - 1
        }
    };
    u32::try_from(at).ok()
}

/// `chain` without the case steps (`t:lowercase`) that only steps indifferent to letter case
/// follow: through either, a value is the same but for ASCII case.
fn case_blind(chain: &[Transform]) -> Vec<Transform> {
    use Transform::*;
    // Steps whose result, up to ASCII case, does not depend on the case of their input.
    let indifferent = |t: &Transform| {
        matches!(
            t,
            Lowercase
                | Uppercase
                | RemoveNulls
                | ReplaceNulls
                | RemoveWhitespace
                | CompressWhitespace
                | Trim
                | TrimLeft
                | TrimRight
                | NormalizePath
                | NormalizePathWin
                | ReplaceComments
                | RemoveComments
                | RemoveCommentsChar
                | UrlDecode
                | UrlDecodeUni
                | CmdLine
                | Utf8ToUnicode
                | Length
        )
    };
    chain
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            !matches!(t, Lowercase | Uppercase)
                || !chain.get(i + 1..).unwrap_or(&[]).iter().all(indifferent)
        })
        .map(|(_, t)| *t)
        .collect()
}

/// A link, and for a pattern the literals one of which every match contains.
#[allow(clippy::type_complexity)]
fn compile_link(l: &Link, set: &Ruleset) -> Result<(CLink, Option<Vec<Vec<u8>>>), String> {
    let mut required = None;
    let mut targets = Vec::new();
    let mut excludes = Vec::new();
    for t in &l.targets {
        let c = compile_target(t)?;
        if t.exclude {
            excludes.push(c);
        } else {
            targets.push(c);
        }
    }
    let arg = &l.op.arg;
    let m = || Macro::parse(arg);
    let op = match l.op.name.as_str() {
        "rx" => {
            let re = pcre::build(arg).map_err(|e| format!("pattern: {}", e.0))?;
            required = pcre::translate(arg)
                .ok()
                .and_then(|t| prefilter::required(&t));
            COp::Rx(re)
        }
        "pm" => COp::Pm(pm_automaton(
            &arg.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>(),
        )?),
        "pmfromfile" => {
            let mut phrases = Vec::new();
            for f in arg.split_whitespace() {
                let list = set
                    .data
                    .get(f)
                    .ok_or_else(|| format!("data file {f} is not in the rule set"))?;
                phrases.extend(list.iter().cloned());
            }
            COp::Pm(pm_automaton(&phrases)?)
        }
        "detectsqli" => COp::Sqli,
        "detectxss" => COp::Xss,
        "validatebyterange" => COp::ByteRange(
            byte_ranges(arg).ok_or_else(|| format!("byte range {arg:?} is malformed"))?,
        ),
        "validateurlencoding" => COp::UrlEncoding,
        "validateutf8encoding" => COp::Utf8,
        "within" => COp::Within(m()),
        "eq" => COp::Num(Cmp::Eq, m()),
        "ge" => COp::Num(Cmp::Ge, m()),
        "gt" => COp::Num(Cmp::Gt, m()),
        "lt" => COp::Num(Cmp::Lt, m()),
        "le" => COp::Num(Cmp::Le, m()),
        "streq" => COp::Streq(m()),
        "beginswith" => COp::BeginsWith(m()),
        "endswith" => COp::EndsWith(m()),
        "contains" | "strmatch" => COp::Contains(m()),
        "containsword" => COp::ContainsWord(m()),
        "ipmatch" => COp::Ip(
            arg.split(',')
                .map(|p| {
                    p.trim()
                        .parse::<Cidr>()
                        .map_err(|_| format!("address {p:?} is malformed"))
                })
                .collect::<Result<_, _>>()?,
        ),
        "unconditionalmatch" => COp::Always,
        "nomatch" => COp::Never,
        other => return Err(format!("operator @{other} is not supported")),
    };
    let pure = match &op {
        COp::Within(m)
        | COp::Num(_, m)
        | COp::Streq(m)
        | COp::BeginsWith(m)
        | COp::EndsWith(m)
        | COp::Contains(m)
        | COp::ContainsWord(m) => m.constant().is_some(),
        _ => true,
    };
    Ok((
        CLink {
            gid: 0,
            targets,
            excludes,
            op,
            pure,
            negated: l.op.negated,
            transforms: l.transforms.clone(),
            chain: 0,
            group: None,
            filtered: false,
            capture: l.capture,
            multi_match: l.multi_match,
            setvars: l
                .setvars
                .iter()
                .map(|s| {
                    let n = s.name.to_ascii_lowercase();
                    let scores = s.op == SetOp::Add
                        && !n.starts_with("outbound")
                        && (n.starts_with("anomaly_score_pl")
                            || n.starts_with("inbound_anomaly_score_pl"));
                    let name = Macro::parse(&s.name);
                    CSetVar {
                        lower: name.constant().map(str::to_ascii_lowercase),
                        name,
                        op: s.op,
                        value: Macro::parse(&s.value),
                        scores,
                    }
                })
                .collect(),
            ctl: l.ctl.clone(),
        },
        required,
    ))
}

impl Engine {
    /// How many pattern links run behind a literal prefilter, and how many run on every value
    /// (for the benchmarks' notes).
    pub fn prefilter_coverage(&self) -> (usize, usize) {
        let links = self.rules.iter().flat_map(|r| r.links.iter());
        let rx: Vec<&CLink> = links.filter(|l| matches!(l.op, COp::Rx(_))).collect();
        let filtered = rx.iter().filter(|l| l.filtered).count();
        (filtered, rx.len() - filtered)
    }

    /// How many rules the configuration folds away (they cannot match).
    pub fn folded(&self) -> usize {
        self.rules.iter().filter(|r| r.never).count()
    }
}
