"""The worker's take window: a record waits at most ``batch_within_s`` in the buffer, also when
it arrived while the batch before it was being processed."""

import threading
import time

import pytest
import redis

from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from tests.support import counts, wait_until

pytestmark = pytest.mark.integration

WITHIN_S = 1.0
#: Redis refuses writes this long: the batch of the first record waits on its fenced write.
PAUSE_S = 2.5


def _send(settings, event_id: str) -> None:
    prod = EnvelopeProducer(settings, max_events=1)
    prod.add({"event_id": event_id, "type": "page_view", "ts": int(time.time() * 1000),
              "user_id": f"u-{event_id}", "page": "home"})
    prod.flush()


def _applied_at(settings, n: int, timeout_s: float = 30) -> float:
    wait_until(lambda: counts(settings).get("in", 0) >= n, timeout_s, f"{n} events applied",
               interval=0.02)
    return time.monotonic()


def test_a_record_that_waited_through_a_batch_is_not_held_for_another_window(
        infra, start_worker):
    settings = infra.settings()
    start_worker(settings, SHOPSTREAM_BATCH_WITHIN_S=str(WITHIN_S))
    _send(settings, "warm")
    _applied_at(settings, 1, timeout_s=90)  # the worker owns its partitions

    r = redis.Redis.from_url(settings.redis_url)
    r.execute_command("CLIENT", "PAUSE", int(PAUSE_S * 1000), "WRITE")
    paused = time.monotonic()
    _send(settings, "first")  # cut after WITHIN_S, then held by the pause
    # Sent once the first record's batch is cut and waiting: this one waits in the buffer.
    threading.Event().wait(max(0.0, paused + WITHIN_S + 0.4 - time.monotonic()))
    _send(settings, "second")
    first = _applied_at(settings, 2)
    second = _applied_at(settings, 3)
    r.close()

    # The second record has waited more than WITHIN_S when the first batch lands: it goes at
    # once. Faust's take_events started a fresh window after the batch: WITHIN_S later.
    assert second - first < WITHIN_S / 2, f"second record applied {second - first:.2f}s later"
    c = counts(settings)
    assert (c["in"], c["processed"]) == (3, 3)
