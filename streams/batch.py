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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from shopstream.agents.base import Agent, PartitionBatch
from shopstream.agents.lateness import allowed_lateness
from shopstream.core import codec
from shopstream.core.errors import ShopstreamError
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope import DeadLetter, Reason, decode_record, record_bound
from shopstream.kafka_io.topics import topic_id
from shopstream.monitoring.metrics import KNOWN_CHANNELS, KNOWN_TYPES, Metrics, bounded
from shopstream.schemas.events import Event
from shopstream.sinks import keys
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import FENCE_AHEAD, OTHER_LOG, Fence, RedisState, stale_fence
from shopstream.streams.dedup import Deduplicator
from shopstream.streams.feeds import Dispatch
from shopstream.streams.rebuild import log_start, read_records, replay_dedup, start_checkpoint

log = logging.getLogger(__name__)

#: Dead letters kept in Redis per partition for operators (the topic keeps all of them).
DEAD_LETTER_STREAM_LEN = 10_000
#: Event-to-state latency is observed for one event in this many (cost stays negligible).
LAG_SAMPLE_EVERY = 16
#: A new replay checkpoint is recorded when the watermark moved this far since the last one.
CHECKPOINT_EVERY_MS = 1_000
#: Records read again from Kafka and applied at once when catching up after a gap.
CATCH_UP_RECORDS = 2_000


class Record(NamedTuple):
    """One Kafka record of the events topic."""

    partition: int
    offset: int
    value: bytes | None
    #: Kafka's record timestamp (epoch ms), None when the record has none.
    timestamp: int | None = None


def split_by_bytes(records: list[Record], max_bytes: int) -> list[list[Record]]:
    """Consecutive runs of records of at most ``max_bytes`` of values (at least one record
    each), so that a take of large envelopes is decoded and applied in bounded memory."""
    runs: list[list[Record]] = []
    run: list[Record] = []
    size = 0
    for rec in records:
        n = len(rec.value or b"")
        if run and size + n > max_bytes:
            runs.append(run)
            run, size = [], 0
        run.append(rec)
        size += n
    if run:
        runs.append(run)
    return runs


class Plan(NamedTuple):
    """What a partition's batch will write besides the agents' ops."""

    #: The fence read before the batch: its call lands only if Redis still holds it.
    fence: Fence
    #: The fence once the batch landed (last offset, watermark).
    after: Fence
    counts: Counter[str]
    dead: list[DeadLetter]


async def first_error(*aws: Awaitable[Any]) -> list[Any]:
    """Await all; on the first failure cancel and await the rest, then raise it, so that a
    retry never runs beside leftovers of the failed try."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        await cancel_all(tasks)
        raise


async def cancel_all(tasks: list[asyncio.Task[Any]] | list[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Refusal(NamedTuple):
    """A partition whose state does not belong to the log being read."""

    #: The fence as it stood: once it changes (``shopstream reset`` deleted it, or another
    #: writer rewrote it) the partition is taken up again.
    fence: Fence
    #: OTHER_LOG or FENCE_AHEAD.
    reason: str


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
        #: Partitions whose state is not of their log: refused until the state is reset.
        self._refused: dict[int, Refusal] = {}
        #: Per refused partition, the last offset left out: read again once taken up.
        self._left_out: dict[int, int] = {}
        #: One batch at a time, also when the tick takes up a refused partition.
        self._lock = asyncio.Lock()
        #: True while records a gap left out are being applied (they follow the fence).
        self._catching_up = False
        #: Next offset the broker will write in a partition, when known (the consumer's
        #: high watermark); a fence at or beyond it means the log is not the one the state
        #: was built from.
        self.log_end: Callable[[int], int | None] = lambda _p: None
        #: Id of the log being read (the topic's id), stamped on every fence it moves; None
        #: while unknown or when the broker keeps no topic ids (then no log is checked).
        self.log_id: str | None = None
        #: How to learn it (blocking; run in a thread), asked again whenever a partition's
        #: state is loaded or records at or below a fence arrive (a new log starts at 0).
        self.read_log_id: Callable[[], str | None] = partial(topic_id, settings, self.topic, 5.0)
        self._log_id_read = False
        self._processed = metrics.events.labels("processed")
        self._dead = metrics.events.labels("dead")
        self._dups = metrics.events.labels("duplicate")
        self._by_type = {
            (t, c): metrics.events_by_type.labels(t, c)
            for t in sorted(KNOWN_TYPES) for c in sorted(KNOWN_CHANNELS)
        }
        for reason in Reason:  # every reason's counter exists from 0, so a first one shows
            metrics.dead_letters.labels(reason.value)
        self._late = {name: metrics.events_late.labels(name)
                      for name in self.dispatch.counted_names}

    async def tick(self, now_ms: int) -> None:
        """Wall-clock hook for agents (timers in live mode), and for refused partitions."""
        await self.take_up_reset()
        for agent in self.agents:
            await agent.tick(now_ms)

    def forget(self, partitions: list[int]) -> None:
        """Drop in-memory state of partitions this worker no longer owns."""
        for p in partitions:
            self._parts.pop(p, None)
            if self._refused.pop(p, None) is not None:
                self._clear_refusal_gauges(p)
            self._left_out.pop(p, None)

    def refusals(self) -> dict[int, str]:
        """Refused partitions and why (OTHER_LOG, FENCE_AHEAD), for readiness."""
        return {p: refusal.reason for p, refusal in self._refused.items()}

    async def take_up_reset(self) -> None:
        """Take up refused partitions whose fence changed (``shopstream reset --yes``) and
        apply what was left out while they were refused, even if no new record arrives."""
        if not self._left_out:
            return
        async with self._lock:
            if self._refused:
                self._end_refusals(await self.state.read_fences(sorted(self._refused)))
            # Dropped only once applied: a failed try is made again at the next tick.
            for p in [p for p in self._left_out if p not in self._refused]:
                fence = (await self.state.read_fences([p]))[p]
                await self._catch_up(p, fence, self._left_out[p] + 1)
                del self._left_out[p]

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
            self._left_out.pop(p, None)  # the gap below reads them again
        # Which log the state belongs to is settled before any blocking re-read.
        await self._check_log(by_part, fences)
        gaps = {p: first for p, recs in by_part.items() if p not in self._refused
                and (first := self._first_unapplied(p, recs, fences[p])) > fences[p].offset + 1}
        for p in [p for p in by_part if p in self._refused]:
            self._left_out[p] = max(self._left_out.get(p, -1), by_part.pop(p)[-1].offset)
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
            self._parts[batch.partition].offset = fence_after.offset
            self._parts[batch.partition].dedup.evict()
            applied += len(batch.events)
            self._observe(batch, plans[batch.partition].counts, now_ms)
        self.metrics.dedup_ids.set(sum(len(part.dedup) for part in self._parts.values()))
        for name, late in self.dispatch.late_counts(batches).items():
            self._late[name].inc(late)
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
            self._checkpoint(part, batch, first)
            batches.append(batch)
            plans[p] = Plan(fence, Fence(last, dedup.watermark, self.log_id or fence.log),
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
                self._record_counts(batch, plan.counts, plan.dead)
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

    def _export_lag(self, p: int, applied: int) -> None:
        """Log end minus the applied fence (clamped at 0: the broker's high watermark may lag
        what was written by a little)."""
        end = self.log_end(p)
        if end is not None:
            self.metrics.consumer_lag.labels(self.topic, str(p)).set(max(0, end - 1 - applied))

    def _first_unapplied(self, p: int, recs: list[Record], fence: Fence) -> int:
        """Offset of the first record beyond the fence (or just past it when there is none);
        notices a fence that lies beyond the partition's log. A fence stamped with this log's
        id proves the log reached it, whatever a trailing high watermark says."""
        first = next((r.offset for r in recs if r.offset > fence.offset), fence.offset + 1)
        if fence.offset >= 0 and first == fence.offset + 1 and not fence.proven_by(self.log_id):
            end = self.log_end(p)
            if end is not None and fence.offset >= end > recs[-1].offset:
                self._refuse(p, fence, FENCE_AHEAD, f"state was applied up to offset "
                             f"{fence.offset} but the log ends at {end} (topic recreated, or "
                             "the broker lost its data while Redis kept it)")
        return first

    async def _check_log(self, by_part: dict[int, list[Record]], fences: dict[int, Fence]) -> None:
        """Refuse the partitions whose fence was stamped by another log than this one."""
        if not self._log_id_read or any(
                p not in self._parts or recs[0].offset <= fences[p].offset
                for p, recs in by_part.items() if p not in self._refused):
            try:
                self.log_id = await asyncio.to_thread(self.read_log_id)
                self._log_id_read = True
            except ShopstreamError as exc:
                log.warning("the log's id is unknown for now (%s): fences are not checked "
                            "against it in this batch", exc)
        for p in by_part:
            fence = fences[p]
            if p not in self._refused and fence.of_other_log(self.log_id):
                self._refuse(p, fence, OTHER_LOG, f"state was built from another log (topic "
                             f"{self.topic} id {fence.log}, now {self.log_id}: the topic was "
                             "recreated, or the broker started empty while Redis kept its state)")

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

    def _refuse(self, p: int, fence: Fence, reason: str, why: str) -> None:
        self._refused[p] = Refusal(fence, reason)
        gauge = self.metrics.log_mismatch if reason == OTHER_LOG else self.metrics.fence_ahead
        gauge.labels(str(p)).set(1)
        log.error("partition %d refused: %s; nothing is applied until `shopstream reset --yes` "
                  "clears this app's state (running workers then start over from the log's "
                  "beginning)", p, why)

    def _end_refusals(self, fences: dict[int, Fence]) -> list[int]:
        """Take up refused partitions whose fence changed; returns them."""
        ended = [p for p, fence in fences.items()
                 if p in self._refused and fence != self._refused[p].fence]
        for p in ended:
            del self._refused[p]
            self._parts.pop(p, None)
            self._clear_refusal_gauges(p)
            log.warning("partition %d: its fence changed (state reset?); taken up again from "
                        "offset %d", p, fences[p].offset + 1)
        return ended

    def _clear_refusal_gauges(self, p: int) -> None:
        self.metrics.fence_ahead.labels(str(p)).set(0)
        self.metrics.log_mismatch.labels(str(p)).set(0)

    def _checkpoint(self, part: PartitionState, batch: PartitionBatch, first_offset: int) -> None:
        """Record where a replay may start, and drop checkpoints no replay will need."""
        ckpts = part.checkpoints
        key = keys.checkpoints(self.state.app_id, self.topic, batch.partition)
        if not ckpts or batch.watermark_before - ckpts[-1][1] >= CHECKPOINT_EVERY_MS:
            ckpts.append((first_offset, batch.watermark_before))
            batch.ops.zadd(key, batch.watermark_before, str(first_offset))
        keep_from = start_checkpoint(ckpts, batch.watermark, self.settings.dedup_horizon_ms)
        for offset, _ in ckpts[:keep_from]:
            batch.ops.zrem(key, str(offset))
        del ckpts[:keep_from]

    def _record_counts(
        self, batch: PartitionBatch, counts: Counter[str], dead: list[DeadLetter]
    ) -> None:
        key = keys.counts(self.state.app_id, batch.partition)
        for name, n in counts.items():
            if n:
                batch.ops.hincrby(key, name, n)
        stream = keys.dead_letters(self.state.app_id, batch.partition)
        for d in dead[:100]:
            batch.ops.xadd_capped(stream, DEAD_LETTER_STREAM_LEN, "dl", codec.dumps({
                "reason": d.reason.value, "detail": d.detail,
                "source": f"{d.topic}/{d.partition}/{d.offset}/{d.index}",
                "original": d.original[:2048].decode("utf-8", "replace"),
            }))

    def _observe(self, batch: PartitionBatch, counts: Counter[str], now_ms: float) -> None:
        self._processed.inc(counts["processed"])
        self._dead.inc(counts["dead"])
        self._dups.inc(counts["duplicate"])
        for name, n in counts.items():
            if name.startswith("dead:"):
                self.metrics.dead_letters.labels(name[5:]).inc(n)
        per = Counter((ev.type, ev.channel or "other") for ev in batch.events)
        for (etype, channel), n in per.items():
            self._by_type[(etype, bounded(channel, KNOWN_CHANNELS))].inc(n)
        observe = self.metrics.lag_seconds.observe
        for ev in batch.events[::LAG_SAMPLE_EVERY]:
            observe(max(0.0, (now_ms - ev.ts) / 1000))

