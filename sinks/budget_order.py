"""Campaign budgets claimed in event-time order across partitions, whatever their progress.

A budget is global while partitions advance at their own pace, so claiming it partition by
partition in relay order would give its last coupons to whichever partition relayed first. A
budgeted push (a coupon, a rule with a budget) is therefore claimed only once it is final: its
``ts`` lies before ``final_before`` (every partition's watermark less the allowed lateness), so
no push before it can still be decided, except from a late event. The final budgeted pushes of
all partitions are claimed together, in (ts, push_id) order, by one claimer at a time (a global
lease), one call of ``budget_claim.lua`` per rule; the partition relays publish a budgeted push
only once its answer is in the claims hash. The claims hash keeps every answer, so a claimer
that crashed and ran again, or two that overlapped, grant nothing twice and in the same order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from shopstream.core import codec
from shopstream.sinks.coupons.keys import budget_keys, claimer_lock, coupon_keys
from shopstream.sinks.locks import lease
from shopstream.sinks.redis_state import Redis

_CLAIM_LUA = (Path(__file__).parent / "budget_claim.lua").read_text()
#: A claimer holding the global lease longer than this is presumed dead (a pass is one read
#: of the outboxes and one call per rule).
CLAIM_LOCK_MS = 20_000

#: After every push's ts: the frontier once the log has ended.
END_OF_TIME = 2**63 - 1

#: Event time (epoch ms) before which every push is final; None while a partition applied
#: nothing (agents/lateness.final_before).
FinalBefore = Callable[[], Awaitable[int | None]]


def budget_of(push: Mapping[str, Any], budgets: Mapping[str, int | None]) -> int | None:
    """The budget a push claims a coupon from: None without a coupon or without a budget."""
    return budgets.get(push["rule"]) if push["coupon_fen"] > 0 else None


def claim_order(pushes: Iterable[Mapping[str, Any]], budgets: Mapping[str, int | None],
                final_before: int) -> dict[tuple[str, int], list[str]]:
    """The final budgeted pushes' ids per (rule, budget), each list in (ts, push_id) order:
    the order the budget grants them in, whatever partition they were decided on."""
    final = sorted((p["ts"], p["push_id"], p["rule"], budget) for p in pushes
                   if (budget := budget_of(p, budgets)) is not None and p["ts"] < final_before)
    out: dict[tuple[str, int], list[str]] = {}
    for _, pid, rule, budget in final:
        out.setdefault((rule, budget), []).append(pid)
    return out


class BudgetClaimer:
    """Claims the final budgeted pushes of every partition, and tells the partition relays
    the answers."""

    def __init__(self, redis: Redis, app: str, partitions: int,
                 budgets: Mapping[str, int | None], final_before: FinalBefore | None) -> None:
        budgeted = any(b is not None for b in budgets.values())
        if final_before is None and budgeted:
            raise ValueError("a relay of budgeted rules needs final_before")
        self.redis = redis
        self.app = app
        self.partitions = partitions
        self.budgets = budgets
        #: None without budgets: then a pass claims nothing and costs no round trip.
        self.final_before = final_before if budgeted else None
        self._claim = redis.register_script(_CLAIM_LUA)

    async def claim(self, log_ended: bool = False) -> int:
        """One pass: every final budgeted push not relayed yet, claimed in (ts, push_id)
        order; none while another claimer holds the lease. ``log_ended``: no event follows
        (the end of a backtest's log), so every push is final. Returns pushes claimed."""
        if self.final_before is None:
            return 0
        async with lease(self.redis, claimer_lock(self.app), CLAIM_LOCK_MS) as held:
            if not held:
                return 0
            frontier = END_OF_TIME if log_ended else await self.final_before()
            if frontier is None:
                return 0
            # After the frontier: every push before it that no late event decided is written.
            async with self.redis.pipeline(transaction=False) as pipe:
                for p in range(self.partitions):
                    pipe.hvals(coupon_keys(self.app, p).outbox)
                rows = await pipe.execute()
            order = claim_order((codec.loads(v) for row in rows for v in row), self.budgets,
                                frontier)
            for (rule, budget), pids in order.items():
                await self._claim(keys=budget_keys(self.app, rule), args=[budget, *pids])
            return sum(len(pids) for pids in order.values())

    async def answers(self, pushes: Iterable[Mapping[str, Any]]) -> dict[str, bool]:
        """push_id -> granted, of the budgeted ``pushes`` already claimed (the others wait
        for a claim pass)."""
        by_rule: dict[str, list[str]] = {}
        for push in pushes:
            if budget_of(push, self.budgets) is not None:
                by_rule.setdefault(push["rule"], []).append(push["push_id"])
        out: dict[str, bool] = {}
        for rule, pids in by_rule.items():
            got = await self.redis.hmget(budget_keys(self.app, rule)[1], pids)
            out.update((pid, bool(int(v))) for pid, v in zip(pids, got, strict=True)
                       if v is not None)
        return out
