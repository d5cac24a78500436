"""``shopstream backtest`` of a simulated 1,000,000-event log with two configs: events/s and
wall time per config.

Usage: python bench/backtest.py [--events 1000000] [--workers 1] [--keep DIR]
Writes the log with the simulator (100 events/s of traffic, so 1,000,000 events are 2.8 hours
from 2026-11-11 09:00 Shanghai, with a payment incident two hours in), two configs (the default
cart schedule, and a 30-minute reminder with a 15-yuan coupon at 90 minutes, a daily cap of 4
and a budget of 2,000 coupons that binds), then runs the command itself on the embedded infra,
as an operator would, and prints its timings (``timings.json``).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shopstream.core.settings import Settings  # noqa: E402
from shopstream.core.timeunits import HOUR_MS  # noqa: E402
from shopstream.simulate import DOUBLE_11_MS, Incident, run_simulation  # noqa: E402

#: Events per second of simulated traffic.
RATE = 100

CONFIGS = {
    "default": "[anomalies]\nwindow = 30\nmin_history = 10\n",
    "quick": ("[anomalies]\nwindow = 30\nmin_history = 10\n\n[cart]\nsteps = [{after_min = 30}, "
              "{after_min = 90, coupon_fen = 1500}, {after_min = 1440}]\n\n"
              "[coupons]\ndaily_cap = 4\n\n[coupons.cart_recovery]\nbudget = 2000\n"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--keep", help="directory for the log, configs and report (else a temp one)")
    args = ap.parse_args()
    base = Path(args.keep or tempfile.mkdtemp(prefix="bench-backtest-"))
    base.mkdir(parents=True, exist_ok=True)
    log = base / "log.jsonl"
    t = time.perf_counter()
    written = run_simulation(Settings(), users=50_000, rate=RATE, duration_s=args.events / RATE,
                             seed=11, out=str(log), start_ms=DOUBLE_11_MS + 9 * HOUR_MS,
                             incidents=(Incident("payment-failures", 120, 10),))
    print(f"log: {written:,} events written in {time.perf_counter() - t:.1f}s to {log}")
    paths = []
    for name, text in CONFIGS.items():
        path = base / f"{name}.toml"
        path.write_text(text)
        paths += ["--config", str(path)]
    out = base / "report"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "shopstream", "backtest", str(log), *paths,
                    "--out", str(out), "--workers", str(args.workers)], check=True, cwd=base)
    wall = time.perf_counter() - t
    timings = orjson.loads((out / "timings.json").read_bytes())
    report = orjson.loads((out / "report.json").read_bytes())
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, "
          f"{os.cpu_count()} cores; workers per config: {args.workers}")
    for section in report["configs"]:
        tm = timings[section["label"]]
        print(f"{section['label']}: {report['log']['lines']:,} events, applied in "
              f"{tm['apply_s']:.1f}s, judged in {tm['judges_s']:.1f}s, "
              f"{tm['events_per_s']:,.0f} events/s, {tm['total_s']:.1f}s wall in all; "
              f"{section['pushes_sent']:,} pushes, {len(section['anomalies'])} alerts")
    print(f"command: {wall:.1f}s wall for both configs")


if __name__ == "__main__":
    main()
