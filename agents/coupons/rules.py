"""Coupon rules and guards as plain functions, plus validation of their TOML config.

A *candidate* is a push a rule wants to make; ``decide`` runs the guards on it against the
user's state at an event-time instant and says what happens: outbox, deferred, capped or
suppressed. No I/O here, so the rules are testable alone and the agent stays thin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import msgspec

from shopstream.agents.live_section import parse_config as parse_live_config
from shopstream.agents.push_guards import business_day, quiet_hours, quiet_release
from shopstream.core.errors import ConfigError
from shopstream.core.sections import as_table, read_section, read_table
from shopstream.core.timeunits import DAY_MS, MINUTE_MS

CART_RECOVERY = "cart_recovery"
THRESHOLD_NUDGE = "threshold_nudge"
NEW_USER = "new_user"
LIVE_FOLLOWUP = "live_followup"
RULES = (CART_RECOVERY, THRESHOLD_NUDGE, NEW_USER, LIVE_FOLLOWUP)
RESULTS = ("sent", "capped", "deferred", "suppressed", "budget_exhausted", "failed", "ineligible")


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the abandonment schedule."""

    #: Delay after the last cart change.
    after_ms: int
    #: Coupon attached to this step (0: a plain reminder, no budget used).
    coupon_fen: int


@dataclass(frozen=True, slots=True)
class Rule:
    """Common knobs of a coupon rule."""

    name: str
    enabled: bool
    #: Coupon value; 0 means no coupon (no budget needed).
    coupon_fen: int
    #: Campaign budget in coupons, None for unlimited.
    budget: int | None
    #: Minimum time between two pushes of this rule to one user.
    cooldown_ms: int


@dataclass(frozen=True, slots=True)
class CouponConfig:
    steps: tuple[Step, ...]
    rules: Mapping[str, Rule]
    #: Pushes per user per business day.
    daily_cap: int
    #: Quiet hours as minutes of the local day, [start, end) possibly wrapping midnight.
    quiet_start_min: int
    quiet_end_min: int
    #: Threshold nudge: spend ``threshold_fen`` get ``coupon_fen`` off, nudge within ``band_fen``.
    threshold_fen: int
    band_fen: int
    #: Live follow-up: watched at least this long, no order within ``within_ms`` after the end.
    min_watch_ms: int
    within_ms: int
    zone: ZoneInfo
    #: A view with no activity for this long closes (``[live] idle_ms``, docs/live-and-ops.md).
    idle_ms: int


NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
_DEFAULT_STEPS = ({"after_min": 60}, {"after_min": 1440, "coupon_fen": 1000}, {"after_min": 4320})


class StepTable(msgspec.Struct, frozen=True):
    """One table of ``[cart] steps``."""

    after_min: Positive
    coupon_fen: NonNegative = 0


class CartSection(msgspec.Struct, frozen=True):
    """``[cart]``: the steps stay raw here, each is read as a StepTable by its index."""

    steps: Annotated[tuple[Any, ...], msgspec.Meta(
        min_length=1, extra={"expected": "a non-empty array of tables"})] = _DEFAULT_STEPS


class RuleTable(msgspec.Struct, frozen=True):
    """``[coupons.<rule>]``; the defaults of a rule are its subclass's (DOMAIN: a 10-yuan
    new-user coupon, a 7-day re-entry cap)."""

    enabled: Annotated[bool, msgspec.Meta(extra={"expected": "true or false"})] = True
    coupon_fen: NonNegative = 0
    budget: NonNegative | None = None
    cooldown_days: NonNegative = 7
    #: Replaces ``cooldown_days`` when given.
    cooldown_min: NonNegative | None = None


R = TypeVar("R", bound=RuleTable)


class NudgeTable(RuleTable, frozen=True):
    coupon_fen: NonNegative = 2000
    threshold_fen: Positive = 19_900
    band_fen: Positive = 3_000


class NewUserTable(RuleTable, frozen=True):
    coupon_fen: NonNegative = 1000
    cooldown_days: NonNegative = 0


class FollowupTable(RuleTable, frozen=True):
    coupon_fen: NonNegative = 500
    cooldown_days: NonNegative = 1
    min_watch_min: NonNegative = 10
    within_min: Positive = 30


class CouponsSection(msgspec.Struct, frozen=True):
    """``[coupons]``: the rule tables stay raw here, each is read by its own RuleTable."""

    daily_cap: Positive = 2
    quiet_hours: Annotated[str, msgspec.Meta(
        pattern="^[^-]*-[^-]*$", extra={"expected": "'HH:MM-HH:MM'"})] = "22:00-08:00"
    cart_recovery: Any = msgspec.field(default_factory=dict)
    threshold_nudge: Any = msgspec.field(default_factory=dict)
    new_user: Any = msgspec.field(default_factory=dict)
    live_followup: Any = msgspec.field(default_factory=dict)


def _steps(sections: Mapping[str, Any]) -> tuple[Step, ...]:
    steps: list[Step] = []
    for i, raw in enumerate(read_section(sections, "cart", CartSection).steps):
        where = f"cart.steps[{i}]"
        st = read_table(where, as_table(where, raw), StepTable)
        if steps and st.after_min * MINUTE_MS <= steps[-1].after_ms:
            raise ConfigError(f"{where}.after_min: expected increasing delays, got {st.after_min}")
        steps.append(Step(st.after_min * MINUTE_MS, st.coupon_fen))
    return tuple(steps)


def _rule_table(co: CouponsSection, name: str, kind: type[R]) -> R:
    where = f"coupons.{name}"
    return read_table(where, as_table(where, getattr(co, name)), kind)


def parse_config(sections: Mapping[str, Any], zone: ZoneInfo) -> CouponConfig:
    """Validate ``[cart]`` and ``[coupons]``; defaults when absent, ConfigError when wrong."""
    steps = _steps(sections)
    co = read_section(sections, "coupons", CouponsSection)
    q_start, q_end = quiet_hours(co.quiet_hours)
    thr = _rule_table(co, THRESHOLD_NUDGE, NudgeTable)
    live = _rule_table(co, LIVE_FOLLOWUP, FollowupTable)
    tables: dict[str, RuleTable] = {
        CART_RECOVERY: _rule_table(co, CART_RECOVERY, RuleTable), THRESHOLD_NUDGE: thr,
        NEW_USER: _rule_table(co, NEW_USER, NewUserTable), LIVE_FOLLOWUP: live}
    rules = {name: Rule(name, t.enabled, t.coupon_fen, t.budget,
                        t.cooldown_days * DAY_MS if t.cooldown_min is None
                        else t.cooldown_min * MINUTE_MS) for name, t in tables.items()}
    if thr.band_fen > thr.threshold_fen:
        raise ConfigError(
            f"coupons.{THRESHOLD_NUDGE}.band_fen: expected <= threshold_fen, got {thr.band_fen}")
    return CouponConfig(
        steps=steps, rules=rules, daily_cap=co.daily_cap,
        quiet_start_min=q_start, quiet_end_min=q_end,
        threshold_fen=thr.threshold_fen, band_fen=thr.band_fen,
        min_watch_ms=live.min_watch_min * MINUTE_MS, within_ms=live.within_min * MINUTE_MS,
        zone=zone,
        idle_ms=parse_live_config(sections).idle_ms,
    )


def cart_total(items: Mapping[str, list[int]]) -> int:
    return sum(q * p for q, p in items.values())


def in_band(total: int, cfg: CouponConfig) -> bool:
    """Cart just below the threshold: worth saying 'add X to save Y'."""
    return cfg.threshold_fen - cfg.band_fen <= total < cfg.threshold_fen


def still_valid(cand: Mapping[str, Any], user: Mapping[str, Any], cfg: CouponConfig) -> bool:
    """False when the user ordered since the trigger or the cart no longer matches."""
    if user.get("ordered", -1) >= cand["since"]:
        return False
    if cand["rule"] == CART_RECOVERY:
        return bool(user.get("episode") == cand["episode"])
    if cand["rule"] == THRESHOLD_NUDGE:
        return in_band(cart_total(user.get("items", {})), cfg)
    return True


def decide(
    cand: Mapping[str, Any], user: dict[str, Any], now_ms: int, cfg: CouponConfig,
    allow_defer: bool = True,
) -> tuple[str, int | None]:
    """Run the guards at ``now_ms``: ("outbox"|"capped"|"suppressed", None) or ("deferred", at).

    On "outbox" the user's guard counters are updated in place (cap, cooldown).
    """
    if not still_valid(cand, user, cfg):
        return "suppressed", None
    if allow_defer:
        release = quiet_release(now_ms, cfg)
        if release is not None:
            return "deferred", release
    rule = cfg.rules[cand["rule"]]
    last = user.get("last", {})
    same_episode = cand["rule"] == CART_RECOVERY and user.get("last_episode") == cand["episode"]
    if cand["rule"] in last and not same_episode and now_ms < last[cand["rule"]] + rule.cooldown_ms:
        return "capped", None
    day = business_day(now_ms, cfg.zone)
    sent_today = user.get("sent", 0) if user.get("day") == day else 0
    if sent_today >= cfg.daily_cap:
        return "capped", None
    user["day"], user["sent"] = day, sent_today + 1
    user.setdefault("last", {})[cand["rule"]] = now_ms
    if cand["rule"] == CART_RECOVERY:
        user["last_episode"] = cand["episode"]
    return "outbox", None


def view_event(user: dict[str, Any], room: str, etype: str, ts: int, idle_ms: int) -> None:
    """The user's own ``live_join|comment|like|leave`` in ``room``, as the live rooms define
    views (docs/live-and-ops.md): a join opens a view unless one is open (then it is activity,
    the view keeps its first join); comments and likes are activity; a view idle for
    ``idle_ms`` closed at its last activity plus ``idle_ms``; a leave closes the open view."""
    views = user.setdefault("views", {})
    view = views.get(room)
    if view is not None and ts > view[1] + idle_ms:
        _close_view(user, room, view[1] + idle_ms)
        view = None
    if view is None:
        if etype == "live_join":
            views[room] = [ts, ts]
    elif etype == "live_leave":
        _close_view(user, room, ts)
    elif ts > view[1]:
        view[1] = ts
    if not views:
        del user["views"]


def view_end(user: dict[str, Any], room: str, end: int, idle_ms: int) -> int:
    """The room's ``live_end``: closes the user's open view at the end (or its idle time if
    earlier) and returns the watch time of the session it ends (views closed since the room's
    previous end), forgetting it."""
    view = user.get("views", {}).get(room)
    if view is not None:
        _close_view(user, room, min(end, view[1] + idle_ms))
        if not user["views"]:
            del user["views"]
    watch = user.get("watch", {})
    watched = int(watch.pop(room, 0))
    if "watch" in user and not watch:
        del user["watch"]
    return watched


def _close_view(user: dict[str, Any], room: str, at: int) -> None:
    """Close the open view at ``at`` (never before its join), adding to the session's watch."""
    join, _ = user["views"].pop(room)
    watch = user.setdefault("watch", {})
    watch[room] = watch.get(room, 0) + max(0, at - join)
