"""Strict, allocation-light validation of decoded events.

Two layers: per type, a generated straight-line predicate answers "valid?" in one call on the
hot path (no allocation, ~1 us); only when it says no do the per-field checks run to name the
field, the expectation and what was found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

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
    Kind,
)

#: Largest timestamp accepted: year 2100, to catch seconds-vs-ms and garbage.
MAX_TS: Final = 4_102_444_800_000
#: Smallest: 2000-01-01; anything earlier is a unit or clock mistake.
MIN_TS: Final = 946_684_800_000
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
    Kind.CHANNEL: lambda v: v in _CHANNELS if type(v) is str else False,
    Kind.PAY_STATUS: lambda v: v == "success" or v == "failed",
    Kind.ITEMS: _is_items,
}

Check = tuple[str, Callable[[Any], bool], Kind]


def _compile(required: dict[str, Kind], optional: dict[str, Kind]) -> tuple[Check, ...]:
    req = tuple((name, _PREDICATES[kind], kind) for name, kind in required.items())
    opt = tuple((name, _PREDICATES[kind], kind) for name, kind in optional.items())
    return req + tuple(("?" + n, p, k) for n, p, k in opt)


_COMMON: Final = _compile(
    {k: v for k, v in COMMON_REQUIRED.items() if k != "type"}, COMMON_OPTIONAL
)
_BY_TYPE: Final[dict[str, tuple[Check, ...]]] = {
    name: _compile(req, opt) for name, (req, opt) in EVENT_TYPES.items()
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


#: Source of the fast predicate's test for each kind; ``{v}`` is the value.
_EXPR: Final[dict[Kind, str]] = {
    Kind.STR: '(type({v}) is str and {v} != "" and len({v}) <= MAX_ID_BYTES'
              ' and ({v}.isascii() or is_id({v})))',
    Kind.TEXT: "_is_text({v})",
    Kind.TS: "(type({v}) is int and MIN_TS <= {v} <= MAX_TS)",
    Kind.MONEY: "(type({v}) is int and 0 <= {v} <= MAX_MONEY)",
    Kind.QTY: "(type({v}) is int and 1 <= {v} <= MAX_QTY)",
    Kind.CHANNEL: "(type({v}) is str and {v} in _CHANNELS)",
    Kind.PAY_STATUS: '({v} == "success" or {v} == "failed")',
    Kind.ITEMS: "_is_items({v})",
}


def _fast_predicate(checks: tuple[Check, ...]) -> Callable[[dict[str, Any]], bool]:
    """Compile the checks into one boolean expression, the way dataclasses builds __init__."""
    terms = []
    for i, (name, _, kind) in enumerate(checks):
        var = f"x{i}"
        if name[0] == "?":
            test = _EXPR[kind].format(v=var)
            terms.append(f"(({var} := g({name[1:]!r})) is None or {test})")
        else:
            # Bind the value at its first use, then reuse the name.
            terms.append(_EXPR[kind].format(v=var).replace(var, f"({var} := g({name!r}))", 1))
    src = "def fast(e):\n    g = e.get\n    return " + " and ".join(terms) + "\n"
    scope: dict[str, Any] = {"MIN_TS": MIN_TS, "MAX_TS": MAX_TS, "_CHANNELS": _CHANNELS,
                             "_is_items": _is_items, "is_id": is_id, "_is_text": _is_text,
                             "MAX_ID_BYTES": MAX_ID_BYTES, "MAX_MONEY": MAX_MONEY,
                             "MAX_QTY": MAX_QTY}
    exec(compile(src, "<schemas.validate>", "exec"), scope)  # noqa: S102 - source built above
    fast: Callable[[dict[str, Any]], bool] = scope["fast"]
    return fast


_FAST: Final[dict[str, Callable[[dict[str, Any]], bool]]] = {
    name: _fast_predicate(_COMMON + checks) for name, checks in _BY_TYPE.items()
}


def validate_event(event: Any) -> FieldError | None:
    """None when ``event`` is a valid event; otherwise the first problem found."""
    if type(event) is not dict:
        return FieldError("", "a JSON object", type(event).__name__)
    etype = event.get("type", _MISSING)
    fast = _FAST.get(etype) if type(etype) is str else None
    if fast is None:
        return FieldError("type", _TYPES_TEXT, _show(etype))
    if fast(event):
        return None
    return next(_problems(_COMMON + _BY_TYPE[etype], event), None)


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


def field_errors(event: Any) -> list[FieldError]:
    """Every problem of ``event``, in field order (empty when valid); the first is what
    ``validate_event`` reports and dead letters carry."""
    first = validate_event(event)
    if first is None or first.field in ("", "type"):
        return [] if first is None else [first]
    return list(_problems(_COMMON + _BY_TYPE[event["type"]], event))
