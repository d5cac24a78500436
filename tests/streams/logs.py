"""Generated event logs with duplicates and bad records mixed in, and their references.

The references restate the definitions (README "Semantics") in plain Python; they share no
code with the worker except the partitioner, which tests/streams/test_partitioner.py checks
against librdkafka's murmur2.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from shopstream.kafka_io.partitioner import partition_for
from shopstream.simulate import Simulator

BAD_KINDS = (
    "malformed_json", "not_an_object", "unknown_type", "missing_field", "mistyped_field",
    "negative_money",
)


@dataclass
class Log:
    lines: list[bytes]
    #: Valid events in line order, duplicates included.
    valid: list[dict[str, Any]]
    #: Expected dead letters by reason.
    bad: dict[str, int] = field(default_factory=dict)

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())


def _bad_line(kind: str, rng: random.Random, base: dict[str, Any]) -> tuple[bytes, str]:
    ev = dict(base)
    ev["event_id"] = f"bad{rng.randrange(10**12)}"
    if kind == "malformed_json":
        return b'{"event_id": "x", "type": "page_view", "ts": 17', "malformed_json"
    if kind == "not_an_object":
        return rng.choice([b"42", b'"hello"', b"null", b"true"]), "not_an_object"
    if kind == "unknown_type":
        ev["type"] = "teleport"
        return json.dumps(ev).encode(), "unknown_type"
    if kind == "missing_field":
        ev = {"event_id": ev["event_id"], "type": "payment", "ts": ev["ts"],
              "user_id": ev["user_id"], "amount": 100}
        return json.dumps(ev).encode(), "invalid_field"
    if kind == "mistyped_field":
        ev = {"event_id": ev["event_id"], "type": "cart_add", "ts": ev["ts"],
              "user_id": ev["user_id"], "sku": "s1", "qty": "2", "price": 100}
        return json.dumps(ev).encode(), "invalid_field"
    ev = {"event_id": ev["event_id"], "type": "payment", "ts": ev["ts"], "user_id": ev["user_id"],
          "order_id": "o-neg", "amount": -100, "status": "success"}
    return json.dumps(ev).encode(), "invalid_field"


def build_log(n: int, seed: int, rate: float = 1000.0, horizon_ms: int = 20_000,
              bad_ratio: float = 0.02, dup_ratio: float = 0.03, oversized: int = 2) -> Log:
    """About ``n`` lines: simulated traffic, near and far duplicates, bad records."""
    rng = random.Random(seed)
    sim = Simulator(users=3_000, rate=rate, seed=seed)
    lines: list[bytes] = []
    valid: list[dict[str, Any]] = []
    bad: dict[str, int] = defaultdict(int)
    history: list[dict[str, Any]] = []
    for ev in sim.events(n):
        history.append(ev)
        lines.append(json.dumps(ev).encode())
        valid.append(ev)
        roll = rng.random()
        if roll < dup_ratio * 0.7 and len(history) > 1:
            dup = history[-rng.randrange(1, min(len(history), 50) + 1)]
        elif roll < dup_ratio:
            # Far duplicates straddle the horizon: some still duplicates, some not.
            back = int(rate * horizon_ms / 1000 * rng.uniform(0.8, 1.3))
            dup = history[max(0, len(history) - back)]
        else:
            dup = None
        if dup is not None:
            lines.append(json.dumps(dup).encode())
            valid.append(dup)
        if rng.random() < bad_ratio:
            line, reason = _bad_line(rng.choice(BAD_KINDS), rng, ev)
            lines.append(line)
            bad[reason] += 1
    for i in range(oversized):
        pos = rng.randrange(len(lines))
        big = {"event_id": f"big{i}", "type": "page_view", "ts": valid[0]["ts"],
               "user_id": "u1", "page": "x" * 1_100_000}
        lines.insert(pos, json.dumps(big).encode())
        bad["oversized"] += 1
    return Log(lines, valid, dict(bad))


def dedup_reference(events: list[dict[str, Any]], partitions: int,
                    horizon_ms: int) -> tuple[list[dict[str, Any]], int]:
    """Events left after removing duplicates (per partition, sliding event-time horizon)."""
    wm: dict[int, int] = defaultdict(int)
    last_seen: dict[int, dict[str, int]] = defaultdict(dict)
    kept: list[dict[str, Any]] = []
    dups = 0
    for ev in events:
        p = partition_for(ev["user_id"], partitions)
        wm[p] = max(wm[p], ev["ts"])
        prev = last_seen[p].get(ev["event_id"])
        last_seen[p][ev["event_id"]] = wm[p]
        if prev is not None and wm[p] - prev <= horizon_ms:
            dups += 1
        else:
            kept.append(ev)
    return kept, dups


def stats_reference(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """minute -> {counts: {type: {channel: n}}, gmv, paid}, from the event_stats definition."""
    out: dict[int, dict[str, Any]] = {}
    for ev in events:
        minute = ev["ts"] // 60_000 * 60_000
        slot = out.setdefault(minute, {"minute": minute, "counts": {}, "gmv": 0, "paid": 0})
        by_channel = slot["counts"].setdefault(ev["type"], {})
        ch = ev.get("channel") or "other"
        by_channel[ch] = by_channel.get(ch, 0) + 1
        if ev["type"] == "payment" and ev["status"] == "success":
            slot["gmv"] += ev["amount"]
            slot["paid"] += 1
    return out
