"""Redis key names of ad economics (``agents/ads``).

Per partition (tag ``{pN}``):
- ``{app}:{pN}:ads:m:<minute ms>`` hash, per minute of event time: ``<measure>|<row>`` for
  measures s (spend, fen), c (clicks), o (attributed orders), p (attributed paid orders), g
  (attributed paid GMV, fen), nb (attributed payments by new buyers); ``<row>`` is the JSON
  array [channel, campaign, keyword or ""]. Kept ``MINUTE_RETENTION_MS``.
- ``{app}:{pN}:ads:minutes`` sorted set of the minutes with a row (score = member = minute).
- ``{app}:{pN}:ads:u:<user>`` hash, a user's attribution state: ``t`` (last paid touch, JSON
  [ts, channel, campaign, keyword]), ``b`` (event time of the latest successful payment),
  ``o|<order id>`` (an open attributed order's row). Expires a day past the longer of the
  attribution and new-buyer windows after its last write (``agents/ads/agent.user_ttl_ms``).
- ``{app}:{pN}:ads:late`` integer: ads events ignored as too late.

Shop-wide (tag ``{ads}``), written by the ROAS judge only:
- ``{app}:{ads}:alert:state`` hash: ``judged`` (start of the last minute judged), ``below``
  (JSON {campaign: first minute of its episode below the floor}), ``w:<minute>`` (JSON
  {campaign: [spend, paid GMV]} of each judged minute with data in the trailing hour).
- ``{app}:{ads}:alerts`` sorted set: alert documents (JSON) by minute.
- ``{app}:{ads}:alert:unsent`` hash: alert_id -> document, until Kafka acknowledged it.
- ``{app}:{ads}:alert:lease`` string: which worker judges (``sinks.locks``).
"""

from __future__ import annotations

from shopstream.sinks import keys

ADS_TAG = "{ads}"


def minute_key(app_id: str, partition: int, minute: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ads:m:{minute}"


def index_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ads:minutes"


def user_key(app_id: str, partition: int, user: str) -> str:
    return f"{app_id}:{keys.tag(partition)}:ads:u:{user}"


def late_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ads:late"


def alert_state_key(app_id: str) -> str:
    return f"{app_id}:{ADS_TAG}:alert:state"


def alerts_key(app_id: str) -> str:
    return f"{app_id}:{ADS_TAG}:alerts"


def unsent_key(app_id: str) -> str:
    return f"{app_id}:{ADS_TAG}:alert:unsent"


def lease_key(app_id: str) -> str:
    return f"{app_id}:{ADS_TAG}:alert:lease"
