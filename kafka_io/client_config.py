"""The ``[kafka]`` settings table, handed to every Kafka client shopstream makes.

```toml
[kafka]
security_protocol = "SASL_SSL"          # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
sasl_mechanism = "SCRAM-SHA-512"        # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
sasl_username = "shopstream"
sasl_password = "..."                   # or SHOPSTREAM_KAFKA_SASL_PASSWORD
ssl_cafile = "/etc/kafka/ca.pem"        # ssl_certfile / ssl_keyfile for mutual TLS
replication_factor = 3                  # of the topics shopstream creates
compression = "lz4"                     # none | gzip | lz4 | zstd
idempotent = false                      # true: the broker drops retry duplicates (slower here)
options = { "socket.keepalive.enable" = true }   # any other librdkafka option
```
librdkafka (confluent-kafka: producers, admin, rebuild readers) gets the librdkafka names;
Faust's aiokafka consumer gets the same credentials through Faust's ``broker_credentials``.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shopstream.core.env import KAFKA_SASL_PASSWORD as PASSWORD_ENV
from shopstream.core.errors import ConfigError
from shopstream.core.logs import LIBRDKAFKA_LOGGER
from shopstream.core.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSIONS = ("none", "gzip", "lz4", "zstd")


@dataclass(frozen=True)
class KafkaConfig:
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    replication_factor: int = 1
    #: lz4 by default: measured 4.5x less memory in the embedded broker, consumed as fast.
    compression: str = "lz4"
    #: Off by default: producers then keep one request in flight per broker, so retries never
    #: reorder, and every consumer already drops a retry's duplicate by its key (event_id,
    #: source, push_id, alert_id). On the embedded broker the idempotent producer doubled the
    #: live p99 (docs/performance.md, round three).
    idempotent: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"kafka.{key}: expected a string, got {value!r}")
    return value


def kafka_config(settings: Settings) -> KafkaConfig:
    """The validated ``[kafka]`` table (defaults when absent)."""
    raw = settings.sections.get("kafka", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"kafka: expected a table, got {raw!r}")
    known = {f for f in KafkaConfig.__dataclass_fields__}
    if unknown := set(raw) - known:
        raise ConfigError(f"kafka: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    protocol = _text(raw, "security_protocol") or "PLAINTEXT"
    if protocol not in PROTOCOLS:
        raise ConfigError(f"kafka.security_protocol: expected one of {PROTOCOLS}, got {protocol!r}")
    mechanism = _text(raw, "sasl_mechanism")
    if protocol.startswith("SASL") and mechanism not in MECHANISMS:
        raise ConfigError(f"kafka.sasl_mechanism: expected one of {MECHANISMS} with "
                          f"{protocol}, got {mechanism!r}")
    password = _text(raw, "sasl_password") or os.environ.get(PASSWORD_ENV)
    if protocol.startswith("SASL") and not (_text(raw, "sasl_username") and password):
        raise ConfigError(f"kafka: {protocol} needs sasl_username and sasl_password "
                          f"(or {PASSWORD_ENV})")
    rf = raw.get("replication_factor", 1)
    if type(rf) is not int or not 1 <= rf <= 16:
        raise ConfigError(f"kafka.replication_factor: expected an integer 1..16, got {rf!r}")
    compression = _text(raw, "compression") or "lz4"
    if compression not in COMPRESSIONS:
        raise ConfigError(f"kafka.compression: expected one of {COMPRESSIONS}, got "
                          f"{compression!r}")
    idempotent = raw.get("idempotent", False)
    if type(idempotent) is not bool:
        raise ConfigError(f"kafka.idempotent: expected true or false, got {idempotent!r}")
    options = raw.get("options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"kafka.options: expected a table of librdkafka options, got {options!r}")
    return KafkaConfig(protocol, mechanism, _text(raw, "sasl_username"), password,
                       _text(raw, "ssl_cafile"), _text(raw, "ssl_certfile"),
                       _text(raw, "ssl_keyfile"), rf, compression, idempotent, dict(options))


def librdkafka_config(settings: Settings) -> dict[str, Any]:
    """Connection settings for confluent-kafka clients (producers, admin, consumers).

    librdkafka's log lines go to Python logging (``core.logs.LIBRDKAFKA_LOGGER``), served by
    the client's poll and flush calls, instead of being written to stderr from its threads.
    """
    cfg = kafka_config(settings)
    conf: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers,
                            "security.protocol": cfg.security_protocol,
                            "logger": logging.getLogger(LIBRDKAFKA_LOGGER)}
    pairs = (("sasl.mechanism", cfg.sasl_mechanism), ("sasl.username", cfg.sasl_username),
             ("sasl.password", cfg.sasl_password), ("ssl.ca.location", cfg.ssl_cafile),
             ("ssl.certificate.location", cfg.ssl_certfile),
             ("ssl.key.location", cfg.ssl_keyfile))
    conf.update((k, v) for k, v in pairs if v is not None)
    conf.update(cfg.options)
    return conf


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the same cluster, or None for PLAINTEXT."""
    import faust

    cfg = kafka_config(settings)
    context = None
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=cfg.ssl_cafile)
        if cfg.ssl_certfile:
            context.load_cert_chain(cfg.ssl_certfile, cfg.ssl_keyfile)
    if cfg.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=cfg.sasl_username, password=cfg.sasl_password,
                                     mechanism=cfg.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None
