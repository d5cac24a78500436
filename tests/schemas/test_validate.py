import pytest

from shopstream.schemas.events import EVENT_TYPES
from shopstream.schemas.validate import validate_event

BASE = {"event_id": "e1", "ts": 1_794_326_400_000, "user_id": "u1", "channel": "search"}
GOOD = {
    "page_view": {"page": "home"},
    "product_view": {"sku": "s1", "price": 19900},
    "cart_add": {"sku": "s1", "qty": 2, "price": 19900},
    "cart_remove": {"sku": "s1", "qty": 1},
    "order_submit": {"order_id": "o1", "amount": 39800,
                     "items": [{"sku": "s1", "qty": 2, "price": 19900}]},
    "payment": {"order_id": "o1", "amount": 39800, "status": "success"},
    "order_cancel": {"order_id": "o1"},
    "live_start": {"room_id": "r1"},
    "live_end": {"room_id": "r1"},
    "live_join": {"room_id": "r1"},
    "live_leave": {"room_id": "r1"},
    "live_comment": {"room_id": "r1"},
    "live_like": {"room_id": "r1", "count": 3},
    "coupon_redeem": {"coupon_id": "c1", "order_id": "o1"},
    "flash_sale_claim": {"sale_id": "f1", "sku": "s1", "qty": 1, "reservation_id": "r1"},
    "stock_update": {"sku": "s1", "qty": 0, "warehouse": "w1"},
    "order_return": {"order_id": "o1", "sku": "s1", "qty": 1, "reason": "damaged"},
    "ad_cost": {"campaign": "c1", "channel": "ads", "cost": 5000, "keyword": "phone"},
    "refund": {"order_id": "o1", "amount": 19900},
    "review": {"order_id": "o1", "rating": 2, "text": "late"},
    "check_in": {},
    "points_redeem": {"points": 100, "reward": "coupon-1y"},
    "task_ack": {"task_id": "t1"},
    "referral": {"referrer_id": "u2", "invitee_id": "u1"},
    "group_buy_join": {"group_id": "g1", "sku": "s1", "target": 3, "window_min": 1440},
}


def event(etype, **over):
    return {**BASE, "type": etype, **GOOD[etype], **over}


def test_every_type_has_a_valid_example():
    assert set(GOOD) == set(EVENT_TYPES)
    for etype in GOOD:
        assert validate_event(event(etype)) is None, etype


@pytest.mark.parametrize(
    ("ev", "field", "expected_part", "got"),
    [
        ([1, 2], "", "JSON object", "list"),
        ({**BASE, "type": "teleport"}, "type", "one of", "'teleport'"),
        ({k: v for k, v in event("payment").items() if k != "user_id"}, "user_id", "string",
         "missing"),
        (event("payment", amount=-5), "amount", "fen >= 0", "-5"),
        (event("payment", amount=12.5), "amount", "fen >= 0", "12.5"),
        (event("payment", amount="100"), "amount", "fen >= 0", "'100'"),
        (event("payment", status="pending"), "status", "success|failed", "'pending'"),
        (event("cart_add", qty=0), "qty", ">= 1", "0"),
        (event("cart_add", qty=True), "qty", ">= 1", "True"),
        (event("page_view", ts=1_794_326_400), "ts", "epoch milliseconds", "1794326400"),
        (event("page_view", channel="tv"), "channel", "search|ads", "'tv'"),
        (event("order_submit", items=[]), "items", "non-empty array", "[]"),
        (event("order_submit", items=[{"sku": "s", "qty": 1, "price": -1}]), "items", "array",
         "price"),
        (event("stock_update", qty=-1), "qty", ">= 0", "-1"),
        (event("stock_update", qty=10**6 + 1), "qty", "<= 10**6", "1000001"),
        (event("stock_update", sku=""), "sku", "string", "''"),
        (event("stock_update", user_id=""), "user_id", "string", "''"),
        ({k: v for k, v in event("order_return").items() if k != "user_id"}, "user_id",
         "string", "missing"),
        (event("order_return", qty=0), "qty", ">= 1", "0"),
        (event("order_return", reason="r" * 129), "reason", "128 bytes", "rrr"),
        (event("ad_cost", cost=10**12 + 1), "cost", "fen >= 0", "1000000000001"),
        (event("ad_cost", cost=-1), "cost", "fen >= 0", "-1"),
        ({k: v for k, v in event("ad_cost").items() if k != "campaign"}, "campaign", "string",
         "missing"),
        ({k: v for k, v in event("ad_cost").items() if k != "channel"}, "channel", "search|ads",
         "missing"),
        (event("ad_cost", keyword="k" * 129), "keyword", "128 bytes", "kkk"),
        (event("ad_cost", creative=""), "creative", "128 bytes", "''"),
        (event("page_view", keyword=5), "keyword", "128 bytes", "5"),
        (event("review", rating=0), "rating", ">= 1 and <= 5", "0"),
        (event("review", rating=6), "rating", ">= 1 and <= 5", "6"),
        (event("review", text=""), "text", "2048 bytes", "''"),
        ({k: v for k, v in event("review").items() if k != "order_id"}, "order_id", "string",
         "missing"),
        (event("refund", amount=10**12 + 1), "amount", "fen >= 0", "1000000000001"),
        (event("points_redeem", points=0), "points", ">= 1", "0"),
        (event("points_redeem", points=10**12 + 1), "points", "<= 10**12", "1000000000001"),
        (event("points_redeem", reward=""), "reward", "string", "''"),
        (event("task_ack", task_id="t" * 129), "task_id", "128 bytes", "ttt"),
        ({k: v for k, v in event("referral").items() if k != "invitee_id"}, "invitee_id",
         "string", "missing"),
        (event("referral", referrer_id=3), "referrer_id", "string", "3"),
        (event("group_buy_join", target=1), "target", ">= 2 and <= 1000", "1"),
        (event("group_buy_join", target=1001), "target", ">= 2 and <= 1000", "1001"),
        (event("group_buy_join", window_min=0), "window_min", ">= 1", "0"),
        (event("group_buy_join", window_min=43_201), "window_min", "43200", "43201"),
        ({k: v for k, v in event("group_buy_join").items() if k != "user_id"}, "user_id",
         "string", "missing"),
        ({k: v for k, v in event("group_buy_join").items() if k != "group_id"}, "group_id",
         "string", "missing"),
    ],
)
def test_errors_name_field_expected_and_got(ev, field, expected_part, got):
    err = validate_event(ev)
    assert err is not None
    assert err.field == field
    assert expected_part in err.expected
    assert got in err.got
    assert field in str(err) or field == ""


def test_optional_fields_are_checked_when_present():
    assert validate_event(event("page_view", sku="")) is not None
    assert validate_event(event("page_view", sku="s9")) is None
    assert validate_event(event("order_submit", live_room_id=7)).field == "live_room_id"


def test_an_event_not_about_a_user_needs_no_user_id():
    stock = {k: v for k, v in event("stock_update").items() if k != "user_id"}
    assert validate_event(stock) is None
    assert validate_event({k: v for k, v in stock.items() if k != "sku"}).field == "sku"


def test_a_referral_is_about_two_users_and_names_them_itself():
    """referral carries referrer_id and invitee_id (routed by the invitee): no user_id."""
    ref = {k: v for k, v in event("referral").items() if k != "user_id"}
    assert validate_event(ref) is None
    assert validate_event({k: v for k, v in ref.items() if k != "referrer_id"}).field == \
        "referrer_id"


def test_ad_spend_needs_no_user_id_but_a_page_view_does():
    """ad_cost is a campaign's spend: user_id is optional there, required everywhere else."""
    spend = {k: v for k, v in event("ad_cost").items() if k != "user_id"}
    assert validate_event(spend) is None
    assert validate_event({**spend, "user_id": ""}).field == "user_id"
    view = {k: v for k, v in event("page_view").items() if k != "user_id"}
    assert validate_event(view).field == "user_id"
