"""Cart recovery and coupon pushes: one agent, driven by event time.

State per partition (keys and what each holds: sinks/coupons/keys.py) is written in the batch's
fenced call. A ``live_end`` reaches every partition (its copies, ``Feed.copies``), so
each partition follows up its own viewers from its own log, whatever the others' progress.

Clock: a batch fires every timer due at or before the partition watermark, interleaved with the
batch's events in event-time order (a timer due at t fires before events at ts >= t). Replays
and live runs therefore decide the same pushes.
"""

from __future__ import annotations

import heapq
from collections import Counter
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, cast

from shopstream.agents.base import NoHooks, PartitionBatch, Takes
from shopstream.agents.coupons import cart
from shopstream.agents.coupons.rules import (
    CART_RECOVERY,
    LIVE_FOLLOWUP,
    NEW_USER,
    RULES,
    THRESHOLD_NUDGE,
    CouponConfig,
    cart_total,
    decide,
    in_band,
    parse_config,
    view_end,
    view_event,
)
from shopstream.agents.lateness import final_clock
from shopstream.agents.push_guards import push_id, write_schedule
from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.monitoring.metrics import Metrics
from shopstream.schemas.events import (
    USER_TYPES,
    CartAdd,
    CartRemove,
    LiveComment,
    LiveJoin,
    LiveLeave,
    LiveLike,
    UserEvent,
)
from shopstream.sinks.coupons import users as stored_users
from shopstream.sinks.coupons.keys import (
    bucket,
    coupon_keys,
    user_key,
    users_prefix,
    viewers_key,
)
from shopstream.sinks.outbox import OutboxRelay, outbox_relay
from shopstream.sinks.redis_state import Redis

NAME = "coupons"


class Loaded(NamedTuple):
    """What ``load`` read for a partition's batch."""

    #: Timers due by the batch's watermark: (member, due time).
    due: list[tuple[str, int]]
    #: room -> its last ``live_end`` here, for the rooms ending in the batch.
    last_end: dict[str, int]
    #: push id -> deferred candidate, of the deferred pushes due.
    deferred: dict[str, dict[str, Any]]
    #: room -> viewers of its current session, for the rooms ending in the batch.
    viewers: dict[str, list[str]]
    #: user -> stored state (None: never seen here).
    users: dict[str, bytes | None]
    #: user -> its bucket (``sinks.coupons.keys.bucket``), for the write.
    buckets: dict[str, str]


class Decided(NamedTuple):
    """What a partition's batch decided: (rule, result) counts; whether it queued pushes."""

    decisions: Counter[tuple[str, str]]
    pushed: bool


class CouponAgent(NoHooks):
    """Cart state, abandonment schedule, coupon rules and guards; pushes go to the outbox."""

    name = NAME
    #: Every event about a user, late ones too (timers run in event-time order), and
    #: ``live_end`` copies.
    takes = Takes(USER_TYPES, copies=frozenset({"live_end"}))

    def __init__(self, settings: Settings, redis: Redis, metrics: Metrics | None = None,
                 relay_inline: bool = True, relay: OutboxRelay | None = None) -> None:
        self.app = settings.app_id
        self.redis = redis
        self.cfg: CouponConfig = parse_config(settings.sections, settings.zone)
        self.metrics = metrics or Metrics()
        #: The push relay (the registry's knows every push rule's budget; alone, the coupons').
        self.relay = relay or outbox_relay(settings, redis, self.metrics,
                                           coupon_budgets(self.cfg),
                                           final_clock(redis, settings))
        #: False when a relay process relays the outboxes: this loop then makes no outbox
        #: round trip (``relay`` is never driven here).
        self.relay_inline = relay_inline

    async def load(self, batches: list[PartitionBatch]) -> list[Loaded]:
        """Three pipelined reads: due timers and the rooms ending in the batch, then deferred
        pushes, then users."""
        a = self.app
        ending = [_ending_rooms(b) for b in batches]
        async with self.redis.pipeline(transaction=False) as pipe:
            for b, rooms in zip(batches, ending, strict=True):
                k = coupon_keys(a, b.partition)
                pipe.zrangebyscore(k.timers, "-inf", b.watermark, withscores=True)
                if rooms:
                    pipe.hmget(k.live_ends, rooms)
                for room in rooms:
                    pipe.smembers(viewers_key(a, b.partition, room))
            rows = iter(await pipe.execute())
        plans = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for b, rooms in zip(batches, ending, strict=True):
                due = [(m.decode(), int(s)) for m, s in next(rows)]
                last_end = {}
                if rooms:
                    last_end = {room: int(v) for room, v in zip(rooms, next(rows), strict=True)
                                if v is not None}
                viewers = {room: sorted(m.decode() for m in next(rows)) for room in rooms}
                pids = [m[2:] for m, _ in due if m.startswith("d|")]
                if pids:
                    pipe.hmget(coupon_keys(a, b.partition).deferred, pids)
                plans.append((due, last_end, viewers, pids))
            rows2 = iter(await pipe.execute())
        prepared = []
        for b, (due, last_end, viewers, pids) in zip(batches, plans, strict=True):
            deferred = {}
            if pids:
                deferred = {pid: codec.loads(raw) for pid, raw in zip(pids, next(rows2),
                                                                      strict=True)
                            if raw is not None}
            users = {ev.user_id for ev in cast(list[UserEvent], b.feeds[NAME].events)}
            users.update(m[2:] for m, _ in due if m.startswith("c|"))
            users.update(codec.loads(m[2:])[2] for m, _ in due if m.startswith("l|"))
            users.update(c["user_id"] for c in deferred.values())
            for vs in viewers.values():
                users.update(vs)
            prepared.append((b, due, last_end, deferred, viewers, sorted(users)))
        buckets = [[bucket(u) for u in names] for *_, names in prepared]
        rows3 = await stored_users.load(self.redis, a, [
            (b.partition, names, bs) for (b, *_, names), bs in zip(prepared, buckets,
                                                                   strict=True)])
        return [Loaded(due, last_end, deferred, viewers, dict(zip(names, raws, strict=True)),
                       dict(zip(names, bs, strict=True)))
                for (_, due, last_end, deferred, viewers, names), raws, bs
                in zip(prepared, rows3, buckets, strict=True)]

    def apply(self, batch: PartitionBatch, loaded: Loaded) -> Decided:
        return _Timeline(self.app, self.cfg, batch, loaded).run()

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[Decided]) -> None:
        """Count decisions, then have the outbox of these partitions relayed."""
        for out in outputs:
            for (rule, result), n in out.decisions.items():
                self.metrics.pushes.labels(rule, result).inc(n)
        if self.relay_inline:
            self.relay.schedule(b.partition for b, out in zip(batches, outputs, strict=True)
                                if out.pushed)

    async def tick(self, now_ms: int) -> None:
        """Wall clock: retry whatever is left in any outbox (timers run on event time)."""
        if self.relay_inline:
            self.relay.schedule_all()

    async def close(self) -> None:
        if self.relay_inline:
            await self.relay.close()


def coupon_budgets(cfg: CouponConfig) -> dict[str, int | None]:
    """Campaign budget per coupon rule, for the push relay (agents/registry.py)."""
    return {n: r.budget for n, r in cfg.rules.items()}


def _ending_rooms(batch: PartitionBatch) -> list[str]:
    """Rooms with a ``live_end`` in the batch: the event on the host's partition, its copies
    on every other one."""
    return sorted({ev.room_id for ev in batch.feeds[NAME].in_order() if ev.type == "live_end"})


class _Timeline:
    """One partition's batch: events and due timers merged in event-time order."""

    def __init__(self, app: str, cfg: CouponConfig, batch: PartitionBatch,
                 loaded: Loaded) -> None:
        self.app, self.cfg, self.b = app, cfg, batch
        #: Stored state per user, so that only users whose state changed are written back.
        self.stored = loaded.users
        self.buckets = loaded.buckets
        self.users: dict[str, dict[str, Any]] = {}
        self.new_users: set[str] = set()
        for u, raw in self.stored.items():
            if raw is None:
                self.new_users.add(u)
                self.users[u] = {}
            else:
                self.users[u] = stored_users.unpack(raw)
        self.deferred: dict[str, dict[str, Any]] = dict(loaded.deferred)
        #: Viewers of the current session, known for the rooms ending in this batch; joins of
        #: other rooms only add to the stored set.
        self.viewers: dict[str, set[str]] = {r: set(v) for r, v in loaded.viewers.items()}
        self.last_end: dict[str, int] = dict(loaded.last_end)
        self.timers: dict[str, int | None] = {}
        self.deferred_changes: dict[str, dict[str, Any] | None] = {}
        self.outbox: list[dict[str, Any]] = []
        self.decisions: Counter[tuple[str, str]] = Counter()
        #: Due timers; events are merged in by ``run`` (a heap entry per event cost more).
        self.heap: list[tuple[int, tuple[int, ...], int, str, Any]] = []
        self.seq = 0
        for member, at in loaded.due:
            self._push(at, member[0], member[2:], self._tie(member))

    def _push(self, at: int, kind: str, payload: Any, tie: tuple[int, ...] = ()) -> None:
        """``tie`` orders deferred pushes released together by original trigger, rule and
        step, however they were loaded."""
        self.seq += 1
        heapq.heappush(self.heap, (at, tie, self.seq, kind, payload))

    def _tie(self, member: str) -> tuple[int, ...]:
        cand = self.deferred.get(member[2:]) if member.startswith("d|") else None
        if cand is None:
            return ()
        return (cand["trigger"], RULES.index(cand["rule"]), cand["step"])

    def _set_timer(self, member: str, at: int | None) -> None:
        self.timers[member] = at
        if at is not None and at <= self.b.watermark:
            self._push(at, member[0], member[2:], self._tie(member))

    def run(self) -> Decided:
        """Events in time order (stable: partition order within a ms, copies of ``live_end``
        at their place among the events), each timer before the events of its ms."""
        feed = self.b.feeds[NAME]
        mine = cast(list[UserEvent], feed.events)
        ends: list[tuple[int, int, UserEvent]] = [(ev.ts, 2 * i, cast(UserEvent, ev))
                                                  for i, ev in feed.copies]
        if ends:
            merged = [(ev.ts, 2 * i + 1, ev) for i, ev in enumerate(mine)]
            merged += ends
            merged.sort(key=itemgetter(0, 1))
            events = [(ev, pos % 2 == 0) for _, pos, ev in merged]
        else:
            events = [(ev, False) for ev in sorted(mine, key=attrgetter("ts"))]
        heap = self.heap
        i, n = 0, len(events)
        while i < n or heap:
            if not heap or (i < n and events[i][0].ts < heap[0][0]):
                ev, copy = events[i]
                if copy and ev.type == "live_end":
                    self._room_end(ev.room_id, ev.ts)
                else:
                    self._event(ev)
                i += 1
                continue
            at, _, _, kind, payload = heapq.heappop(heap)
            if kind == "c":
                self._cart_timer(payload, at)
            elif kind == "d":
                self._release(payload, at)
            else:
                self._followup(payload, at)
        self._write()
        return Decided(self.decisions, bool(self.outbox))

    def _consider(self, cand: dict[str, Any], now: int, allow_defer: bool = True) -> None:
        rule = cand["rule"]
        result, release = decide(cand, self.users[cand["user_id"]], now, self.cfg, allow_defer)
        if result == "deferred" and release is not None:
            self.deferred[cand["push_id"]] = cand
            self.deferred_changes[cand["push_id"]] = cand
            self._set_timer("d|" + cand["push_id"], release)
        if result == "outbox":
            self.outbox.append({**cand, "ts": now})
        else:
            self.decisions[(rule, result)] += 1

    def _candidate(self, rule: str, user: str, trigger: int, since: int, step: int = 0,
                   coupon: int | None = None, **extra: Any) -> dict[str, Any]:
        return {"push_id": push_id(rule, user, trigger, step), "rule": rule, "user_id": user,
                "trigger": trigger, "since": since, "step": step,
                "coupon_fen": self.cfg.rules[rule].coupon_fen if coupon is None else coupon,
                **extra}

    def _event(self, ev: UserEvent) -> None:
        u, ts, etype = ev.user_id, ev.ts, ev.type
        st = self.users[u]
        rules = self.cfg.rules
        if u in self.new_users:
            self.new_users.discard(u)
            st["first"] = ts
            if rules[NEW_USER].enabled:
                self._consider(self._candidate(NEW_USER, u, ts, ts), ts)
        if isinstance(ev, CartAdd | CartRemove):
            if isinstance(ev, CartAdd):
                cart.add_item(st, ev.sku, ev.qty, ev.price, ts)
            else:
                cart.remove_item(st, ev.sku, ev.qty, ts)
            self._set_timer("c|" + u, cart.arm(st, ts, self.cfg.steps))
            total = cart_total(st["items"])
            if etype == "cart_add" and rules[THRESHOLD_NUDGE].enabled and in_band(total, self.cfg):
                # "add <gap> to save <coupon>": the message needs the gap at trigger time.
                self._consider(self._candidate(THRESHOLD_NUDGE, u, ts, ts,
                                               gap_fen=self.cfg.threshold_fen - total), ts)
        elif ev.type == "order_submit" or (ev.type == "payment" and ev.status == "success"):
            st["ordered"] = max(st.get("ordered", -1), ts)
            if ev.type == "order_submit":
                cart.remove_ordered(st, ev.items, ts)
            if cart.cancel(st):
                self.decisions[(CART_RECOVERY, "suppressed")] += 1
            self._set_timer("c|" + u, None)
        elif isinstance(ev, LiveJoin | LiveLeave | LiveComment | LiveLike):
            room = ev.room_id
            view_event(st, room, etype, ts, self.cfg.idle_ms)
            viewers = self.viewers.setdefault(room, set())
            if etype == "live_join" and u not in viewers:
                viewers.add(u)
                self.b.ops.sadd(viewers_key(self.app, self.b.partition, room), u)
        elif ev.type == "live_end":
            self._room_end(ev.room_id, ts)

    def _cart_timer(self, user: str, at: int) -> None:
        st = self.users[user]
        fired = cart.fire(st, at, self.cfg.steps)
        if fired is None:
            return
        step, nxt = fired
        self._set_timer("c|" + user, nxt)
        if self.cfg.rules[CART_RECOVERY].enabled:
            coupon = self.cfg.steps[step].coupon_fen
            self._consider(self._candidate(CART_RECOVERY, user, at, int(st["episode"]), step,
                                           coupon, episode=st["episode"],
                                           cart_total_fen=cart_total(st["items"])), at)

    def _release(self, pid: str, at: int) -> None:
        self._set_timer("d|" + pid, None)
        cand = self.deferred.pop(pid, None)
        self.deferred_changes[pid] = None
        if cand is not None:
            self._consider(cand, at, allow_defer=False)

    def _room_end(self, room: str, end: int) -> None:
        """A session of ``room`` ended (the event or its copy): close this partition's views
        of it and schedule the follow-up of each viewer who watched long enough. A repeated
        or older ``live_end`` of the room is ignored."""
        if end <= self.last_end.get(room, -1):
            return
        self.last_end[room] = end
        cfg, ops, p = self.cfg, self.b.ops, self.b.partition
        ops.hmax(coupon_keys(self.app, p).live_ends, room, end)
        ops.delete(viewers_key(self.app, p, room))
        for u in sorted(self.viewers.pop(room, set())):
            watched = view_end(self.users[u], room, end, cfg.idle_ms)
            if cfg.rules[LIVE_FOLLOWUP].enabled and watched >= cfg.min_watch_ms:
                member = "l|" + codec.dumps([room, end, u]).decode()
                self._set_timer(member, end + cfg.within_ms)

    def _followup(self, payload: str, at: int) -> None:
        """``within`` after a session's end: the viewer's follow-up, suppressed by an order
        at or after the end."""
        self._set_timer("l|" + payload, None)
        room, end, u = codec.loads(payload)
        if self.cfg.rules[LIVE_FOLLOWUP].enabled:
            self._consider(self._candidate(LIVE_FOLLOWUP, u, at, end, room=room), at)

    def _write(self) -> None:
        ops, p, a = self.b.ops, self.b.partition, self.app
        k = coupon_keys(a, p)
        prefix = users_prefix(a, p)
        for u, st in self.users.items():
            raw = stored_users.pack(st)
            old = self.stored[u]
            if raw != old:
                ops.hset_bytes(prefix + self.buckets[u], u, raw)
                if old is not None and stored_users.is_old(old):
                    ops.delete(user_key(a, p, u))
        write_schedule(ops, k.timers, self.timers, k.deferred, self.deferred_changes)
        for push in self.outbox:
            ops.hset(k.outbox, push["push_id"], codec.dumps(push))
