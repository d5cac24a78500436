"""Records of the events topic as the batch loop takes them, and how a take is cut and awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, NamedTuple


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
