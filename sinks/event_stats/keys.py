"""Redis key names of event_stats (``agents/event_stats``)."""

from __future__ import annotations

from shopstream.sinks.keys import tag


def stats_minute_key(app_id: str, partition: int, minute: int) -> str:
    """event_stats hash of one minute: ``<type>|<channel>`` -> count, ``gmv``, ``paid``."""
    return f"{app_id}:{tag(partition)}:stats:m:{minute}"


def stats_index_key(app_id: str, partition: int) -> str:
    """Sorted set of the minutes event_stats has rows for (score = member = minute ms)."""
    return f"{app_id}:{tag(partition)}:stats:minutes"
