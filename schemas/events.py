"""Event types and their fields: the contract producers and agents share.

Every event is one JSON object. Money is integer fen, time is epoch milliseconds.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Kind(StrEnum):
    """How a field's value is checked."""

    STR = "non-empty string"
    TS = "epoch milliseconds (integer)"
    MONEY = "integer fen >= 0"
    QTY = "integer >= 1"
    COUNT = "integer >= 0"
    CHANNEL = "one of search|ads|recommend|live|social|push|direct|other"
    PAY_STATUS = "one of success|failed"
    ITEMS = "non-empty array of {sku: string, qty: integer >= 1, price: integer fen >= 0}"


CHANNELS: Final = ("search", "ads", "recommend", "live", "social", "push", "direct", "other")

#: Fields every event has (required) and may have (optional).
COMMON_REQUIRED: Final[dict[str, Kind]] = {
    "event_id": Kind.STR,
    "type": Kind.STR,
    "ts": Kind.TS,
    "user_id": Kind.STR,
}
COMMON_OPTIONAL: Final[dict[str, Kind]] = {
    "session_id": Kind.STR,
    "channel": Kind.CHANNEL,
    "campaign": Kind.STR,
    "region": Kind.STR,
    "device": Kind.STR,
}

#: type -> (required fields, optional fields), beyond the common ones.
EVENT_TYPES: Final[dict[str, tuple[dict[str, Kind], dict[str, Kind]]]] = {
    "page_view": ({"page": Kind.STR}, {"sku": Kind.STR}),
    "product_view": ({"sku": Kind.STR, "price": Kind.MONEY}, {}),
    "cart_add": ({"sku": Kind.STR, "qty": Kind.QTY, "price": Kind.MONEY}, {}),
    "cart_remove": ({"sku": Kind.STR, "qty": Kind.QTY}, {}),
    "order_submit": (
        {"order_id": Kind.STR, "items": Kind.ITEMS, "amount": Kind.MONEY},
        {"coupon_id": Kind.STR, "live_room_id": Kind.STR, "reservation_id": Kind.STR},
    ),
    "payment": ({"order_id": Kind.STR, "amount": Kind.MONEY, "status": Kind.PAY_STATUS}, {}),
    "order_cancel": ({"order_id": Kind.STR}, {}),
    "live_start": ({"room_id": Kind.STR}, {}),
    "live_end": ({"room_id": Kind.STR}, {}),
    "live_join": ({"room_id": Kind.STR}, {}),
    "live_leave": ({"room_id": Kind.STR}, {}),
    "live_comment": ({"room_id": Kind.STR}, {}),
    "live_like": ({"room_id": Kind.STR, "count": Kind.QTY}, {}),
    "coupon_redeem": ({"coupon_id": Kind.STR, "order_id": Kind.STR}, {}),
    "flash_sale_claim": (
        {"sale_id": Kind.STR, "sku": Kind.STR, "qty": Kind.QTY, "reservation_id": Kind.STR},
        {},
    ),
}
