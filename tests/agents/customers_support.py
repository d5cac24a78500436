"""The customer loop's batches run without Kafka or Redis: a small in-memory store applies each
batch's ops (the few the agent writes) and loads what the agent's ``load`` would read, so the
rules can be checked batch by batch, timers across batches included."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shopstream.agents.base import Feed, PartitionBatch, Refusal
from shopstream.agents.customers.config import CustomersConfig, parse_config
from shopstream.agents.customers.timeline import NAME, Loaded, run_batch, user_of
from shopstream.core import codec
from shopstream.schemas.decode import decode_event
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.customers import users as stored_users
from shopstream.sinks.customers.keys import bucket, customer_keys, users_prefix

SH = ZoneInfo("Asia/Shanghai")
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
APP = "t"
ARITY = {"HSET": 3, "HDEL": 2, "ZADD": 3, "ZREM": 2, "HINCRBY": 3}


def at(month: int, day: int, h: int, mi: int = 0, year: int = 2026) -> int:
    """Epoch ms of a Shanghai wall-clock time."""
    return int(datetime(year, month, day, h, mi, tzinfo=SH).timestamp() * 1000)


def config(**customers: Any) -> CustomersConfig:
    return parse_config({"customers": customers}, SH)


@dataclass
class Store:
    """One partition's keys as Python values, written by applying the agent's ops."""

    hashes: dict[str, dict[str, Any]] = field(default_factory=dict)
    zsets: dict[str, dict[str, int]] = field(default_factory=dict)

    def apply(self, batch: PartitionBatch) -> None:
        args, blobs = batch.ops.args, batch.ops.blobs
        i = 0
        while i < len(args):
            op = args[i]
            a = [blobs[x[0] - 1] if isinstance(x, list) else x
                 for x in args[i + 1:i + 1 + ARITY[op]]]
            if op == "HSET":
                self.hashes.setdefault(a[0], {})[a[1]] = a[2]
            elif op == "HDEL":
                self.hashes.get(a[0], {}).pop(a[1], None)
            elif op == "HINCRBY":
                h = self.hashes.setdefault(a[0], {})
                h[a[1]] = int(h.get(a[1], 0)) + a[2]
            elif op == "ZADD":
                self.zsets.setdefault(a[0], {})[a[2]] = a[1]
            else:
                self.zsets.get(a[0], {}).pop(a[1], None)
            i += 1 + ARITY[op]

    def user(self, u: str) -> dict[str, Any] | None:
        raw = self.hashes.get(users_prefix(APP, 0) + bucket(u), {}).get(u)
        return None if raw is None else stored_users.unpack(raw)

    def hash(self, name: str) -> dict[str, Any]:
        return self.hashes.get(getattr(customer_keys(APP, 0), name), {})


@dataclass
class Run:
    """Everything the batches produced, in order."""

    pushes: list[dict[str, Any]] = field(default_factory=list)
    tier_events: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)


class Loop:
    """Feeds batches of event dicts through the agent's pure batch step, state kept in a Store."""

    def __init__(self, cfg: CustomersConfig | None = None) -> None:
        self.cfg = cfg or config()
        self.store = Store()
        self.watermark = 0
        self.run = Run()
        self.n = 0

    def batch(self, *events: dict[str, Any], watermark: int | None = None) -> PartitionBatch:
        evs = [decode_event(codec.dumps(e)) for e in events]
        before = self.watermark
        self.watermark = max([before, *(e.ts for e in evs)] + ([watermark] if watermark else []))
        b = PartitionBatch(0, evs, watermark_before=before, watermark=self.watermark,
                           feeds={NAME: Feed(evs)})
        out = run_batch(APP, self.cfg, b, self._load(b))
        self.run.decisions.update(out.decisions)
        self.run.refused += b.refused
        k = customer_keys(APP, 0)
        old = {name: dict(self.store.hashes.get(key, {}))
               for name, key in (("events", k.events), ("alerts", k.alerts),
                                 ("outbox", coupon_keys(APP, 0).outbox))}
        self.store.apply(b)
        for name, into in (("events", self.run.tier_events), ("alerts", self.run.alerts),
                           ("outbox", self.run.pushes)):
            key = {"events": k.events, "alerts": k.alerts,
                   "outbox": coupon_keys(APP, 0).outbox}[name]
            new = self.store.hashes.get(key, {})
            into += sorted((codec.loads(v) for f, v in new.items() if f not in old[name]),
                           key=lambda d: (d["ts"], codec.dumps(d)))
            self.store.hashes[key] = {}  # as if relayed
        return b

    def _load(self, b: PartitionBatch) -> Loaded:
        k = customer_keys(APP, 0)
        timers = self.store.zsets.get(k.timers, {})
        due = sorted(((m, s) for m, s in timers.items() if s <= b.watermark),
                     key=lambda x: (x[1], x[0]))
        deferred = {m[2:]: codec.loads(self.store.hash("deferred")[m[2:]])
                    for m, _ in due if m[0] == "d" and m[2:] in self.store.hash("deferred")}
        tids = {codec.loads(m[2:])[1] for m, _ in due if m[0] == "e"}
        tids |= {ev.task_id for ev in b.events if ev.type == "task_ack"}
        tasks = {t: codec.loads(self.store.hash("tasks")[t]) for t in tids
                 if t in self.store.hash("tasks")}
        names = {user_of(ev) for ev in b.events}
        names |= {m[2:] if m[0] in "xz" else codec.loads(m[2:])[0]
                  for m, _ in due if m[0] != "d"}
        names |= {c["user_id"] for c in deferred.values() if c.get("referrer_id") != c["user_id"]}
        users = {u: self.store.hashes.get(users_prefix(APP, 0) + bucket(u), {}).get(u)
                 for u in sorted(names)}
        return Loaded(due, deferred, tasks, users)

    def ev(self, etype: str, user: str | None, ts: int, **fields: Any) -> dict[str, Any]:
        self.n += 1
        doc = {"event_id": f"e{self.n}", "type": etype, "ts": ts, **fields}
        if user is not None:
            doc["user_id"] = user
        return doc

    def pay(self, user: str, ts: int, order: str, amount: int) -> dict[str, Any]:
        return self.ev("payment", user, ts, order_id=order, amount=amount, status="success")

    def submit(self, user: str, ts: int, order: str, *skus: str, price: int = 1000
               ) -> dict[str, Any]:
        return self.ev("order_submit", user, ts, order_id=order, amount=price * len(skus),
                       items=[{"sku": s, "qty": 1, "price": price} for s in skus])

    def pushes(self, rule: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.run.pushes if rule is None or p["rule"] == rule]
