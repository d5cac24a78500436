"""A backtest report as the runner writes it (``shopstream backtest``), two configs that differ
in the cart schedule and the budget, for the HTML report's tests and its screenshot."""

from __future__ import annotations

from typing import Any

from tests.agents.coupon_support import HOUR, at

T0 = at(11, 20)
HOURS = [T0 + h * HOUR for h in range(6)]
#: An id from user data that must reach the page escaped.
NASTY = "<script>alert(1)</script>"


def config(label: str, sent: int, granted: list[int], used: list[int], budget: int | None,
           paid: int, channel: str) -> dict[str, Any]:
    """One config's section; the numbers that vary between configs are the arguments."""
    face = [g * 1_000 for g in granted]
    return {
        "label": label, "config": f"configs/{label}.toml", "sha256": "ab" * 32,
        "pushes": {
            "cart_recovery": {"sent": sent, "capped": 4, "suppressed": 12, "deferred": 3,
                              "budget_exhausted": 2, "failed": 0, "ineligible": 7},
            "live_followup": {"sent": 40, "capped": 0, "suppressed": 9, "deferred": 0,
                              "budget_exhausted": 0, "failed": 1, "ineligible": 0},
        },
        "coupons": {"granted": sum(granted), "face_value_fen": sum(face),
                    "by_hour": [{"hour": h, "granted": g, "face_value_fen": f}
                                for h, g, f in zip(HOURS, granted, face, strict=False)]},
        "budgets": {"cart_recovery": {"budget": budget, "used_by_hour": [
            {"hour": h, "used": u} for h, u in zip(HOURS, used, strict=False)]}},
        "funnels": {"purchase": {
            "stages": ["page_view", "cart_add", "order_submit", "payment"],
            "overall": {"page_view": 1_000, "cart_add": 400, "order_submit": sent + 100,
                        "payment": 90},
            "by": {"channel": {
                "search": {"page_view": 600, "cart_add": 250, "order_submit": 80, "payment": 60},
                channel: {"page_view": 400, "cart_add": 150, "order_submit": sent + 20,
                        "payment": 30}}}}},
        "flash_sales": {"drop1": {"stock": 50, "sold": 48, "reserved": 2, "sold_out_ms": T0}},
        "live_followups": {"total": 40, "by_room": {"r1": 25, "r2": 15}},
        "anomalies": [{"type": "ops_anomaly", "alert_id": "a1", "metric": "orders",
                       "minute": T0 + 3 * HOUR, "value": 3, "severity": "warning"}],
        "gmv_after_push": {"window_hours": 24, "orders": 30, "paid_fen": paid,
                           "by_rule": {"cart_recovery": {"orders": 20, "paid_fen": paid - 10**6},
                                       "live_followup": {"orders": 10, "paid_fen": 10**6}},
                           "note": "orders of a pushed user within the window after the push"},
    }


def report(channel: str = NASTY) -> dict[str, Any]:
    """Config B: a shorter cart reminder (more sent, more coupons) and a smaller budget;
    ``channel``: the funnel's second channel, an id from user data."""
    return {
        "log": {"path": "promo.jsonl", "lines": 120_345, "events": 120_000,
                "dead": {"invalid_json": 300, "schema": 45}, "duplicate": 0,
                "from_ts": HOURS[0], "to_ts": HOURS[-1] + HOUR - 1},
        "attribution_hours": 24,
        "configs": [
            config("live", 100, [5, 9, 14, 8, 3, 1], [5, 14, 28, 36, 39, 40], 50,
                   10**12 + 1, channel),
            config("cart-30min", 130, [7, 12, 15, 9, 2, 1], [7, 19, 30, 30, 30, 30], 30, 10**12,
                   channel),
        ],
    }
