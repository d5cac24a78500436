"""A user's coupon state packed for Redis reads back as the same dict, from the packed form
and from the JSON written before packing, and is smaller."""

from __future__ import annotations

from shopstream.core import codec
from shopstream.sinks.coupons.keys import USER_BUCKETS, bucket
from shopstream.sinks.coupons.users import is_old, pack, unpack

STATES = [
    {},
    {"first": 1796557022491, "day": "2026-12-06", "sent": 1,
     "last": {"new_user": 1796557022491}},
    {"first": 1796557031257, "items": {"sku332": [1, 7550], "s-2": [3, 0]},
     "changed": 1796557031315, "episode": None, "step": -1, "ordered": 1796557031400,
     "views": {"room-1": [1796557031257, 1796557031300]}, "watch": {"room-2": 65_000},
     "last_episode": 1796557031315, "unknown later field": [None, -5, "x"]},
]


def test_packed_state_reads_back_the_same_and_smaller() -> None:
    for st in STATES:
        raw = pack(st)
        assert unpack(raw) == st and not is_old(raw)
        assert pack(unpack(raw)) == raw, "an unchanged state must not be rewritten"
        if st:
            assert len(raw) < 0.8 * len(codec.dumps(st))


def test_json_written_before_packing_still_reads() -> None:
    for st in STATES:
        old = codec.dumps(st)
        assert is_old(old) and unpack(old) == st


def test_buckets_are_stable_and_spread() -> None:
    # CRC-32: the same in every process and version (a changed bucket would lose state).
    assert bucket("u0000001") == str(0xD672711C % USER_BUCKETS)
    counts: dict[str, int] = {}
    for i in range(USER_BUCKETS * 20):
        b = bucket(f"u{i:07d}")
        counts[b] = counts.get(b, 0) + 1
    assert len(counts) == USER_BUCKETS and max(counts.values()) < 60
