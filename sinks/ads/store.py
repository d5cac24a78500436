"""Where the ROAS judge keeps how far it judged, its alerts and their outbox (``keys``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import orjson

from shopstream.sinks.ads import keys as ak
from shopstream.sinks.redis_state import Redis

_COMMIT_LUA = (Path(__file__).parent / "commit.lua").read_text()


class AlertStore:
    def __init__(self, redis: Redis, app_id: str) -> None:
        self.redis = redis
        self.app_id = app_id
        self._commit = redis.register_script(_COMMIT_LUA)

    async def judged(self) -> int | None:
        """Start of the last hour judged, None before the first step."""
        raw = await self.redis.hget(ak.alert_state_key(self.app_id), "judged")
        return None if raw is None else int(raw)

    async def commit(self, judged_before: int | None, judged: int,
                     docs: list[dict[str, Any]]) -> bool:
        """Record a step; False when another judge committed since ``judged_before`` was read."""
        a = self.app_id
        args: list[Any] = ["" if judged_before is None else str(judged_before), judged]
        for d in docs:
            args += [d["hour"], d["alert_id"], orjson.dumps(d)]
        done = await self._commit(
            keys=[ak.alert_state_key(a), ak.alerts_key(a), ak.unsent_key(a)], args=args)
        return bool(int(done))

    async def read(self, from_ms: int, to_ms: int) -> tuple[list[dict[str, Any]], int | None]:
        """Alerts of hours in [from_ms, to_ms), and the last hour judged."""
        rows = cast(list[bytes], await self.redis.zrangebyscore(
            ak.alerts_key(self.app_id), from_ms, f"({to_ms}"))
        return [orjson.loads(r) for r in rows], await self.judged()
