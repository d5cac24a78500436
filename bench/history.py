"""The performance record: one row per measured change to the hot path, and a check of the
latest figures against the best recorded, so a slowdown is seen the day it happens.

    python bench/history.py record [--note TEXT]     append the latest results as a row
    python bench/history.py check [--tolerance 0.25]  compare them with the best rows

The latest results are the JSON files the benches write: ``bench/run.py`` (bench/result.json)
and ``bench/compare.py`` (bench/result-compare.json). Rows are compared only with rows of the
same machine description, since absolute figures differ between machines; the ratios to Quix
Streams and Faust cancel most of a machine's noise, events/s and p99 do not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
HISTORY = ROOT / "bench" / "history.jsonl"
RUN_RESULT = ROOT / "bench" / "result.json"
COMPARE_RESULT = ROOT / "bench" / "result-compare.json"
#: Single runs vary by 10-25% on a 2-core machine (docs/performance.md): a fall beyond this
#: is worth a second look, a tripled latency is far beyond it.
DEFAULT_TOLERANCE = 0.25


@dataclass(frozen=True, slots=True)
class Figure:
    """One tracked number: where it comes from and which way is better."""

    #: Its name in a history row.
    name: str
    #: Which bench's JSON holds it.
    source: Literal["run", "compare"]
    #: Its key in that JSON.
    key: str
    better: Literal["higher", "lower"]


FIGURES = [
    Figure("worker_events_per_s", "run", "worker_events_per_s", "higher"),
    Figure("live_p99_worst_10s_ms", "run", "latency_worst_10s_p99_ms", "lower"),
    Figure("live_p99_ms", "run", "latency_p99_ms", "lower"),
    Figure("funnel_envelopes_vs_quix", "compare", "shopstream_envelopes_funnel_vs_quix", "higher"),
    Figure("all_agents_envelopes_vs_quix", "compare", "shopstream_envelopes_vs_quix", "higher"),
    Figure("all_agents_envelopes_vs_faust", "compare", "shopstream_envelopes_vs_faust", "higher"),
]


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def row_from(run: dict[str, Any], compare: dict[str, Any], note: str = "",
             at: str | None = None) -> dict[str, Any]:
    """A history row of the figures present in the two results (absent ones are left out);
    ``at`` names the commit measured (default: the checkout's)."""
    sources = {"run": run, "compare": compare}
    row: dict[str, Any] = {"commit": at or commit(), "date": time.strftime("%Y-%m-%d"),
                           "machine": machine(), "note": note}
    for fig in FIGURES:
        value = sources[fig.source].get(fig.key)
        # 0 means not measured (a live phase shorter than the 10-s window has no worst window).
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            row[fig.name] = value
    return row


def read_history(path: Path = HISTORY) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fall(fig: Figure, best: float, now: float) -> float:
    """How much worse ``now`` is than ``best``, as a fraction of ``best`` (<= 0: not worse)."""
    if best == 0:
        return 0.0
    return (best - now) / best if fig.better == "higher" else (now - best) / best


def check(current: dict[str, Any], history: list[dict[str, Any]],
          tolerance: float) -> list[dict[str, Any]]:
    """Per figure of ``current``: the best recorded on the same machine, the fall, and whether
    it is beyond ``tolerance``."""
    same = [r for r in history if r.get("machine") == current["machine"]]
    rows = []
    for fig in FIGURES:
        now = current.get(fig.name)
        recorded = [(r[fig.name], r["commit"]) for r in same if fig.name in r]
        if now is None or not recorded:
            continue
        pick = max if fig.better == "higher" else min
        best, best_commit = pick(recorded, key=lambda pair: pair[0])
        f = fall(fig, best, now)
        rows.append({"figure": fig.name, "now": now, "best": best, "best_commit": best_commit,
                     "fall": round(f, 3), "beyond": f > tolerance})
    return rows


def print_check(rows: list[dict[str, Any]], tolerance: float) -> None:
    if not rows:
        print("bench-check: nothing to compare (run the benches, and record a row first)")
        return
    width = max(len(r["figure"]) for r in rows)
    print(f"{'figure':<{width}}  {'now':>10}  {'best':>10}  {'at':>9}  change")
    for r in rows:
        change = "no worse" if r["fall"] <= 0 else f"{r['fall']:.0%} worse"
        flag = "  <-- beyond " + f"{tolerance:.0%}" if r["beyond"] else ""
        print(f"{r['figure']:<{width}}  {r['now']:>10,.6g}  {r['best']:>10,.6g}  "
              f"{r['best_commit']:>9}  {change}{flag}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["record", "check"])
    ap.add_argument("--run", type=Path, default=RUN_RESULT, help="bench/run.py's JSON")
    ap.add_argument("--compare", type=Path, default=COMPARE_RESULT, help="bench/compare.py's JSON")
    ap.add_argument("--history", type=Path, default=HISTORY)
    ap.add_argument("--note", default="", help="what changed (record)")
    ap.add_argument("--commit", default=None,
                    help="the commit the results are of, when not this checkout's (record)")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                    help="fall beyond which check fails (fraction of the best)")
    args = ap.parse_args(argv)
    current = row_from(load(args.run), load(args.compare), args.note, args.commit)
    if not any(fig.name in current for fig in FIGURES):
        print(f"no results in {args.run} or {args.compare}: run bench/run.py and "
              "bench/compare.py first", file=sys.stderr)
        return 2
    if args.action == "record":
        with args.history.open("a") as out:
            out.write(json.dumps(current) + "\n")
        print(f"recorded {current['commit']} in {args.history}")
        return 0
    rows = check(current, read_history(args.history), args.tolerance)
    print_check(rows, args.tolerance)
    return 1 if any(r["beyond"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
