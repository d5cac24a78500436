"""Reading ad economics back: minute rows of every partition (spend lives on the campaign's
partition, clicks, orders and GMV on the users'), summed per bucket and group."""

from __future__ import annotations

from typing import Any, Final
from zoneinfo import ZoneInfo

from shopstream.agents.ads.rules import MEASURES, Row, Sums, derived, parse_field
from shopstream.agents.read_caps import check_buckets, check_rows, late_events, minute_rows
from shopstream.core.timeunits import MINUTE_MS
from shopstream.sinks.ads import keys as ak
from shopstream.sinks.ads.store import AlertStore
from shopstream.sinks.buckets import bucket_start
from shopstream.sinks.redis_state import Redis

#: ``by`` -> the dimensions of a group, and their names in the answer.
GROUPS: Final = {"campaign": ("campaign",), "channel": ("channel",),
                 "keyword": ("campaign", "keyword")}


def _zero() -> dict[str, int]:
    return dict.fromkeys(MEASURES.values(), 0)


async def _minutes(redis: Redis, app_id: str, partitions: int, from_ms: int,
                   to_ms: int) -> list[tuple[int, list[tuple[str, Row, int]]]]:
    """(minute, [(measure, row, n)]) of every partition's rows in [from_ms, to_ms)."""
    out = []
    for m, raw in await minute_rows(redis, partitions, lambda p: ak.index_key(app_id, p),
                                    lambda p, m: ak.minute_key(app_id, p, m), from_ms, to_ms):
        cells = []
        for f, n in raw.items():
            measure, row = parse_field(f.decode())
            cells.append((measure, row, int(n)))
        out.append((m, cells))
    return out


async def campaign_minutes(redis: Redis, app_id: str, partitions: int, from_ms: int,
                           to_ms: int) -> dict[int, Sums]:
    """{minute: {campaign: (spend, paid GMV)}} over channels and keywords (the ROAS judge)."""
    acc: dict[int, dict[str, list[int]]] = {}
    for minute, cells in await _minutes(redis, app_id, partitions, from_ms, to_ms):
        for measure, (_, campaign, _), n in cells:
            if measure in ("s", "g"):
                acc.setdefault(minute, {}).setdefault(campaign, [0, 0])[measure == "g"] += n
    return {m: {c: (v[0], v[1]) for c, v in by.items()} for m, by in acc.items()}


def _key(row: Row, by: str) -> tuple[str, ...]:
    channel, campaign, keyword = row
    if by == "channel":
        return (channel,)
    if by == "campaign":
        return (campaign,)
    return (campaign, keyword)


def _groups(acc: dict[tuple[str, ...], dict[str, int]], by: str) -> list[dict[str, Any]]:
    """Groups with their derived ratios, most spend first, then by name."""
    names = GROUPS[by]
    out = []
    for key, m in sorted(acc.items(), key=lambda kv: (-kv[1]["spend"], kv[0])):
        ident: dict[str, Any] = dict(zip(names, key, strict=True))
        if by == "keyword" and not ident["keyword"]:
            ident["keyword"] = None
        out.append({**ident, **derived(m)})
    return out


async def read_ads(redis: Redis, app_id: str, partitions: int, from_ms: int, to_ms: int,
                   res: str, by: str, zone: ZoneInfo) -> dict[str, Any]:
    """The API answer: per bucket and group (``by``), spend, clicks, attributed orders and
    paid GMV with ROI, ROAS, CPC and CAC; the window's totals and groups; ROAS alerts of the
    window's minutes; late events. ReadTooLarge over the row or bucket cap."""
    await check_rows(redis, [ak.index_key(app_id, p) for p in range(partitions)], from_ms, to_ms)
    total = _zero()
    window: dict[tuple[str, ...], dict[str, int]] = {}
    buckets: dict[int, tuple[dict[str, int], dict[tuple[str, ...], dict[str, int]]]] = {}
    for minute, cells in await _minutes(redis, app_id, partitions, from_ms, to_ms):
        start = bucket_start(minute, res, zone)
        slot = buckets.setdefault(start, (_zero(), {}))
        for measure, row, n in cells:
            name, key = MEASURES[measure], _key(row, by)
            total[name] += n
            slot[0][name] += n
            window.setdefault(key, _zero())[name] += n
            slot[1].setdefault(key, _zero())[name] += n
    check_buckets(len(buckets))
    late = await late_events(redis, partitions, lambda p: ak.late_key(app_id, p))
    alerts, judged = await AlertStore(redis, app_id).read(from_ms, to_ms)
    return {
        "from": from_ms, "to": to_ms, "by": by, "totals": derived(total),
        "groups": _groups(window, by),
        "buckets": [{"start": s, **derived(buckets[s][0]), "groups": _groups(buckets[s][1], by)}
                    for s in sorted(buckets)],
        "alerts": alerts, "judged_through": None if judged is None else judged + MINUTE_MS,
        "late_events": late,
    }
