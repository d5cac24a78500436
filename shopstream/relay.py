"""The push outboxes' relay (coupons and the customer loop) in a process of its own, beside
a worker (``shopstream relay``).

It relays every partition's outbox (the per-partition leases keep two relays off one
partition), a pass at most every ``PASS_EVERY_S``, with its own Redis pool, producer and
webhook sender, so the worker's batch loop makes no outbox round trip. The outboxes are in
Redis: a relay stopped or killed anywhere loses nothing. SIGTERM is the relay's graceful stop
(``OutboxRelay.close``: requests in flight recorded within the grace). Started by a worker,
it watches its parent and stops when the worker is gone; the worker starts it again if it dies.
Its deliveries are counted on its own /metrics (``relay_web_port``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from contextlib import suppress
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from shopstream.agents.registry import push_relay
from shopstream.core.settings import Settings
from shopstream.monitoring.metrics import RelayMetrics
from shopstream.sinks.outbox import PASS_EVERY_S
from shopstream.sinks.redis_state import make_redis

log = logging.getLogger(__name__)

#: How often a worker looks whether its relay process is still running.
SUPERVISE_EVERY_S = 1.0


def serve_metrics(settings: Settings, metrics: RelayMetrics) -> WSGIServer:
    """/metrics on ``relay_web_port``; on a free port (logged) when that one is taken, so a
    second relay on one host still runs."""
    host, port = settings.worker_web_host, settings.relay_web_port
    try:
        server, _ = start_http_server(port, host, registry=metrics.registry)
    except OSError as exc:
        server, _ = start_http_server(0, host, registry=metrics.registry)
        log.warning("relay metrics: port %d taken (%s); serving on %d instead", port, exc,
                    server.server_port)
    log.info("relay metrics on %s:%d", host, server.server_port)
    return server


async def run_relay(settings: Settings, parent_pid: int | None = None) -> None:
    """Relay until SIGTERM/SIGINT, or until ``parent_pid`` is no longer this process's parent;
    then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics = RelayMetrics()
    server = serve_metrics(settings, metrics)
    redis = make_redis(settings)
    relay = push_relay(settings, redis, metrics)
    log.info("outbox relay running", extra={"partitions": settings.partitions,
                                            "parent": parent_pid})
    try:
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("worker %d is gone: the relay stops", parent_pid)
                break
            relay.schedule_all()  # paced by the relay: a pass at most every PASS_EVERY_S
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PASS_EVERY_S)
        await relay.close()
    finally:
        await redis.aclose()
        server.shutdown()
        server.server_close()
    log.info("outbox relay stopped")


class RelaySupervisor:
    """Keeps a worker's relay process running: started with the worker, started again when
    it dies while the worker lives, stopped (SIGTERM, its graceful stop) with the worker."""

    def __init__(self, start: Callable[[], subprocess.Popen[bytes]]) -> None:
        self._start = start
        self._stopping = threading.Event()
        self.proc = start()
        self._thread = threading.Thread(target=self._watch, name="relay-supervisor",
                                        daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(SUPERVISE_EVERY_S):
            code = self.proc.poll()
            if code is not None and not self._stopping.is_set():
                log.warning("relay process %d exited (%s): starting another", self.proc.pid,
                            code)
                self.proc = self._start()

    def stop(self, wait_s: float = 30.0) -> None:
        """SIGTERM, then wait for its graceful stop (killed after ``wait_s``)."""
        self._stopping.set()
        self._thread.join()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
