"""Realistic promotion traffic, deterministic for a seed.

Sessions arrive per channel and walk the funnel (visit -> product view -> cart -> order ->
payment) with playbook-like rates: ~3-5% of visits order, ~70% of carts are abandoned.
Flash-sale spikes hit one SKU at fixed moments; live rooms go on air for 40 minutes an hour,
their audience ramping up, viewers joining, leaving, commenting in bursts and buying through
the room. Incidents (``Incident``) can be injected: payment failures, or orders dropping.
With a ``MoneyPlan``, ad spend, stock counts and returns come along (``simulate_money``); with
a ``CustomerPlan``, the customer loop's reviews, check-ins, referrals, group buys, repeat
purchases, refunds, redemptions and service acks (``simulate_customers``).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shopstream.core.settings import Settings
from shopstream.core.timeunits import HOUR_MS, MINUTE_MS
from shopstream.simulate_customers import CustomerPlan, CustomerTraffic
from shopstream.simulate_money import MoneyPlan, MoneyTraffic

#: Live mode hands partly filled envelopes to Kafka at least this often (bounds latency).
FLUSH_EVERY_S = 0.02
#: Events per second of event time when ``--rate 0`` asks for unpaced traffic.
UNPACED_RATE = 2_000
#: 2026-11-11 00:00 Asia/Shanghai: the default start of generated logs.
DOUBLE_11_MS = 1_794_326_400_000

CHANNEL_WEIGHTS = {
    "search": 24, "ads": 18, "recommend": 22, "live": 12, "social": 9, "push": 6,
    "direct": 6, "other": 3,
}
REGIONS = ("east", "north", "south", "central", "west", "northeast")
DEVICES = ("ios", "android", "web", "miniapp")
CAMPAIGNS = ("d11-main", "d11-warmup", "flash-10am", "live-special")
PAGES = ("home", "search", "category", "campaign", "live")
#: SKU catalogue: sku -> price in fen (AOV around 200-280 yuan with 1-2 items).
N_SKUS = 400


#: Live rooms on air at once (by default), and how long their audience takes to ramp up.
N_ROOMS = 6
RAMP_MS = 10 * MINUTE_MS
INCIDENT_KINDS = ("payment-failures", "orders-drop")


@dataclass(frozen=True)
class Incident:
    """Trouble injected from ``start_min`` minutes after the start, for ``minutes``."""

    kind: str
    start_min: float
    minutes: float = 10.0

    @classmethod
    def parse(cls, text: str) -> Incident:
        """``KIND@MINUTES[+LENGTH]``, e.g. ``payment-failures@15`` or ``orders-drop@30+5``."""
        kind, _, when = text.partition("@")
        start, _, length = when.partition("+")
        if kind not in INCIDENT_KINDS:
            raise ValueError(f"incident: expected one of {', '.join(INCIDENT_KINDS)}, got {kind!r}")
        try:
            return cls(kind, float(start), float(length) if length else 10.0)
        except ValueError:
            raise ValueError(f"incident: expected KIND@MINUTES[+LENGTH], got {text!r}") from None

    def active(self, elapsed_ms: int) -> bool:
        return (self.start_min * MINUTE_MS <= elapsed_ms
                < (self.start_min + self.minutes) * MINUTE_MS)


@dataclass
class _Session:
    user_id: str
    session_id: str
    channel: str
    campaign: str
    region: str
    device: str
    steps: list[dict[str, Any]] = field(default_factory=list)


class Simulator:
    """Iterates events in time order; ``rate`` events per simulated second."""

    def __init__(self, users: int, rate: float, seed: int, start_ms: int = DOUBLE_11_MS,
                 incidents: tuple[Incident, ...] = (), rooms: int = N_ROOMS,
                 money: MoneyPlan | None = None, customers: CustomerPlan | None = None) -> None:
        self.rng = random.Random(seed)
        self.money = None if money is None else MoneyTraffic(CAMPAIGNS, N_SKUS, start_ms, seed,
                                                             money)
        self.customers = (None if customers is None
                          else CustomerTraffic(start_ms, seed, customers))
        self.incidents = incidents
        self.rooms = max(1, rooms)
        #: Viewers in each room now (users who joined and have not left).
        self._viewers: dict[str, list[str]] = {f"room{i}": [] for i in range(self.rooms)}
        self._now = start_ms
        self.users = max(1, users)
        self.rate = max(rate, 1.0)
        self.start_ms = start_ms
        self.prices = [self.rng.randrange(1_990, 59_900, 10) for _ in range(N_SKUS)]
        #: Ids carry the seed, so two seeds' logs never share an event id (which would be
        #: deduplicated away when both are replayed).
        self._prefix = f"{seed}-"
        self._seq = 0
        self._order_seq = 0
        self._channels = list(CHANNEL_WEIGHTS)
        self._weights = list(CHANNEL_WEIGHTS.values())

    def _id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._prefix}{self._seq}"

    def _session(self, ts: int) -> _Session:
        r = self.rng
        user = f"u{r.randrange(self.users)}"
        s = _Session(user, self._id("s"), r.choices(self._channels, self._weights)[0],
                     r.choice(CAMPAIGNS), r.choice(REGIONS), r.choice(DEVICES))
        s.steps = self._script(s, ts)
        return s

    def _script(self, s: _Session, ts: int) -> list[dict[str, Any]]:
        """The session's events, funnel-shaped."""
        r = self.rng
        out: list[dict[str, Any]] = []
        page = "live" if s.channel == "live" else r.choice(PAGES)
        out.append({"type": "page_view", "page": page})
        for _ in range(r.choice((0, 0, 1, 2))):
            out.append({"type": "page_view", "page": r.choice(PAGES)})
        if r.random() >= 0.55:
            return out
        sku_i = r.randrange(N_SKUS)
        flash = ts % HOUR_MS < 2 * MINUTE_MS and r.random() < 0.5
        if flash:
            sku_i = 0  # the flash-sale SKU draws the crowd in the first two minutes of an hour
        sku, price = f"sku{sku_i}", self.prices[sku_i]
        out.append({"type": "product_view", "sku": sku, "price": price})
        if r.random() >= (0.45 if flash else 0.30):
            return out
        qty = r.choice((1, 1, 1, 2))
        out.append({"type": "cart_add", "sku": sku, "qty": qty, "price": price})
        items: list[dict[str, Any]] = [{"sku": sku, "qty": qty, "price": price}]
        if r.random() < 0.25:
            j = r.randrange(N_SKUS)
            out.append({"type": "cart_add", "sku": f"sku{j}", "qty": 1, "price": self.prices[j]})
            items.append({"sku": f"sku{j}", "qty": 1, "price": self.prices[j]})
            if r.random() < 0.3:
                out.append({"type": "cart_remove", "sku": f"sku{j}", "qty": 1})
                items.pop()
        if r.random() >= (0.05 if self._trouble("orders-drop") else 0.22):
            return out  # abandoned cart
        self._order_seq += 1
        order_id = f"o{self._order_seq}"
        amount = sum(i["qty"] * i["price"] for i in items)
        order: dict[str, Any] = {"type": "order_submit", "order_id": order_id, "items": items,
                                 "amount": amount}
        if s.channel == "live" and r.random() < 0.5:
            order["live_room_id"] = f"room{r.randrange(self.rooms)}"
        out.append(order)
        roll = r.random()
        if self._trouble("payment-failures"):
            roll = 0.90 + r.random() * 0.1 if r.random() < 0.6 else roll
        if roll < 0.90:
            out.append({"type": "payment", "order_id": order_id, "amount": amount,
                        "status": "success"})
        elif roll < 0.95:
            out.append({"type": "payment", "order_id": order_id, "amount": amount,
                        "status": "failed"})
            out.append({"type": "order_cancel", "order_id": order_id})
        else:
            out.append({"type": "order_cancel", "order_id": order_id})
        return out

    def _trouble(self, kind: str) -> bool:
        elapsed = self._now - self.start_ms
        return any(i.kind == kind and i.active(elapsed) for i in self.incidents)

    def _live(self, ts: int, on_air_ms: int) -> tuple[str, dict[str, Any]]:
        """(user, event) in a room: joins ramp up after going on air, viewers comment (in
        bursts on the five-minute marks), like and leave."""
        r = self.rng
        room = f"room{r.randrange(self.rooms)}"
        viewers = self._viewers[room]
        ramp = min(1.0, on_air_ms / RAMP_MS)
        burst = ts % 300_000 < 30_000
        weights = (4 * ramp + 1, 8 if burst else 3, 3, 1.5 if viewers else 0)
        kind = r.choices(("live_join", "live_comment", "live_like", "live_leave"), weights)[0]
        if kind == "live_join" or not viewers:
            user = f"u{r.randrange(self.users)}"
            viewers.append(user)
            kind = "live_join"
        else:
            i = r.randrange(len(viewers))
            user = viewers[i]
            if kind == "live_leave":
                viewers[i] = viewers[-1]
                viewers.pop()
        ev: dict[str, Any] = {"type": kind, "room_id": room, "channel": "live"}
        if kind == "live_like":
            ev["count"] = r.randrange(1, 20)
        return user, ev

    def events(self, count: int) -> Iterator[dict[str, Any]]:
        """About ``count`` events (plus live start/end markers), time-ordered, all valid."""
        r = self.rng
        active: list[_Session] = []
        step_ms = 1000.0 / self.rate
        live = False
        for n in range(count):
            ts = self.start_ms + int(n * step_ms)
            # Live rooms broadcast for the first 40 minutes of every simulated hour.
            on_air = (ts - self.start_ms) % HOUR_MS < 40 * MINUTE_MS
            self._now = ts
            if on_air != live:
                live = on_air
                kind = "live_start" if live else "live_end"
                for viewers in self._viewers.values():
                    viewers.clear()
                for room in range(self.rooms):
                    yield {"event_id": self._id("e"), "type": kind, "ts": ts,
                           "user_id": f"host{room}", "room_id": f"room{room}", "channel": "live"}
            if len(active) < 200 or r.random() < 0.02:
                active.append(self._session(ts))
            if live and r.random() < 0.08:
                user, ev = self._live(ts, (ts - self.start_ms) % HOUR_MS)
            else:
                i = r.randrange(len(active))
                s = active[i]
                ev = dict(s.steps.pop(0))
                user = s.user_id
                ev.update(session_id=s.session_id, channel=ev.get("channel", s.channel),
                          campaign=s.campaign, region=s.region, device=s.device)
                if not s.steps:
                    active[i] = active[-1]
                    active.pop()
            ev["event_id"] = self._id("e")
            ev["ts"] = ts
            ev["user_id"] = user
            if self.money is not None:
                yield from self.money.due(ts)
                self.money.observe(ev)
            if self.customers is not None:
                yield from self.customers.due(ts)
                self.customers.observe(ev)
            yield ev


def run_simulation(
    settings: Settings, users: int, rate: float, duration_s: float, seed: int,
    out: str | None = None, start_ms: int | None = None, incidents: tuple[Incident, ...] = (),
    stop: threading.Event | None = None, money: MoneyPlan | None = None,
    customers: CustomerPlan | None = None,
) -> int:
    """Write a JSONL log (``out``) or produce paced live traffic to Kafka; returns events.

    ``rate`` 0 is unpaced: the traffic of ``UNPACED_RATE`` events/s, as fast as it goes. Live
    traffic ends early when ``stop`` is set, everything queued flushed first.
    """
    from shopstream.core import codec

    paced = rate > 0
    rate = rate if paced else UNPACED_RATE
    count = int(rate * duration_s)
    if out:
        sim = Simulator(users, rate, seed, start_ms if start_ms is not None else DOUBLE_11_MS,
                        incidents, money=money, customers=customers)
        written = 0
        with open(out, "wb") as fh:
            for ev in sim.events(count):
                fh.write(codec.dumps(ev) + b"\n")
                written += 1
        print(f"simulate: wrote {written} events to {out}", file=sys.stderr)
        return written
    begin = start_ms if start_ms is not None else int(time.time() * 1000)
    sim = Simulator(users, rate, seed, begin, incidents, money=money, customers=customers)
    return _produce_live(settings, sim.events(count), paced, stop or threading.Event())


def _produce_live(settings: Settings, events: Iterator[dict[str, Any]], paced: bool,
                  stop: threading.Event) -> int:
    """Send ``events`` in envelopes, each when its ts is due if ``paced``, until ``stop``."""
    from shopstream.kafka_io.envelope_producer import EnvelopeProducer

    prod = EnvelopeProducer(settings, max_events=200)
    sent = 0
    last_report = last_flush = time.time()
    for ev in events:
        # Pace by event time so the stream is live: an event goes out when its ts is due,
        # stamped with the wall clock in case generation fell behind.
        now = time.time()
        wait = ev["ts"] / 1000 - now
        if paced and wait > 0.005:
            stop.wait(wait)
            now = time.time()
        if stop.is_set():
            break
        ev["ts"] = int(now * 1000)
        prod.add(ev)
        sent += 1
        if now - last_flush >= FLUSH_EVERY_S:
            prod.send_all()
            last_flush = now
        if now - last_report >= 5:
            last_report = now
            print(f"simulate: {sent} events sent", file=sys.stderr, flush=True)
    prod.flush()
    return sent
