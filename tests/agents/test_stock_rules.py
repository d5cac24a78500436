"""Stock-health rules on generated logs (100,000 events with
the defaults), minute by minute, against the
plain-Python reference (tests/agents/stock_ref.py): every judged SKU's view and every alert."""

from __future__ import annotations

from typing import Any

import pytest

from shopstream.agents.stock.rules import (
    Activity,
    StockConfig,
    judge_minute,
    parse_config,
    read_row,
)
from shopstream.core.errors import ConfigError
from shopstream.sinks.buckets import bucket_start
from tests.agents.stock_ref import MIN, SHANGHAI, Cfg, generate, reference


def minute_rows(log: list[dict[str, Any]]) -> dict[int, dict[bytes, bytes]]:
    """The rows the agent writes, one partition: each minute's updates, paid units, returns."""
    orders: dict[str, list[tuple[str, int]]] = {}
    rows: dict[int, dict[str, int]] = {}
    for ev in log:
        m = ev["ts"] // MIN * MIN
        if ev["type"] == "order_submit":
            orders[ev["order_id"]] = [(i["sku"], i["qty"]) for i in ev["items"]]
        elif ev["type"] == "payment" and ev["status"] == "success":
            for sku, qty in orders.pop(ev["order_id"], []):
                f = f"p|{ev['ts']}|{sku}"
                rows.setdefault(m, {})[f] = rows.get(m, {}).get(f, 0) + qty
        elif ev["type"] == "stock_update":
            rows.setdefault(m, {})[f"u|{ev['ts']}|{ev['sku']}"] = ev["qty"]
        elif ev["type"] == "order_return":
            f = f"r|{ev['sku']}"
            rows.setdefault(m, {})[f] = rows.get(m, {}).get(f, 0) + ev["qty"]
    return {m: {k.encode(): str(v).encode() for k, v in r.items()} for m, r in rows.items()}


def run_rules(log: list[dict[str, Any]], cfg: StockConfig) -> tuple[dict, list]:
    docs: dict[str, dict[str, Any]] = {}
    views: dict[tuple[str, int], dict[str, Any]] = {}
    alerts: list[dict[str, Any]] = []
    day = None
    for m, raw in sorted(minute_rows(log).items()):
        activity: dict[str, Activity] = {}
        read_row(raw, activity)
        today = bucket_start(m, "d", SHANGHAI)
        judged, raised = judge_minute(docs, activity, m, today != day, cfg, SHANGHAI)
        day = today
        for sku in judged:
            views[(sku, m)] = docs[sku]["view"]
        alerts += raised
    return views, alerts


FIELDS = ("on_hand", "expected_daily_sales", "safety_stock", "days_of_cover", "state", "sold",
          "returned", "return_rate", "returns_high")


@pytest.mark.parametrize(("cfg", "n"), [
    (Cfg(), 100_000),
    (Cfg(sales_days=3, return_days=2, safety_factor=2.0, overstock_days=5.0, return_min_sold=5,
         min_history_min=0), 20_000)])
def test_rules_equal_the_reference_on_generated_logs(cfg: Cfg, n: int) -> None:
    log = generate(n, seed=7)
    want_views, want_alerts = reference(log, cfg)
    got_views, got_alerts = run_rules(log, StockConfig(**cfg.__dict__))
    assert sorted(got_views) == sorted(want_views)
    for key, want in want_views.items():
        got = got_views[key]
        for f in FIELDS:
            assert got[f] == pytest.approx(want[f]), (key, f)
    assert [(a["type"], a["sku"], a["minute"], a["alert_id"]) for a in got_alerts] == [
        (a["type"], a["sku"], a["minute"], a["alert_id"]) for a in want_alerts]
    kinds = {a["type"] for a in want_alerts}
    assert kinds == {"stock_low", "stock_out", "stock_over", "stock_return_rate"}, kinds
    assert any(a["sku"] == "sku0" and a["type"] == "stock_return_rate" for a in want_alerts)


def test_a_payment_at_the_update_time_is_not_since_it() -> None:
    docs: dict[str, dict[str, Any]] = {}
    act = {"s": Activity(updates={1000: 10}, paid={1000: 3, 1001: 2})}
    judge_minute(docs, act, 0, True, StockConfig(), SHANGHAI)
    assert docs["s"]["view"]["on_hand"] == 8


def test_a_rate_over_minutes_judges_nothing_until_the_history_is_long_enough() -> None:
    """Five units sold in a SKU's first minute are 7,200 a day at that rate: far below a
    safety stock of 1.5 days for 10 on hand, yet judged only once min_history_min passed."""
    cfg = StockConfig(min_history_min=3)
    docs: dict[str, dict[str, Any]] = {}
    judge_minute(docs, {"s": Activity(updates={0: 10}, paid={1: 5})}, 0, True, cfg, SHANGHAI)
    view = docs["s"]["view"]
    assert view["expected_daily_sales"] == 5 * 1440
    assert (view["on_hand"], view["state"]) == (5, "ok")
    _, raised = judge_minute(docs, {"s": Activity(paid={2 * MIN: 1})}, 2 * MIN, False, cfg,
                             SHANGHAI)
    assert docs["s"]["view"]["expected_daily_sales"] == 6 * 1440 / 3
    assert [a["type"] for a in raised] == ["stock_low"]


def test_the_section_is_typed_and_refuses_unknown_keys() -> None:
    assert parse_config({"stock": {"safety_factor": 2}}).safety_factor == 2
    with pytest.raises(ConfigError, match="unknown keys"):
        parse_config({"stock": {"safety": 2}})
    with pytest.raises(ConfigError, match="stock.sales_days"):
        parse_config({"stock": {"sales_days": 0}})
