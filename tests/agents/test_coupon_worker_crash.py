"""A real worker SIGKILLed mid-run: the set of pushes (deduped by push_id) equals the reference,
live follow-ups included (each partition decides them from its own copies of ``live_end``, so
how far apart the partitions are in event time does not matter)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.sinks.coupons.keys import coupon_keys
from tests.agents.coupon_reference import STEP_COUPON, STEPS_MIN, generate_day, reference
from tests.agents.coupon_support import pushes
from tests.support import counts, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

CONFIG = "\n".join([
    "[cart]",
    "steps = [" + ", ".join(f"{{after_min = {a}, coupon_fen = {c}}}"
                            for a, c in zip(STEPS_MIN, STEP_COUPON, strict=True)) + "]",
    "[coupons]",
    "daily_cap = 2",
    "",
])


def test_sigkill_mid_run_keeps_pushes_exact(infra, start_worker, tmp_path: Path) -> None:
    settings = infra.settings(batch_max_records=4)
    cfg = tmp_path / "shopstream.toml"
    cfg.write_text(CONFIG)
    events = generate_day(users=1_500, partitions=settings.partitions, seed=11)
    prod = EnvelopeProducer(settings, max_events=40)
    for ev in sorted(events, key=lambda e: e["ts"]):
        prod.add(ev)
    prod.flush()
    total = prod.records_sent
    expected, _ = reference(events)

    env = {"SHOPSTREAM_CONFIG": str(cfg), "SHOPSTREAM_BATCH_MAX_RECORDS": "4"}
    worker = start_worker(settings, **env)
    wait_until(lambda: counts(settings).get("in", 0) >= len(events) * 0.4, 120, "40% applied")
    worker.kill()
    assert counts(settings)["in"] < len(events), "kill came too late to be mid-stream"
    start_worker(settings, **env)
    wait_until(lambda: counts(settings).get("in", 0) >= len(events), 120, "all applied")
    r = redis.Redis.from_url(settings.redis_url or "")
    # A relay lock left by the killed worker expires; the next tick relays what it guarded.
    wait_until(lambda: sum(r.hlen(coupon_keys(settings.app_id, p).outbox)
                           for p in range(settings.partitions)) == 0, 60, "outbox drained")
    got = pushes(settings)
    actual = {(p["push_id"], p["rule"], p["user_id"], p["ts"], p["step"]) for p in got}
    assert total > 0 and len(expected) > 500
    assert sum(rule == "live_followup" for _, rule, *_ in expected) > 100
    assert actual == expected
