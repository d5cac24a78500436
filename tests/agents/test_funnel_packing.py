"""A user's funnel progress packed for Redis reads back the same, as does the text written
before packing; one entry fits the 44 bytes Redis embeds with the string's object."""

from __future__ import annotations

from shopstream.agents.funnel.rules import Progress, encode_units, pack_units, unpack_units

UNITS = [
    {"purchase@f1dab42d": Progress(1796557037279, 3, 1796557037282, ("social",))},
    {"f@1": Progress(5, 2, 7, ("live", "(none)", "a,b")),
     "g@2|s=1|x": Progress(1, 1, 1, ("",)),
     "h@3": Progress(1796557037279, 1, 1796557037279 + 86_400_000, ("search", "c", "r", "d"))},
]


def test_packed_progress_reads_back_the_same() -> None:
    for units in UNITS:
        raw = pack_units(units).encode()
        assert unpack_units(raw) == units
        assert len(raw) < len(encode_units(units).encode())


def test_text_written_before_packing_still_reads() -> None:
    for units in UNITS:
        assert unpack_units(encode_units(units).encode()) == units
    assert unpack_units(None) == {} and unpack_units(b"") == {}


def test_one_entry_is_embedded_by_redis() -> None:
    assert len(pack_units(UNITS[0]).encode()) <= 44
