"""bench/history.py: rows keep the figures the benches measured, and the check finds a fall
against the best row of the same machine, whichever way is better for the figure."""

import json
from pathlib import Path

from bench import history


def results(tmp_path: Path, run: dict, compare: dict) -> list[str]:
    (tmp_path / "run.json").write_text(json.dumps(run))
    (tmp_path / "cmp.json").write_text(json.dumps(compare))
    return ["--run", str(tmp_path / "run.json"), "--compare", str(tmp_path / "cmp.json"),
            "--history", str(tmp_path / "history.jsonl")]


def test_record_keeps_the_measured_figures_and_skips_missing_ones(tmp_path):
    files = results(tmp_path, {"worker_events_per_s": 40_000, "latency_worst_10s_p99_ms": 240.5,
                               "latency_p99_ms": 0.0},
                    {"shopstream_envelopes_funnel_vs_quix": 0.7, "quix": "not set up"})
    assert history.main(["record", "--note", "first", *files]) == 0
    [row] = history.read_history(tmp_path / "history.jsonl")
    assert row["worker_events_per_s"] == 40_000
    assert row["live_p99_worst_10s_ms"] == 240.5
    assert row["funnel_envelopes_vs_quix"] == 0.7
    assert "all_agents_envelopes_vs_quix" not in row
    assert "live_p99_ms" not in row  # 0: not measured
    assert row["note"] == "first" and row["machine"] == history.machine()


def test_check_fails_on_a_tripled_latency_and_passes_within_tolerance(tmp_path, capsys):
    best = {"worker_events_per_s": 40_000, "latency_worst_10s_p99_ms": 245}
    assert history.main(["record", *results(tmp_path, best, {})]) == 0
    ok = {"worker_events_per_s": 36_000, "latency_worst_10s_p99_ms": 280}
    assert history.main(["check", *results(tmp_path, ok, {})]) == 0
    slow = {"worker_events_per_s": 41_000, "latency_worst_10s_p99_ms": 740}
    assert history.main(["check", *results(tmp_path, slow, {})]) == 1
    out = capsys.readouterr().out
    assert "live_p99_worst_10s_ms" in out and "202% worse" in out


def test_check_compares_with_the_best_row_of_the_same_machine_only(tmp_path):
    other = {"commit": "x", "machine": "another machine", "worker_events_per_s": 900_000}
    mine = {"commit": "y", "machine": history.machine(), "worker_events_per_s": 40_000}
    worse = {"commit": "z", "machine": history.machine(), "worker_events_per_s": 20_000}
    rows = history.check({"machine": history.machine(), "worker_events_per_s": 39_000},
                         [other, mine, worse], tolerance=0.25)
    assert [(r["best"], r["best_commit"], r["beyond"]) for r in rows] == [(40_000, "y", False)]
    assert rows[0]["fall"] == 0.025


def test_nothing_measured_is_an_error_not_a_pass(tmp_path):
    assert history.main(["check", *results(tmp_path, {}, {})]) == 2
