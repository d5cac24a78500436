"""Stock health, pure: per SKU, on hand, expected daily sales, days of cover, safety stock,
overstock and return rate, judged minute by minute of event time (docs/stock.md).

A minute's activity of a SKU (its stock updates and paid units, each with its event time, and
its returned units) is folded into the SKU's state in event-time order: an update sets the
count on hand and starts ``paid_since`` afresh; a paid unit whose payment time is later than
the latest update is taken off it (at the same millisecond, the update comes first: the unit
is not "since" it). At the minute's end the SKU is judged: its stock state (``unknown`` before
any update, ``out`` at zero or below, ``low`` below safety stock, ``over`` above the overstock
cover, else ``ok``) and whether its return rate is too high. Entering ``out``, ``low`` (but
not from ``out``: a partial restock is no drop), ``over`` or a too-high return rate raises one
alert, with an id made of its kind, SKU and minute, so a replay raises the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

import msgspec

from shopstream.core.sections import read_section
from shopstream.core.timeunits import DAY_MS, HOUR_MS, MINUTE_MS
from shopstream.sinks.buckets import bucket_start


class StockConfig(msgspec.Struct, frozen=True):
    """``[stock]`` of the config file (defaults from the playbook where it gives one)."""

    #: Business days of paid units behind the expected daily sales (today included).
    sales_days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 7
    #: Minutes of a SKU's sales history before it can be judged low or overstocked (a rate
    #: over a few minutes is noise).
    min_history_min: Annotated[int, msgspec.Meta(ge=0, le=90 * 1440)] = 60
    #: Safety stock = this x expected daily sales (the playbook's 1.5).
    safety_factor: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] = 1.5
    #: Overstocked above this many days of cover.
    overstock_days: Annotated[float, msgspec.Meta(gt=0.0, le=3650.0)] = 60.0
    #: Business days of sold and returned units behind the return rate (today included).
    return_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    #: Return rate above this raises an alert (the playbook's 15%) ...
    return_rate_max: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.15
    #: ... once the SKU sold at least this many units in the window.
    return_min_sold: Annotated[int, msgspec.Meta(ge=1, le=10**9)] = 20
    #: Hours an order's lines are kept waiting for its payment.
    order_ttl_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 90)] = 24


def parse_config(sections: Mapping[str, Any]) -> StockConfig:
    """Validate ``[stock]``; raises ConfigError naming the key."""
    return read_section(sections, "stock", StockConfig)


#: Stock states; the ones whose entry raises an alert, by alert type.
STATES: Final = ("unknown", "ok", "low", "out", "over")
ALERT_TYPES: Final = {"low": "stock_low", "out": "stock_out", "over": "stock_over",
                      "returns": "stock_return_rate"}


@dataclass(slots=True)
class Activity:
    """One SKU's events of one minute, summed over partitions."""

    #: Event time -> count of a stock update (at an equal time the later one in the SKU's
    #: partition wins, the row keeping one field per time; across partitions the larger).
    updates: dict[int, int] = field(default_factory=dict)
    #: Payment time -> units paid.
    paid: dict[int, int] = field(default_factory=dict)
    returned: int = 0


def read_row(raw: Mapping[bytes, bytes], into: dict[str, Activity]) -> None:
    """Add one partition's minute row (``sinks/stock/keys.minute_key``) to ``into``."""
    for raw_field, raw_n in raw.items():
        kind, _, rest = raw_field.decode().partition("|")
        n = int(raw_n)
        if kind == "r":
            into.setdefault(rest, Activity()).returned += n
            continue
        ts_text, _, sku = rest.partition("|")
        ts = int(ts_text)
        act = into.setdefault(sku, Activity())
        if kind == "u":
            act.updates[ts] = max(n, act.updates.get(ts, n))
        else:
            act.paid[ts] = act.paid.get(ts, 0) + n


def days_before(day: int, n: int, zone: ZoneInfo) -> int:
    """Start of the business day ``n`` days before the one starting at ``day``."""
    return bucket_start(day - n * DAY_MS + 12 * HOUR_MS, "d", zone)


def fold(doc: dict[str, Any], act: Activity, minute: int, zone: ZoneInfo) -> None:
    """Fold a minute's activity into the SKU's state ``doc`` in event-time order."""
    days: dict[str, list[int]] = doc.setdefault("days", {})
    moves = sorted([(ts, 0, q) for ts, q in act.updates.items()]
                   + [(ts, 1, u) for ts, u in act.paid.items()])
    for ts, kind, n in moves:
        if kind == 0:
            doc["update_ts"], doc["update_qty"], doc["paid_since"] = ts, n, 0
            continue
        if doc.get("update_ts") is not None and ts > doc["update_ts"]:
            doc["paid_since"] += n
        days.setdefault(str(bucket_start(ts, "d", zone)), [0, 0])[0] += n
    if act.returned:
        days.setdefault(str(bucket_start(minute, "d", zone)), [0, 0])[1] += act.returned


def _window(days: dict[str, list[int]], start: int, index: int) -> int:
    return sum(row[index] for day, row in days.items() if int(day) >= start)


def judge(sku: str, doc: dict[str, Any], minute: int, cfg: StockConfig,
          zone: ZoneInfo) -> list[dict[str, Any]]:
    """Judge the SKU at the end of ``minute``: updates ``doc``'s view and states, trims days
    out of every window, returns the alerts raised."""
    day = bucket_start(minute, "d", zone)
    days: dict[str, list[int]] = doc.setdefault("days", {})
    first = doc.setdefault("first_ms", doc.get("first_day", minute))
    sales_start = days_before(day, cfg.sales_days - 1, zone)
    span_ms = minute + MINUTE_MS - max(first, sales_start)
    expected = _window(days, sales_start, 0) * DAY_MS / span_ms
    long_enough = span_ms >= cfg.min_history_min * MINUTE_MS
    return_start = days_before(day, cfg.return_days - 1, zone)
    sold, returned = _window(days, return_start, 0), _window(days, return_start, 1)
    rate = returned / sold if sold else None
    on_hand = doc["update_qty"] - doc["paid_since"] if doc.get("update_ts") is not None else None
    safety = cfg.safety_factor * expected
    if on_hand is None:
        state = "unknown"
    elif on_hand <= 0:
        state = "out"
    elif long_enough and expected > 0 and on_hand < safety:
        state = "low"
    elif long_enough and expected > 0 and on_hand > cfg.overstock_days * expected:
        state = "over"
    else:
        state = "ok"
    high = rate is not None and sold >= cfg.return_min_sold and rate > cfg.return_rate_max
    view = {"at": minute + MINUTE_MS - 1, "on_hand": on_hand,
            "updated_at": doc.get("update_ts"), "expected_daily_sales": expected,
            "safety_stock": safety,
            "days_of_cover": on_hand / expected if on_hand is not None and expected else None,
            "state": state, "sold": sold, "returned": returned, "return_rate": rate,
            "returns_high": high}
    raised = []
    before = doc.get("state", "unknown")
    if state in ("low", "out", "over") and state != before and not (
            before == "out" and state == "low"):
        raised.append(state)
    if high and not doc.get("returns_high", False):
        raised.append("returns")
    doc["state"], doc["returns_high"], doc["view"] = state, high, view
    oldest = min(sales_start, return_start)
    for d in [d for d in days if int(d) < oldest]:
        del days[d]
    return [{"type": ALERT_TYPES[kind], "alert_id": alert_id(ALERT_TYPES[kind], sku, minute),
             "sku": sku, "minute": minute, **view} for kind in raised]


def judge_minute(docs: dict[str, dict[str, Any]], activity: dict[str, Activity], minute: int,
                 every: bool, cfg: StockConfig, zone: ZoneInfo) -> tuple[set[str],
                                                                       list[dict[str, Any]]]:
    """Fold ``minute``'s activity into ``docs`` (sku -> state) and judge the SKUs with activity,
    or every SKU when ``every`` (the first minute judged of a business day); returns the SKUs
    judged and the alerts raised, in SKU order."""
    for sku, act in activity.items():
        fold(docs.setdefault(sku, {}), act, minute, zone)
    judged = set(docs) if every else set(activity)
    alerts = [a for sku in sorted(judged) for a in judge(sku, docs[sku], minute, cfg, zone)]
    return judged, alerts


def alert_id(kind: str, sku: str, minute: int) -> str:
    """Stable across replays and workers: the alert's type, SKU and minute."""
    return hashlib.sha256(f"{kind}|{sku}|{minute}".encode()).hexdigest()[:24]
