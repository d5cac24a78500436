"""Baseline (a): the naive Faust funnel teams write today.

One event per Kafka record (keyed by user_id), one Faust agent, two Faust tables updated
per event: per-user funnel progress and per (channel, step) counts. Runs one fresh worker
on the embedded broker, times it from first to last processed event and checks its counts
against ``bench/funnel_reference.py``.

    python bench/baseline_faust.py [--events 100000] [--users 20000] [--rate 1.0]

The worker runs in a child process (``worker`` sub-command) so that Faust owns its own
event loop and is killed cleanly once it has written its result file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.funnel_reference import PURCHASE_STEPS, WINDOW_MS, as_rows, reference_funnel  # noqa: E402

LAST_STEP = len(PURCHASE_STEPS) - 1


def step_of(ev: dict[str, Any]) -> int:
    """Index of the step this event is, or -1 (funnel steps have distinct types here)."""
    for i, (kind, filters) in enumerate(PURCHASE_STEPS):
        if ev.get("type") == kind and all(ev.get(k) == v for k, v in filters.items()):
            return i
    return -1


def _write_result(out: str, payload: dict[str, Any]) -> None:
    """Write the result atomically (once, at the end), so the parent never reads half a file."""
    Path(out + ".tmp").write_bytes(orjson.dumps(payload))
    os.replace(out + ".tmp", out)


def run_worker(broker: str, topic: str, app_id: str, partitions: int, expect: int,
               out: str) -> None:
    """Faust worker: per-event table updates until ``expect`` records, then write ``out``."""
    import faust

    app = faust.App(
        app_id, broker=broker, store="memory://",
        broker_session_timeout=6.0, broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest", topic_partitions=partitions,
        web_enabled=False,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=partitions)
    # [entry_ts, channel, reached step, ts of last counted step]
    progress = app.Table("progress", partitions=partitions)
    counts = app.Table("counts", default=int, partitions=partitions)
    seen = {"n": 0, "t0": 0.0}

    @app.agent(source)
    async def funnel(stream: Any) -> Any:
        async for value in stream:
            if seen["n"] == 0:
                seen["t0"] = time.perf_counter()
            ev = orjson.loads(value)
            step = step_of(ev)
            if step >= 0:
                user, ts = ev["user_id"], ev["ts"]
                state: list[Any] = progress.get(user) or []
                open_entry = (bool(state) and state[2] < LAST_STEP
                              and ts - state[0] < WINDOW_MS)
                if open_entry:
                    if step == state[2] + 1 and ts >= state[3]:
                        progress[user] = [state[0], state[1], step, ts]
                        counts[f"{state[1]}|{step}"] += 1
                elif step == 0:
                    channel = str(ev.get("channel", ""))
                    progress[user] = [ts, channel, 0, ts]
                    counts[f"{channel}|0"] += 1
            seen["n"] += 1
            if seen["n"] == expect:
                elapsed = time.perf_counter() - seen["t0"]
                rows = sorted([k.rsplit("|", 1)[0], int(k.rsplit("|", 1)[1]), int(v)]
                              for k, v in counts.items())
                _write_result(out, {"events": expect, "seconds": elapsed, "counts": rows})

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


def measure(broker: str, topic: str, partitions: int, expect: int,
            timeout_s: float = 300.0) -> dict[str, Any]:
    """Start one fresh Faust worker on ``topic`` and wait for its result file."""
    out = Path(tempfile.mkdtemp(prefix="faust-baseline-")) / "result.json"
    app_id = f"faust-baseline-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", "--broker", broker,
           "--topic", topic, "--app-id", app_id, "--partitions", str(partitions),
           "--expect", str(expect), "--out", str(out)]
    log = out.with_name("worker.log")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                cwd=out.parent, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while not out.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"faust worker exited {proc.returncode}: "
                                   f"{log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"faust worker: no result in {timeout_s} s; see {log}")
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    result["events_per_s"] = result["events"] / result["seconds"]
    return result


def main() -> int:
    """Embedded broker, generated workload, one Faust worker, check against the reference."""
    from bench.workload import create_topic, generate, produce_per_event
    from shopstream.core.settings import Settings
    from shopstream.infra import start_broker, stop

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--rate", type=float, default=1.0, help="simulated events per second")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--json", help="write the result here too")
    a = p.parse_args()
    events = generate(a.events, a.users, a.rate, a.seed)
    reference = as_rows(reference_funnel(events))
    proc, broker = start_broker()
    try:
        settings = Settings(broker=broker)
        topic = f"baseline-events-{uuid.uuid4().hex[:6]}"
        create_topic(settings, topic, a.partitions)
        produce_s = produce_per_event(settings, topic, events)
        result = measure(broker, topic, a.partitions, len(events))
    finally:
        stop(proc)
    summary = {
        "baseline": "faust-table-per-event", "events": len(events),
        "produce_s": round(produce_s, 2), "seconds": round(result["seconds"], 2),
        "events_per_s": round(result["events_per_s"]), "nproc": os.cpu_count(),
        "equal_to_reference": result["counts"] == reference,
        "reference_entries": sum(n for _, s, n in reference if s == 0),
    }
    print(json.dumps(summary, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps({**summary, "counts": result["counts"]}, indent=2))
    return 0 if summary["equal_to_reference"] else 1


def worker_main(argv: list[str]) -> None:
    """Entry of the child process."""
    p = argparse.ArgumentParser()
    for name in ("--broker", "--topic", "--app-id", "--out"):
        p.add_argument(name, required=True)
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--expect", type=int, required=True)
    a = p.parse_args(argv)
    run_worker(a.broker, a.topic, a.app_id, a.partitions, a.expect, a.out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
    else:
        sys.exit(main())
