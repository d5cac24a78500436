"""Every Prometheus metric shopstream exports, built in one place.

Labels are bounded: event types and channels come from closed lists, reasons from an enum;
never a user, order or event id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.events import CHANNELS, EVENT_TYPES

PREFIX = "shopstream"


def bounded(value: object, allowed: frozenset[str], other: str = "other") -> str:
    """Fold values outside a closed list into ``other`` so label sets stay small."""
    return value if isinstance(value, str) and value in allowed else other


KNOWN_TYPES = frozenset(EVENT_TYPES)
KNOWN_CHANNELS = frozenset(CHANNELS)


class Metrics:
    """The worker's and API's metrics, on an injectable registry (tests use their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            f"{PREFIX}_events_total", "Events by outcome in the worker: processed, dead, duplicate",
            ["result"], registry=r,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters_total", "Dead-lettered events by reason", ["reason"], registry=r
        )
        self.events_by_type = Counter(
            f"{PREFIX}_events_by_type_total", "Processed events by type and channel",
            ["type", "channel"], registry=r,
        )
        self.batches = Counter(f"{PREFIX}_batches_total", "Batches applied to Redis", registry=r)
        # Batches take milliseconds; buckets in seconds from 1 ms to 5 s.
        self.batch_seconds = Histogram(
            f"{PREFIX}_batch_seconds", "Time to process and apply one batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.lag_seconds = Histogram(
            f"{PREFIX}_event_to_state_seconds",
            "Event time to state applied in Redis (one event in 16 sampled)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75,
                     1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.rebuilds = Counter(
            f"{PREFIX}_partition_rebuilds_total", "Partition state rebuilds from Kafka", registry=r
        )
        self.stale_fences = Counter(
            f"{PREFIX}_stale_fences_total",
            "Batches refused because another writer moved the fence",
            registry=r,
        )
        # rule and result come from closed lists (agents/coupon_rules.py RULES, RESULTS).
        self.pushes = Counter(
            f"{PREFIX}_pushes_total", "Push decisions and deliveries by rule and result",
            ["rule", "result"], registry=r,
        )
        self.api_events = Counter(
            f"{PREFIX}_api_events_total", "Events received by POST /v1/events by result",
            ["result"], registry=r,
        )
        self.api_requests = Counter(
            f"{PREFIX}_api_requests_total", "HTTP requests by route and status",
            ["route", "status"], registry=r,
        )
        self.funnel_steps = Counter(
            f"{PREFIX}_funnel_step_total",
            "Funnel entries reaching a step, by funnel, step number and entry channel",
            ["funnel", "step", "channel"], registry=r,
        )
        self.funnel_conversion = Gauge(
            f"{PREFIX}_funnel_conversion_ratio",
            "Step conversion (step over previous step) of entries reaching steps in the window",
            ["funnel", "step", "window"], registry=r,
        )
        self.events_late = Counter(
            f"{PREFIX}_events_late_total",
            "Events ignored as later than the allowed lateness, by agent", ["agent"], registry=r,
        )
