"""One-pass decoding: JSON bytes straight to typed events, every bound checked on the way.

msgspec builds the Structs of ``schemas.events`` while it parses, so a valid record costs one
call. Only what msgspec cannot express is checked after it: lengths are bounds in UTF-8 bytes
and msgspec counts characters, so the strings of a record that is not plain ASCII (or holds
``\\u`` escapes) are measured again. Anything refused here is judged again by the hand checks
of ``schemas.validate``, which name the field, the expectation and what was found.
"""

from __future__ import annotations

from typing import Final

import msgspec

from shopstream.schemas.events import (
    MAX_ID_BYTES,
    MAX_TEXT_BYTES,
    BaseEvent,
    Event,
    OrderSubmit,
)

#: Decoding failed (bad JSON, a value out of its bounds, nesting too deep for the decoder's
#: recursion): take the explaining path.
DecodeFailed: Final = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)

#: A record: one event object, or an envelope (array) of them.
RECORD_DECODER: Final = msgspec.json.Decoder(list[Event] | Event)
#: One event object.
EVENT_DECODER: Final = msgspec.json.Decoder(Event)


def needs_byte_check(raw: bytes) -> bool:
    """Whether a string decoded from ``raw`` may hold more UTF-8 bytes than characters."""
    return not raw.isascii() or b"\\u" in raw


def _fits(value: str, limit: int) -> bool:
    return value.isascii() or len(value.encode("utf-8", "surrogatepass")) <= limit


def within_bytes(ev: BaseEvent) -> bool:
    """Every string of ``ev`` within its bound in UTF-8 bytes (the page text, ids else)."""
    for name in ev.__struct_fields__:
        value = getattr(ev, name)
        if type(value) is str and not _fits(value, MAX_TEXT_BYTES if name == "page"
                                             else MAX_ID_BYTES):
            return False
    if isinstance(ev, OrderSubmit):
        return all(_fits(item.sku, MAX_ID_BYTES) for item in ev.items)
    return True


def decode_events(raw: bytes) -> list[Event] | Event:
    """The record's events, all valid; raises one of ``DecodeFailed`` if any is not."""
    doc = RECORD_DECODER.decode(raw)
    if needs_byte_check(raw) and not all(
            map(within_bytes, doc if isinstance(doc, list) else [doc])):
        raise msgspec.ValidationError("a string is longer than its bound in UTF-8 bytes")
    return doc


def decode_event(raw: bytes) -> Event:
    """One valid event; raises one of ``DecodeFailed`` if it is not."""
    ev = EVENT_DECODER.decode(raw)
    if needs_byte_check(raw) and not within_bytes(ev):
        raise msgspec.ValidationError("a string is longer than its bound in UTF-8 bytes")
    return ev


def convert_event(doc: object) -> Event:
    """A decoded JSON object (dict) as a valid event; raises one of ``DecodeFailed``."""
    ev: Event = msgspec.convert(doc, Event)
    if not within_bytes(ev):
        raise msgspec.ValidationError("a string is longer than its bound in UTF-8 bytes")
    return ev
