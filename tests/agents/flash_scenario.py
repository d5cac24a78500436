"""A generated flash-sale scenario and its plain-Python expected outcome (from the issue)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from shopstream.sinks.flash_sale.store import FlashSales, SaleSpec

FATES = ("pay", "pay_twice", "cancel", "pay_failed", "expire", "cancel_then_pay")


@dataclass
class Scenario:
    """Reservations with their fates, the events that enact them, and what must result."""

    sale_id: str
    stock: int
    reservations: list[tuple[str, str, int, str]] = field(default_factory=list)
    #: Events in production order: order_submit first, then payments and cancels.
    orders: list[dict[str, Any]] = field(default_factory=list)
    follow_ups: list[dict[str, Any]] = field(default_factory=list)
    unreserved: int = 0

    def expected(self) -> dict[str, int]:
        """Units per state once every event and every expiry has been applied."""
        units = {"sold": 0, "cancel": 0, "payment_failed": 0, "expired": 0}
        late = 0
        for _, _, qty, fate in self.reservations:
            if fate in ("pay", "pay_twice"):
                units["sold"] += qty
            elif fate in ("cancel", "cancel_then_pay"):
                units["cancel"] += qty
                late += fate == "cancel_then_pay"
            elif fate == "pay_failed":
                units["payment_failed"] += qty
            else:
                units["expired"] += qty
        total_released = units["cancel"] + units["payment_failed"] + units["expired"]
        return {"available": self.stock - units["sold"], "reserved": 0, "sold": units["sold"],
                "released": total_released, "late": late, **{
                    f"released:{k}": v for k, v in units.items() if k != "sold"}}

    def expected_before_expiry(self) -> dict[str, int]:
        exp = self.expected()
        return {**exp, "reserved": exp["released:expired"],
                "available": exp["available"] - exp["released:expired"],
                "released": exp["released"] - exp["released:expired"], "released:expired": 0}


async def build(sales: FlashSales, sale_id: str, users: int, seed: int,
                ttl_s: int = 600, fates: tuple[str, ...] = FATES) -> Scenario:
    """Create the sale, claim through the Lua path, and generate the order events."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    stock = users * 2
    await sales.create(SaleSpec(sale_id, f"sku-{sale_id}", stock, 2, now - 1000,
                                now + 3_600_000, ttl_s, (10,)))
    sc = Scenario(sale_id, stock)
    ts = now
    for i in range(users):
        user = f"{sale_id}-u{i}"
        qty = rng.choice([1, 2])
        res = await sales.claim(sale_id, user, qty, now)
        assert res.result == "ok"
        fate = rng.choice(fates)
        sc.reservations.append((user, res.reservation_id, qty, fate))
        order = f"{sale_id}-o{i}"
        ts += 1
        # other event types share the batches
        sc.orders.append(_ev(f"{order}-v", "page_view", ts, user, page="flash"))
        sc.orders.append(_ev(f"{order}-s", "order_submit", ts, user, order_id=order,
                             amount=100 * qty, reservation_id=res.reservation_id,
                             items=[{"sku": f"sku-{sale_id}", "qty": qty, "price": 100}]))
        if fate == "expire":
            continue
        ts += 1
        if fate in ("pay", "pay_twice"):
            pay = _ev(f"{order}-p", "payment", ts, user, order_id=order, amount=100 * qty,
                      status="success")
            sc.follow_ups.append(pay)
            if fate == "pay_twice":  # the same event redelivered, and a second payment
                sc.follow_ups += [pay, {**pay, "event_id": f"{order}-p2", "ts": ts + 1}]
        elif fate == "pay_failed":
            sc.follow_ups.append(_ev(f"{order}-f", "payment", ts, user, order_id=order,
                                     amount=100 * qty, status="failed"))
        else:
            sc.follow_ups.append(_ev(f"{order}-c", "order_cancel", ts, user, order_id=order))
            if fate == "cancel_then_pay":
                sc.follow_ups.append(_ev(f"{order}-p", "payment", ts + 1, user, order_id=order,
                                         amount=100 * qty, status="success"))
    # orders for the flash SKU without a valid reservation: none, made up, someone else's
    other_rid = sc.reservations[0][1]
    for j, rid in enumerate([None, f"{sale_id}:99999", other_rid]):
        extra = {"reservation_id": rid} if rid else {}
        sc.orders.append(_ev(f"{sale_id}-x{j}", "order_submit", ts + 5, f"{sale_id}-stranger{j}",
                             order_id=f"{sale_id}-xo{j}", amount=100,
                             items=[{"sku": f"sku-{sale_id}", "qty": 1, "price": 100}], **extra))
        sc.unreserved += 1
    return sc


def _ev(event_id: str, etype: str, ts: int, user: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": etype, "ts": ts, "user_id": user, **fields}


async def state_of(sales: FlashSales, sale_id: str) -> dict[str, int]:
    meta = await sales.meta(sale_id)
    out = {k: int(meta.get(k, 0)) for k in ("available", "reserved", "sold", "released")}
    out["late"] = int(meta.get("late_payment", 0))
    for reason in ("cancel", "payment_failed", "expired"):
        out[f"released:{reason}"] = int(meta.get(f"released:{reason}", 0))
    assert out["available"] + out["reserved"] + out["sold"] == int(meta["stock"]) + int(
        meta["restocked"])
    return out
