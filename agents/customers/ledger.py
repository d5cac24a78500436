"""Spend window, tiers and points, as pure functions over one user's state dict.

The state (MessagePack in Redis, sinks/customers/users.py) holds, of the ledger:
``ord`` {order_id: [paid ms, remaining fen, 1 while in the spend window else 0]} of every
order paid (kept after the window: a later payment of the same order is still ignored, and a
pending reminder still reads its remaining); ``pts`` the balance, ``pf`` the points forgiven;
``ci`` the business days checked in (day ordinals); ``rev`` the orders reviewed; ``fp`` the
time of the first paid order. Definitions: docs/customers.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shopstream.agents.customers.config import CustomersConfig

PAID, REMAINING, LIVE = 0, 1, 2


def spend(user: dict[str, Any]) -> tuple[int, int]:
    """(spend_fen, orders): remaining of the orders in the window, and how many have some."""
    total = n = 0
    for o in user.get("ord", {}).values():
        if o[LIVE]:
            total += o[REMAINING]
            n += o[REMAINING] > 0
    return total, n


def order_points(remaining: int, cfg: CustomersConfig) -> int:
    return remaining // 100 * cfg.points_per_yuan


def pay(user: dict[str, Any], order_id: str, amount: int, ts: int, cfg: CustomersConfig
        ) -> bool:
    """A successful payment: True when it made the order paid (its first), earning points."""
    orders = user.setdefault("ord", {})
    if order_id in orders:
        return False
    orders[order_id] = [ts, amount, 1]
    user["pts"] = user.get("pts", 0) + order_points(amount, cfg)
    return True


def reduce(user: dict[str, Any], order_id: str, amount: int | None, cfg: CustomersConfig
           ) -> bool:
    """A refund of ``amount`` (None: a cancel, everything) of a paid order in the window: its
    remaining falls and the points it no longer earns are taken back, the part already spent
    forgiven. False (nothing changed) for an unknown, unpaid or expired order."""
    o = user.get("ord", {}).get(order_id)
    if o is None or not o[LIVE]:
        return False
    old = o[REMAINING]
    new = 0 if amount is None else old - min(amount, old)
    if new == old:
        return False
    o[REMAINING] = new
    take = order_points(old, cfg) - order_points(new, cfg)
    balance = user.get("pts", 0)
    covered = min(take, balance)
    user["pts"] = balance - covered
    if take > covered:
        user["pf"] = user.get("pf", 0) + take - covered
    return True


def next_expiry(user: dict[str, Any], cfg: CustomersConfig) -> int | None:
    """When the next order leaves the spend window, None when none is in it."""
    live = [o[PAID] for o in user.get("ord", {}).values() if o[LIVE]]
    return min(live) + cfg.spend_ms if live else None


def expire(user: dict[str, Any], now: int, cfg: CustomersConfig) -> None:
    """Orders paid ``spend_ms`` or more before ``now`` leave the window (points stay)."""
    for o in user.get("ord", {}).values():
        if o[LIVE] and o[PAID] + cfg.spend_ms <= now:
            o[LIVE] = 0


def check_in(user: dict[str, Any], ts: int, cfg: CustomersConfig) -> int:
    """Points of a check-in: ``check_in_points`` for the first of its business day."""
    day = datetime.fromtimestamp(ts / 1000, cfg.zone).date().toordinal()
    days = user.setdefault("ci", [])
    if day in days:
        return 0
    days.append(day)
    user["pts"] = user.get("pts", 0) + cfg.check_in_points
    return cfg.check_in_points


def review(user: dict[str, Any], order_id: str, cfg: CustomersConfig) -> bool:
    """A review: ``review_points`` for the first of the order (paid or not); True then."""
    reviewed = user.setdefault("rev", [])
    if order_id in reviewed:
        return False
    reviewed.append(order_id)
    user["pts"] = user.get("pts", 0) + cfg.review_points
    return True


def redeem(user: dict[str, Any], points: int) -> str | None:
    """Spend ``points``; the refusal's detail when the balance is short (nothing changed)."""
    balance = user.get("pts", 0)
    if balance < points:
        return f"balance {balance} < {points}"
    user["pts"] = balance - points
    return None
