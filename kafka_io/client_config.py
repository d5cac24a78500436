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
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, get_args

import msgspec

from shopstream.core.env import KAFKA_SASL_PASSWORD as PASSWORD_ENV
from shopstream.core.errors import ConfigError
from shopstream.core.logs import LIBRDKAFKA_LOGGER
from shopstream.core.sections import read_section
from shopstream.core.settings import Settings

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Compression = Literal["none", "gzip", "lz4", "zstd"]
PROTOCOLS = get_args(Protocol)
MECHANISMS = get_args(Mechanism)
COMPRESSIONS = get_args(Compression)


def _one_of(choices: tuple[str, ...]) -> msgspec.Meta:
    return msgspec.Meta(extra={"expected": f"one of {choices}"})


@dataclass(frozen=True)
class KafkaConfig:
    """``[kafka]`` of the config file (a dataclass: the password stays out of its repr).

    An empty protocol or compression means the default, an empty password the env variable.
    """

    security_protocol: Annotated[Protocol | Literal[""], _one_of(PROTOCOLS)] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    replication_factor: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    #: lz4 by default: measured 4.5x less memory in the embedded broker, consumed as fast.
    compression: Annotated[Compression | Literal[""], _one_of(COMPRESSIONS)] = "lz4"
    #: Off by default: producers then keep one request in flight per broker, so retries never
    #: reorder, and every consumer already drops a retry's duplicate by its key (event_id,
    #: source, push_id, alert_id). On the embedded broker the idempotent producer doubled the
    #: live p99 (docs/performance.md, round three).
    idempotent: Annotated[bool, msgspec.Meta(extra={"expected": "true or false"})] = False
    options: Annotated[dict[str, Any],
                       msgspec.Meta(extra={"expected": "a table of librdkafka options"})] = field(
        default_factory=dict)


def kafka_config(settings: Settings) -> KafkaConfig:
    """The validated ``[kafka]`` table (defaults when absent)."""
    cfg = read_section(settings.sections, "kafka", KafkaConfig)
    protocol = cfg.security_protocol or "PLAINTEXT"
    mechanism = cfg.sasl_mechanism
    if protocol.startswith("SASL") and mechanism not in MECHANISMS:
        raise ConfigError(f"kafka.sasl_mechanism: expected one of {MECHANISMS} with "
                          f"{protocol}, got {mechanism!r}")
    password = cfg.sasl_password or os.environ.get(PASSWORD_ENV)
    if protocol.startswith("SASL") and not (cfg.sasl_username and password):
        raise ConfigError(f"kafka: {protocol} needs sasl_username and sasl_password "
                          f"(or {PASSWORD_ENV})")
    return replace(cfg, security_protocol=protocol, sasl_password=password,
                   compression=cfg.compression or "lz4")


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
