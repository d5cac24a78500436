"""``shopstream tail``: the side topics (alerts, dead letters, pushes, customer events) as
readable lines.

One line per record for people; ``--json`` gives one JSON object per record for machines
(topic, partition, offset, headers, value). Reads without a consumer group, from the end (or
``--from-beginning``), so tailing never moves anybody's offsets.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.consumer import make_consumer


def topic_of(settings: Settings, kind: str) -> str:
    return {"alerts": settings.alerts_topic, "dead-letters": settings.dead_letter_topic,
            "pushes": settings.pushes_topic,
            "customer-events": settings.customer_events_topic}[kind]


def _text(raw: str | bytes | None) -> str:
    return raw if isinstance(raw, str) else (raw or b"").decode("utf-8", "replace")


def _value(raw: bytes | None) -> Any:
    try:
        return codec.loads(raw or b"")
    except codec.DecodeError:
        return (raw or b"").decode("utf-8", "replace")


def _line_dead(headers: dict[str, str], value: Any) -> str:
    shown = value if isinstance(value, str) else codec.dumps(value).decode()
    return (f"{headers.get('source', '?')}  {headers.get('reason', '?')}  "
            f"{headers.get('detail', '')}  {shown[:80]}")


def _line_json(value: Any) -> str:
    if not isinstance(value, dict):
        return str(value)[:200]
    return "  ".join(f"{k}={v}" for k, v in value.items()
                     if isinstance(v, str | int | float | bool))


def render(kind: str, headers: dict[str, str], value: Any) -> str:
    """One readable line: dead letters lead with source and reason, others with their fields."""
    return _line_dead(headers, value) if kind == "dead-letters" else _line_json(value)


def tail(settings: Settings, kind: str, from_beginning: bool = False, as_json: bool = False,
         max_records: int = 0, idle_exit_s: float = 0.0, out: IO[str] = sys.stdout,
         should_stop: Callable[[], bool] = lambda: False) -> int:
    """Print records until stopped, ``max_records`` printed, or ``idle_exit_s`` without one."""
    topic = topic_of(settings, kind)
    consumer = make_consumer(settings, "tail", {"enable.auto.commit": False})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in sorted(parts)])
        since = "the beginning" if from_beginning else "now on"
        plural = "" if len(parts) == 1 else "s"
        print(f"shopstream tail: following {kind} (topic {topic}, {len(parts)} partition{plural})"
              f" from {since}; waiting for records (Ctrl-C stops)", file=sys.stderr, flush=True)
        printed, last = 0, time.monotonic()
        while not should_stop():
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                if idle_exit_s and time.monotonic() - last > idle_exit_s:
                    break
                continue
            last = time.monotonic()
            raw_headers = msg.headers() or []
            pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
            headers = {k: _text(v) for k, v in pairs}
            value = _value(msg.value())
            if as_json:
                line = codec.dumps({"topic": topic, "partition": msg.partition(),
                                    "offset": msg.offset(), "headers": headers,
                                    "value": value}).decode()
            else:
                line = render(kind, headers, value)
            print(line, file=out, flush=True)
            printed += 1
            if max_records and printed >= max_records:
                break
        return printed
    finally:
        consumer.close()
