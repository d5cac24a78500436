"""Baseline (b): the same funnel in Quix Streams (Application, StreamingDataFrame, RocksDB).

Runs in its own venv (``bench/setup_quix.sh``: quixstreams pins confluent-kafka 2.12). It only
consumes: the caller (``bench/run.py`` or ``--selftest`` below, from the main venv) produces the
per-event topic and checks the counts against ``bench/funnel_reference.py``.

    .venv-quix/bin/python bench/baseline_quix.py --broker 127.0.0.1:PORT --topic T --expect N

Per-user progress lives in Quix's RocksDB state (keyed by the record key, user_id, with its
changelog topic); each step reached is emitted and summed into (channel, step) counts.

Workaround for the embedded broker (Tansu): its DescribeConfigs answers with no entries, so
``TopicManager.derive_topic_config`` fails with ``KeyError: 'retention.ms'`` when it derives
the changelog topic's config. The patch below reads a missing value as -1 (infinite), exactly
what Quix already does for a missing ``retention.bytes``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections import Counter
from typing import Any

from quixstreams import Application, State
from quixstreams.models.topics import TopicManager

WINDOW_MS = 24 * 3_600_000
STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("page_view", {}), ("product_view", {}), ("cart_add", {}), ("order_submit", {}),
    ("payment", {"status": "success"}),
)
LAST_STEP = len(STEPS) - 1


def _patch_topic_config() -> None:
    """Default a missing ``retention.ms`` to -1 while deriving changelog configs."""
    original = TopicManager.derive_topic_config.__func__  # type: ignore[attr-defined]

    def derive(cls: type[TopicManager], topics: Any) -> Any:
        topics = list(topics)
        for t in topics:
            t.broker_config.extra_config.setdefault("retention.ms", "-1")
        return original(cls, topics)

    TopicManager.derive_topic_config = classmethod(derive)  # type: ignore[method-assign,assignment]


def step_of(ev: dict[str, Any]) -> int:
    """Index of the funnel step this event is, or -1."""
    for i, (kind, filters) in enumerate(STEPS):
        if ev.get("type") == kind and all(ev.get(k) == v for k, v in filters.items()):
            return i
    return -1


def advance(ev: dict[str, Any], state: State) -> list[Any] | None:
    """Stateful per-user step: returns [channel, step] when an entry reaches a step."""
    step = step_of(ev)
    if step < 0:
        return None
    ts = ev["ts"]
    p = state.get("p")  # [entry_ts, channel, reached, last_ts]
    if p is not None and p[2] < LAST_STEP and ts - p[0] < WINDOW_MS:
        if step == p[2] + 1 and ts >= p[3]:
            state.set("p", [p[0], p[1], step, ts])
            return [p[1], step]
        return None
    if step == 0:
        channel = str(ev.get("channel", ""))
        state.set("p", [ts, channel, 0, ts])
        return [channel, 0]
    return None


def run(broker: str, topic: str, expect: int) -> dict[str, Any]:
    """Consume ``expect`` records from ``topic`` with a fresh group; counts and timing."""
    _patch_topic_config()
    app = Application(
        broker_address=broker, consumer_group=f"quix-baseline-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", state_dir=tempfile.mkdtemp(prefix="quix-state-"),
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    )
    source = app.topic(topic, value_deserializer="json", key_deserializer="str")
    counts: Counter[tuple[str, int]] = Counter()
    seen = {"n": 0, "t0": 0.0, "t1": 0.0}

    def tally(reached: list[Any] | None) -> None:
        if seen["n"] == 0:
            seen["t0"] = time.perf_counter()
        seen["n"] += 1
        if reached is not None:
            counts[(reached[0], reached[1])] += 1
        if seen["n"] == expect:
            seen["t1"] = time.perf_counter()
            app.stop()

    sdf = app.dataframe(source)
    sdf = sdf.apply(advance, stateful=True)
    sdf = sdf.update(tally)
    app.run()
    seconds = seen["t1"] - seen["t0"]
    return {"events": seen["n"], "seconds": seconds,
            "events_per_s": seen["n"] / seconds if seconds else 0.0,
            "counts": [[c, s, n] for (c, s), n in sorted(counts.items())]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", required=True, help="host:port")
    p.add_argument("--topic", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--out", help="write the JSON result here")
    a = p.parse_args()
    result = run(a.broker, a.topic, a.expect)
    text = json.dumps(result)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
