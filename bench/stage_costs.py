"""Cost per stage of one worker's pipeline, in microseconds per event.

The simulated log of bench/workload.py goes in envelopes of 500 into an embedded broker.
Fetch: aiokafka (the consumer under Faust) reads it all, timed alone. Then BatchProcessor with
every agent takes the records in the worker's batches, once plain (events/s) and once metered
(bench/step_meter.py), each on an emptied redis-server. The stages are the pipeline's own
functions, wrapped from outside (``meter_processor`` names them all): nothing in streams/ or
agents/ is changed to be measured.

    python bench/stage_costs.py [--events 200000] [--users 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from itertools import zip_longest
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.step_meter import Meter, Stat  # noqa: E402
from bench.workload import generate  # noqa: E402
from shopstream.agents.registry import build_agents  # noqa: E402
from shopstream.core.settings import Settings, load_settings  # noqa: E402
from shopstream.infra import embedded  # noqa: E402
from shopstream.kafka_io.envelope_producer import EnvelopeProducer  # noqa: E402
from shopstream.kafka_io.producer import RecordProducer  # noqa: E402
from shopstream.kafka_io.topics import ensure_topics  # noqa: E402
from shopstream.monitoring.metrics import Metrics  # noqa: E402
from shopstream.sinks.dead_letters import DeadLetterSink  # noqa: E402
from shopstream.sinks.redis_state import RedisState, make_redis  # noqa: E402
from shopstream.streams import batch as batch_module  # noqa: E402
from shopstream.streams.app import FETCH_MAX_WAIT_MS  # noqa: E402
from shopstream.streams.batch import BatchProcessor  # noqa: E402
from shopstream.streams.records import Record, split_by_bytes  # noqa: E402

LOADS = "loads, all (concurrent)"
#: Rows of the table in pipeline order, by prefix of the stage's name.
ORDER = ("fetch", "read fences", "decode", "dedup", "load:", LOADS, "apply", "counts", "fenced",
         "metrics", "after_apply", "push relay", "batch loop", "no stage")


def meter_processor(proc: BatchProcessor, meter: Meter) -> None:
    """The stages of one processor, its agents and its state (adapt here when names move)."""
    on = meter.wrap
    on(batch_module, "decode_record", "decode and validate")
    on(proc, "process", "batch loop, other", span=False)
    on(proc, "_plan", "dedup and plan")
    on(batch_module, "record_counts", "counts into ops")
    on(proc.counters, "observe", "metrics")
    on(proc, "_export_lag", "metrics")
    on(proc.state, "read_fences", "read fences")
    on(proc.state, "apply_one", "fenced write (apply_one)")
    for agent in proc.agents:
        on(agent, "load", f"load: {agent.name}")
        on(agent, "apply", f"apply: {agent.name}")
        on(agent, "after_apply", "after_apply")
        if (outbox := getattr(agent, "relay", None)) is not None:
            on(outbox, "relay", "push relay (background task)", span=False)


async def fetch(s: Settings) -> tuple[list[Record], Stat]:
    """Every record of the events topic, fetched as Faust's consumer does, in the order
    Faust's scheduler hands them out (round-robin over partitions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False,
                                fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    await consumer.start()
    try:
        parts = [TopicPartition(s.events_topic, p) for p in range(s.partitions)]
        left = sum((await consumer.end_offsets(parts)).values())
        by_part: dict[int, list[Record]] = defaultdict(list)
        stat, cpu, wall = Stat(), time.thread_time(), time.perf_counter()
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        while left > 0:
            stat.calls += 1
            for tp, msgs in (await consumer.getmany(timeout_ms=1000)).items():
                by_part[tp.partition] += [Record(tp.partition, m.offset, m.value, m.timestamp)
                                          for m in msgs]
                left -= len(msgs)
        stat.cpu, stat.wall = time.thread_time() - cpu, time.perf_counter() - wall
    finally:
        await consumer.stop()
    return [r for rs in zip_longest(*by_part.values()) for r in rs if r], stat


async def process(s: Settings, records: list[Record], meter: Meter | None) -> float:
    """All records through a fresh processor in the worker's batches (takes of
    ``batch_max_records`` split at ``batch_max_bytes``); returns seconds."""
    redis = make_redis(s)
    await redis.flushall()
    metrics = Metrics()
    proc = BatchProcessor(s, RedisState(redis, s.app_id, s.events_topic),
                          build_agents(s, redis, metrics),
                          DeadLetterSink(RecordProducer(s), s.dead_letter_topic), metrics)
    if meter:
        meter_processor(proc, meter)
        meter.start()
    started = time.perf_counter()
    for i in range(0, len(records), s.batch_max_records):
        for run in split_by_bytes(records[i:i + s.batch_max_records], s.batch_max_bytes):
            await proc.process(run)
    elapsed = time.perf_counter() - started
    if meter:
        meter.stop()
    for agent in proc.agents:
        if close := getattr(agent, "close", None):
            await close()
    await redis.aclose()
    return elapsed


def report(meter: Meter, fetched: Stat, events: int, plain_s: list[float],
           metered_s: float) -> dict[str, Any]:
    stats = {"fetch (aiokafka getmany)": fetched, **meter.stats, LOADS: Stat(spans=[
        x for name, st in meter.stats.items() if name.startswith("load:") for x in st.spans])}
    n, cpu = meter.stats["batch loop, other"].calls, sum(st.cpu for st in meter.stats.values())
    wall = sum(st.wall for st in meter.stats.values())
    return {
        "stages": {name: {"calls_per_batch": round(st.calls / n, 2),
                          "cpu_us": round(st.cpu / events * 1e6, 2),
                          "wall_us": round((st.span() if st.spans else st.wall) / events * 1e6, 2),
                          "round_trips_per_batch": round(st.trips / n, 2)}
                   for name, st in sorted(stats.items(), key=lambda kv: next(
                       i for i, prefix in enumerate(ORDER) if kv[0].startswith(prefix)))},
        "events": events, "batches": n, "events_per_batch": round(events / n),
        "processing_wall_us": round(wall / events * 1e6, 2),
        "processing_cpu_us": round(cpu / events * 1e6, 2),
        "processing_wait_share": round(1 - cpu / wall, 3),
        "processing_queued_share": round(meter.queued_ns / 1e9 / wall, 3),
        "with_fetch_wait_share": round(1 - (cpu + fetched.cpu) / (wall + fetched.wall), 3),
        "round_trips_per_batch": round(sum(st.trips for st in stats.values()) / n, 2),
        "events_per_s_plain": [round(events / t) for t in plain_s],
        "events_per_s_metered": round(events / metered_s),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def print_table(res: dict[str, Any]) -> None:
    print("| stage | calls/batch | CPU us/event | wall us/event | round trips/batch |\n"
          "|---|---|---|---|---|")
    for name, r in res["stages"].items():
        print(f"| {name} | {r['calls_per_batch']:.1f} | {r['cpu_us']:.2f} | {r['wall_us']:.2f} "
              f"| {r['round_trips_per_batch']:.1f} |")
    print(f"\n{res['events']:,} events in {res['batches']} batches of ~{res['events_per_batch']}"
          f"; processing {res['processing_wall_us']} us/event wall, {res['processing_cpu_us']} "
          f"CPU: waiting {res['processing_wait_share']:.0%} of the wall "
          f"({res['with_fetch_wait_share']:.0%} with the fetch): for a core (other processes) "
          f"{res['processing_queued_share']:.0%}, on round trips "
          f"{res['processing_wait_share'] - res['processing_queued_share']:.0%}; "
          f"{res['round_trips_per_batch']} "
          f"round trips per batch; events/s plain before / after "
          f"{' / '.join(f'{n:,}' for n in res['events_per_s_plain'])}, metered "
          f"{res['events_per_s_metered']:,} ({res['machine']}, load average "
          f"{res['load_average_1_5_15'][0]})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--json", default=str(ROOT / "bench" / "result-stages.json"))
    args = ap.parse_args()
    # Quiet hours off, as in bench/run.py, so that pushes are decided and relayed.
    config = Path(tempfile.mkdtemp(prefix="shopstream-stages-")) / "bench.toml"
    config.write_text('[coupons]\nquiet_hours = "00:00-00:00"\n')
    with embedded(durable=False) as infra:
        s = load_settings(env={}, config_path=str(config), broker=infra.broker,
                          redis_url=infra.redis_url, partitions=args.partitions, app_id="bench")
        ensure_topics(s)
        prod = EnvelopeProducer(s, max_events=500)
        for ev in generate(args.events, args.users, 5_000, 42):
            prod.add(ev)
        prod.flush()
        events = prod.events_sent
        del prod  # its client would keep reconnecting once the embedded broker is gone
        records, fetched = asyncio.run(fetch(s))
        # Plain runs before and after the metered one: the spread of the machine shows.
        plain_s = [asyncio.run(process(s, records, None))]
        meter = Meter()
        metered_s = asyncio.run(process(s, records, meter))
        plain_s.append(asyncio.run(process(s, records, None)))
    result = report(meter, fetched, events, plain_s, metered_s)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
