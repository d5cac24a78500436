"""How cost grows: events/s and Redis bytes per active user against active users, funnels,
live rooms and workers, one ``bench/run.py`` run per row (phase 1 and a short live phase).

    python bench/scale.py [--events 200000] [--out bench/scale.json]

Prints a Markdown table (for docs/performance.md) and writes JSON. No thresholds asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (what varies, bench/run.py options); the first row is the reference point.
ROWS: list[tuple[str, list[str]]] = [
    ("users 10,000", ["--users", "10000"]),
    ("users 100,000", ["--users", "100000"]),
    ("users 1,000,000", ["--users", "1000000"]),
    ("funnels 4", ["--funnels", "4", "--users", "100000"]),
    ("funnels 16", ["--funnels", "16", "--users", "100000"]),
    ("rooms 10", ["--rooms", "10", "--users", "100000"]),
    ("rooms 1,000", ["--rooms", "1000", "--users", "100000"]),
    ("2 workers", ["--workers", "2", "--users", "100000"]),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "scale.json"))
    args = ap.parse_args()
    results = []
    for label, opts in ROWS:
        print(f"scale: {label} ...", file=sys.stderr, flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(
                [sys.executable, str(ROOT / "bench" / "run.py"), "--events", str(args.events),
                 "--live-seconds", "10", "--no-claims", "--json", out.name, *opts],
                check=True, stdout=subprocess.DEVNULL)
            results.append({"row": label, **json.loads(Path(out.name).read_text())})
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("| row | worker events/s | active users | Redis bytes per active user | "
          "live p99 (10 s) | worker RSS peak |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['row']} | {r['worker_events_per_s']:,} | {r['active_users']:,} | "
              f"{r['redis_bytes_per_active_user']} | {r['latency_p99_ms']:.0f} ms | "
              f"{r['worker_rss_peak_mb']:.0f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
