"""The customer loop's capability: tiers, points, lifecycle nudges, service tasks and
referrals, in event time (definitions: docs/customers.md, docs/nudges.md).

State per partition (sinks/customers/keys.py) is written in the batch's fenced call by the pure
batch step (timeline.py); pushes go into the partition's push outbox and leave through the
push relay (budgets per rule), ``tier_changed`` documents and service alerts through outboxes
sent once the call landed, off the batch loop's path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from redis.exceptions import RedisError

from shopstream.agents.base import NoHooks, PartitionBatch, Takes
from shopstream.agents.customers.config import CustomersConfig, parse_config
from shopstream.agents.customers.timeline import (
    NAME,
    Decided,
    Loaded,
    for_referrer,
    run_batch,
    user_of,
)
from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.errors import ProduceError
from shopstream.monitoring.metrics import Metrics
from shopstream.schemas.events import USER_TYPES
from shopstream.sinks.alert_outbox import AlertOutbox
from shopstream.sinks.customers import users as stored_users
from shopstream.sinks.customers.keys import customer_keys
from shopstream.sinks.outbox import OutboxRelay
from shopstream.sinks.redis_state import Redis

log = logging.getLogger(__name__)

TYPES = USER_TYPES | {"referral"}


class CustomersAgent(NoHooks):
    """Tiers, points, nudges, service tasks and referrals; pushes to the push outbox."""

    name = NAME
    #: Every event about a user and referrals, late ones too (timers run in event time).
    takes = Takes(TYPES)

    def __init__(self, settings: Settings, redis: Redis, metrics: Metrics | None = None,
                 relay: OutboxRelay | None = None, close_relay: bool = True) -> None:
        self.app = settings.app_id
        self.redis = redis
        self.cfg: CustomersConfig = parse_config(settings.sections, settings.zone)
        self.metrics = metrics or Metrics()
        #: Relays the push outboxes inline (None: another agent's relay or a relay process).
        self.relay = relay
        self.close_relay = close_relay
        self.tier_events = AlertOutbox(redis, settings, customer_keys(self.app, 0).events,
                                       topic=settings.customer_events_topic, key_field="user_id")
        self.alerts = AlertOutbox(redis, settings, customer_keys(self.app, 0).alerts)
        #: Partitions this worker applied batches of: their outboxes are retried on ticks.
        self.seen: set[int] = set()
        #: Partitions whose documents wait to be sent, by one task off the batch loop's path.
        self._unsent: set[int] = set()
        self._sending: asyncio.Task[None] | None = None

    async def load(self, batches: list[PartitionBatch]) -> list[Loaded]:
        """Due timers, then deferred pushes and tasks, then users: three round trips."""
        a = self.app
        async with self.redis.pipeline(transaction=False) as pipe:
            for b in batches:
                pipe.zrangebyscore(customer_keys(a, b.partition).timers, "-inf", b.watermark,
                                   withscores=True)
            rows = await pipe.execute()
        plans = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for b, row in zip(batches, rows, strict=True):
                k = customer_keys(a, b.partition)
                due = [(m.decode(), int(s)) for m, s in row]
                pids = [m[2:] for m, _ in due if m[0] == "d"]
                tids = sorted({codec.loads(m[2:])[1] for m, _ in due if m[0] == "e"}
                              | {ev.task_id for ev in b.feeds[NAME].events
                                 if ev.type == "task_ack"})
                if pids:
                    pipe.hmget(k.deferred, pids)
                if tids:
                    pipe.hmget(k.tasks, tids)
                plans.append((due, pids, tids))
            got = iter(await pipe.execute())
        prepared = []
        for b, (due, pids, tids) in zip(batches, plans, strict=True):
            deferred = {pid: codec.loads(raw) for pid, raw in
                        zip(pids, next(got) if pids else [], strict=True) if raw is not None}
            tasks = {tid: codec.loads(raw) for tid, raw in
                     zip(tids, next(got) if tids else [], strict=True) if raw is not None}
            names = {user_of(ev) for ev in b.feeds[NAME].events}
            names.update(_timer_user(m) for m, _ in due if m[0] != "d")
            names.update(c["user_id"] for c in deferred.values() if not for_referrer(c))
            prepared.append((due, deferred, tasks, sorted(names)))
        raws = await stored_users.load(self.redis, a, [
            (b.partition, names) for b, (*_, names) in zip(batches, prepared, strict=True)])
        return [Loaded(due, deferred, tasks, dict(zip(names, r, strict=True)))
                for (due, deferred, tasks, names), r in zip(prepared, raws, strict=True)]

    def apply(self, batch: PartitionBatch, loaded: Loaded) -> Decided:
        return run_batch(self.app, self.cfg, batch, loaded)

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[Decided]) -> None:
        """Count decisions and tier changes; send the documents written; have the push
        outboxes relayed."""
        for out in outputs:
            for (rule, result), n in out.decisions.items():
                self.metrics.pushes.labels(rule, result).inc(n)
            for tier, n in out.tier_changes.items():
                self.metrics.customer_tier_changes.labels(tier).inc(n)
        self.seen.update(b.partition for b in batches)
        self._schedule(b.partition for b, out in zip(batches, outputs, strict=True) if out.sent)
        if self.relay is not None:
            self.relay.schedule(b.partition for b, out in zip(batches, outputs, strict=True)
                                if out.pushed)

    async def tick(self, now_ms: int) -> None:
        """Wall clock: retry the documents and pushes left in any outbox (timers run on event
        time)."""
        self._schedule(self.seen)
        if self.relay is not None and self.close_relay:
            self.relay.schedule_all()

    def _schedule(self, partitions: Iterable[int]) -> None:
        """Send these partitions' outboxes soon, one sending task at a time, so the batch loop
        does not wait for Kafka's acknowledgements."""
        self._unsent.update(partitions)
        if self._unsent and (self._sending is None or self._sending.done()):
            self._sending = asyncio.create_task(self._send())

    async def _send(self) -> None:
        """The tier_changed documents and service alerts to Kafka; left in their outbox for
        the next try when the broker or Redis fails."""
        while self._unsent:
            partitions = sorted(self._unsent)
            self._unsent.clear()
            try:
                for p in partitions:
                    k = customer_keys(self.app, p)
                    await self.tier_events.send(k.events)
                    await self.alerts.send(k.alerts)
            except (ProduceError, RedisError) as exc:
                log.warning("customer outboxes not sent: %s; the next tick retries", exc)
                return

    async def close(self) -> None:
        if self._sending is not None:
            await self._sending
        if self.relay is not None and self.close_relay:
            await self.relay.close()


def _timer_user(member: str) -> str:
    if member[0] in "xz":
        return member[2:]
    return str(codec.loads(member[2:])[0])
