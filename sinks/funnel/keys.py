"""Redis key names and time buckets of the funnel agent (shared with its query).

Keys (all under the partition tag ``{pN}``; ``F`` is ``FunnelDef.key_id``):
- ``{app}:{pN}:funnel:u:<user_id>`` string: the user's open entries of every funnel, unit
  ``F`` (by user) or ``F|<session>`` -> ``Progress`` (``funnel_rules.encode_units``), with a
  PEXPIRE of the longest window plus the allowed lateness.
- ``{app}:{pN}:funnel:F:<view>:<res>:<bucket_ms>`` hash: ``<breakdown>|<value>|<step>`` -> entries
  that reached the step; view ``cohort`` buckets by entry time, ``flow`` by the step's time;
  res ``m``/``h``/``d`` (day = business day in ``settings.zone``).
- ``{app}:{pN}:funnel:F:<view>:<res>`` sorted set of bucket starts (what the query reads).
- ``{app}:{pN}:funnel:late`` integer: events ignored as too late.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from shopstream.core.timeunits import HOUR_MS, MINUTE_MS
from shopstream.sinks import keys

VIEWS = ("cohort", "flow")
RESOLUTIONS = ("m", "h", "d")
#: Minute buckets are kept this long (hours and days for good): enough for a promotion's
#: live view and a day of hindsight, while a 30-day event keeps its memory bounded.
MINUTE_RETENTION_MS = 7 * 24 * HOUR_MS


def user_key(app_id: str, partition: int, user_id: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:funnel:u:{user_id}"


def bucket_key(app_id: str, partition: int, funnel: str, view: str, res: str, start: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:funnel:{funnel}:{view}:{res}:{start}"


def index_key(app_id: str, partition: int, funnel: str, view: str, res: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:funnel:{funnel}:{view}:{res}"


def late_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:funnel:late"


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
