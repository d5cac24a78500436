"""The batch loop's core: decode, dedup, hand to agents, apply to Redis once per partition.

Independent of Faust, so tests and benchmarks can drive it with records read any way.
Order of effects for a batch: dead letters are flushed to Kafka first, then every
partition's state changes, counters and fence land in one Lua call each. A crash between
the two repeats dead letters (deduped by their source header) and never loses state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import msgspec

from shopstream.agents.base import Agent, PartitionBatch
from shopstream.agents.lateness import allowed_lateness
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope import DeadLetter, decode_record, record_bound
from shopstream.kafka_io.topics import topic_id
from shopstream.monitoring.metrics import Metrics
from shopstream.schemas.events import Event
from shopstream.sinks import keys
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import Fence, RedisState, stale_fence
from shopstream.streams.counting import BatchMetrics, record_counts
from shopstream.streams.dedup import Deduplicator
from shopstream.streams.feeds import Dispatch
from shopstream.streams.log_guard import LogGuard
from shopstream.streams.rebuild import (
    log_start,
    read_records,
    record_checkpoint,
    replay_dedup,
    start_checkpoint,
)
from shopstream.streams.records import Record, cancel_all, first_error

log = logging.getLogger(__name__)

#: Records read again from Kafka and applied at once when catching up after a gap.
CATCH_UP_RECORDS = 2_000


class Plan(NamedTuple):
    """What a partition's batch will write besides the agents' ops."""

    #: The fence read before the batch: its call lands only if Redis still holds it.
    fence: Fence
    #: The fence once the batch landed (last offset, watermark).
    after: Fence
    counts: Counter[str]
    dead: list[DeadLetter]


@dataclass(slots=True)
class PartitionState:
    """What this worker remembers of a partition between batches."""

    offset: int
    dedup: Deduplicator
    #: (first offset, watermark before it) of recorded checkpoints, oldest first.
    checkpoints: list[tuple[int, int]] = field(default_factory=list)


class BatchProcessor:
    def __init__(
        self,
        settings: Settings,
        state: RedisState,
        agents: list[Agent[Any, Any]],
        dead_letters: DeadLetterSink,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.state = state
        self.agents = agents
        self.dispatch = Dispatch(agents, settings.partitions, allowed_lateness(settings.sections))
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.topic = state.topic
        self._parts: dict[int, PartitionState] = {}
        #: Which log the state belongs to: partitions of another log are refused.
        self.guard = LogGuard(metrics, self.topic, partial(topic_id, settings, self.topic, 5.0))
        #: One batch at a time, also when the tick takes up a refused partition.
        self._lock = asyncio.Lock()
        #: True while records a gap left out are being applied (they follow the fence).
        self._catching_up = False
        self.counters = BatchMetrics(metrics, self.dispatch.counted_names)

    async def tick(self, now_ms: int) -> None:
        """Wall-clock hook for agents (timers in live mode), and for refused partitions."""
        await self.take_up_reset()
        for agent in self.agents:
            await agent.tick(now_ms)

    def forget(self, partitions: list[int]) -> None:
        """Drop in-memory state of partitions this worker no longer owns."""
        for p in partitions:
            self._parts.pop(p, None)
            self.guard.forget(p)

    def refusals(self) -> dict[int, str]:
        """Refused partitions and why (OTHER_LOG, FENCE_AHEAD), for readiness."""
        return self.guard.refusals()

    @property
    def log_end(self) -> Callable[[int], int | None]:
        """Next offset the broker will write in a partition, when known (see LogGuard)."""
        return self.guard.log_end

    @log_end.setter
    def log_end(self, log_end: Callable[[int], int | None]) -> None:
        self.guard.log_end = log_end

    async def take_up_reset(self) -> None:
        """Take up refused partitions whose fence changed (``shopstream reset --yes``) and
        apply what was left out while they were refused, even if no new record arrives."""
        guard = self.guard
        if not guard.left_out:
            return
        async with self._lock:
            if guard.refused:
                self._end_refusals(await self.state.read_fences(sorted(guard.refused)))
            # Dropped only once applied: a failed try is made again at the next tick.
            for p in [p for p in guard.left_out if p not in guard.refused]:
                fence = (await self.state.read_fences([p]))[p]
                await self._catch_up(p, fence, guard.left_out[p] + 1)
                del guard.left_out[p]

    async def _ensure_current(self, partition: int, fence: Fence) -> PartitionState:
        part = self._parts.get(partition)
        if part is not None and part.offset == fence.offset:
            return part
        s = self.settings
        checkpoints = await self.state.checkpoints(partition)
        if fence.offset < 0 or not checkpoints:
            part = PartitionState(fence.offset, Deduplicator(s.dedup_horizon_ms, s.dedup_max_ids))
        else:
            i = start_checkpoint(checkpoints, fence.watermark, s.dedup_horizon_ms)
            first, wm_before = checkpoints[i]
            dedup = Deduplicator(s.dedup_horizon_ms, s.dedup_max_ids, wm_before)
            await asyncio.to_thread(
                replay_dedup, s, self.topic, partition, first, fence.offset, dedup
            )
            part = PartitionState(fence.offset, dedup, checkpoints)
            self.metrics.rebuilds.inc()
        self._parts[partition] = part
        return part

    async def process(self, records: list[Record]) -> int:
        """Process one batch of records (any mix of partitions); returns events applied."""
        async with self._lock:
            return await self._process(records)

    async def _process(self, records: list[Record]) -> int:
        started = time.perf_counter()
        by_part: dict[int, list[Record]] = {}
        for rec in records:
            by_part.setdefault(rec.partition, []).append(rec)
        fences = await self.state.read_fences(sorted(by_part))
        for p in self._end_refusals(fences):
            self.guard.left_out.pop(p, None)  # the gap below reads them again
        # Which log the state belongs to is settled before any blocking re-read.
        await self.guard.check_log(by_part, fences, self._parts)
        gaps = {p: first for p, recs in by_part.items() if p not in self.guard.refused
                and (first := self._first_unapplied(p, recs, fences[p])) > fences[p].offset + 1}
        self.guard.hold_back(by_part)
        # Partitions new to this worker are rebuilt from Kafka concurrently (I/O bound).
        await asyncio.gather(*(self._ensure_current(p, fences[p]) for p in by_part))
        if gaps and not self._catching_up:
            for p, first in gaps.items():
                await self._catch_up(p, fences[p], first)
            fences = await self.state.read_fences(sorted(by_part))
        try:
            batches, plans = self._plan(by_part, fences)
            outputs = await self._compute_and_write(batches, plans)
        except BaseException:
            # Deduplication already saw these records: a retry must start from state rebuilt
            # up to the fence, or it would take the batch's own events for duplicates.
            self.forget(list(by_part))
            raise
        applied = 0
        now_ms = time.time() * 1000
        for batch in batches:
            fence_after = plans[batch.partition].after
            self._export_lag(batch.partition, fence_after.offset)
            if (part := self._parts.get(batch.partition)) is not None:  # None: revoked meanwhile
                part.offset = fence_after.offset
                part.dedup.evict()
            applied += len(batch.events)
            self.counters.observe(batch, plans[batch.partition].counts, now_ms)
        self.metrics.dedup_ids.set(sum(len(part.dedup) for part in self._parts.values()))
        self.counters.count_late(self.dispatch.late_counts(batches))
        for agent, outs in zip(self.agents, outputs, strict=True):
            await agent.after_apply(batches, outs)
        self.metrics.batches.inc()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return applied

    def _plan(
        self, by_part: dict[int, list[Record]], fences: dict[int, Fence]
    ) -> tuple[list[PartitionBatch], dict[int, Plan]]:
        """Decode and deduplicate each partition's records beyond its fence."""
        batches: list[PartitionBatch] = []
        plans: dict[int, Plan] = {}
        max_bytes = self.settings.max_record_bytes
        max_future = self.settings.max_future_ms
        now_ms = int(time.time() * 1000)
        for p, recs in by_part.items():
            fence = fences[p]
            part = self._parts[p]
            dedup = part.dedup
            wm_before = dedup.watermark
            counts: Counter[str] = Counter()
            dead: list[DeadLetter] = []
            decoded: list[Event] = []
            last = fence.offset
            first = -1
            for rec in recs:
                if rec.offset <= last:
                    continue  # already applied before a restart or rebalance
                if first < 0:
                    first = rec.offset
                last = rec.offset
                counts["in"] += decode_record(
                    rec.value, self.topic, p, rec.offset, max_bytes, decoded, dead,
                    record_bound(rec.timestamp, max_future, now_ms),
                )
            if first < 0:
                continue
            split = self.dispatch.split(p, decoded, dedup)
            if split.duplicates:
                counts["duplicate"] = split.duplicates
            if split.copies:
                counts["in"] -= split.copies
                counts["copies"] = split.copies
            counts["processed"] = len(split.events)
            counts["dead"] = len(dead)
            for d in dead:
                counts["dead:" + d.reason.value] += 1
            batch = PartitionBatch(p, split.events, watermark_before=wm_before,
                                   watermark=dedup.watermark, feeds=split.feeds)
            record_checkpoint(part.checkpoints, batch, first, self.settings.dedup_horizon_ms,
                              keys.checkpoints(self.state.app_id, self.topic, p))
            batches.append(batch)
            plans[p] = Plan(fence, Fence(last, dedup.watermark, self.guard.log_id or fence.log),
                            counts, dead)
        return batches, plans

    async def _compute_and_write(self, batches: list[PartitionBatch],
                                 plans: dict[int, Plan]) -> list[list[Any]]:
        """Loads (and the dead letters' flush) concurrently, then each partition's agents and
        its fenced call: a partition's call is on its way while the next one is computed.
        Returns each agent's outputs, one per batch.

        Dead letters are flushed before any fence moves, so a crash may repeat one, never
        lose one.
        """
        all_dead = [d for plan in plans.values() for d in plan.dead]
        _, *loads = await first_error(self.dead_letters.publish(all_dead),
                                      *(agent.load(batches) for agent in self.agents))
        outputs: list[list[Any]] = [[] for _ in self.agents]
        writes: list[asyncio.Task[bool]] = []
        try:
            for i, batch in enumerate(batches):
                for agent, loaded, outs in zip(self.agents, loads, outputs, strict=True):
                    outs.append(agent.apply(batch, loaded[i]))
                self.dispatch.count_late(batch, self.state.app_id)
                plan = plans[batch.partition]
                if batch.refused:
                    await self._dead_letter_refusals(batch, plan)
                record_counts(batch, self.state.app_id, plan.counts, plan.dead)
                writes.append(asyncio.create_task(
                    self.state.apply_one(batch.partition, plan.fence, plan.after, batch.ops)))
                await asyncio.sleep(0)  # let the call go out before computing the next one
            landed = await asyncio.gather(*writes)
        except BaseException:
            await cancel_all(writes)
            raise
        if (stale := stale_fence([b.partition for b in batches], landed)) is not None:
            self.metrics.stale_fences.inc()
            log.warning("fence moved under this worker; partition state will be reloaded")
            raise stale
        return outputs

    async def _dead_letter_refusals(self, batch: PartitionBatch, plan: Plan) -> None:
        """The batch's refused events on the dead-letter topic (flushed before its fence
        moves, so a crash repeats them under the same source, never loses them), counted
        dead instead of processed."""
        dead = [DeadLetter(r.reason, r.detail, msgspec.json.encode(r.event), self.topic,
                           batch.partition, -1, -1, event_id=r.event.event_id)
                for r in batch.refused]
        await self.dead_letters.publish(dead)
        plan.dead.extend(dead)
        plan.counts["processed"] -= len(dead)
        plan.counts["dead"] += len(dead)
        for d in dead:
            plan.counts["dead:" + d.reason.value] += 1

    def _export_lag(self, p: int, applied: int) -> None:
        """Log end minus the applied fence (clamped at 0: the broker's high watermark may lag
        what was written by a little)."""
        end = self.guard.log_end(p)
        if end is not None:
            self.metrics.consumer_lag.labels(self.topic, str(p)).set(max(0, end - 1 - applied))

    def _first_unapplied(self, p: int, recs: list[Record], fence: Fence) -> int:
        """Offset of the first record beyond the fence (or just past it when there is none);
        notices a fence that lies beyond the partition's log."""
        first = next((r.offset for r in recs if r.offset > fence.offset), fence.offset + 1)
        self.guard.check_ahead(p, recs, fence, first)
        return first

    async def _catch_up(self, p: int, fence: Fence, first: int) -> None:
        """Apply the records between the fence and ``first``, read again from Kafka.

        Records arrive beyond fence + 1 when Redis lost its newest writes (restored from a
        snapshot, failed over to a lagging replica) while Kafka's committed offsets did not:
        the state is the truth, so the missing records are applied again, in order. Without
        a fence the state holds nothing of the log: it is read from the log's beginning,
        whatever offsets the consumer group committed (after ``shopstream reset``).
        """
        low = fence.offset + 1
        if fence.offset < 0:
            low = await asyncio.to_thread(log_start, self.settings, self.topic, p)
        if low >= first:
            return
        log.warning("partition %d: records start at %d but state stops at %d; reading %d..%d "
                    "again", p, first, fence.offset, low, first - 1)
        self.metrics.partition_gaps.inc()
        self._catching_up = True
        try:
            while low < first:
                high = min(first - 1, low + CATCH_UP_RECORDS - 1)
                found = await asyncio.to_thread(
                    read_records, self.settings, self.topic, p, low, high)
                if not found or found[0][0] != low:
                    log.error("partition %d: records from %d are no longer in the log "
                              "(retention?); the state continues without them", p, low)
                if not found:
                    return
                await self._process([Record(p, *row) for row in found])
                low = found[-1][0] + 1
        finally:
            self._catching_up = False

    def _end_refusals(self, fences: dict[int, Fence]) -> list[int]:
        """Take up refused partitions whose fence changed, their state loaded anew; returns
        them."""
        ended = self.guard.end_refusals(fences)
        for p in ended:
            self._parts.pop(p, None)
        return ended
