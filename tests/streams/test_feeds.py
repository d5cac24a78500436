"""The batch loop's one pass (streams/feeds.py) against a plain-Python restatement of the
documented rules: per partition, in log order, a room-wide event's copy (user on another
partition) is judged late against the watermark at its place and moves nothing; any other
event moves the watermark (the largest time seen: a late one cannot), a repeated event id is
then dropped, and a new event is late when older than the watermark before it minus the
allowed lateness. Each capability gets the types it
takes (on time only if it asks), the copies it takes at their place, and counts its late
events of its types. Cut into batches anywhere, the outcome is the same."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream.agents.base import EVERY_EVENT, PartitionBatch, Takes
from shopstream.kafka_io.partitioner import partition_for
from shopstream.schemas.decode import convert_event
from shopstream.schemas.events import ROOM_WIDE_TYPES, Event
from shopstream.streams.dedup import Deduplicator
from shopstream.streams.feeds import Dispatch

PARTITIONS = 2
LATENESS = 5_000
START = 1_800_000_000_000


class Taker:
    """Just what the dispatch reads of an agent."""

    def __init__(self, name: str, takes: Takes) -> None:
        self.name = name
        self.takes = takes


def late_key(app: str, p: int) -> str:
    return f"{app}:{p}:late"


TAKERS = [
    Taker("pulse", Takes(frozenset({"page_view", "payment"}), on_time=True, late_key=late_key)),
    Taker("twin", Takes(frozenset({"page_view", "payment"}), on_time=True, late_key=late_key)),
    Taker("rooms", Takes(frozenset({"live_start", "live_end", "live_join", "order_submit"}),
                         on_time=True, copies=ROOM_WIDE_TYPES, late_key=late_key)),
    Taker("timeline", Takes(copies=frozenset({"live_end"}))),
    Taker("sales", Takes(frozenset({"order_submit", "payment"}))),
    Taker("stats", EVERY_EVENT),
    Taker("all_on_time", Takes(on_time=True)),
    Taker("nothing", Takes(frozenset())),
]

_event = st.tuples(
    st.sampled_from(["page_view", "payment", "order_submit", "live_start", "live_end",
                     "live_join"]),
    st.integers(0, 40),       # seconds after START
    st.integers(0, 5),        # user
    st.integers(0, 30),       # event id: repeats are duplicates
)


#: What each type needs besides the common fields, so that every event is valid.
FIELDS: dict[str, dict[str, Any]] = {
    "page_view": {"page": "home"},
    "payment": {"order_id": "o1", "amount": 100, "status": "success"},
    "order_submit": {"order_id": "o1", "amount": 100,
                     "items": [{"sku": "s1", "qty": 1, "price": 100}]},
    **{t: {"room_id": "r1"} for t in ("live_start", "live_end", "live_join")},
}


def make_log(raw: list[tuple[str, int, int, int]]) -> list[dict[str, Any]]:
    return [{"type": t, "ts": START + s * 1000, "user_id": f"u{u}", "event_id": f"e{i}",
             **FIELDS[t]} for t, s, u, i in raw]


def reference(log: list[dict[str, Any]], partition: int) -> tuple[
        dict[str, list[tuple[str, bool]]], dict[str, int], list[str], int]:
    """Per taker its (event id, is copy) in order and its late count; the new events; the
    watermark after."""
    wm = START
    seen: set[str] = set()
    got: dict[str, list[tuple[str, bool]]] = {t.name: [] for t in TAKERS}
    late: dict[str, int] = {t.name: 0 for t in TAKERS}
    fresh: list[str] = []
    for ev in log:
        ts, etype = ev["ts"], ev["type"]
        is_late = ts < wm - LATENESS
        if etype in ROOM_WIDE_TYPES and partition_for(ev["user_id"], PARTITIONS) != partition:
            for t in TAKERS:
                if etype in t.takes.copies and not (is_late and t.takes.on_time):
                    got[t.name].append((ev["event_id"], True))
            continue
        wm = max(wm, ts)
        if ev["event_id"] in seen:
            continue
        seen.add(ev["event_id"])
        fresh.append(ev["event_id"])
        for t in TAKERS:
            if t.takes.types is not None and etype not in t.takes.types:
                continue
            if is_late and t.takes.on_time:
                late[t.name] += 1
            else:
                got[t.name].append((ev["event_id"], False))
    return got, late, fresh, wm


def run(log: list[Event], partition: int, cuts: list[int]) -> tuple[
        dict[str, list[tuple[str, bool]]], dict[str, int], list[str], int, list[PartitionBatch]]:
    dispatch = Dispatch(TAKERS, PARTITIONS, LATENESS)  # type: ignore[arg-type]
    dedup = Deduplicator(10**9, 10**6, START)
    got: dict[str, list[tuple[str, bool]]] = {t.name: [] for t in TAKERS}
    late = {t.name: 0 for t in TAKERS}
    fresh: list[str] = []
    batches = []
    pos, wm = 0, START
    for cut in [*cuts, len(log)]:
        chunk = log[pos:pos + cut]
        pos += cut
        split = dispatch.split(partition, chunk, dedup)
        batch = PartitionBatch(partition, split.events, feeds=split.feeds)
        dispatch.count_late(batch, "app")
        batches.append(batch)
        fresh += [ev.event_id for ev in split.events]
        wm = dedup.watermark
        for name, feed in split.feeds.items():
            copies = {id(ev) for _, ev in feed.copies}
            got[name] += [(ev.event_id, id(ev) in copies) for ev in feed.in_order()]
            late[name] += feed.late
        if pos >= len(log):
            break
    return got, late, fresh, wm, batches


@settings(max_examples=300, deadline=None)
@given(st.lists(_event, max_size=40), st.lists(st.integers(1, 8)), st.integers(0, 1))
def test_one_pass_matches_the_rules_wherever_batches_are_cut(
        raw: list[tuple[str, int, int, int]], cuts: list[int], partition: int) -> None:
    log = make_log(raw)
    want, want_late, want_fresh, want_wm = reference(log, partition)
    got, late, fresh, wm, batches = run([convert_event(d) for d in log], partition, cuts)
    assert got == want
    assert late == want_late
    assert fresh == want_fresh
    assert wm == want_wm
    # The late counter is written once per counter key and batch: here "pulse", "twin" and
    # "rooms" share one key, so it holds the sum of their late events.
    written = sum(b.ops.args[i + 2] for b in batches for i, a in enumerate(b.ops.args)
                  if a == "INCRBY")
    assert written == want_late["pulse"] + want_late["rooms"]


def test_takers_with_the_same_takes_share_one_feed() -> None:
    log = make_log([("page_view", 1, 0, 1), ("payment", 2, 1, 2), ("live_join", 3, 2, 3)])
    dispatch = Dispatch(TAKERS, PARTITIONS, LATENESS)  # type: ignore[arg-type]
    split = dispatch.split(0, [convert_event(d) for d in log], Deduplicator(10**9, 10**6, START))
    assert split.feeds["pulse"] is split.feeds["twin"]
    assert [ev.type for ev in split.feeds["pulse"].events] == ["page_view", "payment"]
    # Every event, late ones too and no copy: the batch's own list, no second one.
    assert split.feeds["stats"].events is split.events
    assert split.feeds["nothing"].events == []
    assert dispatch.counted_names == ["pulse", "twin", "rooms", "all_on_time"]
