"""The ``[kafka]`` table reaches every client: librdkafka's config, Faust's credentials and the
topics' replication factor; bad tables fail at start with the key named."""

from __future__ import annotations

import dataclasses

import faust
import pytest

from shopstream.core.errors import ConfigError
from shopstream.kafka_io.client_config import faust_credentials, librdkafka_config
from shopstream.kafka_io.topics import new_topics

CA = "/etc/ssl/certs/ca-certificates.crt"


def with_kafka(settings, **table):
    return dataclasses.replace(settings, sections={"kafka": table})


def test_sasl_ssl_reaches_librdkafka_and_faust(settings, monkeypatch):
    monkeypatch.setenv("SHOPSTREAM_KAFKA_SASL_PASSWORD", "pw-from-env")
    s = with_kafka(settings, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                   sasl_username="shop", ssl_cafile=CA, options={"socket.keepalive.enable": True})
    conf = librdkafka_config(s)
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "shop" and conf["sasl.password"] == "pw-from-env"
    assert conf["ssl.ca.location"] == CA and conf["socket.keepalive.enable"] is True
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "shop" and creds.password == "pw-from-env"
    assert str(creds.mechanism.value) == "SCRAM-SHA-512" and creds.ssl_context is not None
    assert "pw-from-env" not in repr(s.public_dict())
    assert faust_credentials(with_kafka(settings, security_protocol="SSL",
                                        ssl_cafile=CA)).__class__ is faust.SSLCredentials
    assert faust_credentials(settings) is None


@pytest.mark.parametrize(("table", "message"), [
    ({"security_protocol": "SASL_SSL"}, "kafka.sasl_mechanism"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}, "needs sasl_username"),
    ({"replication_factor": 0}, "kafka.replication_factor"),
    ({"compression": "brotli"}, "kafka.compression"),
    ({"idempotent": "yes"}, "kafka.idempotent"),
    ({"bootstrap": "x"}, "unknown keys"),
])
def test_bad_kafka_tables_name_the_key(settings, table, message):
    with pytest.raises(ConfigError, match=message):
        librdkafka_config(with_kafka(settings, **table))


def test_producers_keep_order_without_idempotence_by_default(settings):
    """Without the idempotent producer a retry could reorder records: one request in flight
    per broker keeps them in order (duplicates are dropped by the consumers' keys)."""
    from shopstream.kafka_io.producer import producer_config

    plain = producer_config(settings)
    assert plain["enable.idempotence"] is False
    assert plain["max.in.flight.requests.per.connection"] == 1
    strict = producer_config(dataclasses.replace(
        settings, sections={"kafka": {"idempotent": True}}))
    assert strict["enable.idempotence"] is True
    assert "max.in.flight.requests.per.connection" not in strict


def test_topics_take_the_replication_factor(settings):
    topics = new_topics(with_kafka(settings, replication_factor=3), existing=set())
    assert {t.topic for t in topics} == {settings.events_topic, settings.dead_letter_topic,
                                         settings.alerts_topic, settings.pushes_topic,
                                         settings.customer_events_topic}
    assert {t.replication_factor for t in topics} == {3}
    assert {t.replication_factor for t in new_topics(settings, existing=set())} == {1}


PROBE = """
import sys
import time
from shopstream.core import logs
from shopstream.core.settings import load_settings
from shopstream.infra import start_broker, stop
from shopstream.kafka_io.producer import RecordProducer
from shopstream.kafka_io.topics import ensure_topics

logs.setup(sys.argv[1])
proc, url = start_broker()
s = load_settings(env={}, broker=url, events_topic="probe", partitions=1)
ensure_topics(s)
producer = RecordProducer(s)
producer.produce("probe", b"x")
producer.flush()
stop(proc)
for _ in range(20):
    producer.flush(0.1)
    time.sleep(0.1)
"""


@pytest.mark.integration
@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_librdkafka_logs_go_through_python_logging_quietly(level, tmp_path):
    """A broker that goes away under a client: no raw librdkafka lines on stderr; its log
    lines reach Python logging (shown as JSON at DEBUG)."""
    import json
    import subprocess
    import sys

    from tests.support import ROOT

    out = subprocess.run([sys.executable, "-c", PROBE, level], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    raw = [ln for ln in out.stderr.splitlines() if ln.startswith("%")]
    assert raw == []
    lost = [json.loads(ln) for ln in out.stderr.splitlines()
            if ln.startswith("{") and ("Connect to" in ln or "Disconnected" in ln)]
    if level == "INFO":
        assert lost == []
    else:
        assert lost and {r["logger"] for r in lost} == {"shopstream.librdkafka"}
