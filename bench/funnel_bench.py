"""Funnel events/s through the batch loop (real Kafka and Redis, no Faust), one process.

Usage: python bench/funnel_bench.py [--users 8500] [--records-per-batch 50] [--time-scale 1]
       [--profile]
Starts its own embedded broker and redis-server, produces a generated log (the integration
test's generator and funnels), then times ``BatchProcessor.process`` over all records twice:
with every agent, and with event_stats alone, so the funnel's own share shows.
Also reports bytes per active user from ``MEMORY USAGE`` of the funnel progress hashes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import pstats
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shopstream.agents.event_stats.agent import EventStats  # noqa: E402
from shopstream.agents.registry import build_agents  # noqa: E402
from shopstream.infra import start_broker, start_redis, stop  # noqa: E402
from shopstream.kafka_io.envelope_producer import EnvelopeProducer  # noqa: E402
from shopstream.kafka_io.partitioner import partition_for  # noqa: E402
from shopstream.kafka_io.producer import RecordProducer  # noqa: E402
from shopstream.monitoring.metrics import Metrics  # noqa: E402
from shopstream.sinks.dead_letters import DeadLetterSink  # noqa: E402
from shopstream.sinks.funnel.keys import user_key  # noqa: E402
from shopstream.sinks.redis_state import RedisState, make_redis  # noqa: E402
from shopstream.streams.batch import BatchProcessor, Record  # noqa: E402
from tests.agents.funnel_ref import FUNNELS_TOML, T0, generate  # noqa: E402
from tests.support import Infra, read_records  # noqa: E402


async def run(settings, recs, with_funnels: bool, records_per_batch: int) -> float:
    r = make_redis(settings)
    state = RedisState(r, settings.app_id, settings.events_topic)
    agents = build_agents(settings, r, Metrics()) if with_funnels else [EventStats(settings.app_id)]
    proc = BatchProcessor(settings, state, agents,
                          DeadLetterSink(RecordProducer(settings), settings.dead_letter_topic),
                          Metrics())
    t = time.perf_counter()
    for i in range(0, len(recs), records_per_batch):
        await proc.process(recs[i:i + records_per_batch])
    elapsed = time.perf_counter() - t
    await r.aclose()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=8500)
    ap.add_argument("--records-per-batch", type=int, default=50)
    ap.add_argument("--profile", action="store_true")
    # The generated log spans ~5.5 h of event time; a scale of 300 squeezes it into ~1 min,
    # as dense as a promotion peak, so a batch spans seconds of event time, not minutes.
    ap.add_argument("--time-scale", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="funnel-bench-"))
    broker_proc, broker = start_broker(log_path=tmp / "tansu.log")
    redis_proc, redis_url = start_redis(data_dir=tmp / "redis")
    try:
        infra = Infra(broker, redis_url)
        log = generate(args.users, seed=1)
        for ev in log:
            ev["ts"] = T0 + (ev["ts"] - T0) // args.time_scale
        results = {}
        for with_funnels in (False, True):
            s = infra.settings(state_dir=str(tmp))
            s = dataclasses.replace(s, sections={"funnels": FUNNELS_TOML})
            prod = EnvelopeProducer(s, max_events=200)
            for ev in log:
                prod.add(ev)
            prod.flush()
            recs = [Record(p, o, v) for p, o, v, _ in read_records(s)]
            recs.sort(key=lambda x: (x.offset, x.partition))
            if args.profile and with_funnels:
                prof = cProfile.Profile()
                prof.enable()
            results[with_funnels] = asyncio.run(run(s, recs, with_funnels, args.records_per_batch))
            if args.profile and with_funnels:
                prof.disable()
                pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
            if with_funnels:
                client = redis.Redis.from_url(redis_url)
                users = sorted({e["user_id"] for e in log})
                sizes = [client.memory_usage(user_key(s.app_id, partition_for(u, s.partitions), u))
                         for u in users]
                live = [x for x in sizes if x]
                client.close()
        n = len(log)
        print(f"events: {n}, funnels: {len(FUNNELS_TOML)}, records/batch: {args.records_per_batch},"
              f" time scale: 1/{args.time_scale}")
        print(f"event_stats only: {n / results[False]:,.0f} events/s ({results[False]:.1f} s)")
        print(f"with funnels:     {n / results[True]:,.0f} events/s ({results[True]:.1f} s)")
        funnel_s = results[True] - results[False]
        print(f"funnel agent alone: {n / max(funnel_s, 1e-9):,.0f} events/s of its own time")
        print(f"progress hashes: {len(live)} users with open entries, "
              f"{sum(live) / max(len(live), 1):.0f} bytes each (MEMORY USAGE, mean)")
    finally:
        stop(redis_proc)
        stop(broker_proc)


if __name__ == "__main__":
    main()
