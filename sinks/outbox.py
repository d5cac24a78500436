"""Transactional outbox relay: pushes decided in a fenced call go out to Kafka and a webhook.

The agent writes each push into ``{app}:{pN}:outbox`` (hash push_id -> JSON) in the same
atomic call as the decision. Each pass first claims the final budgeted pushes of every
partition in event-time order (sinks/budget_order.py); then, per partition and push: a push
with a coupon of a budgeted rule waits for its claim's answer (refused ones count
``budget_exhausted``), the others go at once; granted pushes are published to the pushes topic
and moved from the outbox to the partition's webhook queue in one pipeline. The webhook
queue is attempted when due, with jittered backoff (and ``Retry-After``), until the receiver
accepts a push or the retry horizon passes (then it is dead-lettered with the reason). A crash
anywhere repeats a step (receivers dedupe by push_id, the Idempotency-Key) but never loses a
push; a graceful stop (``close``) records the outcome of every request in flight, so nothing
the receiver accepted is sent again. A per-partition lease keeps two workers from relaying the
same partition at once; partitions are relayed concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.errors import ProduceError
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics, RelayMetrics
from shopstream.sinks.budget_order import BudgetClaimer, FinalBefore, budget_of
from shopstream.sinks.coupons.keys import CouponKeys, coupon_keys
from shopstream.sinks.locks import lease
from shopstream.sinks.redis_state import Redis
from shopstream.sinks.webhook import WebhookSender, parse_webhook

log = logging.getLogger(__name__)

_RESULTS_LUA = (Path(__file__).parent / "push_results.lua").read_text()
#: A relay holding a partition's lease longer than this is presumed dead (one pass makes
#: one webhook attempt per due push, each bounded by the webhook timeout).
LOCK_MS = 20_000
#: Least time between the starts of two relay passes. Batches schedule their partitions after
#: every batch (every few tens of ms at the live rate); a pass costs about five round trips per
#: partition whatever it carries, so the pushes of the batches meanwhile go in the next pass.
PASS_EVERY_S = 0.25
#: Grace of a graceful stop: for this long relays go on and webhook retries falling due are
#: made; then no request starts, and those in flight finish (each within the webhook timeout).
CLOSE_WAIT_S = 5.0


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("outbox relay stopped: %r; the next tick retries", task.exception())


class OutboxRelay:
    def __init__(
        self, redis: Redis, settings: Settings, budgets: Mapping[str, int | None],
        metrics: Metrics | RelayMetrics,
        webhook: WebhookSender | None = None, final_before: FinalBefore | None = None,
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
        #: Claims budgets across partitions; ``final_before`` is needed when a rule has one.
        self.claimer = BudgetClaimer(redis, self.app, self.partitions, budgets, final_before)
        self._results = redis.register_script(_RESULTS_LUA)
        #: Wall clock of retry schedules (epoch ms); tests move it to cross long outages.
        self.clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
        #: Random source of the retry jitter; tests pin it.
        self.rand: Callable[[], float] = random.random
        self._pending: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def schedule(self, partitions: Iterable[int]) -> None:
        """Relay these partitions soon, off the batch loop's path (one relay task at a time,
        so the worker never contends with itself for a partition's lock; passes at most every
        PASS_EVERY_S); none once closing."""
        if self._closing:
            return
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
            started = time.monotonic()
            await self.relay(partitions)
            if not self._closing:
                await asyncio.sleep(max(0.0, started + PASS_EVERY_S - time.monotonic()))

    async def relay(self, partitions: Iterable[int]) -> int:
        """Deliver what is due in these partitions' outboxes, partitions concurrently (a slow
        partition delays no other), after a claim pass over every partition's budgeted pushes;
        returns pushes finished."""
        try:
            await self.claimer.claim()
        except RedisError as exc:
            # Budgeted pushes wait for the next pass; the others are relayed now.
            log.warning("budget claim pass failed: %s", exc)
        done = await asyncio.gather(*(self._relay_locked(p) for p in partitions))
        return sum(done)

    async def _relay_locked(self, p: int) -> int:
        async with lease(self.redis, coupon_keys(self.app, p).outbox_lock, LOCK_MS) as held:
            if not held:
                return 0
            try:
                return await self._relay_partition(p) + await self._deliver_due(p)
            except (ProduceError, RedisError) as exc:
                # Everything stays where it is; the next batch or tick tries again.
                log.warning("outbox relay of partition %d failed: %s", p, exc)
                return 0

    async def _relay_partition(self, p: int) -> int:
        """New pushes: those of a budgeted coupon once claimed, published to Kafka, then
        handed to the webhook queue; budgeted ones not claimed yet stay in the outbox."""
        k = coupon_keys(self.app, p)
        raw = await self.redis.hgetall(k.outbox)
        if not raw:
            return 0
        everything = [codec.loads(v) for v in raw.values()]
        answers = await self.claimer.answers(everything)
        pushes = sorted((x for x in everything
                         if x["push_id"] in answers or budget_of(x, self.budgets) is None),
                        key=lambda x: (x["ts"], x["push_id"]))
        if not pushes:
            return 0
        results = {pid: "budget_exhausted" for pid, ok in answers.items() if not ok}
        granted = [x for x in pushes if x["push_id"] not in results]
        await self._publish(granted)
        now = self.clock_ms()
        queued = {x["push_id"]: codec.dumps({"push": x, "attempts": 0, "first_ms": now,
                                             "next_ms": now}) for x in granted}
        if self.webhook is None:
            results.update((x["push_id"], "sent") for x in granted)
            queued = {}
        await self._record(k, results)
        async with self.redis.pipeline(transaction=False) as pipe:
            if queued:
                pipe.hset(k.push_webhook, items=[x for kv in queued.items() for x in kv])
            pipe.hdel(k.outbox, *(x["push_id"] for x in pushes))
            await pipe.execute()
        self._count(results, {x["push_id"]: x["rule"] for x in pushes})
        return len(results)

    async def _deliver_due(self, p: int) -> int:
        """Webhook attempts for the pushes whose next attempt is due; returns those finished."""
        if self.webhook is None:
            return 0
        hook, cfg = self.webhook, self.webhook.cfg
        k = coupon_keys(self.app, p)
        now = self.clock_ms()
        waiting = [codec.loads(v) for v in (await self.redis.hgetall(k.push_webhook)).values()]
        due = [w for w in waiting if w["next_ms"] <= now]
        if not due:
            return 0
        answers = await asyncio.gather(
            *(hook.deliver(w["push"]["push_id"], codec.dumps_sorted(w["push"])) for w in due))
        results: dict[str, str] = {}
        dead: dict[str, str] = {}
        again: dict[str, bytes] = {}
        for w, answer in zip(due, answers, strict=True):
            pid = w["push"]["push_id"]
            attempts = w["attempts"] + 1
            expired = (now - w["first_ms"] >= cfg.retry_horizon_s * 1000
                       or (cfg.max_attempts is not None and attempts >= cfg.max_attempts))
            if answer.outcome == "skipped":
                continue  # not attempted: left as it is for the next relay
            if answer.outcome == "sent":
                results[pid] = "sent"
            elif answer.outcome == "failed" or expired:
                results[pid] = "failed"
                dead[pid] = f"{answer.reason} after {attempts} attempts"
            else:
                delay_ms = int(cfg.delay_s(attempts, answer.retry_after_s, self.rand) * 1000)
                again[pid] = codec.dumps({**w, "attempts": attempts, "next_ms": now + delay_ms})
        await self._record(k, results)
        async with self.redis.pipeline(transaction=False) as pipe:
            if dead:
                pipe.hset(k.push_dead, items=[x for kv in dead.items() for x in kv])
            if results:
                pipe.hdel(k.push_webhook, *results)
            if again:
                pipe.hset(k.push_webhook, items=[x for kv in again.items() for x in kv])
            await pipe.execute()
        self._count(results, {w["push"]["push_id"]: w["push"]["rule"] for w in due})
        return len(results)

    async def _record(self, k: CouponKeys, results: Mapping[str, str]) -> None:
        """Final results into the business day's hash, turning the day over first: results
        are kept for today and, ``push_results_keep_s`` long, yesterday, not for ever."""
        if not results:
            return
        day = datetime.fromtimestamp(self.clock_ms() / 1000, self._settings.zone).date()
        await self._results(
            keys=[k.push_results, k.push_results_prev, k.push_results_day],
            args=[day.isoformat(), self._settings.push_results_keep_s,
                  *(x for kv in results.items() for x in kv)])

    def _count(self, results: Mapping[str, str], rules: Mapping[str, str]) -> None:
        counted = Counter((rules[pid], result) for pid, result in results.items())
        for (rule, result), n in counted.items():
            self.metrics.pushes.labels(rule, result).inc(n)

    async def waiting(self) -> tuple[int, int | None]:
        """Pushes waiting for the webhook, and the soonest next attempt (epoch ms)."""
        rows = [codec.loads(v) for p in range(self.partitions)
                for v in (await self.redis.hgetall(coupon_keys(self.app, p).push_webhook))
                .values()]
        return len(rows), min((w["next_ms"] for w in rows), default=None)

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
        """Graceful stop: no new relay is scheduled; for CLOSE_WAIT_S the scheduled relays go on
        and webhook retries falling due are made; then the sender starts no request, those in
        flight finish and every outcome is recorded before the session is released. Pushes not
        attempted stay queued for whoever relays the partition next."""
        self._closing = True
        drain = asyncio.ensure_future(self._drain_until(time.monotonic() + CLOSE_WAIT_S))
        done, _ = await asyncio.wait({drain}, timeout=CLOSE_WAIT_S)
        if not done and self.webhook is not None:
            self.webhook.hold()
        await drain
        if self.webhook is not None:
            await self.webhook.close()

    async def _drain_until(self, until: float) -> None:
        if self._task is not None:
            await asyncio.wait({self._task})  # its failure is logged by _log_failure
        while self.webhook is not None and not self.webhook.holding:
            await self.relay(range(self.partitions))
            left, soonest = await self.waiting()
            if not left or soonest is None:
                break
            wait_s = max(0.0, (soonest - self.clock_ms()) / 1000)
            if time.monotonic() + wait_s >= until:
                break
            await asyncio.sleep(wait_s)


def outbox_relay(settings: Settings, redis: Redis, metrics: Metrics | RelayMetrics,
                 budgets: Mapping[str, int | None], final_before: FinalBefore) -> OutboxRelay:
    """The relay of the push outboxes: the rules' ``budgets``, claimed once ``final_before``
    passes a push, the ``[webhook]`` sender."""
    hook = parse_webhook(settings.sections)
    return OutboxRelay(redis, settings, budgets, metrics,
                       WebhookSender(hook) if hook is not None else None, final_before)
