"""Where the stock judge keeps its progress, each SKU's state and its alert outbox (``keys``),
and how it reads and clears the partitions' minute rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import orjson

from shopstream.sinks.redis_state import Redis
from shopstream.sinks.stock import keys as sk

_COMMIT_LUA = (Path(__file__).parent / "commit.lua").read_text()


class StockStore:
    def __init__(self, redis: Redis, app_id: str, partitions: int) -> None:
        self.redis = redis
        self.app_id = app_id
        self.partitions = partitions
        self._commit = redis.register_script(_COMMIT_LUA)

    async def state(self) -> dict[str, int]:
        """``judged`` (last minute judged) and ``day`` (its business day), when any."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(sk.state_key(self.app_id)))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def docs(self) -> dict[str, dict[str, Any]]:
        """Every SKU's state document."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(sk.skus_key(self.app_id)))
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}

    async def doc(self, sku: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(sk.skus_key(self.app_id), sku)
        return None if raw is None else cast(dict[str, Any], orjson.loads(raw))

    async def next_minutes(self, after: int | None, through: int, limit: int) -> list[int]:
        """The first ``limit`` minutes with a row in (``after``, ``through``], any partition."""
        low = "-inf" if after is None else f"({after}"
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.zrangebyscore(sk.index_key(self.app_id, p), low, through, start=0,
                                   num=limit)
            rows = await pipe.execute()
        return sorted({int(m) for row in rows for m in row})[:limit]

    async def rows(self, minutes: list[int]) -> dict[int, list[dict[bytes, bytes]]]:
        """Every partition's row of each of ``minutes``."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for m in minutes:
                for p in range(self.partitions):
                    pipe.hgetall(sk.minute_key(self.app_id, p, m))
            got = await pipe.execute()
        n = self.partitions
        return {m: [r for r in got[i * n:(i + 1) * n] if r] for i, m in enumerate(minutes)}

    async def commit(self, judged_before: int | None, judged: int, day: int,
                     docs: dict[str, dict[str, Any]], alerts: list[dict[str, Any]]) -> bool:
        """Record a step; False when another judge committed since ``judged_before`` was read."""
        a = self.app_id
        body = orjson.dumps({
            "skus": {sku: orjson.dumps(d).decode() for sku, d in docs.items()},
            "alerts": [[d["minute"], d["alert_id"], orjson.dumps(d).decode()] for d in alerts]})
        done = await self._commit(
            keys=[sk.state_key(a), sk.skus_key(a), sk.alerts_key(a), sk.unsent_key(a)],
            args=["" if judged_before is None else str(judged_before), judged, day, body])
        return bool(int(done))

    async def clear(self, minutes: list[int]) -> None:
        """Drop judged minute rows: closed minutes, which no accepted event can change."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                for m in minutes:
                    pipe.delete(sk.minute_key(self.app_id, p, m))
                pipe.zremrangebyscore(sk.index_key(self.app_id, p), "-inf", max(minutes))
            await pipe.execute()

    async def alerts(self, from_ms: int, to_ms: int) -> list[dict[str, Any]]:
        rows = cast(list[bytes], await self.redis.zrangebyscore(
            sk.alerts_key(self.app_id), from_ms, f"({to_ms}"))
        return [orjson.loads(r) for r in rows]

    async def counters(self) -> dict[str, int]:
        """Late events and unmatched payments, summed over partitions."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.get(sk.late_key(self.app_id, p))
                pipe.get(sk.unmatched_key(self.app_id, p))
            got = await pipe.execute()
        return {"late_events": sum(int(x or 0) for x in got[0::2]),
                "unmatched_payments": sum(int(x or 0) for x in got[1::2])}
