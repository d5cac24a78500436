"""A real worker running stock health, SIGKILLed mid-stream, then two workers sharing the
partitions (one judging at a time, under the lease): the judge ends with every SKU and the
alert ids on the ops-alerts topic equal to the reference."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis

from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.sinks.stock import keys as sk
from tests.agents.stock_ref import MIN, Cfg, reference
from tests.agents.test_stock_agent import FIELDS, get, last_views, the_log
from tests.support import counts, read_records, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def test_sigkill_mid_stream_keeps_stock_exact(infra, start_worker) -> None:
    settings = infra.settings(batch_max_records=4)
    log = the_log(settings.partitions)
    prod = EnvelopeProducer(settings, max_events=50)
    for ev in log:
        prod.add(ev)
    prod.flush()
    env = {"SHOPSTREAM_AGENTS": "event_stats,ops,stock"}
    worker = start_worker(settings, **env)
    wait_until(lambda: counts(settings).get("in", 0) >= len(log) * 0.4, 120, "40% applied")
    worker.kill()
    assert counts(settings)["in"] < len(log), "kill came too late to be mid-stream"
    start_worker(settings, **env)
    start_worker(settings, **env)
    views, alerts = reference(log, Cfg())
    last = max(m for _, m in views)
    r = redis.Redis.from_url(settings.redis_url or "")
    wait_until(lambda: int(r.hget(sk.state_key(settings.app_id), "judged") or 0) >= last
               and r.hlen(sk.unsent_key(settings.app_id)) == 0, 120, "judged and sent")
    assert int(r.hget(sk.state_key(settings.app_id), "judged") or 0) == last // MIN * MIN
    status, body = asyncio.run(get(settings, "/v1/stock", limit="500"))
    assert status == 200
    got = {item["sku"]: item for item in body["skus"]}
    want = last_views(views)
    assert sorted(got) == sorted(want)
    for sku, view in want.items():
        for f in FIELDS:
            assert got[sku][f] == pytest.approx(view[f]), (sku, f)
    docs = [orjson.loads(v) for _, _, v, _ in read_records(settings, settings.alerts_topic)]
    assert sorted({d["alert_id"] for d in docs}) == sorted(a["alert_id"] for a in alerts)
