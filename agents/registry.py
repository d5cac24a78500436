"""The capabilities the worker runs, built from settings (each validates its own section)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shopstream.agents.ads.agent import AdsAgent
from shopstream.agents.ads.rules import parse_config as parse_ads
from shopstream.agents.anomalies.agent import AnomalyJudge
from shopstream.agents.anomalies.rules import parse_config as parse_anomalies
from shopstream.agents.base import Agent
from shopstream.agents.coupons.agent import CouponAgent, coupon_budgets
from shopstream.agents.coupons.rules import parse_config as parse_coupons
from shopstream.agents.customers.agent import CustomersAgent
from shopstream.agents.customers.config import parse_config as parse_customers
from shopstream.agents.event_stats.agent import EventStats
from shopstream.agents.flash_sale.agent import FlashSaleAgent
from shopstream.agents.flash_sale.agent import parse_config as parse_flash_sales
from shopstream.agents.funnel.agent import Funnels
from shopstream.agents.funnel.rules import parse_funnels
from shopstream.agents.group_buys.agent import GroupBuys
from shopstream.agents.group_buys.rules import parse_config as parse_group_buys
from shopstream.agents.lateness import final_clock
from shopstream.agents.live.agent import LiveRooms
from shopstream.agents.live_section import parse_config as parse_live
from shopstream.agents.ops.agent import Pulse
from shopstream.agents.stock.agent import StockHealth
from shopstream.agents.stock.rules import parse_config as parse_stock
from shopstream.agents.traffic.agent import TrafficValue
from shopstream.core.errors import ConfigError
from shopstream.core.settings import Settings
from shopstream.kafka_io.client_config import kafka_config
from shopstream.monitoring.metrics import Metrics, RelayMetrics
from shopstream.sinks.outbox import OutboxRelay, outbox_relay
from shopstream.sinks.redis_state import Redis
from shopstream.sinks.webhook import parse_webhook

#: Every capability, in the order they see each batch.
AGENT_NAMES = ("event_stats", "funnel", "flash_sale", "coupons", "live", "ops", "anomalies",
               "stock", "ads", "traffic", "customers", "group_buys")
#: Capabilities whose pushes go through the push outboxes and their relay.
PUSHING = frozenset({"coupons", "customers", "group_buys"})
#: Earlier names still accepted in ``agents``, so existing settings keep working.
ALIASES = {"inventory": "flash_sale"}


def selected(settings: Settings) -> list[str]:
    """The names in ``settings.agents``, in batch order; ConfigError on unknown names."""
    names = [ALIASES.get(n.strip(), n.strip()) for n in settings.agents.split(",") if n.strip()]
    unknown = sorted(set(names) - set(AGENT_NAMES))
    if unknown or not names:
        raise ConfigError(f"agents: expected names from {', '.join(AGENT_NAMES)}, "
                          f"got {settings.agents!r}")
    return [n for n in AGENT_NAMES if n in names]


def push_relay(settings: Settings, redis: Redis, metrics: Metrics | RelayMetrics
               ) -> OutboxRelay:
    """The one relay of the push outboxes, knowing the budget of every push rule (coupons'
    and the customer loop's): the relay process's, or the worker's inline one."""
    budgets = {**coupon_budgets(parse_coupons(settings.sections, settings.zone)),
               **{n: r.budget
                  for n, r in parse_customers(settings.sections, settings.zone).rules.items()}}
    return outbox_relay(settings, redis, metrics, budgets, final_clock(redis, settings))


def build_agents(settings: Settings, redis: Redis, metrics: Metrics | None = None,
                 relay_inline: bool = True) -> list[Agent[Any, Any]]:
    """The selected agents, in batch order; raises ConfigError on bad sections. With
    ``relay_inline`` False the push outboxes are left to a relay process; else the pushing
    capabilities share one relay, driven by the first of coupons, customers and group buys."""
    names = selected(settings)
    relay = None
    if PUSHING & set(names):
        relay = push_relay(settings, redis, metrics or Metrics())
    build: dict[str, Callable[[], Agent[Any, Any]]] = {
        "event_stats": lambda: EventStats(settings.app_id),
        "funnel": lambda: Funnels(settings.app_id, settings.partitions, settings.sections,
                                  settings.zone, metrics, redis),
        "flash_sale": lambda: FlashSaleAgent(settings, redis, metrics),
        "coupons": lambda: CouponAgent(settings, redis, metrics, relay_inline, relay),
        "live": lambda: LiveRooms(settings, parse_live(settings.sections), redis, metrics),
        "ops": lambda: Pulse(settings, redis, metrics),
        "anomalies": lambda: AnomalyJudge(settings, parse_anomalies(settings.sections), redis,
                                          metrics),
        "stock": lambda: StockHealth(settings, parse_stock(settings.sections), redis, metrics),
        "ads": lambda: AdsAgent(settings, parse_ads(settings.sections), redis, metrics),
        "traffic": lambda: TrafficValue(settings, redis, metrics),
        "customers": lambda: CustomersAgent(settings, redis, metrics,
                                            relay if relay_inline else None,
                                            close_relay="coupons" not in names),
        "group_buys": lambda: GroupBuys(
            settings, redis, metrics, relay if relay_inline else None,
            close_relay=not {"coupons", "customers"} & set(names)),
    }
    return [build[name]() for name in names]


def check_config(settings: Settings) -> None:
    """Validate every capability section without I/O, so a bad file fails before connecting."""
    selected(settings)
    parse_funnels(settings.sections)
    parse_flash_sales(settings.sections)
    parse_coupons(settings.sections, settings.zone)
    parse_live(settings.sections)
    parse_anomalies(settings.sections)
    parse_stock(settings.sections)
    parse_ads(settings.sections)
    parse_group_buys(settings.sections)
    parse_customers(settings.sections, settings.zone)
    parse_webhook(settings.sections)
    parse_webhook(settings.sections, "ops_webhook")
    kafka_config(settings)
