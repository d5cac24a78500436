"""The sale's Lua scripts on a real redis-server against a plain-Python model of the issue."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from shopstream.sinks.flash_sale.keys import sale_keys
from shopstream.sinks.flash_sale.store import FlashSales, SaleSpec
from tests.support import Infra

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000


@dataclass
class Res:
    user: str
    qty: int
    expires: int
    state: str = "reserved"
    late: bool = False


@dataclass
class Model:
    """The issue's definition, independent of the scripts."""

    stock: int
    limit: int
    starts: int
    ends: int
    ttl_ms: int
    thresholds: tuple[int, ...]
    restocked: int = 0
    ended_at: int | None = None
    res: dict[str, Res] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    late: int = 0

    def units(self, state: str) -> int:
        return sum(r.qty for r in self.res.values() if r.state == state)

    @property
    def available(self) -> int:
        return self.stock + self.restocked - self.units("reserved") - self.units("sold")

    def held(self, user: str) -> int:
        return sum(r.qty for r in self.res.values()
                   if r.user == user and r.state in ("reserved", "sold"))

    def claim(self, user: str, qty: int, now: int, rid: str) -> str:
        if now < self.starts:
            return "not_started"
        if now >= self.ends or (self.ended_at is not None and now >= self.ended_at):
            return "ended"
        if self.held(user) + qty > self.limit:
            return "limit_exceeded"
        if self.available < qty:
            return "sold_out"
        self.res[rid] = Res(user, qty, now + self.ttl_ms)
        total = self.stock + self.restocked
        if self.available == 0 and "sold_out" not in self.alerts:
            self.alerts.append("sold_out")
        for pct in self.thresholds:
            if self.available * 100 <= pct * total and f"low:{pct}" not in self.alerts:
                self.alerts.append(f"low:{pct}")
        return "ok"


async def test_random_operations_match_the_model(infra: Infra) -> None:
    rng = random.Random(7)
    s = infra.settings()
    r = aioredis.Redis.from_url(s.redis_url)
    sales = FlashSales(r, s.app_id)
    spec = SaleSpec("s1", "sku-1", 60, 3, T0, T0 + 3_600_000, 120, (50, 10))
    assert await sales.create(spec)
    assert not await sales.create(spec)  # a second create changes nothing
    m = Model(60, 3, T0, T0 + 3_600_000, 120_000, (50, 10))
    now = T0 - 5_000
    users = [f"u{i}" for i in range(100)]
    outcomes: set[str] = set()
    for step in range(1_500):
        now += rng.randint(0, 400)
        roll = rng.random()
        if roll < 0.6:
            # one claim alone, or a group decided in one call (the API's group commit)
            group = [(rng.choice(users), rng.choice([1, 1, 1, 2, 4]))
                     for _ in range(rng.choice([1, 1, 2, 7]))]
            if len(group) == 1:
                answers = [await sales.claim("s1", *group[0], now)]
            else:
                answers = await sales.claim_many("s1", group, now)
            assert len(answers) == len(group)
            for i, ((user, qty), got) in enumerate(zip(group, answers, strict=True)):
                want = m.claim(user, qty, now, got.reservation_id or f"none{step}.{i}")
                assert got.result == want, (step, i, user, qty)
                outcomes.add(want)
                if want == "ok":
                    assert got.expires_at == now + 120_000
                    assert (got.available, got.reserved) == (m.available, m.units("reserved"))
        elif roll < 0.7 and m.res:
            rid = rng.choice(list(m.res))
            released = await sales.release(rid, "cancel", now)
            assert released == (1 if m.res[rid].state == "reserved" else 0)
            if m.res[rid].state == "reserved":
                m.res[rid].state = "released"
        elif roll < 0.85 and m.res:
            rid = rng.choice(list(m.res))
            got_c = await sales.confirm(rid, f"o{step}")
            st = m.res[rid].state
            want_c = {"reserved": "confirmed", "sold": "already_sold"}.get(st, "late")
            assert got_c == want_c
            if st == "reserved":
                m.res[rid].state = "sold"
            elif st == "released" and not m.res[rid].late:
                m.res[rid].late = True
                m.late += 1
        elif roll < 0.95:
            due = [rid for rid, x in m.res.items() if x.state == "reserved" and x.expires <= now]
            assert await sales.expire_due("s1", now, max_per_call=3) == len(due)
            for rid in due:
                m.res[rid].state = "released"
        elif roll < 0.98:
            assert await sales.restock("s1", 5) > 0
            m.restocked += 5
        view = await sales.read("s1", now)
        assert view is not None
        assert (view["available"], view["reserved"], view["sold"]) == (
            m.available, m.units("reserved"), m.units("sold"))
        assert view["available"] + view["reserved"] + view["sold"] == 60 + m.restocked
        assert view["late_payments"] == m.late
    assert {"ok", "sold_out", "limit_exceeded", "not_started"} <= outcomes
    alerts = [a for a in await sales.pending_alerts("s1")]
    assert sorted(a.decode().split('"alert_id":"s1:')[1].split('"')[0] for a in alerts) == sorted(
        m.alerts)
    await sales.end("s1", now)
    assert (await sales.claim("s1", "fresh", 1, now)).result == "ended"
    assert (await sales.claim("nope", "u", 1, now)).result == "unknown"
    assert await sales.restock("nope", 1) == -1
    await r.aclose()


async def test_all_keys_of_a_sale_share_one_hash_tag() -> None:
    tags = {k[k.index("{") + 1:k.index("}")] for k in sale_keys("app", "s-9")}
    assert tags == {"sale:s-9"}
