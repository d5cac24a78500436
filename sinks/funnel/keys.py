"""Redis key names of the funnel agent (shared with its query); time buckets in ``sinks.buckets``.

Keys (all under the partition tag ``{pN}``; ``F`` is ``FunnelDef.key_id``):
- ``{app}:{pN}:funnel:u:<user_id>`` string: the user's open entries of every funnel, unit
  ``F`` (by user) or ``F|<session>`` -> ``Progress`` (``agents/funnel/rules.pack_units``), with a
  PEXPIRE of the longest window plus the allowed lateness.
- ``{app}:{pN}:funnel:F:<view>:<res>:<bucket_ms>`` hash: ``<breakdown>|<value>|<step>`` -> entries
  that reached the step; view ``cohort`` buckets by entry time, ``flow`` by the step's time;
  res ``m``/``h``/``d`` (day = business day in ``settings.zone``).
- ``{app}:{pN}:funnel:F:<view>:<res>`` sorted set of bucket starts (what the query reads).
- ``{app}:{pN}:funnel:late`` integer: events ignored as too late.
"""

from __future__ import annotations

from shopstream.sinks import keys

VIEWS = ("cohort", "flow")
RESOLUTIONS = ("m", "h", "d")


def user_key(app_id: str, partition: int, user_id: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:funnel:u:{user_id}"


def bucket_key(app_id: str, partition: int, funnel: str, view: str, res: str, start: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:funnel:{funnel}:{view}:{res}:{start}"


def index_key(app_id: str, partition: int, funnel: str, view: str, res: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:funnel:{funnel}:{view}:{res}"


def late_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:funnel:late"
