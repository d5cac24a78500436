"""Funnel definitions, the state machine, and one batch through the agent: no I/O."""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream.agents.base import PartitionBatch
from shopstream.agents.funnel.agent import Funnels, Stored
from shopstream.agents.funnel.rules import (
    Progress,
    advance,
    decode_units,
    encode_units,
    parse_funnel,
    parse_funnels,
)
from shopstream.core.errors import ConfigError
from shopstream.schemas.decode import convert_event
from shopstream.schemas.events import PageView
from shopstream.streams.dedup import Deduplicator
from shopstream.streams.feeds import Dispatch
from tests.agents.funnel_ref import accepted, reach_unit, reference

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(("raw", "message"), [
    ({"name": "x", "steps": []}, "funnels.x.steps: expected a non-empty list"),
    ({"name": "x", "steps": ["page_veiw"]}, "funnels.x.steps[0].type: expected one of"),
    ({"name": "x", "steps": ["cart_add"], "window_ms": 0}, "x.window: expected a window > 0"),
    ({"name": "x", "steps": ["cart_add"], "window": "-5m"}, "funnels.x.window: expected millis"),
    ({"name": "x", "steps": ["cart_add"], "count_by": "device"}, "funnels.x.count_by"),
    ({"name": "x", "steps": ["cart_add"], "breakdowns": ["city"]}, "funnels.x.breakdowns"),
    ({"name": "x", "steps": [{"type": "payment", "where": {"colour": "red"}}]},
     "funnels.x.steps[0].where.colour: expected a field of payment"),
    ({"name": "Bad Name", "steps": ["cart_add"]}, "funnels[0].name"),
    ({"name": "x", "steps": ["cart_add"], "widnow": "1h"}, "unknown ['widnow']"),
])
def test_bad_definitions_are_refused_with_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_funnel("funnels[0]", raw)


def test_default_and_duplicate_names() -> None:
    funnels, lateness = parse_funnels({})
    assert [f.name for f in funnels] == ["purchase"]
    assert [s.label for s in funnels[0].steps][-1] == "payment(status=success)"
    assert funnels[0].window_ms == 86_400_000 and lateness == 300_000
    with pytest.raises(ConfigError, match="repeated"):
        parse_funnels({"funnels": [{"name": "a", "steps": ["cart_add"]}] * 2})
    with pytest.raises(ConfigError, match="allowed_lateness_ms"):
        parse_funnels({"funnel_options": {"allowed_lateness_ms": -1}})


def test_worker_agents_refuse_bad_config() -> None:
    with pytest.raises(ConfigError, match="window"):
        Funnels("a", 4, {"funnels": [{"name": "x", "steps": ["cart_add"], "window_ms": -1}]}, ZONE)


def test_progress_round_trips() -> None:
    p = Progress(5, 2, 7, ("live", "(none)", "a,b"))
    assert Progress.decode(p.encode().encode()) == p
    units = {"f@1": p, "g@2|s=1|x": Progress(1, 1, 1, ("",))}
    assert decode_units(encode_units(units).encode()) == units
    fd = parse_funnel("f", {"name": "f", "steps": ["page_view", "cart_add"],
                            "breakdowns": ["channel", "campaign"]})
    entry, _ = advance(fd, None, PageView(event_id="e1", ts=1, user_id="u1", page="home",
                                          campaign="a\x1fb,\x1ec"))
    assert entry is not None and entry.values == ("(none)", "ab,c")
    assert decode_units(encode_units({"f": entry}).encode()) == {"f": entry}


# Short per-user sequences over a small alphabet, so every branch is hit often.
_types = st.sampled_from(["page_view", "product_view", "cart_add", "payment"])
_event = st.tuples(_types, st.integers(0, 40), st.sampled_from(["ads", "live"]),
                   st.sampled_from(["success", "failed"]), st.sampled_from(["s1", "s2", None]))
_funnel = st.fixed_dictionaries({
    "name": st.just("f"),
    "steps": st.lists(st.sampled_from(["page_view", "product_view", "cart_add",
                                       {"type": "payment", "where": {"status": "success"}}]),
                      min_size=1, max_size=4),
    "window_ms": st.integers(1, 30),
    "count_by": st.sampled_from(["user", "session"]),
    "breakdowns": st.sampled_from([["channel"], ["channel", "campaign"]]),
})


#: What each type needs besides the common fields, so that every event is valid.
_FIELDS: dict[str, dict[str, Any]] = {
    "page_view": {"page": "home"}, "product_view": {"sku": "s1", "price": 100},
    "cart_add": {"sku": "s1", "qty": 1, "price": 100}, "payment": {"order_id": "o1", "amount": 1},
}


def _events(raw: list[tuple[str, int, str, str, str | None]]) -> list[dict[str, Any]]:
    out = []
    for i, (typ, ts, channel, status, session) in enumerate(raw):
        ev: dict[str, Any] = {"event_id": f"e{i}", "type": typ, "ts": 1_800_000_000_000 + ts * 1000,
                              "user_id": "u1", "channel": channel, **_FIELDS[typ]}
        if typ == "payment":
            ev["status"] = status
        if session is not None:
            ev["session_id"] = session
        out.append(ev)
    return out


@settings(max_examples=300, deadline=None)
@given(_funnel, st.lists(_event, max_size=25))
def test_state_machine_matches_reference(f: dict[str, Any], raw: list[Any]) -> None:
    fd = parse_funnel("funnels[0]", {**f, "window_ms": f["window_ms"] * 1000})
    events = [e for e in _events(raw) if f["count_by"] == "user" or "session_id" in e]
    by_unit: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_unit[e.get("session_id", "") if f["count_by"] == "session" else ""].append(e)
    for evs in by_unit.values():
        state: Progress | None = None
        got = []
        for ev in evs:
            before = state
            state, step = advance(fd, state, convert_event(ev))
            if step:
                entry = ev["ts"] if step == 1 else before.entry_ts  # type: ignore[union-attr]
                got.append((step, entry, ev["ts"]))
        want = reach_unit(f["steps"], f["window_ms"] * 1000, f["breakdowns"], evs)
        assert got == [(s, e, t) for s, e, t, _ in want]


Counts = dict[tuple[str, str], dict[int, dict[str, int]]]


def run_batches(
    agent: Funnels, events: list[dict[str, Any]], cuts: list[int]
) -> tuple[Counts, int]:
    """Bucket counts and late events from the ops of the batch loop's dispatch and apply()
    over batches of the given sizes.

    The stored progress is carried from one batch's SET/DEL to the next batch's load, as
    Redis would between batches.
    """
    got: Counts = defaultdict(dict)
    late = 0
    blobs: dict[str, bytes] = {}
    arity = {"HINCRBY": 3, "SET": 2, "DEL": 1, "PEXPIRE": 2, "ZADD": 3, "INCRBY": 2}
    dispatch = Dispatch([agent], 1, agent.lateness_ms)
    dedup = Deduplicator(10**9, 10**6)
    pos = 0
    for cut in [*cuts, len(events)]:
        chunk = [convert_event(e) for e in events[pos:pos + cut]]
        pos += cut
        wm = dedup.watermark
        split = dispatch.split(0, chunk, dedup)
        batch = PartitionBatch(0, split.events, watermark_before=wm, watermark=dedup.watermark,
                               feeds=split.feeds)
        agent.apply(batch, Stored({k.rsplit(":", 1)[1]: v for k, v in blobs.items()}))
        dispatch.count_late(batch, "a")
        args, i = batch.ops.args, 0
        while i < len(args):
            op = args[i]
            if op == "HINCRBY":
                _, view, res, start = args[i + 1].rsplit(":", 3)
                by_field = got[(view, res)].setdefault(int(start), {})
                by_field[args[i + 2]] = by_field.get(args[i + 2], 0) + args[i + 3]
            elif op == "INCRBY":
                late += args[i + 2]
            elif op == "SET":
                blobs[args[i + 1]] = args[i + 2].encode()
            elif op == "DEL":
                blobs.pop(args[i + 1], None)
            i += arity[op] + 1
        if pos >= len(events):
            break
    return got, late


def step_types(funnels: list[dict[str, Any]]) -> set[str]:
    """Event types of the funnels' steps: the ones whose late events the funnel counts."""
    return {s if isinstance(s, str) else s["type"] for f in funnels for s in f["steps"]}


def test_late_events_count_among_the_step_types_only() -> None:
    """One lateness definition for every capability: its late events among the types it
    takes. A payment (no step here) still moves the watermark, so the page_view after it is
    late and counted; the late product_view is no step of any funnel and is not."""
    f = {"name": "f", "steps": ["page_view", "cart_add"], "window_ms": 60_000}
    agent = Funnels("a", 1, {"funnels": [f], "funnel_options": {"allowed_lateness_ms": 5_000}},
                    ZONE)
    events = _events([("payment", 20, "ads", "success", None),
                      ("page_view", 1, "ads", "success", None),
                      ("product_view", 2, "ads", "success", None),
                      ("cart_add", 30, "ads", "success", None)])
    got, late = run_batches(agent, events, [1, 2])
    assert late == 1
    assert not any(k.endswith("|1") or k.endswith("|2")
                   for buckets in got.values() for b in buckets.values() for k in b)


def test_closed_entries_are_dropped_only_when_no_event_can_reach_them() -> None:
    """Entry at 0 s, window 10 s, lateness 5 s; the watermark reaches 12 s in batch 1, so a
    cart_add at 8 s in batch 2 is on time and must still advance the stored entry."""
    f = {"name": "f", "steps": ["page_view", "cart_add"], "window_ms": 10_000}
    agent = Funnels("a", 1, {"funnels": [f], "funnel_options": {"allowed_lateness_ms": 5_000}},
                    ZONE)
    events = _events([("page_view", 0, "ads", "success", None),
                      ("product_view", 12, "ads", "success", None),
                      ("cart_add", 8, "ads", "success", None)])
    got, late = run_batches(agent, events, [2])
    assert late == 0
    assert sum(v for b in got[("cohort", "d")].values() for k, v in b.items()
               if k.endswith("|2")) == 1


@settings(max_examples=200, deadline=None)
@given(_funnel, st.lists(_event, max_size=40), st.integers(0, 20), st.lists(st.integers(1, 8)))
def test_batches_through_the_agent_match_reference(f: dict[str, Any], raw: list[Any],
                                                   lateness_s: int, cuts: list[int]) -> None:
    """Ops of apply() over batches cut anywhere equal the reference's counts."""
    f = {**f, "window_ms": f["window_ms"] * 1000}
    sections = {"funnels": [f], "funnel_options": {"allowed_lateness_ms": lateness_s * 1000}}
    events = _events(raw)
    got, late = run_batches(Funnels("a", 1, sections, ZONE), events, cuts)
    want, _ = reference(events, [f], 1, lateness_s * 1000)
    # Late events are counted among the funnels' step types (docs/funnels.md).
    on_time = {e["event_id"] for e in accepted(events, 1, lateness_s * 1000)[0]}
    assert late == sum(e["event_id"] not in on_time and e["type"] in step_types([f])
                       for e in events)
    names = {"minute": "m", "hour": "h", "day": "d"}
    flat: dict[tuple[str, str], dict[int, dict[str, int]]] = defaultdict(dict)
    for (_, view, res, by), buckets in want.items():
        for start, per_value in buckets.items():
            for value, counts in per_value.items():
                for step, c in enumerate(counts, 1):
                    if c:
                        flat[(view, names[res])].setdefault(start, {})[f"{by}|{value}|{step}"] = c
    assert dict(got) == dict(flat)
