"""The performance targets, and each one beside what a run measured: the benches print this
table and add it to their JSON, so a run says by itself which targets it met."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal, TextIO


@dataclass(frozen=True, slots=True)
class Target:
    what: str
    #: The result's key holding the measured figure.
    key: str
    op: Literal[">=", "<="]
    goal: float
    unit: str


#: bench/run.py's targets (one worker, all agents, the embedded infra).
RUN = [
    Target("one worker, all agents, sustained", "worker_events_per_s", ">=", 100_000,
           "events/s"),
    Target("live p99, worst 10-s window", "latency_worst_10s_p99_ms", "<=", 250, "ms"),
    Target("worker RSS, peak while catching up", "worker_rss_peak_mb", "<=", 400, "MB"),
    Target("worker RSS, end of the live phase", "worker_rss_end_mb", "<=", 400, "MB"),
    Target("worker RSS by the dedup formula at the live rate, horizon full",
           "worker_rss_formula_mb", "<=", 400, "MB"),
    Target("Redis per active user, all state", "redis_bytes_per_active_user", "<=", 300,
           "bytes"),
    Target("flash-sale claims over HTTP, one API process", "http_claims_per_s", ">=", 20_000,
           "claims/s"),
    Target("flash-sale claims over HTTP, p99 at the client", "http_p99_ms", "<=", 10, "ms"),
]

#: bench/compare.py's targets (the same events through every engine).
COMPARE = [
    Target("funnel agent alone, envelopes, vs Quix Streams", "shopstream_envelopes_funnel_vs_quix",
           ">=", 1.5, "x"),
    Target("all agents, envelopes, vs Quix Streams' funnel", "shopstream_envelopes_vs_quix",
           ">=", 1.0, "x"),
    Target("all agents, envelopes, vs naive Faust", "shopstream_envelopes_vs_faust", ">=", 20,
           "x"),
]


def check(result: dict[str, Any], targets: list[Target],
          prefix: str = "") -> list[dict[str, Any]]:
    """One row per target, its figure at ``prefix + key``; ``met`` is None when the run did
    not measure it."""
    rows = []
    for t in targets:
        got = result.get(prefix + t.key)
        measured = float(got) if isinstance(got, int | float) else None
        met = None if measured is None else (
            measured >= t.goal if t.op == ">=" else measured <= t.goal)
        rows.append({"target": t.what, "measured": measured, "goal": f"{t.op} {t.goal:g}",
                     "unit": t.unit, "met": met})
    return rows


def print_table(rows: list[dict[str, Any]], out: TextIO = sys.stdout) -> None:
    width = max(len(r["target"]) for r in rows)
    print(f"\n{'target':<{width}}  {'measured':>12}  {'goal':>12}  met", file=out)
    for r in rows:
        measured = "not run" if r["measured"] is None else f"{r['measured']:,.6g}"
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        print(f"{r['target']:<{width}}  {measured:>12}  {r['goal'] + ' ' + r['unit']:>12}  {met}",
              file=out)
