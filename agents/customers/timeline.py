"""The pure part of the customer loop's batch: a partition's events and due timers merged in
event time, turned into state operations, pushes, tier documents and service alerts
(definitions: docs/customers.md, docs/nudges.md; the I/O around it: agent.py).

Clock: as the coupons' (agents/coupons/agent.py): a batch fires every timer due at or before
the partition watermark, merged with its events in event-time order (a timer due at t fires
before the events at ts >= t; one user's timers of one ms in the order of ``_RANK``).
Refused events (a redemption beyond the balance, a self or second referral, an ack of an
unknown task) change nothing; the batch loop dead-letters them.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from operator import attrgetter
from typing import Any, NamedTuple, cast

from shopstream.agents.base import PartitionBatch, Refusal
from shopstream.agents.customers import ledger
from shopstream.agents.customers.config import (
    DORMANT_RECALL,
    REFERRAL_REWARD,
    REPURCHASE_REMINDER,
    REVIEW_REMINDER,
    RULES,
    SERVICE_APOLOGY,
    CustomersConfig,
)
from shopstream.agents.customers.nudges import decide
from shopstream.agents.push_guards import push_id, write_schedule
from shopstream.core import codec
from shopstream.kafka_io.envelope import Reason
from shopstream.schemas.events import Event, Referral, UserEvent
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.customers import users as stored_users
from shopstream.sinks.customers.keys import bucket, customer_keys, users_prefix

NAME = "customers"
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


def run_batch(app: str, cfg: CustomersConfig, batch: PartitionBatch, loaded: Loaded
              ) -> Decided:
    """The pure part of a batch: its events and due timers into ``batch.ops``."""
    return _Timeline(app, cfg, batch, loaded).run()


def for_referrer(cand: dict[str, Any]) -> bool:
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
        referrer = for_referrer(cand)
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
        if not for_referrer(cand):
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
        write_schedule(ops, k.timers, self.timers, k.deferred, self.deferred_changes)
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
