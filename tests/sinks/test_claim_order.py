"""The order budgets are claimed in (sinks/budget_order.py), without Redis: only final pushes
with a coupon of a budgeted rule, all partitions' together by (ts, push_id), per rule."""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis.asyncio as aioredis

from shopstream.sinks.budget_order import BudgetClaimer, claim_order

BUDGETS: dict[str, int | None] = {"new_user": 3, "cart_recovery": 0, "threshold_nudge": None}


def push(pid: str, rule: str, ts: int, coupon_fen: int = 1000) -> dict[str, Any]:
    return {"push_id": pid, "rule": rule, "ts": ts, "coupon_fen": coupon_fen}


def test_final_budgeted_pushes_by_time_then_id_per_rule() -> None:
    pushes = [push("b", "new_user", 20), push("a", "new_user", 20), push("c", "new_user", 10),
              push("late", "new_user", 100),            # not final yet
              push("z", "cart_recovery", 5),            # a budget of 0 is a budget
              push("free", "cart_recovery", 1, 0),      # no coupon: no budget
              push("open", "threshold_nudge", 1),       # no budget
              push("other", "live_followup", 1)]        # a rule the relay has no budget for
    rng = random.Random(5)
    for _ in range(5):  # whatever partition order the outboxes were read in
        rng.shuffle(pushes)
        assert claim_order(pushes, BUDGETS, final_before=100) == {
            ("new_user", 3): ["c", "a", "b"], ("cart_recovery", 0): ["z"]}


def test_nothing_is_final_before_the_first_push() -> None:
    assert claim_order([push("a", "new_user", 10)], BUDGETS, final_before=10) == {}


def test_a_relay_of_budgets_needs_the_final_clock() -> None:
    client = aioredis.Redis()  # never connected: nothing is claimed here
    with pytest.raises(ValueError, match="final_before"):
        BudgetClaimer(client, "app", 4, BUDGETS, None)
    assert BudgetClaimer(client, "app", 4, {"new_user": None}, None).final_before is None
