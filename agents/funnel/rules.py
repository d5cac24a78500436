"""Funnel definitions, their validation, and the per-entry state machine (pure, no I/O).

Semantics (docs/funnels.md restates them): a unit (user, or user+session) enters a funnel at
a step-1 event; each later step counts once per entry when its event time is >= the time of
the last counted step and < entry time + window; the breakdown values come from the entry
event. An entry ends when its last step is reached or, for a given event, when that event's
time is past the window: then a step-1 event starts a new entry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from shopstream.agents.lateness import allowed_lateness
from shopstream.core.errors import ConfigError
from shopstream.core.timeunits import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS
from shopstream.schemas.events import (
    COMMON_OPTIONAL,
    COMMON_REQUIRED,
    EVENT_TYPES,
    USER_TYPES,
    Event,
)

DEFAULT_WINDOW_MS: Final = DAY_MS
BREAKDOWNS: Final = ("channel", "campaign", "region", "device", "live_room_id")
COUNT_BY: Final = ("user", "session")
#: Breakdown value of an entry event that lacks the property.
NONE_VALUE: Final = "(none)"
#: Separates breakdown values inside one stored progress value.
_SEP: Final = "\x1f"
#: Separate one user's units, and a unit from its progress, in the stored string.
_UNIT_SEP: Final = "\x1e"
_KV: Final = "\x1d"
#: First character of the compact encoding (``pack_units``).
_PACKED: Final = "\x1c"
_PACKED_BYTE: Final = _PACKED.encode()
_STRIP: Final = str.maketrans("", "", "\x1d\x1e\x1f")
_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_UNITS: Final = {"ms": 1, "s": SECOND_MS, "m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}

DEFAULT_FUNNELS: Final[list[dict[str, Any]]] = [{
    "name": "purchase",
    "steps": ["page_view", "product_view", "cart_add", "order_submit",
              {"type": "payment", "where": {"status": "success"}}],
}]


@dataclass(frozen=True, slots=True)
class Step:
    """One funnel step: an event type and equality filters on its fields."""

    type: str
    #: (field, value) pairs that must all be equal on the event.
    where: tuple[tuple[str, str | int | bool], ...] = ()

    def matches(self, ev: Event) -> bool:
        if ev.type != self.type:
            return False
        for fld, value in self.where:
            if getattr(ev, fld) != value:
                return False
        return True

    @property
    def label(self) -> str:
        if not self.where:
            return self.type
        return f"{self.type}({','.join(f'{k}={v}' for k, v in self.where)})"


@dataclass(frozen=True, slots=True)
class FunnelDef:
    """A validated funnel."""

    name: str
    steps: tuple[Step, ...]
    window_ms: int
    #: "user" or "session".
    count_by: str
    #: Properties of the entry event that counts are broken down by.
    breakdowns: tuple[str, ...]
    #: Name plus a hash of the definition, used in Redis keys: a redefined funnel starts
    #: from fresh state instead of mixing old and new counts.
    key_id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        text = repr((self.steps, self.window_ms, self.count_by, self.breakdowns))
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]  # noqa: S324 - a name, not security
        object.__setattr__(self, "key_id", f"{self.name}@{digest}")

    def unit_field(self, ev: Event) -> str | None:
        """Field of the user's progress hash this event's unit uses; None if it has none."""
        if self.count_by == "user":
            return self.key_id
        session = ev.session_id
        return None if session is None else f"{self.key_id}|{session}"

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name, "window_ms": self.window_ms, "count_by": self.count_by,
            "breakdowns": list(self.breakdowns),
            "steps": [{"step": i, "type": s.type, "where": dict(s.where), "label": s.label}
                      for i, s in enumerate(self.steps, 1)],
        }


@dataclass(slots=True)
class Progress:
    """One unit's open funnel entry."""

    entry_ts: int
    #: Steps reached so far (1 = entered).
    reached: int
    #: Event time of the last counted step.
    last_ts: int
    #: Breakdown values of the entry event, in the funnel's breakdown order.
    values: tuple[str, ...]

    def encode(self) -> str:
        return f"{self.entry_ts},{self.reached},{self.last_ts},{_SEP.join(self.values)}"

    @classmethod
    def decode(cls, raw: bytes | str) -> Progress:
        text = raw.decode() if isinstance(raw, bytes) else raw
        entry, reached, last, values = text.split(",", 3)
        return cls(int(entry), int(reached), int(last), tuple(values.split(_SEP)))


def pack_units(units: dict[str, Progress]) -> str:
    """All open entries of one user (every funnel and session) as one string value, compact:
    ``_PACKED`` then per unit ``unit _KV entry time (hex), steps, last step's time - entry time,
    values`` (event times are positive: ``hex`` without its ``0x``, the fastest way to hex).
    One entry takes about 40 bytes, so Redis keeps it in one allocation with
    its object (a string of up to 44 bytes is embedded); the text written before took 54."""
    return _PACKED + _UNIT_SEP.join(
        f"{unit}{_KV}{hex(st.entry_ts)[2:]},{st.reached},{st.last_ts - st.entry_ts},"
        f"{_SEP.join(st.values)}" for unit, st in units.items())


def unpack_units(raw: bytes | None) -> dict[str, Progress]:
    """A user's stored entries, compact or in the text written before (``encode_units``,
    which starts with a funnel's key id, never with ``_PACKED``)."""
    if not raw:
        return {}
    if raw[:1] != _PACKED_BYTE:
        return decode_units(raw)
    out = {}
    for item in raw[1:].decode().split(_UNIT_SEP):
        unit, st = item.split(_KV, 1)
        entry, reached, since, values = st.split(",", 3)
        start = int(entry, 16)
        out[unit] = Progress(start, int(reached), start + int(since),
                             tuple(values.split(_SEP)))
    return out


def encode_units(units: dict[str, Progress]) -> str:
    """The text format of a user's entries written before ``pack_units`` (still read)."""
    return _UNIT_SEP.join(f"{unit}{_KV}{st.encode()}" for unit, st in units.items())


def decode_units(raw: bytes | None) -> dict[str, Progress]:
    if not raw:
        return {}
    out = {}
    for item in raw.decode().split(_UNIT_SEP):
        unit, st = item.split(_KV, 1)
        out[unit] = Progress.decode(st)
    return out


def advance(fd: FunnelDef, st: Progress | None, ev: Event) -> tuple[Progress | None, int]:
    """Feed one event to a unit's state: (new state, step reached 1..n or 0 for none).

    A completed entry comes back as None (the next step-1 event starts a new one).
    """
    ts = ev.ts
    if st is not None and ts - st.entry_ts < fd.window_ms:
        nxt = st.reached
        if ts >= st.last_ts and fd.steps[nxt].matches(ev):
            nxt += 1
            if nxt == len(fd.steps):
                return None, nxt
            return Progress(st.entry_ts, nxt, ts, st.values), nxt
        return st, 0
    if fd.steps[0].matches(ev):
        if len(fd.steps) == 1:
            return None, 1
        return Progress(ts, 1, ts, entry_values(fd, ev)), 1
    return st, 0


def entry_values(fd: FunnelDef, ev: Event) -> tuple[str, ...]:
    """Breakdown values of an entry event (first touch), NONE_VALUE where missing (absent or
    null).

    The separators of the stored encoding are removed, so no value can corrupt it.
    """
    return tuple(NONE_VALUE if (v := getattr(ev, p, None)) is None else str(v).translate(_STRIP)
                 for p in fd.breakdowns)


def _duration(where: str, raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        ms = raw
    elif isinstance(raw, str) and (m := re.fullmatch(r"(\d+)(ms|s|m|h|d)", raw.strip())):
        ms = int(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ConfigError(f"{where}: expected milliseconds or a duration like '30m', got {raw!r}")
    if ms <= 0:
        raise ConfigError(f"{where}: expected a window > 0, got {raw!r}")
    return ms


def _step(where: str, raw: Any) -> Step:
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected an event type or {{type, where}}, got {raw!r}")
    extra = set(raw) - {"type", "where"}
    if extra:
        raise ConfigError(f"{where}: expected keys type, where; got unknown {sorted(extra)}")
    etype = raw.get("type")
    if not isinstance(etype, str) or etype not in USER_TYPES:
        # A funnel follows users: events not about a user have no place in it.
        raise ConfigError(
            f"{where}.type: expected one of {', '.join(sorted(USER_TYPES))}, got {etype!r}"
        )
    filters = raw.get("where", {})
    if not isinstance(filters, Mapping):
        raise ConfigError(f"{where}.where: expected a table of field = value, got {filters!r}")
    required, optional = EVENT_TYPES[etype]
    known = {*COMMON_REQUIRED, *COMMON_OPTIONAL, *required, *optional}
    for fld, value in filters.items():
        if fld not in known:
            raise ConfigError(
                f"{where}.where.{fld}: expected a field of {etype} ({', '.join(sorted(known))}),"
                f" got {fld!r}"
            )
        if not isinstance(value, str | int | bool):
            raise ConfigError(f"{where}.where.{fld}: expected a string or integer, got {value!r}")
    return Step(etype, tuple(sorted(filters.items())))


def parse_funnel(where: str, raw: Any) -> FunnelDef:
    """One ``[[funnels]]`` table as a FunnelDef, or ConfigError naming the key."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table, got {raw!r}")
    known = {"name", "steps", "window", "window_ms", "count_by", "breakdowns"}
    extra = set(raw) - known
    if extra:
        raise ConfigError(f"{where}: expected keys {sorted(known)}, got unknown {sorted(extra)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"{where}.name: expected [a-z0-9_-], 1-64 chars, got {name!r}")
    where = f"funnels.{name}"
    steps = raw.get("steps")
    if not isinstance(steps, list | tuple) or not steps:
        raise ConfigError(f"{where}.steps: expected a non-empty list of steps, got {steps!r}")
    window = raw.get("window_ms", raw.get("window", DEFAULT_WINDOW_MS))
    count_by = raw.get("count_by", "user")
    if count_by not in COUNT_BY:
        raise ConfigError(f"{where}.count_by: expected one of {COUNT_BY}, got {count_by!r}")
    breakdowns = raw.get("breakdowns", ["channel"])
    if (not isinstance(breakdowns, list | tuple) or not breakdowns
            or any(b not in BREAKDOWNS for b in breakdowns)
            or len(set(breakdowns)) != len(breakdowns)):
        raise ConfigError(
            f"{where}.breakdowns: expected distinct values of {BREAKDOWNS}, got {breakdowns!r}"
        )
    return FunnelDef(
        name=name,
        steps=tuple(_step(f"{where}.steps[{i}]", s) for i, s in enumerate(steps)),
        window_ms=_duration(f"{where}.window", window),
        count_by=count_by,
        breakdowns=tuple(breakdowns),
    )


def parse_funnels(sections: Any) -> tuple[list[FunnelDef], int]:
    """Funnels and allowed lateness (ms) from settings sections; the default funnel if none."""
    raw = sections.get("funnels", DEFAULT_FUNNELS)
    if not isinstance(raw, list | tuple) or not raw:
        raise ConfigError(f"funnels: expected a non-empty array of tables, got {raw!r}")
    funnels = [parse_funnel(f"funnels[{i}]", r) for i, r in enumerate(raw)]
    names = [f.name for f in funnels]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"funnels.name: expected unique names, got repeated {dup}")
    lateness = allowed_lateness(sections)
    return funnels, lateness
