"""The one way shopstream builds a confluent-kafka consumer (relay, rebuild readers, tail, the
pipeline view): the cluster's connection settings, the group named after the app, then the
caller's own options.

The Faust workers' consumers are aiokafka's, configured through Faust (streams/app.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer

from shopstream.core.settings import Settings
from shopstream.kafka_io.client_config import librdkafka_config


def make_consumer(settings: Settings, group: str, options: Mapping[str, Any]) -> Consumer:
    """A consumer in group ``{app_id}-{group}`` with ``librdkafka_config`` and then ``options``
    (librdkafka names: auto commit, offset reset, partition EOF...) applied."""
    return Consumer({**librdkafka_config(settings), "group.id": f"{settings.app_id}-{group}",
                     **options})
