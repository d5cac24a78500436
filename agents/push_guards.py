"""What every push rule shares, whichever capability decides it: the deterministic push id,
the business day a daily cap counts in, and the quiet hours (``[coupons] quiet_hours``, one
night for every push), and how a batch writes its push timers and deferred pushes. Shared
here so capabilities do not import each other."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from shopstream.core import codec
from shopstream.core.errors import ConfigError
from shopstream.sinks.redis_state import Ops


class QuietHours(Protocol):
    """A config that knows the quiet hours: minutes of the local day, [start, end) possibly
    wrapping midnight, and the business day's zone."""

    @property
    def quiet_start_min(self) -> int: ...

    @property
    def quiet_end_min(self) -> int: ...

    @property
    def zone(self) -> ZoneInfo: ...


def push_id(rule: str, user: str, trigger_ms: int, step: int) -> str:
    """Deterministic id: the same trigger yields the same id in a replay or after a crash."""
    return hashlib.sha1(f"{rule}|{user}|{trigger_ms}|{step}".encode()).hexdigest()[:24]  # noqa: S324


def business_day(ts_ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, zone).date().isoformat()


def quiet_release(ts_ms: int, cfg: QuietHours) -> int | None:
    """Start of the next allowed minute if ``ts_ms`` is in quiet hours, else None."""
    local = datetime.fromtimestamp(ts_ms / 1000, cfg.zone)
    minute = local.hour * 60 + local.minute
    s, e = cfg.quiet_start_min, cfg.quiet_end_min
    inside = (s <= minute < e) if s < e else (minute >= s or minute < e)
    if not inside or s == e:
        return None
    day = local.date() if minute < e else local.date() + timedelta(days=1)
    release = datetime(day.year, day.month, day.day, e // 60, e % 60, tzinfo=cfg.zone)
    return int(release.timestamp() * 1000)


def hhmm(raw: Any, where: str) -> int:
    """``HH:MM`` as minutes of the day; ConfigError naming ``where`` otherwise."""
    try:
        hh, mm = str(raw).split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ConfigError(f"{where}: expected HH:MM, got {raw!r}") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ConfigError(f"{where}: expected HH:MM, got {raw!r}")
    return h * 60 + m


def quiet_hours(raw: str, where: str = "coupons.quiet_hours") -> tuple[int, int]:
    """``'HH:MM-HH:MM'`` as (start, end) minutes of the local day."""
    parts = str(raw).split("-")
    if len(parts) != 2:
        raise ConfigError(f"{where}: expected 'HH:MM-HH:MM', got {raw!r}")
    return hhmm(parts[0], where), hhmm(parts[1], where)


def write_schedule(ops: Ops, timers_key: str, timers: Mapping[str, int | None],
                   deferred_key: str, deferred: Mapping[str, Mapping[str, Any] | None]) -> None:
    """A batch's timer changes (member -> due, None: removed) and deferred pushes (push id ->
    candidate, None: released) into its fenced call."""
    for member, at in timers.items():
        if at is None:
            ops.zrem(timers_key, member)
        else:
            ops.zadd(timers_key, at, member)
    for pid, cand in deferred.items():
        if cand is None:
            ops.hdel(deferred_key, pid)
        else:
            ops.hset(deferred_key, pid, codec.dumps(cand))
