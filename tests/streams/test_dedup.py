from hypothesis import given, settings
from hypothesis import strategies as st

from shopstream.streams.dedup import GENERATIONS, Deduplicator


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
