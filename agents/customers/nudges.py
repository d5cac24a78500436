"""The guards of the customer loop's pushes, at an event-time instant (docs/nudges.md).

A *candidate* is a push a rule wants to make; ``decide`` says what happens to it: outbox,
deferred, capped, ineligible or suppressed. Quiet hours, push ids and business days are the
coupons' (agents/push_guards.py); the daily cap counts only this loop's pushes (``sent``
per business day in the user's state) and cooldowns are per rule (``last``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shopstream.agents.customers.config import CustomersConfig
from shopstream.agents.push_guards import business_day, quiet_release


def decide(cand: Mapping[str, Any], user: dict[str, Any], tier: str, now: int, valid: bool,
           cfg: CustomersConfig, allow_defer: bool = True) -> tuple[str, int | None]:
    """Run the guards at ``now``: ("outbox"|"capped"|"ineligible"|"suppressed", None) or
    ("deferred", release). ``valid`` is the rule's own check. A referrer's reward (``step``
    1 of ``referral_reward``) is decided on the invitee's partition: only quiet hours apply.

    On "outbox" the user's guard counters are updated in place (cap, cooldown).
    """
    if not valid:
        return "suppressed", None
    rule = cfg.rules[cand["rule"]]
    others = cand.get("referrer_id") == cand["user_id"]
    if not others and rule.tiers and tier not in rule.tiers:
        return "ineligible", None
    if allow_defer:
        release = quiet_release(now, cfg)
        if release is not None:
            return "deferred", release
    if others:
        return "outbox", None
    last = user.get("last", {})
    if rule.name in last and now < last[rule.name] + rule.cooldown_ms:
        return "capped", None
    day = business_day(now, cfg.zone)
    sent = user.get("sent", {})
    if sent.get(day, 0) >= cfg.daily_cap:
        return "capped", None
    sent[day] = sent.get(day, 0) + 1
    user["sent"] = _recent(sent)
    user.setdefault("last", {})[rule.name] = now
    return "outbox", None


#: Business days of cap counts kept per user: a push decided later than this is counted
#: against a fresh day.
KEEP_DAYS = 7


def _recent(sent: dict[str, int]) -> dict[str, int]:
    """The cap counts of the latest KEEP_DAYS business days (ISO dates sort as days)."""
    if len(sent) <= KEEP_DAYS:
        return sent
    return {d: sent[d] for d in sorted(sent)[-KEEP_DAYS:]}
