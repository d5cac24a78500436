"""Where an asyncio program's time goes, stage by stage, measured from outside its code.

``Meter.wrap`` replaces a function or coroutine function by a metered one. CPU of the thread
(``time.thread_time``) and wall go to the innermost stage running; coroutines are metered step
by step, tasks take the stage that created them, so concurrent calls each get their own CPU;
the calls of an async stage also give its span (call to end). Round trips: Redis commands or
pipelines sent, charged to the stage sending. While no stage runs, the program waits; the
time its thread waited for a core (``/proc``'s run queue delay) tells that apart from I/O.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio.connection import AbstractConnection

WAIT = "no stage running (event loop, waiting)"


def run_queue_ns() -> int:
    """Nanoseconds this thread was runnable but waited for a core (other processes ran)."""
    return int(Path("/proc/thread-self/schedstat").read_text().split()[1])


@dataclass
class Stat:
    calls: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    trips: int = 0
    #: (start, end) of each call of an async stage.
    spans: list[tuple[float, float]] = field(default_factory=list)

    def span(self) -> float:
        """Wall covered by the calls (overlapping calls counted once)."""
        total, reach = 0.0, float("-inf")
        for start, end in sorted(self.spans):
            total, reach = total + max(0.0, end - max(start, reach)), max(reach, end)
        return total


class Meter:
    """Charges CPU and wall to the innermost stage running, at every switch."""

    def __init__(self) -> None:
        self.stats: dict[str, Stat] = defaultdict(Stat)
        self.stack: list[str] = []
        self.running = False
        self.cpu0, self.wall0 = 0.0, 0.0
        self._send = AbstractConnection.send_packed_command
        #: What was wrapped, to put back at the end.
        self._wrapped: list[tuple[object, str, Any]] = []
        #: Nanoseconds this thread waited for a core (run queue) while metered.
        self.queued_ns = 0

    def start(self) -> None:
        """Meter from now on, in the running loop (whose task factory it takes)."""
        asyncio.get_running_loop().set_task_factory(self._task)
        send = self._send = AbstractConnection.send_packed_command

        async def counted(conn: AbstractConnection, *args: Any, **kwargs: Any) -> None:
            self.stats[self.top()].trips += 1
            await send(conn, *args, **kwargs)

        setattr(AbstractConnection, "send_packed_command", counted)  # noqa: B010
        self.running = True
        self.queued_ns = -run_queue_ns()
        self.cpu0, self.wall0 = time.thread_time(), time.perf_counter()

    def top(self) -> str:
        return self.stack[-1] if self.stack else WAIT

    def charge(self) -> None:
        """Charge the time since the last charge to the stage running."""
        if self.running:
            cpu, wall = time.thread_time(), time.perf_counter()
            stat = self.stats[self.top()]
            stat.cpu, stat.wall = stat.cpu + cpu - self.cpu0, stat.wall + wall - self.wall0
            self.cpu0, self.wall0 = cpu, wall

    def switch(self, enter: str = "") -> None:
        """Enter a stage, or leave the one running."""
        self.charge()
        if enter:
            self.stack.append(enter)
        else:
            self.stack.pop()

    def stop(self) -> None:
        """Charge up to now, nothing after (background tasks may still run); unwrap all."""
        self.charge()
        self.queued_ns += run_queue_ns()
        self.running = False
        for obj, attr, fn in self._wrapped:
            setattr(obj, attr, fn)
        asyncio.get_running_loop().set_task_factory(None)
        setattr(AbstractConnection, "send_packed_command", self._send)  # noqa: B010

    def _task(self, loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        if self.stack:
            coro = _steps(self, self.top(), coro)
        return asyncio.Task(coro, loop=loop, **kw)

    def wrap(self, obj: object, attr: str, name: str, span: bool = True) -> None:
        """Replace ``obj.attr`` by its metered self (an async one keeps its spans if ``span``)."""
        fn = getattr(obj, attr)
        self._wrapped.append((obj, attr, fn))

        @functools.wraps(fn)
        def sync(*args: Any, **kwargs: Any) -> Any:
            self.stats[name].calls += 1
            self.switch(name)
            try:
                return fn(*args, **kwargs)
            finally:
                self.switch()

        @functools.wraps(fn)
        async def steps(*args: Any, **kwargs: Any) -> Any:
            self.stats[name].calls += 1
            start = time.perf_counter()
            try:
                return await _steps(self, name, fn(*args, **kwargs))
            finally:
                if span:
                    self.stats[name].spans.append((start, time.perf_counter()))

        setattr(obj, attr, steps if inspect.iscoroutinefunction(fn) else sync)


async def _steps(meter: Meter, name: str, coro: Any) -> Any:
    """Await ``coro``, charging each of its steps to one stage."""
    return await _Steps(meter, name, coro)


@dataclass
class _Steps:
    meter: Meter
    name: str
    coro: Any

    def __await__(self) -> Generator[Any, Any, Any]:
        value, error = None, None
        while True:
            self.meter.switch(self.name)
            try:
                out = self.coro.send(value) if error is None else self.coro.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                self.meter.switch()
            try:
                value, error = (yield out), None
            except BaseException as exc:
                value, error = None, exc
