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
ALERTS = ROOT / "monitoring" / "alerts.yml"


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


def _names(query: str) -> set[str]:
    """The metric names a query reads."""
    without_strings = re.sub(r'"[^"]*"|\[[^\]]*\]|\{[^}]*\}|'
                             r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
                             "", query)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_strings)) - PROMQL
    return {w for w in words if not w.replace(".", "").isdigit()}


def test_every_money_alert_metric_has_a_panel():
    """What the money view alerts on (ads, stock) is on the dashboard too."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    (money,) = [g for g in groups if g["name"] == "shopstream-money"]
    alerted = set().union(*(_names(r["expr"]) for r in money["rules"])) & _exported()
    shown = set().union(*(_names(q) for q in _queries()))
    assert len(alerted) >= 4 and alerted <= shown, alerted - shown


def test_every_panel_names_exported_metrics():
    exported = _exported()
    for query in _queries():
        missing = _names(query) - exported
        assert not missing, (query, missing)
