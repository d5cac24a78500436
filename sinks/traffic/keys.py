"""Redis key names of traffic value (``agents/traffic``), shared with its query.

Per partition (tag ``{pN}``); a user's events all live on one partition, so distinct users
of the partitions add up exactly:
- ``{app}:{pN}:traffic:<res>:<start ms>`` hash, per bucket (res ``m`` minute, ``h`` hour,
  ``d`` business day): ``<measure>|<dim>``, dim ``*`` (overall), ``c:<channel>`` or
  ``k:<campaign>``; measures in ``agents/traffic/rules.MEASURES``. Minute rows are kept
  ``MINUTE_RETENTION_MS``, hour and day rows for good.
- ``{app}:{pN}:traffic:idx:<res>`` sorted set of the buckets with a row (score = member = start).
- ``{app}:{pN}:traffic:u:<user_id>`` string: the user's open sessions and the buckets where the
  user was already counted as a visitor (``agents/traffic/rules.encode_user``), with a TTL.
- ``{app}:{pN}:traffic:late`` integer: traffic events ignored as too late.
"""

from __future__ import annotations

from shopstream.sinks import keys


def row_key(app_id: str, partition: int, res: str, start: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:traffic:{res}:{start}"


def index_key(app_id: str, partition: int, res: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:traffic:idx:{res}"


def user_key(app_id: str, partition: int, user_id: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:traffic:u:{user_id}"


def late_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:traffic:late"
