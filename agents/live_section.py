"""The ``[live]`` settings section, shared by two capabilities.

The live rooms close a watch session after ``idle_ms`` without activity, and the coupons' live
follow-up measures watch time by the same rule, so both read the section here instead of one
capability importing the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shopstream.agents.lateness import allowed_lateness
from shopstream.core.errors import ConfigError
from shopstream.core.timeunits import DAY_MS, MINUTE_MS

_KEYS: Final = {"idle_ms", "attribution_ms", "top_rooms", "on_air_silence_ms"}


@dataclass(frozen=True, slots=True)
class LiveConfig:
    idle_ms: int = 5 * MINUTE_MS
    attribution_ms: int = 30 * MINUTE_MS
    #: Rooms with their own label in Prometheus (by viewers now); the rest fold into ``other``.
    top_rooms: int = 20
    #: A room on air leaves the list after this long without any event of it (event time:
    #: against the partition's watermark, so a replayed log shows its rooms as they were).
    on_air_silence_ms: int = 6 * 60 * MINUTE_MS
    lateness_ms: int = 5 * MINUTE_MS


def parse_config(sections: Mapping[str, Any]) -> LiveConfig:
    """Validate ``[live]``; raises ConfigError naming the key."""
    raw = sections.get("live", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"live: expected a table, got {raw!r}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"live: unknown keys {sorted(unknown)}, expected {sorted(_KEYS)}")
    limits = {"idle_ms": (1_000, DAY_MS), "attribution_ms": (0, 7 * DAY_MS),
              "top_rooms": (1, 200), "on_air_silence_ms": (MINUTE_MS, 30 * DAY_MS)}
    values: dict[str, int] = {}
    for name, (low, high) in limits.items():
        value = raw.get(name, getattr(LiveConfig(), name))
        if type(value) is not int or not low <= value <= high:
            raise ConfigError(f"live.{name}: expected an integer {low}..{high}, got {value!r}")
        values[name] = value
    return LiveConfig(**values, lateness_ms=allowed_lateness(sections))
