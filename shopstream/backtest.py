"""``shopstream backtest``: a recorded log run again through the whole engine, once per config,
each in a sandboxed namespace of its own, and what each run decided side by side.

Per config, in turn: a namespace (app id ``bt-<label>-<hash of log and config>``, its topics,
its Redis keys), workers started on it with the sandboxed config (shopstream/backtest_config.py),
the log replayed into its events topic as ``shopstream replay`` does (invalid lines dead-lettered
and counted), then a wait until every event is applied, every push outbox relayed and the
judges have judged every final minute; then the run is read back (shopstream/backtest_collect.py)
and its workers stopped. Every config is validated before anything runs. The report
(``report.json``, keys sorted, no wall-clock value) is the same for the same log and configs;
wall times go to the terminal and ``timings.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from confluent_kafka.admin import AdminClient

from shopstream.agents.registry import push_relay
from shopstream.backtest_collect import by_id, collect, read_topic, scrape_decisions
from shopstream.backtest_config import (
    Config,
    labels,
    load_config,
    namespace,
    sandboxed,
    settings_toml,
)
from shopstream.backtest_judges import finish_all, hold_all
from shopstream.backtest_log import LogSummary, scan_log
from shopstream.core.env import KAFKA_SASL_PASSWORD, PREFIX
from shopstream.core.errors import ShopstreamError
from shopstream.core.settings import Settings
from shopstream.infra import EmbeddedInfra, embedded, free_port
from shopstream.kafka_io.client_config import librdkafka_config
from shopstream.kafka_io.topics import ensure_topics
from shopstream.monitoring.metrics import RelayMetrics
from shopstream.progress import Progress
from shopstream.replay import applied_events, replay_lines
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.redis_state import Redis, make_redis

log = logging.getLogger(__name__)

#: A run whose applied events (or relayed pushes) do not move for this long has failed.
STALL_S = 300.0
#: How often the waits look at Redis.
POLL_S = 0.2
#: Lines replayed between two redraws of the progress bar.
PROGRESS_EVERY = 10_000
#: The module that renders report.json as a self-contained HTML page, when installed.
HTML_MODULE = "shopstream.backtest_html"


class BacktestError(ShopstreamError):
    """A run could not finish (a worker exited, nothing moved for STALL_S)."""


@dataclass
class Options:
    log: str
    configs: list[str]
    out: str
    workers: int = 1
    attribution_hours: float = 24.0
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    stream: IO[str] = sys.stderr


def run(opts: Options) -> dict[str, Any]:
    """Validate every config, then run each; write the report files into ``opts.out``;
    returns the report. ConfigError (before anything ran) for an invalid config."""
    configs = [load_config(path, label, opts.env)
               for path, label in zip(opts.configs, labels(opts.configs), strict=True)]
    summary = scan_log(opts.log)
    out = Path(opts.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    sections: list[dict[str, Any]] = []
    timings: dict[str, Any] = {}
    with _servers(configs) as infra:
        for cfg in configs:
            section, timing = _run_one(cfg, summary, infra, opts, out)
            sections.append(section)
            timings[cfg.label] = timing
    first = sections[0]
    report = {
        "log": {"path": opts.log, "sha256": summary.sha256, "lines": summary.lines,
                "events": summary.valid, "processed": first["events"]["processed"],
                "dead": first["dead"], "duplicate": first["events"]["duplicate"],
                "from_ts": summary.from_ts, "to_ts": summary.to_ts},
        "attribution_hours": opts.attribution_hours,
        "configs": sections,
    }
    _write(out, report, timings)
    return report


@contextlib.contextmanager
def _servers(configs: list[Config]) -> Iterator[EmbeddedInfra | None]:
    """The embedded broker and redis-server when a config names no broker or no Redis."""
    if all(c.settings.broker and c.settings.redis_url for c in configs):
        yield None
        return
    with embedded(None, durable=False) as infra:
        yield infra


def _run_one(cfg: Config, summary: LogSummary, infra: EmbeddedInfra | None, opts: Options,
             out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.monotonic()
    broker = cfg.settings.broker or (infra.broker if infra else None)
    redis_url = cfg.settings.redis_url or (infra.redis_url if infra else None)
    assert broker and redis_url  # noqa: S101 - _servers started what no config names
    work = Path(tempfile.mkdtemp(prefix="shopstream-backtest-"))
    try:
        settings = _free_namespace(cfg, summary, broker, redis_url, str(work))
        ensure_topics(settings)
        config_file = work / "config.toml"
        config_file.touch(mode=0o600)
        config_file.write_text(settings_toml(settings))
        asyncio.run(_judges(hold_all, settings))
        ports = [free_port() for _ in range(opts.workers)]
        print(f"backtest {cfg.label}: namespace {settings.app_id}, {opts.workers} worker(s)",
              file=opts.stream, flush=True)
        logs = out / "logs"
        procs = [_start_worker(config_file, port, work, logs / f"{cfg.label}-worker-{i}.log",
                               opts.env) for i, port in enumerate(ports)]
        try:
            t0 = time.monotonic()
            sent = _replay(settings, summary, cfg.label, opts.stream)
            t1 = time.monotonic()
            _wait_applied(settings, sent, procs, cfg.label, opts.stream)
            _wait_relayed(settings, procs)
            t2 = time.monotonic()
            asyncio.run(_judges(finish_all, settings))
            t3 = time.monotonic()
            decisions = scrape_decisions(ports)
        finally:
            _stop(procs)
        pushes = by_id(read_topic(settings, settings.pushes_topic), "push_id")
        alerts = by_id(read_topic(settings, settings.alerts_topic), "alert_id")
        body = asyncio.run(_collect(settings, summary, decisions, opts.attribution_hours,
                                    pushes, alerts))
        (out / f"pushes-{cfg.label}.jsonl").write_bytes(
            b"".join(orjson.dumps(p, option=orjson.OPT_SORT_KEYS) + b"\n" for p in pushes))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    done = time.monotonic()
    timing = {"namespace": settings.app_id, "replay_s": round(t1 - t0, 3),
              "apply_s": round(t2 - t0, 3), "judges_s": round(t3 - t2, 3),
              "total_s": round(done - started, 3),
              "events_per_s": round(summary.lines / max(t3 - t0, 1e-9), 1)}
    print(f"backtest {cfg.label}: {summary.lines:,} events applied in {t2 - t0:.1f}s "
          f"({timing['events_per_s']:,.0f} events/s with the judges), {len(pushes):,} pushes, "
          f"{len(alerts):,} alerts; {done - started:.1f}s in all", file=opts.stream, flush=True)
    return {"label": cfg.label, "config": cfg.path, "sha256": cfg.sha256, **body}, timing


def _free_namespace(cfg: Config, summary: LogSummary, broker: str, redis_url: str,
                    state_dir: str) -> Settings:
    """The config's sandboxed settings in the first namespace nothing on these servers uses
    yet (a backtest never reuses another run's topics or keys)."""
    attempt = 1
    while True:
        app_id = namespace(cfg.label, summary.sha256, cfg.sha256, attempt)
        settings = sandboxed(cfg.settings, app_id, broker, redis_url, state_dir)
        if not asyncio.run(_taken(settings)):
            return settings
        attempt += 1


async def _taken(settings: Settings) -> bool:
    admin = AdminClient(librdkafka_config(settings))
    if settings.events_topic in admin.list_topics(timeout=15).topics:
        return True
    redis = make_redis(settings)
    try:
        async for _ in redis.scan_iter(match=f"{settings.app_id}:*", count=1000):
            return True
        return False
    finally:
        await redis.aclose()


def _worker_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment without shopstream's variables: the sandboxed file is all a worker
    reads (the Kafka SASL password, never in a file, passes)."""
    return {k: v for k, v in env.items() if not k.startswith(PREFIX) or k == KAFKA_SASL_PASSWORD}


def _start_worker(config_file: Path, port: int, cwd: Path, log_path: Path,
                  env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "shopstream", "--config", str(config_file), "worker",
             "--web-port", str(port)],
            cwd=cwd, env=_worker_env(env), stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each worker (its graceful stop, its relay with it), then wait."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _check_alive(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is not None:
            raise BacktestError(f"a worker exited with status {proc.returncode} (its log is in "
                                "the report directory's logs/)")


def _replay(settings: Settings, summary: LogSummary, label: str, stream: IO[str]) -> int:
    bar = Progress(f"replay {label}", summary.lines, stream)

    def lines(fh: IO[bytes]) -> Iterator[bytes]:
        for n, line in enumerate(fh, 1):
            if n % PROGRESS_EVERY == 0:
                bar.update(n)
            yield line

    try:
        with open(summary.path, "rb") as fh:
            return replay_lines(settings, lines(fh))
    finally:
        bar.update(summary.lines)
        bar.close()


def _wait_applied(settings: Settings, sent: int, procs: list[subprocess.Popen[bytes]],
                  label: str, stream: IO[str]) -> None:
    """Until the workers applied ``sent`` events; BacktestError when a worker exits or
    nothing moves for STALL_S."""
    bar = Progress(f"apply  {label}", sent, stream)
    last, moved = -1, time.monotonic()
    try:
        while (done := applied_events(settings)) < sent:
            bar.update(done)
            _check_alive(procs)
            if done != last:
                last, moved = done, time.monotonic()
            elif time.monotonic() - moved > STALL_S:
                raise BacktestError(f"{label}: workers applied {done} of {sent} events and "
                                    f"nothing moved for {STALL_S:.0f}s")
            time.sleep(POLL_S)
        bar.update(sent)
    finally:
        bar.close()


def _wait_relayed(settings: Settings, procs: list[subprocess.Popen[bytes]]) -> None:
    """Until every partition's push outbox (and webhook queue) is empty. Budgeted pushes of
    the log's last allowed lateness are never final while events may follow: once the whole
    log is applied they are claimed here, after the others, as a live run would once later
    events came (docs/cart-recovery.md, *Budget*)."""
    deadline = time.monotonic() + STALL_S
    while asyncio.run(_unrelayed(settings)):
        _check_alive(procs)
        if time.monotonic() > deadline:
            raise BacktestError(f"pushes still in the outbox after {STALL_S:.0f}s")
        time.sleep(POLL_S)


async def _unrelayed(settings: Settings) -> int:
    redis = make_redis(settings)
    try:
        await push_relay(settings, redis, RelayMetrics()).claimer.claim(log_ended=True)
        async with redis.pipeline(transaction=False) as pipe:
            for p in range(settings.partitions):
                k = coupon_keys(settings.app_id, p)
                pipe.hlen(k.outbox)
                pipe.hlen(k.push_webhook)
            return sum(int(n) for n in await pipe.execute())
    finally:
        await redis.aclose()


async def _judges(step: Callable[[Settings, Redis], Awaitable[None]],
                  settings: Settings) -> None:
    redis = make_redis(settings)
    try:
        await step(settings, redis)
    finally:
        await redis.aclose()


async def _collect(settings: Settings, summary: LogSummary, decisions: Any, hours: float,
                   pushes: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    redis = make_redis(settings)
    try:
        return await collect(redis, settings, summary, decisions, hours, pushes, alerts)
    finally:
        await redis.aclose()


def _write(out: Path, report: dict[str, Any], timings: dict[str, Any]) -> None:
    """report.json (sorted keys), timings.json, and report.html when the renderer exists."""
    (out / "report.json").write_bytes(
        orjson.dumps(report, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n")
    (out / "timings.json").write_bytes(
        orjson.dumps(timings, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n")
    if importlib.util.find_spec(HTML_MODULE) is not None:
        html = importlib.import_module(HTML_MODULE).render(report)
        (out / "report.html").write_text(html)
