"""Replay a JSONL file of events into Kafka in envelopes, optionally paced."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

import redis

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.progress import Progress
from shopstream.schemas import decode
from shopstream.schemas.events import ROOM_WIDE_TYPES, routing_key
from shopstream.sinks import keys

#: Progress line every this many events.
PROGRESS_EVERY = 50_000


def _user_of(line: bytes) -> tuple[str, bool] | None:
    """(routing key, room-wide?) of a valid event; for an invalid line that is a JSON object
    with a string user_id, that user_id; else None."""
    try:
        ev = decode.decode_event(line)
    except decode.DecodeFailed:
        pass
    else:
        return routing_key(ev), ev.type in ROOM_WIDE_TYPES
    try:
        doc = codec.loads(line)
    except codec.DecodeError:
        return None
    if type(doc) is dict and type(doc.get("user_id")) is str:
        # Not a valid event: dead-lettered once, never copied even if room-wide.
        return str(doc["user_id"]), False
    return None


def replay_lines(
    settings: Settings,
    lines: Iterable[bytes],
    rate: float = 0.0,
    progress: bool = False,
    producer: EnvelopeProducer | None = None,
) -> int:
    """Produce each line: event objects in envelopes by user partition, anything else as is.

    Lines that are not event objects (bad JSON, arrays, scalars) are sent as their own
    record, so the worker dead-letters exactly them. Returns events sent.
    """
    prod = producer or EnvelopeProducer(settings)
    started = time.monotonic()
    sent = 0
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        user = _user_of(line)
        if user is None:
            prod.add_raw(line)
        else:
            prod.add_encoded(line, *user)
        sent += 1
        if rate > 0:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0.01:
                time.sleep(ahead)
        if progress and sent % PROGRESS_EVERY == 0 and sys.stderr.isatty():
            elapsed = time.monotonic() - started
            print(f"replay: {sent} events, {sent / elapsed:,.0f}/s", file=sys.stderr, flush=True)
    prod.flush()
    return sent


def replay_file(settings: Settings, path: str, rate: float = 0.0, progress: bool = False) -> int:
    with open(path, "rb") as fh:
        return replay_lines(settings, fh, rate=rate, progress=progress)


def applied_events(settings: Settings) -> int:
    """Events the workers have taken in (the ``in`` reconciliation counter, all partitions)."""
    r = redis.Redis.from_url(str(settings.redis_url))
    try:
        with r.pipeline(transaction=False) as pipe:
            for p in range(settings.partitions):
                pipe.hget(keys.counts(settings.app_id, p), "in")
            return sum(int(v or 0) for v in pipe.execute())
    finally:
        r.close()


def wait_applied(settings: Settings, baseline: int, sent: int, timeout_s: float) -> bool:
    """Until the workers applied ``sent`` more events than ``baseline`` (True), or timeout."""
    bar = Progress("applied", sent)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            done = applied_events(settings) - baseline
            bar.update(min(done, sent))
            if done >= sent:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
    finally:
        bar.close()
