"""Time buckets of the per-minute series (funnels, live rooms, the pulse): where a bucket
starts and how long minute rows are kept. Shared, so no capability reads another's keys for it.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from shopstream.core.timeunits import HOUR_MS, MINUTE_MS

#: Minute buckets are kept this long (hours and days for good): enough for a promotion's
#: live view and a day of hindsight, while a 30-day event keeps its memory bounded.
MINUTE_RETENTION_MS = 7 * 24 * HOUR_MS


@lru_cache(maxsize=1 << 16)
def _day_of_minute(minute: int, zone: ZoneInfo) -> int:
    local = datetime.fromtimestamp(minute / 1000, zone)
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def bucket_start(ts: int, res: str, zone: ZoneInfo) -> int:
    """Start of the minute, hour or business day holding ``ts``."""
    if res == "m":
        return ts - ts % MINUTE_MS
    if res == "h":
        return ts - ts % HOUR_MS
    return _day_of_minute(ts - ts % MINUTE_MS, zone)
