"""Where the ROAS judge keeps how far it judged, its trailing hour, its alerts and their outbox
(``keys``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import orjson

from shopstream.sinks.ads import keys as ak
from shopstream.sinks.redis_state import Redis

_COMMIT_LUA = (Path(__file__).parent / "commit.lua").read_text()
#: Prefix of the state's fields holding one judged minute's sums (``w:<minute>``).
_WINDOW = "w:"
#: A judged minute's sums: campaign -> (spend, paid GMV).
Sums = dict[str, tuple[int, int]]


class AlertStore:
    def __init__(self, redis: Redis, app_id: str) -> None:
        self.redis = redis
        self.app_id = app_id
        self._commit = redis.register_script(_COMMIT_LUA)

    async def judged(self) -> int | None:
        """Start of the last minute judged, None before the first step."""
        raw = await self.redis.hget(ak.alert_state_key(self.app_id), "judged")
        return None if raw is None else int(raw)

    async def load(self) -> tuple[int | None, dict[int, Sums], dict[str, int]]:
        """The last minute judged, and the trailing state as of it: the sums of each judged
        minute in the window, and the campaigns below the floor since which minute."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(ak.alert_state_key(self.app_id)))
        window: dict[int, Sums] = {}
        for name, value in raw.items():
            if name.startswith(_WINDOW.encode()):
                window[int(name[len(_WINDOW):])] = {
                    c: (s, g) for c, (s, g) in orjson.loads(value).items()}
        judged = raw.get(b"judged")
        below = orjson.loads(raw[b"below"]) if b"below" in raw else {}
        return None if judged is None else int(judged), window, below

    async def commit(self, judged_before: int | None, judged: int, before: set[int],
                     window: dict[int, Sums], below: dict[str, int],
                     docs: list[dict[str, Any]]) -> bool:
        """Record a step (``before``: the window's minutes as loaded); False when another judge
        committed since ``judged_before`` was read."""
        a = self.app_id
        left = [f"{_WINDOW}{m}" for m in sorted(before - set(window))]
        entered = sorted(set(window) - before)
        args: list[Any] = ["" if judged_before is None else str(judged_before), judged,
                           orjson.dumps(below), len(left), len(entered), *left]
        for m in entered:
            args += [f"{_WINDOW}{m}", orjson.dumps(window[m])]
        for d in docs:
            args += [d["minute"], d["alert_id"], orjson.dumps(d)]
        done = await self._commit(
            keys=[ak.alert_state_key(a), ak.alerts_key(a), ak.unsent_key(a)], args=args)
        return bool(int(done))

    async def read(self, from_ms: int, to_ms: int) -> tuple[list[dict[str, Any]], int | None]:
        """Alerts of minutes in [from_ms, to_ms), and the last minute judged."""
        rows = cast(list[bytes], await self.redis.zrangebyscore(
            ak.alerts_key(self.app_id), from_ms, f"({to_ms}"))
        return [orjson.loads(r) for r in rows], await self.judged()
