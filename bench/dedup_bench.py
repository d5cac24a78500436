"""One partition's deduplicator alone: bytes per id held, and microseconds per sighting.

`python bench/dedup_bench.py --ids 1000000`: fills a deduplicator with that many distinct
ids shaped like the bench's live ones, two per millisecond of event time, within the default
10-minute horizon (nothing expires), then times new ids against the full store and ids seen
again (duplicates). Bytes per id are traced with
tracemalloc in separate fills, so the timing runs without it: once for these ids, and once for
1.8 million, past the horizon, where it slides and expired ids are dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shopstream.streams.dedup import Deduplicator  # noqa: E402

HORIZON_MS = 600_000
T0 = 1_700_000_000_000


def ids(start: int, n: int) -> list[str]:
    """Event ids as the bench's live envelopes carry them."""
    return [f"L{i % 1000:06d}e{i}" for i in range(start, start + n)]


def filled(n: int) -> Deduplicator:
    dedup = Deduplicator(HORIZON_MS, n * 2)
    for i, eid in enumerate(ids(0, n)):
        dedup.is_duplicate(eid, T0 + i // 2)
    return dedup


def bytes_per_id(n: int) -> float:
    """Memory traced while ``n`` ids pass through one deduplicator, per id it holds at the
    end (beyond 1.2 million ids the horizon is full and slides)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        dedup = filled(n)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return used / len(dedup)


def per_op_us(dedup: Deduplicator, events: list[tuple[str, int]], expect: bool) -> float:
    started = time.perf_counter()
    for eid, ts in events:
        if dedup.is_duplicate(eid, ts) is not expect:
            raise AssertionError(f"{eid}: expected duplicate={expect}")
    return (time.perf_counter() - started) / len(events) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=1_000_000)
    ap.add_argument("--probe", type=int, default=200_000, help="sightings timed per kind")
    args = ap.parse_args()
    n, k = args.ids, args.probe
    started = time.perf_counter()
    dedup = filled(n)
    fill_us = (time.perf_counter() - started) / n * 1e6
    now = T0 + (n - 1) // 2
    fresh = [(eid, now) for eid in ids(n, k)]
    repeats = [(eid, now) for eid in ids(0, k)]
    out = {
        "ids": n,
        "fill_us_per_id": round(fill_us, 3),
        "new_id_us": round(per_op_us(dedup, fresh, False), 3),
        "duplicate_us": round(per_op_us(dedup, repeats, True), 3),
    }
    # A sweep of expired ids, as the watermark moves on and the oldest ninth of the ids not
    # seen again above expires: begun by a sighting, carried on by evict() (once per batch in
    # the worker), a few hundred buckets per call. The longest call is the worker's pause.
    held = len(dedup)
    calls = []
    dedup.is_duplicate("late", T0 + k // 2 + n // 18 + HORIZON_MS)
    for _ in range(400):
        started = time.perf_counter()
        dedup.evict()
        calls.append((time.perf_counter() - started) * 1000)
    out["sweep_ms_total"] = round(sum(calls), 1)
    out["sweep_ms_longest_call"] = round(max(calls), 2)
    out["evicted"] = held + 1 - len(dedup)
    del dedup
    out["bytes_per_id"] = round(bytes_per_id(n), 1)
    out["bytes_per_id_horizon_full"] = round(bytes_per_id(max(n, 3 * HORIZON_MS)), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
