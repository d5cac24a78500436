"""The ``[live]`` settings section, shared by two capabilities.

The live rooms close a watch session after ``idle_ms`` without activity, and the coupons' live
follow-up measures watch time by the same rule, so both read the section here instead of one
capability importing the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from shopstream.agents.lateness import allowed_lateness
from shopstream.core.sections import read_section
from shopstream.core.timeunits import DAY_MS, HOUR_MS, MINUTE_MS


class LiveConfig(msgspec.Struct, frozen=True):
    """``[live]`` of the config file, with the shared allowed lateness (not a key of it)."""

    idle_ms: Annotated[int, msgspec.Meta(ge=1_000, le=DAY_MS)] = 5 * MINUTE_MS
    attribution_ms: Annotated[int, msgspec.Meta(ge=0, le=7 * DAY_MS)] = 30 * MINUTE_MS
    #: Rooms with their own label in Prometheus (by viewers now); the rest fold into ``other``.
    top_rooms: Annotated[int, msgspec.Meta(ge=1, le=200)] = 20
    #: A room on air leaves the list after this long without any event of it (event time:
    #: against the partition's watermark, so a replayed log shows its rooms as they were).
    on_air_silence_ms: Annotated[int, msgspec.Meta(ge=MINUTE_MS, le=30 * DAY_MS)] = 6 * HOUR_MS
    lateness_ms: int = 5 * MINUTE_MS


def parse_config(sections: Mapping[str, Any]) -> LiveConfig:
    """Validate ``[live]``; raises ConfigError naming the key."""
    return read_section(sections, "live", LiveConfig, lateness_ms=allowed_lateness(sections))
