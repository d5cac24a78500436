"""Benchmark: sustained events/s of one worker on the mixed promotion workload.

Starts the embedded broker and redis-server, writes N simulated events into the events topic
(in envelopes), then starts one worker with all agents and times it from its first applied
event to its last. Prints a table and writes JSON. No thresholds are asserted.

    python bench/run.py [--events 1000000] [--quick] [--json bench/result.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shopstream.infra import embedded, free_port  # noqa: E402
from shopstream.settings import load_settings  # noqa: E402
from shopstream.simulate import Simulator  # noqa: E402
from sinks import keys  # noqa: E402
from streams.producer import EnvelopeProducer  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402


def applied(r: redis.Redis, app_id: str, partitions: int) -> int:
    return sum(int(r.hget(keys.counts(app_id, p), "in") or 0) for p in range(partitions))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="50,000 events, for a smoke run")
    ap.add_argument("--json", default=str(ROOT / "bench" / "result.json"))
    args = ap.parse_args()
    n = 50_000 if args.quick else args.events

    with embedded() as infra:
        s = load_settings(env={}, broker=infra.broker, redis_url=infra.redis_url,
                          partitions=args.partitions, app_id="bench")
        ensure_topics(s)
        print(f"bench: producing {n:,} events ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        prod = EnvelopeProducer(s, max_events=500)
        for ev in Simulator(users=200_000, rate=5_000, seed=42).events(n):
            prod.add(ev)
        prod.flush()
        produce_s = time.perf_counter() - t0
        total = prod.events_sent

        env = {**os.environ, "SHOPSTREAM_BROKER": infra.broker,
               "SHOPSTREAM_REDIS_URL": infra.redis_url, "SHOPSTREAM_APP_ID": "bench",
               "SHOPSTREAM_PARTITIONS": str(args.partitions), "PYTHONPATH": str(ROOT),
               "SHOPSTREAM_LOG_LEVEL": "WARNING"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "shopstream", "worker", "--web-port", str(free_port())],
            env=env, cwd=ROOT)
        r = redis.Redis.from_url(infra.redis_url)
        try:
            first_t = None
            rss_peak = 0.0
            last_report = time.perf_counter()
            while True:
                done = applied(r, "bench", args.partitions)
                now = time.perf_counter()
                if done and first_t is None:
                    first_t, first_n = now, done
                rss_peak = max(rss_peak, rss_mb(worker.pid))
                if done >= total:
                    break
                if now - last_report >= 5:
                    last_report = now
                    print(f"bench: {done:,}/{total:,} applied", file=sys.stderr, flush=True)
                if worker.poll() is not None:
                    raise SystemExit("worker died")
                time.sleep(0.05)
            elapsed = now - (first_t or now)
            rate = (total - first_n) / elapsed if elapsed > 0 else float("nan")
            redis_mem = int(r.info("memory")["used_memory"])
        finally:
            worker.terminate()
            worker.wait(30)
            r.close()

    result = {
        "events": total,
        "produce_events_per_s": round(total / produce_s),
        "worker_events_per_s": round(rate),
        "worker_rss_peak_mb": round(rss_peak, 1),
        "redis_used_memory_mb": round(redis_mem / 2**20, 1),
        "partitions": args.partitions,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
