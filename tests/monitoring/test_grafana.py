"""The provisioned Grafana dashboard: every panel query parses (promtool checks it as a rule
expression) and names only metrics shopstream exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shopstream.monitoring.metrics import ApiMetrics, Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "shopstream.json"
#: Words in PromQL that are not metric names.
PROMQL = {"sum", "by", "rate", "max", "min", "histogram_quantile", "le", "increase", "deriv",
          "absent", "without", "avg", "or", "and", "on", "ignoring", "clamp_min"}


def _queries() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def _exported() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names: set[str] = set()
    for metrics in (Metrics(), ApiMetrics()):
        for family in metrics.registry.collect():
            names.add(family.name)
            names.update(family.name + s for s in suffixes.get(family.type, ()))
    return names


@pytest.mark.skipif(shutil.which("promtool") is None and not os.environ.get("CI"),
                    reason="promtool: make tools")
def test_every_panel_query_parses(tmp_path):
    rules = {"groups": [{"name": "panels", "rules": [
        {"record": f"panel:query{i}", "expr": q} for i, q in enumerate(_queries())]}]}
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_panel_names_exported_metrics():
    exported = _exported()
    for query in _queries():
        without_strings = re.sub(r'"[^"]*"|\[[^\]]*\]|\{[^}]*\}|\b(by|without)\s*\([^)]*\)',
                                 "", query)
        words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings)) - PROMQL
        missing = {w for w in words if w not in exported and not w.replace(".", "").isdigit()}
        assert not missing, (query, missing)
