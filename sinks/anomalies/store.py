"""Where the anomaly judge keeps its progress, its episodes and its alert outbox (``keys``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import orjson

from shopstream.sinks.anomalies import keys as ak
from shopstream.sinks.redis_state import Redis

_COMMIT_LUA = (Path(__file__).parent / "commit.lua").read_text()


class AnomalyStore:
    def __init__(self, redis: Redis, app_id: str) -> None:
        self.redis = redis
        self.app_id = app_id
        self._commit = redis.register_script(_COMMIT_LUA)

    async def state(self) -> dict[str, int]:
        """``judged``, ``first`` and ``open|<metric>`` (the minute each open episode began)."""
        raw = cast(dict[bytes, bytes],
                   await self.redis.hgetall(ak.anomaly_state_key(self.app_id)))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def commit(self, judged_before: int | None, judged: int, first: int,
                     open_: dict[str, int], docs: list[dict[str, Any]]) -> bool:
        """Record a step; False when another judge committed since ``judged_before`` was read."""
        a = self.app_id
        body = orjson.dumps({"open": open_, "docs": [
            [d["minute"], d["alert_id"], orjson.dumps(d).decode()] for d in docs]})
        done = await self._commit(
            keys=[ak.anomaly_state_key(a), ak.anomalies_key(a), ak.unsent_key(a)],
            args=["" if judged_before is None else str(judged_before), judged, first, body])
        return bool(int(done))

    async def read(self, from_ms: int, to_ms: int) -> dict[str, Any]:
        """The API answer: anomalies of minutes in [from_ms, to_ms), and how far judged."""
        rows = cast(list[bytes], await self.redis.zrangebyscore(
            ak.anomalies_key(self.app_id), from_ms, f"({to_ms}"))
        judged = await self.redis.hget(ak.anomaly_state_key(self.app_id), "judged")
        return {"from": from_ms, "to": to_ms, "anomalies": [orjson.loads(r) for r in rows],
                "judged_through": int(judged) if judged is not None else None}
