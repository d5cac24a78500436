"""bench/step_meter.py: CPU goes to the innermost stage running, concurrent coroutines and the
tasks they create each get their own, and Redis round trips are counted per stage."""

import asyncio
import time

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from bench.step_meter import WAIT, Meter, Stat


def spin(seconds: float) -> None:
    """Use this much CPU of the thread."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class Work:
    def outer(self) -> None:
        spin(0.02)
        self.inner()

    def inner(self) -> None:
        spin(0.04)

    async def a(self) -> None:
        spin(0.01)
        await asyncio.sleep(0.1)
        await asyncio.gather(self.child())
        spin(0.01)

    async def child(self) -> None:
        spin(0.02)

    async def b(self) -> None:
        spin(0.01)
        await asyncio.sleep(0.1)
        spin(0.01)


def test_span_counts_overlapping_calls_once():
    assert Stat(spans=[(1.0, 3.0), (0.0, 2.0), (5.0, 6.0), (5.5, 5.75)]).span() == 4.0


async def test_cpu_goes_to_the_innermost_stage_only():
    work, meter = Work(), Meter()
    meter.wrap(work, "outer", "outer")
    meter.wrap(work, "inner", "inner")
    meter.start()
    work.outer()
    meter.stop()
    outer, inner = meter.stats["outer"], meter.stats["inner"]
    assert (outer.calls, inner.calls) == (1, 1)
    assert inner.cpu >= 0.04
    assert 0.02 <= outer.cpu < 0.04  # inner's 0.04 is not counted again
    assert work.outer.__func__ is Work.outer  # unwrapped once stopped


async def test_concurrent_coroutines_and_the_tasks_they_create_get_their_own_cpu():
    work, meter = Work(), Meter()
    meter.wrap(work, "a", "a")
    meter.wrap(work, "b", "b")
    meter.start()
    await asyncio.gather(work.a(), work.b())
    meter.stop()
    a, b, wait = meter.stats["a"], meter.stats["b"], meter.stats[WAIT]
    assert a.cpu >= 0.04  # its own 0.02 and its child task's 0.02
    assert 0.02 <= b.cpu < 0.04
    assert a.span() >= 0.1 and b.span() >= 0.1
    assert wait.wall >= 0.05 and wait.cpu < 0.02  # both asleep at once: waiting, no CPU


async def test_round_trips_are_counted_per_stage_and_sends_restored(infra):
    redis = Redis.from_url(infra.redis_url)
    original = AbstractConnection.send_packed_command

    class Calls:
        async def one(self) -> None:
            for i in range(3):
                await redis.get(f"k{i}")
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(5):
                    pipe.get(f"k{i}")
                await pipe.execute()

        async def two(self) -> None:
            await redis.ping()

    calls, meter = Calls(), Meter()
    await redis.ping()  # connected before metering
    meter.wrap(calls, "one", "one")
    meter.wrap(calls, "two", "two")
    meter.start()
    await calls.one()
    await calls.two()
    meter.stop()
    await redis.aclose()
    assert (meter.stats["one"].trips, meter.stats["two"].trips) == (4, 1)
    assert AbstractConnection.send_packed_command is original
