"""Users' customer-loop state in Redis: MessagePack, several users per hash (``keys.bucket``),
so Redis keeps small buckets as listpacks rather than a key per user."""

from __future__ import annotations

from typing import Any, cast

import msgspec

from shopstream.sinks.customers.keys import bucket, users_prefix
from shopstream.sinks.redis_state import Redis

_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(dict[str, Any]).decode


def pack(state: dict[str, Any]) -> bytes:
    return _ENCODE(state)


def unpack(raw: bytes) -> dict[str, Any]:
    return _DECODE(raw)


async def load(redis: Redis, app: str, rows: list[tuple[int, list[str]]]
               ) -> list[list[bytes | None]]:
    """Stored state of each (partition, users) row, None for a user without any; one
    pipeline for every row."""
    async with redis.pipeline(transaction=False) as pipe:
        for p, users in rows:
            prefix = users_prefix(app, p)
            for u in users:
                pipe.hget(prefix + bucket(u), u)
        got = iter(await pipe.execute())
    return [[cast(bytes | None, next(got)) for _ in users] for _, users in rows]


async def read(redis: Redis, app: str, p: int, user: str) -> dict[str, Any] | None:
    raw = await redis.hget(users_prefix(app, p) + bucket(user), user)
    return None if raw is None else unpack(cast(bytes, raw))
