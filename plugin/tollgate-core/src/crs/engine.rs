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

use std::collections::HashMap;
use std::net::IpAddr;

use aho_corasick::AhoCorasick;

use super::body::{self, Multipart, Pair};
use super::pcre;
use super::ruleset::{Ctl, Item, Link, Ruleset, SetOp, Target};
use super::seclang;
use super::transform::{self, Transform};
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
    rules: Vec<CRule>,
    phase1: Vec<Step>,
    phase2: Vec<Step>,
    setup: Vec<(String, String)>,
    source: String,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Rule(usize),
    Marker(usize),
}

#[derive(Debug)]
struct CRule {
    id: u32,
    log: bool,
    links: Vec<CLink>,
    skip_after: Option<usize>,
}

#[derive(Debug)]
struct CLink {
    targets: Vec<CTarget>,
    excludes: Vec<CTarget>,
    op: COp,
    negated: bool,
    transforms: Vec<Transform>,
    capture: bool,
    multi_match: bool,
    setvars: Vec<CSetVar>,
    ctl: Vec<Ctl>,
}

#[derive(Debug)]
struct CTarget {
    coll: Coll,
    sel: Sel,
    count: bool,
}

#[derive(Debug)]
enum Sel {
    All,
    Name(String),
    Regex(regex::bytes::Regex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coll {
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
}

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

    fn label(self) -> &'static str {
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
        }
    }
}

#[derive(Debug)]
enum COp {
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
enum Cmp {
    Eq,
    Ge,
    Gt,
    Lt,
    Le,
}

/// Text with `%{...}` references, split once at compile time.
#[derive(Debug, Clone)]
struct Macro(Vec<Part>);

#[derive(Debug, Clone)]
enum Part {
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

    fn constant(&self) -> Option<&str> {
        match self.0.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct CSetVar {
    name: Macro,
    op: SetOp,
    value: Macro,
    /// Adds to the inbound anomaly score (`tx.anomaly_score_plN`, `tx.inbound_anomaly_score_plN`).
    scores: bool,
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
                            Ok(c) => links.push(c),
                            Err(e) => {
                                errors.push(format!("rule {}: {e}", r.id));
                                ok = false;
                            }
                        }
                    }
                    for (id, target) in &ex.remove_targets {
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
                    let index = rules.len();
                    rules.push(CRule {
                        id: r.id,
                        log: r.log,
                        links,
                        skip_after,
                    });
                    match r.phase {
                        1 => phase1.push(Step::Rule(index)),
                        _ => phase2.push(Step::Rule(index)),
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Engine {
            rules,
            phase1,
            phase2,
            setup: set
                .setup
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            source: set.source.clone(),
        })
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

    /// Runs both request phases. `paranoia` sets the executing paranoia level (at most the
    /// imported one); `tx` adds or overrides setup variables.
    pub fn evaluate(&self, input: &Input<'_>, paranoia: u8, tx: &[(String, String)]) -> Outcome {
        let mut t = Txn::new(self, input, paranoia, tx);
        t.run(self, 1);
        if !t.engine_off {
            t.process_body();
            t.run(self, 2);
        }
        t.outcome
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
            Sel::Regex(re)
        }
        (None, None) => Sel::All,
    };
    Ok(CTarget {
        coll,
        sel,
        count: t.count,
    })
}

fn compile_link(l: &Link, set: &Ruleset) -> Result<CLink, String> {
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
        "rx" => COp::Rx(pcre::build(arg).map_err(|e| format!("pattern: {}", e.0))?),
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
    Ok(CLink {
        targets,
        excludes,
        op,
        negated: l.op.negated,
        transforms: l.transforms.clone(),
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
                CSetVar {
                    name: Macro::parse(&s.name),
                    op: s.op,
                    value: Macro::parse(&s.value),
                    scores,
                }
            })
            .collect(),
        ctl: l.ctl.clone(),
    })
}

/// One value a target yields: its name (`ARGS:q`) and bytes.
struct Val {
    name: String,
    value: Vec<u8>,
}

/// A request in evaluation.
struct Txn<'a> {
    input: &'a Input<'a>,
    headers: Vec<(String, &'a [u8])>,
    args_get: Vec<Pair>,
    args_post: Vec<Pair>,
    /// JSON bodies' arguments: in ARGS and ARGS_NAMES, not ARGS_POST (as libmodsecurity).
    args_json: Vec<Pair>,
    cookies: Vec<Pair>,
    /// The URI up to any `#`.
    uri: &'a str,
    multipart: Option<Multipart>,
    xml: Option<Vec<u8>>,
    request_body: Option<&'a [u8]>,
    processor: Option<String>,
    reqbody_error: Option<&'static str>,
    tx: HashMap<String, String>,
    matched_var: Vec<u8>,
    matched_var_name: String,
    matched_vars: Vec<(String, Vec<u8>)>,
    removed: Vec<u32>,
    removed_targets: Vec<(u32, String)>,
    engine_off: bool,
    phase: u8,
    scratch: transform::Scratch,
    outcome: Outcome,
}

impl<'a> Txn<'a> {
    fn new(
        engine: &Engine,
        input: &'a Input<'a>,
        paranoia: u8,
        extra: &[(String, String)],
    ) -> Self {
        let mut tx: HashMap<String, String> = engine.setup.iter().cloned().collect();
        for (k, v) in extra {
            tx.insert(k.to_ascii_lowercase(), v.clone());
        }
        let pl = paranoia.to_string();
        for key in [
            "paranoia_level",
            "executing_paranoia_level",
            "blocking_paranoia_level",
            "detection_paranoia_level",
        ] {
            tx.insert(key.into(), pl.clone());
        }
        let mut headers: Vec<(String, &[u8])> = Vec::with_capacity(input.headers.len());
        let has_host = input.headers.iter().any(|(k, _)| k == "host");
        for (k, v) in input.headers {
            if k == ":authority" && !has_host {
                headers.push(("host".into(), v.as_slice()));
            } else if !k.starts_with(':') {
                headers.push((k.to_ascii_lowercase(), v.as_slice()));
            }
        }
        let uri = input.uri.split_once('#').map_or(input.uri, |(u, _)| u);
        let mut args_get = Vec::new();
        if let Some((_, q)) = uri.split_once('?') {
            body::urlencoded(q.as_bytes(), &mut args_get);
        }
        let mut cookies = Vec::new();
        for (k, v) in &headers {
            if k == "cookie" {
                body::cookies(v, &mut cookies);
            }
        }
        // The body processor ModSecurity's recommended configuration picks by Content-Type.
        let processor = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .and_then(|(_, v)| processor_for(v));
        Txn {
            input,
            headers,
            args_get,
            args_post: Vec::new(),
            args_json: Vec::new(),
            cookies,
            uri,
            multipart: None,
            xml: None,
            request_body: None,
            processor,
            reqbody_error: None,
            tx,
            matched_var: Vec::new(),
            matched_var_name: String::new(),
            matched_vars: Vec::new(),
            removed: Vec::new(),
            removed_targets: Vec::new(),
            engine_off: false,
            phase: 1,
            scratch: transform::Scratch::default(),
            outcome: Outcome::default(),
        }
    }

    fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn process_body(&mut self) {
        self.phase = 2;
        let Some(b) = self.input.body else {
            return;
        };
        // REQUEST_BODY holds the raw body whatever the processor.
        self.request_body = Some(b);
        match self.processor.as_deref() {
            Some("URLENCODED") => body::urlencoded(b, &mut self.args_post),
            Some("JSON") => {
                if let Err(e) = body::json(b, &mut self.args_json) {
                    self.reqbody_error = Some(e);
                }
            }
            Some("MULTIPART") => {
                let ct = self.header("content-type").unwrap_or(&[]);
                let m = body::multipart(ct, b);
                self.reqbody_error = m.error;
                self.args_post.extend(m.args.iter().cloned());
                self.multipart = Some(m);
            }
            Some("XML") => {
                // After an error XML:/* still holds the text read before it, as libxml2
                // leaves it.
                let p = body::xml_parse(b);
                self.reqbody_error = p.error;
                self.xml = Some(p.text);
            }
            _ => {}
        }
    }

    fn run(&mut self, engine: &Engine, phase: u8) {
        let steps = if phase == 1 {
            &engine.phase1
        } else {
            &engine.phase2
        };
        let mut skip_to: Option<usize> = None;
        for step in steps {
            if self.engine_off {
                return;
            }
            match *step {
                Step::Marker(m) => {
                    if skip_to == Some(m) {
                        skip_to = None;
                    }
                }
                Step::Rule(_) if skip_to.is_some() => {}
                Step::Rule(i) => {
                    let Some(rule) = engine.rules.get(i) else {
                        continue;
                    };
                    if self.removed.contains(&rule.id) {
                        continue;
                    }
                    if self.rule(rule) {
                        if let Some(m) = rule.skip_after {
                            skip_to = Some(m);
                        }
                    }
                }
            }
        }
    }

    /// Evaluates a rule and its chain; records it when the whole chain matched.
    fn rule(&mut self, rule: &CRule) -> bool {
        // Matched variables are cleared after every rule.
        self.matched_vars.clear();
        self.matched_var.clear();
        self.matched_var_name.clear();
        let mut score = 0;
        for link in &rule.links {
            let (matched, s) = self.link(rule.id, link);
            score += s;
            if !matched {
                return false;
            }
        }
        for link in &rule.links {
            for c in &link.ctl {
                match c {
                    // REQUEST_BODY is always filled here.
                    Ctl::ForceRequestBodyVariable => {}
                    Ctl::RequestBodyProcessor(p) => self.processor = Some(p.clone()),
                    Ctl::RuleEngineOff => self.engine_off = true,
                    Ctl::RuleRemoveById(id) => self.removed.push(*id),
                    Ctl::RuleRemoveTargetById(id, t) => self.removed_targets.push((*id, t.clone())),
                }
            }
        }
        self.outcome.matched.push(Match {
            id: rule.id,
            score,
            logged: rule.log,
        });
        true
    }

    /// Evaluates one link; returns whether any value matched and the score its setvars added.
    fn link(&mut self, id: u32, link: &CLink) -> (bool, u32) {
        let mut vals = Vec::new();
        for t in &link.targets {
            self.collect(t, &mut vals);
        }
        if !link.excludes.is_empty() {
            vals.retain(|v| !link.excludes.iter().any(|x| excluded(x, &v.name)));
        }
        if !self.removed_targets.is_empty() {
            let gone: Vec<&String> = self
                .removed_targets
                .iter()
                .filter(|(r, _)| *r == id)
                .map(|(_, t)| t)
                .collect();
            vals.retain(|v| !gone.iter().any(|t| t.eq_ignore_ascii_case(&v.name)));
        }
        if link.targets.is_empty() {
            // SecAction, or a rule whose only targets are computed elsewhere.
            vals.push(Val {
                name: String::new(),
                value: Vec::new(),
            });
        }
        let mut any = false;
        let mut score = 0;
        for v in vals {
            // Every success runs the link's actions: once, or with `multiMatch` once per
            // transformation step that changed the value (and the raw value first).
            let mut hits = Vec::new();
            if link.multi_match {
                let mut cur = v.value.clone();
                if let Some(c) = self.test(link, &cur) {
                    hits.push((c, cur.clone()));
                }
                for t in &link.transforms {
                    let mut next = Vec::new();
                    if t.apply(&cur, &mut next) {
                        cur = next;
                        if let Some(c) = self.test(link, &cur) {
                            hits.push((c, cur.clone()));
                        }
                    }
                }
            } else {
                let value = if link.transforms.is_empty() {
                    v.value.clone()
                } else {
                    transform::apply_all(&link.transforms, &v.value, &mut self.scratch)
                };
                if let Some(c) = self.test(link, &value) {
                    hits.push((c, value));
                }
            }
            for (captures, value) in hits {
                any = true;
                if link.capture {
                    for (i, c) in captures.into_iter().enumerate() {
                        self.tx
                            .insert(i.to_string(), String::from_utf8_lossy(&c).into_owned());
                    }
                }
                self.matched_var = value;
                self.matched_var_name = v.name.clone();
                self.matched_vars
                    .push((self.matched_var_name.clone(), self.matched_var.clone()));
                for sv in &link.setvars {
                    score += self.setvar(id, sv);
                }
            }
        }
        (any, score)
    }

    /// The operator over one value: `Some(captures)` on a match (after negation).
    fn test(&self, link: &CLink, v: &[u8]) -> Option<Vec<Vec<u8>>> {
        let (hit, caps) = self.op(&link.op, v, link.capture);
        if hit != link.negated {
            Some(caps)
        } else {
            None
        }
    }

    fn op(&self, op: &COp, v: &[u8], capture: bool) -> (bool, Vec<Vec<u8>>) {
        let plain = |b: bool| (b, Vec::new());
        match op {
            COp::Rx(re) => {
                if capture {
                    match re.captures(v) {
                        Some(c) => (
                            true,
                            c.iter()
                                .take(10)
                                .map(|m| m.map(|m| m.as_bytes().to_vec()).unwrap_or_default())
                                .collect(),
                        ),
                        None => plain(false),
                    }
                } else {
                    plain(re.is_match(v))
                }
            }
            COp::Pm(ac) => match ac.find(v) {
                Some(m) => (true, vec![v.get(m.range()).unwrap_or(&[]).to_vec()]),
                None => plain(false),
            },
            COp::Sqli => {
                let r = libinjectionrs::detect_sqli(v);
                if r.is_injection() {
                    let fp = r.fingerprint.map(|f| f.to_string()).unwrap_or_default();
                    (true, vec![fp.into_bytes()])
                } else {
                    plain(false)
                }
            }
            COp::Xss => {
                if libinjectionrs::detect_xss(v).is_injection() {
                    (true, vec![v.to_vec()])
                } else {
                    plain(false)
                }
            }
            COp::ByteRange(set) => plain(v.iter().any(|b| {
                set.get(usize::from(b / 64))
                    .is_some_and(|w| (w >> (b % 64)) & 1 == 0)
            })),
            COp::UrlEncoding => plain(bad_url_encoding(v)),
            COp::Utf8 => plain(std::str::from_utf8(v).is_err()),
            COp::Within(m) => {
                let hay = self.expand(m);
                plain(v.is_empty() || memchr::memmem::find(hay.as_bytes(), v).is_some())
            }
            COp::Num(cmp, m) => {
                let a = atoi(v);
                let b = atoi(self.expand(m).as_bytes());
                plain(match cmp {
                    Cmp::Eq => a == b,
                    Cmp::Ge => a >= b,
                    Cmp::Gt => a > b,
                    Cmp::Lt => a < b,
                    Cmp::Le => a <= b,
                })
            }
            COp::Streq(m) => plain(self.expand(m).as_bytes() == v),
            COp::BeginsWith(m) => plain(v.starts_with(self.expand(m).as_bytes())),
            COp::EndsWith(m) => plain(v.ends_with(self.expand(m).as_bytes())),
            COp::Contains(m) => {
                let needle = self.expand(m);
                plain(memchr::memmem::find(v, needle.as_bytes()).is_some())
            }
            COp::ContainsWord(m) => plain(contains_word(v, self.expand(m).as_bytes())),
            COp::Ip(list) => {
                let ip = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<IpAddr>().ok());
                plain(ip.is_some_and(|ip| list.iter().any(|c| c.contains(ip))))
            }
            COp::Always => plain(true),
            COp::Never => plain(false),
        }
    }

    fn expand(&self, m: &Macro) -> String {
        if let Some(c) = m.constant() {
            return c.to_string();
        }
        let mut out = String::new();
        for p in &m.0 {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Tx(k) => {
                    if let Some(v) = self.tx.get(k) {
                        out.push_str(v);
                    }
                }
                Part::MatchedVar => out.push_str(&String::from_utf8_lossy(&self.matched_var)),
                Part::MatchedVarName => out.push_str(&self.matched_var_name),
                Part::RuleId => {}
                Part::RemoteAddr => {
                    if let Some(ip) = self.input.remote_addr {
                        out.push_str(&ip.to_string());
                    }
                }
                Part::Header(h) => {
                    if let Some(v) = self.header(h) {
                        out.push_str(&String::from_utf8_lossy(v));
                    }
                }
                Part::Empty => {}
            }
        }
        out
    }

    /// Runs one setvar; returns what it added to the inbound anomaly score.
    fn setvar(&mut self, _id: u32, sv: &CSetVar) -> u32 {
        let name = self.expand(&sv.name).to_ascii_lowercase();
        let value = self.expand(&sv.value);
        match sv.op {
            SetOp::Set => {
                self.tx.insert(name, value);
                0
            }
            SetOp::Delete => {
                self.tx.remove(&name);
                0
            }
            SetOp::Add | SetOp::Sub => {
                let cur = self.tx.get(&name).map(|v| atoi(v.as_bytes())).unwrap_or(0);
                let d = atoi(value.as_bytes());
                let new = if sv.op == SetOp::Add {
                    cur.saturating_add(d)
                } else {
                    cur.saturating_sub(d)
                };
                self.tx.insert(name, new.to_string());
                if sv.scores && sv.op == SetOp::Add {
                    u32::try_from(d.max(0)).unwrap_or(0)
                } else {
                    0
                }
            }
        }
    }

    /// The values a target yields.
    fn collect(&self, t: &CTarget, out: &mut Vec<Val>) {
        let start = out.len();
        let label = t.coll.label();
        let single = |out: &mut Vec<Val>, v: &[u8]| {
            out.push(Val {
                name: label.to_string(),
                value: v.to_vec(),
            })
        };
        let pairs = |out: &mut Vec<Val>, list: &[Pair], names: bool| {
            for p in list {
                if !selected(&t.sel, &p.name) {
                    continue;
                }
                let name = format!("{label}:{}", String::from_utf8_lossy(&p.name));
                out.push(Val {
                    name,
                    value: if names {
                        p.name.clone()
                    } else {
                        p.value.clone()
                    },
                });
            }
        };
        let body_phase = self.phase >= 2;
        let post: &[Pair] = if body_phase { &self.args_post } else { &[] };
        let json: &[Pair] = if body_phase { &self.args_json } else { &[] };
        let uri = self.uri;
        let path = uri.split_once('?').map_or(uri, |(p, _)| p);
        match t.coll {
            Coll::Args => {
                pairs(out, &self.args_get, false);
                pairs(out, post, false);
                pairs(out, json, false);
            }
            Coll::ArgsNames => {
                pairs(out, &self.args_get, true);
                pairs(out, post, true);
                pairs(out, json, true);
            }
            Coll::ArgsGet => pairs(out, &self.args_get, false),
            Coll::ArgsGetNames => pairs(out, &self.args_get, true),
            Coll::ArgsPost => pairs(out, post, false),
            Coll::ArgsPostNames => pairs(out, post, true),
            Coll::ArgsCombinedSize => {
                let n: usize = self
                    .args_get
                    .iter()
                    .chain(post.iter())
                    .chain(json.iter())
                    .map(|p| p.name.len() + p.value.len())
                    .sum();
                single(out, n.to_string().as_bytes());
            }
            Coll::Cookies => pairs(out, &self.cookies, false),
            Coll::CookiesNames => pairs(out, &self.cookies, true),
            Coll::Headers | Coll::HeadersNames => {
                for (k, v) in &self.headers {
                    if !selected(&t.sel, k.as_bytes()) {
                        continue;
                    }
                    out.push(Val {
                        name: format!("{label}:{k}"),
                        value: if t.coll == Coll::Headers {
                            v.to_vec()
                        } else {
                            k.as_bytes().to_vec()
                        },
                    });
                }
            }
            // The URI and file name are percent-decoded (not `+`); the raw forms are not.
            Coll::Uri => single(out, &percent_decode(uri.as_bytes())),
            Coll::UriRaw => single(out, self.input.uri.as_bytes()),
            Coll::Filename => single(out, &percent_decode(path.as_bytes())),
            Coll::Basename => {
                let decoded = percent_decode(path.as_bytes());
                let base = decoded
                    .rsplit(|c| *c == b'/' || *c == b'\\')
                    .next()
                    .unwrap_or(&decoded);
                single(out, base)
            }
            Coll::Line => single(
                out,
                format!(
                    "{} {} {}",
                    self.input.method, self.input.uri, self.input.protocol
                )
                .as_bytes(),
            ),
            Coll::Method => single(out, self.input.method.as_bytes()),
            Coll::Protocol => single(out, self.input.protocol.as_bytes()),
            Coll::QueryString => {
                if let Some((_, q)) = uri.split_once('?') {
                    single(out, q.as_bytes());
                }
            }
            Coll::Body => {
                if body_phase {
                    if let Some(b) = self.request_body {
                        single(out, b);
                    }
                }
            }
            Coll::BodyLength => {
                if body_phase {
                    let n = self.input.body.map_or(0, <[u8]>::len);
                    single(out, n.to_string().as_bytes());
                }
            }
            Coll::Files | Coll::FilesNames => {
                if let (true, Some(m)) = (body_phase, &self.multipart) {
                    pairs(out, &m.files, t.coll == Coll::FilesNames);
                }
            }
            Coll::FilesCombinedSize => {
                if body_phase {
                    single(out, b"0");
                }
            }
            Coll::PartHeaders => {
                if let (true, Some(m)) = (body_phase, &self.multipart) {
                    pairs(out, &m.part_headers, false);
                }
            }
            Coll::MultipartStrict => {
                if let (true, Some(m)) = (body_phase, &self.multipart) {
                    single(out, if m.strict_error { b"1" } else { b"0" });
                }
            }
            Coll::MultipartUnmatched => {
                if let (true, Some(m)) = (body_phase, &self.multipart) {
                    single(out, if m.unmatched_boundary { b"1" } else { b"0" });
                }
            }
            Coll::ReqbodyProcessor => {
                if let Some(p) = &self.processor {
                    single(out, p.as_bytes());
                }
            }
            Coll::ReqbodyError => {
                if body_phase {
                    single(
                        out,
                        if self.reqbody_error.is_some() {
                            b"1"
                        } else {
                            b"0"
                        },
                    );
                }
            }
            Coll::ReqbodyErrorMsg => {
                if let (true, Some(e)) = (body_phase, self.reqbody_error) {
                    single(out, e.as_bytes());
                }
            }
            Coll::Xml => {
                if let (true, Some(x)) = (body_phase, &self.xml) {
                    single(out, x);
                }
            }
            Coll::Tx => {
                let mut keys: Vec<(&String, &String)> = self
                    .tx
                    .iter()
                    .filter(|(k, _)| selected(&t.sel, k.as_bytes()))
                    .collect();
                keys.sort();
                for (k, v) in keys {
                    out.push(Val {
                        name: format!("TX:{k}"),
                        value: v.as_bytes().to_vec(),
                    });
                }
            }
            Coll::RemoteAddr => {
                if let Some(ip) = self.input.remote_addr {
                    single(out, ip.to_string().as_bytes());
                }
            }
            Coll::MatchedVar => single(out, &self.matched_var),
            Coll::MatchedVarName => single(out, self.matched_var_name.as_bytes()),
            Coll::MatchedVars | Coll::MatchedVarsNames => {
                for (n, v) in &self.matched_vars {
                    out.push(Val {
                        name: format!("MATCHED_VARS:{n}"),
                        value: if t.coll == Coll::MatchedVars {
                            v.clone()
                        } else {
                            n.as_bytes().to_vec()
                        },
                    });
                }
            }
        }
        if t.count {
            let n = out.len() - start;
            out.truncate(start);
            out.push(Val {
                name: format!("&{label}"),
                value: n.to_string().into_bytes(),
            });
        }
    }
}

/// Whether an exclusion removes the value named `name` (`ARGS:q`).
fn excluded(x: &CTarget, name: &str) -> bool {
    let label = x.coll.label();
    let Some(rest) = name.strip_prefix(label) else {
        return false;
    };
    let key = rest.strip_prefix(':').unwrap_or(rest);
    if !rest.is_empty() && !rest.starts_with(':') {
        return false;
    }
    selected(&x.sel, key.as_bytes())
}

fn selected(sel: &Sel, name: &[u8]) -> bool {
    match sel {
        Sel::All => true,
        Sel::Name(n) => n.as_bytes().eq_ignore_ascii_case(name),
        Sel::Regex(re) => re.is_match(name),
    }
}

fn processor_for(content_type: &[u8]) -> Option<String> {
    let ct = String::from_utf8_lossy(content_type).to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or("").trim();
    if media == "application/x-www-form-urlencoded" {
        Some("URLENCODED".into())
    } else if media.starts_with("multipart/form-data") {
        Some("MULTIPART".into())
    } else if media.starts_with("application/json") || ct.starts_with("application/json") {
        Some("JSON".into())
    } else if ct.starts_with("application/xml")
        || ct.starts_with("text/xml")
        || ct.starts_with("application/soap+xml")
    {
        Some("XML".into())
    } else {
        None
    }
}

/// `%XX` decoded, everything else (`+`, broken escapes) as it is.
fn percent_decode(v: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while let Some(&c) = v.get(i) {
        if c == b'%' {
            if let (Some(a), Some(b)) = (
                v.get(i + 1).and_then(|x| hex(*x)),
                v.get(i + 2).and_then(|x| hex(*x)),
            ) {
                out.push((a * 16 + b) as u8);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// C's `atoi`: optional sign, leading digits, 0 otherwise.
fn atoi(v: &[u8]) -> i64 {
    let s = v.trim_ascii_start();
    let (neg, digits) = match s.split_first() {
        Some((b'-', r)) => (true, r),
        Some((b'+', r)) => (false, r),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

fn bad_url_encoding(v: &[u8]) -> bool {
    let mut it = v.iter();
    while let Some(c) = it.next() {
        if *c == b'%' {
            let a = it.next();
            let b = it.next();
            match (a, b) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {}
                _ => return true,
            }
        }
    }
    false
}

fn contains_word(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let word = |b: Option<&u8>| b.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
    memchr::memmem::find_iter(hay, needle).any(|p| {
        let before = p.checked_sub(1).and_then(|i| hay.get(i));
        let after = hay.get(p + needle.len());
        !word(before) && !word(after)
    })
}
