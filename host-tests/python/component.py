"""The policy component (wit/tollgate.wit) in a second host: wasmtime's Python package.

    component.py COMPONENT INPUT.json OUTPUT.json

INPUT holds documents to `check`, one document to `load`, and requests to `decide` with it
(headers and bodies as text). OUTPUT gets what the component answered, as plain JSON, so that
the Rust test (host-tests/tests/host/component.rs) can compare it with its own host's answers.
"""

import json
import sys
import time

import wasmtime
from wasmtime import component as c

API = "tollgate:policy/api@0.1.0"


def main(component_path, input_path, output_path):
    with open(input_path, encoding="utf-8") as f:
        given = json.load(f)
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    component = c.Component.from_file(engine, component_path)
    instance = c.Linker(engine).instantiate(store, component)
    api = instance.get_export_index(store, API)
    if api is None:
        raise SystemExit(f"the component does not export {API}")

    def func(name):
        f = instance.get_func(store, instance.get_export_index(store, name, api))
        if f is None:
            raise SystemExit(f"{API} has no {name}")
        return f

    check, load = func("check"), func("[static]policy.load")
    decide, version = func("[method]policy.decide"), func("[method]policy.version")

    # result<_, list<policy-error>>: None when valid, else the errors.
    checked = []
    for document in given["check"]:
        errors = check(store, document)
        checked.append(None if errors is None else [[e.path, e.line, e.message] for e in errors])

    started = time.perf_counter()
    policy = load(store, given["load"])
    load_ms = (time.perf_counter() - started) * 1e3
    if isinstance(policy, list):
        raise SystemExit(f"the policy to load was refused: {[e.message for e in policy]}")

    verdicts = []
    for r in given["requests"]:
        req = c.Record()
        req.method, req.authority, req.path = r["method"], r["authority"], r["path"]
        req.headers = [(k, v.encode()) for k, v in r["headers"]]
        req.source = r["source"]
        req.body = None if r["body"] is None else r["body"].encode()
        v = decide(store, policy, req)
        verdicts.append({
            "allowed": v.allowed, "status": v.status, "route": v.route, "rule": v.rule,
            "problem": v.problem, "shadowed": list(v.shadowed),
        })

    with open(output_path, "w", encoding="utf-8") as f:
        json.dump({"check": checked, "version": version(store, policy), "verdicts": verdicts,
                   "load_ms": load_ms}, f)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
