"""Why an event is not valid: the field, the expectation and what was found.

Valid events are decoded in one pass by ``schemas.decode`` (msgspec); the hand checks here
run only for what it refused, to name the first problem (dead letters and the API's answers
carry it) or every problem (``field_errors``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from shopstream.schemas.decode import DecodeFailed, convert_event
from shopstream.schemas.events import (
    CHANNELS,
    COMMON_OPTIONAL,
    COMMON_REQUIRED,
    EVENT_TYPES,
    MAX_ID_BYTES,
    MAX_ITEMS,
    MAX_MONEY,
    MAX_QTY,
    MAX_TEXT_BYTES,
    MAX_TS,
    MIN_TS,
    BaseEvent,
    Event,
    Kind,
)

_CHANNELS = frozenset(CHANNELS)


@dataclass(frozen=True, slots=True)
class FieldError:
    """Why one event was rejected."""

    #: Dotted path of the offending field, or "" for the whole event.
    field: str
    #: What was expected there.
    expected: str
    #: What was found, shortened.
    got: str

    def __str__(self) -> str:
        where = self.field or "event"
        return f"{where}: expected {self.expected}, got {self.got}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "expected": self.expected, "got": self.got}


def _show(value: Any) -> str:
    text = "missing" if value is _MISSING else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_MISSING: Final = object()


def is_id(v: Any) -> bool:
    """A non-empty string of at most MAX_ID_BYTES in UTF-8 (ASCII needs no encoding)."""
    return (type(v) is str and v != "" and len(v) <= MAX_ID_BYTES
            and (v.isascii() or len(v.encode("utf-8", "surrogatepass")) <= MAX_ID_BYTES))


def _is_text(v: Any) -> bool:
    return (type(v) is str and v != "" and len(v) <= MAX_TEXT_BYTES
            and (v.isascii() or len(v.encode("utf-8", "surrogatepass")) <= MAX_TEXT_BYTES))


def _is_items(v: Any) -> bool:
    if type(v) is not list or not v or len(v) > MAX_ITEMS:
        return False
    for item in v:
        if type(item) is not dict:
            return False
        qty, price = item.get("qty"), item.get("price")
        if not is_id(item.get("sku")):
            return False
        if type(qty) is not int or not 1 <= qty <= MAX_QTY:
            return False
        if type(price) is not int or not 0 <= price <= MAX_MONEY:
            return False
    return True


_PREDICATES: Final[dict[Kind, Callable[[Any], bool]]] = {
    Kind.STR: is_id,
    Kind.TEXT: _is_text,
    Kind.TS: lambda v: type(v) is int and MIN_TS <= v <= MAX_TS,
    Kind.MONEY: lambda v: type(v) is int and 0 <= v <= MAX_MONEY,
    Kind.QTY: lambda v: type(v) is int and 1 <= v <= MAX_QTY,
    Kind.COUNT: lambda v: type(v) is int and 0 <= v <= MAX_QTY,
    Kind.CHANNEL: lambda v: v in _CHANNELS if type(v) is str else False,
    Kind.PAY_STATUS: lambda v: v == "success" or v == "failed",
    Kind.ITEMS: _is_items,
    Kind.RATING: lambda v: type(v) is int and 1 <= v <= 5,
    Kind.POINTS: lambda v: type(v) is int and 1 <= v <= MAX_MONEY,
    Kind.GROUP_SIZE: lambda v: type(v) is int and 2 <= v <= 1000,
    Kind.MINUTES: lambda v: type(v) is int and 1 <= v <= 43_200,
}

Check = tuple[str, Callable[[Any], bool], Kind]


def _compile(required: dict[str, Kind], optional: dict[str, Kind]) -> tuple[Check, ...]:
    req = tuple((name, _PREDICATES[kind], kind) for name, kind in required.items())
    opt = tuple((name, _PREDICATES[kind], kind) for name, kind in optional.items())
    return req + tuple(("?" + n, p, k) for n, p, k in opt)


_COMMON: Final = _compile(
    {k: v for k, v in COMMON_REQUIRED.items() if k != "type"}, COMMON_OPTIONAL
)
#: Per type, the common checks it keeps (a type may make a common field optional or required)
#: and its own.
_BY_TYPE: Final[dict[str, tuple[Check, ...]]] = {
    name: tuple(c for c in _COMMON if c[0].lstrip("?") not in {*req, *opt}) + _compile(req, opt)
    for name, (req, opt) in EVENT_TYPES.items()
}
_TYPES_TEXT: Final = "one of " + "|".join(sorted(EVENT_TYPES))


def _problems(checks: tuple[Check, ...], event: dict[str, Any]) -> Iterator[FieldError]:
    for name, pred, kind in checks:
        if name[0] == "?":
            value = event.get(name[1:], _MISSING)
            if value is _MISSING or value is None:
                continue
            if not pred(value):
                yield FieldError(name[1:], kind.value, _show(value))
        else:
            value = event.get(name, _MISSING)
            if value is _MISSING or not pred(value):
                yield FieldError(name, kind.value, _show(value))


def problems(event: Any) -> list[FieldError]:
    """What the hand checks find wrong with a decoded JSON value, in field order (empty: a
    valid event); they agree with the model on what is valid."""
    if type(event) is not dict:
        return [FieldError("", "a JSON object", type(event).__name__)]
    etype = event.get("type", _MISSING)
    checks = _BY_TYPE.get(etype) if type(etype) is str else None
    if checks is None:
        return [FieldError("type", _TYPES_TEXT, _show(etype))]
    return list(_problems(checks, event))


def judge(event: Any) -> Event | FieldError:
    """``event`` (a decoded JSON value, or a typed event built in code) as a typed event, or
    its first problem."""
    if isinstance(event, BaseEvent):
        event = msgspec.to_builtins(event)
    try:
        return convert_event(event)
    except DecodeFailed as exc:
        found = problems(event)
        return found[0] if found else FieldError("event", "a valid event", _show(str(exc)))


def validate_event(event: Any) -> FieldError | None:
    """None when ``event`` is a valid event; otherwise the first problem found."""
    judged = judge(event)
    return judged if isinstance(judged, FieldError) else None


@dataclass(frozen=True, slots=True)
class FutureBound:
    """The latest event time accepted: ``max_future_ms`` ahead of a clock.

    An event from the future would move its partition's watermark there, and every real event
    after it would be late; so ``ts`` may be at most this far ahead of the clock.
    """

    #: Largest ``ts`` accepted.
    latest: int
    max_future_ms: int
    #: Whose clock it is, for the error ("the API's clock"), and what it read.
    clock: str
    clock_ms: int

    def error(self, ts: int) -> FieldError:
        """What an event stamped ``ts`` beyond ``latest`` is told."""
        return FieldError("ts", f"epoch ms <= {self.latest} (at most max_future_ms="
                                f"{self.max_future_ms} ahead of {self.clock} {self.clock_ms})",
                          _show(ts))


def future_bound(max_future_ms: int, clock_ms: int, clock: str) -> FutureBound | None:
    """The bound ``max_future_ms`` ahead of ``clock_ms``; None when the bound is off (0)."""
    if max_future_ms == 0:
        return None
    return FutureBound(clock_ms + max_future_ms, max_future_ms, clock, clock_ms)


def field_errors(event: Any, first: FieldError | None = None) -> list[FieldError]:
    """Every problem of ``event``, in field order (empty when valid); the first is what
    ``validate_event`` reports and dead letters carry (pass it when already known)."""
    first = first or validate_event(event)
    return [] if first is None else problems(event) or [first]
