"""The allowed lateness every event-time agent (funnels, live rooms, the pulse) shares.

An event older than the partition watermark minus this is late: the batch loop decides it once
for every agent (``streams.feeds``, docs/guarantees.md). One setting for all, so a minute's
funnel conversion and its orders are final at the same moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

import msgspec

from shopstream.core.sections import read_section
from shopstream.core.timeunits import MINUTE_MS

DEFAULT_LATENESS_MS: Final = 5 * MINUTE_MS


class FunnelOptions(msgspec.Struct, frozen=True):
    """``[funnel_options]`` of the config file."""

    allowed_lateness_ms: Annotated[int, msgspec.Meta(ge=0)] = DEFAULT_LATENESS_MS


def allowed_lateness(sections: Mapping[str, Any]) -> int:
    """``[funnel_options] allowed_lateness_ms`` (ms); raises ConfigError naming the key."""
    return read_section(sections, "funnel_options", FunnelOptions).allowed_lateness_ms
