"""Short Redis leases: one holder at a time for work that must not run twice at once.

A lease expires by itself (a holder that died frees it after ``ms``) and is released only by
its holder (a token compared in Lua), so a slow holder never frees a successor's lease.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from shopstream.sinks.redis_state import Redis

_RELEASE_LUA = (Path(__file__).parent / "release_lock.lua").read_text()


@asynccontextmanager
async def lease(redis: Redis, key: str, ms: int) -> AsyncIterator[bool]:
    """Yields True when this caller holds ``key`` for up to ``ms``; False when another does."""
    token = secrets.token_hex(8)
    held = bool(await redis.set(key, token, nx=True, px=ms))
    try:
        yield held
    finally:
        if held:
            await redis.eval(_RELEASE_LUA, 1, key, token)
