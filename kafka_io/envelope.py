"""Kafka record values: one event (a JSON object) or an envelope of events (a JSON array).

Decoding splits a record into valid events and dead letters; valid events of an envelope
flow even when their neighbours are bad.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from operator import attrgetter
from typing import Any

from shopstream.core import codec
from shopstream.schemas import decode
from shopstream.schemas.events import Event
from shopstream.schemas.validate import FieldError, FutureBound, future_bound, judge

_TS = attrgetter("ts")


class Reason(StrEnum):
    """Why an event or record was dead-lettered."""

    OVERSIZED = "oversized"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    #: Valid, but stamped more than ``max_future_ms`` ahead of the clock (``record_bound``).
    FUTURE_TS = "future_ts"
    #: Valid, but refused by a capability on its state (``agents.base.Refusal``): nothing of
    #: the event was written.
    INSUFFICIENT_POINTS = "insufficient_points"
    SELF_REFERRAL = "self_referral"
    ALREADY_REFERRED = "already_referred"
    UNKNOWN_TASK = "unknown_task"
    GROUP_COMPLETED = "group_completed"
    GROUP_EXPIRED = "group_expired"
    ALREADY_JOINED = "already_joined"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected event (or whole record), with where it came from and why."""

    reason: Reason
    #: Human-readable detail: field, expectation, what was found.
    detail: str
    #: The rejected bytes: the whole record, or the one item re-encoded.
    original: bytes
    topic: str
    partition: int
    offset: int
    #: Position inside the envelope; -1 when the whole record is rejected.
    index: int
    error: FieldError | None = None
    #: Set for an event a capability refused: its offset is not known there, its id is.
    event_id: str | None = None

    @property
    def source(self) -> str:
        """Where it came from, unique per dead letter (consumers dedupe by it)."""
        if self.event_id is not None:
            return f"{self.topic}/{self.partition}/event/{self.event_id}"
        return f"{self.topic}/{self.partition}/{self.offset}/{self.index}"

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        out: list[tuple[str, str | bytes | None]] = [
            ("reason", self.reason.value.encode()),
            ("detail", self.detail.encode()),
            ("source", self.source.encode()),
        ]
        if self.error is not None:
            out.append(("error", codec.dumps(self.error.as_dict())))
        return out


def classify(error: FieldError) -> Reason:
    if error.field == "":
        return Reason.NOT_AN_OBJECT
    if error.field == "type":
        return Reason.UNKNOWN_TYPE
    return Reason.INVALID_FIELD


def record_bound(record_ms: int | None, max_future_ms: int, now_ms: int) -> FutureBound | None:
    """The latest event time a record may carry (None when the bound is off).

    Judged against the record's Kafka timestamp (the producer's clock when it sent it), so a
    worker that reads the record again later (a dedup rebuild, a catch-up) decides the same.
    A record without one, or stamped ahead of the reader's clock (a producer's clock ahead,
    or a forged stamp), is judged against the reader's clock ``now_ms`` instead.
    """
    if record_ms is None or record_ms <= 0 or record_ms > now_ms:
        return future_bound(max_future_ms, now_ms, "the worker's clock")
    return future_bound(max_future_ms, record_ms, "the record's timestamp")


def decode_record(
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    max_bytes: int,
    events: list[Event],
    dead: list[DeadLetter],
    bound: FutureBound | None = None,
) -> int:
    """Append the record's valid events to ``events`` and its rejects to ``dead``; a valid
    event stamped beyond ``bound`` is a reject too (``future_ts``).

    Returns how many events the record counted as (the envelope length, or 1), so that
    ``in == valid + dead`` holds per record before deduplication. A record whose events are
    all valid and within the bound is decoded in one pass; any other is judged item by item.
    """
    raw = value or b""
    if len(raw) > max_bytes:
        dead.append(
            DeadLetter(Reason.OVERSIZED, f"record of {len(raw)} bytes exceeds {max_bytes}",
                       raw, topic, partition, offset, -1)
        )
        return 1
    try:
        doc = decode.decode_events(raw)
    except decode.DecodeFailed:
        return _explain_record(raw, topic, partition, offset, events, dead, bound)
    if isinstance(doc, list):
        if bound is not None and doc and max(map(_TS, doc)) > bound.latest:
            return _explain_record(raw, topic, partition, offset, events, dead, bound)
        events.extend(doc)
        return len(doc)
    if bound is not None and doc.ts > bound.latest:
        error = bound.error(doc.ts)
        dead.append(DeadLetter(Reason.FUTURE_TS, str(error), raw, topic, partition, offset, -1,
                               error))
    else:
        events.append(doc)
    return 1


def _explain_record(
    raw: bytes,
    topic: str,
    partition: int,
    offset: int,
    events: list[Event],
    dead: list[DeadLetter],
    bound: FutureBound | None,
) -> int:
    """``decode_record`` for a record with a reject: each item judged on its own, the
    rejects named by the hand checks."""
    try:
        doc = codec.loads(raw)
    except codec.DecodeError as exc:
        dead.append(
            DeadLetter(Reason.MALFORMED_JSON, str(exc), raw, topic, partition, offset, -1)
        )
        return 1
    if type(doc) is dict:
        judged = _judge(doc, bound)
        if isinstance(judged, tuple):
            reason, error = judged
            dead.append(DeadLetter(reason, str(error), raw, topic, partition, offset, -1, error))
        else:
            events.append(judged)
        return 1
    if type(doc) is not list:
        error = FieldError("", "a JSON object or array of objects", type(doc).__name__)
        dead.append(
            DeadLetter(Reason.NOT_AN_OBJECT, str(error), raw, topic, partition, offset, -1, error)
        )
        return 1
    for index, item in enumerate(doc):
        judged = _judge(item, bound)
        if isinstance(judged, tuple):
            reason, error = judged
            dead.append(DeadLetter(reason, str(error), codec.dumps(item),
                                   topic, partition, offset, index, error))
        else:
            events.append(judged)
    return len(doc)


def _judge(item: Any, bound: FutureBound | None) -> Event | tuple[Reason, FieldError]:
    """A valid event within the bound, else why it is rejected."""
    judged = judge(item)
    if isinstance(judged, FieldError):
        return classify(judged), judged
    if bound is not None and judged.ts > bound.latest:
        return Reason.FUTURE_TS, bound.error(judged.ts)
    return judged
