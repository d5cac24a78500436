"""``[customers]`` and its rule tables, validated into one frozen config (docs/customers.md,
docs/nudges.md). Every duration takes days or minutes (``<name>_days`` or ``<name>_min``,
minutes replacing days when given), so a demo can compress time; a wrong value is refused
with a ConfigError naming its key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import msgspec

from shopstream.agents.push_guards import quiet_hours
from shopstream.core.errors import ConfigError
from shopstream.core.sections import as_table, read_section, read_table
from shopstream.core.timeunits import DAY_MS, MINUTE_MS
from shopstream.schemas.validate import is_id

REVIEW_REMINDER = "review_reminder"
REPURCHASE_REMINDER = "repurchase_reminder"
DORMANT_RECALL = "dormant_recall"
SERVICE_APOLOGY = "service_apology"
REFERRAL_REWARD = "referral_reward"
#: The customer loop's push rules; deferred pushes released together go in this order.
RULES = (REVIEW_REMINDER, REPURCHASE_REMINDER, DORMANT_RECALL, SERVICE_APOLOGY, REFERRAL_REWARD)

NonNegative = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=10**9)]
#: Points per event or per yuan: small enough that no balance nears 2**63.
PointsRate = Annotated[int, msgspec.Meta(ge=0, le=1000)]
Rating = Annotated[int, msgspec.Meta(ge=1, le=5)]


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    min_fen: int


@dataclass(frozen=True, slots=True)
class NudgeRule:
    """Common knobs of a customer-loop push rule."""

    name: str
    enabled: bool
    coupon_fen: int
    #: Tier -> coupon, overriding ``coupon_fen`` for a user in that tier at decision time.
    coupon_by_tier: Mapping[str, int]
    #: Tiers the rule pushes to; empty: every tier.
    tiers: frozenset[str]
    #: Campaign budget in coupons (claimed by the outbox relay), None for unlimited.
    budget: int | None
    cooldown_ms: int

    def coupon(self, tier: str | None) -> int:
        return self.coupon_by_tier.get(tier, self.coupon_fen) if tier else self.coupon_fen


@dataclass(frozen=True, slots=True)
class CustomersConfig:
    tiers: tuple[Tier, ...]
    #: A paid order counts in the spend this long after its payment.
    spend_ms: int
    points_per_yuan: int
    review_points: int
    check_in_points: int
    #: Pushes of the customer loop's rules per user per business day.
    daily_cap: int
    #: ``[coupons] quiet_hours`` as minutes of the local day, [start, end).
    quiet_start_min: int
    quiet_end_min: int
    zone: ZoneInfo
    rules: Mapping[str, NudgeRule]
    review_after_ms: int
    repurchase_lead_ms: int
    #: SKU -> consumption cycle (ms), exact keys.
    cycles: Mapping[str, int]
    #: (prefix, cycle ms) of the keys ending in ``*``, longest prefix first.
    prefixes: tuple[tuple[str, int], ...]
    dormant_ms: int
    dormant_by_tier: Mapping[str, int]
    bad_rating: int
    ack_ms: int

    def tier_of(self, spend_fen: int) -> str:
        """The last band whose ``min_fen`` <= ``spend_fen``."""
        name = self.tiers[0].name
        for t in self.tiers:
            if t.min_fen > spend_fen:
                break
            name = t.name
        return name

    def cycle_ms(self, sku: str) -> int | None:
        """The SKU's consumption cycle: its exact key, else the longest matching prefix."""
        exact = self.cycles.get(sku)
        if exact is not None:
            return exact
        for prefix, ms in self.prefixes:
            if sku.startswith(prefix):
                return ms
        return None

    def dormant_after(self, tier: str) -> int:
        return self.dormant_by_tier.get(tier, self.dormant_ms)


_DEFAULT_TIERS = ({"name": "new", "min_fen": 0}, {"name": "potential", "min_fen": 100_000},
                  {"name": "loyal", "min_fen": 500_001})


class TierTable(msgspec.Struct, frozen=True):
    """One table of ``[[customers.tiers]]``."""

    name: str
    min_fen: NonNegative


class NudgeTable(msgspec.Struct, frozen=True):
    """``[customers.<rule>]``; a rule's own defaults are its subclass's."""

    enabled: Annotated[bool, msgspec.Meta(extra={"expected": "true or false"})] = True
    coupon_fen: NonNegative = 0
    coupon_fen_by_tier: dict[str, NonNegative] = msgspec.field(default_factory=dict)
    tiers: tuple[str, ...] = ()
    budget: NonNegative | None = None
    cooldown_days: NonNegative = 0
    #: Replaces ``cooldown_days`` when given.
    cooldown_min: NonNegative | None = None


N = TypeVar("N", bound=NudgeTable)


class ReviewReminderTable(NudgeTable, frozen=True):
    coupon_fen: NonNegative = 500
    after_days: Positive = 3
    after_min: Positive | None = None


class RepurchaseTable(NudgeTable, frozen=True):
    coupon_fen: NonNegative = 2000
    lead_days: NonNegative = 3
    lead_min: NonNegative | None = None
    #: SKU (or prefix ending in ``*``) -> cycle in days; ``cycles_min`` (minutes) replaces it.
    cycles: dict[str, Positive] = msgspec.field(default_factory=dict)
    cycles_min: dict[str, Positive] | None = None


class DormantTable(NudgeTable, frozen=True):
    days: Positive = 30
    minutes: Positive | None = None
    days_by_tier: dict[str, Positive] = msgspec.field(default_factory=dict)
    minutes_by_tier: dict[str, Positive] | None = None


class ApologyTable(NudgeTable, frozen=True):
    coupon_fen: NonNegative = 1000


class ReferralTable(NudgeTable, frozen=True):
    coupon_fen: NonNegative = 2000


class ServiceTable(msgspec.Struct, frozen=True):
    """``[customers.service]``: a review rated at most ``bad_rating`` opens a task to be
    acknowledged within ``ack_min``."""

    bad_rating: Rating = 2
    ack_min: Positive = 60


class CustomersSection(msgspec.Struct, frozen=True):
    """``[customers]``: the tables stay raw here, each is read by its own Struct."""

    spend_days: Positive = 365
    #: Replaces ``spend_days`` when given.
    spend_min: Positive | None = None
    daily_cap: Positive = 2
    points_per_yuan: PointsRate = 1
    review_points: PointsRate = 10
    check_in_points: PointsRate = 5
    tiers: Annotated[tuple[Any, ...], msgspec.Meta(
        min_length=1, extra={"expected": "a non-empty array of tables"})] = _DEFAULT_TIERS
    review_reminder: Any = msgspec.field(default_factory=dict)
    repurchase_reminder: Any = msgspec.field(default_factory=dict)
    dormant_recall: Any = msgspec.field(default_factory=dict)
    service_apology: Any = msgspec.field(default_factory=dict)
    referral_reward: Any = msgspec.field(default_factory=dict)
    service: Any = msgspec.field(default_factory=dict)


def _duration(days: int, minutes: int | None) -> int:
    return days * DAY_MS if minutes is None else minutes * MINUTE_MS


def _tiers(raw: tuple[Any, ...]) -> tuple[Tier, ...]:
    tiers: list[Tier] = []
    for i, table in enumerate(raw):
        where = f"customers.tiers[{i}]"
        t = read_table(where, as_table(where, table), TierTable)
        if not is_id(t.name):
            raise ConfigError(f"{where}.name: expected a non-empty string of at most 128 bytes, "
                              f"got {t.name!r}")
        if any(t.name == seen.name for seen in tiers):
            raise ConfigError(f"{where}.name: expected a unique name, got {t.name!r} again")
        if not tiers and t.min_fen != 0:
            raise ConfigError(f"{where}.min_fen: expected 0 for the first band, got {t.min_fen}")
        if tiers and t.min_fen <= tiers[-1].min_fen:
            raise ConfigError(f"{where}.min_fen: expected more than {tiers[-1].min_fen} "
                              f"(bands strictly increasing), got {t.min_fen}")
        tiers.append(Tier(t.name, t.min_fen))
    return tuple(tiers)


def _known(where: str, names: Any, tiers: tuple[Tier, ...]) -> None:
    known = [t.name for t in tiers]
    for name in names:
        if name not in known:
            raise ConfigError(f"{where}: unknown tier {name!r}, expected one of {known}")


def _table(sec: CustomersSection, name: str, kind: type[N], tiers: tuple[Tier, ...]
           ) -> tuple[N, NudgeRule]:
    where = f"customers.{name}"
    t = read_table(where, as_table(where, getattr(sec, name)), kind)
    _known(f"{where}.tiers", t.tiers, tiers)
    _known(f"{where}.coupon_fen_by_tier", t.coupon_fen_by_tier, tiers)
    rule = NudgeRule(name, t.enabled, t.coupon_fen, dict(t.coupon_fen_by_tier),
                     frozenset(t.tiers), t.budget, _duration(t.cooldown_days, t.cooldown_min))
    return t, rule


def _cycles(rep: RepurchaseTable, lead_ms: int) -> tuple[dict[str, int], tuple[tuple[str, int],
                                                                            ...]]:
    by_min = rep.cycles_min is not None
    table = rep.cycles_min if rep.cycles_min is not None else rep.cycles
    key = "cycles_min" if by_min else "cycles"
    exact: dict[str, int] = {}
    prefixes: list[tuple[str, int]] = []
    for sku, n in table.items():
        ms = n * (MINUTE_MS if by_min else DAY_MS)
        where = f"customers.{REPURCHASE_REMINDER}.{key}.{sku}"
        if not is_id(sku):
            raise ConfigError(f"{where}: expected a SKU or prefix* of at most 128 bytes")
        if ms <= lead_ms:
            raise ConfigError(f"{where}: expected a cycle longer than the lead "
                              f"({lead_ms // MINUTE_MS} min), got {n}")
        if sku.endswith("*"):
            prefixes.append((sku[:-1], ms))
        else:
            exact[sku] = ms
    prefixes.sort(key=lambda x: (-len(x[0]), x[0]))
    return exact, tuple(prefixes)


def parse_config(sections: Mapping[str, Any], zone: ZoneInfo) -> CustomersConfig:
    """Validate ``[customers]`` (and read ``[coupons] quiet_hours``); defaults when absent,
    ConfigError naming the key when wrong."""
    sec = read_section(sections, "customers", CustomersSection)
    tiers = _tiers(sec.tiers)
    coupons = as_table("coupons", sections.get("coupons", {}))
    raw_quiet = coupons.get("quiet_hours", "22:00-08:00")
    if not isinstance(raw_quiet, str):
        raise ConfigError(f"coupons.quiet_hours: expected 'HH:MM-HH:MM', got {raw_quiet!r}")
    q_start, q_end = quiet_hours(raw_quiet)
    review, review_rule = _table(sec, REVIEW_REMINDER, ReviewReminderTable, tiers)
    rep, rep_rule = _table(sec, REPURCHASE_REMINDER, RepurchaseTable, tiers)
    dormant, dormant_rule = _table(sec, DORMANT_RECALL, DormantTable, tiers)
    _, apology_rule = _table(sec, SERVICE_APOLOGY, ApologyTable, tiers)
    _, referral_rule = _table(sec, REFERRAL_REWARD, ReferralTable, tiers)
    lead_ms = _duration(rep.lead_days, rep.lead_min)
    exact, prefixes = _cycles(rep, lead_ms)
    by_min = dormant.minutes_by_tier is not None
    by_tier = dormant.minutes_by_tier if dormant.minutes_by_tier is not None \
        else dormant.days_by_tier
    _known(f"customers.{DORMANT_RECALL}.{'minutes_by_tier' if by_min else 'days_by_tier'}",
           by_tier, tiers)
    service = read_table("customers.service", as_table("customers.service", sec.service),
                         ServiceTable)
    return CustomersConfig(
        tiers=tiers, spend_ms=_duration(sec.spend_days, sec.spend_min),
        points_per_yuan=sec.points_per_yuan, review_points=sec.review_points,
        check_in_points=sec.check_in_points, daily_cap=sec.daily_cap,
        quiet_start_min=q_start, quiet_end_min=q_end, zone=zone,
        rules={r.name: r for r in (review_rule, rep_rule, dormant_rule, apology_rule,
                                   referral_rule)},
        review_after_ms=_duration(review.after_days, review.after_min),
        repurchase_lead_ms=lead_ms, cycles=exact, prefixes=prefixes,
        dormant_ms=_duration(dormant.days, dormant.minutes),
        dormant_by_tier={t: n * (MINUTE_MS if by_min else DAY_MS) for t, n in by_tier.items()},
        bad_rating=service.bad_rating, ack_ms=service.ack_min * MINUTE_MS,
    )
