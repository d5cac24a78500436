"""bench/decode_bench.py times two paths that must decode the same events."""

from __future__ import annotations

import msgspec

from bench.decode_bench import _envelopes, measure, old_decode
from bench.workload import generate
from shopstream.kafka_io.envelope import decode_record


def test_the_old_and_the_new_path_decode_the_same_events():
    log = generate(3_000, users=500, rate=5_000, seed=1)
    records = _envelopes(log, 200)
    old: list = []
    new: list = []
    dead: list = []
    for i, raw in enumerate(records):
        old_decode(raw, old, 2**62)
        decode_record(raw, "t", 0, i, 1 << 20, new, dead)
    assert dead == [] and len(old) == len(log)
    assert [msgspec.to_builtins(e) for e in new] == old
    old_us, new_us = measure(records, 1, max(e["ts"] for e in log))
    assert old_us > 0 and new_us > 0
