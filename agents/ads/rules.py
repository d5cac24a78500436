"""Ad economics, pure: spend, clicks, attributed orders and paid GMV per minute and
(channel, campaign, keyword); the attribution rule; the ROAS alert rule over a trailing hour.

Definitions (docs/ads.md; tests/agents/ads_ref.py restates them independently), over a
partition's on-time events in partition order:

- spend: ``cost`` of ``ad_cost`` events, in the row of their own channel, campaign, keyword.
- click: a ``page_view`` with a ``campaign``, in the row of its channel (or ``other``),
  campaign and keyword.
- touch: a click on a paid channel (``paid_channels``, default ``ads``). A user's last touch is
  the one with the largest event time (ties: the later in partition order).
- attribution of an ``order_submit``: its own ``campaign`` when present (row: the order's
  channel or ``other``, that campaign, no keyword); else the user's last touch when the order is
  at most ``attribution_window_ms`` after it (0 <= order ts - touch ts <= window; row: the
  touch's channel, campaign, keyword); else none. An attributed order counts in ``orders``.
- a successful ``payment`` of an attributed order (still open: not cancelled, not paid before)
  counts its ``amount`` in ``paid_gmv`` and one in ``paid_orders`` of the order's row, and is
  then closed; a second successful payment of the same order is not attributed again.
- a new buyer: a successful payment by a user with no successful payment in the
  ``new_buyer_window_ms`` (default 30 days) of event time before it; counted in ``new_buyers``
  of the row when the payment is attributed.
- ROI = (paid GMV - spend) / spend, ROAS = paid GMV / spend, CPC = spend / clicks,
  CAC = spend / new buyers; None when the denominator is 0.
- ROAS alert: at each final minute m, a campaign's trailing hour is its spend and paid GMV of
  minutes m-59..m (over channels and keywords); it is below when that spend is above
  ``min_spend_fen`` and GMV / spend is below ``roas_floor``. An alert when it goes below (it
  was not at the minute before); none while it stays; re-armed once it is not below.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import msgspec
import orjson

from shopstream.core.sections import read_section
from shopstream.core.timeunits import DAY_MS, MINUTE_MS
from shopstream.schemas.events import MAX_MONEY, Channel, Event

#: Measures of a row and what the query calls them.
MEASURES: Final = {"s": "spend", "c": "clicks", "o": "orders", "p": "paid_orders",
                   "g": "paid_gmv", "nb": "new_buyers"}


class AdsConfig(msgspec.Struct, frozen=True):
    """``[ads]`` of the config file."""

    #: Channels whose clicks are touches (attribution when an order names no campaign).
    paid_channels: Annotated[tuple[Channel, ...], msgspec.Meta(min_length=1, extra={
        "expected": "a non-empty array of channels (search|ads|recommend|live|social|push|"
                    "direct|other)"})] = ("ads",)
    #: Longest time from a touch to an order it gets, event time.
    attribution_window_ms: Annotated[int, msgspec.Meta(ge=MINUTE_MS, le=90 * DAY_MS)] = (
        7 * DAY_MS)
    #: A buyer is new when they paid nothing for this long before, event time.
    new_buyer_window_ms: Annotated[int, msgspec.Meta(ge=MINUTE_MS, le=90 * DAY_MS)] = (
        30 * DAY_MS)
    #: A campaign alerts when its ROAS over the trailing hour falls below this ...
    roas_floor: Annotated[float, msgspec.Meta(gt=0.0, le=1000.0)] = 3.0
    #: ... while its spend in that hour (fen) is above this: 500 yuan.
    min_spend_fen: Annotated[int, msgspec.Meta(ge=0, le=MAX_MONEY)] = 50_000


def parse_config(sections: Mapping[str, Any]) -> AdsConfig:
    """Validate ``[ads]``; raises ConfigError naming the key."""
    return read_section(sections, "ads", AdsConfig)


#: A row's dimensions: (channel, campaign, keyword or "").
Row = tuple[str, str, str]


def row_field(measure: str, row: Row) -> str:
    """The field of a minute hash: ids may hold any character, so they travel as JSON."""
    return f"{measure}|{orjson.dumps(row).decode()}"


def parse_field(raw: str) -> tuple[str, Row]:
    measure, _, rest = raw.partition("|")
    channel, campaign, keyword = orjson.loads(rest)
    return measure, (channel, campaign, keyword)


@dataclass(slots=True)
class Touch:
    ts: int
    row: Row


@dataclass(slots=True)
class UserAds:
    """What the ads agent keeps per user (``sinks/ads/keys.user_key``)."""

    touch: Touch | None = None
    #: Event time of the user's latest successful payment.
    paid_at: int | None = None
    #: Open attributed orders: order id -> row.
    orders: dict[str, Row] = field(default_factory=dict)

    @classmethod
    def decode(cls, raw: Mapping[bytes, bytes]) -> UserAds:
        user = cls()
        for k, v in raw.items():
            name = k.decode()
            if name == "t":
                ts, *row = orjson.loads(v)
                user.touch = Touch(ts, (row[0], row[1], row[2]))
            elif name == "b":
                user.paid_at = int(v)
            elif name.startswith("o|"):
                ch, camp, kw = orjson.loads(v)
                user.orders[name[2:]] = (ch, camp, kw)
        return user


def encode_touch(t: Touch) -> str:
    return orjson.dumps([t.ts, *t.row]).decode()


def encode_row(row: Row) -> str:
    return orjson.dumps(row).decode()


#: (minute, measure, row) -> amount.
Rows = Counter[tuple[int, str, Row]]
#: user -> {hash field: new value, or None to delete it}.
Writes = dict[str, dict[str, str | None]]


def fold(events: Iterable[Event], users: dict[str, UserAds], cfg: AdsConfig,
         rows: Rows, writes: Writes) -> None:
    """Apply ``events`` (one partition's, in order) to ``users`` (every user among them that
    has state, loaded; others start empty), adding to ``rows`` and ``writes``."""
    paid = frozenset(cfg.paid_channels)
    window, new_window = cfg.attribution_window_ms, cfg.new_buyer_window_ms
    for ev in events:
        ts = ev.ts
        minute = ts - ts % MINUTE_MS
        if ev.type == "ad_cost":
            rows[(minute, "s", (ev.channel, ev.campaign, ev.keyword or ""))] += ev.cost
            continue
        uid = ev.user_id
        if uid is None:
            continue
        if ev.type == "page_view":
            if ev.campaign is None:
                continue
            row = (ev.channel or "other", ev.campaign, ev.keyword or "")
            rows[(minute, "c", row)] += 1
            if ev.channel in paid:
                user = users.setdefault(uid, UserAds())
                if user.touch is None or ts >= user.touch.ts:
                    user.touch = Touch(ts, row)
                    writes.setdefault(uid, {})["t"] = encode_touch(user.touch)
        elif ev.type == "order_submit":
            user = users.setdefault(uid, UserAds())
            got = attribute(ev.campaign, ev.channel, ts, user.touch, window)
            if got is not None:
                rows[(minute, "o", got)] += 1
                user.orders[ev.order_id] = got
                writes.setdefault(uid, {})["o|" + ev.order_id] = encode_row(got)
        elif ev.type == "order_cancel":
            user = users.setdefault(uid, UserAds())
            if user.orders.pop(ev.order_id, None) is not None:
                writes.setdefault(uid, {})["o|" + ev.order_id] = None
        elif ev.type == "payment" and ev.status == "success":
            user = users.setdefault(uid, UserAds())
            new = user.paid_at is None or ts - user.paid_at > new_window
            if user.paid_at is None or ts > user.paid_at:
                user.paid_at = ts
                writes.setdefault(uid, {})["b"] = str(ts)
            row_ = user.orders.pop(ev.order_id, None)
            if row_ is None:
                continue
            writes.setdefault(uid, {})["o|" + ev.order_id] = None
            rows[(minute, "p", row_)] += 1
            rows[(minute, "g", row_)] += ev.amount
            if new:
                rows[(minute, "nb", row_)] += 1


def attribute(campaign: str | None, channel: str | None, ts: int, touch: Touch | None,
              window: int) -> Row | None:
    """The row an order at ``ts`` goes to (see the module's rule), or None."""
    if campaign is not None:
        return (channel or "other", campaign, "")
    if touch is not None and 0 <= ts - touch.ts <= window:
        return touch.row
    return None


def derived(m: Mapping[str, int]) -> dict[str, Any]:
    """A row's measures with ROI, ROAS, CPC and CAC (None when the denominator is 0)."""
    spend, gmv = m["spend"], m["paid_gmv"]
    return {**m,
            "roi": (gmv - spend) / spend if spend else None,
            "roas": gmv / spend if spend else None,
            "cpc": spend / m["clicks"] if m["clicks"] else None,
            "cac": spend / m["new_buyers"] if m["new_buyers"] else None}


#: The ROAS judge's trailing window: the minute judged and the 59 before it.
TRAILING_MS: Final = 60 * MINUTE_MS
#: A campaign's (spend, paid GMV) in one minute, over its channels and keywords.
Sums = dict[str, tuple[int, int]]


def alert_id(campaign: str, minute: int) -> str:
    """Stable across replays and workers: one alert per campaign and episode, named by the
    episode's first minute."""
    return hashlib.sha256(f"ads_roas|{campaign}|{minute}".encode()).hexdigest()[:24]


@dataclass(slots=True)
class Trailing:
    """The ROAS judge's state: each campaign's sums of the judged minutes with data in the
    trailing hour, their running totals, and the campaigns below the floor (since which
    minute: the episode's first)."""

    window: dict[int, Sums] = field(default_factory=dict)
    below: dict[str, int] = field(default_factory=dict)
    totals: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, window: Mapping[int, Sums], below: Mapping[str, int]) -> Trailing:
        state = cls(dict(window), dict(below))
        for sums in window.values():
            state._add(sums, 1)
        return state

    def _add(self, sums: Sums, sign: int) -> None:
        for campaign, (spend, gmv) in sums.items():
            acc = self.totals.setdefault(campaign, [0, 0])
            acc[0] += sign * spend
            acc[1] += sign * gmv
            if acc == [0, 0]:
                del self.totals[campaign]

    def judge(self, minute: int, sums: Sums, cfg: AdsConfig) -> list[dict[str, Any]]:
        """Minute ``minute`` (its own ``sums`` added, the minute an hour before left out) judged:
        the alerts of the campaigns that go below the floor at it."""
        for old in [m for m in self.window if m <= minute - TRAILING_MS]:
            self._add(self.window.pop(old), -1)
        if sums:
            self.window[minute] = dict(sums)
            self._add(sums, 1)
        docs = []
        for campaign in sorted(set(self.totals) | set(self.below)):
            spend, gmv = self.totals.get(campaign, [0, 0])
            if not (spend > cfg.min_spend_fen and gmv / spend < cfg.roas_floor):
                self.below.pop(campaign, None)
            elif campaign not in self.below:
                self.below[campaign] = minute
                docs.append({
                    "type": "ads_roas_low", "alert_id": alert_id(campaign, minute),
                    "campaign": campaign, "minute": minute, "spend": spend, "paid_gmv": gmv,
                    "roas": gmv / spend, "floor": cfg.roas_floor,
                    "min_spend_fen": cfg.min_spend_fen, "severity": "warning"})
        return docs


def to_judge(state: Trailing, data: Iterable[int], after: int | None,
             through: int) -> list[int]:
    """The minutes in (after, through] where a trailing hour can change: those with data
    (``data``) and those an hour's length past one (its sums leave the window). Between them
    every sum, so every verdict, stays as it was: judging only these is judging every minute."""
    data = list(data)
    leaving = (m + TRAILING_MS for m in [*state.window, *data])
    low = -1 if after is None else after
    return sorted({m for m in (*data, *leaving) if low < m <= through})


def roas_alerts(state: Trailing, minutes: Mapping[int, Sums], after: int | None,
                through: int, cfg: AdsConfig) -> list[dict[str, Any]]:
    """Every minute in (after, through] judged on ``state`` (``minutes``: the sums of each
    minute with data in it, none missing): the alerts raised, oldest first."""
    docs = []
    for minute in to_judge(state, minutes, after, through):
        docs += state.judge(minute, minutes.get(minute, {}), cfg)
    return docs
