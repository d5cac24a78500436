"""The one-pass decoder (msgspec Structs) and the hand checks that name errors agree on what
is valid, value by value, at every bound (lengths in UTF-8 bytes included); what it decodes
is the event the JSON says."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream.schemas import decode
from shopstream.schemas.events import (
    COMMON_OPTIONAL,
    COMMON_REQUIRED,
    EVENT_TYPES,
    MAX_ID_BYTES,
    MAX_MONEY,
    MAX_QTY,
    MAX_TEXT_BYTES,
    MAX_TS,
    MIN_TS,
)
from shopstream.schemas.validate import problems
from tests.schemas.test_validate import BASE, GOOD

_ints = st.sampled_from([0, 1, -1, MAX_MONEY, MAX_MONEY + 1, MAX_QTY, MAX_QTY + 1, MIN_TS - 1,
                         MIN_TS, MAX_TS, MAX_TS + 1, 2**63, -(2**64), True, 1.0, 2, 5, 6,
                         1000, 1001, 43_200, 43_201])
# Around the byte bounds: ASCII, 3-byte characters and a 4-byte one, at and past the limit.
_strs = st.sampled_from(["", "a", "a" * MAX_ID_BYTES, "a" * (MAX_ID_BYTES + 1), "中" * 42,
                         "中" * 43, "😀" * 32, "😀" * 33, "p" * MAX_TEXT_BYTES,
                         "页" * 682, "页" * 683, "success", "failed", "ads", "Ads"])
_values = st.one_of(_ints, _strs, st.none(), st.just([]), st.just({}),
                    st.lists(st.fixed_dictionaries({"sku": _strs, "qty": _ints,
                                                    "price": _ints}), max_size=2))


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    etype = draw(st.sampled_from(sorted(EVENT_TYPES)))
    ev: dict[str, Any] = {**BASE, "type": etype, **GOOD[etype]}
    required, optional = EVENT_TYPES[etype]
    names = sorted({*COMMON_REQUIRED, *COMMON_OPTIONAL, *required, *optional} - {"type"})
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        if draw(st.booleans()):
            ev[name] = draw(_values)
        else:
            ev.pop(name, None)
    return ev


@settings(max_examples=2000, deadline=None)
@given(_events(), st.booleans())
def test_the_decoder_accepts_exactly_what_the_hand_checks_accept(ev, escaped):
    raw = json.dumps(ev, ensure_ascii=escaped).encode()
    try:
        decoded = decode.decode_event(raw)
    except decode.DecodeFailed:
        decoded = None
    assert (decoded is not None) == (problems(orjson.loads(raw)) == []), ev
    if decoded is not None:
        # Unset optional fields are omitted, null ones too: the rest is the JSON as sent.
        sent = {k: v for k, v in ev.items() if v is not None}
        assert msgspec.to_builtins(decoded) == sent


def test_unknown_fields_are_ignored_and_the_envelope_decodes_in_one_call():
    ev = {**BASE, "type": "payment", "order_id": "o1", "amount": 5, "status": "failed",
          "note": {"any": ["thing"]}}
    (decoded,) = decode.decode_events(orjson.dumps([ev]))
    assert decoded.type == "payment" and decoded.amount == 5 and not hasattr(decoded, "note")


def test_the_simulators_events_are_events_of_the_model():
    from shopstream.simulate import Simulator

    for ev in Simulator(500, 2_000, 3).events(5_000):
        assert msgspec.to_builtins(decode.decode_event(orjson.dumps(ev))) == ev
