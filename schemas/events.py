"""Event types and their fields: the contract producers and agents share.

Every event is one JSON object. Money is integer fen, time is epoch milliseconds.

Each event type is a msgspec Struct, tagged by ``type``: decoding a record into ``Event``
validates every field's type and bounds in the same pass (``schemas.decode``). The tables
``COMMON_REQUIRED``, ``COMMON_OPTIONAL`` and ``EVENT_TYPES`` are read off these classes.

Every number and string that enters has a bounded range (below), chosen so that no counter
shopstream keeps can overflow a signed 64-bit integer within its bucket's lifetime and no
value loses precision in Redis's Lua (doubles, exact to 2**53); the arithmetic is in
docs/guarantees.md. Lengths are in UTF-8 bytes; msgspec counts characters, so a string that
is not ASCII is measured again after decoding (``schemas.decode``).
"""

from __future__ import annotations

import typing
from enum import StrEnum
from typing import Annotated, ClassVar, Final, Literal

from msgspec import Meta, Struct
from msgspec.structs import fields

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
#: Largest timestamp accepted: year 2100, to catch seconds-vs-ms and garbage.
MAX_TS: Final = 4_102_444_800_000
#: Smallest: 2000-01-01; anything earlier is a unit or clock mistake.
MIN_TS: Final = 946_684_800_000


class Kind(StrEnum):
    """How a field's value is checked (the ``expected`` of an error)."""

    STR = "non-empty string of at most 128 bytes"
    TEXT = "non-empty string of at most 2048 bytes"
    TS = "epoch milliseconds (integer)"
    MONEY = "integer fen >= 0 and <= 10**12"
    QTY = "integer >= 1 and <= 10**6"
    COUNT = "integer >= 0 and <= 10**6"
    CHANNEL = "one of search|ads|recommend|live|social|push|direct|other"
    PAY_STATUS = "one of success|failed"
    RATING = "integer >= 1 and <= 5"
    POINTS = "integer >= 1 and <= 10**12"
    GROUP_SIZE = "integer >= 2 and <= 1000"
    MINUTES = "integer >= 1 and <= 43200 (30 days)"
    ITEMS = ("non-empty array of at most 1000 {sku: string of at most 128 bytes, "
             "qty: integer >= 1 and <= 10**6, price: integer fen >= 0 and <= 10**12}")


#: Room-wide events: a copy goes to every partition, because a room's viewers are spread over
#: the partitions by user and each partition closes its own views in its own order.
ROOM_WIDE_TYPES: Final = frozenset({"live_start", "live_end"})

CHANNELS: Final = ("search", "ads", "recommend", "live", "social", "push", "direct", "other")

# Field types: the msgspec bounds, and the Kind that names them in errors.
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_BYTES, description=Kind.STR.value),
               Kind.STR]
Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_BYTES,
                           description=Kind.TEXT.value), Kind.TEXT]
Ts = Annotated[int, Meta(ge=MIN_TS, le=MAX_TS, description=(
    "Epoch ms, 2000-01-01..2100-01-01, at most max_future_ms (default 300000) ahead of the "
    "API's clock; a later one is rejected invalid_field.")), Kind.TS]
Money = Annotated[int, Meta(ge=0, le=MAX_MONEY, description=Kind.MONEY.value), Kind.MONEY]
Qty = Annotated[int, Meta(ge=1, le=MAX_QTY, description=Kind.QTY.value), Kind.QTY]
#: A count that may be zero (units on hand).
Count = Annotated[int, Meta(ge=0, le=MAX_QTY, description=Kind.COUNT.value), Kind.COUNT]
Channel = Annotated[Literal["search", "ads", "recommend", "live", "social", "push", "direct",
                            "other"], Kind.CHANNEL]
PayStatus = Annotated[Literal["success", "failed"], Kind.PAY_STATUS]
#: Stars of a review.
Rating = Annotated[int, Meta(ge=1, le=5, description=Kind.RATING.value), Kind.RATING]
#: Points in one redemption: bounded like money, so a balance stays exact (docs/points.md).
Points = Annotated[int, Meta(ge=1, le=MAX_MONEY, description=Kind.POINTS.value), Kind.POINTS]
#: Members a group buy needs.
GroupSize = Annotated[int, Meta(ge=2, le=1000, description=Kind.GROUP_SIZE.value),
                      Kind.GROUP_SIZE]
#: A duration in minutes, at most 30 days.
Minutes = Annotated[int, Meta(ge=1, le=43_200, description=Kind.MINUTES.value), Kind.MINUTES]


class Item(Struct, frozen=True, gc=False):
    """One order line (unknown extra keys are ignored)."""

    sku: Id
    qty: Qty
    price: Money


Items = Annotated[list[Item], Meta(min_length=1, max_length=MAX_ITEMS), Kind.ITEMS]


class BaseEvent(Struct, tag_field="type", kw_only=True, frozen=True, gc=False,
                omit_defaults=True):
    """Fields every event has; ``type`` is the tag (a class attribute of each type).

    Unknown extra fields of the JSON object are ignored (the record's bytes keep them).
    """

    type: ClassVar[str]
    #: The field whose value picks the event's partition: a user's events stay in order on
    #: one partition. Events not about a user (a merchant's or a platform's) name another field.
    key_field: ClassVar[str] = "user_id"
    event_id: Id
    ts: Ts
    user_id: Id
    session_id: Id | None = None
    channel: Channel | None = None
    campaign: Id | None = None
    region: Id | None = None
    device: Id | None = None


class PageView(BaseEvent, tag="page_view", frozen=True):
    type: ClassVar[Literal["page_view"]] = "page_view"
    page: Text
    sku: Id | None = None
    #: The search keyword bought, on a click of a paid ad (``agents/ads``).
    keyword: Id | None = None


class ProductView(BaseEvent, tag="product_view", frozen=True):
    type: ClassVar[Literal["product_view"]] = "product_view"
    sku: Id
    price: Money


class CartAdd(BaseEvent, tag="cart_add", frozen=True):
    type: ClassVar[Literal["cart_add"]] = "cart_add"
    sku: Id
    qty: Qty
    price: Money


class CartRemove(BaseEvent, tag="cart_remove", frozen=True):
    type: ClassVar[Literal["cart_remove"]] = "cart_remove"
    sku: Id
    qty: Qty


class OrderSubmit(BaseEvent, tag="order_submit", frozen=True):
    type: ClassVar[Literal["order_submit"]] = "order_submit"
    order_id: Id
    items: Items
    amount: Money
    coupon_id: Id | None = None
    live_room_id: Id | None = None
    reservation_id: Id | None = None


class Payment(BaseEvent, tag="payment", frozen=True):
    type: ClassVar[Literal["payment"]] = "payment"
    order_id: Id
    amount: Money
    status: PayStatus


class OrderCancel(BaseEvent, tag="order_cancel", frozen=True):
    type: ClassVar[Literal["order_cancel"]] = "order_cancel"
    order_id: Id


class LiveStart(BaseEvent, tag="live_start", frozen=True):
    type: ClassVar[Literal["live_start"]] = "live_start"
    room_id: Id


class LiveEnd(BaseEvent, tag="live_end", frozen=True):
    type: ClassVar[Literal["live_end"]] = "live_end"
    room_id: Id


class LiveJoin(BaseEvent, tag="live_join", frozen=True):
    type: ClassVar[Literal["live_join"]] = "live_join"
    room_id: Id


class LiveLeave(BaseEvent, tag="live_leave", frozen=True):
    type: ClassVar[Literal["live_leave"]] = "live_leave"
    room_id: Id


class LiveComment(BaseEvent, tag="live_comment", frozen=True):
    type: ClassVar[Literal["live_comment"]] = "live_comment"
    room_id: Id


class LiveLike(BaseEvent, tag="live_like", frozen=True):
    type: ClassVar[Literal["live_like"]] = "live_like"
    room_id: Id
    count: Qty


class CouponRedeem(BaseEvent, tag="coupon_redeem", frozen=True):
    type: ClassVar[Literal["coupon_redeem"]] = "coupon_redeem"
    coupon_id: Id
    order_id: Id


class FlashSaleClaim(BaseEvent, tag="flash_sale_claim", frozen=True):
    type: ClassVar[Literal["flash_sale_claim"]] = "flash_sale_claim"
    sale_id: Id
    sku: Id
    qty: Qty
    reservation_id: Id


class StockUpdate(BaseEvent, tag="stock_update", frozen=True, kw_only=True):
    """A SKU's absolute on-hand count (a warehouse's stock take): not about a user."""

    type: ClassVar[Literal["stock_update"]] = "stock_update"
    key_field: ClassVar[str] = "sku"
    user_id: Id | None = None  # type: ignore[assignment]
    sku: Id
    qty: Count
    warehouse: Id | None = None


class OrderReturn(BaseEvent, tag="order_return", frozen=True):
    type: ClassVar[Literal["order_return"]] = "order_return"
    order_id: Id
    sku: Id
    qty: Qty
    reason: Id | None = None


class AdCost(BaseEvent, tag="ad_cost", frozen=True, kw_only=True):
    """Spend of a campaign on a channel (a merchant's, not a user's): routed by campaign."""

    type: ClassVar[Literal["ad_cost"]] = "ad_cost"
    key_field: ClassVar[str] = "campaign"
    user_id: Id | None = None  # type: ignore[assignment]  # not about a user
    campaign: Id
    channel: Channel
    cost: Money
    creative: Id | None = None
    keyword: Id | None = None


class Refund(BaseEvent, tag="refund", frozen=True):
    """Money of a paid order given back (all or part): it leaves the spend and takes the
    points it earned back (docs/customers.md)."""

    type: ClassVar[Literal["refund"]] = "refund"
    order_id: Id
    amount: Money


class Review(BaseEvent, tag="review", frozen=True):
    type: ClassVar[Literal["review"]] = "review"
    order_id: Id
    rating: Rating
    text: Text | None = None


class CheckIn(BaseEvent, tag="check_in", frozen=True):
    """The user's daily check-in (points once per business day)."""

    type: ClassVar[Literal["check_in"]] = "check_in"


class PointsRedeem(BaseEvent, tag="points_redeem", frozen=True):
    """Points spent on a reward; refused (dead-lettered) when the balance is short."""

    type: ClassVar[Literal["points_redeem"]] = "points_redeem"
    points: Points
    reward: Id


class TaskAck(BaseEvent, tag="task_ack", frozen=True):
    """Customer service took up a service task (``POST /v1/tasks/{id}/ack`` sends it)."""

    type: ClassVar[Literal["task_ack"]] = "task_ack"
    task_id: Id


class Referral(BaseEvent, tag="referral", frozen=True, kw_only=True):
    """An invitee signed up through a referrer's invitation: routed by the invitee, whose
    first paid order rewards both."""

    type: ClassVar[Literal["referral"]] = "referral"
    key_field: ClassVar[str] = "invitee_id"
    user_id: Id | None = None  # type: ignore[assignment]  # the two users are named below
    referrer_id: Id
    invitee_id: Id


class GroupBuyJoin(BaseEvent, tag="group_buy_join", frozen=True, kw_only=True):
    """A user joins a group buy: routed by the group, whose members decide it together.
    The first join may set the group's size and window (else the SKU's, else the defaults)."""

    type: ClassVar[Literal["group_buy_join"]] = "group_buy_join"
    key_field: ClassVar[str] = "group_id"
    group_id: Id
    sku: Id
    target: GroupSize | None = None
    window_min: Minutes | None = None


def routing_key(event: BaseEvent) -> str:
    """The value that picks ``event``'s partition (its ``key_field``)."""
    return str(getattr(event, event.key_field))


#: An event about a user (``user_id`` required): what per-user capabilities take.
UserEvent = (PageView | ProductView | CartAdd | CartRemove | OrderSubmit | Payment | OrderCancel
             | LiveStart | LiveEnd | LiveJoin | LiveLeave | LiveComment | LiveLike
             | CouponRedeem | FlashSaleClaim | OrderReturn | Refund | Review | CheckIn
             | PointsRedeem | TaskAck)
#: Any event: a union tagged on ``type`` (``ev.type == "payment"`` narrows it for mypy).
Event = UserEvent | StockUpdate | AdCost | Referral | GroupBuyJoin
EVENT_CLASSES: Final[tuple[type[BaseEvent], ...]] = typing.get_args(Event)
#: type -> the field that picks its partition (``key_field``), for events still in dicts.
KEY_FIELDS: Final[dict[str, str]] = {cls.type: cls.key_field for cls in EVENT_CLASSES}
#: Types of ``UserEvent``.
USER_TYPES: Final = frozenset(cls.type for cls in typing.get_args(UserEvent))
#: A viewer's own event in a live room, and any event of a room (all carry ``room_id``).
ViewerEvent = LiveJoin | LiveLeave | LiveComment | LiveLike
RoomEvent = LiveStart | LiveEnd | ViewerEvent


def _kind(hint: object) -> Kind:
    """The Kind an annotation carries (through ``X | None``)."""
    for arg in (hint, *typing.get_args(hint)):
        kinds = [m for m in getattr(arg, "__metadata__", ()) if isinstance(m, Kind)]
        if kinds:
            return kinds[0]
    raise TypeError(f"field type {hint!r} names no Kind")


def _table(cls: type[BaseEvent], own: bool) -> tuple[dict[str, Kind], dict[str, Kind]]:
    """(required, optional) fields of ``cls`` in declaration order: its own (with the common
    ones it makes optional or required, as ``user_id`` and ``campaign`` of an ad spend), or
    the common."""
    hints = typing.get_type_hints(cls, include_extras=True)
    common = {f.name: f.required for f in fields(BaseEvent)}
    required: dict[str, Kind] = {}
    optional: dict[str, Kind] = {}
    for f in fields(cls):
        changed = f.name in common and common[f.name] != f.required
        if (f.name in common and not changed) != own:
            table = required if f.required else optional
            table[f.name] = _kind(hints[f.name])
    return required, optional


_common_required, _common_optional = _table(BaseEvent, own=False)
#: Fields every event has (required) and may have (optional).
COMMON_REQUIRED: Final[dict[str, Kind]] = {
    "event_id": Kind.STR, "type": Kind.STR,
    **{k: v for k, v in _common_required.items() if k != "event_id"},
}
COMMON_OPTIONAL: Final[dict[str, Kind]] = _common_optional

#: type -> (required fields, optional fields), beyond the common ones.
EVENT_TYPES: Final[dict[str, tuple[dict[str, Kind], dict[str, Kind]]]] = {
    cls.type: _table(cls, own=True) for cls in EVENT_CLASSES
}
