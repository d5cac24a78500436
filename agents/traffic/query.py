"""Reading traffic value back: the rows of every partition, summed per bucket.

Each partition holds its users' share of every bucket; a user is on one partition only, so
distinct visitors add up exactly. Only buckets (and channels or campaigns) with a number other
than 0 are answered: a session moved to an earlier bucket leaves zeros behind.
"""

from __future__ import annotations

from typing import Any

from shopstream.agents.read_caps import check_buckets, check_rows, late_events, minute_rows
from shopstream.agents.traffic.rules import MEASURES, OVERALL, derived
from shopstream.sinks.redis_state import Redis
from shopstream.sinks.traffic import keys as tk

#: ``by`` values and the dim prefix they read.
BY_PREFIX = {"channel": "c:", "campaign": "k:"}
#: The channel whose share of UV the playbook watches (natural search, target >= 20%).
SEARCH_DIM = "c:search"


def _zero() -> dict[str, int]:
    return dict.fromkeys(MEASURES.values(), 0)


async def read_traffic(redis: Redis, app_id: str, partitions: int, from_ms: int, to_ms: int,
                       res: str, by: str | None) -> dict[str, Any]:
    """Buckets of ``res`` whose start lies in [from_ms, to_ms), each whole: overall numbers,
    the natural-search share of UV and, with ``by``, one row per channel or campaign;
    ReadTooLarge over the row or bucket cap."""
    index = [tk.index_key(app_id, p, res) for p in range(partitions)]
    await check_rows(redis, index, from_ms, to_ms)
    rows = await minute_rows(redis, partitions, lambda p: index[p],
                             lambda p, start: tk.row_key(app_id, p, res, start), from_ms, to_ms)
    sums: dict[int, dict[str, dict[str, int]]] = {}
    for start, raw in rows:
        bucket = sums.setdefault(start, {})
        for raw_field, raw_n in raw.items():
            measure, _, dim = raw_field.decode().partition("|")
            bucket.setdefault(dim, _zero())[MEASURES[measure]] += int(raw_n)
    check_buckets(len(sums))
    prefix = BY_PREFIX.get(by or "")
    out = []
    for start in sorted(sums):
        bucket = sums[start]
        overall = bucket.get(OVERALL, _zero())
        if not any(overall.values()):
            continue
        uv = overall["uv"]
        b: dict[str, Any] = {
            "start": start, **derived(overall),
            "search_share": bucket.get(SEARCH_DIM, _zero())["uv"] / uv if uv else None}
        if prefix is not None:
            b["by"] = {dim[len(prefix):]: derived(row) for dim, row in sorted(bucket.items())
                       if dim.startswith(prefix) and any(row.values())}
        out.append(b)
    late = await late_events(redis, partitions, lambda p: tk.late_key(app_id, p))
    return {"from": from_ms, "to": to_ms, "buckets": out, "late_events": late}
