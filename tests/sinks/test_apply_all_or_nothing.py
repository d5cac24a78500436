"""A batch lands whole or not at all: the apply script checks before it writes anything and
moves the fence last, so a batch refused by Redis leaves no trace and lands once on retry."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from shopstream.sinks.errors import StaleFenceError
from shopstream.sinks.redis_state import Fence, Ops, RedisState, make_redis

pytestmark = [pytest.mark.integration]


def _ops(app: str) -> Ops:
    ops = Ops()
    ops.set(f"{app}:{{p0}}:user", "state")
    ops.hincrby(f"{app}:{{p0}}:stats", "gmv", 2**62 + 1)
    ops.hincrby(f"{app}:{{p0}}:stats", "paid", 1)
    ops.zadd(f"{app}:{{p0}}:index", 5, "5")
    return ops


async def test_refused_batch_leaves_nothing_and_lands_once_on_retry(settings):
    r = make_redis(settings)
    app = settings.app_id
    state = RedisState(r, app, settings.events_topic)
    # Something else already holds the stats key as a string: HINCRBY would fail mid-script.
    await r.set(f"{app}:{{p0}}:stats", "not a hash")
    writes = {0: (Fence(-1, 0), Fence(9, 1000), _ops(app))}
    with pytest.raises(ResponseError, match="WRONGTYPE .* nothing written"):
        await state.apply(writes)
    assert (await state.read_fences([0]))[0] == Fence(-1, 0)
    assert await r.get(f"{app}:{{p0}}:user") is None
    assert await r.exists(f"{app}:{{p0}}:index") == 0

    await r.delete(f"{app}:{{p0}}:stats")
    await state.apply(writes)
    assert (await state.read_fences([0]))[0] == Fence(9, 1000)
    # Past 2**53 the increment still lands exactly (sent as text, not as a Lua double).
    assert int(await r.hget(f"{app}:{{p0}}:stats", "gmv")) == 2**62 + 1
    with pytest.raises(StaleFenceError):
        await state.apply(writes)
    assert int(await r.hget(f"{app}:{{p0}}:stats", "paid")) == 1
    await r.aclose()


async def test_unknown_op_is_refused_before_any_write(settings):
    r = make_redis(settings)
    app = settings.app_id
    state = RedisState(r, app, settings.events_topic)
    ops = _ops(app)
    ops.args += ("FLUSHALL",)
    with pytest.raises(ResponseError, match="unknown op FLUSHALL, nothing written"):
        await state.apply({0: (Fence(-1, 0), Fence(3, 10), ops)})
    assert await r.get(f"{app}:{{p0}}:user") is None
    assert (await state.read_fences([0]))[0] == Fence(-1, 0)
    await r.aclose()
