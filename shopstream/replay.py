"""Replay a JSONL file of events into Kafka in envelopes, optionally paced."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer

#: Progress line every this many events.
PROGRESS_EVERY = 50_000


def _user_of(line: bytes) -> str | None:
    """user_id of a line that is a JSON object with a string user_id, else None."""
    try:
        doc = codec.loads(line)
    except codec.DecodeError:
        return None
    if type(doc) is dict and type(doc.get("user_id")) is str:
        return str(doc["user_id"])
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
            prod.add_encoded(line, user)
        sent += 1
        if rate > 0:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0.01:
                time.sleep(ahead)
        if progress and sent % PROGRESS_EVERY == 0:
            elapsed = time.monotonic() - started
            print(f"replay: {sent} events, {sent / elapsed:,.0f}/s", file=sys.stderr, flush=True)
    prod.flush()
    return sent


def replay_file(settings: Settings, path: str, rate: float = 0.0, progress: bool = False) -> int:
    with open(path, "rb") as fh:
        return replay_lines(settings, fh, rate=rate, progress=progress)
