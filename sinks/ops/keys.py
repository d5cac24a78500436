"""Redis key names of the shop's pulse (``agents/ops``); its anomaly judge's are in
``sinks/anomalies/keys.py``.

Per partition (tag ``{pN}``):
- ``{app}:{pN}:ops:m:<minute ms>`` hash, per minute of event time: ``<measure>|<channel>``
  for measures o (orders), x (cancellations), ps / pf (payments success / failed), g (paid
  GMV), nb / rb (successful payments by new / returning buyers); ``su|<sku>`` / ``sg|<sku>``
  (units and line GMV of submitted orders). Kept ``MINUTE_RETENTION_MS``.
- ``{app}:{pN}:ops:minutes`` sorted set of the minutes with a row (score = member = minute).
- ``{app}:{pN}:ops:buyers`` set: users with a successful payment (new vs returning).
- ``{app}:{pN}:ops:late`` integer: pulse events ignored as too late.
"""

from __future__ import annotations

from shopstream.sinks import keys


def minute_key(app_id: str, partition: int, minute: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ops:m:{minute}"


def index_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ops:minutes"


def buyers_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ops:buyers"


def late_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ops:late"
