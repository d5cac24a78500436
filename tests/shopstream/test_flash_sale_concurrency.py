"""20,000 claims from 64 concurrent clients at a 1,000-unit sale through a real API process:
exactly 1,000 reservations, per-user limits hold, the invariant holds whenever sampled."""

from __future__ import annotations

import asyncio
import random
import time
import urllib.request
from collections import Counter, defaultdict

import aiohttp
import pytest
import redis.asyncio as aioredis

from shopstream.sinks.flash_sale.keys import sale_keys
from tests.support import new_port, wait_until

pytestmark = pytest.mark.integration

CLAIMS = 20_000
CLIENTS = 64
STOCK = 1_000
LIMIT = 2
USERS = 700


def api_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
            return True
    except OSError:
        return False


async def test_no_oversell_under_concurrent_claims(settings, spawn) -> None:
    port = new_port()
    spawn(settings, "api", "--port", str(port))
    wait_until(lambda: api_up(port), 30, "api up")
    base = f"http://127.0.0.1:{port}"
    now = int(time.time() * 1000)
    sale = {"sale_id": "big", "sku": "sku-big", "stock": STOCK, "per_user_limit": LIMIT,
            "starts_at": now - 1_000, "ends_at": now + 3_600_000}
    rng = random.Random(11)
    # 10% of the claims ask for more than the per-user limit at once
    plan = [(f"u{rng.randrange(USERS)}", 3 if rng.random() < 0.1 else 1) for _ in range(CLAIMS)]
    results: list[tuple[str, int, int, str]] = []
    meta_key = sale_keys(settings.app_id, "big").meta
    r = aioredis.Redis.from_url(settings.redis_url)
    samples: list[tuple[int, int, int]] = []
    done = asyncio.Event()

    async def sampler() -> None:
        while not done.is_set():
            row = await r.hmget(meta_key, "available", "reserved", "sold")
            samples.append(tuple(int(x) for x in row))  # type: ignore[arg-type]
            await asyncio.sleep(0.002)

    async def client(session: aiohttp.ClientSession, jobs: list[tuple[str, int]]) -> None:
        for user, qty in jobs:
            async with session.post(f"{base}/v1/flash-sales/big/claims",
                                    json={"user_id": user, "qty": qty}) as resp:
                body = await resp.json()
                results.append((user, qty, resp.status,
                                body.get("reservation_id") or body.get("reason")))

    conn = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=conn) as session:
        auth = {"Authorization": f"Bearer {settings.admin_token}"}
        async with session.post(f"{base}/v1/flash-sales", json=sale, headers=auth) as resp:
            assert resp.status == 201
        sampling = asyncio.create_task(sampler())
        started = time.perf_counter()
        await asyncio.gather(*(client(session, plan[i::CLIENTS]) for i in range(CLIENTS)))
        elapsed = time.perf_counter() - started
        done.set()
        await sampling
    print(f"\n{CLAIMS} claims, {CLIENTS} clients: {CLAIMS / elapsed:,.0f} claims/s")

    assert len(results) == CLAIMS
    ok = [x for x in results if x[2] == 200]
    assert len(ok) == STOCK
    assert len({x[3] for x in ok}) == STOCK
    per_user = Counter(u for u, _, _, _ in ok)
    assert max(per_user.values()) <= LIMIT
    by_reason: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for user, qty, status, reason in results:
        if status != 200:
            assert status == 409
            by_reason[reason].append((user, qty))
    assert set(by_reason) == {"sold_out", "limit_exceeded"}
    assert all(qty == 1 for _, qty in by_reason["sold_out"])
    # a qty-1 claim is refused for the limit only when the user already holds the limit
    assert all(qty == 3 or per_user[u] == LIMIT for u, qty in by_reason["limit_exceeded"])
    assert len(samples) > 20
    assert all(a + rs + s == STOCK and a >= 0 for a, rs, s in samples)
    meta = {k.decode(): v.decode() for k, v in (await r.hgetall(meta_key)).items()}
    assert (int(meta["available"]), int(meta["reserved"]), int(meta["sold"])) == (0, STOCK, 0)
    assert int(meta["c:ok"]) == STOCK
    assert int(meta["c:sold_out"]) == len(by_reason["sold_out"])
    assert int(meta["c:limit_exceeded"]) == len(by_reason["limit_exceeded"])
    await r.aclose()
