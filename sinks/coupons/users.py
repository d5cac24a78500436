"""Users' coupon state in Redis: packed, several users per hash.

A user's state (a dict, agents/coupons) is MessagePack (``pack``): the same fields as the JSON
it replaced, read back as the same dict, about 30% smaller and decoded faster. Users share
``USER_BUCKETS`` hashes per partition (``{app}:{pN}:cu:b:<n>``, field: user id; keys.py),
which Redis keeps as listpacks while their values fit ``hash-max-listpack-value``: no key,
value object and dict entry per user. The state has no TTL, so nothing is lost by sharing a key.

State written before (JSON in the string key ``{app}:{pN}:cu:u:<user>``) is still read; the
first write of that user moves it into its bucket and deletes the old key in the same batch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import msgspec
import orjson

from shopstream.core import codec
from shopstream.sinks.coupons.keys import user_key, users_prefix
from shopstream.sinks.redis_state import Redis

_LUA = (Path(__file__).parent / "users.lua").read_text()
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(dict[str, Any]).decode
_JSON_OPEN = ord("{")


def pack(state: dict[str, Any]) -> bytes:
    return _ENCODE(state)


def unpack(raw: bytes) -> dict[str, Any]:
    """A stored state, packed or in the JSON written before (a MessagePack map never starts
    with ``{``)."""
    if raw[0] == _JSON_OPEN:
        return cast(dict[str, Any], codec.loads(raw))
    return _DECODE(raw)


def is_old(raw: bytes) -> bool:
    """True for state in the JSON format (kept in the old string key)."""
    return raw[0] == _JSON_OPEN


async def load(redis: Redis, app: str, rows: list[tuple[int, list[str], list[str]]]
               ) -> list[list[bytes | None]]:
    """Stored state of each (partition, users, their ``bucket``) row, None for a user without
    any; one Lua call per row, the rows concurrently."""
    script = redis.register_script(_LUA)

    async def one(p: int, users: list[str], buckets: list[str]) -> list[bytes | None]:
        if not users:
            return []
        prefix = users_prefix(app, p)
        got = await script(keys=[prefix], args=[prefix, user_key(app, p, ""),
                                                orjson.dumps(users), orjson.dumps(buckets)])
        return cast(list[bytes | None], got)

    return list(await asyncio.gather(*(one(*row) for row in rows)))
