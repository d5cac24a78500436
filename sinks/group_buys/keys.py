"""Redis key names of group buys (``agents/group_buys``).

Per partition (tag ``{pN}``, the partition of the group id), written by the fenced batch write:
- ``{app}:{pN}:gb:groups`` hash group_id -> the group's state (JSON: sku, target, opened,
  deadline, members in join order, status open|completed|expired, closed); kept for good, so
  a late join to a closed group is still refused.
- ``{app}:{pN}:gb:timers`` sorted set of open groups by deadline (score: epoch ms).
- ``{app}:{pN}:gb:counts`` hash ``opened|<sku>``, ``completed|<sku>``, ``expired|<sku>`` ->
  groups (``GET /v1/group-buys`` sums the partitions; open = opened - completed - expired).
- ``{app}:{pN}:gb:unsent`` hash event_id -> ``group_completed`` document, until Kafka
  acknowledged it on the customer-events topic (``sinks.alert_outbox``).
Group pushes go into the partition's push outbox, ``{app}:{pN}:outbox`` (``sinks/coupons``),
relayed with the coupons' pushes.
"""

from __future__ import annotations

from shopstream.sinks.keys import tag


def groups_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{tag(partition)}:gb:groups"


def timers_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{tag(partition)}:gb:timers"


def counts_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{tag(partition)}:gb:counts"


def unsent_key(app_id: str, partition: int) -> str:
    return f"{app_id}:{tag(partition)}:gb:unsent"
