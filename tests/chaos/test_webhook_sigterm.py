"""A real worker stopped with SIGTERM while it delivers pushes to a real HTTP receiver: every
push the receiver answered 200 is recorded as sent before the worker exits, and the next worker
sends none of them again."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.sinks.coupons.keys import coupon_keys
from shopstream.sinks.webhook import ID_HEADER, verify
from tests.agents.coupon_reference import STEP_COUPON, STEPS_MIN, generate_day
from tests.support import counts, new_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SECRET = "sigterm-secret-0123456789"
#: The receiver takes this long per push, so that requests are in flight when the signal comes.
ANSWER_S = 0.2


class Receiver(ThreadingHTTPServer):
    """Answers 200 to each well-signed push after ANSWER_S; counts the pushes it answered."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.answered: Counter[str] = Counter()
        self.bad_signatures = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(ANSWER_S)
        if not verify(SECRET, dict(self.headers.items()), body):
            with self.server.lock:
                self.server.bad_signatures += 1
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.flush()
        with self.server.lock:
            self.server.answered[self.headers[ID_HEADER]] += 1

    def log_message(self, *args: object) -> None:
        return None


def _hash(r: redis.Redis, settings, field: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in range(settings.partitions):
        key = getattr(coupon_keys(settings.app_id, p), field)
        out.update({k.decode(): v.decode() for k, v in r.hgetall(key).items()})
    return out


def test_sigterm_records_every_push_the_receiver_accepted(infra, start_worker,
                                                          tmp_path: Path) -> None:
    port = new_port()
    receiver = Receiver(port)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    settings = infra.settings(batch_max_records=4)
    cfg = tmp_path / "shopstream.toml"
    cfg.write_text("\n".join([
        "[cart]",
        "steps = [" + ", ".join(f"{{after_min = {a}, coupon_fen = {c}}}"
                                for a, c in zip(STEPS_MIN, STEP_COUPON, strict=True)) + "]",
        "[coupons]",
        "daily_cap = 2",
        "[coupons.live_followup]",
        "enabled = false",
        "[webhook]",
        f'url = "http://127.0.0.1:{port}/push"',
        f'secret = "{SECRET}"',
        "timeout_ms = 10000",
        "",
    ]))
    events = generate_day(users=600, partitions=settings.partitions, seed=11)
    prod = EnvelopeProducer(settings, max_events=40)
    for ev in sorted(events, key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()
    env = {"SHOPSTREAM_CONFIG": str(cfg), "SHOPSTREAM_BATCH_MAX_RECORDS": "4"}
    r = redis.Redis.from_url(settings.redis_url or "")
    try:
        first = start_worker(settings, **env)
        wait_until(lambda: sum(receiver.answered.values()) >= 40, 180, "pushes being delivered")
        first.popen.send_signal(signal.SIGTERM)
        assert first.popen.wait(60) == 0, first.log_text()[-3000:]
        with receiver.lock:
            answered = set(receiver.answered)
        results = _hash(r, settings, "push_results")
        unrecorded = {pid for pid in answered if results.get(pid) != "sent"}
        assert not unrecorded, f"{len(unrecorded)} of {len(answered)} accepted pushes unrecorded"
        assert "never awaited" not in first.log_text()

        start_worker(settings, **env)
        wait_until(lambda: counts(settings).get("in", 0) >= len(events), 180, "all applied")
        wait_until(lambda: not _hash(r, settings, "outbox") and not _hash(r, settings,
                   "push_webhook"), 180, "every push delivered")
        results = _hash(r, settings, "push_results")
    finally:
        receiver.shutdown()
        r.close()
    assert receiver.bad_signatures == 0
    assert set(receiver.answered) == {pid for pid, res in results.items() if res == "sent"}
    assert len(receiver.answered) > 200 and max(receiver.answered.values()) == 1
