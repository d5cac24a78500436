"""Batches of a Faust stream, cut once the oldest record in the buffer has waited ``within``.

Faust's ``Stream.take_events(max, within)`` stops filling its buffer while a batch is being
processed and starts a fresh ``within`` window after it: records that arrived meanwhile wait
for the batch in hand, then for a whole window more, so every batch costs its processing plus
``within`` (at the live rate about 50 ms of each cycle). Here the buffer keeps filling while
a batch is processed (up to ``max_records``, then the stream waits: memory stays bounded) and
a batch is cut when its oldest record has waited ``within``, or the buffer is full: no record
waits for a window longer than ``within``, and records that waited through a batch go at once.

Acks are as in ``take_events``: an event is acked once the batch that carried it is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from faust.types import EventT


class TakeBuffer:
    """Events in arrival order and when the oldest arrived (loop time); pure bookkeeping."""

    def __init__(self, max_records: int, within_s: float) -> None:
        self.max_records = max_records
        self.within_s = within_s
        self.events: list[EventT] = []
        self.first_at = 0.0

    def add(self, event: EventT, now: float) -> None:
        if not self.events:
            self.first_at = now
        self.events.append(event)

    @property
    def full(self) -> bool:
        return len(self.events) >= self.max_records

    def wait_left(self, now: float) -> float | None:
        """Seconds until the buffer is due: None when empty, 0 when full or its oldest event
        has waited ``within``."""
        if not self.events:
            return None
        return 0.0 if self.full else max(0.0, self.first_at + self.within_s - now)

    def cut(self) -> list[EventT]:
        """Everything buffered, as one batch; the buffer starts empty."""
        batch, self.events = self.events, []
        return batch


async def take_due(stream: Any, max_records: int, within_s: float
                   ) -> AsyncIterator[list[EventT]]:
    """Batches of at most ``max_records`` events of ``stream`` (a Faust stream), each cut when
    its oldest event has waited ``within_s`` or it is full; the stream goes on filling the next
    one meanwhile."""
    loop = asyncio.get_running_loop()
    buf = TakeBuffer(max_records, within_s)
    arrived = asyncio.Event()  # an event entered the buffer, or it became full
    room = asyncio.Event()  # the buffer is below max_records
    room.set()

    async def add_to_buffer(value: Any) -> Any:
        while buf.full:
            room.clear()
            await stream.wait(room)
            if stream.should_stop:
                return value
        event = stream.current_event
        if event is None:
            raise RuntimeError("take buffer found no current event")
        buf.add(event, loop.time())
        arrived.set()
        return value

    stream.enable_acks = False  # acked below, once processed
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    while not stream.should_stop:
        left = buf.wait_left(loop.time())
        if left is None or left > 0:
            arrived.clear()
            # Woken by each arrival so that a full buffer is cut at once; a record arriving in
            # an empty buffer starts the window.
            await stream.wait_for_stopped(arrived, timeout=left)
            continue
        batch = buf.cut()
        room.set()
        try:
            yield batch
        finally:
            for event in batch:
                await stream.ack(event)
