"""Redis keys of cart recovery and coupon pushes (agents/coupons, sinks/outbox.py).

Per partition ``{pN}`` (written in the batch's fenced call unless said otherwise):
- ``{app}:{pN}:cu:b:<n>``     hash user -> the user's state, MessagePack (sinks/coupons/users.py):
  cart, last order, guard counters, open views and the current session's watch time per live
  room; ``USER_BUCKETS`` hashes per partition, a user's is ``bucket(user)``
- ``{app}:{pN}:cu:u:<user>``  the same state as JSON, as written before buckets: read until the
  user's next write moves it into its bucket
- ``{app}:{pN}:cu:timers``     sorted set of deadlines ``c|<user>``, ``d|<push_id>`` and
  ``l|[room, end, user]`` (a live follow-up; score: due ms)
- ``{app}:{pN}:cu:deferred``   hash push_id -> deferred candidate JSON
- ``{app}:{pN}:cu:viewers:<room>`` set of this partition's viewers of a live room's current
  session (emptied at its ``live_end``)
- ``{app}:{pN}:cu:live_ends``  hash room -> the latest ``live_end`` (ms) applied here
- ``{app}:{pN}:outbox``        hash push_id -> push JSON, removed once relayed
- ``{app}:{pN}:outbox:lock``   string: the relay holding this partition's outbox
- ``{app}:{pN}:push:results``  hash push_id -> sent|budget_exhausted|failed, of the current
  business day (``push:results:day``); at the turn of the day it becomes
  ``push:results:prev``, kept ``push_results_keep_s`` (sinks/push_results.lua)
- ``{app}:{pN}:push:dead``     hash push_id -> reason the webhook never accepted it
- ``{app}:{pN}:push:webhook``  hash push_id -> {push, attempts, first_ms, next_ms}: published to
  Kafka, waiting for the webhook to accept it (retried until the horizon)
Global: ``{app}:{budget:<rule>}:used|claims`` a campaign's budget (one slot per rule), and
``{app}:{budget}:claimer`` the lease of the one claimer of all budgets (sinks/budget_order.py).
"""

from __future__ import annotations

import zlib
from typing import NamedTuple

from shopstream.sinks.keys import tag


class CouponKeys(NamedTuple):
    """One partition's coupon and push keys; what each holds is listed above."""

    timers: str
    deferred: str
    live_ends: str
    outbox: str
    outbox_lock: str
    push_results: str
    push_results_prev: str
    push_results_day: str
    push_dead: str
    push_webhook: str


_LAYOUT = CouponKeys("cu:timers", "cu:deferred", "cu:live_ends", "outbox", "outbox:lock",
                     "push:results", "push:results:prev", "push:results:day", "push:dead",
                     "push:webhook")


def coupon_keys(app: str, p: int) -> CouponKeys:
    return CouponKeys(*(f"{app}:{tag(p)}:{part}" for part in _LAYOUT))


#: Users' state buckets per partition. Fixed: a user's bucket is where its state is looked
#: for, so another count would lose every user's state. 512 keeps a bucket under Redis's
#: default ``hash-max-listpack-entries`` (512) up to about 250,000 users per partition.
USER_BUCKETS = 512


_BUCKETS = tuple(str(n) for n in range(USER_BUCKETS))


def bucket(user: str) -> str:
    """The user's bucket: CRC-32 of the id, the same in every process and version."""
    return _BUCKETS[zlib.crc32(user.encode()) % USER_BUCKETS]


def users_prefix(app: str, p: int) -> str:
    """Prefix of a partition's user buckets; a user's key is this plus ``bucket(user)``."""
    return f"{app}:{tag(p)}:cu:b:"


def user_key(app: str, p: int, user: str) -> str:
    """The string key a user's state was kept in before buckets (JSON)."""
    return f"{app}:{tag(p)}:cu:u:{user}"


def viewers_key(app: str, p: int, room: str) -> str:
    return f"{app}:{tag(p)}:cu:viewers:{room}"


def budget_keys(app: str, rule: str) -> list[str]:
    """Counter and claims of a campaign; one hash tag so the claim script is single-slot."""
    return [f"{app}:{{budget:{rule}}}:used", f"{app}:{{budget:{rule}}}:claims"]


def claimer_lock(app: str) -> str:
    """Lease of the budgets' claimer: one across partitions, in a slot of its own."""
    return f"{app}:{{budget}}:claimer"
