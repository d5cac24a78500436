"""Redis key names of stock health (``agents/stock``).

Per partition (tag ``{pN}``), written by the fenced batch write:
- ``{app}:{pN}:stock:m:<minute ms>`` hash, per minute of event time: ``u|<ts>|<sku>`` (count of
  a stock update at ``ts``), ``p|<ts>|<sku>`` (units paid at ``ts``), ``r|<sku>`` (units
  returned). Deleted once judged; kept ``MINUTE_RETENTION_MS`` at most.
- ``{app}:{pN}:stock:minutes`` sorted set of the minutes with a row (score = member = minute).
- ``{app}:{pN}:stock:o:<order_id>`` string: a submitted order's lines (JSON ``[[sku, qty]]``)
  until its successful payment, or ``[stock] order_ttl_hours``.
- ``{app}:{pN}:stock:late`` / ``:stock:unmatched`` integers: events ignored as too late, and
  successful payments of no known order.

Shop-wide (tag ``{stock}``), written by the judge only:
- ``{app}:{stock}:state`` hash: ``judged`` (last minute judged), ``day`` (its business day).
- ``{app}:{stock}:skus`` hash: SKU -> its state and last view (JSON).
- ``{app}:{stock}:alerts`` sorted set: alert documents (JSON) by minute.
- ``{app}:{stock}:unsent`` hash: alert_id -> document, until Kafka acknowledged it.
- ``{app}:{stock}:lease`` string: which worker judges (``sinks.locks``).
"""

from __future__ import annotations

from shopstream.sinks import keys

STOCK_TAG = "{stock}"


def minute_key(app_id: str, partition: int, minute: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:stock:m:{minute}"


def index_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:stock:minutes"


def order_prefix(app_id: str, partition: int) -> str:
    """Prefix of the order keys; the order id follows."""
    return f"{app_id}:{keys.tag(partition)}:stock:o:"


def late_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:stock:late"


def unmatched_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{keys.tag(partition)}:stock:unmatched"


def state_key(app_id: str) -> str:
    return f"{app_id}:{STOCK_TAG}:state"


def skus_key(app_id: str) -> str:
    return f"{app_id}:{STOCK_TAG}:skus"


def alerts_key(app_id: str) -> str:
    return f"{app_id}:{STOCK_TAG}:alerts"


def unsent_key(app_id: str) -> str:
    return f"{app_id}:{STOCK_TAG}:unsent"


def lease_key(app_id: str) -> str:
    return f"{app_id}:{STOCK_TAG}:lease"
