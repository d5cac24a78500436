"""What the batch loop hands each capability, and what a capability must provide."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from shopstream.schemas.events import Event
from shopstream.sinks.redis_state import Ops


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
    #: Copies of room-wide events (``kafka_io.partitioner.is_copy``) as (number of ``events``
    #: before it, event): only the live agent reads them.
    copies: list[tuple[int, Event]] = field(default_factory=list)
    #: Per-agent scratch space filled by ``Agent.load``.
    loaded: dict[str, Any] = field(default_factory=dict)


class Agent(Protocol):
    """One capability (event_stats, funnel, flash_sale, coupons ...).

    ``load`` may read Redis for the partitions in the batch (one round trip, ideally);
    ``apply`` is pure: it turns events and loaded state into ``batch.ops``;
    ``after_apply`` runs once the batch's fenced writes landed (relays, side effects that
    must be idempotent); ``tick`` runs about once a second on the worker's wall clock.
    """

    name: str

    async def load(self, batches: list[PartitionBatch]) -> None: ...

    def apply(self, batch: PartitionBatch) -> None: ...

    async def after_apply(self, batches: list[PartitionBatch]) -> None: ...

    async def tick(self, now_ms: int) -> None: ...


class NoHooks:
    """No-op defaults for the optional hooks of ``Agent``."""

    async def load(self, batches: list[PartitionBatch]) -> None:
        return None

    async def after_apply(self, batches: list[PartitionBatch]) -> None:
        return None

    async def tick(self, now_ms: int) -> None:
        return None
