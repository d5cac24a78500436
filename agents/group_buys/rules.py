"""Group buys, pure: the ``[group_buys]`` section, a group's state machine, and one partition's
batch of joins merged in event time with the expiry timers due (docs/group-buys.md).

A group is a dict (stored as JSON): ``sku``, ``target``, ``opened``, ``deadline`` (epoch ms),
``members`` (user ids in join order), ``status`` (open, completed or expired) and ``closed``
(when it completed or expired, else None). Its first join opens it; it completes at the join
that brings its members to the target, or expires at its deadline. Joins to a closed group,
at or after the deadline, or of a member again are refused (the batch loop dead-letters them).
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import msgspec

from shopstream.agents.push_guards import push_id
from shopstream.core.sections import as_table, read_section, read_table
from shopstream.core.timeunits import MINUTE_MS
from shopstream.kafka_io.envelope import Reason
from shopstream.schemas.events import GroupBuyJoin, GroupSize, Minutes

#: Push rules of group buys (service messages: no caps, cooldowns, quiet hours or tiers).
COMPLETED: Final = "group_completed"
EXPIRED: Final = "group_expired"
#: What ``shopstream_group_buys_total{outcome}`` counts.
OUTCOMES: Final = ("opened", "completed", "expired")
#: Per-SKU counts on the route, in this order.
COUNTS: Final = ("open", "completed", "expired")


class SkuTable(msgspec.Struct, frozen=True):
    """``[group_buys.skus.<sku>]``: a SKU's own size and window (else the section's)."""

    target: GroupSize | None = None
    window_min: Minutes | None = None


class GroupBuysSection(msgspec.Struct, frozen=True):
    """``[group_buys]``; ``skus`` stays raw here, each SKU's table is read by SkuTable."""

    #: Members a group needs to complete.
    target: GroupSize = 3
    #: Minutes from a group's first join to its deadline (24 h).
    window_min: Minutes = 1440
    #: Coupon of every group push (fen).
    coupon_fen: Annotated[int, msgspec.Meta(ge=0, le=10**9)] = 0
    skus: Any = msgspec.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupBuyConfig:
    target: int = 3
    window_min: int = 1440
    coupon_fen: int = 0
    skus: Mapping[str, SkuTable] = field(default_factory=dict)


def parse_config(sections: Mapping[str, Any]) -> GroupBuyConfig:
    """Validate ``[group_buys]``; defaults when absent, ConfigError naming the key when wrong."""
    sec = read_section(sections, "group_buys", GroupBuysSection)
    skus = {sku: read_table(f"group_buys.skus.{sku}", as_table(f"group_buys.skus.{sku}", raw),
                            SkuTable)
            for sku, raw in as_table("group_buys.skus", sec.skus).items()}
    return GroupBuyConfig(sec.target, sec.window_min, sec.coupon_fen, skus)


def open_group(ev: GroupBuyJoin, cfg: GroupBuyConfig) -> dict[str, Any]:
    """A group opened by its first join (not yet a member): target and window from the event,
    else the SKU's table, else the section."""
    sku = cfg.skus.get(ev.sku, SkuTable())
    target = ev.target or sku.target or cfg.target
    window = ev.window_min or sku.window_min or cfg.window_min
    return {"sku": ev.sku, "target": target, "opened": ev.ts,
            "deadline": ev.ts + window * MINUTE_MS, "members": [], "status": "open",
            "closed": None}


def refusal(group: dict[str, Any], group_id: str, user: str, ts: int) -> tuple[Reason, str] | None:
    """Why a join at ``ts`` is refused, or None when the user joins."""
    if group["status"] == "completed":
        return Reason.GROUP_COMPLETED, f"group {group_id} completed at {group['closed']}"
    if group["status"] == "expired" or ts >= group["deadline"]:
        return Reason.GROUP_EXPIRED, f"group {group_id} expired at {group['deadline']}"
    if user in group["members"]:
        return Reason.ALREADY_JOINED, f"user {user} already in group {group_id}"
    return None


def event_id(group_id: str, ts: int) -> str:
    """Id of a ``group_completed`` document: the same in a replay or after a crash."""
    return hashlib.sha1(f"group|{group_id}|{ts}".encode()).hexdigest()[:24]  # noqa: S324


def pushes(rule: str, group_id: str, group: dict[str, Any], at: int,
           coupon_fen: int) -> list[dict[str, Any]]:
    """One push per member, in join order (the outbox's documents). The id names the group:
    a member of two groups closing at the same ms gets two pushes."""
    return [{"push_id": push_id(f"{rule}|{group_id}", u, at, 0), "rule": rule, "user_id": u,
             "trigger": at, "since": group["opened"], "step": 0, "coupon_fen": coupon_fen, "ts": at,
             "group_id": group_id, "sku": group["sku"]} for u in group["members"]]


@dataclass(slots=True)
class Decided:
    """What one partition's batch decided."""

    #: group_id -> its state after the batch, for the groups that changed.
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: group_id -> expiry timer to set (deadline) or remove (None).
    timers: dict[str, int | None] = field(default_factory=dict)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    #: ``group_completed`` documents for the customer-events topic.
    completed: list[dict[str, Any]] = field(default_factory=list)
    #: Refused joins: (event, reason, detail).
    refused: list[tuple[GroupBuyJoin, Reason, str]] = field(default_factory=list)
    #: (outcome, sku) -> groups opened, completed, expired.
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)


def decide(groups: Mapping[str, dict[str, Any] | None], due: Iterable[tuple[str, int]],
           events: list[GroupBuyJoin], watermark: int, cfg: GroupBuyConfig) -> Decided:
    """A partition's joins (stably sorted by event time) merged with its expiry timers due by
    ``watermark`` (``due``: stored ones, (group_id, deadline)): a timer due at t fires before the
    joins at ts >= t; timers of one ms fire in group_id order. ``groups`` holds the stored
    state of every group named (None: unknown); it is not changed."""
    state: dict[str, dict[str, Any] | None] = {
        g: None if doc is None else {**doc, "members": list(doc["members"])}
        for g, doc in groups.items()}
    out = Decided()
    heap = [(at, g) for g, at in due]
    heapq.heapify(heap)
    for ev in [*sorted(events, key=lambda e: e.ts), None]:
        while heap and (ev is None or heap[0][0] <= ev.ts):
            at, g = heapq.heappop(heap)
            group = state[g]
            out.timers[g] = None
            if group is not None and group["status"] == "open" and group["deadline"] == at:
                group["status"], group["closed"] = "expired", at
                out.groups[g] = group
                out.outcomes[("expired", group["sku"])] += 1
                out.pushes += pushes(EXPIRED, g, group, at, cfg.coupon_fen)
        if ev is None:
            break
        g = ev.group_id
        group = state.get(g)
        if group is None:
            group = state[g] = open_group(ev, cfg)
            out.outcomes[("opened", ev.sku)] += 1
            out.timers[g] = group["deadline"]
            if group["deadline"] <= watermark:
                heapq.heappush(heap, (group["deadline"], g))
        why = refusal(group, g, ev.user_id, ev.ts)
        if why is not None:
            out.refused.append((ev, *why))
            continue
        group["members"].append(ev.user_id)
        out.groups[g] = group
        if len(group["members"]) == group["target"]:
            group["status"], group["closed"] = "completed", ev.ts
            out.timers[g] = None
            out.outcomes[("completed", group["sku"])] += 1
            out.pushes += pushes(COMPLETED, g, group, ev.ts, cfg.coupon_fen)
            out.completed.append({"event_id": event_id(g, ev.ts), "type": COMPLETED,
                                  "group_id": g, "sku": group["sku"],
                                  "members": list(group["members"]), "ts": ev.ts})
    return out
