"""Group buys in plain Python, written from the definitions (docs/group-buys.md), independent
of the agent: the groups, the pushes, the ``group_completed`` documents and the refused joins
of a log produced in event-time order; and a log generator with the edge cases."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shopstream.kafka_io.partitioner import partition_for

MIN = 60_000
T0 = 1_794_326_400_000
#: ``[group_buys]`` of the tests: per-SKU tables for the first SKUs, some with only one key.
SECTION: dict[str, Any] = {
    "target": 3, "window_min": 60, "coupon_fen": 150,
    "skus": {"g0": {"target": 2, "window_min": 5}, "g1": {"target": 5},
             "g2": {"window_min": 1}, "g3": {"target": 4, "window_min": 30}},
}


@dataclass
class Result:
    #: group_id -> {sku, target, opened, deadline, members, status, closed}
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (push_id, rule, user_id, ts, group_id, sku, coupon_fen), in no particular order.
    pushes: list[tuple[str, str, str, int, str, str, int]] = field(default_factory=list)
    #: event_id -> document on customer-events
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: event_id of a refused join -> reason
    refused: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """SKU -> {open, completed, expired}."""
        out: dict[str, Counter[str]] = {}
        for g in self.groups.values():
            out.setdefault(g["sku"], Counter())[g["status"]] += 1
        return {sku: {k: c[k] for k in ("open", "completed", "expired")}
                for sku, c in out.items()}


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:24]  # noqa: S324


def _push(res: Result, rule: str, gid: str, g: dict[str, Any], at: int, coupon: int) -> None:
    for u in g["members"]:
        res.pushes.append((_sha(f"{rule}|{gid}|{u}|{at}|0"), rule, u, at, gid, g["sku"], coupon))


def reference(log: list[dict[str, Any]], partitions: int,
              section: dict[str, Any] = SECTION) -> Result:
    """``log``: joins in the order produced (event time, then production order). A group's
    expiry fires once its partition's watermark (largest event time there) reaches the
    deadline, before the joins at or after it."""
    watermark: dict[int, int] = {}
    for ev in log:
        p = partition_for(ev["group_id"], partitions)
        watermark[p] = max(watermark.get(p, ev["ts"]), ev["ts"])
    res = Result()
    target0, window0 = section.get("target", 3), section.get("window_min", 1440)
    coupon = section.get("coupon_fen", 0)
    skus = section.get("skus", {})

    def expire(gid: str, g: dict[str, Any]) -> None:
        g["status"], g["closed"] = "expired", g["deadline"]
        _push(res, "group_expired", gid, g, g["deadline"], coupon)

    for ev in sorted(log, key=lambda e: e["ts"]):
        gid, ts, user = ev["group_id"], ev["ts"], ev["user_id"]
        g = res.groups.get(gid)
        if g is None:
            own = skus.get(ev["sku"], {})
            window = ev.get("window_min") or own.get("window_min") or window0
            g = res.groups[gid] = {
                "sku": ev["sku"], "target": ev.get("target") or own.get("target") or target0,
                "opened": ts, "deadline": ts + window * MIN, "members": [], "status": "open",
                "closed": None}
        if g["status"] == "open" and ts >= g["deadline"]:
            expire(gid, g)  # the timer at the deadline fired before this join
        if g["status"] == "completed":
            res.refused[ev["event_id"]] = "group_completed"
        elif g["status"] == "expired":
            res.refused[ev["event_id"]] = "group_expired"
        elif user in g["members"]:
            res.refused[ev["event_id"]] = "already_joined"
        else:
            g["members"].append(user)
            if len(g["members"]) == g["target"]:
                g["status"], g["closed"] = "completed", ts
                _push(res, "group_completed", gid, g, ts, coupon)
                eid = _sha(f"group|{gid}|{ts}")
                res.completed[eid] = {"event_id": eid, "type": "group_completed",
                                      "group_id": gid, "sku": g["sku"],
                                      "members": list(g["members"]), "ts": ts}
    for gid, g in res.groups.items():
        if g["status"] == "open" and g["deadline"] <= watermark[partition_for(gid, partitions)]:
            expire(gid, g)
    return res


def generate(groups: int, seed: int, skus: int = 8, users: int = 400,
             span_min: int = 600) -> list[dict[str, Any]]:
    """Joins of ``groups`` groups, in event-time order (ties in generation order): some groups
    set their own size or window, joins come late, at the deadline exactly, again from a
    member, after completion and after expiry; times on whole seconds so many share a ms."""
    rng = random.Random(seed)
    out: list[tuple[int, int, dict[str, Any]]] = []
    n = 0
    for k in range(groups):
        gid = f"grp{k}"
        sku = f"g{rng.randrange(skus)}"
        # One group in 20 opens at the end, joined only before its deadline: some stay open.
        tail = k % 20 == 0
        opened = T0 + (span_min * 60 + rng.randrange(7200)) * 1000 if tail else (
            T0 + rng.randrange(span_min * 60) * 1000)
        first: dict[str, Any] = {}
        if rng.random() < 0.25:
            first["target"] = rng.randint(2, 6)
        if rng.random() < 0.25:
            first["window_min"] = rng.randint(1, 90)
        own = SECTION["skus"].get(sku, {})
        window = first.get("window_min") or own.get("window_min") or SECTION["window_min"]
        deadline = opened + window * MIN
        members = [f"u{rng.randrange(users)}"]
        joins = [(opened, members[0], first)]
        for _ in range(rng.randint(0, 8)):
            r = rng.random()
            if tail:
                at = opened + rng.randrange(0, max(1, window * 6)) * 1000
            elif r < 0.1:
                at = deadline
            elif r < 0.2:
                at = deadline + rng.randrange(1, 600) * 1000
            else:
                at = opened + rng.randrange(0, max(1, window * 60)) * 1000
            user = rng.choice(members) if rng.random() < 0.15 else f"u{rng.randrange(users)}"
            members.append(user)
            extra = {"target": rng.randint(2, 9)} if rng.random() < 0.1 else {}
            joins.append((at, user, extra))
        for at, user, extra in joins:
            out.append((at, n, {"event_id": f"j{n}", "type": "group_buy_join", "ts": at,
                                "group_id": gid, "sku": sku, "user_id": user, **extra}))
            n += 1
    out.sort(key=lambda x: (x[0], x[1]))
    return [ev for _, _, ev in out]
