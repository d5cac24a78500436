"""A backtest's configs: validated before anything runs, each given a namespace of its own, and
written out as the sandboxed settings file its workers read.

The sandbox: the workers see the config with every webhook table dropped (``[webhook]``,
``[ops_webhook]``: pushes still reach the namespace's pushes topic and, without a webhook, are
recorded sent), the namespace's app id and topics instead of the configured ones, no bound on
future timestamps (a log may be stamped later than now), and no ``SHOPSTREAM_*`` variable from
the environment, so nothing can point them back at production.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shopstream.agents.registry import check_config
from shopstream.core.errors import ConfigError
from shopstream.core.settings import Settings, load_settings

#: Tables never handed to a backtest's workers: every way out of the sandbox by HTTP.
DROPPED_SECTIONS = ("webhook", "ops_webhook")
#: Settings the namespace sets (the topics, app id) or the backtest picks (servers, ports,
#: state dir); the config's own values are not used.
NAMESPACE_FIELDS = ("app_id", "events_topic", "dead_letter_topic", "alerts_topic",
                    "pushes_topic", "customer_events_topic")


@dataclass(frozen=True)
class Config:
    """One ``--config``: its file, label and validated settings (as the file gives them)."""

    path: str
    label: str
    raw: bytes
    settings: Settings

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def load_config(path: str, label: str, env: Mapping[str, str]) -> Config:
    """The config at ``path`` validated as a worker would (settings, then every capability's
    section); ConfigError naming the key. The embedded infra's state file is not read: a
    backtest runs on its own servers unless the settings name some."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path!r}: {exc.strerror}") from exc
    try:
        settings = load_settings(env=env, config_path=path,
                                 state_dir=str(Path(path).parent / ".bt"))
        check_config(settings)
    except ConfigError as exc:
        raise ConfigError(str(exc) if path in str(exc) else f"{path}: {exc}") from None
    return Config(path, label, raw, settings)


def labels(paths: list[str]) -> list[str]:
    """Each config's label: its file name without suffix, made safe for topic names, numbered
    when two files share one."""
    out: list[str] = []
    for path in paths:
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(path).stem).strip("-")[:40] or "config"
        label, n = base, 1
        while label in out:
            n += 1
            label = f"{base}-{n}"
        out.append(label)
    return out


def namespace(label: str, log_sha256: str, config_sha256: str, attempt: int = 1) -> str:
    """``bt-<label>-<hash of log and config>``; ``-<attempt>`` when an earlier run on the same
    servers holds the first."""
    digest = hashlib.sha256(f"{log_sha256}|{config_sha256}".encode()).hexdigest()[:10]
    base = f"bt-{label}-{digest}"
    return base if attempt == 1 else f"{base}-{attempt}"


def sandboxed(settings: Settings, app_id: str, broker: str, redis_url: str,
              state_dir: str) -> Settings:
    """The settings the namespace's workers run with (see the module docstring)."""
    sections = {k: v for k, v in settings.sections.items() if k not in DROPPED_SECTIONS}
    return dataclasses.replace(
        settings, sections=sections, app_id=app_id, events_topic=f"{app_id}.events",
        dead_letter_topic=f"{app_id}.dead-letters", alerts_topic=f"{app_id}.alerts",
        pushes_topic=f"{app_id}.pushes", customer_events_topic=f"{app_id}.customer-events",
        broker=broker, redis_url=redis_url, max_future_ms=0, state_dir=state_dir,
        worker_web_host="127.0.0.1", relay_web_port=0)


def settings_toml(settings: Settings) -> str:
    """``settings`` as a TOML file ``load_settings`` reads back to equal settings: the fields
    that differ from the defaults, then each table inline."""
    defaults = Settings()
    lines = [f"{f.name} = {_toml(getattr(settings, f.name))}"
             for f in dataclasses.fields(Settings)
             if f.name != "sections" and getattr(settings, f.name) is not None
             and getattr(settings, f.name) != getattr(defaults, f.name)]
    lines += [f"{_key(k)} = {_toml(v)}" for k, v in settings.sections.items()]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml(key)


def _toml(value: Any) -> str:
    """One TOML value, tables inline; strings as JSON strings (valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, int) or value == value else "nan"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to a settings file")
