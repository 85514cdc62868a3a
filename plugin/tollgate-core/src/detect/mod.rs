//! Attack detection: injection payloads inside accepted fields, attack tools, and protocol abuse,
//! scored per request.
//!
//! Every value a client controls (path segments, query names and values, cookies, the headers the
//! policy lists, `User-Agent`, and the body's strings and keys) is normalised once
//! ([`normalize`]) and read by the detectors of its location ([`rules`], [`ssrf`]). Each finding
//! carries a severity; a request's anomaly score is the sum over its distinct findings (critical
//! 5, error 4, warning 3, notice 2, as in the OWASP Core Rule Set). The policy sets the threshold
//! (per route if it likes) and, per detector class, enforce, shadow or off. A refusal names the
//! classes, never the payload.
//!
//! All matching is linear in the input: keyword sets are Aho-Corasick automata, the tokenizers
//! look a bounded number of tokens ahead, and percent-decoding runs a bounded number of passes.

pub mod normalize;
pub mod rules;
pub mod ssrf;
#[cfg(test)]
mod tests;

use crate::{Mode, Request, RuleId};

pub use normalize::{normalize, Seen};
pub use rules::Engines;

/// A detector class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// SQL (and NoSQL operator) injection.
    Sqli,
    /// Cross-site scripting.
    Xss,
    /// Path traversal and local file inclusion.
    Traversal,
    /// OS command injection (and JNDI lookups).
    Command,
    /// Server-side request forgery targets in URL values.
    Ssrf,
    /// Attack and scanning tools.
    Scanner,
    /// Protocol anomalies: framing conflicts, bodies on GET, control characters.
    Protocol,
}

impl Class {
    /// Every class, in the order counters and errors list them.
    pub const ALL: [Class; 7] = [
        Class::Sqli,
        Class::Xss,
        Class::Traversal,
        Class::Command,
        Class::Ssrf,
        Class::Scanner,
        Class::Protocol,
    ];

    /// The name the policy and the metrics use.
    pub fn name(self) -> &'static str {
        match self {
            Class::Sqli => "sqli",
            Class::Xss => "xss",
            Class::Traversal => "traversal",
            Class::Command => "command",
            Class::Ssrf => "ssrf",
            Class::Scanner => "scanner",
            Class::Protocol => "protocol",
        }
    }

    /// The name a refused client reads.
    pub fn label(self) -> &'static str {
        match self {
            Class::Sqli => "sql-injection",
            Class::Xss => "cross-site-scripting",
            Class::Traversal => "path-traversal",
            Class::Command => "command-injection",
            Class::Ssrf => "server-side-request-forgery",
            Class::Scanner => "scanner",
            Class::Protocol => "protocol-anomaly",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How much a finding adds to the anomaly score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// 2
    Notice = 2,
    /// 3
    Warning = 3,
    /// 4
    Error = 4,
    /// 5
    Critical = 5,
}

/// One thing a detector found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Its class.
    pub class: Class,
    /// The detector rule (`sqli-union`, `xss-event-handler`, ...).
    pub rule: &'static str,
    /// Its weight.
    pub severity: Severity,
}

/// A request's findings: each rule once, at the highest severity it was found with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// The findings, in the order found.
    pub list: Vec<Finding>,
}

impl Findings {
    /// Records a finding.
    pub fn add(&mut self, class: Class, rule: &'static str, severity: Severity) {
        match self.list.iter_mut().find(|f| f.rule == rule) {
            Some(f) => f.severity = f.severity.max(severity),
            None => self.list.push(Finding {
                class,
                rule,
                severity,
            }),
        }
    }

    /// Adds another set (the body's findings to the head's).
    pub fn merge(&mut self, other: &Findings) {
        for f in &other.list {
            self.add(f.class, f.rule, f.severity);
        }
    }

    /// The score of the findings whose class passes `filter`.
    pub fn score(&self, filter: impl Fn(Class) -> bool) -> u32 {
        self.list
            .iter()
            .filter(|f| filter(f.class))
            .map(|f| f.severity as u32)
            .sum()
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// What detection decided about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    /// Enforce (refuse) or shadow (report only).
    pub mode: Mode,
    /// The classes that scored, highest contribution first.
    pub classes: Vec<Class>,
    /// The CRS rules that scored, in evaluation order.
    pub crs: Vec<u32>,
    /// The anomaly score that crossed the threshold.
    pub score: u32,
    /// The rule the refusal counts under (the first class's).
    pub rule: RuleId,
}

/// The policy's `detection` block, compiled.
#[derive(Debug)]
pub struct Detection {
    /// Anomaly score at which a request is refused, unless its route sets its own.
    pub threshold: u32,
    /// Per class: enforce, shadow, or `None` for off.
    pub modes: [Option<Mode>; 7],
    /// Per class: the rule its refusals count under (`detection.<class>`).
    pub rules: [RuleId; 7],
    /// Headers (lower-case) whose values are inspected for injections, besides `User-Agent` and
    /// cookies.
    pub headers: Vec<String>,
    /// The keyword automata (shared by every policy in the process).
    pub engines: &'static Engines,
    /// An imported Core Rule Set, when the policy runs one.
    pub crs: Option<CrsRules>,
}

/// `detection.crs`, compiled: the engine and how its findings count.
#[derive(Debug)]
pub struct CrsRules {
    /// The compiled rule set, configured with the policy's paranoia level and setup.
    pub engine: crate::crs::Engine,
    /// Enforce, shadow, or `None` for off.
    pub mode: Option<Mode>,
    /// Rule ids whose scores count only in shadow.
    pub shadow: Vec<u32>,
    /// The rule its refusals count under (`detection.crs`).
    pub rule: RuleId,
}

impl CrsRules {
    /// Runs the rule set over a request (`body` when it was read).
    pub fn run(
        &self,
        req: &Request<'_>,
        body: Option<&[u8]>,
        client: Option<std::net::IpAddr>,
    ) -> Vec<crate::crs::Match> {
        let input = crate::crs::Input {
            method: req.method,
            uri: req.path,
            protocol: "HTTP/1.1",
            headers: req.headers,
            body,
            remote_addr: client,
        };
        let mut m = self.engine.evaluate(&input).matched;
        m.retain(|x| x.score > 0 || x.logged);
        m
    }

    /// The score of the matches whose rule counts in `mode` (enforce: the enforcing rules only).
    fn score(&self, matches: &[crate::crs::Match], enforced_only: bool) -> u32 {
        match self.mode {
            None => 0,
            Some(mode) => matches
                .iter()
                .filter(|m| {
                    !enforced_only || (mode == Mode::Enforce && !self.shadow.contains(&m.id))
                })
                .map(|m| m.score)
                .sum(),
        }
    }
}

/// Which detectors read a value, by where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// One path segment (traversal reads the whole path).
    PathSegment,
    /// A query or form parameter's name, or a JSON member name.
    Name,
    /// A query or form value, a cookie, a listed header, a JSON string, a text body.
    Value,
    /// `User-Agent`.
    UserAgent,
}

impl Location {
    fn reads(self, c: Class) -> bool {
        match self {
            Location::PathSegment => matches!(c, Class::Sqli | Class::Xss | Class::Command),
            Location::Name => matches!(c, Class::Sqli | Class::Xss),
            Location::Value => matches!(
                c,
                Class::Sqli | Class::Xss | Class::Traversal | Class::Command | Class::Ssrf
            ),
            Location::UserAgent => {
                matches!(
                    c,
                    Class::Scanner | Class::Sqli | Class::Xss | Class::Command
                )
            }
        }
    }
}

impl Detection {
    fn on(&self, c: Class) -> bool {
        self.modes.get(c.index()).copied().flatten().is_some()
    }

    /// Runs the detectors of `loc` over one raw value. `buf` is scratch space.
    pub fn value(
        &self,
        raw: &[u8],
        form: bool,
        loc: Location,
        buf: &mut Vec<u8>,
        out: &mut Findings,
    ) {
        let seen = normalize(raw, form, buf);
        let t = buf.as_slice();
        if self.on(Class::Protocol) {
            if seen.nul {
                // A NUL truncates strings in C and file APIs: never part of a legitimate value.
                out.add(Class::Protocol, "protocol-null-byte", Severity::Critical);
            }
            if seen.control {
                out.add(Class::Protocol, "protocol-control-char", Severity::Error);
            }
            // Only where values arrive percent-encoded (a JSON string may hold a `%`).
            if seen.bad_escape && (form || loc == Location::PathSegment) {
                out.add(Class::Protocol, "protocol-bad-escape", Severity::Notice);
            }
            if seen.multi_encoded {
                out.add(Class::Protocol, "protocol-multi-encoded", Severity::Notice);
            }
            // CR/LF in a path or a parameter name, or before something shaped like a header in
            // a value: header injection and response splitting.
            if seen.line_break && (loc != Location::Value || header_after_break(buf)) {
                out.add(
                    Class::Protocol,
                    "protocol-header-injection",
                    Severity::Critical,
                );
            }
        }
        if t.is_empty() {
            return;
        }
        let run = |c: Class| loc.reads(c) && self.on(c);
        let e = self.engines;
        let bytes = rules::presence(t);
        // The keyword search runs once per value: here when the scanner needs it, else in
        // `detectors` once the value is known not to be plain.
        let lit = run(Class::Scanner).then(|| e.literals_with(t, bytes));
        if let Some(lit) = lit {
            e.scanner(lit, out);
        }
        self.detectors(t, bytes, lit, loc, true, out);
        // The same value with HTML character references and JavaScript escapes decoded, as an
        // XML parser or a script would read it (`&#x27;`, `\u0027`).
        if t.contains(&b'\\') || (t.contains(&b'&') && t.contains(&b';')) {
            let decoded = rules::decode_references(t);
            if decoded != t {
                self.detectors(&decoded, rules::presence(&decoded), None, loc, false, out);
            }
        }
    }

    /// The injection detectors of `loc` over one normalised value, with its byte set and (if
    /// already searched) its keyword matches. `xss` off for a decoded view (the XSS detector
    /// decodes references itself).
    fn detectors(
        &self,
        t: &[u8],
        bytes: u128,
        lit: Option<rules::Literals>,
        loc: Location,
        xss: bool,
        out: &mut Findings,
    ) {
        let run = |c: Class| loc.reads(c) && self.on(c);
        let e = self.engines;
        // Which ASCII bytes occur (one pass, by the caller): each detector below needs some.
        let any = |set: &[u8]| set.iter().any(|b| *b < 128 && (bytes >> b) & 1 == 1);
        // A lone word of letters, digits, `_` and `-` carries no injection of any class; nor
        // does a `User-Agent` written only in the characters browsers and libraries use.
        let plain = if loc == Location::UserAgent {
            !any(b"'\"`<>${}|&=%\\\n*@#[]")
        } else {
            !any(b" !\"#$%&'()*+,./:;<=>?@[\\]^`{|}~\n")
        };
        if plain {
            return;
        }
        let lit = lit.unwrap_or_else(|| e.literals_with(t, bytes));
        if run(Class::Sqli) {
            e.sqli(t, lit, out);
        }
        if xss && run(Class::Xss) && any(b"<>\"'`:(={&\\+") {
            e.xss(t, lit, out);
        }
        if run(Class::Traversal) && any(b"./\\:<") {
            e.traversal(t, lit, out);
        }
        if run(Class::Command) {
            e.command(t, lit, out);
        }
        if run(Class::Ssrf) {
            ssrf_findings(t, out);
        }
    }

    /// Inspects everything before the body: protocol framing, path, query, cookies, `User-Agent`
    /// and the listed headers.
    pub fn inspect_head(&self, req: &Request<'_>, out: &mut Findings) {
        let mut buf = Vec::with_capacity(128);
        if self.on(Class::Protocol) {
            protocol(req, out);
        }
        let path = req.path_only();
        if self.on(Class::Traversal) || self.on(Class::Ssrf) {
            // The whole path too: a payload with `/` in it spans segments.
            normalize(path.as_bytes(), false, &mut buf);
            if self.on(Class::Traversal) {
                let lit = self.engines.literals(&buf);
                self.engines.traversal(&buf, lit, out);
            }
            if self.on(Class::Ssrf) {
                ssrf_findings(&buf, out);
            }
        }
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            self.value(seg.as_bytes(), false, Location::PathSegment, &mut buf, out);
        }
        if let Some((_, query)) = req.path.split_once('?') {
            self.form(query.as_bytes(), &mut buf, out);
        }
        let mut ua = false;
        for (name, v) in req.headers.iter() {
            if name.eq_ignore_ascii_case("user-agent") {
                ua = true;
                self.value(v, false, Location::UserAgent, &mut buf, out);
            } else if name.eq_ignore_ascii_case("cookie") {
                for pair in v.split(|c| *c == b';') {
                    let value = match pair.iter().position(|c| *c == b'=') {
                        Some(p) => pair.get(p + 1..).unwrap_or(&[]),
                        None => pair,
                    };
                    self.value(value, false, Location::Value, &mut buf, out);
                }
            } else if self.headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                self.value(v, false, Location::Value, &mut buf, out);
            }
        }
        // A missing User-Agent is a weak signal: the Core Rule Set scores it only from paranoia
        // level 2 (920320), so with the rule set on it is left to the rule set.
        let crs_on = self.crs.as_ref().is_some_and(|c| c.mode.is_some());
        if !ua && self.on(Class::Scanner) && !crs_on {
            out.add(Class::Scanner, "scanner-no-user-agent", Severity::Notice);
        }
    }

    /// A query string or form body: every name and value.
    fn form(&self, s: &[u8], buf: &mut Vec<u8>, out: &mut Findings) {
        for pair in s.split(|c| *c == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|c| *c == b'=') {
                Some(p) => (
                    pair.get(..p).unwrap_or(&[]),
                    pair.get(p + 1..).unwrap_or(&[]),
                ),
                None => (pair, &[][..]),
            };
            self.value(name, true, Location::Name, buf, out);
            self.value(value, true, Location::Value, buf, out);
        }
    }

    /// Whether bodies of this `Content-Type` are read: JSON, forms, text and XML, or a body that
    /// names no type. Binary uploads (PDF, images, `application/octet-stream`, multipart) are
    /// not: scanning their bytes as text would find noise, and cost the most.
    pub fn reads_media(content_type: Option<&[u8]>) -> bool {
        let Some(media) = content_type else {
            return true;
        };
        let media = media_type(media);
        media.is_empty()
            || media == "application/json"
            || media.ends_with("+json")
            || media == "application/x-www-form-urlencoded"
            || media.starts_with("text/")
            || media == "application/xml"
            || media.ends_with("+xml")
    }

    /// Whether a `Content-Type` is `multipart/form-data` (read by the Core Rule Set's body
    /// processor, whose rules check field and file names; the detectors skip file contents).
    pub fn is_multipart(content_type: Option<&[u8]>) -> bool {
        content_type.is_some_and(|c| media_type(c) == "multipart/form-data")
    }

    /// Inspects a request body: a JSON document's strings and member names, a form's names and
    /// values, or any other text body as one value (binary media types are skipped). `parsed` is the JSON document when the
    /// caller already has it.
    pub fn inspect_body(
        &self,
        body: &[u8],
        content_type: Option<&[u8]>,
        parsed: Option<&serde_json::Value>,
        out: &mut Findings,
    ) {
        if body.is_empty() {
            return;
        }
        let media = content_type
            .and_then(|c| std::str::from_utf8(c).ok())
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let mut buf = Vec::with_capacity(128);
        // A body that names no type is read as a form, as the Core Rule Set reads it (unless
        // it is JSON): sending no `Content-Type` must not hide a payload.
        let looks_json = matches!(body.trim_ascii_start().first(), Some(b'{' | b'['));
        if media == "application/x-www-form-urlencoded" || (media.is_empty() && !looks_json) {
            self.form(body, &mut buf, out);
            return;
        }
        if media.starts_with("multipart/") {
            return;
        }
        let owned;
        let doc = match parsed {
            Some(v) => Some(v),
            None if media == "application/json"
                || media.ends_with("+json")
                || body.first() == Some(&b'{') =>
            {
                owned = serde_json::from_slice::<serde_json::Value>(body).ok();
                owned.as_ref()
            }
            None => None,
        };
        match doc {
            Some(v) => self.json(v, &mut buf, out),
            None => self.value(body, false, Location::Value, &mut buf, out),
        }
    }

    fn json(&self, v: &serde_json::Value, buf: &mut Vec<u8>, out: &mut Findings) {
        // Iterative, so depth costs no stack.
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::String(s) => {
                    self.value(s.as_bytes(), false, Location::Value, buf, out)
                }
                serde_json::Value::Array(a) => stack.extend(a.iter()),
                serde_json::Value::Object(m) => {
                    for (k, x) in m {
                        self.value(k.as_bytes(), false, Location::Name, buf, out);
                        stack.push(x);
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether the findings and the CRS matches cross `threshold`: enforced when the enforcing
    /// classes and rules alone do, shadowed when they do only with the shadow ones counted.
    pub fn judge(
        &self,
        threshold: u32,
        f: &Findings,
        crs: &[crate::crs::Match],
    ) -> Option<Detected> {
        let mode_of = |c: Class| self.modes.get(c.index()).copied().flatten();
        let (crs_enforced, crs_total) = match &self.crs {
            Some(c) => (c.score(crs, true), c.score(crs, false)),
            None => (0, 0),
        };
        let enforced = f.score(|c| mode_of(c) == Some(Mode::Enforce)) + crs_enforced;
        let total = f.score(|c| mode_of(c).is_some()) + crs_total;
        let mode = if enforced >= threshold {
            Mode::Enforce
        } else if total >= threshold {
            Mode::Shadow
        } else {
            return None;
        };
        let counts = |c: Class| match mode {
            Mode::Enforce => mode_of(c) == Some(Mode::Enforce),
            Mode::Shadow => mode_of(c).is_some(),
        };
        let mut by_class: Vec<(Class, u32)> = Vec::new();
        for x in f.list.iter().filter(|x| counts(x.class)) {
            match by_class.iter_mut().find(|(c, _)| *c == x.class) {
                Some((_, s)) => *s += x.severity as u32,
                None => by_class.push((x.class, x.severity as u32)),
            }
        }
        by_class.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let crs_score = if mode == Mode::Enforce {
            crs_enforced
        } else {
            crs_total
        };
        let crs_rules: Vec<u32> = match &self.crs {
            Some(c) if crs_score > 0 => crs
                .iter()
                .filter(|m| m.score > 0)
                .filter(|m| mode == Mode::Shadow || !c.shadow.contains(&m.id))
                .map(|m| m.id)
                .collect(),
            _ => Vec::new(),
        };
        let top_class = by_class.first().copied();
        let rule = match (&self.crs, top_class) {
            (Some(c), Some((_, s))) if crs_score > s => c.rule,
            (Some(c), None) => c.rule,
            (_, Some((first, _))) => *self.rules.get(first.index())?,
            (None, None) => return None,
        };
        Some(Detected {
            mode,
            classes: by_class.iter().map(|(c, _)| *c).collect(),
            crs: crs_rules,
            score: if mode == Mode::Enforce {
                enforced
            } else {
                total
            },
            rule,
        })
    }
}

/// SSRF targets in every URL of a value.
fn ssrf_findings(t: &[u8], out: &mut Findings) {
    if memchr::memmem::find(t, b"//").is_none() {
        return;
    }
    ssrf::scan(t, |target| {
        let (rule, sev) = match target {
            ssrf::Target::Scheme => ("ssrf-scheme", Severity::Critical),
            ssrf::Target::Metadata => ("ssrf-metadata", Severity::Critical),
            ssrf::Target::Internal => ("ssrf-internal", Severity::Critical),
            ssrf::Target::RebindingName => ("ssrf-rebinding-name", Severity::Critical),
            ssrf::Target::OddNotation => ("ssrf-odd-address", Severity::Error),
        };
        out.add(Class::Ssrf, rule, sev);
    });
}

/// Whether a line break is followed by `name:` (a header line): each break reads at most the
/// token after it, so the scan stays linear.
fn header_after_break(t: &[u8]) -> bool {
    let mut rest = t;
    while let Some(p) = rest.iter().position(|c| *c == b'\n') {
        rest = rest.get(p + 1..).unwrap_or(&[]);
        let name = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'-')
            .count();
        if name > 0 && rest.get(name) == Some(&b':') {
            return true;
        }
    }
    false
}

/// The media type of a `Content-Type` value, lower case, without parameters.
fn media_type(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Framing and header anomalies.
fn protocol(req: &Request<'_>, out: &mut Findings) {
    let count = |name: &str| {
        req.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    };
    let lengths = count("content-length");
    let te = req.header("transfer-encoding");
    if lengths > 0 && te.is_some() {
        out.add(Class::Protocol, "protocol-cl-te", Severity::Critical);
    }
    if lengths > 1
        || req
            .header("content-length")
            .is_some_and(|v| v.contains(&b','))
    {
        out.add(
            Class::Protocol,
            "protocol-content-length",
            Severity::Critical,
        );
    }
    if let Some(te) = te {
        if !te.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            out.add(
                Class::Protocol,
                "protocol-transfer-encoding",
                Severity::Error,
            );
        }
    }
    if matches!(req.method, "GET" | "HEAD") && req.body_expected {
        out.add(Class::Protocol, "protocol-body-on-get", Severity::Warning);
    }
    let bad = |v: &[u8]| v.iter().any(|c| (*c < 0x20 && *c != b'\t') || *c == 0x7f);
    if req.headers.iter().any(|(_, v)| bad(v)) {
        out.add(Class::Protocol, "protocol-control-char", Severity::Error);
    }
}
