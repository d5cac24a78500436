from hypothesis import given
from hypothesis import strategies as st

from shopstream.streams.records import Record, split_by_bytes

sizes_st = st.lists(st.one_of(st.none(), st.integers(0, 50)), max_size=60)


@given(sizes_st, st.integers(1, 120))
def test_runs_keep_order_and_stay_under_the_limit(sizes, max_bytes):
    records = [Record(i % 3, i, None if n is None else b"x" * n) for i, n in enumerate(sizes)]
    runs = split_by_bytes(records, max_bytes)
    assert [r for run in runs for r in run] == records
    for run in runs:
        total = sum(len(r.value or b"") for r in run)
        assert run and (total <= max_bytes or len(run) == 1)
    # Greedy: a run closes only when the next record would not fit.
    for run, nxt in zip(runs, runs[1:], strict=False):
        assert sum(len(r.value or b"") for r in run) + len(nxt[0].value or b"") > max_bytes
