"""The capabilities the worker runs, built from settings (each validates its own section)."""

from __future__ import annotations

from agents.base import Agent
from agents.event_stats import EventStats
from agents.inventory import Inventory
from monitoring.metrics import Metrics
from shopstream.settings import Settings
from sinks.redis_state import Redis


def build_agents(
    settings: Settings, redis: Redis, metrics: Metrics | None = None
) -> list[Agent]:
    """All agents, in the order they see each batch; raises ConfigError on bad sections."""
    return [EventStats(settings.app_id), Inventory(settings, redis, metrics)]
