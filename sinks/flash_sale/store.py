"""Flash-sale inventory in Redis: every unit move is one atomic Lua call on the sale's keys.

All keys of a sale share the hash tag ``{sale:<id>}`` so each script touches one slot (works
on Redis Cluster). State of a sale, in its meta hash: ``stock`` (initial), ``restocked``,
``available``, ``reserved``, ``sold``, ``released`` (units given back, also per reason),
claim counters ``c:<result>``. Invariant, kept by every script:
``available + reserved + sold == stock + restocked``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from shopstream.kafka_io.producer import RecordProducer
from shopstream.sinks.flash_sale.keys import (
    SaleKeys,
    alert_lease_key,
    sale_keys,
    sales_index,
    sku_index,
)
from shopstream.sinks.locks import lease
from shopstream.sinks.redis_state import Redis

_HERE = Path(__file__).parent
#: Claim outcomes, as returned by the claim script and used as metric labels.
CLAIM_RESULTS = ("ok", "sold_out", "limit_exceeded", "not_started", "ended")
#: Why a reservation went back to available stock.
RELEASE_REASONS = ("cancel", "payment_failed", "expired")
#: Window over which the claim rate for the sell-out estimate is measured.
RATE_WINDOW_S = 60
#: One publisher of a sale's alerts holds its lease at most this long (acks take milliseconds).
ALERT_LEASE_MS = 10_000
#: Most units a sale may ever hold (stock plus restocks); counters stay far from 2**53.
MAX_TOTAL_UNITS = 10**12
#: What the restock script answers when a restock would pass MAX_TOTAL_UNITS.
RESTOCK_REFUSED = -2


def now_ms() -> int:
    return int(time.time() * 1000)


def text(value: bytes | str) -> str:
    """A Redis reply (bytes with the project's clients) as text."""
    return value.decode() if isinstance(value, bytes) else value


def _script(name: str) -> str:
    return (_HERE / name).read_text()


def sale_of(reservation_id: str) -> str:
    """Sale id from a reservation id ``<sale_id>:<n>``."""
    return reservation_id.rpartition(":")[0]


@dataclass(frozen=True, slots=True)
class SaleSpec:
    """A sale as created by an operator."""

    sale_id: str
    sku: str
    stock: int
    per_user_limit: int
    #: Window [starts_at, ends_at) in epoch ms.
    starts_at: int
    ends_at: int
    reservation_ttl_s: int
    #: Low-stock alert levels, percent of total stock left.
    low_stock_pct: tuple[int, ...]


class ClaimResult(NamedTuple):
    """Answer of the claim script."""

    result: str
    reservation_id: str
    expires_at: int
    available: int
    reserved: int
    sold: int
    alerts_queued: int


def estimate_sell_out(available: int, units_per_s: float, now: int) -> int | None:
    """Epoch ms at which the available units run out at the recent claim rate, if it does."""
    if available <= 0 or units_per_s <= 0:
        return None
    return now + int(available / units_per_s * 1000)


def sale_view(meta: dict[str, str], recent_units: int, now: int) -> dict[str, Any]:
    """What GET /v1/flash-sales/{id} shows, from the meta hash and recent claimed units."""
    n = {k: int(v) for k, v in meta.items() if k not in ("sale_id", "sku", "thresholds")}
    total = n["stock"] + n.get("restocked", 0)
    sold = n.get("sold", 0)
    rate = recent_units / RATE_WINDOW_S
    state = "scheduled" if now < n["starts_at"] else "live"
    if now >= n["ends_at"] or ("ended_at" in n and now >= n["ended_at"]):
        state = "ended"
    return {
        "sale_id": meta["sale_id"], "sku": meta["sku"], "state": state,
        "stock": n["stock"], "restocked": n.get("restocked", 0),
        "available": n["available"], "reserved": n.get("reserved", 0), "sold": sold,
        "released": n.get("released", 0),
        "released_by_reason": {r: n.get(f"released:{r}", 0) for r in RELEASE_REASONS},
        "late_payments": n.get("late_payment", 0),
        "claims": {r: n.get(f"c:{r}", 0) for r in CLAIM_RESULTS},
        "per_user_limit": n["limit"], "starts_at": n["starts_at"], "ends_at": n["ends_at"],
        "ended_at": n.get("ended_at"), "reservation_ttl_s": n["ttl_ms"] // 1000,
        "sell_through": round(sold / total, 4) if total else 0.0,
        "claim_rate_units_per_s": round(rate, 3),
        "estimated_sell_out_at": estimate_sell_out(n["available"], rate, now)
        if state == "live" else None,
    }


class FlashSales:
    """The sale scripts bound to one Redis client and app id."""

    def __init__(self, redis: Redis, app_id: str) -> None:
        self.redis = redis
        self.app_id = app_id
        self._create = redis.register_script(_script("create.lua"))
        self._claim = redis.register_script(_script("claim.lua"))
        self._confirm = redis.register_script(_script("confirm.lua"))
        self._release = redis.register_script(_script("release.lua"))
        self._restock = redis.register_script(_script("restock.lua"))

    def keys(self, sale_id: str) -> SaleKeys:
        return sale_keys(self.app_id, sale_id)

    async def create(self, spec: SaleSpec) -> bool:
        """Create the sale; False when one with this id exists."""
        k = self.keys(spec.sale_id)
        fields: list[Any] = [
            "sale_id", spec.sale_id, "sku", spec.sku, "stock", spec.stock, "restocked", 0,
            "available", spec.stock, "reserved", 0, "sold", 0, "released", 0,
            "limit", spec.per_user_limit, "starts_at", spec.starts_at, "ends_at", spec.ends_at,
            "ttl_ms", spec.reservation_ttl_s * 1000,
            "thresholds", ",".join(str(p) for p in spec.low_stock_pct),
        ]
        if not int(await self._create(keys=[k.meta], args=fields)):
            return False
        await self.redis.sadd(sales_index(self.app_id), spec.sale_id)
        await self.redis.hset(sku_index(self.app_id), spec.sku, spec.sale_id)
        return True

    async def claim(self, sale_id: str, user_id: str, qty: int, now: int) -> ClaimResult:
        return (await self.claim_many(sale_id, [(user_id, qty)], now))[0]

    async def claim_many(self, sale_id: str, claims: list[tuple[str, int]],
                         now: int) -> list[ClaimResult]:
        """Decide ``(user_id, qty)`` claims in order, in one atomic call; one result each."""
        args: list[Any] = [now]
        for user_id, qty in claims:
            args += (user_id, qty)
        flat = await self._claim(keys=list(self.keys(sale_id)), args=args)
        return [
            ClaimResult(text(flat[i]), text(flat[i + 1]), int(flat[i + 2]), int(flat[i + 3]),
                        int(flat[i + 4]), int(flat[i + 5]), int(flat[i + 6]))
            for i in range(0, len(flat), 7)
        ]

    async def confirm(self, reservation_id: str, order_id: str) -> str:
        k = self.keys(sale_of(reservation_id))
        out = await self._confirm(keys=[k.meta, k.reservations, k.expiry],
                                  args=[reservation_id, order_id])
        return text(out)

    async def release(self, reservation_id: str, reason: str, now: int) -> int:
        k = self.keys(sale_of(reservation_id))
        return int(await self._release(keys=[k.meta, k.users, k.reservations, k.expiry],
                                       args=[reason, now, 0, reservation_id]))

    async def expire_due(self, sale_id: str, now: int, max_per_call: int = 500) -> int:
        """Release every reservation of the sale whose TTL passed by ``now``; returns how many."""
        k = self.keys(sale_id)
        total = 0
        while True:
            n = int(await self._release(keys=[k.meta, k.users, k.reservations, k.expiry],
                                        args=["expired", now, max_per_call]))
            total += n
            if n < max_per_call:
                return total

    async def restock(self, sale_id: str, units: int) -> int:
        """Add units; returns available after, -1 for an unknown sale, RESTOCK_REFUSED when
        the sale's units would pass MAX_TOTAL_UNITS (nothing written)."""
        return int(await self._restock(keys=[self.keys(sale_id).meta],
                                       args=[units, MAX_TOTAL_UNITS]))

    async def end(self, sale_id: str, now: int) -> None:
        """End the sale early: claims from ``now`` on answer ``ended``."""
        await self.redis.hset(self.keys(sale_id).meta, "ended_at", now)

    async def meta(self, sale_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys(sale_id).meta)
        return {text(k): text(v) for k, v in raw.items()}

    async def read(self, sale_id: str, now: int) -> dict[str, Any] | None:
        """The sale's view, or None when unknown."""
        meta = await self.meta(sale_id)
        if not meta:
            return None
        sec = now // 1000
        window = [sec - i for i in range(RATE_WINDOW_S)]
        rows = await self.redis.hmget(self.keys(sale_id).rate, window)
        return sale_view(meta, sum(int(v) for v in rows if v is not None), now)

    async def read_sku(self, sku: str, now: int) -> dict[str, Any] | None:
        """The view of the SKU's latest flash sale, or None when it has none."""
        sale_id = await self.redis.hget(sku_index(self.app_id), sku)
        return None if sale_id is None else await self.read(text(sale_id), now)

    async def sale_ids(self) -> list[str]:
        return sorted(text(m) for m in await self.redis.smembers(sales_index(self.app_id)))

    async def pending_alerts(self, sale_id: str) -> list[bytes]:
        """Alerts queued by claims and not yet published (at-least-once; alert_id dedups)."""
        rows = await self.redis.lrange(self.keys(sale_id).outbox, 0, 99)
        return [r.encode() if isinstance(r, str) else r for r in rows]

    async def ack_alerts(self, sale_id: str, alerts: list[bytes]) -> None:
        outbox = self.keys(sale_id).outbox
        async with self.redis.pipeline(transaction=False) as pipe:
            for a in alerts:
                pipe.execute_command("LREM", outbox, 1, a)
            await pipe.execute()


async def publish_alerts(sales: FlashSales, producer: Callable[[], RecordProducer], topic: str,
                         sale_id: str) -> int:
    """Send the sale's queued alerts to ``topic``; returns how many were acknowledged.

    ``producer`` is called only when there is something to send (created lazily). One
    publisher per sale at a time (a lease), so an API and a worker never both send the same
    queued alerts; they leave the outbox only once the broker acknowledged them, so a crash
    repeats an alert (same ``alert_id``) rather than losing it.
    """
    sent = 0
    # Whoever holds the lease looks again after releasing it, so alerts queued by a caller
    # that found the lease taken are never left behind.
    while await sales.pending_alerts(sale_id):
        key = alert_lease_key(sales.app_id, sale_id)
        async with lease(sales.redis, key, ALERT_LEASE_MS) as held:
            if not held:
                return sent
            alerts = await sales.pending_alerts(sale_id)
            if alerts:
                kafka = producer()
                for a in alerts:
                    kafka.produce(topic, a, key=sale_id.encode())
                await kafka.flush_async()
                await sales.ack_alerts(sale_id, alerts)
                sent += len(alerts)
    return sent
