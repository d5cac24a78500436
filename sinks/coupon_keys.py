"""Redis keys of cart recovery and coupon pushes (agents/coupons.py, sinks/outbox.py).

Per partition ``{pN}`` (written in the batch's fenced call unless said otherwise):
- ``{app}:{pN}:cu:u:<user>``  JSON: cart, last order, guard counters, live watch
- ``{app}:{pN}:cu:timers``     sorted set of deadlines ``c|<user>``, ``d|<push_id>`` (score: due ms)
- ``{app}:{pN}:cu:deferred``   hash push_id -> deferred candidate JSON
- ``{app}:{pN}:cu:viewers:<room>`` set of this partition's viewers of a live room
- ``{app}:{pN}:cu:live_done``  hash room -> 1 once its follow-up was evaluated here
- ``{app}:{pN}:outbox``        hash push_id -> push JSON, removed once relayed
- ``{app}:{pN}:outbox:lock``   string: the relay holding this partition's outbox
- ``{app}:{pN}:push:results``  hash push_id -> sent|budget_exhausted|failed
- ``{app}:{pN}:push:dead``     hash push_id -> reason the webhook never accepted it
Global: ``{app}:cu:live_ended`` hash room -> end ms (idempotent, written after apply);
``{app}:{budget:<rule>}:used|claims`` a campaign's budget (one slot per rule).
"""

from __future__ import annotations

from shopstream.sinks.keys import tag


def user_key(app: str, p: int, user: str) -> str:
    return f"{app}:{tag(p)}:cu:u:{user}"


def timers_key(app: str, p: int) -> str:
    return f"{app}:{tag(p)}:cu:timers"


def deferred_key(app: str, p: int) -> str:
    return f"{app}:{tag(p)}:cu:deferred"


def viewers_key(app: str, p: int, room: str) -> str:
    return f"{app}:{tag(p)}:cu:viewers:{room}"


def live_done_key(app: str, p: int) -> str:
    return f"{app}:{tag(p)}:cu:live_done"


def live_ended_key(app: str) -> str:
    return f"{app}:cu:live_ended"


def outbox_key(app: str, p: int) -> str:
    return f"{app}:{tag(p)}:outbox"


def results_key(app: str, p: int) -> str:
    """Hash push_id -> final result (sent|budget_exhausted|failed), for audits and tests."""
    return f"{app}:{tag(p)}:push:results"


def dead_key(app: str, p: int) -> str:
    """Hash push_id -> reason, pushes the webhook never accepted."""
    return f"{app}:{tag(p)}:push:dead"


def budget_keys(app: str, rule: str) -> list[str]:
    """Counter and claims of a campaign; one hash tag so the claim script is single-slot."""
    return [f"{app}:{{budget:{rule}}}:used", f"{app}:{{budget:{rule}}}:claims"]


def outbox_lock_key(app: str, p: int) -> str:
    return f"{app}:{tag(p)}:outbox:lock"
