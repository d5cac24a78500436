"""Request bodies: one-pass decode when valid, every bad field named when not."""

from __future__ import annotations

import orjson
import pytest

from shopstream.http_flash_sale import ClaimBody, PatchBody, SaleBody
from shopstream.schemas.bodies import NotAnObject, parse_body
from shopstream.sinks.flash_sale.store import SaleSpec

SALE = {"sale_id": "s-1", "sku": "k", "stock": 5, "per_user_limit": 1,
        "starts_at": 1_800_000_000_000, "ends_at": 1_800_000_060_000}


def _fields(cls, body) -> list[tuple[str, str]]:
    parsed = parse_body(cls, orjson.dumps(body))
    assert isinstance(parsed, list), parsed
    return [(e.field, e.got) for e in parsed]


def test_a_valid_body_decodes_to_its_struct():
    body = parse_body(SaleBody, orjson.dumps({**SALE, "low_stock_pct": [10, 50, 10]}))
    assert isinstance(body, SaleBody)
    assert body.spec(900, (10,)) == SaleSpec("s-1", "k", 5, 1, 1_800_000_000_000,
                                             1_800_000_060_000, 900, (50, 10))
    assert parse_body(ClaimBody, b'{"user_id": "u1", "qty": 2}') == ClaimBody("u1", 2)


def test_every_bad_field_is_named_in_field_order_then_unknown_ones():
    assert _fields(ClaimBody, {}) == [("user_id", "missing"), ("qty", "missing")]
    assert _fields(SaleBody, {**SALE, "sale_id": "a\n", "stock": True, "colour": 1,
                              "reservation_ttl_s": None}) == [
        ("sale_id", "'a\\n'"), ("stock", "True"), ("reservation_ttl_s", "None"),
        ("colour", "1")]
    assert _fields(PatchBody, {"end": False}) == [("end", "False")]


def test_ids_are_bounded_in_utf8_bytes_whichever_path_decodes_them():
    assert _fields(ClaimBody, {"user_id": "中" * 43, "qty": 1}) == [("user_id", repr("中" * 43))]
    assert isinstance(parse_body(ClaimBody, orjson.dumps({"user_id": "中" * 42, "qty": 1})),
                      ClaimBody)


def test_rules_between_fields_and_what_is_not_an_object():
    assert _fields(SaleBody, {**SALE, "ends_at": SALE["starts_at"]}) == [
        ("ends_at", str(SALE["starts_at"]))]
    assert _fields(PatchBody, {}) == [("", "{}")]
    with pytest.raises(NotAnObject):
        parse_body(ClaimBody, b"[1, 2]")
