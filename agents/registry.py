"""The capabilities the worker runs, built from settings (each validates its own section)."""

from __future__ import annotations

from agents.base import Agent
from agents.coupon_rules import parse_config as parse_coupons
from agents.coupons import CouponAgent
from agents.event_stats import EventStats
from agents.funnel import Funnels
from agents.funnel_rules import parse_funnels
from agents.inventory import Inventory
from agents.inventory import parse_config as parse_flash_sales
from monitoring.metrics import Metrics
from shopstream.settings import Settings
from sinks.redis_state import Redis
from sinks.webhook import parse_webhook


def build_agents(settings: Settings, redis: Redis, metrics: Metrics | None = None) -> list[Agent]:
    """All agents, in the order they see each batch; raises ConfigError on bad sections."""
    return [
        EventStats(settings.app_id),
        Funnels(settings.app_id, settings.partitions, settings.sections, settings.zone, metrics,
                redis),
        Inventory(settings, redis, metrics),
        CouponAgent(settings, redis, metrics),
    ]


def check_config(settings: Settings) -> None:
    """Validate every capability section without I/O, so a bad file fails before connecting."""
    parse_funnels(settings.sections)
    parse_flash_sales(settings.sections)
    parse_coupons(settings.sections, settings.zone)
    parse_webhook(settings.sections)
