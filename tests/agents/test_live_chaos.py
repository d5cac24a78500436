"""Live rooms and the pulse with a real worker SIGKILLed mid-stream, then two workers: the API
still equals the reference (Redis plus the offset fence is the whole state)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from shopstream.core.settings import Settings
from tests.agents.live_ref import generate, live_reference, pulse_reference
from tests.agents.test_live_ops import ATTRIBUTION, IDLE, LATENESS, check_pulse, check_rooms
from tests.agents.test_live_ops import produce as produce_log
from tests.support import Proc, counts, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


async def test_sigkill_mid_stream_then_two_workers(
    settings: Settings, start_worker: Callable[..., Proc]
) -> None:
    settings = dataclasses.replace(settings, batch_max_records=20)
    log = generate(n_rooms=500, n_users=2_000, seed=17)
    distinct = len({e["event_id"] for e in log})
    half = len(log) // 2
    produce_log(settings, log[:half])
    first = start_worker(settings)
    wait_until(lambda: counts(settings).get("processed", 0) > 3_000, 60, "first batches",
               interval=0.05)
    first.kill()
    assert counts(settings)["processed"] < distinct
    produce_log(settings, log[half:])
    workers = [start_worker(settings), start_worker(settings)]
    wait_until(lambda: counts(settings).get("processed", 0) >= distinct, 120,
               "all events processed")
    for w in workers:
        assert w.popen.poll() is None, w.log_text()[-2000:]
    assert counts(settings)["processed"] == distinct
    want, _ = live_reference(log, settings.partitions, IDLE, ATTRIBUTION, LATENESS)
    assert await check_rooms(settings, want) > 1_000
    rows, skus, late = pulse_reference(log, settings.partitions, LATENESS)
    assert await check_pulse(settings, rows, skus, late) > 50
