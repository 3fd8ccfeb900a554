#!/usr/bin/env python3
"""Prints alerts.rules.yaml: the `spec` of the PrometheusRule in alerts.yaml as a plain Prometheus
rule file (for a Prometheus without the operator, and for promtool). tests/k8s/test_observability.py
fails when the committed file differs from this output.

    python3 k8s/observability/rules.py > k8s/observability/alerts.rules.yaml
"""

import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = ("# Generated from alerts.yaml (the PrometheusRule's spec) by rules.py: do not edit.\n"
          "# python3 k8s/observability/rules.py > k8s/observability/alerts.rules.yaml\n")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL) as literal blocks, as written in alerts.yaml."""


def _str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render():
    with open(os.path.join(HERE, "alerts.yaml")) as f:
        rule = yaml.safe_load(f)
    assert rule["kind"] == "PrometheusRule", rule["kind"]
    return HEADER + yaml.dump(rule["spec"], Dumper=_Dumper, sort_keys=False, width=1000)


if __name__ == "__main__":
    sys.stdout.write(render())
