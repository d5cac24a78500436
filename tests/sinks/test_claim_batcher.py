"""Group commit of claims on a real redis-server: concurrent claims are grouped into few script
calls, and every answer equals deciding the claims one by one in arrival order."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shopstream.sinks.flash_sale.claim_batcher import ClaimBatcher
from shopstream.sinks.flash_sale.store import FlashSales, SaleSpec
from tests.sinks.test_flash_sale import T0, Model
from tests.support import Infra, new_port

pytestmark = pytest.mark.integration

CLAIMS = 3_000


async def test_grouped_claims_equal_one_by_one_in_arrival_order(infra: Infra) -> None:
    s = infra.settings()
    r = aioredis.Redis.from_url(s.redis_url)
    sales = FlashSales(r, s.app_id)
    assert await sales.create(SaleSpec("g1", "sku-g", 500, 2, T0, T0 + 60_000, 60, (50, 10)))
    clock = iter(range(T0, T0 + 10 * CLAIMS))
    batcher = ClaimBatcher(sales, lambda: next(clock), max_group=100)
    rng = random.Random(3)
    plan = [(f"u{rng.randrange(400)}", rng.choice([1, 1, 2, 3])) for _ in range(CLAIMS)]

    # gather starts the claims in plan order, so that is their arrival order
    answers = await asyncio.gather(*(batcher.claim("g1", u, q) for u, q in plan))

    m = Model(500, 2, T0, T0 + 60_000, 60_000, (50, 10))
    for i, ((user, qty), (got, at)) in enumerate(zip(plan, answers, strict=True)):
        want = m.claim(user, qty, at, got.reservation_id or f"none{i}")
        assert got.result == want, (i, user, qty)
        if want == "ok":
            assert got.expires_at == at + 60_000
    assert m.available == 0
    assert len({got.reservation_id for got, _ in answers if got.result == "ok"}) == sum(
        1 for got, _ in answers if got.result == "ok")
    assert CLAIMS / 100 <= batcher.calls < CLAIMS / 50  # groups of up to 100, mostly full
    times = [at for _, at in answers]
    assert times == sorted(times)  # groups are decided in arrival order
    view = await sales.read("g1", T0 + 1_000)
    assert view is not None
    assert (view["available"], view["reserved"]) == (0, 500)
    assert sum(view["claims"].values()) == CLAIMS
    await batcher.close()
    await r.aclose()


async def test_an_unknown_sale_answers_every_claim_of_the_group(infra: Infra) -> None:
    s = infra.settings()
    r = aioredis.Redis.from_url(s.redis_url)
    batcher = ClaimBatcher(FlashSales(r, s.app_id), lambda: T0)
    answers = await asyncio.gather(*(batcher.claim("nope", f"u{i}", 1) for i in range(20)))
    assert [got.result for got, _ in answers] == ["unknown"] * 20
    assert batcher.calls == 1
    await r.aclose()


async def test_a_redis_error_reaches_every_waiter_and_the_next_claims_still_run() -> None:
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{new_port()}/0")  # nothing listens
    batcher = ClaimBatcher(FlashSales(dead, "app"), lambda: T0)
    answers = await asyncio.gather(*(batcher.claim("s", f"u{i}", 1) for i in range(10)),
                                   return_exceptions=True)
    assert all(isinstance(a, RedisError) for a in answers), answers
    again = await asyncio.gather(batcher.claim("s", "u", 1), return_exceptions=True)
    assert isinstance(again[0], RedisError)  # a new drain started: nothing hangs
    await dead.aclose()
