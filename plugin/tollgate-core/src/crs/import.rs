//! SecLang rule files into a [`Ruleset`]: the part of `tollgate crs import` that reads text.
//!
//! Input is the setup file (`crs-setup.conf`) and the `REQUEST-*.conf` files in order, with a
//! reader for the `.data` files they name. Malformed text is an error naming the file, the line
//! and the problem (every one of them, not the first). A well-formed rule the engine cannot run
//! — a response phase, a remote look-up, persistent collections, a pattern that needs
//! backtracking — is listed in the report with its id and the reason, and left out; so are
//! rules above the paranoia level asked for, counted per file.

use std::collections::BTreeMap;

use super::engine::{SUPPORTED_COLLECTIONS, SUPPORTED_OPERATORS};
use super::pcre;
use super::ruleset::{
    Ctl, FileSummary, Item, Link, Operator, Report, Rule, Ruleset, SetOp, SetVar, Skipped, Target,
    FORMAT,
};
use super::seclang::{self, Action, Selector};
use super::transform::Transform;

/// A problem in a rules file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    /// The file.
    pub file: String,
    /// The line (1-based).
    pub line: u32,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// One file to import: its name (as reports show it) and text.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// File name.
    pub name: &'a str,
    /// Its contents.
    pub text: &'a str,
}

/// Files an engine skips whole, with the reason.
fn skipped_file(name: &str) -> Option<&'static str> {
    if name.contains("-903.") {
        Some("application exclusion package (off unless enabled): write exclusions in the policy")
    } else if name.contains("-949-") {
        Some("blocking evaluation: Tollgate's own anomaly threshold decides")
    } else if name.starts_with("RESPONSE-") {
        Some("response phase")
    } else {
        None
    }
}

/// Imports a rule set. `data` reads a `.data` file by name (relative to the rules directory).
pub fn import(
    setup: Option<Source<'_>>,
    files: &[Source<'_>],
    data: &dyn Fn(&str) -> Option<String>,
    paranoia: u8,
) -> Result<(Ruleset, Report), Vec<ImportError>> {
    let mut errors = Vec::new();
    let mut report = Report::default();
    let mut set = Ruleset {
        format: FORMAT,
        source: String::from("unknown"),
        paranoia,
        setup: BTreeMap::new(),
        items: Vec::new(),
        data: BTreeMap::new(),
    };
    if let Some(s) = setup {
        let rules = parse_file(s, &mut errors, &mut set.source);
        for (line, r) in rules {
            match r {
                Parsed::Rule(rule) if rule.links.len() == 1 && is_unconditional(&rule) => {
                    for sv in rule.links.iter().flat_map(|l| l.setvars.iter()) {
                        if sv.op == SetOp::Set {
                            let v = expand_static(&sv.value, &set.setup);
                            set.setup.insert(sv.name.clone(), v);
                        }
                    }
                }
                Parsed::Rule(rule) => report.skipped.push(Skipped {
                    id: rule.id,
                    file: s.name.into(),
                    line,
                    reason: "a conditional rule in the setup file: only unconditional SecActions set up the rule set".into(),
                }),
                Parsed::Marker(_) => {}
                Parsed::Unsupported(id, reason) => report.skipped.push(Skipped {
                    id,
                    file: s.name.into(),
                    line,
                    reason,
                }),
            }
        }
    }
    // The paranoia level asked for wins over the setup file's (3.x and 4.x names).
    for key in [
        "paranoia_level",
        "executing_paranoia_level",
        "blocking_paranoia_level",
        "detection_paranoia_level",
    ] {
        set.setup.insert(key.into(), paranoia.to_string());
    }
    let mut ids = BTreeMap::new();
    for f in files {
        let mut summary = FileSummary {
            file: f.name.into(),
            ..FileSummary::default()
        };
        let whole = skipped_file(f.name);
        for (line, r) in parse_file(*f, &mut errors, &mut set.source) {
            let mut skip = |id: u32, reason: String, summary: &mut FileSummary| {
                summary.skipped += 1;
                report.skipped.push(Skipped {
                    id,
                    file: f.name.into(),
                    line,
                    reason,
                });
            };
            match r {
                Parsed::Marker(name) => set.items.push(Item::Marker { name }),
                Parsed::Unsupported(id, reason) => skip(id, reason, &mut summary),
                Parsed::Rule(mut rule) => {
                    if let Some(prev) = ids.insert(rule.id, (f.name.to_string(), line)) {
                        errors.push(ImportError {
                            file: f.name.into(),
                            line,
                            message: format!(
                                "duplicate rule id {} (first at {}:{})",
                                rule.id, prev.0, prev.1
                            ),
                        });
                        continue;
                    }
                    if let Some(reason) = whole {
                        skip(rule.id, reason.into(), &mut summary);
                        continue;
                    }
                    if rule.paranoia.is_some_and(|p| p > paranoia) {
                        summary.above_paranoia += 1;
                        continue;
                    }
                    if let Err(reason) = check(&mut rule, &set.setup, data, &mut set.data) {
                        skip(rule.id, reason, &mut summary);
                        continue;
                    }
                    // Defaults of the initialization file (`&TX:x @eq 0` → set x) join the
                    // setup, so every request starts with them.
                    learn_default(&rule, &mut set.setup);
                    summary.imported += 1;
                    set.items.push(Item::Rule(rule));
                }
            }
        }
        report.files.push(summary);
    }
    if errors.is_empty() {
        Ok((set, report))
    } else {
        Err(errors)
    }
}

enum Parsed {
    Rule(Rule),
    Marker(String),
    Unsupported(u32, String),
}

fn is_unconditional(rule: &Rule) -> bool {
    rule.links
        .iter()
        .all(|l| l.targets.is_empty() && l.op.name == "unconditionalmatch")
}

/// Reads one file's directives into rules (chains joined) and markers.
fn parse_file(
    f: Source<'_>,
    errors: &mut Vec<ImportError>,
    source: &mut String,
) -> Vec<(u32, Parsed)> {
    let (directives, line_errors) = seclang::directives(f.text);
    let err = |line: u32, message: String| ImportError {
        file: f.name.into(),
        line,
        message,
    };
    errors.extend(line_errors.into_iter().map(|e| err(e.line, e.message)));
    let mut out = Vec::new();
    // The rule being chained to, with its start line.
    let mut open: Option<(u32, Pending)> = None;
    for d in directives {
        match d.name.to_ascii_lowercase().as_str() {
            "secrule" | "secaction" => {
                let is_action = d.name.eq_ignore_ascii_case("secaction");
                let (vars, op, acts) = if is_action {
                    match d.args.as_slice() {
                        [a] => (None, None, a.as_str()),
                        [] => (None, None, ""),
                        _ => {
                            errors.push(err(d.line, "SecAction takes one argument".into()));
                            continue;
                        }
                    }
                } else {
                    match d.args.as_slice() {
                        [v, o] => (Some(v.as_str()), Some(o.as_str()), ""),
                        [v, o, a] => (Some(v.as_str()), Some(o.as_str()), a.as_str()),
                        _ => {
                            errors.push(err(
                                d.line,
                                format!("SecRule takes 2 or 3 arguments, found {}", d.args.len()),
                            ));
                            continue;
                        }
                    }
                };
                let link = match build_link(vars, op, acts) {
                    Ok(l) => l,
                    Err(e) => {
                        errors.push(err(d.line, e));
                        continue;
                    }
                };
                let (link, meta) = link;
                match open.take() {
                    Some((start, mut rule)) => {
                        if meta.id.is_some() || meta.phase.is_some() {
                            errors
                                .push(err(d.line, "a chained rule may not set id or phase".into()));
                        }
                        match (&mut rule, link) {
                            (Ok(r), Ok(l)) => r.links.push(l),
                            (Ok(r), Err(reason)) => rule = Err((r.id, reason)),
                            (Err(_), _) => {}
                        }
                        if meta.chain {
                            open = Some((start, rule));
                        } else {
                            out.push((start, finish(rule)));
                        }
                    }
                    None => {
                        let Some(id) = meta.id else {
                            errors.push(err(d.line, "a rule without an id".into()));
                            continue;
                        };
                        let phase = match meta.phase.as_deref().map(phase_number) {
                            None => 2,
                            Some(Some(p)) => p,
                            Some(None) => {
                                errors.push(err(
                                    d.line,
                                    "phase must be 1 to 5, request, response or logging".into(),
                                ));
                                continue;
                            }
                        };
                        let rule = match link {
                            Ok(l) => {
                                let mut r = Rule {
                                    id,
                                    phase,
                                    file: f.name.into(),
                                    line: d.line,
                                    severity: meta.severity,
                                    paranoia: meta.paranoia,
                                    tags: meta.tags,
                                    msg: meta.msg,
                                    log: meta.log,
                                    skip_after: meta.skip_after,
                                    links: vec![l],
                                };
                                if phase > 2 {
                                    Err((id, "response phase".to_string()))
                                } else if let Some(reason) = meta.unsupported {
                                    Err((id, reason))
                                } else {
                                    r.links.shrink_to_fit();
                                    Ok(r)
                                }
                            }
                            Err(reason) => Err((id, reason)),
                        };
                        if meta.chain {
                            open = Some((d.line, rule));
                        } else {
                            out.push((d.line, finish(rule)));
                        }
                    }
                }
            }
            "secmarker" => {
                if let Some((start, _)) = open.take() {
                    errors.push(err(start, "chain not followed by a rule".into()));
                }
                match d.args.as_slice() {
                    [name] => out.push((d.line, Parsed::Marker(name.clone()))),
                    _ => errors.push(err(d.line, "SecMarker takes one argument".into())),
                }
            }
            "seccomponentsignature" => {
                if let Some(s) = d.args.first() {
                    *source = s.clone();
                }
            }
            "secdefaultaction"
            | "seccollectiontimeout"
            | "secruleengine"
            | "secrequestbodyaccess"
            | "secresponsebodyaccess" => {}
            _ => out.push((
                d.line,
                Parsed::Unsupported(0, format!("directive {} is not imported", d.name)),
            )),
        }
    }
    if let Some((start, _)) = open {
        errors.push(err(start, "chain not followed by a rule".into()));
    }
    out
}

/// A rule being read: the rule so far, or its id and why it cannot run.
type Pending = Result<Rule, (u32, String)>;

fn finish(rule: Pending) -> Parsed {
    match rule {
        Ok(r) => Parsed::Rule(r),
        Err((id, reason)) => Parsed::Unsupported(id, reason),
    }
}

fn phase_number(p: &str) -> Option<u8> {
    match p.to_ascii_lowercase().as_str() {
        "1" => Some(1),
        "2" | "request" => Some(2),
        "3" => Some(3),
        "4" | "response" => Some(4),
        "5" | "logging" => Some(5),
        _ => None,
    }
}

/// What the starting rule's actions say about the whole rule.
#[derive(Default)]
struct Meta {
    id: Option<u32>,
    phase: Option<String>,
    chain: bool,
    severity: Option<String>,
    paranoia: Option<u8>,
    tags: Vec<String>,
    msg: Option<String>,
    log: bool,
    skip_after: Option<String>,
    unsupported: Option<String>,
}

/// One SecRule (or SecAction) into a link. `Err` in the outer result is malformed text; in the
/// inner, a well-formed link the engine cannot run.
#[allow(clippy::type_complexity)]
fn build_link(
    vars: Option<&str>,
    op: Option<&str>,
    acts: &str,
) -> Result<(Result<Link, String>, Meta), String> {
    let mut meta = Meta {
        log: true,
        ..Meta::default()
    };
    let mut unsupported: Option<String> = None;
    let mut note = |r: String| {
        if unsupported.is_none() {
            unsupported = Some(r);
        }
    };
    let targets = match vars {
        Some(v) => seclang::variables(v)?
            .into_iter()
            .map(|s| {
                let (name, regex) = match s.selector {
                    Some(Selector::Name(n)) => (Some(n), None),
                    Some(Selector::Regex(r)) => (None, Some(r)),
                    None => (None, None),
                };
                Target {
                    collection: s.collection,
                    name,
                    regex,
                    exclude: s.exclude,
                    count: s.count,
                }
            })
            .collect(),
        None => Vec::new(),
    };
    for t in &targets {
        if !SUPPORTED_COLLECTIONS.contains(&t.collection.as_str()) {
            note(format!("variable {} is not available at request time here (persistent, remote or response state)", t.collection));
        }
        if let Some(r) = &t.regex {
            if let Err(e) = pcre::build(r) {
                note(format!("selector /{r}/: {}", e.0));
            }
        }
    }
    let op = match op {
        Some(o) => {
            let s = seclang::operator(o);
            Operator {
                name: s.name,
                negated: s.negated,
                arg: s.arg,
            }
        }
        None => Operator {
            name: "unconditionalmatch".into(),
            negated: false,
            arg: String::new(),
        },
    };
    let canonical = match op.name.as_str() {
        "pmf" => "pmfromfile",
        other => other,
    }
    .to_string();
    let op = Operator {
        name: canonical,
        ..op
    };
    if !SUPPORTED_OPERATORS.contains(&op.name.as_str()) {
        note(format!(
            "operator @{} is not supported (remote look-up or file inspection)",
            op.name
        ));
    }
    let mut link = Link {
        targets,
        op,
        transforms: Vec::new(),
        capture: false,
        multi_match: false,
        setvars: Vec::new(),
        ctl: Vec::new(),
    };
    for Action { name, value } in seclang::actions(acts)? {
        let v = value.unwrap_or_default();
        match name.as_str() {
            "id" => {
                meta.id = Some(v.parse().map_err(|_| format!("id {v:?} is not a number"))?);
            }
            "phase" => meta.phase = Some(v),
            "chain" => meta.chain = true,
            "severity" => meta.severity = Some(severity_name(&v)),
            "tag" => {
                if let Some(pl) = v.strip_prefix("paranoia-level/") {
                    meta.paranoia = pl.parse().ok();
                }
                meta.tags.push(v);
            }
            "msg" => meta.msg = Some(v),
            "nolog" => meta.log = false,
            "log" => meta.log = true,
            "skipafter" => meta.skip_after = Some(v),
            "t" => {
                if v.eq_ignore_ascii_case("none") {
                    link.transforms.clear();
                } else {
                    match Transform::from_name(&v) {
                        Some(t) => link.transforms.push(t),
                        None => note(format!("transformation t:{v} is not supported")),
                    }
                }
            }
            "capture" => link.capture = true,
            "multimatch" => link.multi_match = true,
            "setvar" => match parse_setvar(&v) {
                Ok(Some(s)) => link.setvars.push(s),
                // A persistent collection (IP, GLOBAL, SESSION): its state is not kept here
                // (Tollgate's bans and limits do that job), the rule runs without the write.
                Ok(None) => {}
                Err(e) => return Err(e),
            },
            "ctl" => match parse_ctl(&v) {
                Some(Some(c)) => link.ctl.push(c),
                Some(None) => {}
                None => note(format!("ctl:{v} is not supported")),
            },
            // Disruptive actions: anomaly scoring decides instead (`block` is `pass` under the
            // CRS's default action), and the skips of ModSecurity's audit log do not apply.
            "block" | "pass" | "deny" | "drop" | "status" | "auditlog" | "noauditlog" | "ver"
            | "rev" | "accuracy" | "maturity" | "logdata" | "expirevar" | "initcol" | "setenv"
            | "sanitisematched" | "sanitizematched" | "sanitisearg" | "sanitizearg"
            | "redirect" => {}
            other => note(format!("action {other} is not supported")),
        }
    }
    meta.unsupported = unsupported.clone();
    match unsupported {
        Some(r) => Ok((Err(r), meta)),
        None => Ok((Ok(link), meta)),
    }
}

fn severity_name(v: &str) -> String {
    match v.trim() {
        "0" => "EMERGENCY".into(),
        "1" => "ALERT".into(),
        "2" => "CRITICAL".into(),
        "3" => "ERROR".into(),
        "4" => "WARNING".into(),
        "5" => "NOTICE".into(),
        other => other.to_ascii_uppercase(),
    }
}

/// `tx.name=value`, `tx.name=+n`, `!tx.name`. `Ok(None)` for a collection other than TX.
fn parse_setvar(v: &str) -> Result<Option<SetVar>, String> {
    let (delete, rest) = match v.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, v),
    };
    let (lhs, rhs) = match rest.split_once('=') {
        Some((l, r)) => (l, Some(r)),
        None => (rest, None),
    };
    let Some((coll, name)) = lhs.split_once('.') else {
        return Err(format!("setvar:{v} names no collection"));
    };
    if !coll.eq_ignore_ascii_case("tx") {
        return Ok(None);
    }
    let name = name.trim().to_ascii_lowercase();
    let (op, value) = match (delete, rhs) {
        (true, _) => (SetOp::Delete, String::new()),
        (false, None) => (SetOp::Set, "1".to_string()),
        (false, Some(r)) => match (r.strip_prefix('+'), r.strip_prefix('-')) {
            (Some(n), _) => (SetOp::Add, n.to_string()),
            (_, Some(n)) => (SetOp::Sub, n.to_string()),
            _ => (SetOp::Set, r.to_string()),
        },
    };
    Ok(Some(SetVar { name, op, value }))
}

/// `Some(Some(ctl))` supported, `Some(None)` harmless here (audit log), `None` unsupported.
fn parse_ctl(v: &str) -> Option<Option<Ctl>> {
    let (k, val) = v.split_once('=')?;
    match k.trim().to_ascii_lowercase().as_str() {
        "auditlogparts" | "auditengine" | "debugloglevel" => Some(None),
        "forcerequestbodyvariable" => Some(
            val.trim()
                .eq_ignore_ascii_case("on")
                .then_some(Ctl::ForceRequestBodyVariable),
        ),
        "requestbodyprocessor" => Some(Some(Ctl::RequestBodyProcessor(
            val.trim().to_ascii_uppercase(),
        ))),
        "ruleengine" if val.trim().eq_ignore_ascii_case("off") => Some(Some(Ctl::RuleEngineOff)),
        "ruleremovebyid" => val
            .trim()
            .parse()
            .ok()
            .map(|id| Some(Ctl::RuleRemoveById(id))),
        "ruleremovetargetbyid" => {
            let (id, target) = val.split_once(';')?;
            Some(Some(Ctl::RuleRemoveTargetById(
                id.trim().parse().ok()?,
                target.trim().to_string(),
            )))
        }
        _ => None,
    }
}

/// Checks what only the whole rule shows: patterns, data files and macros in patterns.
fn check(
    rule: &mut Rule,
    setup: &BTreeMap<String, String>,
    data: &dyn Fn(&str) -> Option<String>,
    lists: &mut BTreeMap<String, Vec<String>>,
) -> Result<(), String> {
    for link in &mut rule.links {
        match link.op.name.as_str() {
            "rx" => {
                if link.op.arg.contains("%{") {
                    // Patterns built from setup values are fixed when the rule set is imported.
                    let expanded = expand_static(&link.op.arg, setup);
                    if expanded.contains("%{") {
                        return Err(format!(
                            "pattern uses a variable no setup value defines: {}",
                            link.op.arg
                        ));
                    }
                    link.op.arg = expanded;
                }
                pcre::build(&link.op.arg).map_err(|e| format!("pattern: {}", e.0))?;
            }
            "pmfromfile" => {
                for file in link.op.arg.split_whitespace() {
                    if lists.contains_key(file) {
                        continue;
                    }
                    let text = data(file).ok_or_else(|| format!("data file {file} not found"))?;
                    let phrases = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string)
                        .collect();
                    lists.insert(file.to_string(), phrases);
                }
            }
            "validatebyterange" => {
                super::engine::byte_ranges(&link.op.arg)
                    .ok_or_else(|| format!("byte range {:?} is malformed", link.op.arg))?;
            }
            "ipmatch" => {
                for part in link.op.arg.split(',') {
                    if part.trim().parse::<crate::Cidr>().is_err() {
                        return Err(format!("address {part:?} is malformed"));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `&TX:name "@eq 0"` setting `name`: the default joins the setup unless set already.
fn learn_default(rule: &Rule, setup: &mut BTreeMap<String, String>) {
    let [link] = rule.links.as_slice() else {
        return;
    };
    let [t] = link.targets.as_slice() else {
        return;
    };
    if !(t.count
        && t.collection == "TX"
        && link.op.name == "eq"
        && link.op.arg.trim() == "0"
        && !link.op.negated)
    {
        return;
    }
    for sv in &link.setvars {
        if sv.op == SetOp::Set && !setup.contains_key(&sv.name) {
            let v = expand_static(&sv.value, setup);
            setup.insert(sv.name.clone(), v);
        }
    }
}

/// Expands `%{tx.name}` from the setup values; other macros stay as written.
pub fn expand_static(s: &str, setup: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find("%{") {
        out.push_str(rest.get(..p).unwrap_or(""));
        let after = rest.get(p + 2..).unwrap_or("");
        match after.find('}') {
            Some(end) => {
                let name = after.get(..end).unwrap_or("");
                let value = name
                    .split_once('.')
                    .filter(|(c, _)| c.eq_ignore_ascii_case("tx"))
                    .and_then(|(_, n)| setup.get(&n.to_ascii_lowercase()));
                match value {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push_str("%{");
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = after.get(end + 1..).unwrap_or("");
            }
            None => {
                out.push_str(rest.get(p..).unwrap_or(""));
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}
