"""Every number and id that enters is bounded; decoding never fails other than by a dead letter.

Property tests feed the decoder arbitrary bytes and events with numbers at the 2**53, 2**63
and 2**64 edges: each record counts as many events as it yields valid events plus dead
letters, and whatever passes is inside the documented ranges.
"""

from __future__ import annotations

import json

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream.kafka_io.envelope import Reason, decode_record, record_bound
from shopstream.schemas.events import MAX_ID_BYTES, MAX_MONEY, MAX_QTY
from shopstream.schemas.validate import validate_event

BASE = {"event_id": "e1", "ts": 1_794_326_400_000, "user_id": "u1", "channel": "search"}
EDGES = [0, 1, -1, MAX_MONEY, MAX_MONEY + 1, 2**31, 2**53 - 1, 2**53, 2**53 + 1, 2**62,
         2**63 - 1, 2**63, 2**64 - 1, -(2**63), MAX_QTY, MAX_QTY + 1]


def payment(amount: object) -> dict[str, object]:
    return {**BASE, "type": "payment", "order_id": "o1", "amount": amount, "status": "success"}


def ad_cost(cost: object) -> dict[str, object]:
    """A campaign's spend: no user."""
    return {"event_id": "e1", "ts": BASE["ts"], "type": "ad_cost", "campaign": "c1",
            "channel": "ads", "cost": cost}


@pytest.mark.parametrize("amount", EDGES)
def test_money_is_bounded(amount):
    err = validate_event(payment(amount))
    assert (err is None) == (0 <= amount <= MAX_MONEY)
    if err is not None:
        assert err.field == "amount" and "10**12" in err.expected
    err = validate_event(ad_cost(amount))
    assert (err is None) == (0 <= amount <= MAX_MONEY)
    if err is not None:
        assert err.field == "cost" and "10**12" in err.expected


@pytest.mark.parametrize("qty", EDGES)
def test_quantities_and_order_lines_are_bounded(qty):
    cart = {**BASE, "type": "cart_add", "sku": "s1", "qty": qty, "price": 100}
    assert (validate_event(cart) is None) == (1 <= qty <= MAX_QTY)
    order = {**BASE, "type": "order_submit", "order_id": "o1", "amount": 1,
             "items": [{"sku": "s1", "qty": qty, "price": 1}]}
    assert (validate_event(order) is None) == (1 <= qty <= MAX_QTY)
    lines = {**order, "items": [{"sku": "s1", "qty": 1, "price": 1}] * 1001}
    assert validate_event(lines).field == "items"


@pytest.mark.parametrize(("user_id", "ok"), [
    ("u" * MAX_ID_BYTES, True), ("u" * (MAX_ID_BYTES + 1), False),
    ("中" * 42, True), ("中" * 43, False),  # 3 bytes each in UTF-8: 126 and 129 bytes
])
def test_ids_are_at_most_128_bytes(user_id, ok):
    err = validate_event({**payment(100), "user_id": user_id})
    assert (err is None) == ok
    if not ok:
        assert err.field == "user_id" and "128 bytes" in err.expected


def _decode(raw: bytes):
    events, dead = [], []
    n = decode_record(raw, "t", 0, 7, 1_048_576, events, dead)
    return n, events, dead


def _check(raw: bytes) -> None:
    n, events, dead = _decode(raw)
    assert n == len(events) + len(dead)
    assert all(isinstance(d.reason, Reason) for d in dead)
    for ev in events:
        assert validate_event(ev) is None
        for key in ("amount", "price"):
            if hasattr(ev, key):
                assert 0 <= getattr(ev, key) <= MAX_MONEY


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_dead_letter(raw):
    _check(raw)


numbers = st.one_of(st.sampled_from(EDGES), st.integers(),
                    st.floats(allow_nan=False, allow_infinity=False))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(numbers, numbers), min_size=1, max_size=20))
def test_events_at_integer_edges_decode_or_dead_letter(pairs):
    items = [{**(payment(a) if i % 2 else ad_cost(a)), "event_id": f"e{i}", "extra": b}
             for i, (a, b) in enumerate(pairs)]
    raw = json.dumps(items).encode()
    _check(raw)
    _, events, _ = _decode(raw)
    assert len(events) == sum(1 for a, _ in pairs
                              if type(a) is int and 0 <= a <= MAX_MONEY)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["stock_update", "order_return"]), numbers,
                          st.booleans()), min_size=1, max_size=20))
def test_stock_events_at_integer_edges_decode_or_dead_letter(rows):
    """A stock count may be 0, a returned quantity not; only the stock update, not about a
    user, may lack ``user_id``."""
    items = []
    for i, (etype, qty, with_user) in enumerate(rows):
        ev = {**BASE, "event_id": f"e{i}", "type": etype, "sku": "s1", "qty": qty}
        if etype == "order_return":
            ev["order_id"] = "o1"
        if not with_user:
            del ev["user_id"]
        items.append(ev)
    raw = json.dumps(items).encode()
    _check(raw)
    _, events, dead = _decode(raw)
    low = {"stock_update": 0, "order_return": 1}
    assert len(events) == sum(1 for t, q, u in rows if type(q) is int and low[t] <= q <= MAX_QTY
                              and (u or t == "stock_update"))
    assert all(d.reason == Reason.INVALID_FIELD for d in dead)


def test_nesting_deeper_than_json_encoders_allow_is_still_decoded_and_counted():
    raw = orjson.dumps({**payment(5), "extra": {"x": 1}})[:-1] + b',"deep":' + (
        b'{"x":' * 300 + b"1" + b"}" * 300) + b"}"
    n, events, dead = _decode(raw)
    assert n == 1 and len(events) + len(dead) == 1


NOW = 1_796_000_000_000


@pytest.mark.parametrize(("stamp", "clock"), [
    (NOW - 60_000, NOW - 60_000),  # its own timestamp, whenever it is read
    (None, NOW), (-1, NOW), (0, NOW),  # none: the reader's clock
    (NOW + 86_400_000, NOW),  # ahead of the reader (a clock ahead, a forged stamp): the reader's
])
def test_the_future_bound_is_judged_against_the_record_timestamp(stamp, clock):
    bound = record_bound(stamp, 300_000, NOW)
    assert bound is not None and bound.latest == clock + 300_000
    items = [{**BASE, "event_id": f"e{i}", "type": "page_view", "page": "x", "ts": ts}
             for i, ts in enumerate((clock + 300_000, clock + 300_001, 4_070_908_800_000))]
    events, dead = [], []
    assert decode_record(orjson.dumps(items), "t", 0, 7, 1_048_576, events, dead, bound) == 3
    assert [e.event_id for e in events] == ["e0"]
    assert [(d.reason, d.index, d.error.field) for d in dead] == [
        (Reason.FUTURE_TS, 1, "ts"), (Reason.FUTURE_TS, 2, "ts")]
    assert "max_future_ms=300000 ahead of" in dead[0].detail
    assert str(clock + 300_000) in dead[0].detail
    # A lone event (not an envelope) is judged the same way, as the whole record.
    events, dead = [], []
    decode_record(orjson.dumps(items[1]), "t", 0, 8, 1_048_576, events, dead, bound)
    assert events == [] and [(d.reason, d.index) for d in dead] == [(Reason.FUTURE_TS, -1)]


def test_a_bound_of_zero_is_off_and_an_invalid_ts_stays_invalid_field():
    assert record_bound(NOW, 0, NOW) is None
    far = {**BASE, "type": "page_view", "page": "x", "ts": 4_070_908_800_000}
    events, dead = [], []
    decode_record(orjson.dumps(far), "t", 0, 7, 1_048_576, events, dead, None)
    assert [msgspec.to_builtins(e) for e in events] == [far] and dead == []
    beyond = {**far, "ts": 2**63 - 1}
    decode_record(orjson.dumps(beyond), "t", 0, 8, 1_048_576, events, dead,
                  record_bound(NOW, 300_000, NOW))
    assert [d.reason for d in dead] == [Reason.INVALID_FIELD]
