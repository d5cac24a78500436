"""The allowed lateness every event-time agent (funnels, live rooms, the pulse, ads) shares,
and the event time before which what they keep is final.

An event older than the partition watermark minus this is late: the batch loop decides it once
for every agent (``streams.feeds``, docs/guarantees.md). One setting for all, so a minute's
funnel conversion and its orders are final at the same moment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Final

import msgspec

from shopstream.core.sections import read_section
from shopstream.core.settings import Settings
from shopstream.core.timeunits import MINUTE_MS
from shopstream.sinks import keys
from shopstream.sinks.redis_state import Redis

DEFAULT_LATENESS_MS: Final = 5 * MINUTE_MS


class FunnelOptions(msgspec.Struct, frozen=True):
    """``[funnel_options]`` of the config file."""

    allowed_lateness_ms: Annotated[int, msgspec.Meta(ge=0)] = DEFAULT_LATENESS_MS


def allowed_lateness(sections: Mapping[str, Any]) -> int:
    """``[funnel_options] allowed_lateness_ms`` (ms); raises ConfigError naming the key."""
    return read_section(sections, "funnel_options", FunnelOptions).allowed_lateness_ms


async def final_before(redis: Redis, settings: Settings, lateness_ms: int) -> int | None:
    """Event time before which no accepted event can change anything any more: the smallest
    watermark of all partitions, less the allowed lateness; None while any partition has
    applied no event yet. The judges (anomalies, ROAS, stock) judge only what lies before it.

    A partition that applied nothing holds it back: its first events may lie anywhere in event
    time (a partition replayed after the others, a worker started later), and judging without
    them would decide on part of the minute."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(settings.partitions):
            pipe.hmget(keys.fence(settings.app_id, settings.events_topic, p), "offset", "wm")
        rows = await pipe.execute()
    marks = [int(wm) for off, wm in rows if off is not None and int(off) >= 0 and wm]
    return min(marks) - lateness_ms if len(marks) == settings.partitions else None


def final_clock(redis: Redis, settings: Settings) -> Callable[[], Awaitable[int | None]]:
    """``final_before`` with the configured lateness, for the push relay's budget claims
    (sinks/budget_order.py): a coupon is claimed once nothing before it can be decided."""
    lateness_ms = allowed_lateness(settings.sections)
    return lambda: final_before(redis, settings, lateness_ms)
