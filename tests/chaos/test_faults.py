"""Faults injected into a real broker, redis-server and workers mid-stream; every case ends
with event_stats, the reconciliation counters and the dead letters equal to the reference."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import redis

from shopstream.replay import replay_lines
from tests.streams.exact import assert_exact, wait_done
from tests.streams.logs import build_log
from tests.support import counts, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

HORIZON_MS = 20_000
EXACT = "stats per minute = reference; in = processed + dead + duplicate; dead letters by reason"


@pytest.fixture(scope="module")
def log():
    return build_log(24_000, seed=11, horizon_ms=HORIZON_MS)


def thirds(lines):
    n = len(lines)
    return lines[: n // 3], lines[n // 3: 2 * n // 3], lines[2 * n // 3:]


def applied_at_least(settings, n, timeout_s=90):
    wait_until(lambda: counts(settings).get("in", 0) >= n, timeout_s, f"{n} events applied")


def first_third_applied(infra, log, start_worker):
    """Settings on ``infra``, a worker running, and the first third of the log applied."""
    settings = infra.settings(dedup_horizon_ms=HORIZON_MS)
    parts = thirds(log.lines)
    replay_lines(settings, parts[0])
    worker = start_worker(settings)
    applied_at_least(settings, len(parts[0]))
    return settings, worker, parts


def test_worker_sigkill(infra, log, start_worker, fault_row):
    fault_row.fault, fault_row.events = "worker SIGKILL mid-stream, restarted", len(log.lines)
    settings, worker, (one, two, three) = first_third_applied(infra, log, start_worker)
    replay_lines(settings, two)
    worker.kill()
    replay_lines(settings, three)
    start_worker(settings)
    wait_done(settings, log)
    assert_exact(settings, log)
    fault_row.checks.append(EXACT)


def test_redis_sigkill_and_restart_with_aof(own_infra, log, start_worker, fault_row):
    fault_row.fault, fault_row.events = "redis SIGKILL, restarted from AOF", len(log.lines)
    own = own_infra(appendonly=True)
    settings, worker, (one, two, three) = first_third_applied(own.infra(), log, start_worker)
    own.kill_redis()
    replay_lines(settings, two)
    wait_until(lambda: "redis unreachable" in worker.log_text(), 60,
               "the worker meeting the outage and backing off")
    own.start_redis()
    replay_lines(settings, three)
    wait_done(settings, log)
    assert_exact(settings, log)
    assert worker.popen.poll() is None, "a Redis outage must not kill the worker"
    assert "redis unreachable" in worker.log_text() and "redis back" in worker.log_text()
    fault_row.checks += [EXACT, "worker alive; outage logged once, recovery logged"]


def test_redis_rolled_back_to_an_older_snapshot(own_infra, log, start_worker, fault_row):
    fault_row.fault, fault_row.events = "redis rolled back to an older snapshot", len(log.lines)
    own = own_infra(appendonly=False)
    settings, worker, (one, two, three) = first_third_applied(own.infra(), log, start_worker)
    r = redis.Redis.from_url(settings.redis_url)
    r.save()  # the snapshot the failover will come back to
    r.close()
    replay_lines(settings, two)
    applied_at_least(settings, len(one) + len(two))
    own.kill_redis()
    own.start_redis()  # loads the snapshot: fences and state from before part two
    assert counts(settings)["in"] == len(one)
    replay_lines(settings, three)
    wait_done(settings, log)
    assert_exact(settings, log)
    assert "but state stops at" in worker.log_text()
    fault_row.checks += [EXACT, "records between the fence and the log read again and applied"]


def test_broker_paused_20s_under_load(own_infra, log, start_worker, fault_row):
    fault_row.fault, fault_row.events = "broker paused 20 s (SIGSTOP) under load", len(log.lines)
    own = own_infra()
    settings, worker, (one, two, three) = first_third_applied(own.infra(), log, start_worker)
    os.kill(own.broker_proc.pid, signal.SIGSTOP)  # type: ignore[attr-defined]
    producing = threading.Thread(target=replay_lines, args=(settings, two))
    producing.start()
    time.sleep(20)
    os.kill(own.broker_proc.pid, signal.SIGCONT)  # type: ignore[attr-defined]
    producing.join(60)
    replay_lines(settings, three)
    wait_done(settings, log, timeout_s=150)
    assert_exact(settings, log)
    assert worker.popen.poll() is None
    fault_row.checks += [EXACT, "worker recovered by itself"]


def test_rebalance_1_3_2_workers_under_load(infra, log, start_worker, fault_row):
    fault_row.fault, fault_row.events = "rebalance 1 -> 3 -> 2 workers under load", len(log.lines)
    settings = infra.settings(dedup_horizon_ms=HORIZON_MS, partitions=6)
    one, two, three = thirds(log.lines)
    start_worker(settings)
    replay_lines(settings, one, rate=8_000)
    extra = [start_worker(settings), start_worker(settings)]
    replay_lines(settings, two, rate=8_000)
    extra[0].stop()
    replay_lines(settings, three, rate=8_000)
    wait_done(settings, log, timeout_s=150)
    assert_exact(settings, log)
    fault_row.checks.append(EXACT)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_redis_slowed_by_client_pause(own_infra, log, start_worker, fault_row):
    fault_row.fault, fault_row.events = "redis paused 8 s (CLIENT PAUSE) under load", len(log.lines)
    own = own_infra()
    settings, worker, (one, two, three) = first_third_applied(own.infra(), log, start_worker)
    before = _rss_mb(worker.popen.pid)
    r = redis.Redis.from_url(settings.redis_url)
    r.execute_command("CLIENT", "PAUSE", 8000, "ALL")
    r.close()
    replay_lines(settings, two)
    peak = before
    for _ in range(40):
        peak = max(peak, _rss_mb(worker.popen.pid))
        time.sleep(0.2)
    replay_lines(settings, three)
    wait_done(settings, log)
    assert_exact(settings, log)
    # The batch loop holds at most a bounded buffer while Redis stalls: no growth with the backlog.
    assert peak - before < 150, (before, peak)
    fault_row.checks += [EXACT, f"worker RSS {before:.0f} -> peak {peak:.0f} MB during the pause"]
