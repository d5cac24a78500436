"""Cart state and the abandonment schedule, as pure functions over a user's state dict.

A user's state (one JSON value in Redis, see agents/coupons/agent.py) holds:
``items`` {sku: [qty, unit price fen]}, ``changed`` (last cart change, ms), and the schedule:
``episode`` (the cart change that armed it, or None) and ``step`` (next step index, -1 when
done). Every cart change re-arms the schedule from step 0; an order or an empty cart cancels
it. The next deadline is always ``episode + steps[step].after_ms``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shopstream.agents.coupons.rules import Step
from shopstream.schemas.events import Item


def add_item(user: dict[str, Any], sku: str, qty: int, price: int, ts: int) -> None:
    items = user.setdefault("items", {})
    old_qty = items.get(sku, [0, price])[0]
    # The latest price seen wins: carts show the current price.
    items[sku] = [old_qty + qty, price]
    user["changed"] = ts


def remove_item(user: dict[str, Any], sku: str, qty: int, ts: int) -> None:
    items = user.setdefault("items", {})
    if sku not in items:
        return
    left = items[sku][0] - qty
    if left > 0:
        items[sku][0] = left
    else:
        del items[sku]
    user["changed"] = ts


def remove_ordered(user: dict[str, Any], ordered: Sequence[Item], ts: int) -> None:
    """Ordered items leave the cart (only as many as were ordered)."""
    for item in ordered:
        remove_item(user, item.sku, item.qty, ts)


def arm(user: dict[str, Any], ts: int, steps: Sequence[Step]) -> int | None:
    """(Re)start the schedule at a cart change; returns the first deadline, None if cancelled."""
    if not user.get("items"):
        cancel(user)
        return None
    user["episode"], user["step"] = ts, 0
    return ts + steps[0].after_ms


def cancel(user: dict[str, Any]) -> bool:
    """Stop the schedule; True when a step was still pending (so a push was suppressed)."""
    pending = user.get("episode") is not None and user.get("step", -1) >= 0
    user["episode"], user["step"] = None, -1
    return pending


def deadline(user: dict[str, Any], steps: Sequence[Step]) -> int | None:
    if user.get("episode") is None or user.get("step", -1) < 0:
        return None
    return int(user["episode"]) + steps[user["step"]].after_ms


def fire(user: dict[str, Any], at: int, steps: Sequence[Step]) -> tuple[int, int | None] | None:
    """The timer of ``at`` went off: (step that fires, next deadline or None).

    None when the timer is stale (the schedule was re-armed or cancelled since).
    """
    if deadline(user, steps) != at:
        return None
    step = int(user["step"])
    if step + 1 < len(steps):
        user["step"] = step + 1
        return step, deadline(user, steps)
    user["step"] = -1
    return step, None
