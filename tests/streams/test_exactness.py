"""End to end through Kafka and a real Faust worker: event_stats equals the reference exactly,
also across SIGKILL and with two workers; counts reconcile; dead letters keep everything."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import redis

from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.replay import replay_lines
from tests.streams.exact import assert_exact, wait_done
from tests.streams.logs import build_log
from tests.support import counts, wait_until

pytestmark = [pytest.mark.integration]

HORIZON_MS = 20_000


@pytest.fixture
def settings(infra):
    return infra.settings(dedup_horizon_ms=HORIZON_MS)


@pytest.fixture(scope="module")
def log():
    return build_log(100_000, seed=7, horizon_ms=HORIZON_MS)


def test_replay_through_worker_is_exact(settings, log, start_worker):
    replay_lines(settings, log.lines)
    worker = start_worker(settings)
    wait_done(settings, log)
    assert_exact(settings, log)
    assert worker.popen.poll() is None
    port = worker.args[worker.args.index("--web-port") + 1]
    for path in ("livez", "readyz"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5) as resp:
            body = json.loads(resp.read())
        assert resp.status == 200 and body["status"] in ("ok", "ready")
    assert body["partitions"] == list(range(settings.partitions))

    def lags():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in text.splitlines()
                if ln.startswith("shopstream_consumer_lag{")}

    # Every partition exports its lag, and once everything is applied it is nothing.
    got = wait_until(lambda: (lg := lags()) and len(lg) == settings.partitions
                     and not any(lg.values()) and lg, 30, "lag 0 on every partition")
    assert all('topic="' + settings.events_topic + '"' in k for k in got)
    assert "\x1b" not in worker.log_text(), "terminal escapes in the worker's log"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert "shopstream_build_info{" in text and "process_resident_memory_bytes" in text


def test_sigkill_mid_stream_loses_and_doubles_nothing(infra, log, start_worker):
    # Small batches and envelopes stretch the run so the kill lands mid-stream.
    settings = infra.settings(dedup_horizon_ms=HORIZON_MS, batch_max_records=4)
    prod = EnvelopeProducer(settings, max_events=100)
    replay_lines(settings, log.lines, producer=prod)
    total = len(log.lines)
    kills = 0
    for fraction in (0.25, 0.6):
        worker = start_worker(settings, SHOPSTREAM_BATCH_MAX_RECORDS="4")
        wait_until(lambda f=fraction: counts(settings).get("in", 0) >= total * f, 120,
                   f"{fraction:.0%} applied")
        worker.kill()
        kills += 1
        assert counts(settings)["in"] < total, "kill came too late to be mid-stream"
    start_worker(settings)
    wait_done(settings, log)
    assert kills == 2
    assert_exact(settings, log)


def _healthz(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        return json.loads(resp.read())


def test_two_workers_share_partitions_and_stay_exact(settings, log, start_worker):
    a = start_worker(settings)
    b = start_worker(settings)
    ports = [p.args[p.args.index("--web-port") + 1] for p in (a, b)]

    def split():
        try:
            owned = [set(_healthz(port)["partitions"]) for port in ports]
        except OSError:
            return None
        if all(owned) and not owned[0] & owned[1] and owned[0] | owned[1] == set(
            range(settings.partitions)
        ):
            return owned
        return None

    owned = wait_until(split, 90, "both workers own partitions", interval=0.5)
    replay_lines(settings, log.lines)
    wait_done(settings, log)
    assert_exact(settings, log)
    # Each worker applied batches of its own partitions: the fences say who wrote.
    r = redis.Redis.from_url(settings.redis_url)
    assert all(r.exists(f"{settings.app_id}:{{p{p}}}:counts") for p in range(settings.partitions))
    r.close()
    assert owned[0] and owned[1]
    time.sleep(0)
