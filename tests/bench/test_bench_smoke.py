"""bench/run.py end to end on a small workload: every phase runs and reports sane figures.

No speed threshold is asserted (speed is measured by running the bench, not by tests).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_bench_run_small(tmp_path):
    out = tmp_path / "result.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--events", "20000",
         "--live-seconds", "3", "--claims", "2000", "--json", str(out)],
        cwd=ROOT, check=True, timeout=600, stdout=subprocess.DEVNULL,
    )
    r = json.loads(out.read_text())
    assert r["events"] >= 20_000 and r["worker_events_per_s"] > 0
    assert r["active_users"] > 1_000
    assert 0 < r["funnel_progress_bytes_per_user"] < r["redis_bytes_per_active_user"]
    assert 0 < r["latency_p50_ms"] <= r["latency_p99_ms"]
    assert 0 < r["worker_rss_peak_mb"]
    assert r["pushes_relayed_at_phase1_end"] + r["pushes_in_outbox_at_phase1_end"] > 0
    for run in ("lua", "http", "http_at_5000"):
        granted, stock = map(int, r[f"{run}_units_granted_of_stock"].split("/"))
        # 2,000 claims on 100 units: the sale sells out, and never beyond its stock.
        assert granted == stock == 100, run
        assert 0 < r[f"{run}_p50_ms"] <= r[f"{run}_p99_ms"]
    # Every target of bench/targets.py is reported beside its measured figure.
    rows = {row["target"]: row for row in r["targets"]}
    assert len(rows) == 8 and all(row["measured"] is not None for row in rows.values())
    speed = rows["one worker, all agents, sustained"]
    assert speed["measured"] == r["worker_events_per_s"]
    assert speed["met"] == (r["worker_events_per_s"] >= 100_000)
    # The RSS formula: the ids of one full horizon at the live rate, each at its traced cost.
    assert 0 < r["dedup_bytes_per_id"] <= 16 and r["dedup_ids_at_live_end"] > 0
    assert r["worker_rss_formula_mb"] > r["worker_rss_base_mb"] > 0
