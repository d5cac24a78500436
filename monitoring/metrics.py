"""Every Prometheus metric shopstream exports, built in one place.

Labels are bounded: event types and channels come from closed lists, reasons from an enum;
never a user, order or event id.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from shopstream.schemas.events import CHANNELS, EVENT_TYPES

PREFIX = "shopstream"


def bounded(value: object, allowed: frozenset[str], other: str = "other") -> str:
    """Fold values outside a closed list into ``other`` so label sets stay small."""
    return value if isinstance(value, str) and value in allowed else other


KNOWN_TYPES = frozenset(EVENT_TYPES)
KNOWN_CHANNELS = frozenset(CHANNELS)
#: Distinct flash-sale ids used as label values before folding into ``other``.
MAX_SALE_LABELS = 50


class SaleLabels:
    """A sale id (or a campaign) as a label value; past MAX_SALE_LABELS distinct ones,
    ``other``."""

    def __init__(self) -> None:
        self._sales: set[str] = set()

    def __call__(self, sale_id: str) -> str:
        if sale_id in self._sales:
            return sale_id
        if len(self._sales) < MAX_SALE_LABELS:
            self._sales.add(sale_id)
            return sale_id
        return "other"


def _registry(registry: CollectorRegistry | None) -> CollectorRegistry:
    """A registry with the process metrics and ``shopstream_build_info`` every process shows."""
    r = registry or CollectorRegistry()
    ProcessCollector(registry=r)
    PlatformCollector(registry=r)
    # Which build runs, as a labelled constant 1 (joins onto any other series).
    Gauge(f"{PREFIX}_build_info", "shopstream version", ["version"],
          registry=r).labels(version("shopstream")).set(1)
    return r


class ApiMetrics:
    """What the API itself maintains: requests, ingested events, flash-sale claims. State
    gauges come from the workers, which read them from Redis, so none is copied here."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = _registry(registry)
        self.sale_label = SaleLabels()
        self.api_events = Counter(
            f"{PREFIX}_api_events_total", "Events received by POST /v1/events by result",
            ["result"], registry=r,
        )
        self.api_requests = Counter(
            f"{PREFIX}_api_requests_total",
            "HTTP requests by route template and status class (2xx, 4xx, 5xx)",
            ["route", "status"], registry=r,
        )
        self.flash_claims = Counter(
            f"{PREFIX}_flash_sale_claims_total", "Flash-sale claims by result",
            ["sale", "result"], registry=r,
        )
        # A claim is one Lua call: sub-millisecond to a few ms; buckets in seconds.
        self.flash_claim_seconds = Histogram(
            f"{PREFIX}_flash_sale_claim_seconds", "Claim latency inside the API",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )


def _pushes(r: CollectorRegistry) -> Counter:
    # rule and result come from closed lists (agents/coupons/rules.py RULES and RESULTS,
    # agents/customers/config.py RULES).
    return Counter(f"{PREFIX}_pushes_total", "Push decisions and deliveries by rule and result",
                   ["rule", "result"], registry=r)


class RelayMetrics:
    """What the outbox relay process counts: the deliveries (``shopstream_pushes_total``, the
    worker counts the decisions under the same name; queries sum over both)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = _registry(registry)
        self.pushes = _pushes(r)


class Metrics:
    """The worker's metrics, on an injectable registry (tests use their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = _registry(registry)
        self.events = Counter(
            f"{PREFIX}_events_total", "Events by outcome in the worker: processed, dead, duplicate",
            ["result"], registry=r,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters_total", "Dead-lettered events by reason", ["reason"], registry=r
        )
        self.events_by_type = Counter(
            f"{PREFIX}_processed_events_total", "Processed events by type and channel",
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
        self.dedup_ids = Gauge(
            f"{PREFIX}_dedup_ids", "Event ids the worker remembers for deduplication (its "
            "memory grows with them for one horizon, then is flat)", registry=r,
        )
        self.rebuilds = Counter(
            f"{PREFIX}_partition_rebuilds_total", "Partition state rebuilds from Kafka", registry=r
        )
        self.stale_fences = Counter(
            f"{PREFIX}_stale_fences_total",
            "Batches refused because another writer moved the fence",
            registry=r,
        )
        self.pushes = _pushes(r)
        # Flash sales: sale ids are operator-created and few; sale_label() caps them anyway.
        self.sale_label = SaleLabels()
        self.flash_units = Gauge(
            f"{PREFIX}_flash_sale_units", "Units of a flash sale by state",
            ["sale", "state"], registry=r,
        )
        self.flash_transitions = Counter(
            f"{PREFIX}_flash_sale_transitions_total",
            "Reservation transitions applied by the stream side, by result",
            ["result"], registry=r,
        )
        self.flash_unreserved = Counter(
            f"{PREFIX}_flash_sale_unreserved_orders_total",
            "Orders for a flash-sale SKU without a valid reservation", registry=r,
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
        # Riding out faults (streams/resilience.py; reasons from its RETRY_REASONS, tasks
        # from a fixed set of timers, partitions bounded by the topic's partition count).
        self.redis_up = Gauge(f"{PREFIX}_redis_up", "1 while Redis answers, 0 in an outage",
                              registry=r)
        self.batch_retries = Counter(f"{PREFIX}_batch_retries_total",
                                     "Batches tried again, never skipped", ["reason"], registry=r)
        self.task_errors = Counter(f"{PREFIX}_background_errors_total",
                                   "Errors caught in timers (run again)", ["task"], registry=r)
        self.fence_ahead = Gauge(f"{PREFIX}_fence_ahead",
                                 "1: state ahead of the log, refused until `shopstream reset`",
                                 ["partition"], registry=r)
        self.log_mismatch = Gauge(f"{PREFIX}_log_mismatch",
                                  "1: state built from another log (topic id), refused until "
                                  "`shopstream reset`", ["partition"], registry=r)
        self.consumer_lag = Gauge(f"{PREFIX}_consumer_lag",
                                  "Records in the log beyond the applied fence, per partition",
                                  ["topic", "partition"], registry=r)
        self.partition_gaps = Counter(f"{PREFIX}_partition_catch_ups_total",
                                      "Records re-read after Redis lost its newest writes",
                                      registry=r)
        self.events_late = Counter(
            f"{PREFIX}_events_late_total",
            "Events ignored as later than the allowed lateness, by agent", ["agent"], registry=r,
        )

        # The shop's pulse (agents/ops): channel from the closed list, status success|failed.
        self.orders = Counter(f"{PREFIX}_orders_total", "Orders submitted, by channel",
                              ["channel"], registry=r)
        self.paid_gmv = Counter(f"{PREFIX}_paid_gmv_fen_total",
                                "GMV of successful payments in fen, by channel",
                                ["channel"], registry=r)
        self.payments = Counter(f"{PREFIX}_payments_total", "Payments by status and channel",
                                ["status", "channel"], registry=r)
        self.cancellations = Counter(f"{PREFIX}_order_cancellations_total",
                                     "Orders cancelled, by channel", ["channel"], registry=r)
        # Traffic value (agents/traffic): channel from the closed list.
        self.traffic_page_views = Counter(f"{PREFIX}_traffic_page_views_total",
                                          "Page views, by channel", ["channel"], registry=r)
        self.traffic_sessions = Counter(f"{PREFIX}_traffic_sessions_total",
                                        "Sessions started, by the channel of their first event",
                                        ["channel"], registry=r)
        self.anomalies = Counter(f"{PREFIX}_ops_anomalies_total",
                                 "Anomaly episodes raised, by metric (funnel steps as "
                                 "funnel:<name>:<step>)", ["metric"], registry=r)
        # Ad economics (agents/ads): channel from the closed list; campaigns past the first
        # MAX_SALE_LABELS seen by this process fold into other.
        self.campaign_label = SaleLabels()
        self.ad_spend = Counter(f"{PREFIX}_ad_spend_fen_total", "Ad spend in fen",
                                ["channel", "campaign"], registry=r)
        self.ad_clicks = Counter(f"{PREFIX}_ad_clicks_total", "Page views of a campaign",
                                 ["channel", "campaign"], registry=r)
        self.ad_orders = Counter(f"{PREFIX}_ad_attributed_orders_total",
                                 "Orders attributed to a campaign", ["channel", "campaign"],
                                 registry=r)
        self.ad_paid_gmv = Counter(f"{PREFIX}_ad_attributed_paid_gmv_fen_total",
                                   "Paid GMV attributed to a campaign, in fen",
                                   ["channel", "campaign"], registry=r)
        self.ad_alerts = Counter(f"{PREFIX}_ad_roas_alerts_total",
                                 "Campaign hours with ROAS below the floor", ["campaign"],
                                 registry=r)
        self.alerts_relayed = Counter(f"{PREFIX}_ops_alerts_relayed_total",
                                      "Ops alerts to the ops webhook by outcome: sent, retry, "
                                      "failed (refused for good)", ["outcome"], registry=r)
        # Tier names come from ``[[customers.tiers]]``: a few, set by the operator.
        self.customer_tier_changes = Counter(f"{PREFIX}_customer_tier_changes_total",
                                             "Customer tier changes, by the tier entered",
                                             ["to"], registry=r)
        self.stock_alerts = Counter(f"{PREFIX}_stock_alerts_total",
                                    "Stock-health alerts raised, by type (stock_low, stock_out, "
                                    "stock_over, stock_return_rate)", ["type"], registry=r)
        self.stock_skus = Gauge(f"{PREFIX}_stock_skus", "SKUs by stock state as last judged "
                                "(unknown, ok, low, out, over)", ["state"], registry=r)
        # Workers take turns judging: this says how fresh a worker's stock_skus are.
        self.stock_judged_through = Gauge(f"{PREFIX}_stock_judged_through_ms",
                                          "Event time (epoch ms) through which this worker's "
                                          "stock_skus were judged", registry=r)
        # Live rooms: the top rooms by viewers get their own label, the rest's viewers fold
        # into other.
        self.live_viewers = Gauge(f"{PREFIX}_live_room_viewers", "Viewers now, top rooms",
                                  ["room"], registry=r)
        self.live_comments = Gauge(f"{PREFIX}_live_room_comments_per_minute",
                                   "Comments in the last full minute, top rooms", ["room"],
                                   registry=r)
        self.live_gmv = Gauge(f"{PREFIX}_live_room_paid_gmv_fen",
                              "Paid GMV attributed to the room so far, top rooms", ["room"],
                              registry=r)
        self.live_on_air = Gauge(f"{PREFIX}_live_rooms_on_air", "Rooms on air now", registry=r)

    def set_live_rooms(self, top: list[dict[str, Any]], on_air: int, other_viewers: int) -> None:
        """Gauges of the ``top`` rooms (the most watched, read in detail); the viewers of the
        other rooms on air as ``other`` (their comments and GMV are not read: bounded work)."""
        gauges = ((self.live_viewers, "viewers"), (self.live_comments, "comments_per_minute"),
                  (self.live_gmv, "paid_gmv"))
        for gauge, _ in gauges:
            gauge.clear()
        for gauge, name in gauges:
            for room in top:
                gauge.labels(room["room_id"]).set(room[name])
        if on_air > len(top):
            self.live_viewers.labels("other").set(other_viewers)
        self.live_on_air.set(on_air)

    def set_sale_units(self, sale_id: str, available: int, reserved: int, sold: int) -> None:
        label = self.sale_label(sale_id)
        self.flash_units.labels(label, "available").set(available)
        self.flash_units.labels(label, "reserved").set(reserved)
        self.flash_units.labels(label, "sold").set(sold)
