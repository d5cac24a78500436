"""The allowed lateness every event-time agent (funnels, live rooms, the pulse) shares.

An event older than the partition watermark minus this is late: the batch loop decides it once
for every agent (``streams.feeds``, docs/guarantees.md). One setting for all, so a minute's
funnel conversion and its orders are final at the same moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shopstream.core.errors import ConfigError
from shopstream.core.timeunits import MINUTE_MS

DEFAULT_LATENESS_MS: Final = 5 * MINUTE_MS


def allowed_lateness(sections: Mapping[str, Any]) -> int:
    """``[funnel_options] allowed_lateness_ms`` (ms); raises ConfigError naming the key."""
    options = sections.get("funnel_options", {})
    if not isinstance(options, Mapping) or set(options) - {"allowed_lateness_ms"}:
        raise ConfigError(f"funnel_options: expected keys ['allowed_lateness_ms'], got {options!r}")
    lateness = options.get("allowed_lateness_ms", DEFAULT_LATENESS_MS)
    if not isinstance(lateness, int) or isinstance(lateness, bool) or lateness < 0:
        raise ConfigError(
            f"funnel_options.allowed_lateness_ms: expected an integer >= 0, got {lateness!r}"
        )
    return lateness
