"""Reading the pulse back: minute rows of every partition, summed per bucket and channel.

Top SKUs are ranked over every SKU of the window (not per partition), so the counts of those
listed are exact.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from shopstream.agents.ops.agent import MEASURES, derived, pulse_rows
from shopstream.agents.read_caps import check_buckets, check_rows, late_events, minute_rows
from shopstream.sinks.buckets import bucket_start
from shopstream.sinks.ops import keys as ok
from shopstream.sinks.redis_state import Redis


def _zero() -> dict[str, int]:
    return dict.fromkeys(MEASURES.values(), 0)


def _add(into: dict[str, int], row: dict[str, int]) -> None:
    for name, n in row.items():
        into[name] += n


async def minute_totals(redis: Redis, app_id: str, partitions: int, from_ms: int,
                        to_ms: int) -> dict[int, dict[str, int]]:
    """{minute: totals over channels} for minutes in [from_ms, to_ms) (the anomaly judge)."""
    rows = await _read(redis, app_id, partitions, from_ms, to_ms)
    out: dict[int, dict[str, int]] = {}
    for minute, raw in rows:
        channels, _ = pulse_rows(raw)
        total = out.setdefault(minute, _zero())
        for row in channels.values():
            _add(total, row)
    return out


async def _read(redis: Redis, app_id: str, partitions: int, from_ms: int,
                to_ms: int) -> list[tuple[int, dict[bytes, bytes]]]:
    return await minute_rows(redis, partitions, lambda p: ok.index_key(app_id, p),
                             lambda p, m: ok.minute_key(app_id, p, m), from_ms, to_ms)


async def read_summary(redis: Redis, app_id: str, partitions: int, from_ms: int, to_ms: int,
                       res: str, by_channel: bool, top: int, zone: ZoneInfo) -> dict[str, Any]:
    """The API answer: per bucket (and channel), totals, by channel, top SKUs, late events;
    ReadTooLarge over the row or bucket cap."""
    buckets: dict[int, dict[str, int]] = {}
    bucket_channels: dict[int, dict[str, dict[str, int]]] = {}
    by: dict[str, dict[str, int]] = {}
    skus: dict[str, list[int]] = {}
    await check_rows(redis, [ok.index_key(app_id, p) for p in range(partitions)], from_ms, to_ms)
    for minute, raw in await _read(redis, app_id, partitions, from_ms, to_ms):
        start = bucket_start(minute, res, zone)
        channels, sku_rows = pulse_rows(raw)
        slot = buckets.setdefault(start, _zero())
        for ch, row in channels.items():
            _add(slot, row)
            _add(by.setdefault(ch, _zero()), row)
            _add(bucket_channels.setdefault(start, {}).setdefault(ch, _zero()), row)
        for sku, (units, gmv) in sku_rows.items():
            acc = skus.setdefault(sku, [0, 0])
            acc[0] += units
            acc[1] += gmv
    check_buckets(len(buckets))
    total = _zero()
    for row in by.values():
        _add(total, row)
    late = await late_events(redis, partitions, lambda p: ok.late_key(app_id, p))

    def ranked(index: int) -> list[dict[str, Any]]:
        order = sorted(skus.items(), key=lambda kv: (-kv[1][index], kv[0]))[:top]
        return [{"sku": sku, "units": u, "gmv": g} for sku, (u, g) in order]

    out_buckets = []
    for start in sorted(buckets):
        b: dict[str, Any] = {"start": start, **derived(buckets[start])}
        if by_channel:
            b["by"] = {ch: derived(r) for ch, r in sorted(bucket_channels[start].items())}
        out_buckets.append(b)
    return {
        "from": from_ms, "to": to_ms, "totals": derived(total),
        "by": {ch: derived(r) for ch, r in sorted(by.items())},
        "buckets": out_buckets,
        "top_skus": {"by_units": ranked(0), "by_gmv": ranked(1)},
        "late_events": late,
    }
