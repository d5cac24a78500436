"""Realistic promotion traffic, deterministic for a seed.

Sessions arrive per channel and walk the funnel (visit -> product view -> cart -> order ->
payment) with playbook-like rates: ~3-5% of visits order, ~70% of carts are abandoned.
Flash-sale spikes hit one SKU at fixed moments; live rooms start, gather viewers who
comment, like and sometimes buy through the room, then end.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from shopstream.core.settings import Settings

#: Live mode hands partly filled envelopes to Kafka at least this often (bounds latency).
FLUSH_EVERY_S = 0.02
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

    def __init__(self, users: int, rate: float, seed: int, start_ms: int = DOUBLE_11_MS) -> None:
        self.rng = random.Random(seed)
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
        flash = ts % 3_600_000 < 120_000 and r.random() < 0.5
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
        if r.random() >= 0.22:
            return out  # abandoned cart
        self._order_seq += 1
        order_id = f"o{self._order_seq}"
        amount = sum(i["qty"] * i["price"] for i in items)
        order: dict[str, Any] = {"type": "order_submit", "order_id": order_id, "items": items,
                                 "amount": amount}
        if s.channel == "live":
            order["live_room_id"] = f"room{r.randrange(3)}"
        out.append(order)
        roll = r.random()
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

    def _live(self, ts: int) -> dict[str, Any]:
        r = self.rng
        room = f"room{r.randrange(3)}"
        kind = r.choices(("live_join", "live_comment", "live_like", "live_leave"),
                         (4, 3, 3, 2))[0]
        ev: dict[str, Any] = {"type": kind, "room_id": room, "channel": "live"}
        if kind == "live_like":
            ev["count"] = r.randrange(1, 20)
        return ev

    def events(self, count: int) -> Iterator[dict[str, Any]]:
        """About ``count`` events (plus live start/end markers), time-ordered, all valid."""
        r = self.rng
        active: list[_Session] = []
        step_ms = 1000.0 / self.rate
        live = False
        for n in range(count):
            ts = self.start_ms + int(n * step_ms)
            # Live rooms broadcast for the first 40 minutes of every simulated hour.
            on_air = (ts - self.start_ms) % 3_600_000 < 2_400_000
            if on_air != live:
                live = on_air
                kind = "live_start" if live else "live_end"
                for room in range(3):
                    yield {"event_id": self._id("e"), "type": kind, "ts": ts,
                           "user_id": f"host{room}", "room_id": f"room{room}", "channel": "live"}
            if len(active) < 200 or r.random() < 0.02:
                active.append(self._session(ts))
            if live and r.random() < 0.05:
                user = f"u{r.randrange(self.users)}"
                ev = self._live(ts)
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
            yield ev


def run_simulation(
    settings: Settings, users: int, rate: float, duration_s: float, seed: int,
    out: str | None = None, start_ms: int | None = None,
) -> int:
    """Write a JSONL log (``out``) or produce paced live traffic to Kafka; returns events."""
    from shopstream.core import codec
    from shopstream.kafka_io.envelope_producer import EnvelopeProducer

    count = int(rate * duration_s)
    if out:
        sim = Simulator(users, rate, seed, start_ms if start_ms is not None else DOUBLE_11_MS)
        with open(out, "wb") as fh:
            for ev in sim.events(count):
                fh.write(codec.dumps(ev) + b"\n")
        print(f"simulate: wrote {count} events to {out}", file=sys.stderr)
        return count
    begin = time.time()
    sim = Simulator(users, rate, seed, start_ms if start_ms is not None else int(begin * 1000))
    prod = EnvelopeProducer(settings, max_events=200)
    sent = 0
    last_report = last_flush = begin
    for ev in sim.events(count):
        # Pace by event time so the stream is live: an event goes out when its ts is due,
        # stamped with the wall clock in case generation fell behind.
        now = time.time()
        wait = ev["ts"] / 1000 - now
        if wait > 0.005:
            time.sleep(wait)
            now = time.time()
        ev["ts"] = int(now * 1000)
        prod.add(ev)
        sent += 1
        if now - last_flush >= FLUSH_EVERY_S:
            prod.send_all()
            last_flush = now
        if time.time() - last_report >= 5:
            last_report = time.time()
            print(f"simulate: {sent} events sent", file=sys.stderr, flush=True)
    prod.flush()
    return sent
