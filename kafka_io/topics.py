"""Topic names and their creation, shared by infra, producers and the worker."""

from __future__ import annotations

import logging

from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from shopstream.core.settings import Settings
from shopstream.kafka_io.client_config import kafka_config, librdkafka_config
from shopstream.kafka_io.errors import TopicError

log = logging.getLogger(__name__)


def topic_specs(settings: Settings) -> dict[str, int]:
    """Topic name -> partition count. Side topics need far less parallelism than events."""
    return {
        settings.events_topic: settings.partitions,
        settings.dead_letter_topic: 1,
        settings.alerts_topic: 1,
        settings.pushes_topic: settings.partitions,
        settings.customer_events_topic: settings.partitions,
    }


def new_topics(settings: Settings, existing: set[str]) -> list[NewTopic]:
    """The topics to create, with the ``[kafka]`` replication factor."""
    replicas = kafka_config(settings).replication_factor
    return [NewTopic(name, num_partitions=n, replication_factor=replicas)
            for name, n in topic_specs(settings).items() if name not in existing]


def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> None:
    """Create missing topics; existing ones are left as they are."""
    admin = AdminClient(librdkafka_config(settings))
    wanted = new_topics(settings, set(admin.list_topics(timeout=timeout_s).topics))
    if not wanted:
        return
    for name, fut in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            fut.result()
        except Exception as exc:  # noqa: BLE001 - a race with another creator is fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise TopicError(f"creating topic {name} failed: {exc}") from exc
        log.debug("topic ready", extra={"topic": name})


#: What a broker answers for a topic id it does not keep (Kafka before 2.8).
_NO_TOPIC_ID = "AAAAAAAAAAAAAAAAAAAAAA"


def topic_id(settings: Settings, topic: str, timeout_s: float = 10.0,
             admin: AdminClient | None = None) -> str | None:
    """The broker's id of ``topic``: a new one each time the topic is created, so state
    stamped with it knows which log it was built from. None when the broker keeps none."""
    admin = admin or AdminClient(librdkafka_config(settings))
    futures = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s)
    try:
        found = str(futures[topic].result().topic_id)
    except Exception as exc:  # noqa: BLE001 - librdkafka raises KafkaException or its error
        raise TopicError(f"describing topic {topic} failed: {exc}") from exc
    return None if found in ("", "None", _NO_TOPIC_ID) else found
