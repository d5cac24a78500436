"""Riding out faults in the worker: a batch is tried again until it lands, never skipped.

The batch loop holds the records of a batch until Redis has them, so any fault only delays
them: while this module retries, the Faust agent takes no new records (its bounded buffer
fills, the fetcher pauses) and memory stays bounded. Errors decide by kind:
- Redis unreachable or timing out: an outage. Logged once when it starts and once when it
  ends, ``shopstream_redis_up`` 0 meanwhile, jittered backoff; past
  ``redis_outage_give_up_s`` the worker gives up (``RedisUnavailable``) so a supervisor can
  restart it.
- a fence moved by another worker: tried again at once with the fence re-read.
- other errors marked ``retriable`` (produce, rebuild): backoff.
- Redis refusing the batch (the apply script checks before it writes, so nothing of it
  landed): backoff and a loud log each time; the batch is kept until an operator fixes the
  cause, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shopstream.core.backoff import full_jitter
from shopstream.core.errors import ShopstreamError
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.errors import StaleFenceError
from shopstream.streams.errors import RedisUnavailable

log = logging.getLogger(__name__)

#: Label values of ``shopstream_batch_retries_total``.
RETRY_REASONS = ("redis_down", "stale_fence", "retriable", "refused")
#: Backoff between tries: doubles from the first delay up to the cap, with jitter.
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)


class RedisHealth:
    """Whether Redis answers, with one log line per change and a give-up deadline."""

    def __init__(self, metrics: Metrics, give_up_s: float) -> None:
        self.metrics = metrics
        self.give_up_s = give_up_s
        self.down_since: float | None = None
        metrics.redis_up.set(1)

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            self.metrics.redis_up.set(0)
            log.warning("redis unreachable, pausing consumption: %s", exc)
        elif now - self.down_since > self.give_up_s:
            raise RedisUnavailable(
                f"redis unreachable for {now - self.down_since:.0f}s (give up after "
                f"{self.give_up_s:.0f}s): {exc}") from exc

    def ok(self) -> None:
        if self.down_since is not None:
            log.warning("redis back after %.1fs, consuming again",
                        time.monotonic() - self.down_since)
            self.down_since = None
            self.metrics.redis_up.set(1)


def backoff(attempt: int) -> float:
    """Full-jitter exponential backoff (seconds) for the given attempt (0-based)."""
    return full_jitter(attempt, FIRST_DELAY_S, MAX_DELAY_S)


async def until_applied(process: Callable[[], Awaitable[int]], health: RedisHealth,
                        metrics: Metrics) -> int:
    """Run ``process`` until it succeeds; returns its result. Never gives up on a batch,
    except by raising RedisUnavailable after a long outage (the records are then redelivered
    to whoever owns the partition next, from the fence)."""
    attempt = 0
    while True:
        try:
            result = await process()
        except StaleFenceError:
            metrics.batch_retries.labels("stale_fence").inc()
            continue
        except REDIS_DOWN as exc:
            metrics.batch_retries.labels("redis_down").inc()
            health.failed(exc)
        except ResponseError as exc:
            metrics.batch_retries.labels("refused").inc()
            log.error("redis refused a batch (nothing of it was written); kept and retried: %s",
                      exc)
        except ShopstreamError as exc:
            if not exc.retriable:
                raise
            metrics.batch_retries.labels("retriable").inc()
            log.warning("batch failed, retrying: %s", exc)
        else:
            health.ok()
            return result
        await asyncio.sleep(backoff(attempt))
        attempt += 1


async def guarded(task: str, run: Callable[[], Awaitable[None]], metrics: Metrics) -> None:
    """Run one round of a timer or background task; its errors are counted and logged, never
    raised (the next round tries again), so none reaches Faust's crash handler."""
    try:
        await run()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a timer must survive anything; counted and logged
        metrics.task_errors.labels(task).inc()
        log.warning("%s failed, will run again: %s", task, exc)
