"""Redis key names of the anomaly judge (``agents/anomalies``).

Shop-wide (tag ``{ops}``), written by the anomaly judge only:
- ``{app}:{ops}:anomaly:state`` hash: ``judged`` (last minute judged) and per metric
  ``open|<metric>`` (the minute its open episode started).
- ``{app}:{ops}:anomalies`` sorted set: anomaly documents (JSON) by minute.
- ``{app}:{ops}:anomaly:unsent`` hash: alert_id -> document, until Kafka acknowledged it.
- ``{app}:{ops}:anomaly:lease`` string: which worker judges (a lease, see ``sinks.locks``).
"""

from __future__ import annotations

OPS_TAG = "{ops}"


def anomaly_state_key(app_id: str) -> str:
    return f"{app_id}:{OPS_TAG}:anomaly:state"


def anomalies_key(app_id: str) -> str:
    return f"{app_id}:{OPS_TAG}:anomalies"


def unsent_key(app_id: str) -> str:
    return f"{app_id}:{OPS_TAG}:anomaly:unsent"


def lease_key(app_id: str) -> str:
    return f"{app_id}:{OPS_TAG}:anomaly:lease"
