//! The detectors. Each reads a value in its normalised form (see [`super::normalize`]) and
//! reports findings; none of them runs a regular expression. Keyword sets are Aho-Corasick
//! automata (one pass over the value), SQL and shell syntax is read by small tokenizers that
//! look a bounded number of tokens ahead, and SQL and HTML contexts are also judged by
//! libinjection's tokenizer and fingerprints (a pure-Rust port: one pass, no backtracking).

use aho_corasick::AhoCorasick;

use super::{Class, Findings, Severity};

/// Every keyword set in one Aho-Corasick automaton: a value is searched once, and each detector
/// reads which of its sets matched. The sets are fixed, so the automaton is built once per VM
/// ([`Engines::shared`]) and every policy compiled in it, push after push, uses the same one.
#[derive(Debug)]
pub struct Engines {
    literals: AhoCorasick,
    /// The set each pattern belongs to, by pattern index.
    groups: Vec<Group>,
}

/// A keyword set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Files = 0,
    WeakFiles,
    Wrappers,
    Shells,
    Code,
    Sinks,
    Scanners,
    Catalogs,
}

/// Which keyword sets matched a value, and which ASCII bytes it contains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Literals {
    sets: u16,
    bytes: u128,
}

impl Literals {
    fn has(self, g: Group) -> bool {
        self.sets & (1 << g as u16) != 0
    }

    /// Whether the value contains the ASCII byte `b`.
    pub fn byte(self, b: u8) -> bool {
        b < 128 && (self.bytes >> b) & 1 == 1
    }

    /// Whether the value contains any of these ASCII bytes.
    pub fn any(self, set: &[u8]) -> bool {
        set.iter().any(|b| self.byte(*b))
    }
}

/// The ASCII bytes a value contains, as a bit set (one pass).
pub fn presence(t: &[u8]) -> u128 {
    // Two 64-bit halves: cheaper than 128-bit shifts where there is no native 128-bit type.
    let (mut lo, mut hi) = (0u64, 0u64);
    for &c in t {
        if c < 64 {
            lo |= 1 << c;
        } else if c < 128 {
            hi |= 1 << (c - 64);
        }
    }
    u128::from(hi) << 64 | u128::from(lo)
}

/// Files an attacker reads through traversal or inclusion (normalised, `\` read as `/`).
const SENSITIVE_FILES: [&str; 33] = [
    "/var/run/secrets/",
    "serviceaccount/token",
    ".aws/credentials",
    ".docker/config",
    ".kube/config",
    ".npmrc",
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/sudoers",
    "proc/self/",
    "proc/version",
    "proc/1/",
    "win.ini",
    "boot.ini",
    "system32/",
    "windows/system",
    "web.config",
    "web-inf/",
    "meta-inf/",
    ".htaccess",
    ".htpasswd",
    ".git/",
    ".svn/",
    "/.env",
    "wp-config",
    "id_rsa",
    ".bash_history",
    ".ssh/",
    "/var/log/",
    "c:/windows",
];

/// Places a file read also starts from, but so do legitimate paths: weaker evidence.
const WEAK_FILES: [&str; 3] = ["/etc/", "/usr/local/", "applicationhost.config"];

/// Stream wrappers and schemes that turn a file name into code or a remote fetch.
const WRAPPERS: [&str; 10] = [
    "php://",
    "file://",
    "expect://",
    "zip://",
    "phar://",
    "data://",
    "glob://",
    "compress.zlib://",
    "ogg://",
    "rar://",
];

/// Shells, interpreters and tricks that only command injection writes.
const SHELLS: [&str; 29] = [
    "net user",
    "net localgroup",
    "net group",
    "net share",
    "net view",
    "-oproxycommand",
    "() {",
    "/bin/sh",
    "/bin/bash",
    "/bin/zsh",
    "/bin/dash",
    "/bin/busybox",
    "cmd.exe",
    "cmd /c",
    "powershell -",
    "/dev/tcp/",
    "/dev/udp/",
    "${ifs}",
    "$ifs",
    "bash -i",
    "sh -i",
    "nc -e",
    "ncat -e",
    "mkfifo /tmp",
    "xterm -display",
    "| sh",
    "|sh",
    "| bash",
    "|bash",
];

/// Server-side template and expression-language injection: what a payload needs to reach a
/// runtime's process or class machinery (Jinja2, Spring EL, OGNL, FreeMarker, Smarty, PHP).
const CODE: [&str; 32] = [
    "class.module.classloader",
    "classloader.resources",
    "call_user_func",
    "invokefunction",
    "base64_decode(",
    "gzinflate(",
    "<?php",
    "<?=",
    "__class__",
    "__globals__",
    "__subclasses__",
    "__mro__",
    "__builtins__",
    "__import__",
    "getruntime(",
    "java.lang.runtime",
    "processbuilder",
    "freemarker.template.utility",
    "_memberaccess",
    "{php}",
    "system('",
    "system(\"",
    "passthru(",
    "shell_exec(",
    "proc_open(",
    "popen(",
    "os.system",
    "subprocess.",
    "child_process",
    "runtime.exec",
    ".exec('",
    ".exec(\"",
];

/// JavaScript that only a script-injection payload needs.
const SINKS: [&str; 19] = [
    "alert(",
    "alert`",
    "prompt(",
    "confirm(",
    "eval(",
    "document.cookie",
    "document.domain",
    "document.write",
    "window.location",
    "fromcharcode",
    "constructor(",
    "settimeout(",
    "setinterval(",
    "atob(",
    "innerhtml",
    "import(",
    "location.href",
    "top[",
    "self[",
];

/// Attack and scanning tools, as they name themselves in `User-Agent`.
const SCANNERS: [&str; 59] = [
    "dotdotpwn",
    "l9scan",
    "leakix",
    "nimbostratus",
    "x00_-gawa",
    "grabber/",
    "mozilla/5.0 sf/",
    "wapiti",
    "vega/",
    "fuzz faster u fool",
    "censysinspect",
    "l9explore",
    "projectdiscovery",
    "wget(linux)",
    "zgrab",
    "sqlmap",
    "nikto",
    "nmap",
    "masscan",
    "zgrab",
    "nuclei",
    "acunetix",
    "netsparker",
    "invicti",
    "wpscan",
    "dirbuster",
    "gobuster",
    "ffuf",
    "feroxbuster",
    "w3af",
    "arachni",
    "openvas",
    "nessus",
    "hydra",
    "wfuzz",
    "whatweb",
    "skipfish",
    "commix",
    "xsstrike",
    "havij",
    "appscan",
    "webinspect",
    "jorgee",
    "zmeu",
    "morfeus",
    "fimap",
    "dirb",
    "paros",
    "blackwidow",
    "brutus",
    "jaeles",
    "dirsearch",
    "sqlninja",
    "pangolin",
    "bsqlbf",
    "uniscan",
    "webshag",
    "interactsh",
    "burpcollaborator",
];

/// Commands an injection runs (after a separator, with an argument that looks like one).
const COMMANDS: [&str; 63] = [
    "timeout",
    "findstr",
    "cat",
    "ls",
    "id",
    "whoami",
    "uname",
    "wget",
    "curl",
    "nc",
    "ncat",
    "netcat",
    "bash",
    "sh",
    "zsh",
    "ksh",
    "dash",
    "python",
    "python2",
    "python3",
    "perl",
    "php",
    "ruby",
    "ping",
    "nslookup",
    "dig",
    "chmod",
    "chown",
    "rm",
    "mv",
    "cp",
    "echo",
    "printf",
    "sleep",
    "powershell",
    "pwsh",
    "cmd",
    "type",
    "dir",
    "ifconfig",
    "ipconfig",
    "busybox",
    "telnet",
    "tftp",
    "certutil",
    "bitsadmin",
    "hostname",
    "env",
    "systeminfo",
    "tasklist",
    "socat",
    "base64",
    "sudo",
    "find",
    "grep",
    "head",
    "tail",
    "awk",
    "netstat",
    "crontab",
    "wmic",
    "mshta",
    "nohup",
];

/// Commands that are no English word: after a separator, any argument will do.
const STRONG_COMMANDS: [&str; 36] = [
    "nc",
    "ncat",
    "netcat",
    "wget",
    "curl",
    "telnet",
    "socat",
    "nslookup",
    "ping",
    "whoami",
    "uname",
    "ifconfig",
    "ipconfig",
    "systeminfo",
    "tasklist",
    "netstat",
    "hostname",
    "bash",
    "powershell",
    "pwsh",
    "cmd",
    "certutil",
    "bitsadmin",
    "wmic",
    "mshta",
    "python",
    "python3",
    "perl",
    "php",
    "ruby",
    "busybox",
    "sudo",
    "chmod",
    "crontab",
    "nohup",
    "findstr",
];

/// SQL functions an injection calls for delays, errors or files.
const SQL_FUNCTIONS: [&str; 22] = [
    "sleep",
    "benchmark",
    "pg_sleep",
    "extractvalue",
    "updatexml",
    "load_file",
    "xp_cmdshell",
    "sys_eval",
    "sys_exec",
    "dbms_pipe.receive_message",
    "dbms_lock.sleep",
    "utl_inaddr.get_host_name",
    "utl_http.request",
    "randomblob",
    "name_const",
    "group_concat",
    "concat_ws",
    "pg_read_file",
    "lo_import",
    "ctxsys.drithsx.sn",
    "dbms_xmlgen.getxml",
    "xmltype",
];

/// System catalogues only schema discovery reads.
const SQL_CATALOGS: [&str; 10] = [
    "information_schema",
    "sysobjects",
    "syscolumns",
    "pg_catalog",
    "pg_shadow",
    "sqlite_master",
    "mysql.user",
    "all_tables",
    "msysobjects",
    "@@version",
];

/// MongoDB query operators (NoSQL injection through `param[$ne]=` or a JSON body).
const NOSQL_OPERATORS: [&str; 14] = [
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$regex",
    "$where",
    "$exists",
    "$nin",
    "$in",
    "$or",
    "$and",
    "$expr",
    "$function",
];

/// Tags whose presence alone runs script or changes where a page loads from.
const SCRIPT_TAGS: [&str; 10] = [
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "meta", "xss",
];

/// Tags that carry event handlers or foreign content in most payloads.
const ACTIVE_TAGS: [&str; 15] = [
    "svg", "math", "img", "image", "body", "details", "video", "audio", "input", "form", "isindex",
    "marquee", "link", "style", "a",
];

/// Event-handler names (after `on`).
const HANDLERS: [&str; 40] = [
    "load",
    "error",
    "click",
    "dblclick",
    "mouseover",
    "mouseout",
    "mouseenter",
    "mousemove",
    "mousedown",
    "mouseup",
    "focus",
    "focusin",
    "blur",
    "toggle",
    "begin",
    "end",
    "change",
    "input",
    "submit",
    "keydown",
    "keyup",
    "keypress",
    "animationstart",
    "animationend",
    "transitionend",
    "pointerover",
    "pointerenter",
    "pointerdown",
    "resize",
    "scroll",
    "wheel",
    "pageshow",
    "hashchange",
    "message",
    "unload",
    "beforeunload",
    "copy",
    "paste",
    "drag",
    "auxclick",
];

impl Engines {
    /// The automaton, built on first use and kept for the life of the process (the VM): building
    /// it is most of the work of compiling a policy with detection, and a policy push would
    /// otherwise allocate a new one in every VM. `None` only if the fixed patterns could not be
    /// compiled.
    pub fn shared() -> Option<&'static Engines> {
        static SHARED: std::sync::OnceLock<Option<Engines>> = std::sync::OnceLock::new();
        SHARED.get_or_init(Engines::new).as_ref()
    }

    /// Builds the automaton. `None` only if the fixed patterns could not be compiled.
    pub fn new() -> Option<Engines> {
        let sets: [(Group, &[&str]); 8] = [
            (Group::Files, &SENSITIVE_FILES),
            (Group::WeakFiles, &WEAK_FILES),
            (Group::Wrappers, &WRAPPERS),
            (Group::Shells, &SHELLS),
            (Group::Code, &CODE),
            (Group::Sinks, &SINKS),
            (Group::Scanners, &SCANNERS),
            (Group::Catalogs, &SQL_CATALOGS),
        ];
        let mut patterns = Vec::new();
        let mut groups = Vec::new();
        for (g, list) in sets {
            for p in list {
                patterns.push(*p);
                groups.push(g);
            }
        }
        let literals = AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&patterns)
            .ok()?;
        Some(Engines { literals, groups })
    }

    /// Searches a value once for every keyword set.
    pub fn literals(&self, t: &[u8]) -> Literals {
        self.literals_with(t, presence(t))
    }

    /// As [`Engines::literals`], with the byte set already known.
    pub fn literals_with(&self, t: &[u8], bytes: u128) -> Literals {
        let mut sets = 0u16;
        for m in self.literals.find_overlapping_iter(t) {
            if let Some(g) = self.groups.get(m.pattern().as_usize()) {
                sets |= 1 << *g as u16;
            }
        }
        Literals { sets, bytes }
    }

    /// SQL injection (and NoSQL operators).
    pub fn sqli(&self, t: &[u8], lit: Literals, out: &mut Findings) {
        let toks = tokens(t);
        let word = |i: usize| word_at(&toks, i);
        let punct = |i: usize| punct_at(&toks, i);
        let mut suspicious = false;
        for (i, tok) in toks.iter().enumerate() {
            match tok {
                Tok::Word(w) => {
                    let w = *w;
                    if w == b"union" {
                        let mut k = i + 1;
                        if matches!(word(k), b"all" | b"distinct") {
                            k += 1;
                        }
                        if word(k) == b"select" || punct(k) == b'(' && word(k + 1) == b"select" {
                            out.add(Class::Sqli, "sqli-union", Severity::Critical);
                        }
                    }
                    if punct(i + 1) == b'(' && SQL_FUNCTIONS.iter().any(|f| f.as_bytes() == w) {
                        out.add(Class::Sqli, "sqli-function", Severity::Critical);
                    }
                    if w == b"waitfor" && matches!(word(i + 1), b"delay" | b"time") {
                        out.add(Class::Sqli, "sqli-function", Severity::Critical);
                    }
                    if w == b"into" && matches!(word(i + 1), b"outfile" | b"dumpfile") {
                        out.add(Class::Sqli, "sqli-file", Severity::Critical);
                    }
                    if w.starts_with(b"@@") && w.len() > 2 {
                        // Server variables (`@@version`, `@@datadir`): SQL and nothing else.
                        out.add(Class::Sqli, "sqli-variable", Severity::Critical);
                    }
                    if w.first() == Some(&b'$')
                        && NOSQL_OPERATORS.iter().any(|o| o.as_bytes() == w)
                        && (i == 0
                            || matches!(punct(i.wrapping_sub(1)), b'[' | b'{' | b'"' | b'\''))
                    {
                        out.add(Class::Sqli, "nosql-operator", Severity::Critical);
                    }
                    if w == b"select"
                        && i > 0
                        && punct(i - 1) == b'('
                        && (i + 1..i + 10).any(|k| word(k) == b"from")
                    {
                        out.add(Class::Sqli, "sqli-subquery", Severity::Error);
                    }
                    if matches!(w, b"or" | b"and" | b"xor" | b"having" | b"where" | b"when") {
                        if let Some(same) = comparison(&toks, i + 1) {
                            if same {
                                out.add(Class::Sqli, "sqli-tautology", Severity::Critical);
                            } else {
                                out.add(Class::Sqli, "sqli-boolean", Severity::Error);
                            }
                        }
                    }
                    // SQL grammar, not English that shares its words ("sport or luxury",
                    // "select the trim"): reason enough to run libinjection's tokenizer, which
                    // costs a few microseconds.
                    if sql_grammar(&toks, i, w) {
                        suspicious = true;
                    }
                }
                Tok::Punct(p) => {
                    if *p == b';' {
                        stacked(&toks, i + 1, out);
                    }
                    if (*p == b'|' && punct(i + 1) == b'|') || (*p == b'&' && punct(i + 1) == b'&')
                    {
                        if let Some(same) = comparison(&toks, i + 2) {
                            if same {
                                out.add(Class::Sqli, "sqli-tautology", Severity::Critical);
                            }
                        }
                    }
                }
            }
        }
        if lit.has(Group::Catalogs) {
            out.add(Class::Sqli, "sqli-catalog", Severity::Error);
        }
        // LDAP filter injection: closing the application's filter and opening another.
        if lit.byte(b')')
            && contains(t, b")(")
            && (contains(t, b"=*")
                || contains(t, b"(|")
                || contains(t, b"(&")
                || contains(t, b"(!"))
        {
            out.add(Class::Sqli, "ldap-filter", Severity::Critical);
        }
        if comment_after_code(t) || contains(t, b"/*") || quote_breaks(t) {
            suspicious = true;
        }
        // A closed string or bracket followed by a comment that ends the statement: `admin'#`.
        for (i, c) in t.iter().enumerate() {
            if !matches!(c, b'\'' | b'"' | b'`' | b')') {
                continue;
            }
            let rest = t.get(i + 1..).unwrap_or(&[]);
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            let comment = rest
                .strip_prefix(b"#")
                .or_else(|| rest.strip_prefix(b"--"))
                .or_else(|| rest.strip_prefix(b"/*"));
            if comment.is_some_and(|r| r.iter().all(|c| b" -#;0123456789".contains(c))) {
                out.add(Class::Sqli, "sqli-comment-break", Severity::Critical);
                break;
            }
        }
        if suspicious && libinjectionrs::detect_sqli(t).is_injection() {
            out.add(Class::Sqli, "sqli-syntax", Severity::Critical);
        }
    }

    /// Cross-site scripting.
    pub fn xss(&self, t: &[u8], lit: Literals, out: &mut Findings) {
        let decoded;
        let views: &[&[u8]] = if lit.byte(b'&') || lit.byte(b'\\') {
            decoded = decode_references(t);
            if decoded.as_slice() == t {
                &[t]
            } else {
                &[t, decoded.as_slice()]
            }
        } else {
            &[t]
        };
        for &v in views {
            // Decoded entities may spell a sink the raw value did not.
            let lit = if v.len() == t.len() && v == t {
                lit
            } else {
                self.literals(v)
            };
            self.xss_view(v, lit, out);
        }
    }

    fn xss_view(&self, t: &[u8], lit: Literals, out: &mut Findings) {
        let has_lt = lit.byte(b'<');
        if has_lt {
            tags(t, out);
        }
        schemes(t, out);
        let breaks_attribute = has_lt || lit.any(b"\"'`");
        handlers(t, breaks_attribute, out);
        let sink = lit.has(Group::Sinks);
        if sink {
            out.add(Class::Xss, "xss-js-sink", Severity::Warning);
            // Breaking out of a script string: `";alert(1)//`, `'-alert(1)-'`, `${alert(1)}`.
            let breaks = [
                &b"\";"[..],
                b"';",
                b"'}",
                b"\"}",
                b"'-",
                b"\"-",
                b"'+",
                b"\"+",
                b"${",
            ];
            if breaks.iter().any(|b| contains(t, b)) {
                out.add(Class::Xss, "xss-script-break", Severity::Error);
            }
        }
        if contains(t, b"+adw-") || contains(t, b"+ad4-") {
            out.add(Class::Xss, "xss-utf7", Severity::Critical);
        }
        if let Some(open) = super::normalize::find(t, 0, b"{{") {
            let inner = t.get(open..).unwrap_or(&[]);
            if contains(inner, b"}}")
                && (contains(inner, b"constructor")
                    || contains(inner, b"$eval")
                    || contains(inner, b"$on"))
            {
                out.add(Class::Xss, "xss-template", Severity::Error);
            }
        }
        if contains(t, b"expression(") || contains(t, b"-moz-binding") {
            out.add(Class::Xss, "xss-css", Severity::Error);
        }
        let worth = has_lt || (lit.byte(b'=') && breaks_attribute);
        if worth && libinjectionrs::detect_xss(t).is_injection() {
            out.add(Class::Xss, "xss-syntax", Severity::Critical);
        }
    }

    /// Path traversal and file inclusion.
    pub fn traversal(&self, t: &[u8], lit: Literals, out: &mut Findings) {
        // XML external entities: a document that makes the parser read a file or a URL.
        let xxe = lit.byte(b'<')
            && (contains(t, b"<!entity")
                || (contains(t, b"<!doctype")
                    && (contains(t, b"system") || contains(t, b"public"))));
        if xxe {
            out.add(Class::Traversal, "xxe-entity", Severity::Critical);
        }
        let owned: Vec<u8>;
        let s: &[u8] = if t.contains(&b'\\') {
            owned = t
                .iter()
                .map(|c| if *c == b'\\' { b'/' } else { *c })
                .collect();
            &owned
        } else {
            t
        };
        let mut i = 0;
        while let Some(at) = super::normalize::find(s, i, b"..") {
            i = at + 1;
            let prev = at.checked_sub(1).and_then(|p| s.get(p)).copied();
            let next = s.get(at + 2).copied();
            let prev_ok = !prev.is_some_and(|c| c.is_ascii_alphanumeric());
            // `../` in prose ("use ../ links") is followed by a space; a path goes on.
            let after = s.get(at + 3).copied();
            let hit = match next {
                Some(b'/') if after == Some(b' ') => false,
                Some(b'/' | b';') => prev_ok,
                None => prev.is_none() || prev == Some(b'/'),
                _ => false,
            };
            if hit {
                out.add(Class::Traversal, "traversal-dot-dot", Severity::Critical);
                break;
            }
        }
        // With `\` read as `/` the keywords may match where they did not: search again then.
        let lit = if s.len() == t.len() && s == t {
            lit
        } else {
            self.literals(s)
        };
        if lit.has(Group::Files) {
            out.add(Class::Traversal, "lfi-file", Severity::Critical);
        } else if lit.has(Group::WeakFiles) {
            out.add(Class::Traversal, "lfi-file", Severity::Error);
        }
        if lit.has(Group::Wrappers) {
            out.add(Class::Traversal, "lfi-wrapper", Severity::Critical);
        }
    }

    /// OS command injection (and JNDI lookups, which make a Java backend run remote code).
    pub fn command(&self, t: &[u8], lit: Literals, out: &mut Findings) {
        if lit.has(Group::Shells) {
            out.add(Class::Command, "command-shell", Severity::Critical);
        }
        let lookup = [&b"jndi"[..], b"${::-", b"${lower:", b"${upper:", b"${env:"];
        if contains(t, b"${") && lookup.iter().any(|l| contains(t, l)) {
            out.add(Class::Command, "jndi-lookup", Severity::Critical);
        }
        if lit.has(Group::Code) {
            out.add(Class::Command, "code-injection", Severity::Critical);
        }
        let ssi = if lit.byte(b'<') {
            memchr::memmem::find(t, b"<!--#")
        } else {
            None
        };
        if let Some(at) = ssi {
            let directive = t.get(at + 5..).unwrap_or(&[]);
            let known = [
                &b"exec"[..],
                b"include",
                b"echo",
                b"config",
                b"printenv",
                b"fsize",
                b"flastmod",
                b"set",
            ];
            if known.iter().any(|d| directive.starts_with(d)) {
                out.add(Class::Command, "ssi-directive", Severity::Critical);
            }
        }
        if lit.any(b"{%") && template_expression(t) {
            out.add(Class::Command, "template-injection", Severity::Critical);
        }
        if contains(t, b"$(") {
            out.add(Class::Command, "command-substitution", Severity::Error);
        }
        let mut i = 0;
        while let Some(&c) = t.get(i) {
            i += 1;
            let sep = match c {
                b';' | b'|' | b'&' | b'`' | b'\n' => true,
                b'$' => t.get(i) == Some(&b'('),
                _ => false,
            };
            if !sep {
                continue;
            }
            // Past the whole run of separators: each word is read once.
            while t.get(i).is_some_and(|c| SEPARATORS.contains(c)) {
                i += 1;
            }
            if command_after(t, i) {
                out.add(Class::Command, "command-injection", Severity::Critical);
                return;
            }
            // `/???/c?t`: a path spelled with wildcards.
            // Read only when it starts with `/`, and only as far as a path goes: linear.
            let word = t.get(i..).unwrap_or(&[]);
            let path_len = word
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || b"/?*._-".contains(c)))
                .unwrap_or(word.len());
            let word = if word.first() == Some(&b'/') {
                word.get(..path_len).unwrap_or(&[])
            } else {
                &[]
            };
            if word.iter().any(|c| *c == b'?' || *c == b'*') {
                out.add(Class::Command, "command-glob", Severity::Critical);
                return;
            }
        }
        // A whole value that is a command line with an argument (`cat /etc/passwd`, `id;`).
        let first = t.split(|c| *c == b' ').next().unwrap_or(&[]);
        let arg = t.get(first.len() + 1).copied();
        if COMMANDS.iter().any(|c| c.as_bytes() == first) && matches!(arg, Some(b'-' | b'/' | b'$'))
        {
            out.add(Class::Command, "command-line", Severity::Warning);
        }
    }

    /// Known attack tools in `User-Agent`.
    pub fn scanner(&self, lit: Literals, out: &mut Findings) {
        if lit.has(Group::Scanners) {
            out.add(Class::Scanner, "scanner-user-agent", Severity::Critical);
        }
    }
}

/// Whether a command word starts at `from` (after separators, spaces and quoting tricks) and is
/// followed by something that looks like its argument, or nothing.
const SEPARATORS: &[u8] = b" ;|&`$({\n";

fn command_after(t: &[u8], from: usize) -> bool {
    let mut i = from;
    while t.get(i).is_some_and(|c| SEPARATORS.contains(c)) {
        i += 1;
    }
    let word_start = i;
    let mut word = Vec::with_capacity(16);
    while let Some(&c) = t.get(i) {
        if c.is_ascii_alphanumeric() || c == b'/' || c == b'.' || c == b'_' {
            if word.len() < 40 {
                word.push(c);
            }
        } else if c == b'\'' || c == b'"' || c == b'\\' || c == b'[' || c == b']' || c == b'^' {
            // `c'a't`, `w"h"oami`, `w\hoami`, `c[a]t`: the shell drops the quotes and a
            // one-letter bracket matches the letter.
        } else {
            break;
        }
        i += 1;
    }
    let name = match word.iter().rposition(|c| *c == b'/') {
        Some(p) => word.get(p + 1..).unwrap_or(&[]),
        None => &word[..],
    };
    let name = match name.iter().position(|c| *c == b'.') {
        // `cmd.exe`, `powershell.exe`
        Some(p) if name.ends_with(b".exe") => name.get(..p).unwrap_or(&[]),
        _ => name,
    };
    if name.is_empty() || !COMMANDS.iter().any(|c| c.as_bytes() == name) {
        return false;
    }
    // `${IFS}` and friends stand for a space.
    let rest = t.get(i..).unwrap_or(&[]);
    let rest = rest
        .strip_prefix(b"${ifs}")
        .or_else(|| rest.strip_prefix(b"$ifs"))
        .map(|r| (r, true))
        .unwrap_or((rest, false));
    let (rest, ifs) = rest;
    let trimmed = match rest.iter().position(|c| *c != b' ') {
        Some(p) => rest.get(p..).unwrap_or(&[]),
        None => &[],
    };
    let spaced = ifs || rest.first() == Some(&b' ');
    let braced = from > 0 && t.get(word_start.wrapping_sub(1)) == Some(&b'{');
    match trimmed.first() {
        None => true,
        Some(b'$') => true,
        Some(b',') => braced,
        Some(_) if spaced && STRONG_COMMANDS.iter().any(|c| c.as_bytes() == name) => true,
        Some(c) if b";|&`)\n<>#".contains(c) => true,
        Some(c) if spaced && b"-/$.~'\"0123456789*".contains(c) => true,
        Some(c) if spaced && c.is_ascii_alphabetic() => {
            // A Windows drive: `type c:/...`
            trimmed.get(1) == Some(&b':') && matches!(trimmed.get(2), Some(b'/' | b'\\'))
        }
        _ => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a [u8]),
    Punct(u8),
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'@' || c == b'.' || c >= 0x80
}

/// The word at token `k`, or empty.
fn word_at<'a>(toks: &[Tok<'a>], k: usize) -> &'a [u8] {
    match toks.get(k) {
        Some(Tok::Word(w)) => w,
        _ => &[],
    }
}

/// The punctuation at token `k`, or 0.
fn punct_at(toks: &[Tok<'_>], k: usize) -> u8 {
    match toks.get(k) {
        Some(Tok::Punct(p)) => *p,
        _ => 0,
    }
}

/// Words and single punctuation characters; spaces dropped. At most 4096 tokens are read.
fn tokens(t: &[u8]) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = t.get(i) {
        if out.len() >= 4096 {
            break;
        }
        if c == b' ' || c == b'\n' {
            i += 1;
        } else if is_word(c) {
            let start = i;
            while t.get(i).is_some_and(|c| is_word(*c)) {
                i += 1;
            }
            out.push(Tok::Word(t.get(start..i).unwrap_or(&[])));
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

/// `X <op> Y` from token `i`, operands optionally quoted or parenthesised: `Some(true)` when
/// both sides are the same literal (a tautology), `Some(false)` when both are numbers.
fn comparison(toks: &[Tok<'_>], i: usize) -> Option<bool> {
    let (x, xq, i) = operand(toks, i)?;
    let mut i = i;
    let mut op = Vec::new();
    while let Some(Tok::Punct(p)) = toks.get(i) {
        if !b"=<>!".contains(p) || op.len() >= 2 {
            break;
        }
        op.push(*p);
        i += 1;
    }
    if op.is_empty() {
        match toks.get(i) {
            Some(Tok::Word(b"like" | b"is" | b"rlike" | b"regexp")) => i += 1,
            _ => return None,
        }
    }
    let (y, yq, _) = operand(toks, i)?;
    let numeric = sql_number;
    if x == y && (xq || numeric(x) || x.len() <= 3) {
        return Some(true);
    }
    (numeric(x) && numeric(y) && !xq && !yq).then_some(false)
}

fn operand<'a>(toks: &[Tok<'a>], mut i: usize) -> Option<(&'a [u8], bool, usize)> {
    let mut quoted = false;
    while let Some(Tok::Punct(p)) = toks.get(i) {
        if !b"'\"(`".contains(p) {
            break;
        }
        quoted = quoted || *p != b'(';
        i += 1;
    }
    let Some(Tok::Word(w)) = toks.get(i) else {
        // An empty string literal: `'' = ''`.
        return quoted.then_some((&b""[..], true, i));
    };
    i += 1;
    while let Some(Tok::Punct(p)) = toks.get(i) {
        if !b"'\")`".contains(p) {
            break;
        }
        i += 1;
    }
    Some((w, quoted, i))
}

/// A statement after `;`: `drop table`, `exec xp_…`, `shutdown`, `declare @…`, `insert into`,
/// `update … set`, `delete from`, `select … from`.
fn stacked(toks: &[Tok<'_>], i: usize, out: &mut Findings) {
    let word = |k: usize| word_at(toks, k);
    let second = word(i + 1);
    let hit = match word(i) {
        b"drop" | b"truncate" | b"alter" | b"create" => matches!(
            second,
            b"table"
                | b"database"
                | b"schema"
                | b"view"
                | b"user"
                | b"procedure"
                | b"function"
                | b"login"
        ),
        b"exec" | b"execute" => {
            second.starts_with(b"xp_")
                || second.starts_with(b"sp_")
                || second.starts_with(b"master.")
                || second.starts_with(b"@")
                || matches!(toks.get(i + 1), Some(Tok::Punct(b'(')))
        }
        b"shutdown" => true,
        b"copy" => (i + 1..i + 12).any(|k| word(k) == b"program"),
        b"return" => matches!(second, b"true" | b"1" | b"this" | b"db"),
        b"declare" => second.starts_with(b"@"),
        b"insert" | b"replace" => second == b"into",
        b"delete" => second == b"from",
        b"update" => word(i + 2) == b"set",
        b"select" => (i + 1..i + 8).any(|k| {
            matches!(
                word(k),
                b"from" | b"@@version" | b"version" | b"user" | b"pg_sleep" | b"sleep"
            )
        }),
        _ => false,
    };
    if hit {
        out.add(Class::Sqli, "sqli-stacked", Severity::Critical);
    }
}

/// Tags: `<name` (or `</name`) followed by a space, `/`, `>` or the end.
fn tags(t: &[u8], out: &mut Findings) {
    let mut i = 0;
    while let Some(at) = t.get(i..).and_then(|s| s.iter().position(|c| *c == b'<')) {
        let mut k = i + at + 1;
        if t.get(k) == Some(&b'/') {
            k += 1;
        }
        let start = k;
        while t.get(k).is_some_and(u8::is_ascii_alphabetic) {
            k += 1;
        }
        let name = t.get(start..k).unwrap_or(&[]);
        let boundary = matches!(t.get(k), None | Some(b' ' | b'/' | b'>' | b'\n'));
        if boundary && !name.is_empty() {
            if SCRIPT_TAGS.iter().any(|n| n.as_bytes() == name) {
                out.add(Class::Xss, "xss-script-tag", Severity::Critical);
            } else if ACTIVE_TAGS.iter().any(|n| n.as_bytes() == name) {
                out.add(Class::Xss, "xss-active-tag", Severity::Warning);
            }
        }
        i = k.max(i + at + 1);
    }
}

/// `javascript:`, `vbscript:` (spaces and line breaks inside ignored, as browsers drop them),
/// `data:text/html` and other active data URLs.
fn schemes(t: &[u8], out: &mut Findings) {
    for (at, _) in t.iter().enumerate().filter(|(_, c)| **c == b':') {
        let mut name: Vec<u8> = Vec::with_capacity(12);
        let mut k = at;
        let floor = at.saturating_sub(32);
        while k > floor && name.len() < 12 {
            k -= 1;
            match t.get(k) {
                Some(b' ' | b'\n') => {}
                Some(c) if c.is_ascii_alphabetic() => name.push(*c),
                _ => break,
            }
        }
        name.reverse();
        let active = matches!(name.as_slice(), b"javascript" | b"vbscript" | b"livescript")
            || name.ends_with(b"javascript")
            || name.ends_with(b"vbscript");
        if active {
            out.add(Class::Xss, "xss-script-url", Severity::Critical);
        }
        if name.ends_with(b"data") {
            let after = t.get(at + 1..).unwrap_or(&[]);
            if after.starts_with(b"text/html")
                || after.starts_with(b"image/svg")
                || after.starts_with(b"application/x")
                || after.starts_with(b"text/javascript")
            {
                out.add(Class::Xss, "xss-script-url", Severity::Critical);
            }
        }
    }
}

/// `on<event> =` at a word start.
fn handlers(t: &[u8], breaks_attribute: bool, out: &mut Findings) {
    let mut i = 0;
    while let Some(at) = super::normalize::find(t, i, b"on") {
        i = at + 2;
        if at > 0 && t.get(at - 1).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        let mut k = at + 2;
        while t.get(k).is_some_and(u8::is_ascii_alphabetic) && k - at < 24 {
            k += 1;
        }
        let name = t.get(at + 2..k).unwrap_or(&[]);
        while t.get(k) == Some(&b' ') {
            k += 1;
        }
        if t.get(k) == Some(&b'=') && HANDLERS.iter().any(|h| h.as_bytes() == name) {
            let sev = if breaks_attribute {
                Severity::Critical
            } else {
                Severity::Error
            };
            out.add(Class::Xss, "xss-event-handler", sev);
            return;
        }
    }
}

/// Decodes HTML character references (`&#60;`, `&#x3c;`, `&lt;`, `&colon;`, ...), the way a
/// browser reads an attribute.
pub(crate) fn decode_references(t: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    while let Some(&c) = t.get(i) {
        if c == b'\\' {
            // JavaScript escapes: `\u003c`, `\x3c`.
            let (len, skip) = match t.get(i + 1) {
                Some(b'u') => (4, 2),
                Some(b'x') => (2, 2),
                _ => (0, 0),
            };
            let digits = t.get(i + skip..i + skip + len).unwrap_or(&[]);
            let value =
                (len > 0 && digits.len() == len && digits.iter().all(u8::is_ascii_hexdigit))
                    .then(|| std::str::from_utf8(digits).ok())
                    .flatten()
                    .and_then(|d| u32::from_str_radix(d, 16).ok())
                    .and_then(char::from_u32);
            if let Some(ch) = value {
                push_char(&mut out, ch);
                i += skip + len;
                continue;
            }
        }
        if c != b'&' {
            out.push(c);
            i += 1;
            continue;
        }
        let rest = t.get(i + 1..).unwrap_or(&[]);
        if let Some(num) = rest.strip_prefix(b"#") {
            let (digits, radix, skip) = match num.first() {
                Some(b'x') => (num.get(1..).unwrap_or(&[]), 16, 2),
                _ => (num, 10, 1),
            };
            let len = digits
                .iter()
                .take(8)
                .take_while(|c| {
                    if radix == 16 {
                        c.is_ascii_hexdigit()
                    } else {
                        c.is_ascii_digit()
                    }
                })
                .count();
            let value = std::str::from_utf8(digits.get(..len).unwrap_or(&[]))
                .ok()
                .and_then(|d| u32::from_str_radix(d, radix).ok())
                .and_then(char::from_u32);
            if let (Some(ch), true) = (value, len > 0) {
                push_char(&mut out, ch);
                i += 1 + skip + len;
                if t.get(i) == Some(&b';') {
                    i += 1;
                }
                continue;
            }
        }
        let named: [(&[u8], u8); 12] = [
            (b"lt", b'<'),
            (b"gt", b'>'),
            (b"quot", b'"'),
            (b"apos", b'\''),
            (b"amp", b'&'),
            (b"colon", b':'),
            (b"tab", b' '),
            (b"newline", b' '),
            (b"lpar", b'('),
            (b"rpar", b')'),
            (b"sol", b'/'),
            (b"grave", b'`'),
        ];
        if let Some((n, ch)) = named.iter().find(|(n, _)| rest.starts_with(n)) {
            out.push(*ch);
            i += 1 + n.len();
            if t.get(i) == Some(&b';') {
                i += 1;
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// A decoded character, lower case; control characters as a space (a browser drops them).
fn push_char(out: &mut Vec<u8>, ch: char) {
    if ch.is_control() {
        out.push(b' ');
        return;
    }
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.to_ascii_lowercase().encode_utf8(&mut buf).as_bytes());
}

/// A server-side template expression with an operator, call or member access inside:
/// `{{7*7}}`, `${7*7}`, `#{7*7}`, `*{T(...)}`, `<%= 7*7 %>`. Each opening reads at most 200
/// bytes for its closing, so the scan stays linear.
fn template_expression(t: &[u8]) -> bool {
    let pairs: [(&[u8], &[u8]); 5] = [
        (b"{{", b"}}"),
        (b"${", b"}"),
        (b"#{", b"}"),
        (b"*{", b"}"),
        (b"<%", b"%>"),
    ];
    for (open, close) in pairs {
        let mut from = 0;
        while let Some(at) = t.get(from..).and_then(|s| memchr::memmem::find(s, open)) {
            let start = from + at + open.len();
            let window = t.get(start..t.len().min(start + 200)).unwrap_or(&[]);
            if let Some(end) = memchr::memmem::find(window, close) {
                let inner = window.get(..end).unwrap_or(&[]);
                if inner.iter().any(|c| b"*+()[]|".contains(c))
                    && inner.iter().any(u8::is_ascii_alphanumeric)
                {
                    return true;
                }
            }
            from = start;
        }
    }
    false
}

/// `--` right after code (`1--`, `')--`), not a dash in prose (`tall -- and`).
fn comment_after_code(t: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = t.get(from..).and_then(|s| memchr::memmem::find(s, b"--")) {
        let k = from + at;
        if k > 0 && !matches!(t.get(k - 1), Some(b' ' | b'-' | b'\n')) {
            return true;
        }
        from = k + 2;
    }
    false
}

/// Whether a quote may close a SQL string: any double quote or backtick, and an apostrophe
/// unless it sits inside a word (`O'Neil`, `don't`) with no SQL keyword right after it.
fn quote_breaks(t: &[u8]) -> bool {
    for (k, c) in t.iter().enumerate() {
        match c {
            b'"' | b'`' => return true,
            b'\'' => {
                let prev = k.checked_sub(1).and_then(|p| t.get(p));
                let next = t.get(k + 1);
                let inside = prev.is_some_and(u8::is_ascii_alphabetic)
                    && next.is_some_and(u8::is_ascii_alphabetic);
                if !inside {
                    return true;
                }
                let rest = t.get(k + 1..).unwrap_or(&[]);
                let word_end = rest
                    .iter()
                    .position(|c| !c.is_ascii_alphabetic())
                    .unwrap_or(rest.len());
                let after = rest.get(..word_end).unwrap_or(&[]);
                if matches!(
                    after,
                    b"or"
                        | b"and"
                        | b"xor"
                        | b"union"
                        | b"like"
                        | b"rlike"
                        | b"regexp"
                        | b"having"
                        | b"where"
                        | b"order"
                        | b"group"
                        | b"limit"
                        | b"select"
                        | b"insert"
                        | b"update"
                        | b"delete"
                        | b"drop"
                        | b"exec"
                        | b"into"
                        | b"is"
                        | b"in"
                        | b"div"
                        | b"mod"
                        | b"between"
                        | b"sounds"
                ) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// A SQL number literal: digits (with a decimal point), or `0x` and hex digits.
fn sql_number(w: &[u8]) -> bool {
    match w.strip_prefix(b"0x") {
        Some(h) => !h.is_empty() && h.iter().all(u8::is_ascii_hexdigit),
        None => {
            w.first().is_some_and(u8::is_ascii_digit)
                && w.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Whether the word at token `i` starts SQL rather than English: `or`/`and` before a number,
/// quote or bracket, `select` with a `from`, `*` or `@@` soon after, `union select`, `order by`,
/// `group by`, `insert into`, `delete from`, `update … set`, `drop table`, `exec xp_…`,
/// `waitfor delay`, `limit` with a number.
fn sql_grammar(toks: &[Tok<'_>], i: usize, w: &[u8]) -> bool {
    let word = |k: usize| word_at(toks, k);
    let punct = |k: usize| punct_at(toks, k);
    let number = |k: usize| sql_number(word(k));
    match w {
        b"or" | b"and" | b"xor" | b"having" | b"where" => {
            number(i + 1)
                || matches!(punct(i + 1), b'(' | b'\'' | b'"' | b'`' | b'!' | b'-')
                || matches!(
                    word(i + 1),
                    b"not" | b"true" | b"false" | b"null" | b"exists"
                )
        }
        b"select" => (i + 1..i + 8).any(|k| {
            matches!(
                word(k),
                b"from" | b"null" | b"version" | b"user" | b"database"
            ) || word(k).starts_with(b"@@")
                || matches!(punct(k), b'*' | b'(')
        }),
        b"union" => matches!(word(i + 1), b"select" | b"all" | b"distinct") || punct(i + 1) == b'(',
        b"order" | b"group" => word(i + 1) == b"by",
        b"insert" | b"replace" => word(i + 1) == b"into",
        b"delete" => word(i + 1) == b"from",
        b"update" => word(i + 2) == b"set",
        b"drop" | b"truncate" | b"alter" => {
            matches!(
                word(i + 1),
                b"table" | b"database" | b"schema" | b"user" | b"view"
            )
        }
        b"exec" | b"execute" | b"declare" => {
            word(i + 1).starts_with(b"xp_")
                || word(i + 1).starts_with(b"sp_")
                || word(i + 1).starts_with(b"@")
        }
        b"waitfor" | b"sleep" | b"benchmark" | b"pg_sleep" => true,
        b"limit" | b"offset" => number(i + 1),
        b"like" | b"rlike" | b"regexp" => matches!(punct(i + 1), b'\'' | b'"'),
        _ => false,
    }
}
