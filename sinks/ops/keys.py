"""Redis key names of the shop's pulse (``agents/ops.py``) and its anomaly judge.

Per partition (tag ``{pN}``):
- ``{app}:{pN}:ops:m:<minute ms>`` hash, per minute of event time: ``<measure>|<channel>``
  for measures o (orders), x (cancellations), ps / pf (payments success / failed), g (paid
  GMV), nb / rb (successful payments by new / returning buyers); ``su|<sku>`` / ``sg|<sku>``
  (units and line GMV of submitted orders). Kept ``MINUTE_RETENTION_MS``.
- ``{app}:{pN}:ops:minutes`` sorted set of the minutes with a row (score = member = minute).
- ``{app}:{pN}:ops:buyers`` set: users with a successful payment (new vs returning).
- ``{app}:{pN}:ops:late`` integer: pulse events ignored as too late.
Shop-wide (tag ``{ops}``), written by the anomaly judge only:
- ``{app}:{ops}:anomaly:state`` hash: ``judged`` (last minute judged) and per metric
  ``open|<metric>`` (the minute its open episode started).
- ``{app}:{ops}:anomalies`` sorted set: anomaly documents (JSON) by minute.
- ``{app}:{ops}:anomaly:unsent`` hash: alert_id -> document, until Kafka acknowledged it.
- ``{app}:{ops}:anomaly:lease`` string: which worker judges (a lease, see ``sinks.locks``).
"""

from __future__ import annotations

from shopstream.sinks import keys

OPS_TAG = "{ops}"


def minute_key(app_id: str, partition: int, minute: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ops:m:{minute}"


def index_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ops:minutes"


def buyers_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ops:buyers"


def late_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:ops:late"


def anomaly_state_key(app_id: str) -> str:
    return f"{app_id}:{OPS_TAG}:anomaly:state"


def anomalies_key(app_id: str) -> str:
    return f"{app_id}:{OPS_TAG}:anomalies"


def unsent_key(app_id: str) -> str:
    return f"{app_id}:{OPS_TAG}:anomaly:unsent"


def lease_key(app_id: str) -> str:
    return f"{app_id}:{OPS_TAG}:anomaly:lease"
