import random
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream.streams.dedup import GENERATIONS, MAX_HORIZON_MS, Deduplicator


def reference(events, horizon):
    """From the definition: watermark = max ts so far (incl. current); an id seen again within
    ``horizon`` of the watermark at its previous sighting (duplicate or not) is a duplicate."""
    wm = 0
    last_seen = {}
    out = []
    for eid, ts in events:
        wm = max(wm, ts)
        prev = last_seen.get(eid)
        out.append(prev is not None and wm - prev <= horizon)
        last_seen[eid] = wm
    return out


events_st = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.integers(0, 5_000)), max_size=80
)


@settings(max_examples=300, deadline=None)
@given(events_st, st.integers(0, 2_000), st.integers(1, 10))
def test_matches_reference_whatever_the_eviction_points(events, horizon, every):
    d = Deduplicator(horizon, 1_000_000)
    got = []
    for i, (eid, ts) in enumerate(events):
        got.append(d.is_duplicate(eid, ts))
        if i % every == 0:
            d.evict()
    assert got == reference(events, horizon)


def test_memory_is_bounded_by_eviction_and_cap():
    d = Deduplicator(1_000, 1_000_000)
    for i in range(10_000):
        d.is_duplicate(f"e{i}", i * 10)
    d.evict()
    # ids within the horizon (101) plus at most one generation's worth beyond it
    assert 101 <= len(d) <= 101 + 100 // GENERATIONS + 1
    capped = Deduplicator(10**9, 500)
    for i in range(5_000):
        capped.is_duplicate(f"e{i}", i)
    assert len(capped) == 500


@settings(max_examples=200, deadline=None)
@given(events_st, st.integers(1, 6))
def test_cap_keeps_the_newest_sightings(events, cap):
    """Over the cap, the oldest sightings go first: what is left is the newest ``cap`` ids."""
    d = Deduplicator(10**9, cap)
    last: dict[str, int] = {}
    for i, (eid, ts) in enumerate(events):
        d.is_duplicate(eid, ts)
        last.pop(eid, None)
        last[eid] = i
    assert len(d) == min(cap, len(last))
    newest = sorted(last, key=last.__getitem__)[-cap:]
    assert all(d.is_duplicate(eid, 0) for eid in newest)


def test_many_ids_match_the_reference_across_growth_eviction_and_ties():
    """Thousands of ids: the table splits its buckets, evicts prefixes of many of them and
    stores many sightings at one watermark; decisions still follow the definition."""
    rng = random.Random(7)
    events, ts = [], 1_700_000_000_000
    for _ in range(60_000):
        ts += rng.choice((0, 0, 0, 1, 3, -40))  # ties, steps and late events
        events.append((f"e{rng.randrange(20_000)}", ts))
    d = Deduplicator(2_000, 1_000_000)
    got = []
    for i, (eid, t) in enumerate(events):
        got.append(d.is_duplicate(eid, t))
        if i % 997 == 0:
            d.evict()
    expected = reference(events, 2_000)
    assert got == expected and 0 < sum(expected) < len(expected)


def test_cap_keeps_the_newest_sightings_over_many_buckets():
    cap = 3_000
    d = Deduplicator(10**9, cap)
    rng = random.Random(11)
    last: dict[str, int] = {}
    for i in range(30_000):
        eid = f"e{rng.randrange(12_000)}"
        d.is_duplicate(eid, 1_000 + i // 7)
        last.pop(eid, None)
        last[eid] = i
        assert len(d) == min(cap, len(last))
    newest = list(last)[-cap:]
    older = list(last)[:-cap]
    assert all(d.is_duplicate(eid, 10**6) for eid in newest)
    assert not any(d.is_duplicate(eid, 10**6) for eid in older[-cap:])


def test_an_id_costs_at_most_16_bytes_at_the_default_horizon():
    """The RSS formula's bytes per id (docs/performance.md): 200,000 ids of one partition,
    two per millisecond, within the default 10-minute horizon."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        d = Deduplicator(600_000, 5_000_000)
        for i in range(200_000):
            d.is_duplicate(f"L{i % 1000:06d}e{i}", 1_700_000_000_000 + i // 2)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(d) == 200_000
    assert used / len(d) <= 16


def test_horizon_beyond_the_stored_watermark_range_is_refused():
    with pytest.raises(ValueError, match="dedup horizon"):
        Deduplicator(MAX_HORIZON_MS, 10)
