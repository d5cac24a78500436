"""The Faust worker: one agent takes batches of envelope records and hands them to the loop.

Faust is the consumer-group and lifecycle layer here; state is Redis (see sinks/), not Faust
tables, which failed recovery on the embedded broker and replay changelogs slowly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from prometheus_client import generate_latest
from redis.exceptions import RedisError

from shopstream.agents.registry import build_agents
from shopstream.core.settings import Settings
from shopstream.kafka_io.client_config import faust_credentials
from shopstream.kafka_io.producer import RecordProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.dead_letters import DeadLetterSink
from shopstream.sinks.redis_state import RedisState, answers, make_redis
from shopstream.sinks.webhook import parse_webhook
from shopstream.streams.alert_relay import AlertRelay
from shopstream.streams.batch import BatchProcessor
from shopstream.streams.errors import RedisUnavailable
from shopstream.streams.records import Record, split_by_bytes
from shopstream.streams.resilience import RedisHealth, guarded, until_applied
from shopstream.streams.take import take_due

log = logging.getLogger(__name__)

#: Exit status of a worker that gave up waiting for Redis (its supervisor restarts it).
EXIT_REDIS_UNAVAILABLE = 75


#: Longest time the broker may hold a fetch with no new data. Faust hard-codes 1500 ms, which
#: the embedded broker spends in full on quiet partitions, adding up to 1.5 s of latency.
FETCH_MAX_WAIT_MS = 20


def _shorten_fetch_wait() -> None:
    """Make Faust's aiokafka consumers ask for short fetch waits (Faust offers no setting)."""
    module = faust_aiokafka.aiokafka
    original = module.AIOKafkaConsumer
    if getattr(original, "_shopstream_patched", False):
        return

    class Consumer(original):  # type: ignore[misc,valid-type]
        _shopstream_patched = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["fetch_max_wait_ms"] = FETCH_MAX_WAIT_MS
            super().__init__(*args, **kwargs)

    module.AIOKafkaConsumer = Consumer


def record_ms(timestamp_s: float | None) -> int | None:
    """Faust's record timestamp (seconds, from Kafka's milliseconds) as epoch ms."""
    return None if timestamp_s is None else round(timestamp_s * 1000)


def create_app(settings: Settings, metrics: Metrics | None = None) -> faust.App:
    """A Faust app wired to the batch loop; ``app.main()`` or a Worker runs it."""
    metrics = metrics or Metrics()
    _shorten_fetch_wait()
    # Faust's data dir (empty with memory tables) goes under the state dir, not the working one;
    # Faust creates only its last level and reads braces in it as a template.
    datadir = Path(settings.state_dir) / "faust" / settings.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        datadir=str(datadir).replace("{", "{{").replace("}", "}}"),
        broker=settings.broker,
        broker_credentials=faust_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=True,
        web_port=settings.worker_web_port,
        web_bind=settings.worker_web_host,
        web_host=settings.worker_web_host,
        # Measured: a group join takes ~23 s with default timeouts on the embedded broker, ~3 s
        # with these.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=30.0,
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        # Records waiting for the agent; with envelopes of hundreds of events each, Faust's
        # default (4096) held ~600 MB of backlog in the worker.
        stream_buffer_maxsize=2 * settings.batch_max_records,
        broker_commit_interval=1.0,
        store="memory://",
        table_cleanup_interval=3600.0,
    )
    topic = app.topic(
        settings.events_topic, value_type=bytes, value_serializer="raw",
        partitions=settings.partitions, internal=False,
    )
    redis = make_redis(settings)
    state = RedisState(redis, settings.app_id, settings.events_topic)
    agents = build_agents(settings, redis, metrics, relay_inline=settings.relay == "inline")
    dlq = DeadLetterSink(RecordProducer(settings), settings.dead_letter_topic)
    processor = BatchProcessor(settings, state, agents, dlq, metrics)
    app.shopstream_processor = processor  # type: ignore[attr-defined]
    health = RedisHealth(metrics, settings.redis_outage_give_up_s)

    def log_end(partition: int) -> int | None:
        end = app.consumer.highwater(TP(settings.events_topic, partition))
        return int(end) if end is not None and end >= 0 else None

    processor.log_end = log_end

    @app.agent(topic, concurrency=1)
    async def events(stream: Any) -> Any:
        async for batch in take_due(stream, settings.batch_max_records, settings.batch_within_s):
            records = [
                Record(ev.message.partition, ev.message.offset, ev.message.value,
                       record_ms(ev.message.timestamp)) for ev in batch
            ]
            for run in split_by_bytes(records, settings.batch_max_bytes):
                try:
                    await until_applied(partial(processor.process, run), health, metrics)
                except RedisUnavailable as exc:
                    log.error("worker exiting: %s", exc)
                    os._exit(EXIT_REDIS_UNAVAILABLE)
            yield len(records)

    @app.timer(1.0)
    async def tick() -> None:
        await guarded("tick", lambda: processor.tick(int(time.time() * 1000)), metrics)

    ops_hook = parse_webhook(settings.sections, "ops_webhook")
    if ops_hook is not None:
        relay = AlertRelay(settings, ops_hook, metrics)

        @app.timer(1.0)
        async def relay_alerts() -> None:
            await guarded("alert_relay", relay.tick, metrics)

    closers = [close for agent in agents if (close := getattr(agent, "close", None))]

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust's signal stubs
    async def finish_in_flight(app: faust.App, **_: Any) -> None:
        """Graceful stop, once the consumer has stopped: what agents have in flight (webhook
        requests) finishes within their grace and its outcome is recorded before the exit."""
        await asyncio.gather(*(close() for close in closers))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust's signal stubs
    async def on_revoked(app: faust.App, revoked: set[TP], **_: Any) -> None:
        processor.forget([tp.partition for tp in revoked if tp.topic == settings.events_topic])

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        body = generate_latest(metrics.registry)
        return web.bytes(body, content_type="text/plain; version=0.0.4")

    @app.page("/livez")
    async def livez(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        """Ready when Redis answers, this worker owns partitions of the events topic and none
        of them is refused (state of another log: `shopstream reset --yes`)."""
        owned = sorted(
            tp.partition for tp in app.consumer.assignment() if tp.topic == settings.events_topic
        )
        refused = {str(p): why for p, why in processor.refusals().items() if p in owned}
        checks = {"redis": health.down_since is None and await answers(redis),
                  "partitions": bool(owned), "state_matches_log": not refused}
        ready = all(checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks,
                                "partitions": owned}
        if refused:
            body |= {"refused": refused, "remedy": "shopstream reset --yes"}
        return web.json(body, status=200 if ready else 503)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        try:
            await redis.ping()
        except RedisError as exc:
            # Like the API's read routes: JSON 503 with Retry-After, never a bare 500.
            return web.json({"status": "redis unavailable", "error": type(exc).__name__},
                            status=503, headers={"Retry-After": "5"})
        assigned = sorted(
            tp.partition for tp in app.consumer.assignment() if tp.topic == settings.events_topic
        )
        return web.json({"status": "ok", "partitions": assigned})

    return app
