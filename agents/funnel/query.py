"""Reading funnel counts back: sum the per-partition shards bucket by bucket.

Two pipelined round trips: the bucket indexes of every partition, then every bucket hash.
"""

from __future__ import annotations

from typing import Any

from shopstream.agents.funnel.rules import FunnelDef
from shopstream.agents.read_caps import check_buckets, check_rows, late_events
from shopstream.sinks.funnel.keys import bucket_key, index_key, late_key
from shopstream.sinks.redis_state import Redis


async def read_buckets(
    redis: Redis, app_id: str, partitions: int, fd: FunnelDef, view: str, res: str, by: str,
    from_ms: int, to_ms: int,
) -> dict[int, dict[str, list[int]]]:
    """{bucket start: {breakdown value: [entries reaching step 1..n]}} for buckets in [from, to);
    ReadTooLarge over the row or bucket cap."""
    indexes = [index_key(app_id, p, fd.key_id, view, res) for p in range(partitions)]
    await check_rows(redis, indexes, from_ms, to_ms)
    async with redis.pipeline(transaction=False) as pipe:
        for key in indexes:
            pipe.zrangebyscore(key, from_ms, f"({to_ms}")
        starts = await pipe.execute()
    wanted = [(p, int(s)) for p, rows in enumerate(starts) for s in rows]
    async with redis.pipeline(transaction=False) as pipe:
        for p, start in wanted:
            pipe.hgetall(bucket_key(app_id, p, fd.key_id, view, res, start))
        rows = await pipe.execute()
    n = len(fd.steps)
    prefix = by + "|"
    out: dict[int, dict[str, list[int]]] = {}
    for (_, start), row in zip(wanted, rows, strict=True):
        for raw_field, raw_n in row.items():
            fld = raw_field.decode()
            if not fld.startswith(prefix):
                continue
            value, step = fld[len(prefix):].rsplit("|", 1)
            counts = out.setdefault(start, {}).setdefault(value, [0] * n)
            counts[int(step) - 1] += int(raw_n)
    check_buckets(len(out))
    return {start: out[start] for start in sorted(out)}


def summarize(fd: FunnelDef, counts: list[int]) -> dict[str, Any]:
    """Steps with count, step and overall conversion, and the step that loses the most."""
    steps: list[dict[str, Any]] = []
    first = counts[0] if counts else 0
    drop: dict[str, Any] | None = None
    for i, (step, n) in enumerate(zip(fd.steps, counts, strict=True)):
        prev = counts[i - 1] if i else None
        step_conv = (n / prev if prev else None) if i else 1.0
        steps.append({"step": i + 1, "label": step.label, "count": n,
                      "step_conversion": step_conv,
                      "overall_conversion": n / first if first else None})
        if i and prev and step_conv is not None and (drop is None
                                                     or step_conv < drop["step_conversion"]):
            drop = {"step": i + 1, "label": step.label, "from_step": i,
                    "step_conversion": step_conv, "lost": prev - n}
    return {"steps": steps, "biggest_drop": drop}


async def read_funnel(
    redis: Redis, app_id: str, partitions: int, fd: FunnelDef, view: str, res: str, by: str,
    from_ms: int, to_ms: int,
) -> dict[str, Any]:
    """The API answer: totals, per breakdown value, and per bucket."""
    buckets = await read_buckets(redis, app_id, partitions, fd, view, res, by, from_ms, to_ms)
    n = len(fd.steps)
    per_value: dict[str, list[int]] = {}
    for by_value in buckets.values():
        for value, counts in by_value.items():
            acc = per_value.setdefault(value, [0] * n)
            for i, c in enumerate(counts):
                acc[i] += c
    total = [sum(v[i] for v in per_value.values()) for i in range(n)]
    late = await late_events(redis, partitions, lambda p: late_key(app_id, p))
    ranked = sorted(per_value.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {
        "funnel": fd.name, "view": view, "res": res, "by": by, "from": from_ms, "to": to_ms,
        "window_ms": fd.window_ms, "count_by": fd.count_by,
        "total": summarize(fd, total),
        "breakdown": [{"value": v, **summarize(fd, c)} for v, c in ranked],
        "buckets": [{"start": s, "counts": c} for s, c in buckets.items()],
        "late_events": late,
    }


async def recent_conversion(
    redis: Redis, app_id: str, partitions: int, fd: FunnelDef, from_ms: int, to_ms: int
) -> list[float]:
    """Step conversion (step k over step k-1, k >= 2) from the flow view's minute buckets."""
    buckets = await read_buckets(
        redis, app_id, partitions, fd, "flow", "m", fd.breakdowns[0], from_ms, to_ms
    )
    n = len(fd.steps)
    total = [0] * n
    for by_value in buckets.values():
        for counts in by_value.values():
            for i, c in enumerate(counts):
                total[i] += c
    return [total[i] / total[i - 1] if total[i - 1] else 0.0 for i in range(1, n)]
