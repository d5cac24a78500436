"""Packed state is binary: a batch carries any bytes to Redis exactly, beside its text ops."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from shopstream.sinks.redis_state import Fence, Ops, RedisState, make_redis

pytestmark = [pytest.mark.integration]

#: Every byte value, NUL and bytes that are not UTF-8 among them.
BLOB = bytes(range(256))


async def test_binary_values_land_byte_for_byte(settings):
    r = make_redis(settings)
    app = settings.app_id
    state = RedisState(r, app, settings.events_topic)
    ops = Ops()
    ops.set_bytes(f"{app}:{{p0}}:a", BLOB)
    ops.hset(f"{app}:{{p0}}:h", "text", "plain")
    ops.hset_bytes(f"{app}:{{p0}}:h", "packed", BLOB[::-1])
    ops.hset_bytes(f"{app}:{{p0}}:h", "empty", b"")
    await state.apply({0: (Fence(-1, 0), Fence(1, 10), ops)})
    assert await r.get(f"{app}:{{p0}}:a") == BLOB
    assert await r.hgetall(f"{app}:{{p0}}:h") == {b"text": b"plain", b"packed": BLOB[::-1],
                                                   b"empty": b""}
    await r.aclose()


async def test_a_reference_to_a_missing_value_is_refused_before_any_write(settings):
    r = make_redis(settings)
    app = settings.app_id
    state = RedisState(r, app, settings.events_topic)
    ops = Ops()
    ops.set(f"{app}:{{p0}}:first", "written first")
    ops.hset_bytes(f"{app}:{{p0}}:h", "packed", BLOB)
    ops.blobs.clear()
    with pytest.raises(ResponseError, match="HSET refers to a missing value, nothing written"):
        await state.apply({0: (Fence(-1, 0), Fence(1, 10), ops)})
    assert await r.exists(f"{app}:{{p0}}:first", f"{app}:{{p0}}:h") == 0
    assert (await state.read_fences([0]))[0] == Fence(-1, 0)
    await r.aclose()
