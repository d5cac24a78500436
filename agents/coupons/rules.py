"""Coupon rules and guards as plain functions, plus validation of their TOML config.

A *candidate* is a push a rule wants to make; ``decide`` runs the guards on it against the
user's state at an event-time instant and says what happens: outbox, deferred, capped or
suppressed. No I/O here, so the rules are testable alone and the agent stays thin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shopstream.agents.live_section import parse_config as parse_live_config
from shopstream.core.errors import ConfigError
from shopstream.core.timeunits import DAY_MS, MINUTE_MS

CART_RECOVERY = "cart_recovery"
THRESHOLD_NUDGE = "threshold_nudge"
NEW_USER = "new_user"
LIVE_FOLLOWUP = "live_followup"
RULES = (CART_RECOVERY, THRESHOLD_NUDGE, NEW_USER, LIVE_FOLLOWUP)
RESULTS = ("sent", "capped", "deferred", "suppressed", "budget_exhausted", "failed")


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


def _int(table: Mapping[str, Any], where: str, key: str, default: int, low: int = 0) -> int:
    raw = table.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < low:
        raise ConfigError(f"{where}.{key}: expected an integer >= {low}, got {raw!r}")
    return raw


def _table(raw: Any, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table, got {raw!r}")
    return raw


def _hhmm(raw: Any, where: str) -> int:
    try:
        hh, mm = str(raw).split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ConfigError(f"{where}: expected HH:MM, got {raw!r}") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ConfigError(f"{where}: expected HH:MM, got {raw!r}")
    return h * 60 + m


_RULE_DEFAULTS: dict[str, tuple[int, int]] = {
    # rule: (coupon fen, cooldown days); DOMAIN: 10-yuan new-user coupon, 7-day re-entry cap.
    CART_RECOVERY: (0, 7),
    THRESHOLD_NUDGE: (2000, 7),
    NEW_USER: (1000, 0),
    LIVE_FOLLOWUP: (500, 1),
}
_RULE_KEYS = {"enabled", "coupon_fen", "budget", "cooldown_days", "cooldown_min"}
_EXTRA_KEYS = {
    THRESHOLD_NUDGE: {"threshold_fen", "band_fen"},
    LIVE_FOLLOWUP: {"min_watch_min", "within_min"},
}


def _rule(name: str, raw: Any) -> Rule:
    where = f"coupons.{name}"
    t = _table(raw, where)
    unknown = set(t) - _RULE_KEYS - _EXTRA_KEYS.get(name, set())
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    enabled = t.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled: expected true or false, got {enabled!r}")
    coupon, cooldown_days = _RULE_DEFAULTS[name]
    budget = _int(t, where, "budget", 0) if "budget" in t else None
    cooldown = _int(t, where, "cooldown_days", cooldown_days) * DAY_MS
    if "cooldown_min" in t:
        cooldown = _int(t, where, "cooldown_min", 0) * MINUTE_MS
    return Rule(name, enabled, _int(t, where, "coupon_fen", coupon), budget, cooldown)


def parse_config(sections: Mapping[str, Any], zone: ZoneInfo) -> CouponConfig:
    """Validate ``[cart]`` and ``[coupons]``; defaults when absent, ConfigError when wrong."""
    cart = _table(sections.get("cart"), "cart")
    raw_steps = cart.get("steps", [{"after_min": 60}, {"after_min": 1440, "coupon_fen": 1000},
                                   {"after_min": 4320}])
    if not isinstance(raw_steps, list | tuple) or not raw_steps:
        raise ConfigError(f"cart.steps: expected a non-empty array of tables, got {raw_steps!r}")
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps):
        st = _table(raw, f"cart.steps[{i}]")
        after = _int(st, f"cart.steps[{i}]", "after_min", -1, low=1)
        if steps and after * MINUTE_MS <= steps[-1].after_ms:
            raise ConfigError(f"cart.steps[{i}].after_min: expected increasing delays, got {after}")
        steps.append(Step(after * MINUTE_MS, _int(st, f"cart.steps[{i}]", "coupon_fen", 0)))

    co = _table(sections.get("coupons"), "coupons")
    unknown = set(co) - set(RULES) - {"daily_cap", "quiet_hours"}
    if unknown:
        raise ConfigError(f"coupons: unknown keys {sorted(unknown)}")
    quiet = co.get("quiet_hours", "22:00-08:00")
    if not isinstance(quiet, str) or quiet.count("-") != 1:
        raise ConfigError(f"coupons.quiet_hours: expected 'HH:MM-HH:MM', got {quiet!r}")
    q_start, q_end = (_hhmm(x, "coupons.quiet_hours") for x in quiet.split("-"))
    rules = {name: _rule(name, co.get(name)) for name in RULES}
    thr = _table(co.get(THRESHOLD_NUDGE), f"coupons.{THRESHOLD_NUDGE}")
    live = _table(co.get(LIVE_FOLLOWUP), f"coupons.{LIVE_FOLLOWUP}")
    threshold = _int(thr, f"coupons.{THRESHOLD_NUDGE}", "threshold_fen", 19_900, low=1)
    band = _int(thr, f"coupons.{THRESHOLD_NUDGE}", "band_fen", 3_000, low=1)
    if band > threshold:
        raise ConfigError(
            f"coupons.{THRESHOLD_NUDGE}.band_fen: expected <= threshold_fen, got {band}")
    return CouponConfig(
        steps=tuple(steps), rules=rules,
        daily_cap=_int(co, "coupons", "daily_cap", 2, low=1),
        quiet_start_min=q_start, quiet_end_min=q_end,
        threshold_fen=threshold, band_fen=band,
        min_watch_ms=_int(live, f"coupons.{LIVE_FOLLOWUP}", "min_watch_min", 10) * MINUTE_MS,
        within_ms=_int(live, f"coupons.{LIVE_FOLLOWUP}", "within_min", 30, low=1) * MINUTE_MS,
        zone=zone,
        idle_ms=parse_live_config(sections).idle_ms,
    )


def push_id(rule: str, user: str, trigger_ms: int, step: int) -> str:
    """Deterministic id: the same trigger yields the same id in a replay or after a crash."""
    return hashlib.sha1(f"{rule}|{user}|{trigger_ms}|{step}".encode()).hexdigest()[:24]  # noqa: S324


def business_day(ts_ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, zone).date().isoformat()


def quiet_release(ts_ms: int, cfg: CouponConfig) -> int | None:
    """Start of the next allowed minute if ``ts_ms`` is in quiet hours, else None."""
    local = datetime.fromtimestamp(ts_ms / 1000, cfg.zone)
    minute = local.hour * 60 + local.minute
    s, e = cfg.quiet_start_min, cfg.quiet_end_min
    inside = (s <= minute < e) if s < e else (minute >= s or minute < e)
    if not inside or s == e:
        return None
    day = local.date() if minute < e else local.date() + timedelta(days=1)
    release = datetime(day.year, day.month, day.day, e // 60, e % 60, tzinfo=cfg.zone)
    return int(release.timestamp() * 1000)


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
