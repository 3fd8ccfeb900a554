#!/usr/bin/env python3
"""Renders envoy/bootstrap.yaml with a filter chain and values.

  render.py OUT --filters strip-scopes,jwt,meshdlp,router KEY=VALUE ...

PLUGIN_CONFIG and JWKS_JSON values are JSON text; they are embedded as YAML strings.
Unset placeholders get defaults (BUFFER_LIMIT=1048576, UPSTREAM_BUFFER_LIMIT=BUFFER_LIMIT/4,
HOLD_HEADERS=true, KEY_ENV=MESHDLP_KEY).
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULTS = {"BUFFER_LIMIT": "1048576", "HOLD_HEADERS": "true", "KEY_ENV": "MESHDLP_KEY",
            "PLUGIN_CONFIG": "", "JWKS_JSON": '{"keys":[]}', "WASM": "", "NOOP_WASM": ""}
QUOTED = {"PLUGIN_CONFIG", "JWKS_JSON"}


def indent(text, n):
    return "\n".join((" " * n + line) if line.strip() else line for line in text.splitlines())


def render(filters, values):
    vals = dict(DEFAULTS)
    vals.update(values)
    vals.setdefault("UPSTREAM_BUFFER_LIMIT", str(max(1, int(vals["BUFFER_LIMIT"]) // 4)))
    for k in QUOTED:
        vals[k] = json.dumps(vals[k])  # a JSON string literal is a valid YAML scalar
    with open(os.path.join(HERE, "bootstrap.yaml")) as f:
        text = f.read()
    chain = ""
    for name in filters:
        with open(os.path.join(HERE, "filters", name + ".yaml")) as f:
            chain += indent(f.read(), 10) + "\n"
    with open(os.path.join(HERE, "stats-tags.yaml")) as f:
        tags = indent(f.read(), 2)
    text = text.replace("${HTTP_FILTERS}", chain.rstrip("\n")).replace("${STATS_TAGS}", tags)

    def sub(m):
        key = m.group(1)
        if key not in vals:
            raise SystemExit("render.py: no value for ${%s}" % key)
        return str(vals[key])
    return re.sub(r"\$\{([A-Z_]+)\}", sub, text)


def main(argv):
    out = argv[1]
    filters = []
    values = {}
    args = argv[2:]
    i = 0
    while i < len(args):
        if args[i] == "--filters":
            filters = [f for f in args[i + 1].split(",") if f]
            i += 2
            continue
        k, _, v = args[i].partition("=")
        if v.startswith("@"):
            with open(v[1:]) as f:
                v = f.read().strip()
        values[k] = v
        i += 1
    with open(out, "w") as f:
        f.write(render(filters, values))


if __name__ == "__main__":
    main(sys.argv)
