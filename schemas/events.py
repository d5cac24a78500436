"""Event types and their fields: the contract producers and agents share.

Every event is one JSON object. Money is integer fen, time is epoch milliseconds.

Every number and string that enters has a bounded range (below), chosen so that no counter
shopstream keeps can overflow a signed 64-bit integer within its bucket's lifetime and no
value loses precision in Redis's Lua (doubles, exact to 2**53); the arithmetic is in
docs/guarantees.md.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

#: Longest id or label, in UTF-8 bytes (user, session, order, sku, room, sale, campaign...).
MAX_ID_BYTES: Final = 128
#: Longest free text (a page path), in UTF-8 bytes.
MAX_TEXT_BYTES: Final = 2048
#: Most money one event may carry: 10**12 fen = 10 billion yuan.
MAX_MONEY: Final = 10**12
#: Largest quantity (units of an order line or a cart change, likes in one event).
MAX_QTY: Final = 10**6
#: Most lines one order may have.
MAX_ITEMS: Final = 1000


class Kind(StrEnum):
    """How a field's value is checked."""

    STR = "non-empty string of at most 128 bytes"
    TEXT = "non-empty string of at most 2048 bytes"
    TS = "epoch milliseconds (integer)"
    MONEY = "integer fen >= 0 and <= 10**12"
    QTY = "integer >= 1 and <= 10**6"
    CHANNEL = "one of search|ads|recommend|live|social|push|direct|other"
    PAY_STATUS = "one of success|failed"
    ITEMS = ("non-empty array of at most 1000 {sku: string of at most 128 bytes, "
             "qty: integer >= 1 and <= 10**6, price: integer fen >= 0 and <= 10**12}")


#: Room-wide events: a copy goes to every partition, because a room's viewers are spread over
#: the partitions by user and each partition closes its own views in its own order.
ROOM_WIDE_TYPES: Final = frozenset({"live_start", "live_end"})

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
    "page_view": ({"page": Kind.TEXT}, {"sku": Kind.STR}),
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
