"""The simulator's money traffic: valid events, in time order, showing what the plan says
(a campaign under ROAS 3 after its drop, SKUs that run out, one SKU returned often), and the
shoppers' own events unchanged by it."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest

from shopstream.core import codec
from shopstream.core.timeunits import MINUTE_MS
from shopstream.schemas import decode
from shopstream.simulate import Simulator
from shopstream.simulate_money import MoneyPlan

MONEY_TYPES = {"ad_cost", "stock_update", "order_return"}
PLAN = MoneyPlan(roas_drop_min=5.0, return_after_min=(0.5, 3.0))
RATE = 2_000
MINUTES = 12


@pytest.fixture(scope="module")
def log() -> list[dict[str, Any]]:
    return list(Simulator(20_000, RATE, 1, money=PLAN).events(RATE * 60 * MINUTES))


def test_the_shoppers_events_are_the_same_with_or_without_money():
    plain = list(Simulator(2_000, RATE, 5).events(60_000))
    with_money = [ev for ev in Simulator(2_000, RATE, 5, money=MoneyPlan()).events(60_000)
                  if ev["type"] not in MONEY_TYPES]
    assert with_money == plain


def test_every_event_is_valid_unique_and_in_time_order(log):
    for ev in log:
        decode.decode_event(codec.dumps(ev))
    ids = [ev["event_id"] for ev in log]
    assert len(set(ids)) == len(ids)
    times = [ev["ts"] for ev in log]
    assert times == sorted(times)
    assert set(Counter(ev["type"] for ev in log)) >= MONEY_TYPES


def _paid(log: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(payment, its order) of every successful payment."""
    orders = {ev["order_id"]: ev for ev in log if ev["type"] == "order_submit"}
    return [(ev, orders[ev["order_id"]]) for ev in log
            if ev["type"] == "payment" and ev["status"] == "success"]


def test_the_falling_campaign_spends_more_than_a_third_of_its_gmv_after_the_drop(log):
    drop = log[0]["ts"] + int(PLAN.roas_drop_min * MINUTE_MS)
    gmv: dict[tuple[str, bool], int] = defaultdict(int)
    spend: dict[tuple[str, bool], int] = defaultdict(int)
    for pay, _ in _paid(log):
        gmv[(pay["campaign"], pay["ts"] >= drop)] += pay["amount"]
    for ev in log:
        if ev["type"] == "ad_cost":
            # Spend posted at a minute pays for the minute before it.
            spend[(ev["campaign"], ev["ts"] - MINUTE_MS >= drop)] += ev["cost"]
    for (campaign, after), cost in spend.items():
        roas = gmv[(campaign, after)] / cost
        if campaign == PLAN.falling_campaign and after:
            assert roas < 3
        else:
            assert roas > 3, (campaign, after, roas)


def test_short_skus_sell_more_than_their_stock_and_the_faulty_sku_comes_back(log):
    counted = {ev["sku"]: ev["qty"] for ev in log if ev["type"] == "stock_update"}
    sold: Counter[str] = Counter()
    for _, order in _paid(log):
        for item in order["items"]:
            sold[item["sku"]] += item["qty"]
    for sku in PLAN.short_skus:
        assert counted[sku] == PLAN.short_units < sold[sku]
    returned: Counter[str] = Counter()
    for ev in log:
        if ev["type"] == "order_return":
            returned[ev["sku"]] += ev["qty"]
    others = sum(n for sku, n in returned.items() if sku != PLAN.faulty_sku)
    assert returned[PLAN.faulty_sku] / sold[PLAN.faulty_sku] > 0.15
    assert others / (sum(sold.values()) - sold[PLAN.faulty_sku]) < 0.05
