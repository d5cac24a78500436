"""Group buys: one agent, driven by event time (definitions: docs/group-buys.md).

A join is routed by its group id, so a group lives on one partition and its joins arrive in
order there. A batch merges its joins with the expiry timers due by the partition watermark
(``rules.decide``, the coupons' clock), and writes the groups, timers, per-SKU counts, member
pushes (into the partition's push outbox, relayed with the coupons' pushes) and the
``group_completed`` documents (an outbox for the customer-events topic) in the fenced call.
Refused joins are handed to the batch loop, which dead-letters them; nothing is written for them.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

from shopstream.agents.base import NoHooks, PartitionBatch, Refusal, Takes
from shopstream.agents.group_buys.rules import Decided, GroupBuyConfig, decide, parse_config
from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.monitoring.metrics import Metrics
from shopstream.schemas.events import GroupBuyJoin
from shopstream.sinks.alert_outbox import AlertOutbox
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.group_buys import keys as gk
from shopstream.sinks.outbox import OutboxRelay
from shopstream.sinks.redis_state import Redis

NAME = "group_buys"


class Loaded(NamedTuple):
    """What ``load`` read for a partition's batch."""

    #: Expiry timers due by the batch's watermark: (group_id, deadline).
    due: list[tuple[str, int]]
    #: group_id -> stored state (None: unknown), for the groups joined or due.
    groups: dict[str, dict[str, Any] | None]


class GroupBuys(NoHooks):
    """Groups, their timers and counts; pushes to the push outbox, completions to an outbox
    for the customer-events topic."""

    name = NAME
    #: Late joins too: the group's state, not the clock, decides them.
    takes = Takes(frozenset({"group_buy_join"}))

    def __init__(self, settings: Settings, redis: Redis, metrics: Metrics | None = None,
                 relay: OutboxRelay | None = None, close_relay: bool = True) -> None:
        self.app = settings.app_id
        self.redis = redis
        self.cfg: GroupBuyConfig = parse_config(settings.sections)
        self.metrics = metrics or Metrics()
        self.partitions = settings.partitions
        #: One sender (one producer) for every partition's completions outbox, each sent by
        #: its own key: the key carries the partition's tag, as the fenced call needs.
        self.completions = AlertOutbox(redis, settings, gk.unsent_key(self.app, 0),
                                       topic=settings.customer_events_topic)
        #: Relays the push outboxes inline (None: another agent's relay or a relay process);
        #: ``close_relay`` when no other pushing capability drives it.
        self.relay = relay
        self.close_relay = close_relay

    async def load(self, batches: list[PartitionBatch]) -> list[Loaded]:
        """Two pipelined reads: due timers, then the groups joined or due."""
        a = self.app
        async with self.redis.pipeline(transaction=False) as pipe:
            for b in batches:
                pipe.zrangebyscore(gk.timers_key(a, b.partition), "-inf", b.watermark,
                                   withscores=True)
            rows = await pipe.execute()
        dues = [[(m.decode(), int(s)) for m, s in row] for row in rows]
        names = [sorted({g for g, _ in due}
                        | {ev.group_id for ev in cast(list[GroupBuyJoin],
                                                      b.feeds[NAME].events)})
                 for b, due in zip(batches, dues, strict=True)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for b, gids in zip(batches, names, strict=True):
                if gids:
                    pipe.hmget(gk.groups_key(a, b.partition), gids)
            got = iter(await pipe.execute())
        return [Loaded(due, dict(zip(gids, (None if raw is None else codec.loads(raw)
                                            for raw in next(got)), strict=True))
                       if gids else {})
                for due, gids in zip(dues, names, strict=True)]

    def apply(self, batch: PartitionBatch, loaded: Loaded) -> Decided:
        events = cast(list[GroupBuyJoin], batch.feeds[NAME].events)
        out = decide(loaded.groups, loaded.due, events, batch.watermark, self.cfg)
        a, p, ops = self.app, batch.partition, batch.ops
        batch.refused += [Refusal(ev, reason, detail) for ev, reason, detail in out.refused]
        for g, group in out.groups.items():
            ops.hset(gk.groups_key(a, p), g, codec.dumps(group))
        for g, at in out.timers.items():
            if at is None:
                ops.zrem(gk.timers_key(a, p), g)
            else:
                ops.zadd(gk.timers_key(a, p), at, g)
        for (outcome, sku), n in sorted(out.outcomes.items()):
            ops.hincrby(gk.counts_key(a, p), f"{outcome}|{sku}", n)
        outbox = coupon_keys(a, p).outbox
        for push in out.pushes:
            ops.hset(outbox, push["push_id"], codec.dumps(push))
        for doc in out.completed:
            ops.hset(gk.unsent_key(a, p), doc["event_id"], codec.dumps(doc))
        return out

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[Decided]) -> None:
        """Count outcomes, send the completions, have the pushes relayed (inline only)."""
        m = self.metrics
        for out in outputs:
            for (outcome, sku), n in out.outcomes.items():
                m.group_buys.labels(m.group_sku_label(sku), outcome).inc(n)
        for b, out in zip(batches, outputs, strict=True):
            if out.completed:
                await self.completions.send(gk.unsent_key(self.app, b.partition))
        if self.relay is not None:
            self.relay.schedule(b.partition for b, out in zip(batches, outputs, strict=True)
                                if out.pushes)

    async def tick(self, now_ms: int) -> None:
        """Wall clock: send what a crash left in any completions outbox, relay the pushes."""
        for p in range(self.partitions):
            await self.completions.send(gk.unsent_key(self.app, p))
        if self.relay is not None and self.close_relay:
            self.relay.schedule_all()

    async def close(self) -> None:
        if self.relay is not None and self.close_relay:
            await self.relay.close()
