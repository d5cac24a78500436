"""What the batch loop hands each capability, and what a capability must provide."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from shopstream.kafka_io.envelope import Reason
from shopstream.schemas.events import Event
from shopstream.sinks.redis_state import Ops


@dataclass(frozen=True, slots=True)
class Takes:
    """What a capability takes of each partition's batch; the batch loop sorts every event
    out once for all of them (``streams.feeds``)."""

    #: Event types handed to it; None: every type.
    types: frozenset[str] | None = None
    #: Only events on time: not older than the partition's running watermark minus the
    #: allowed lateness (``agents.lateness``), checked event by event in partition order.
    #: Its late events of ``types`` are counted under ``late_key`` and in
    #: ``shopstream_events_late_total{agent}``. False: late events are handed over too.
    on_time: bool = False
    #: Room-wide types (``kafka_io.partitioner``) whose copies it takes, at their place among
    #: its events; a copy is judged late like any event but moves no watermark.
    copies: frozenset[str] = frozenset()
    #: Redis key of its late counter, by (app id, partition); set when ``on_time``.
    late_key: Callable[[str, int], str] | None = None


#: Takes every event, late ones too, and no copy.
EVERY_EVENT = Takes()


@dataclass(slots=True)
class Feed:
    """One capability's share of a partition's batch, in partition order."""

    events: list[Event]
    #: The room-wide copies it takes, each with the number of ``events`` before it.
    copies: list[tuple[int, Event]] = field(default_factory=list)
    #: Its late events (of its types, copies not counted), left out of ``events``.
    late: int = 0

    def in_order(self) -> list[Event]:
        """Events and copies merged in partition order (``events`` itself without copies)."""
        if not self.copies:
            return self.events
        merged: list[Event] = []
        done = 0
        for pos, ev in self.copies:
            merged += self.events[done:pos]
            merged.append(ev)
            done = pos
        merged += self.events[done:]
        return merged


@dataclass(frozen=True, slots=True)
class Refusal:
    """A valid event a capability refused on its state (a redemption beyond the balance, a
    join to a closed group): the capability wrote nothing for it, and the batch loop
    dead-letters it with the reason before the batch's fence moves."""

    event: Event
    reason: Reason
    detail: str


@dataclass(slots=True)
class PartitionBatch:
    """New, valid, deduplicated events of one partition in one batch, in partition order."""

    partition: int
    events: list[Event]
    #: State changes; flushed with the fence in one atomic call.
    ops: Ops = field(default_factory=Ops)
    #: Partition watermark (largest event time) before and after this batch.
    watermark_before: int = 0
    watermark: int = 0
    #: Each capability's share of ``events`` by its name (``Takes``).
    feeds: dict[str, Feed] = field(default_factory=dict)
    #: Events refused by a capability's ``apply``; counted dead, not processed.
    refused: list[Refusal] = field(default_factory=list)


LoadT = TypeVar("LoadT")
OutT = TypeVar("OutT")


class Agent(Protocol[LoadT, OutT]):
    """One capability (event_stats, funnel, flash_sale, coupons ...), with its load ``LoadT``
    and its output ``OutT`` per partition batch.

    ``load`` may read Redis for the partitions in the batch (one round trip, ideally) and
    returns one ``LoadT`` per batch; ``apply`` is pure: it turns its feed and load into
    ``batch.ops`` and returns what ``after_apply`` needs; ``after_apply`` runs once the
    batch's fenced writes landed (relays, metrics, side effects that must be idempotent);
    ``tick`` runs about once a second on the worker's wall clock.
    """

    name: str
    takes: Takes

    async def load(self, batches: list[PartitionBatch]) -> list[LoadT]: ...

    def apply(self, batch: PartitionBatch, loaded: LoadT) -> OutT: ...

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[OutT]) -> None: ...

    async def tick(self, now_ms: int) -> None: ...


class NoHooks:
    """No-op defaults for the optional hooks of ``Agent``: nothing loaded, nothing after."""

    async def load(self, batches: list[PartitionBatch]) -> list[Any]:
        return [None] * len(batches)

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[Any]) -> None:
        return None

    async def tick(self, now_ms: int) -> None:
        return None
