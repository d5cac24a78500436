"""Ops alerts to people: every record of the ops-alerts topic (flash sale sold out / low
stock, anomalies, campaign hours below the ROAS floor) POSTed to ``[ops_webhook]``, signed
like pushes (``sinks.webhook``).

At least once and in order: a record's offset is committed only after the receiver answered
2xx (or refused it for good: a 4xx other than 408/429, logged and counted); a transient
failure holds the record and tries it again after a growing delay, so an outage of the
receiver loses nothing. The ``webhook-id`` is the alert's ``alert_id``, stable across repeats,
for the receiver to deduplicate. One consumer group per app id: the topic's single partition
is relayed by one worker at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from confluent_kafka import Message

from shopstream.core import codec
from shopstream.core.settings import Settings
from shopstream.kafka_io.consumer import make_consumer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.webhook import WebhookConfig, WebhookSender

log = logging.getLogger(__name__)

#: Records relayed in one tick at most (the worker's timer calls ``tick`` every second).
MAX_PER_TICK = 200


def alert_id_of(msg: Message) -> str:
    """The alert's own id, or the record's position when the record has none."""
    try:
        doc = codec.loads(msg.value() or b"")
    except codec.DecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("alert_id"), str):
        return str(doc["alert_id"])
    return f"{msg.topic()}-{msg.partition()}-{msg.offset()}"


class AlertRelay:
    def __init__(self, settings: Settings, cfg: WebhookConfig, metrics: Metrics) -> None:
        self.settings = settings
        self.cfg = cfg
        self.metrics = metrics
        self.sender = WebhookSender(cfg)
        self._consumer: Any = None
        self._held: Message | None = None
        self._attempts = 0
        self._not_before = 0.0

    def _consume(self) -> Any:
        if self._consumer is None:
            self._consumer = make_consumer(self.settings, "alert-relay", {
                "enable.auto.commit": False, "auto.offset.reset": "earliest",
                # A relay that died is replaced within seconds, as the workers are.
                "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
            self._consumer.subscribe([self.settings.alerts_topic])
        return self._consumer

    async def tick(self) -> None:
        """Relay what is waiting, up to MAX_PER_TICK records."""
        if time.monotonic() < self._not_before:
            return
        consumer = self._consume()
        settled = 0
        while settled < MAX_PER_TICK:
            msg = self._held or await asyncio.to_thread(consumer.poll, 0.1)
            if msg is None:
                break
            if msg.error():
                log.warning("ops alert relay: %s", msg.error())
                break
            alert_id = alert_id_of(msg)
            answer = await self.sender.deliver(alert_id, msg.value() or b"")
            if answer.outcome == "retry":
                self._held = msg
                self._attempts += 1
                self._not_before = time.monotonic() + self.cfg.delay_s(self._attempts,
                                                                       answer.retry_after_s)
                self.metrics.alerts_relayed.labels("retry").inc()
                break
            if answer.outcome == "failed":
                log.error("ops alert refused by the webhook for good",
                          extra={"alert_id": alert_id, "reason": answer.reason})
            self.metrics.alerts_relayed.labels(answer.outcome).inc()
            await asyncio.to_thread(consumer.commit, message=msg, asynchronous=False)
            self._held, self._attempts = None, 0
            settled += 1

    async def close(self) -> None:
        await self.sender.close()
        if self._consumer is not None:
            self._consumer.close()
