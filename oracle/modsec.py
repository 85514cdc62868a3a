#!/usr/bin/env python3
"""ModSecurity oracle: run requests through libmodsecurity 3 + the OWASP CRS.

Reads a corpus (JSON lines, as written by ``corpus.py``) on stdin and writes one
verdict per input line, in the same order, on stdout::

    python3 oracle/modsec.py [--rules DIR] [--setup FILE] [--paranoia N] < corpus.jsonl

Input line::

    {"id": 7, "method": "GET", "uri": "/v1/x?q=1", "version": "1.1",
     "headers": [["Host", "shop.example"], ...], "body": "..." | null, ...}

Verdict line::

    {"id": 7, "rules": [920350, 942100, 949110], "status": 403, "blocked": true,
     "score": 8, "body_processor": "URLENCODED", "body_error": false}

or ``{"id": 7, "error": "..."}`` when the line cannot be evaluated (bad JSON, a
field of the wrong type, an exception inside the bindings). One bad line never
stops the run.

``rules`` are the sorted, unique ids of the rules that matched and logged a
message (``Transaction.get_rule_messages()``; a chain reports its first rule's
id). ``score`` is the inbound anomaly score: read from rule 949110's message when
it fired, otherwise from an oracle-owned logging rule that runs after the
blocking evaluation (ids 1990000-1990099 are the oracle's; they never appear in
``rules``). The engine configuration is described in ``oracle/README.md`` and
built by :func:`prelude` and :func:`load_rules`.

Needs the PyPI wheel ``libmodsecurity`` (3.0.15.post2 bundles libmodsecurity
3.0.15); any python that has it will do.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import sys
import time

import libmodsecurity as msc

DEFAULT_RULES = "/usr/share/modsecurity-crs/rules"
DEBIAN_SETUP = "/etc/modsecurity/crs/crs-setup.conf"
BODY_LIMIT = 13107200  # 12.5 MiB, ModSecurity's recommended SecRequestBodyLimit
INBOUND_THRESHOLD = 5
OUTBOUND_THRESHOLD = 4

# Rule ids owned by the oracle (outside CRS's 900000-999999 and ModSecurity's 200000s).
ORACLE_IDS = range(1990000, 1990100)
PARANOIA_RULE = 1990001
BODY_INFO_RULE = 1990002
SCORE_RULE = 1990003
SET_RULE = 1990004
SCORE_MSG = "oracle: inbound score"
BODY_MSG = "oracle: request body"

CLIENT = ("127.0.0.1", 12345)
SERVER = ("127.0.0.1", 80)

_TOTAL_SCORE = re.compile(r"Total Score: (\d+)")


def prelude(body_limit: int = BODY_LIMIT) -> str:
    """Engine directives loaded before the CRS setup file.

    200000/200001 are ModSecurity's recommended (modsecurity.conf-recommended)
    body-processor rules: without them libmodsecurity parses only urlencoded and
    multipart bodies, and XML/JSON bodies never become ARGS / XML:/* for the CRS.
    """
    return f"""
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit {body_limit}
SecRequestBodyNoFilesLimit {body_limit}
SecRequestBodyLimitAction ProcessPartial
SecRequestBodyJsonDepthLimit 512
SecArgumentsLimit 1000
SecResponseBodyAccess Off
SecAuditEngine Off
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\\+|/)|text/)xml" \\
    "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" \\
    "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
"""


def paranoia_action(paranoia: int, threshold: int = INBOUND_THRESHOLD) -> str:
    """The SecAction that stands in for crs-setup's rules 900000 and 900110.

    CRS 3.3 reads ``tx.paranoia_level``; CRS 4 reads ``tx.blocking_paranoia_level``
    (and derives ``tx.detection_paranoia_level`` from it). Both are set; CRS's
    901 initialization only fills in values that are still unset.
    """
    return (
        f'SecAction "id:{PARANOIA_RULE},phase:1,pass,nolog,t:none,'
        f"setvar:tx.paranoia_level={paranoia},"
        f"setvar:tx.blocking_paranoia_level={paranoia},"
        f"setvar:tx.inbound_anomaly_score_threshold={threshold},"
        f'setvar:tx.outbound_anomaly_score_threshold={OUTBOUND_THRESHOLD}"\n'
    )


def body_info_rule() -> str:
    """Phase-2 rule, loaded before the CRS, that reports how the body was parsed."""
    return (
        f'SecAction "id:{BODY_INFO_RULE},phase:2,pass,log,t:none,'
        f"msg:'{BODY_MSG}',"
        f"logdata:'%{{REQBODY_PROCESSOR}}|%{{REQBODY_ERROR}}'\"\n"
    )


def score_rule() -> str:
    """Phase-2 rule, loaded after the CRS, that reports the inbound score.

    It runs only when 949110 did not deny (libmodsecurity skips the rest of a
    phase after a disruptive action); then 949110's own message has the score.
    CRS 3.3 sums into ``tx.anomaly_score``, CRS 4 into
    ``tx.blocking_inbound_anomaly_score``; an unset variable expands to "".
    """
    return (
        f'SecAction "id:{SCORE_RULE},phase:2,pass,log,t:none,'
        f"msg:'{SCORE_MSG}',"
        f"logdata:'%{{tx.anomaly_score}}|%{{tx.blocking_inbound_anomaly_score}}'\"\n"
    )


def default_setup(rules_dir: str) -> str:
    """The setup file that goes with ``rules_dir``.

    A CRS release directory (``rules/`` next to ``crs-setup.conf[.example]``)
    brings its own; otherwise Debian's ``/etc/modsecurity/crs/crs-setup.conf``.
    """
    parent = os.path.dirname(os.path.abspath(rules_dir))
    for name in ("crs-setup.conf", "crs-setup.conf.example"):
        candidate = os.path.join(parent, name)
        if os.path.isfile(candidate):
            return candidate
    if os.path.isfile(DEBIAN_SETUP):
        return DEBIAN_SETUP
    raise SystemExit(f"modsec.py: no crs-setup.conf beside {rules_dir} and no {DEBIAN_SETUP}; pass --setup")


def request_rule_files(rules_dir: str) -> list[str]:
    """Every ``REQUEST-*.conf`` in ``rules_dir``, in sorted (CRS) order."""
    files = sorted(glob.glob(os.path.join(rules_dir, "REQUEST-*.conf")))
    if not files:
        raise SystemExit(f"modsec.py: no REQUEST-*.conf in {rules_dir}")
    return files


def _load_file(rules: msc.RulesSet, path: str, notes: list[str]) -> None:
    if rules.load_from_uri(path) >= 0:
        return
    error = rules.get_parser_error()
    if "GeoIP" in error or "MaxMind" in error:
        # The wheel has no GeoIP: CRS 3.3's 910100 chains into @geoLookup. That rule
        # only runs when tx.high_risk_country_codes is set (it is not), so the
        # lookup is replaced by an operator that never matches. The file has no
        # relative .data references, so it can be loaded from a string.
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        text = text.replace('"@geoLookup"', '"!@unconditionalMatch"')
        if rules.load(text) >= 0:
            notes.append(f"{os.path.basename(path)}: @geoLookup disabled (no GeoIP in this build)")
            return
        error = rules.get_parser_error()
    raise SystemExit(f"modsec.py: cannot load {path}: {error}")


def load_rules(
    rules_dir: str, setup: str, paranoia: int, tx: list[tuple[str, str]] = ()
) -> tuple[msc.RulesSet, list[str], list[str]]:
    """Build the rule set: prelude, setup, paranoia, body info, REQUEST-*, score.

    Returns the rule set, the files loaded in order and notes about adjustments.
    """
    rules = msc.RulesSet()
    notes: list[str] = []
    steps: list[str] = []

    def load_text(text: str, what: str) -> None:
        if rules.load(text) < 0:
            raise SystemExit(f"modsec.py: cannot load {what}: {rules.get_parser_error()}")

    load_text(prelude(), "the engine prelude")
    _load_file(rules, setup, notes)
    steps.append(setup)
    load_text(paranoia_action(paranoia), "the paranoia SecAction")
    if tx:
        # Setup values a policy overrides (`detection.crs.setup`), as one more SecAction.
        sets = ",".join(f"setvar:tx.{k}={v}" for k, v in tx)
        load_text(f'SecAction "id:{SET_RULE},phase:1,pass,nolog,t:none,{sets}"\n', "the --set SecAction")
    load_text(body_info_rule(), "the body info rule")
    for path in request_rule_files(rules_dir):
        _load_file(rules, path, notes)
        steps.append(path)
    load_text(score_rule(), "the score rule")
    return rules, steps, notes


class Oracle:
    """One ModSecurity engine and rule set; :meth:`evaluate` runs one request."""

    def __init__(self, rules_dir: str, setup: str, paranoia: int, tx: list[tuple[str, str]] = ()):
        self.engine = msc.ModSecurity()
        self.engine.set_connector_information("tollgate-oracle")
        # A callback must be set or libmodsecurity prints every match to stderr.
        self.engine.set_log_callback(_discard)
        self.rules, self.files, self.notes = load_rules(rules_dir, setup, paranoia, tx)

    def evaluate(self, request: dict) -> dict:
        """Run one corpus request; returns the verdict (without ``id``)."""
        method = _text(request, "method")
        uri = _text(request, "uri")
        version = str(request.get("version") or "1.1")
        headers = request.get("headers") or []
        body = request.get("body")
        if body is not None and not isinstance(body, str):
            raise ValueError("body must be a string or null")

        tx = msc.Transaction(self.engine, self.rules)

        def send_headers() -> None:
            for pair in headers:
                name, value = pair
                tx.add_request_header(str(name), str(value))
            tx.process_request_headers()

        def send_body() -> None:
            if body:
                tx.append_request_body(body.encode("utf-8"))
            tx.process_request_body()  # always: phase 2 (and 949110) runs here

        steps = (
            lambda: tx.process_connection(CLIENT[0], CLIENT[1], SERVER[0], SERVER[1]),
            lambda: tx.process_uri(uri, method, version),
            send_headers,
            send_body,
        )
        intervention = None
        for step in steps:  # like a connector: stop at the first disruptive intervention
            step()
            it = tx.intervention()
            if it is not None and it.disruptive:
                intervention = it
                break
        messages = tx.get_rule_messages()
        tx.process_logging()
        return _verdict(messages, intervention)


def _verdict(messages, intervention) -> dict:
    ids = set()
    score = None
    body_processor = None
    body_error = None
    for message in messages:
        rule_id = message.rule_id
        if rule_id == SCORE_RULE:
            if score is None:
                score = _first_int(message.data.split("|")[::-1])
            continue
        if rule_id == BODY_INFO_RULE:
            processor, _, error = message.data.partition("|")
            body_processor = processor or None
            body_error = error not in ("", "0")
            continue
        if rule_id in ORACLE_IDS:
            continue
        ids.add(rule_id)
        if rule_id == 949110:
            found = _TOTAL_SCORE.search(message.message)
            if found:
                score = int(found.group(1))
    blocked = intervention is not None
    return {
        "rules": sorted(ids),
        "status": intervention.status if blocked else 200,
        "blocked": blocked,
        "score": score,
        "body_processor": body_processor,
        "body_error": body_error,
    }


def _first_int(values) -> int | None:
    for value in values:
        if value.strip().isdigit():
            return int(value)
    return None


def _text(request: dict, key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _discard(_line: str) -> None:
    pass


def run(oracle: Oracle, lines, out) -> tuple[int, int, int, float]:
    """Write one verdict per input line; returns (evaluated, blocked, errors, seconds)."""
    count = errors = blocked = 0
    elapsed = 0.0
    for line in lines:
        request_id = None
        try:
            if not line.strip():
                raise ValueError("empty line")
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("line is not a JSON object")
            request_id = request.get("id")
            start = time.perf_counter()
            verdict = oracle.evaluate(request)
            elapsed += time.perf_counter() - start
            count += 1
            blocked += verdict["blocked"]
            result = {"id": request_id, **verdict}
        except Exception as error:  # one bad line never stops the run
            errors += 1
            result = {"id": request_id, "error": f"{type(error).__name__}: {error}"}
        out.write(json.dumps(result, separators=(",", ":")) + "\n")
    out.flush()
    return count, blocked, errors, elapsed


@contextlib.contextmanager
def _silenced_fd2(active: bool):
    """Point fd 2 at /dev/null: libxml2 prints every malformed XML body there
    (the verdict's body_error already says so)."""
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", default=DEFAULT_RULES, help=f"CRS rules directory (default {DEFAULT_RULES})")
    parser.add_argument(
        "--setup",
        help="crs-setup file (default: crs-setup.conf[.example] beside the rules directory, "
        f"else {DEBIAN_SETUP})",
    )
    parser.add_argument("--paranoia", type=int, default=1, choices=(1, 2, 3, 4), help="paranoia level (default 1)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set tx.NAME after the setup file (as a policy's detection.crs.setup does); repeatable",
    )
    parser.add_argument("--quiet", action="store_true", help="no summary on stderr")
    parser.add_argument(
        "--native-stderr",
        action="store_true",
        help="keep what the C libraries print on stderr while evaluating (libxml2 parse errors); "
        "silenced by default",
    )
    args = parser.parse_args(argv)

    setup = args.setup or default_setup(args.rules)
    tx = []
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_]+", name) or "," in value or '"' in value:
            parser.error(f"--set takes NAME=VALUE, not {item!r}")
        tx.append((name, value))
    oracle = Oracle(args.rules, setup, args.paranoia, tx)
    if not args.quiet:
        print(
            f"modsec.py: {msc.ModSecurity().who_am_i()}, paranoia {args.paranoia}, "
            f"setup {setup}, {len(oracle.files) - 1} rule files from {args.rules}",
            file=sys.stderr,
        )
        for note in oracle.notes:
            print(f"modsec.py: note: {note}", file=sys.stderr)

    try:
        with _silenced_fd2(not args.native_stderr):
            count, blocked, errors, elapsed = run(oracle, sys.stdin, sys.stdout)
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if not args.quiet:
        mean = elapsed / count * 1e6 if count else 0.0
        print(
            f"modsec.py: {count} requests evaluated, {blocked} blocked, {errors} errors, "
            f"mean {mean:.0f} us per request",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
