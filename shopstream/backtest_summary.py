"""A backtest's numbers from what its run left, pure: pushes per rule and outcome, coupons and
budgets over event time, live follow-ups, and the paid GMV that followed a push in the log.

Only event time appears here (hours are epoch-ms starts of UTC hours), so the same run gives
the same numbers.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from shopstream.backtest_log import Paid
from shopstream.core.timeunits import HOUR_MS

#: Every outcome the report gives per rule: decisions (counted by the workers) and deliveries
#: (the relay's results).
OUTCOMES = ("sent", "capped", "suppressed", "deferred", "budget_exhausted", "failed",
            "ineligible")
#: Outcomes the relay records per push (``push:results``); the others are decisions.
DELIVERIES = frozenset({"sent", "budget_exhausted", "failed"})
GMV_NOTE = "what the log shows after a push, not a causal estimate"


def push_outcomes(decisions: Mapping[tuple[str, str], int], results: Mapping[str, str],
                  rule_of: Mapping[str, str], rules: Iterable[str]) -> dict[str, dict[str, int]]:
    """{rule: {outcome: n}}: decisions as the workers counted them, deliveries by push id from
    the relay's results (``rule_of`` names each push's rule); every outcome of every rule in
    ``rules`` or seen, zeros included."""
    counts: Counter[tuple[str, str]] = Counter(
        {k: n for k, n in decisions.items() if k[1] not in DELIVERIES})
    counts.update((rule_of[pid], result) for pid, result in results.items())
    names = sorted(set(rules) | {rule for rule, _ in counts})
    return {rule: {o: counts[(rule, o)] for o in OUTCOMES} for rule in names}


def _hour(ts: int) -> int:
    return ts // HOUR_MS * HOUR_MS


def coupons(pushes: list[dict[str, Any]]) -> dict[str, Any]:
    """Coupons granted (pushes sent with a coupon) and their face value, in all and per hour
    of the push's time."""
    by_hour: dict[int, list[int]] = {}
    for p in pushes:
        if p["coupon_fen"] > 0:
            row = by_hour.setdefault(_hour(p["ts"]), [0, 0])
            row[0] += 1
            row[1] += p["coupon_fen"]
    return {"granted": sum(r[0] for r in by_hour.values()),
            "face_value_fen": sum(r[1] for r in by_hour.values()),
            "by_hour": [{"hour": h, "granted": r[0], "face_value_fen": r[1]}
                        for h, r in sorted(by_hour.items())]}


def budgets(pushes: list[dict[str, Any]], limits: Mapping[str, int | None]) -> dict[str, Any]:
    """Per coupon rule: its budget (None: unlimited) and the coupons used, cumulative, at the
    end of each hour in which one was granted."""
    out: dict[str, Any] = {}
    for rule, budget in sorted(limits.items()):
        per_hour = Counter(_hour(p["ts"]) for p in pushes
                           if p["rule"] == rule and p["coupon_fen"] > 0)
        used, rows = 0, []
        for hour in sorted(per_hour):
            used += per_hour[hour]
            rows.append({"hour": hour, "used": used})
        out[rule] = {"budget": budget, "used": used, "used_by_hour": rows}
    return out


def live_followups(pushes: list[dict[str, Any]]) -> dict[str, Any]:
    rooms = Counter(p["room"] for p in pushes if p["rule"] == "live_followup")
    return {"total": sum(rooms.values()), "by_room": dict(sorted(rooms.items()))}


def gmv_after_push(pushes: list[dict[str, Any]], paid: list[Paid], hours: float) -> dict[str, Any]:
    """Orders paid by a pushed user within ``hours`` after a push sent to them (ts <= paid ts <=
    push ts + window), each order once (its first successful payment), credited to the latest
    push before it (ties by push id)."""
    window = int(hours * HOUR_MS)
    by_user: dict[str, list[tuple[int, str, str]]] = {}
    for p in pushes:
        by_user.setdefault(p["user_id"], []).append((p["ts"], p["push_id"], p["rule"]))
    for rows in by_user.values():
        rows.sort()
    first: dict[str, Paid] = {}
    for pay in paid:
        seen = first.get(pay.order_id)
        if seen is None or pay.ts < seen.ts:
            first[pay.order_id] = pay
    orders = 0
    paid_fen = 0
    by_rule: dict[str, list[int]] = {}
    for pay in first.values():
        sent = by_user.get(pay.user_id, [])
        i = bisect.bisect_right(sent, (pay.ts, "\U0010ffff", ""))
        if i == 0 or pay.ts - sent[i - 1][0] > window:
            continue
        rule = sent[i - 1][2]
        orders += 1
        paid_fen += pay.amount_fen
        acc = by_rule.setdefault(rule, [0, 0])
        acc[0] += 1
        acc[1] += pay.amount_fen
    return {"window_hours": hours, "orders": orders, "paid_fen": paid_fen,
            "by_rule": {r: {"orders": n, "paid_fen": f} for r, (n, f) in sorted(by_rule.items())},
            "note": GMV_NOTE}
