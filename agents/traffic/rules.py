"""Traffic value, pure: what each event adds to the per-bucket rows (docs/traffic.md).

Per user, in partition order (a user's events are all on one partition, in order):
- a ``page_view`` is a page view, and makes the user a visitor (UV) of the minute, hour and
  business day holding its time, overall, for its channel (``other`` when absent) and for its
  campaign (none when absent), each counted once per bucket;
- every event of ``TRAFFIC_TYPES`` belongs to a session of its user: it joins the user's
  current session when it has the same ``session_id`` (or both none) and its time is less than
  ``SESSION_GAP_MS`` before the session's first or after its last event, else it starts a new
  one, which becomes the current one. A session counts in the buckets of its first (earliest)
  event, for the channel and campaign of the event that started it; bounced when it has
  exactly one page view; dwell = last - first;
- ``order_submit`` counts an order, a successful ``payment`` a paid order and its amount as paid
  GMV, at their own time, for their own channel and campaign.

State kept per user (``UserTraffic``) is what a later event can still change: the current
session and the visitor buckets an on-time event may still reach (``prune``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from shopstream.core.timeunits import DAY_MS, HOUR_MS, MINUTE_MS
from shopstream.schemas.events import CHANNELS, UserEvent
from shopstream.sinks.buckets import bucket_start

#: Event types of a user's visit (everything a user does; not room-wide or merchant events).
TRAFFIC_TYPES: Final = frozenset({
    "page_view", "product_view", "cart_add", "cart_remove", "order_submit", "payment",
    "order_cancel", "coupon_redeem", "flash_sale_claim", "live_join", "live_leave",
    "live_comment", "live_like"})
#: Inactivity that ends a session (the web analytics convention).
SESSION_GAP_MS: Final = 30 * MINUTE_MS
#: Bucket codes of the rows: minute, hour, business day.
RESOLUTIONS: Final = ("m", "h", "d")
#: Field prefixes of the rows and what the query calls them.
MEASURES: Final = {"uv": "uv", "pv": "pv", "s": "sessions", "b": "bounces", "w": "dwell_ms",
                   "o": "orders", "po": "paid_orders", "g": "paid_gmv"}
OVERALL: Final = "*"
#: Channel dims and their bits in the encoded visitor buckets.
CHANNEL_DIMS: Final = [f"c:{ch}" for ch in CHANNELS]
CHANNEL_BITS: Final = {d: 1 << i for i, d in enumerate(CHANNEL_DIMS)}

#: Masks from this on are encoded as strings.
WIDE_MASK: Final = 1 << 63

#: (res, bucket start, "<measure>|<dim>") -> change.
Rows = Counter[tuple[str, int, str]]


def dims(channel: str | None, campaign: str | None) -> tuple[str, ...]:
    """Where an event (or a session) counts: overall, its channel, its campaign if any."""
    ch = f"c:{channel or 'other'}"
    return (OVERALL, ch) if campaign is None else (OVERALL, ch, f"k:{campaign}")


@lru_cache(maxsize=1 << 14)
def fields(measure: str, channel: str | None, campaign: str | None) -> tuple[str, ...]:
    """The row fields of a measure for an event's dims (cached: the hot path's strings)."""
    return tuple(f"{measure}|{d}" for d in dims(channel, campaign))


def bucket_end(res: str, start: int, zone: ZoneInfo) -> int:
    """End (exclusive) of the bucket starting at ``start``; days may be 23 to 25 hours."""
    if res == "m":
        return start + MINUTE_MS
    if res == "h":
        return start + HOUR_MS
    return bucket_start(start + DAY_MS + 12 * HOUR_MS, "d", zone)


@dataclass(slots=True)
class Session:
    #: ``session_id``, or "" when the events have none.
    key: str
    first: int
    last: int
    page_views: int
    channel: str | None
    campaign: str | None


@dataclass(slots=True)
class UserTraffic:
    """One user's state: the current session, and the visitor buckets counted."""

    session: Session | None = None
    #: (res, bucket start) -> dims other than overall counted there (the key: overall was).
    seen: dict[tuple[str, int], set[str]] = field(default_factory=dict)


def encode_user(user: UserTraffic) -> bytes:
    """Compact JSON ``[session, campaigns, visits]``: the session as six values (key, first,
    last - first, page views, channel, campaign) or none; the campaigns named in the visits;
    visits flat, two values each: ``start / 60000 * 3 + resolution index`` and a bit mask of
    their dims (bits 0-7: ``CHANNELS``, then the campaigns in their order; as a decimal string
    beyond 63 bits, which JSON integers here do not carry)."""
    names = sorted({d for ds in user.seen.values() for d in ds if d not in CHANNEL_BITS})
    bit = {**CHANNEL_BITS, **{d: 1 << (len(CHANNELS) + i) for i, d in enumerate(names)}}
    ses = user.session
    session = [] if ses is None else [ses.key, ses.first, ses.last - ses.first, ses.page_views,
                                      ses.channel, ses.campaign]
    visits: list[int | str] = []
    for (res, start), ds in user.seen.items():
        mask = sum(bit[d] for d in ds)
        visits += (start // MINUTE_MS * 3 + RESOLUTIONS.index(res),
                   mask if mask < WIDE_MASK else str(mask))
    return orjson.dumps([session, [d[2:] for d in names], visits])


def decode_user(blob: bytes | None) -> UserTraffic:
    if not blob:
        return UserTraffic()
    session, campaigns, visits = orjson.loads(blob)
    names = CHANNEL_DIMS + [f"k:{c}" for c in campaigns]
    user = UserTraffic()
    if session:
        k, first, span, pvs, ch, camp = session
        user.session = Session(k, first, first + span, pvs, ch, camp)
    for i in range(0, len(visits), 2):
        code, mask = visits[i], int(visits[i + 1])
        ds = set()
        while mask:
            low = mask & -mask
            ds.add(names[low.bit_length() - 1])
            mask ^= low
        user.seen[(RESOLUTIONS[code % 3], code // 3 * MINUTE_MS)] = ds
    return user


def prune(user: UserTraffic, horizon: int, zone: ZoneInfo) -> None:
    """Drop what no event at or after ``horizon`` (the oldest time still on time) can reach."""
    user.seen = {k: ds for k, ds in user.seen.items() if bucket_end(k[0], k[1], zone) > horizon}
    if user.session is not None and user.session.last + SESSION_GAP_MS <= horizon:
        user.session = None


class TrafficShard:
    """One partition's batch: the users' state (loaded, pruned) and the row changes."""

    def __init__(self, users: dict[str, UserTraffic], zone: ZoneInfo, horizon: int) -> None:
        self.users = users
        self.zone = zone
        self.prune(horizon)
        #: (minute, field) -> change of the additive measures, spread to hours and days by
        #: ``changes``; visitors (not additive) per bucket of every resolution.
        self.minutes: Counter[tuple[int, str]] = Counter()
        self.visitors: Rows = Counter()
        #: (measure, channel) -> n, for the Prometheus counters (``pv``, ``s``).
        self.metric: Counter[tuple[str, str]] = Counter()

    def run(self, events: list[UserEvent]) -> None:
        for ev in events:
            self.add(ev)

    def prune(self, horizon: int) -> None:
        """Every user's state without what no event at or after ``horizon`` can reach."""
        for user in self.users.values():
            prune(user, horizon, self.zone)

    def changes(self) -> Rows:
        """Every row change of the batch, for each resolution."""
        out = Counter(self.visitors)
        zone = self.zone
        for (minute, fld), n in self.minutes.items():
            if n:
                for res in RESOLUTIONS:
                    out[(res, bucket_start(minute, res, zone), fld)] += n
        return out

    def _count(self, ts: int, flds: tuple[str, ...], n: int) -> None:
        minute = ts - ts % MINUTE_MS
        rows = self.minutes
        for f in flds:
            rows[(minute, f)] += n

    def add(self, ev: UserEvent) -> None:
        user = self.users.get(ev.user_id)
        if user is None:
            user = self.users[ev.user_id] = UserTraffic()
        is_pv = ev.type == "page_view"
        if is_pv:
            self._count(ev.ts, fields("pv", ev.channel, ev.campaign), 1)
            self._visit(user, ev.ts, dims(ev.channel, ev.campaign))
            self.metric[("pv", ev.channel or "other")] += 1
        elif ev.type == "order_submit":
            self._count(ev.ts, fields("o", ev.channel, ev.campaign), 1)
        elif ev.type == "payment" and ev.status == "success":
            self._count(ev.ts, fields("po", ev.channel, ev.campaign), 1)
            self._count(ev.ts, fields("g", ev.channel, ev.campaign), ev.amount)
        self._session(user, ev, is_pv)

    def _visit(self, user: UserTraffic, ts: int, ds: tuple[str, ...]) -> None:
        """Count the user once per bucket and dim; a minute that has them all is enough to
        know: its hour and day were given the same dims with it, and outlive it."""
        minute = user.seen.get(("m", ts - ts % MINUTE_MS))
        if minute is not None and all(d in minute for d in ds[1:]):
            return
        rows = self.visitors
        for res in RESOLUTIONS:
            start = bucket_start(ts, res, self.zone)
            seen = user.seen.get((res, start))
            if seen is None:
                seen = user.seen[(res, start)] = set()
                rows[(res, start, f"uv|{OVERALL}")] += 1
            for d in ds[1:]:
                if d not in seen:
                    seen.add(d)
                    rows[(res, start, f"uv|{d}")] += 1

    def _session(self, user: UserTraffic, ev: UserEvent, is_pv: bool) -> None:
        key, ts = ev.session_id or "", ev.ts
        s = user.session
        if s is None or s.key != key or not s.first - SESSION_GAP_MS < ts < s.last + SESSION_GAP_MS:
            s = user.session = Session(key, ts, ts, int(is_pv), ev.channel, ev.campaign)
            self._session_rows(s, 1)
            self.metric[("s", ev.channel or "other")] += 1
            return
        if ts < s.first:
            self._session_rows(s, -1)
            s.first = ts
            s.page_views += is_pv
            self._session_rows(s, 1)
            return
        if ts > s.last:
            self._count(s.first, fields("w", s.channel, s.campaign), ts - s.last)
            s.last = ts
        if is_pv:
            s.page_views += 1
            if s.page_views <= 2:
                self._count(s.first, fields("b", s.channel, s.campaign),
                            1 if s.page_views == 1 else -1)

    def _session_rows(self, s: Session, sign: int) -> None:
        """Add (1) or take back (-1) what a session contributes to its first event's buckets."""
        ch, camp = s.channel, s.campaign
        self._count(s.first, fields("s", ch, camp), sign)
        if s.page_views == 1:
            self._count(s.first, fields("b", ch, camp), sign)
        if s.last > s.first:
            self._count(s.first, fields("w", ch, camp), sign * (s.last - s.first))


def derived(row: dict[str, int]) -> dict[str, Any]:
    """A row with its ratios (None when the denominator is 0): bounce rate, average dwell,
    visit-to-order conversion (orders / UV), AOV (paid GMV / paid orders), UV value (paid
    GMV / UV)."""
    uv, s, po = row["uv"], row["sessions"], row["paid_orders"]
    return {**row,
            "bounce_rate": row["bounces"] / s if s else None,
            "avg_dwell_ms": row["dwell_ms"] / s if s else None,
            "conversion": row["orders"] / uv if uv else None,
            "aov": row["paid_gmv"] / po if po else None,
            "uv_value": row["paid_gmv"] / uv if uv else None}
