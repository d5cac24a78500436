"""The outbox relay runs in a process beside the worker: the worker's own Redis connections make
no outbox round trip while every push is still relayed (and counted on the relay's /metrics);
a relay that dies while its worker lives is started again; a relay whose worker is killed exits
(no orphan). With ``relay = "inline"`` the worker relays itself and starts no process."""

from __future__ import annotations

import signal
import threading
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from shopstream.agents.coupons.agent import CouponAgent
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.redis_state import make_redis
from tests.agents.coupon_reference import SECTIONS, STEP_COUPON, STEPS_MIN, generate_day
from tests.agents.coupon_support import pushes, with_sections
from tests.support import Proc, counts, new_port, process_topic, run_async, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

CONFIG = "\n".join([
    "[cart]",
    "steps = [" + ", ".join(f"{{after_min = {a}, coupon_fen = {c}}}"
                            for a, c in zip(STEPS_MIN, STEP_COUPON, strict=True)) + "]",
    "[coupons]",
    "daily_cap = 2",
    "",
])
#: Keys only a relay reads or writes (the worker writes ``outbox`` only inside its fenced call).
RELAY_KEYS = (":outbox", ":outbox:lock", ":push:webhook")


def _produce(settings: Any, users: int) -> int:
    events = generate_day(users=users, partitions=settings.partitions, seed=11)
    prod = EnvelopeProducer(settings, max_events=40)
    for ev in sorted(events, key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()
    return len(events)


def _relay_child(worker: Proc, other_than: int = 0) -> psutil.Process:
    """The worker's running relay process (``shopstream relay``), once there is one."""
    def find() -> psutil.Process | None:
        for c in psutil.Process(worker.popen.pid).children():
            try:
                if (c.pid != other_than and c.status() != psutil.STATUS_ZOMBIE
                        and "relay" in c.cmdline()):
                    return c
            except psutil.NoSuchProcess:
                continue
        return None
    found: psutil.Process = wait_until(find, 60, "the worker's relay process")
    return found


def _ports(proc: psutil.Process) -> set[int]:
    return {c.laddr.port for c in proc.net_connections(kind="tcp") if c.laddr}


def _first_key(args: list[str]) -> str:
    if args[0].upper() in ("EVAL", "EVALSHA"):
        return args[3] if len(args) > 3 and args[2] != "0" else ""
    return args[1] if len(args) > 1 else ""


class Monitor:
    """Redis MONITOR in a thread: client port -> commands it sent on relay keys."""

    def __init__(self, url: str) -> None:
        self.by_port: dict[int, list[str]] = {}
        self._stop = threading.Event()
        self._client = redis.Redis.from_url(url)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._client.monitor() as m:
            for cmd in m.listen():
                if self._stop.is_set():
                    return
                args = cmd["command"].split()
                if not args or cmd.get("client_type") == "lua":
                    continue
                key = _first_key([a.strip('"') for a in args])
                if key.endswith(RELAY_KEYS) and str(cmd.get("client_port", "")).isdigit():
                    self.by_port.setdefault(int(cmd["client_port"]), []).append(args[0])

    def stop(self) -> None:
        self._stop.set()
        self._client.ping()  # one more command, so that listen returns
        self._thread.join(10)
        self._client.close()


def _relay_counts(port: int) -> dict[str, float]:
    """shopstream_pushes_total by result, from the relay's own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "shopstream_pushes_total":
                out[s.labels["result"]] = out.get(s.labels["result"], 0.0) + s.value
    return out


def _results(settings: Any) -> dict[str, int]:
    """Recorded push results, counted by result."""
    r = redis.Redis.from_url(settings.redis_url or "")
    out: dict[str, int] = {}
    for p in range(settings.partitions):
        for v in r.hgetall(coupon_keys(settings.app_id, p).push_results).values():
            out[v.decode()] = out.get(v.decode(), 0) + 1
    r.close()
    return out


def _outboxes(r: redis.Redis, settings: Any) -> int:
    return sum(int(r.hlen(coupon_keys(settings.app_id, p).outbox))
               for p in range(settings.partitions))


def _relayed_run(infra: Any, start_worker: Any, tmp_path: Path,
                 **env: str) -> tuple[Any, Proc, dict[int, set[str]]]:
    """A worker over a generated day until every push has left the outboxes; returns the
    settings, the worker and the relay commands its own Redis connections sent, by port."""
    settings = infra.settings(batch_max_records=4)
    cfg = tmp_path / "shopstream.toml"
    cfg.write_text(CONFIG)
    n = _produce(settings, users=400)
    monitor = Monitor(settings.redis_url or "")
    worker = start_worker(settings, SHOPSTREAM_CONFIG=str(cfg), SHOPSTREAM_BATCH_MAX_RECORDS="4",
                          **env)
    r = redis.Redis.from_url(settings.redis_url or "")
    try:
        wait_until(lambda: counts(settings).get("in", 0) >= n, 180, "all applied")
        wait_until(lambda: _outboxes(r, settings) == 0, 60, "outboxes drained")
        worker_ports = _ports(psutil.Process(worker.popen.pid))
    finally:
        monitor.stop()
        r.close()
    sent = pushes(settings)
    assert len(sent) > 100
    assert _results(settings).get("sent", 0) == len({p["push_id"] for p in sent})
    return settings, worker, {p: set(c) for p, c in monitor.by_port.items() if p in worker_ports}


def test_worker_makes_no_outbox_round_trip_while_pushes_are_relayed(
        infra, start_worker, tmp_path: Path) -> None:
    metrics_port = new_port()
    settings, worker, by_worker = _relayed_run(infra, start_worker, tmp_path,
                                               SHOPSTREAM_RELAY_WEB_PORT=str(metrics_port))
    assert not by_worker, f"the worker made relay round trips: {by_worker}"
    assert _ports(_relay_child(worker)), "the relay process holds no connection"
    # Every result the relay recorded is counted on its own /metrics.
    results = _results(settings)
    wait_until(lambda: _relay_counts(metrics_port) == {k: float(v) for k, v in results.items()},
               30, "the relay's counters equal to the recorded results")


def test_inline_relay_runs_on_the_worker(infra, start_worker, tmp_path: Path) -> None:
    _, worker, by_worker = _relayed_run(infra, start_worker, tmp_path, SHOPSTREAM_RELAY="inline")
    assert by_worker, "the inline relay made no round trip from the worker"
    assert not [c for c in psutil.Process(worker.popen.pid).children()
                if "relay" in c.cmdline()]


def test_relay_restarted_while_the_worker_lives_and_gone_with_it(
        infra, start_worker, tmp_path: Path) -> None:
    settings = infra.settings(batch_max_records=4)
    cfg = tmp_path / "shopstream.toml"
    cfg.write_text(CONFIG)
    worker = start_worker(settings, SHOPSTREAM_CONFIG=str(cfg), SHOPSTREAM_BATCH_MAX_RECORDS="4",
                          SHOPSTREAM_RELAY_WEB_PORT="0")
    first = _relay_child(worker)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    second = _relay_child(worker, other_than=first.pid)
    # Pushes decided after the restart still go out.
    n = _produce(settings, users=150)
    r = redis.Redis.from_url(settings.redis_url or "")
    wait_until(lambda: counts(settings).get("in", 0) >= n, 180, "all applied")
    wait_until(lambda: _outboxes(r, settings) == 0 and pushes(settings), 60, "pushes relayed")
    r.close()
    # The worker dies at once (its process only, not its group): the relay follows it.
    worker.popen.send_signal(signal.SIGKILL)
    worker.popen.wait(10)
    try:
        second.wait(30)
    except psutil.TimeoutExpired:
        second.kill()
        pytest.fail("the relay outlived its worker by 30 s")


def test_relay_runs_on_its_own(infra, spawn, tmp_path: Path) -> None:
    """Pushes decided by a batch loop that does not relay wait in the outboxes until a
    ``shopstream relay`` started on its own relays them; SIGTERM stops it cleanly."""
    settings = infra.settings()
    cfg = tmp_path / "shopstream.toml"
    cfg.write_text(CONFIG)
    s = with_sections(settings, **SECTIONS)
    _produce(s, users=150)

    async def decide() -> None:
        r = make_redis(s)
        await process_topic(s, agents=[CouponAgent(s, r, relay_inline=False)])
        await r.aclose()

    run_async(decide())
    r = redis.Redis.from_url(settings.redis_url or "")
    waiting = _outboxes(r, settings)
    assert waiting > 50 and not pushes(settings)
    relay = spawn(settings, "relay", "--metrics-port", "0", env={"SHOPSTREAM_CONFIG": str(cfg)})
    wait_until(lambda: _outboxes(r, settings) == 0, 60, "outboxes relayed")
    r.close()
    assert len({p["push_id"] for p in pushes(settings)}) == waiting == _results(settings)["sent"]
    relay.popen.send_signal(signal.SIGTERM)
    assert relay.popen.wait(30) == 0, relay.log_text()[-3000:]
