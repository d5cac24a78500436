"""Reading stock health back: every SKU's state as last judged, sorted by days of cover."""

from __future__ import annotations

from typing import Any

from shopstream.sinks.redis_state import Redis
from shopstream.sinks.stock.store import StockStore


def view(sku: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A SKU's answer: its last judged view, with the alert state spelled out."""
    v = doc.get("view", {})
    state = v.get("state", "unknown")
    return {"sku": sku, **v, "alerts": {"low": state == "low", "out": state == "out",
                                        "over": state == "over",
                                        "returns": bool(v.get("returns_high"))}}


def _cover_order(item: dict[str, Any]) -> tuple[int, float, str]:
    """Least cover first: out of stock, then by days of cover, SKUs without a cover last."""
    cover = item.get("days_of_cover")
    if item.get("state") == "out":
        return (0, 0.0, item["sku"])
    return (1, cover, item["sku"]) if cover is not None else (2, 0.0, item["sku"])


async def stock_page(redis: Redis, app_id: str, partitions: int, limit: int, offset: int,
                     state: str | None) -> dict[str, Any]:
    """A page of SKUs (of ``state`` when given), least days of cover first."""
    store = StockStore(redis, app_id, partitions)
    docs = await store.docs()
    items = sorted((view(sku, d) for sku, d in docs.items()), key=_cover_order)
    if state is not None:
        items = [i for i in items if i.get("state", "unknown") == state]
    judged = (await store.state()).get("judged")
    return {"skus": items[offset:offset + limit], "total": len(items), "limit": limit,
            "offset": offset, "judged_through": judged, **await store.counters()}


async def stock_of(redis: Redis, app_id: str, partitions: int, sku: str) -> dict[str, Any] | None:
    """One SKU's answer with its recent alerts, or None when never seen."""
    store = StockStore(redis, app_id, partitions)
    doc = await store.doc(sku)
    if doc is None:
        return None
    judged = (await store.state()).get("judged")
    return {**view(sku, doc), "judged_through": judged}
