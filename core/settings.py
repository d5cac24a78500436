"""One frozen settings object: defaults < embedded-infra state file < TOML file < env vars.

Each field's annotation is its rule: a type with msgspec ``Meta`` bounds or pattern, read and
checked by msgspec (core/settings_check.py). Validated whenever one is made (``load_settings``,
or a copy by ``dataclasses.replace``); every error names the key, what was expected and what was
found. Immutable all the way down: the TOML tables in ``sections`` are read-only mappings and
tuples. A dataclass rather than a msgspec Struct so that ``dataclasses.replace`` makes the
validated copies tests and tools rely on; msgspec reads dataclasses' annotations all the same.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from msgspec import Meta

from shopstream.core.env import CONFIG_FILE, ENV_FIELDS
from shopstream.core.errors import ConfigError
from shopstream.core.settings_check import checked, loose

#: The admin token of a laptop demo; refused off loopback (shopstream/http_auth.py).
DEMO_ADMIN_TOKEN = "change-me"  # noqa: S105 - a documented placeholder, not a secret
#: File the embedded infra writes so that other commands on the same checkout find it.
INFRA_STATE_FILE = "infra.json"

AtLeastOne = Annotated[int, Meta(ge=1)]
Port = Annotated[int, Meta(ge=0, le=65535)]
#: A wait or timeout in seconds: above zero, and so never NaN.
Seconds = Annotated[float, Meta(gt=0)]
#: An Authorization header loses surrounding spaces on the way: such a key never matches.
Key = Annotated[str, Meta(pattern=r"^\S(?:[\s\S]*\S)?\Z", extra={
    "expected": "a key without surrounding spaces (or unset)",
    "got": "a blank or space-padded one"})]
BrokerUrl = Annotated[str, Meta(pattern=r"^[^,]*://[^,]*(?:,[^,]*://[^,]*)*\Z",
                                extra={"expected": "kafka://host:port[,...]"})]
RedisUrl = Annotated[str, Meta(pattern=r"^(?:redis|rediss|unix)://",
                               extra={"expected": "redis://host:port/db"})]
RelayMode = Annotated[str, Meta(pattern=r"^(?:process|inline)\Z",
                                extra={"expected": "process|inline"})]
LogLevel = Annotated[str, Meta(pattern=r"(?i)^(?:DEBUG|INFO|WARNING|ERROR)\Z",
                               extra={"expected": "DEBUG|INFO|WARNING|ERROR"})]


@dataclass(frozen=True)
class Settings:
    """Effective settings of one shopstream process."""

    #: Kafka bootstrap URL(s), e.g. ``kafka://h1:9092,h2:9092``; None means "use embedded infra".
    broker: BrokerUrl | None = None
    #: Redis URL, e.g. ``redis://127.0.0.1:6379/0``; None means "use embedded infra".
    redis_url: RedisUrl | None = None
    #: Connect with the Redis Cluster client.
    redis_cluster: bool = False
    #: Faust app id, also the Kafka consumer group and the prefix of fence keys.
    app_id: str = "shopstream"
    #: Partitions of the events topic; also how many state shards the API sums over.
    partitions: AtLeastOne = 8
    events_topic: str = "shopstream-events"
    dead_letter_topic: str = "shopstream-dead-letters"
    alerts_topic: str = "ops-alerts"
    pushes_topic: str = "pushes"
    #: What the customer loop tells the rest of the shop: tier changes, completed group buys.
    customer_events_topic: str = "customer-events"
    #: Push results are kept per business day (``push:results``); the previous day's stay
    #: readable this long after the day turns, then expire.
    push_results_keep_s: Annotated[int, Meta(gt=0)] = 86_400
    #: Capabilities this worker runs, comma-separated, from event_stats, funnel, inventory,
    #: coupons, live, ops, anomalies, and the money view's traffic, ads, stock (opt-in, not in
    #: the default: their cost is in docs/performance.md; checked by agents/registry.py). A
    #: deployment may split them over consumer groups (one app_id each) to scale them apart.
    agents: str = "event_stats,funnel,inventory,coupons,live,ops,anomalies"
    #: Kafka records per batch (each record may carry many events).
    batch_max_records: AtLeastOne = 500
    #: Record bytes handed to the batch loop at once: bounds the events decoded together (and
    #: so memory) when records are large envelopes; 2 MiB is ~7,000 typical events.
    batch_max_bytes: AtLeastOne = 2_097_152
    #: Longest a record waits in the buffer for its batch to fill (streams/take.py).
    batch_within_s: Seconds = 0.05
    #: Event-time horizon within which a repeated event_id counts as a duplicate.
    dedup_horizon_ms: Annotated[int, Meta(ge=0, lt=2**31, extra={"note": "24.8 days"})] = 600_000
    #: Hard cap on remembered event ids per partition, so memory stays bounded at any rate.
    dedup_max_ids: AtLeastOne = 5_000_000
    #: Larger Kafka record values are dead-lettered whole.
    max_record_bytes: Annotated[int, Meta(ge=1024)] = 1_048_576
    #: An event stamped more than this ahead of the clock is refused (API) or dead-lettered
    #: ``future_ts`` (worker), so no event can move a watermark into the future; 0 turns the
    #: bound off (a backtest of a log stamped in the future).
    max_future_ms: Annotated[int, Meta(ge=0, extra={"note": "0: off"})] = 300_000
    #: Time zone of the business day.
    timezone: str = "Asia/Shanghai"
    api_host: str = "127.0.0.1"
    api_port: Port = 8080
    worker_web_port: Port = 6066
    #: Where the worker serves /metrics and probes; 0.0.0.0 in containers for Prometheus.
    worker_web_host: str = "127.0.0.1"
    #: Where the coupons' outbox relay runs: ``process``, a child of each worker (its own
    #: Redis pool, producer and webhook sender, off the batch loop), or ``inline``, a task on
    #: the worker's batch loop (docs/cart-recovery.md).
    relay: RelayMode = "process"
    #: Port of the relay process's /metrics (on ``worker_web_host``); 0: a free one.
    relay_web_port: Port = 6067
    #: Where the embedded infra keeps its runtime files.
    state_dir: str = ".shopstream"
    log_level: LogLevel = "INFO"
    #: Token for admin routes; hidden in repr.
    admin_token: Key = field(default=DEMO_ADMIN_TOKEN, repr=False)
    #: Key for POST /v1/events and claims, and for the GET routes; None: open (loopback only).
    ingest_key: Key | None = field(default=None, repr=False)
    read_key: Key | None = field(default=None, repr=False)
    #: Socket and connect timeout of every Redis call: a hung Redis is an outage, not a hang.
    redis_timeout_s: Seconds = 5.0
    #: A worker that cannot reach Redis for this long exits (non-zero) for its supervisor.
    redis_outage_give_up_s: Seconds = 120.0
    #: Raw TOML tables for capability modules (funnels, flash sales, coupons), validated by them.
    sections: Mapping[str, Any] = field(default_factory=dict)
    #: Longest wait for the broker to acknowledge produced records (workers, tools).
    produce_timeout_s: Seconds = 30.0
    #: Same for ``POST /v1/events``: a client waits at most this long before a 503.
    api_produce_timeout_s: Seconds = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sections", _freeze(dict(self.sections)))
        for name, annotation in _FIELD_TYPES.items():
            object.__setattr__(self, name, checked(name, getattr(self, name), annotation))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"timezone: expected an IANA zone name, got {self.timezone!r}") from None

    @property
    def bootstrap_servers(self) -> str:
        """Broker list in the ``host:port,host:port`` form Kafka clients take."""
        if not self.broker:
            raise ConfigError("broker: expected a Kafka URL, got nothing (run `shopstream infra`)")
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(","))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def public_dict(self) -> dict[str, Any]:
        """Settings as printed by ``shopstream config``; secrets masked."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in SECRET_FIELDS:
            if out[name] is not None:
                out[name] = MASK
        out["redis_url"] = mask_url(self.redis_url)
        out["broker"] = mask_url(self.broker)
        out["sections"] = _masked(_thaw(self.sections))
        return out


#: Settings fields that are secrets: never printed or logged.
SECRET_FIELDS = ("admin_token", "ingest_key", "read_key")
#: Keys inside TOML tables whose values are secrets (``[webhook] secret``, ...).
SECRET_KEYS = frozenset({"secret", "password", "sasl_password", "token"})
MASK = "***"


def mask_url(url: str | None) -> str | None:
    """The URL with any password replaced by ``***`` (``redis://:pw@h`` -> ``redis://:***@h``)."""
    if not url:
        return url
    return ",".join(_mask_one(part) for part in url.split(","))


def _mask_one(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':' if colon else ''}{MASK if colon else ''}@{host}"


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if k in SECRET_KEYS else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _freeze(value: Any) -> Any:
    """Read-only copy of a TOML value: tables become mapping proxies, arrays tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Plain dicts and lists again, for printing."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


#: Every field but the TOML tables, with its annotation: the rule its values are held to.
_FIELD_TYPES: dict[str, Any] = {
    name: annotation for name, annotation in get_type_hints(Settings, include_extras=True).items()
    if name != "sections"
}


def infra_state_path(state_dir: str) -> Path:
    return Path(state_dir) / INFRA_STATE_FILE


def running_infra(state_dir: str) -> dict[str, Any]:
    """What a running ``shopstream infra``/``demo`` wrote in ``state_dir`` (broker, redis_url,
    pids); empty when none runs there (no file, or one of its processes is gone)."""
    try:
        state = orjson.loads(infra_state_path(state_dir).read_bytes())
        pids = [int(pid) for pid in state.get("pids", [])]
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
    for pid in pids:
        try:
            os.kill(pid, 0)
        except OSError:
            return {}
    return {**state, "pids": pids}


def _read_infra_state(state_dir: str) -> dict[str, Any]:
    """URLs written by a running ``shopstream infra``; empty when none runs."""
    state = running_infra(state_dir)
    return {"broker": state.get("broker"), "redis_url": state.get("redis_url")} if state else {}


def load_settings(
    env: Mapping[str, str] | None = None,
    config_path: str | None = None,
    **overrides: Any,
) -> Settings:
    """Build and validate the settings; raises ConfigError with the offending key."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sections: dict[str, Any] = {}

    path = config_path or env.get(CONFIG_FILE)
    if path:
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{CONFIG_FILE}: cannot read {path!r}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{CONFIG_FILE}: {path!r} is not valid TOML: {exc}") from exc
        for key, raw in doc.items():
            if isinstance(raw, dict | list) and key not in _FIELD_TYPES:
                sections[key] = raw
            elif key in _FIELD_TYPES:
                values[key] = loose(key, raw, _FIELD_TYPES[key])
            else:
                raise ConfigError(f"{path}: unknown key {key!r}")

    for var, name in ENV_FIELDS.items():
        if var in env and env[var] != "":
            values[name] = loose(var, env[var], _FIELD_TYPES[name])
    for name, raw in overrides.items():
        if raw is not None:
            values[name] = raw

    state_dir = values.get("state_dir", Settings.state_dir)
    if values.get("broker") is None or values.get("redis_url") is None:
        for key, url in _read_infra_state(state_dir).items():
            values.setdefault(key, url)
            if values[key] is None:
                values[key] = url

    return Settings(**values, sections=sections)
