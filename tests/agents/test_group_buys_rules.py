"""Group buys' rules against the reference (tests/agents/group_buys_ref.py): tens of thousands
of generated joins, each partition's log cut into random batches, the stored state carried
from batch to batch as Redis would: groups, members, pushes (ids and times), completions and
refusals equal. And the ``[group_buys]`` section: defaults, values, errors naming the key."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import msgspec
import pytest

from shopstream.agents.group_buys.rules import (
    GroupBuyConfig,
    SkuTable,
    decide,
    parse_config,
)
from shopstream.core.errors import ConfigError
from shopstream.kafka_io.partitioner import partition_for
from shopstream.schemas.events import GroupBuyJoin
from tests.agents.group_buys_ref import SECTION, T0, Result, generate, reference

PARTITIONS = 4


def engine(log: list[dict[str, Any]], cfg: GroupBuyConfig, seed: int,
           partitions: int = PARTITIONS) -> Result:
    """Each partition's joins in random batches through ``decide``, its output kept as the
    fenced write keeps it (groups, timers by deadline)."""
    rng = random.Random(seed)
    res = Result()
    for p in range(partitions):
        evs = [msgspec.convert(e, GroupBuyJoin) for e in log
               if partition_for(e["group_id"], partitions) == p]
        groups: dict[str, dict[str, Any]] = {}
        timers: dict[str, int] = {}
        watermark = 0
        i = 0
        while i < len(evs):
            batch = evs[i:i + rng.choice([1, 2, 3, 7, 20, 64, 300])]
            i += len(batch)
            watermark = max(watermark, *(e.ts for e in batch))
            due = [(g, at) for g, at in timers.items() if at <= watermark]
            rng.shuffle(due)
            names = {e.group_id for e in batch} | {g for g, _ in due}
            out = decide({g: groups.get(g) for g in names}, due, batch, watermark, cfg)
            groups.update(out.groups)
            for g, at in out.timers.items():
                if at is None:
                    timers.pop(g, None)
                else:
                    timers[g] = at
            for x in out.pushes:
                res.pushes.append((x["push_id"], x["rule"], x["user_id"], x["ts"],
                                   x["group_id"], x["sku"], x["coupon_fen"]))
                assert x["trigger"] == x["ts"] and x["step"] == 0
                assert x["since"] == groups[x["group_id"]]["opened"]
            for d in out.completed:
                assert d["event_id"] not in res.completed
                res.completed[d["event_id"]] = d
            for ev, reason, detail in out.refused:
                assert ev.group_id in detail
                res.refused[ev.event_id] = reason.value
        res.groups.update(groups)
    return res


@pytest.fixture(scope="module")
def log() -> list[dict[str, Any]]:
    return generate(5_000, seed=29)


def test_the_log_has_every_case(log: list[dict[str, Any]]) -> None:
    want = reference(log, PARTITIONS)
    assert len(log) >= 20_000
    reasons = list(want.refused.values())
    for reason in ("group_completed", "group_expired", "already_joined"):
        assert reasons.count(reason) > 200, reason
    statuses = [g["status"] for g in want.groups.values()]
    assert min(statuses.count(s) for s in ("open", "completed", "expired")) > 20
    deadlines = {gid: g["deadline"] for gid, g in want.groups.items()}
    at_deadline = [e for e in log if e["ts"] == deadlines[e["group_id"]]]
    assert len(at_deadline) > 200
    assert {e["event_id"] for e in at_deadline} <= set(want.refused)
    targets = {g["target"] for g in want.groups.values()}
    assert {2, 3, 4, 5, 6} <= targets
    assert len({(e["ts"], partition_for(e["group_id"], PARTITIONS)) for e in log}) < len(log)
    # Members of two groups closing at the same ms: each push keeps its own id.
    closing = Counter((u, at) for _, _, u, at, *_ in want.pushes)
    assert max(closing.values()) > 1
    assert len({x[0] for x in want.pushes}) == len(want.pushes)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_batches_equal_the_reference(log: list[dict[str, Any]], seed: int) -> None:
    want = reference(log, PARTITIONS)
    got = engine(log, parse_config({"group_buys": SECTION}), seed)
    assert got.groups == want.groups
    assert sorted(got.pushes) == sorted(want.pushes)
    assert got.completed == want.completed
    assert got.refused == want.refused


def test_one_group_step_by_step() -> None:
    """A group of 3 opened at t: a second member, a repeat, the third completes it; a join
    after; a second group expires at its deadline before a join at that very ms."""
    cfg = GroupBuyConfig()
    t = T0

    def join(n: int, gid: str, user: str, ts: int, **kw: Any) -> GroupBuyJoin:
        return GroupBuyJoin(event_id=f"e{n}", ts=ts, group_id=gid, sku="s", user_id=user, **kw)

    evs = [join(0, "a", "u1", t), join(1, "a", "u2", t + 1), join(2, "a", "u2", t + 2),
           join(3, "a", "u3", t + 3), join(4, "a", "u4", t + 4),
           join(5, "b", "u1", t, window_min=1), join(6, "b", "u2", t + 60_000)]
    out = decide({"a": None, "b": None}, [], evs, t + 60_000, cfg)
    assert out.groups["a"]["members"] == ["u1", "u2", "u3"]
    assert (out.groups["a"]["status"], out.groups["a"]["closed"]) == ("completed", t + 3)
    assert out.groups["b"]["status"] == "expired" and out.groups["b"]["members"] == ["u1"]
    assert [(e.event_id, r.value) for e, r, _ in out.refused] == [
        ("e2", "already_joined"), ("e4", "group_completed"), ("e6", "group_expired")]
    assert [(x["rule"], x["user_id"], x["ts"]) for x in out.pushes] == [
        ("group_completed", "u1", t + 3), ("group_completed", "u2", t + 3),
        ("group_completed", "u3", t + 3), ("group_expired", "u1", t + 60_000)]
    assert out.timers == {"a": None, "b": None}
    assert dict(out.outcomes) == {("opened", "s"): 2, ("completed", "s"): 1,
                                  ("expired", "s"): 1}


def test_a_deadline_past_the_watermark_waits() -> None:
    ev = GroupBuyJoin(event_id="e", ts=T0, group_id="g", sku="s", user_id="u")
    out = decide({"g": None}, [], [ev], T0 + 60 * 60_000 - 1, GroupBuyConfig(window_min=60))
    assert out.groups["g"]["status"] == "open" and out.timers == {"g": T0 + 60 * 60_000}
    assert out.pushes == []


def test_the_section() -> None:
    assert parse_config({}) == GroupBuyConfig(3, 1440, 0, {})
    got = parse_config({"group_buys": SECTION})
    assert (got.target, got.window_min, got.coupon_fen) == (3, 60, 150)
    assert got.skus["g1"] == SkuTable(target=5) and got.skus["g2"] == SkuTable(window_min=1)
    for section, named in [({"target": 1}, "group_buys.target"),
                           ({"window_min": 0}, "group_buys.window_min"),
                           ({"coupon_fen": -1}, "group_buys.coupon_fen"),
                           ({"skus": {"a": {"target": "3"}}}, "group_buys.skus.a.target"),
                           ({"skus": {"a": {"window_min": 43_201}}},
                            "group_buys.skus.a.window_min"),
                           ({"skus": {"a": 3}}, "group_buys.skus.a"),
                           ({"skus": {"a": {"size": 3}}}, "group_buys.skus.a"),
                           ({"skus": []}, "group_buys.skus"),
                           ({"targets": 3}, "group_buys")]:
        with pytest.raises(ConfigError) as caught:
            parse_config({"group_buys": section})
        assert str(caught.value).startswith(f"{named}:"), (section, caught.value)
