"""The customer loop: tiers by spend, points, lifecycle nudges, service tasks and referrals, in
event time (definitions: docs/customers.md, docs/nudges.md).

State per partition (sinks/customers/keys.py) is written in the batch's fenced call; pushes go
into the partition's push outbox and leave through the coupons' relay (budgets per rule),
``tier_changed`` documents and service alerts through outboxes sent once the call landed.

Clock: as the coupons' (agents/coupons/agent.py): a batch fires every timer due at or before
the partition watermark, merged with its events in event-time order (a timer due at t fires
before the events at ts >= t; one user's timers of one ms in the order of ``_RANK``).
Refused events (a redemption beyond the balance, a self or second referral, an ack of an
unknown task) change nothing and are dead-lettered by the batch loop.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections import Counter
from operator import attrgetter
from typing import Any, NamedTuple, cast

from redis.exceptions import RedisError

from shopstream.agents.base import NoHooks, PartitionBatch, Refusal, Takes
from shopstream.agents.customers import ledger
from shopstream.agents.customers.config import (
    DORMANT_RECALL,
    REFERRAL_REWARD,
    REPURCHASE_REMINDER,
    REVIEW_REMINDER,
    RULES,
    SERVICE_APOLOGY,
    CustomersConfig,
    parse_config,
)
from shopstream.agents.customers.nudges import decide
from shopstream.agents.push_guards import push_id
from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope import Reason
from shopstream.kafka_io.errors import ProduceError
from shopstream.monitoring.metrics import Metrics
from shopstream.schemas.events import USER_TYPES, Event, Referral, UserEvent
from shopstream.sinks.alert_outbox import AlertOutbox
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.customers import users as stored_users
from shopstream.sinks.customers.keys import bucket, customer_keys, users_prefix
from shopstream.sinks.outbox import OutboxRelay
from shopstream.sinks.redis_state import Redis

log = logging.getLogger(__name__)

NAME = "customers"
TYPES = USER_TYPES | {"referral"}
#: One user's timers due at one ms fire in this order (then by order, SKU, task, or deferred
#: push's trigger, rule and id).
_RANK = {"x": 0, "r": 1, "p": 2, "z": 3, "e": 4, "d": 5}


class Loaded(NamedTuple):
    """What ``load`` read for a partition's batch."""

    #: Timers due by the batch's watermark: (member, due time).
    due: list[tuple[str, int]]
    #: push id -> deferred candidate, of the deferred pushes due.
    deferred: dict[str, dict[str, Any]]
    #: task id -> task document, of the tasks acked in the batch or due to escalate.
    tasks: dict[str, dict[str, Any]]
    #: user -> stored state (None: never seen here).
    users: dict[str, bytes | None]


class Decided(NamedTuple):
    """What a partition's batch decided, for the metrics and the outboxes."""

    decisions: Counter[tuple[str, str]]
    #: tier -> changes into it.
    tier_changes: Counter[str]
    pushed: bool
    #: Whether it wrote tier_changed documents or service alerts to send.
    sent: bool


def user_of(ev: Event) -> str:
    """The user whose partition holds the event's state: a referral's invitee."""
    return ev.invitee_id if isinstance(ev, Referral) else cast(UserEvent, ev).user_id


class CustomersAgent(NoHooks):
    """Tiers, points, nudges, service tasks and referrals; pushes to the push outbox."""

    name = NAME
    #: Every event about a user and referrals, late ones too (timers run in event time).
    takes = Takes(TYPES)

    def __init__(self, settings: Settings, redis: Redis, metrics: Metrics | None = None,
                 relay: OutboxRelay | None = None, close_relay: bool = True) -> None:
        self.app = settings.app_id
        self.redis = redis
        self.cfg: CustomersConfig = parse_config(settings.sections, settings.zone)
        self.metrics = metrics or Metrics()
        #: Relays the push outboxes inline (None: another agent's relay or a relay process).
        self.relay = relay
        self.close_relay = close_relay
        self.tier_events = AlertOutbox(redis, settings, customer_keys(self.app, 0).events,
                                       topic=settings.customer_events_topic, key_field="user_id")
        self.alerts = AlertOutbox(redis, settings, customer_keys(self.app, 0).alerts)
        #: Partitions this worker applied batches of: their outboxes are retried on ticks.
        self.seen: set[int] = set()

    async def load(self, batches: list[PartitionBatch]) -> list[Loaded]:
        """Due timers, then deferred pushes and tasks, then users: three round trips."""
        a = self.app
        async with self.redis.pipeline(transaction=False) as pipe:
            for b in batches:
                pipe.zrangebyscore(customer_keys(a, b.partition).timers, "-inf", b.watermark,
                                   withscores=True)
            rows = await pipe.execute()
        plans = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for b, row in zip(batches, rows, strict=True):
                k = customer_keys(a, b.partition)
                due = [(m.decode(), int(s)) for m, s in row]
                pids = [m[2:] for m, _ in due if m[0] == "d"]
                tids = sorted({codec.loads(m[2:])[1] for m, _ in due if m[0] == "e"}
                              | {ev.task_id for ev in b.feeds[NAME].events
                                 if ev.type == "task_ack"})
                if pids:
                    pipe.hmget(k.deferred, pids)
                if tids:
                    pipe.hmget(k.tasks, tids)
                plans.append((due, pids, tids))
            got = iter(await pipe.execute())
        prepared = []
        for b, (due, pids, tids) in zip(batches, plans, strict=True):
            deferred = {pid: codec.loads(raw) for pid, raw in
                        zip(pids, next(got) if pids else [], strict=True) if raw is not None}
            tasks = {tid: codec.loads(raw) for tid, raw in
                     zip(tids, next(got) if tids else [], strict=True) if raw is not None}
            names = {user_of(ev) for ev in b.feeds[NAME].events}
            names.update(_timer_user(m) for m, _ in due if m[0] != "d")
            names.update(c["user_id"] for c in deferred.values() if not _for_referrer(c))
            prepared.append((due, deferred, tasks, sorted(names)))
        raws = await stored_users.load(self.redis, a, [
            (b.partition, names) for b, (*_, names) in zip(batches, prepared, strict=True)])
        return [Loaded(due, deferred, tasks, dict(zip(names, r, strict=True)))
                for (due, deferred, tasks, names), r in zip(prepared, raws, strict=True)]

    def apply(self, batch: PartitionBatch, loaded: Loaded) -> Decided:
        return run_batch(self.app, self.cfg, batch, loaded)

    async def after_apply(self, batches: list[PartitionBatch], outputs: list[Decided]) -> None:
        """Count decisions and tier changes; send the documents written; have the push
        outboxes relayed."""
        for out in outputs:
            for (rule, result), n in out.decisions.items():
                self.metrics.pushes.labels(rule, result).inc(n)
            for tier, n in out.tier_changes.items():
                self.metrics.customer_tier_changes.labels(tier).inc(n)
        self.seen.update(b.partition for b in batches)
        await self._send([b.partition for b, out in zip(batches, outputs, strict=True)
                          if out.sent])
        if self.relay is not None:
            self.relay.schedule(b.partition for b, out in zip(batches, outputs, strict=True)
                                if out.pushed)

    async def tick(self, now_ms: int) -> None:
        """Wall clock: retry the documents and pushes left in any outbox (timers run on event
        time)."""
        await self._send(sorted(self.seen))
        if self.relay is not None and self.close_relay:
            self.relay.schedule_all()

    async def _send(self, partitions: list[int]) -> None:
        """The partitions' tier_changed documents and service alerts to Kafka; left in their
        outbox for the next try when the broker or Redis fails."""
        try:
            for p in partitions:
                k = customer_keys(self.app, p)
                await self.tier_events.send(k.events)
                await self.alerts.send(k.alerts)
        except (ProduceError, RedisError) as exc:
            log.warning("customer outboxes not sent: %s; the next tick retries", exc)

    async def close(self) -> None:
        if self.relay is not None and self.close_relay:
            await self.relay.close()


def run_batch(app: str, cfg: CustomersConfig, batch: PartitionBatch, loaded: Loaded
              ) -> Decided:
    """The pure part of a batch: its events and due timers into ``batch.ops``."""
    return _Timeline(app, cfg, batch, loaded).run()


def _timer_user(member: str) -> str:
    if member[0] in "xz":
        return member[2:]
    return str(codec.loads(member[2:])[0])


def _for_referrer(cand: dict[str, Any]) -> bool:
    """The referrer's reward, decided on the invitee's partition without the referrer's state."""
    return bool(cand.get("referrer_id") == cand["user_id"])


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:24]  # noqa: S324


def task_id(user: str, order_id: str, ts: int) -> str:
    return _sha(f"task|{user}|{order_id}|{ts}")


def tier_event_id(user: str, ts: int, old: str, new: str) -> str:
    return _sha(f"tier|{user}|{ts}|{old}|{new}")


class _Timeline:
    """One partition's batch: events and due timers merged in event-time order."""

    def __init__(self, app: str, cfg: CustomersConfig, batch: PartitionBatch,
                 loaded: Loaded) -> None:
        self.app, self.cfg, self.b = app, cfg, batch
        self.stored = loaded.users
        self.users: dict[str, dict[str, Any]] = {
            u: {} if raw is None else stored_users.unpack(raw) for u, raw in loaded.users.items()}
        self.deferred: dict[str, dict[str, Any]] = dict(loaded.deferred)
        self.tasks: dict[str, dict[str, Any]] = dict(loaded.tasks)
        self.tasks_changed: set[str] = set()
        self.timers: dict[str, int | None] = {}
        self.deferred_changes: dict[str, dict[str, Any] | None] = {}
        self.outbox: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.population: Counter[str] = Counter()
        self.decisions: Counter[tuple[str, str]] = Counter()
        self.tier_changes: Counter[str] = Counter()
        self.heap: list[tuple[Any, ...]] = []
        self.seq = 0
        for member, at in loaded.due:
            self._push(member, at)

    # -- timers ------------------------------------------------------------------------
    def _push(self, member: str, at: int) -> None:
        kind = member[0]
        if kind == "d":
            cand = self.deferred.get(member[2:])
            user = "" if cand is None else cand["user_id"]
            sub: tuple[Any, ...] = (-1, -1, member[2:]) if cand is None else (
                cand["trigger"], RULES.index(cand["rule"]), member[2:])
        elif kind in "xz":
            user, sub = member[2:], ()
        else:
            user, key = codec.loads(member[2:])
            sub = (key,)
        self.seq += 1
        heapq.heappush(self.heap, (at, user, _RANK[kind], sub, self.seq, member))

    def _set_timer(self, member: str, at: int | None) -> None:
        self.timers[member] = at
        if at is not None and at <= self.b.watermark:
            self._push(member, at)

    def run(self) -> Decided:
        """Events in time order (stable), each timer before the events of its ms."""
        events = sorted(self.b.feeds[NAME].events, key=attrgetter("ts"))
        heap = self.heap
        i, n = 0, len(events)
        while i < n or heap:
            if not heap or (i < n and events[i].ts < heap[0][0]):
                self._event(events[i])
                i += 1
                continue
            at, *_, member = heapq.heappop(heap)
            kind, rest = member[0], member[2:]
            if kind == "x":
                self._expiry(rest, at)
            elif kind == "z":
                self._dormant(rest, at)
            elif kind == "d":
                self._release(rest, at)
            else:
                u, key = codec.loads(rest)
                if kind == "r":
                    self._review_reminder(u, key, at)
                elif kind == "p":
                    self._repurchase(u, key, at)
                else:
                    self._escalate(u, key, at)
        self._write()
        return Decided(self.decisions, self.tier_changes, bool(self.outbox),
                       bool(self.events or self.alerts))

    # -- decisions ---------------------------------------------------------------------
    def _candidate(self, rule: str, user: str, trigger: int, since: int, step: int = 0,
                   **fields: Any) -> dict[str, Any]:
        return {"push_id": push_id(rule, user, trigger, step), "rule": rule, "user_id": user,
                "trigger": trigger, "since": since, "step": step,
                "coupon_fen": self.cfg.rules[rule].coupon_fen, **fields}

    def _valid(self, cand: dict[str, Any]) -> bool:
        """The rule's own check at decision time."""
        rule = cand["rule"]
        if rule not in (REVIEW_REMINDER, REPURCHASE_REMINDER):
            return True
        st = self.users[cand["user_id"]]
        order = st.get("ord", {}).get(cand["order_id"])
        if order is None or order[ledger.REMAINING] == 0:
            return False
        return rule != REVIEW_REMINDER or cand["order_id"] not in st.get("rev", [])

    def _consider(self, cand: dict[str, Any], now: int, allow_defer: bool = True) -> None:
        referrer = _for_referrer(cand)
        st = {} if referrer else self.users[cand["user_id"]]
        tier = None if referrer else st["tier"]
        result, release = decide(cand, st, tier or "", now, self._valid(cand), self.cfg,
                                 allow_defer)
        if result == "deferred" and release is not None:
            pid = cand["push_id"]
            self.deferred[pid] = cand
            self.deferred_changes[pid] = cand
            if not referrer:
                st.setdefault("df", {})[pid] = [release, cand["rule"]]
            self._set_timer("d|" + pid, release)
        if result == "outbox":
            coupon = self.cfg.rules[cand["rule"]].coupon(tier)
            self.outbox.append({**cand, "coupon_fen": coupon, "ts": now, "tier": tier})
        else:
            self.decisions[(cand["rule"], result)] += 1

    def _release(self, pid: str, at: int) -> None:
        cand = self.deferred.pop(pid, None)
        self.timers["d|" + pid] = None
        self.deferred_changes[pid] = None
        if cand is None:
            return
        if not _for_referrer(cand):
            df = self.users[cand["user_id"]].get("df", {})
            df.pop(pid, None)
            if not df:
                self.users[cand["user_id"]].pop("df", None)
        self._consider(cand, at, allow_defer=False)

    # -- tiers -------------------------------------------------------------------------
    def _retier(self, u: str, ts: int) -> None:
        st = self.users[u]
        spend, _ = ledger.spend(st)
        new, old = self.cfg.tier_of(spend), st["tier"]
        if new == old:
            return
        st["tier"] = new
        self.population[old] -= 1
        self.population[new] += 1
        self.tier_changes[new] += 1
        self.events.append({"event_id": tier_event_id(u, ts, old, new), "user_id": u,
                            "from": old, "to": new, "spend_fen": spend, "ts": ts})

    def _arm_expiry(self, u: str) -> None:
        self._set_timer("x|" + u, ledger.next_expiry(self.users[u], self.cfg))

    def _expiry(self, u: str, at: int) -> None:
        st = self.users[u]
        if ledger.next_expiry(st, self.cfg) != at:
            return  # stale: moved since it was loaded
        ledger.expire(st, at, self.cfg)
        self._arm_expiry(u)
        self._retier(u, at)

    # -- events ------------------------------------------------------------------------
    def _refusal(self, ev: Event, st: dict[str, Any]) -> Refusal | None:
        if isinstance(ev, Referral):
            if ev.referrer_id == ev.invitee_id:
                return Refusal(ev, Reason.SELF_REFERRAL, f"referrer_id {ev.referrer_id!r} is "
                               "the invitee")
            if "ref" in st:
                return Refusal(ev, Reason.ALREADY_REFERRED, f"invitee {ev.invitee_id!r} was "
                               f"referred by {st['ref']!r}")
        elif ev.type == "points_redeem":
            detail = ledger.redeem(st, ev.points)
            if detail is not None:
                return Refusal(ev, Reason.INSUFFICIENT_POINTS, detail)
        elif ev.type == "task_ack" and ev.task_id not in st.get("tk", {}):
            return Refusal(ev, Reason.UNKNOWN_TASK, f"task {ev.task_id!r} is not a task of "
                           f"user {ev.user_id!r}")
        return None

    def _event(self, ev: Event) -> None:
        u, ts = user_of(ev), ev.ts
        st = self.users[u]
        refusal = self._refusal(ev, st)
        if refusal is not None:
            self.b.refused.append(refusal)
            return
        if "tier" not in st:
            st["tier"] = self.cfg.tiers[0].name
            self.population[st["tier"]] += 1
        if isinstance(ev, Referral):
            st["ref"] = ev.referrer_id
        elif ev.type == "payment":
            if ev.status == "success" and ledger.pay(st, ev.order_id, ev.amount, ts, self.cfg):
                self._paid(u, ev.order_id, ts)
        elif ev.type == "order_submit":
            if ev.order_id not in st.get("ord", {}):
                skus = sorted({i.sku for i in ev.items if self.cfg.cycle_ms(i.sku) is not None})
                subs = st.setdefault("sub", {})
                if skus:
                    subs[ev.order_id] = skus
                else:
                    subs.pop(ev.order_id, None)
                if not subs:
                    del st["sub"]
        elif ev.type in ("order_cancel", "refund"):
            amount = ev.amount if ev.type == "refund" else None
            if ledger.reduce(st, ev.order_id, amount, self.cfg):
                self._retier(u, ts)
        elif ev.type == "review":
            ledger.review(st, ev.order_id, self.cfg)
            if ev.rating <= self.cfg.bad_rating:
                self._open_task(u, ev.order_id, ev.rating, ev.text, ts)
        elif ev.type == "check_in":
            ledger.check_in(st, ts, self.cfg)
        elif ev.type == "task_ack":
            self._ack(u, ev.task_id, ts)
        self._seen(u, ts)

    def _seen(self, u: str, ts: int) -> None:
        """Any accepted event of the user: last_seen, and the dormant recall (re)armed."""
        st = self.users[u]
        st["ls"] = max(st.get("ls", ts), ts)
        if self.cfg.rules[DORMANT_RECALL].enabled:
            st["dz"] = st["ls"] + self.cfg.dormant_after(st["tier"])
            self._set_timer("z|" + u, st["dz"])

    def _paid(self, u: str, oid: str, ts: int) -> None:
        st, cfg = self.users[u], self.cfg
        self._arm_expiry(u)
        self._retier(u, ts)
        if cfg.rules[REVIEW_REMINDER].enabled:
            due = ts + cfg.review_after_ms
            st.setdefault("rr", {})[oid] = due
            self._set_timer("r|" + codec.dumps([u, oid]).decode(), due)
        skus = st.get("sub", {}).pop(oid, None)
        if "sub" in st and not st["sub"]:
            del st["sub"]
        if skus and cfg.rules[REPURCHASE_REMINDER].enabled:
            pending = st.setdefault("rp", {})
            for sku in skus:
                cycle = cfg.cycle_ms(sku)
                if cycle is None:
                    continue
                if sku in pending:
                    self.decisions[(REPURCHASE_REMINDER, "suppressed")] += 1
                due = ts + cycle - cfg.repurchase_lead_ms
                pending[sku] = [due, oid, ts]
                self._set_timer("p|" + codec.dumps([u, sku]).decode(), due)
            if not pending:
                del st["rp"]
        if "fp" not in st:
            st["fp"] = ts
            ref = st.get("ref")
            if ref is not None and cfg.rules[REFERRAL_REWARD].enabled:
                fields = {"invitee_id": u, "referrer_id": ref}
                self._consider(self._candidate(REFERRAL_REWARD, u, ts, ts, 0, **fields), ts)
                self._consider(self._candidate(REFERRAL_REWARD, ref, ts, ts, 1, **fields), ts)

    # -- nudges ------------------------------------------------------------------------
    def _review_reminder(self, u: str, oid: str, at: int) -> None:
        st = self.users[u]
        pending = st.get("rr", {})
        if pending.get(oid) != at:
            return
        del pending[oid]
        if not pending:
            del st["rr"]
        self.timers["r|" + codec.dumps([u, oid]).decode()] = None
        paid = st["ord"][oid][ledger.PAID]
        self._consider(self._candidate(REVIEW_REMINDER, u, at, paid, order_id=oid), at)

    def _repurchase(self, u: str, sku: str, at: int) -> None:
        st = self.users[u]
        pending = st.get("rp", {})
        entry = pending.get(sku)
        if entry is None or entry[0] != at:
            return
        del pending[sku]
        if not pending:
            del st["rp"]
        self.timers["p|" + codec.dumps([u, sku]).decode()] = None
        _, oid, paid = entry
        self._consider(self._candidate(REPURCHASE_REMINDER, u, at, paid, sku=sku, order_id=oid),
                       at)

    def _dormant(self, u: str, at: int) -> None:
        st = self.users[u]
        if st.get("dz") != at:
            return
        del st["dz"]
        self.timers["z|" + u] = None
        seen = st["ls"]
        self._consider(self._candidate(DORMANT_RECALL, u, at, seen, last_seen=seen), at)

    # -- service tasks -----------------------------------------------------------------
    def _open_task(self, u: str, oid: str, rating: int, text: str | None, ts: int) -> None:
        st = self.users[u]
        tasks = st.setdefault("tk", {})
        if any(t[0] == oid and t[1] == "open" for t in tasks.values()):
            return
        tid = task_id(u, oid, ts)
        due = ts + self.cfg.ack_ms
        tasks[tid] = [oid, "open"]
        doc: dict[str, Any] = {"task_id": tid, "user_id": u, "order_id": oid, "rating": rating}
        if text is not None:
            doc["text"] = text
        doc.update(opened=ts, due=due, status="open")
        self.tasks[tid] = doc
        self.tasks_changed.add(tid)
        self._set_timer("e|" + codec.dumps([u, tid]).decode(), due)
        self.alerts.append(self._alert(doc, "opened", "service_task", ts))

    def _alert(self, doc: dict[str, Any], suffix: str, kind: str, ts: int) -> dict[str, Any]:
        return {"alert_id": f"{doc['task_id']}:{suffix}", "kind": kind,
                **{k: doc[k] for k in ("task_id", "user_id", "order_id", "rating", "opened",
                                       "due")}, "ts": ts}

    def _escalate(self, u: str, tid: str, at: int) -> None:
        task = self.users[u].get("tk", {}).get(tid)
        self.timers["e|" + codec.dumps([u, tid]).decode()] = None
        doc = self.tasks.get(tid)
        if task is None or task[1] != "open" or doc is None:
            return
        task[1] = doc["status"] = "escalated"
        self.tasks_changed.add(tid)
        self.alerts.append(self._alert(doc, "escalated", "service_task_escalated", at))

    def _ack(self, u: str, tid: str, ts: int) -> None:
        task = self.users[u]["tk"][tid]
        if task[1] == "acked":
            return
        if task[1] == "open":
            self.timers["e|" + codec.dumps([u, tid]).decode()] = None
        task[1] = "acked"
        doc = self.tasks.get(tid)
        if doc is not None:
            doc.update(status="acked", acked=ts)
            self.tasks_changed.add(tid)
        if self.cfg.rules[SERVICE_APOLOGY].enabled:
            opened = ts if doc is None else doc["opened"]
            self._consider(self._candidate(SERVICE_APOLOGY, u, ts, opened, task_id=tid), ts)

    # -- write -------------------------------------------------------------------------
    def _write(self) -> None:
        ops, p, a = self.b.ops, self.b.partition, self.app
        k = customer_keys(a, p)
        prefix = users_prefix(a, p)
        for u, st in self.users.items():
            if not st:
                continue  # refused before it was known: nothing written
            raw = stored_users.pack(st)
            if raw != self.stored[u]:
                ops.hset_bytes(prefix + bucket(u), u, raw)
        for member, at in self.timers.items():
            if at is None:
                ops.zrem(k.timers, member)
            else:
                ops.zadd(k.timers, at, member)
        for pid, cand in self.deferred_changes.items():
            if cand is None:
                ops.hdel(k.deferred, pid)
            else:
                ops.hset(k.deferred, pid, codec.dumps(cand))
        for tid in sorted(self.tasks_changed):
            ops.hset(k.tasks, tid, codec.dumps(self.tasks[tid]))
        for tier, n in sorted(self.population.items()):
            if n:
                ops.hincrby(k.tiers, tier, n)
        for doc in self.events:
            ops.hset(k.events, doc["event_id"], codec.dumps(doc))
        for alert in self.alerts:
            ops.hset(k.alerts, alert["alert_id"], codec.dumps(alert))
        outbox = coupon_keys(a, p).outbox
        for push in self.outbox:
            ops.hset(outbox, push["push_id"], codec.dumps(push))
