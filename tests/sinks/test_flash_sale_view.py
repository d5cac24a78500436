"""Pure parts of flash sales: the operator's view and the sell-out estimate."""

from __future__ import annotations

from shopstream.sinks.flash_sale.store import estimate_sell_out, sale_of, sale_view

T0 = 1_795_000_000_000


def meta(**over: int) -> dict[str, str]:
    base = {"sale_id": "s", "sku": "k", "thresholds": "10", "stock": 100, "restocked": 20,
            "available": 30, "reserved": 40, "sold": 50, "released": 7, "limit": 2,
            "starts_at": T0, "ends_at": T0 + 60_000, "ttl_ms": 900_000, "c:ok": 90}
    base.update(over)
    return {k: str(v) for k, v in base.items()}


def test_estimate_divides_what_is_left_by_the_rate() -> None:
    assert estimate_sell_out(30, 2.0, T0) == T0 + 15_000
    assert estimate_sell_out(0, 2.0, T0) is None
    assert estimate_sell_out(30, 0.0, T0) is None


def test_view_of_a_live_sale() -> None:
    v = sale_view(meta(), recent_units=120, now=T0 + 1_000)
    assert v["state"] == "live"
    assert v["sell_through"] == round(50 / 120, 4)
    assert v["claim_rate_units_per_s"] == 2.0
    assert v["estimated_sell_out_at"] == T0 + 1_000 + 15_000
    assert v["claims"]["ok"] == 90 and v["claims"]["sold_out"] == 0


def test_view_states() -> None:
    assert sale_view(meta(), 0, T0 - 1)["state"] == "scheduled"
    assert sale_view(meta(), 0, T0 + 60_000)["state"] == "ended"
    ended = sale_view(meta(ended_at=T0 + 10), 60, T0 + 10)
    assert ended["state"] == "ended" and ended["estimated_sell_out_at"] is None


def test_reservation_id_names_its_sale() -> None:
    assert sale_of("flash-1_a:17") == "flash-1_a"
