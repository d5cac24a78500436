"""Baselines in the same run: shopstream, a naive Faust agent and Quix Streams compute the
default purchase funnel on the same events, one per Kafka record; shopstream runs a second
time on the same events in envelopes (its intended ingestion). All are checked against the
plain reference and timed, and the ratios are reported.

    python bench/compare.py [--events 200000] [--json bench/result-compare.json]
    (bench/setup_quix.sh first for Quix)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import baseline_faust, targets  # noqa: E402
from bench.funnel_reference import as_rows, reference_funnel  # noqa: E402
from bench.workload import create_topic, generate, measure_quix, produce_per_event  # noqa: E402
from shopstream.agents.funnel.query import read_buckets  # noqa: E402
from shopstream.agents.funnel.rules import parse_funnels  # noqa: E402
from shopstream.core.settings import Settings, load_settings  # noqa: E402
from shopstream.infra import embedded, free_port  # noqa: E402
from shopstream.kafka_io.envelope_producer import EnvelopeProducer  # noqa: E402
from shopstream.sinks import keys  # noqa: E402
from shopstream.sinks.redis_state import make_redis  # noqa: E402

PARTITIONS = 4
#: Every agent a worker runs by default (live rooms, pulse and anomaly judge included).
ALL_AGENTS = Settings.agents
ENVELOPES_TOPIC = "cmp-envelopes"
#: shopstream runs: (name, topic, agents). The peers compute one funnel; "funnel" runs only
#: the funnel agent (its default funnels, the purchase funnel among them), like for like.
MODES = [
    ("shopstream", "cmp-events", ALL_AGENTS),
    ("shopstream_envelopes", ENVELOPES_TOPIC, ALL_AGENTS),
    ("shopstream_funnel", "cmp-events", "funnel"),
    ("shopstream_envelopes_funnel", ENVELOPES_TOPIC, "funnel"),
]


def shopstream_funnel(s: Settings) -> list[list[Any]]:
    """The purchase funnel's all-time cohort counts per channel, as reference rows."""
    fd = next(f for f in parse_funnels({})[0] if f.name == "purchase")

    async def read() -> dict[int, dict[str, list[int]]]:
        r = make_redis(s)
        try:
            return await read_buckets(r, s.app_id, s.partitions, fd, "cohort", "d", "channel",
                                      0, 2**62)
        finally:
            await r.aclose()

    per: dict[tuple[str, int], int] = {}
    for by_value in asyncio.run(read()).values():
        for channel, counts in by_value.items():
            for step, n in enumerate(counts):
                if n:
                    per[(channel, step)] = per.get((channel, step), 0) + n
    return as_rows(per)


def run_shopstream(s: Settings, expect: int) -> float:
    """One shopstream worker running ``s.agents``; events/s from first to last applied event."""
    env = {**os.environ, "SHOPSTREAM_AGENTS": s.agents, "SHOPSTREAM_BROKER": str(s.broker),
           "SHOPSTREAM_REDIS_URL": str(s.redis_url), "SHOPSTREAM_APP_ID": s.app_id,
           "SHOPSTREAM_PARTITIONS": str(s.partitions), "SHOPSTREAM_EVENTS_TOPIC": s.events_topic,
           "PYTHONPATH": str(ROOT), "SHOPSTREAM_LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "shopstream", "worker", "--web-port", str(free_port())],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis.from_url(str(s.redis_url))
    try:
        first: tuple[float, int] | None = None
        while True:
            done = sum(int(r.hget(keys.counts(s.app_id, p), "in") or 0)
                       for p in range(s.partitions))
            now = time.perf_counter()
            if done and first is None:
                first = (now, done)
            if done >= expect:
                break
            if worker.poll() is not None:
                raise RuntimeError("shopstream worker died")
            time.sleep(0.05)
        assert first is not None
        return (expect - first[1]) / max(now - first[0], 1e-9)
    finally:
        worker.terminate()
        worker.wait(30)
        r.close()


def compare(events: int, users: int = 20_000, seed: int = 7) -> dict[str, Any]:
    log = generate(events, users, 1.0, seed)
    reference = as_rows(reference_funnel(log))
    out: dict[str, Any] = {"events": len(log)}
    with embedded(durable=False) as infra:
        s = load_settings(env={}, broker=infra.broker, redis_url=infra.redis_url,
                          partitions=PARTITIONS, app_id="cmp", events_topic="cmp-events")
        create_topic(s, s.events_topic, PARTITIONS)
        produce_per_event(s, s.events_topic, log)
        create_topic(s, ENVELOPES_TOPIC, PARTITIONS)
        prod = EnvelopeProducer(dataclasses.replace(s, events_topic=ENVELOPES_TOPIC),
                                max_events=500)
        for ev in log:
            prod.add(ev)
        prod.flush()
        for mode, topic, agents in MODES:
            run_s = dataclasses.replace(s, app_id=f"cmp-{mode}", agents=agents,
                                        events_topic=topic)
            print(f"compare: {mode} ...", file=sys.stderr, flush=True)
            out[f"{mode}_events_per_s"] = round(run_shopstream(run_s, len(log)))
            out[f"{mode}_equal_to_reference"] = shopstream_funnel(run_s) == reference
        print("compare: naive Faust ...", file=sys.stderr, flush=True)
        faust = baseline_faust.measure(infra.broker, s.events_topic, PARTITIONS, len(log))
        out["faust_events_per_s"] = round(faust["events_per_s"])
        out["faust_equal_to_reference"] = faust["counts"] == reference
        if (ROOT / ".venv-quix" / "bin" / "python").exists():
            print("compare: Quix Streams ...", file=sys.stderr, flush=True)
            quix = measure_quix(infra.broker, s.events_topic, len(log))
            out["quix_events_per_s"] = round(quix["events_per_s"])
            out["quix_equal_to_reference"] = quix["counts"] == reference
        else:
            out["quix"] = "not set up: run bench/setup_quix.sh"
    for mode, *_ in MODES:
        rate = out[f"{mode}_events_per_s"]
        out[f"{mode}_vs_faust"] = round(rate / out["faust_events_per_s"], 2)
        if "quix_events_per_s" in out:
            out[f"{mode}_vs_quix"] = round(rate / out["quix_events_per_s"], 2)
    out["machine"] = f"{os.cpu_count()} cores"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--json", default=str(ROOT / "bench" / "result-compare.json"),
                    help="where to write the result (bench/history.py reads it)")
    args = ap.parse_args()
    out = compare(args.events)
    checked = targets.check(out, targets.COMPARE)
    text = json.dumps({**out, "targets": checked}, indent=2)
    Path(args.json).write_text(text + "\n")
    print(text)
    targets.print_table(checked)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
