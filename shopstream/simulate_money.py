"""The money side of simulated traffic: ad spend, stock counts and returns.

Shoppers' events come from ``simulate.Simulator``; this adds what merchants and platforms
report around them, derived from what the shoppers did so that the money view has something
to show: each campaign's spend per minute follows the paid GMV of its orders at a target ROAS
(one campaign's target falls under 3 after ``roas_drop_min``), stock counts are posted for
every SKU at the start and every ``restock_min`` (a few SKUs run short, one is overstocked),
and paid order lines come back as returns, one SKU far more often than the rest. It has its
own random stream, so turning it on leaves the shoppers' events unchanged.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shopstream.core.timeunits import MINUTE_MS

#: Keywords bid on per campaign (ad spend may name one).
KEYWORDS = ("dress", "phone", "snacks", "skincare", "shoes")
RETURN_REASONS = ("size", "damaged", "not_as_described", "changed_mind")


@dataclass(frozen=True)
class MoneyPlan:
    """What the money traffic shows, and when (minutes after the start)."""

    #: Target ROAS of every campaign's spend, and of the one that degrades after the drop.
    healthy_roas: float = 4.5
    falling_campaign: str = "live-special"
    falling_roas: float = 1.5
    roas_drop_min: float = 60.0
    #: Spend per minute of a campaign with no paid GMV in the last minute, in fen.
    idle_spend_fen: int = 5_000
    #: Stock counts: every SKU at the start, then every restock_min.
    restock_min: float = 30.0
    #: Units on hand per SKU (the short ones run out, the low ones fall under their safety
    #: stock; the overstocked one never moves).
    stock_units: int = 50_000
    short_skus: tuple[str, ...] = ("sku1", "sku2", "sku3")
    short_units: int = 20
    low_skus: tuple[str, ...] = ("sku6", "sku7")
    low_units: int = 2_000
    overstocked_sku: str = "sku4"
    overstocked_units: int = 900_000
    #: Share of paid lines returned: the faulty SKU (the busiest, the flash-sale one) and every
    #: other one.
    faulty_sku: str = "sku0"
    faulty_return_rate: float = 0.20
    return_rate: float = 0.01
    #: A return arrives this long after its payment (uniform between the bounds).
    return_after_min: tuple[float, float] = (1.0, 10.0)


@dataclass
class MoneyTraffic:
    """Watches the shoppers' events and yields the money events due by a time."""

    campaigns: tuple[str, ...]
    skus: int
    start_ms: int
    seed: int
    plan: MoneyPlan = field(default_factory=MoneyPlan)
    _rng: random.Random = field(init=False)
    _seq: int = field(default=0, init=False)
    _orders: dict[str, tuple[str, list[tuple[str, int]]]] = field(default_factory=dict, init=False)
    _gmv: dict[str, int] = field(default_factory=dict, init=False)
    _returns: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list, init=False)
    _next_minute: int = field(default=0, init=False)
    _next_restock: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed * 7_919 + 1)
        self._next_minute = self.start_ms + MINUTE_MS
        self._next_restock = self.start_ms

    def _id(self) -> str:
        self._seq += 1
        return f"m{self.seed}-{self._seq}"

    def observe(self, ev: dict[str, Any]) -> None:
        """Note a shopper's event: orders' lines, paid GMV per campaign, returns to come."""
        kind = ev["type"]
        if kind == "order_submit":
            lines = [(str(i["sku"]), int(i["qty"])) for i in ev["items"]]
            self._orders[ev["order_id"]] = (str(ev["user_id"]), lines)
        elif kind == "order_cancel":
            self._orders.pop(ev["order_id"], None)
        elif kind == "payment" and ev["status"] == "success":
            campaign = ev.get("campaign")
            if campaign is not None:
                self._gmv[campaign] = self._gmv.get(campaign, 0) + int(ev["amount"])
            order = self._orders.pop(ev["order_id"], None)
            if order is not None:
                self._plan_returns(ev, *order)

    def _plan_returns(self, payment: dict[str, Any], user: str,
                      lines: list[tuple[str, int]]) -> None:
        r, p = self._rng, self.plan
        for sku, qty in lines:
            if r.random() >= (p.faulty_return_rate if sku == p.faulty_sku else p.return_rate):
                continue
            low, high = p.return_after_min
            due = payment["ts"] + int(r.uniform(low, high) * MINUTE_MS)
            ev = {"type": "order_return", "order_id": payment["order_id"], "sku": sku,
                  "qty": qty, "reason": r.choice(RETURN_REASONS), "user_id": user}
            heapq.heappush(self._returns, (due, self._seq, ev))
            self._seq += 1

    def due(self, ts: int) -> Iterator[dict[str, Any]]:
        """The money events whose time has come by ``ts``, in time order, stamped."""
        while True:
            times = [self._next_restock, self._next_minute]
            if self._returns:
                times.append(self._returns[0][0])
            at = min(times)
            if at > ts:
                return
            if at == self._next_restock:
                yield from self._stock(at)
                self._next_restock += int(self.plan.restock_min * MINUTE_MS)
            elif at == self._next_minute:
                yield from self._spend(at)
                self._next_minute += MINUTE_MS
            else:
                _, _, ev = heapq.heappop(self._returns)
                yield {**ev, "event_id": self._id(), "ts": at}

    def _stock(self, at: int) -> Iterator[dict[str, Any]]:
        p = self.plan
        for i in range(self.skus):
            sku = f"sku{i}"
            qty = (p.short_units if sku in p.short_skus else p.low_units if sku in p.low_skus
                   else p.overstocked_units if sku == p.overstocked_sku else p.stock_units)
            # The short SKUs are counted once: they sell out and stay out.
            if sku in p.short_skus and at != self.start_ms:
                continue
            yield {"type": "stock_update", "event_id": self._id(), "ts": at, "sku": sku,
                   "qty": qty, "warehouse": "main"}

    def _spend(self, at: int) -> Iterator[dict[str, Any]]:
        p, r = self.plan, self._rng
        dropped = at - self.start_ms >= p.roas_drop_min * MINUTE_MS
        for campaign in self.campaigns:
            gmv = self._gmv.pop(campaign, 0)
            roas = p.falling_roas if dropped and campaign == p.falling_campaign else p.healthy_roas
            cost = round(gmv / roas * r.uniform(0.9, 1.1)) if gmv else p.idle_spend_fen
            yield {"type": "ad_cost", "event_id": self._id(), "ts": at, "campaign": campaign,
                   "channel": "ads", "cost": max(cost, 1), "keyword": r.choice(KEYWORDS)}
