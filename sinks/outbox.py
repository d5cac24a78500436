"""Transactional outbox relay: pushes decided in a fenced call go out to Kafka and a webhook.

The agent writes each push into ``{app}:{pN}:outbox`` (hash push_id -> JSON) in the same
atomic call as the decision. This relay then, per push: claims a coupon from the campaign
budget (idempotent by push_id, sinks/budget_claim.lua), publishes granted pushes to the
pushes topic, posts them to the webhook if one is configured, and only then removes them
from the outbox. A crash anywhere repeats a push (receivers dedupe by push_id) but never loses
one. A per-partition lock keeps two workers from relaying the same outbox at once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.errors import ProduceError
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.coupon_keys import budget_keys, coupon_keys
from shopstream.sinks.redis_state import Redis
from shopstream.sinks.webhook import WebhookSender

log = logging.getLogger(__name__)

_CLAIM_LUA = (Path(__file__).parent / "budget_claim.lua").read_text()
_RELEASE_LUA = (Path(__file__).parent / "release_lock.lua").read_text()
#: A relay holding a lock longer than this is presumed dead; the default webhook retries
#: (5 attempts of 2 s, 3 s of backoff) fit inside.
LOCK_MS = 20_000


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("outbox relay stopped: %r; the next tick retries", task.exception())


class OutboxRelay:
    def __init__(
        self, redis: Redis, settings: Settings, budgets: Mapping[str, int | None], metrics: Metrics,
        webhook: WebhookSender | None = None,
    ) -> None:
        self.redis = redis
        self.app = settings.app_id
        self.partitions = settings.partitions
        self.topic = settings.pushes_topic
        #: Campaign budget per rule (coupons), None for unlimited.
        self.budgets = budgets
        self.metrics = metrics
        self.webhook = webhook
        self._settings = settings
        self._producer: RecordProducer | None = None
        self._claim = redis.register_script(_CLAIM_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._pending: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def schedule(self, partitions: Iterable[int]) -> None:
        """Relay these partitions soon, off the batch loop's path (one relay task at a time,
        so the worker never contends with itself for a partition's lock)."""
        self._pending.update(partitions)
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._drain())
            self._task.add_done_callback(_log_failure)

    def schedule_all(self) -> None:
        self.schedule(range(self.partitions))

    async def _drain(self) -> None:
        while self._pending:
            partitions = sorted(self._pending)
            self._pending.clear()
            await self.relay(partitions)

    async def relay(self, partitions: Iterable[int]) -> int:
        """Deliver every push now in these partitions' outboxes; returns pushes handled."""
        done = 0
        for p in partitions:
            lock = coupon_keys(self.app, p).outbox_lock
            token = secrets.token_hex(8)
            if not await self.redis.set(lock, token, nx=True, px=LOCK_MS):
                continue
            try:
                done += await self._relay_partition(p)
            except (ProduceError, RedisError) as exc:
                # The pushes stay in the outbox; the next batch or tick tries again.
                log.warning("outbox relay of partition %d failed: %s", p, exc)
            finally:
                await self._release(keys=[lock], args=[token])
        return done

    async def _relay_partition(self, p: int) -> int:
        raw = await self.redis.hgetall(coupon_keys(self.app, p).outbox)
        if not raw:
            return 0
        pushes = sorted((codec.loads(v) for v in raw.values()),
                        key=lambda x: (x["ts"], x["push_id"]))
        results: dict[str, str] = {}
        claims: dict[tuple[str, int], list[str]] = {}
        for push in pushes:
            budget = self.budgets.get(push["rule"])
            if push["coupon_fen"] > 0 and budget is not None:
                claims.setdefault((push["rule"], budget), []).append(push["push_id"])
        for (rule, budget), pids in claims.items():
            answers = await self._claim(keys=budget_keys(self.app, rule), args=[budget, *pids])
            results.update((pid, "budget_exhausted")
                           for pid, ok in zip(pids, answers, strict=True) if not int(ok))
        granted = [x for x in pushes if x["push_id"] not in results]
        await self._publish(granted)
        dead: dict[str, str] = {}
        if self.webhook is not None:
            hook = self.webhook
            reasons = await asyncio.gather(
                *(hook.deliver(x["push_id"], codec.dumps_sorted(x)) for x in granted))
            dead = {x["push_id"]: r for x, r in zip(granted, reasons, strict=True) if r is not None}
        for push in granted:
            results[push["push_id"]] = "failed" if push["push_id"] in dead else "sent"
        k = coupon_keys(self.app, p)
        async with self.redis.pipeline(transaction=False) as pipe:
            if dead:
                pipe.hset(k.push_dead, items=[x for kv in dead.items() for x in kv])
            pipe.hset(k.push_results, items=[x for kv in results.items() for x in kv])
            pipe.hdel(k.outbox, *results)
            await pipe.execute()
        by_rule = {x["push_id"]: x["rule"] for x in pushes}
        counted = Counter((by_rule[pid], result) for pid, result in results.items())
        for (rule, result), n in counted.items():
            self.metrics.pushes.labels(rule, result).inc(n)
        return len(results)

    async def _publish(self, pushes: list[dict[str, Any]]) -> None:
        """To the pushes topic, keyed by user; flushed before the outbox entries are removed."""
        if not pushes:
            return
        if self._producer is None:
            self._producer = RecordProducer(self._settings)
        for push in pushes:
            self._producer.produce(
                self.topic, codec.dumps(push), key=push["user_id"].encode(),
                headers=[("push_id", push["push_id"].encode())],
            )
        await self._producer.flush_async()

    async def close(self) -> None:
        """Finish the scheduled relays, then release the webhook session."""
        if self._task is not None:
            await self._task
        if self.webhook is not None:
            await self.webhook.close()
