"""Redis keys of the customer loop (agents/customers).

Per partition ``{pN}`` (the user's partition; a referral's is the invitee's), all written in
the batch's fenced call:
- ``{app}:{pN}:cs:b:<n>``   hash user -> the user's state, MessagePack (sinks/customers/users.py):
  orders and their remaining, tier, points, check-ins, reviews, referrer, pending reminders,
  service tasks, guard counters; ``USER_BUCKETS`` hashes per partition, a user's is
  ``bucket(user)``
- ``{app}:{pN}:cs:timers``   sorted set of deadlines (score: due ms), members
  ``x|<user>`` (spend expiry), ``r|[user, order_id]`` (review reminder),
  ``p|[user, sku]`` (repurchase reminder), ``z|<user>`` (dormant recall),
  ``e|[user, task_id]`` (service escalation), ``d|<push_id>`` (deferred push)
- ``{app}:{pN}:cs:deferred`` hash push_id -> deferred candidate JSON
- ``{app}:{pN}:cs:tasks``    hash task_id -> service task JSON (open, escalated, acked)
- ``{app}:{pN}:cs:tiers``    hash tier -> known users of this partition in that tier
- ``{app}:{pN}:cs:events``   hash event_id -> ``tier_changed`` JSON, until the customer-events
  topic acknowledged it (sinks/alert_outbox.py)
- ``{app}:{pN}:cs:alerts``   hash alert_id -> service task alert JSON, until the ops-alerts topic
  acknowledged it
Pushes go into the partition's push outbox ``{app}:{pN}:outbox`` (sinks/coupons/keys.py),
relayed with the coupons' pushes by the same relay (sinks/outbox.py).
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

from shopstream.sinks.keys import tag


class CustomerKeys(NamedTuple):
    """One partition's customer-loop keys; what each holds is listed above."""

    timers: str
    deferred: str
    tasks: str
    tiers: str
    events: str
    alerts: str


_LAYOUT = CustomerKeys("cs:timers", "cs:deferred", "cs:tasks", "cs:tiers", "cs:events",
                       "cs:alerts")


def customer_keys(app: str, p: int) -> CustomerKeys:
    return CustomerKeys(*(f"{app}:{tag(p)}:{part}" for part in _LAYOUT))


#: Users' state buckets per partition. Fixed: a user's bucket is where its state is looked for.
USER_BUCKETS = 512


def bucket(user: str) -> str:
    """The user's bucket: CRC-32 of the id, the same in every process and version."""
    return str(zlib.crc32(user.encode()) % USER_BUCKETS)


def users_prefix(app: str, p: int) -> str:
    """Prefix of a partition's user buckets; a user's key is this plus ``bucket(user)``."""
    return f"{app}:{tag(p)}:cs:b:"
