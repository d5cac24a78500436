"""Reading group buys back: per-SKU counts summed over partitions, and one group."""

from __future__ import annotations

from typing import Any, cast

from shopstream.agents.group_buys.rules import COUNTS
from shopstream.core import codec
from shopstream.kafka_io.partitioner import partition_for
from shopstream.sinks.group_buys import keys as gk
from shopstream.sinks.redis_state import Redis


async def sku_counts(redis: Redis, app_id: str, partitions: int) -> dict[str, Any]:
    """``{"skus": [{sku, open, completed, expired}]}`` by SKU, summed over partitions."""
    async with redis.pipeline(transaction=False) as pipe:
        for p in range(partitions):
            pipe.hgetall(gk.counts_key(app_id, p))
        rows = cast(list[dict[bytes, bytes]], await pipe.execute())
    by_sku: dict[str, dict[str, int]] = {}
    for row in rows:
        for raw, n in row.items():
            outcome, _, sku = raw.decode().partition("|")
            got = by_sku.setdefault(sku, dict.fromkeys(("opened", *COUNTS[1:]), 0))
            got[outcome] += int(n)
    return {"skus": [{"sku": sku, "open": c["opened"] - c["completed"] - c["expired"],
                      "completed": c["completed"], "expired": c["expired"]}
                     for sku, c in sorted(by_sku.items())]}


async def group_of(redis: Redis, app_id: str, partitions: int,
                   group_id: str) -> dict[str, Any] | None:
    """One group's state, or None when no join of it was ever taken."""
    raw = await redis.hget(gk.groups_key(app_id, partition_for(group_id, partitions)), group_id)
    return None if raw is None else {"group_id": group_id, **codec.loads(raw)}
