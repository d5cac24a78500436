"""Traffic value through a real broker, real Redis and real worker processes, one SIGKILLed
mid-stream and two workers finishing, then a replay under another app id: ``GET /v1/traffic``
equals the plain-Python reference (tests/agents/traffic_ref.py) bucket by bucket at every
resolution, by channel and by campaign."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from shopstream.api import create_api
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.kafka_io.partitioner import partition_for
from tests.agents.traffic_ref import MIN, T0, generate, ratios, traffic_reference
from tests.support import Proc, counts, process_topic, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

COUNTS = ("uv", "pv", "sessions", "bounces", "dwell_ms", "orders", "paid_orders", "paid_gmv")
#: Redis bytes per user of the agent's per-user state on this heavy log (20 events, several
#: channels and campaigns per user; docs/traffic.md).
USER_BYTES_CAP = 230


def produce(settings: Settings, log: list[dict[str, Any]]) -> None:
    prod = EnvelopeProducer(settings, max_events=20)
    for ev in log:
        prod.add(ev)
    prod.flush()


def expected(row: dict[str, int]) -> dict[str, Any]:
    return {**{k: row.get(k, 0) for k in COUNTS}, **ratios(row)}


def answered(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in (*COUNTS, "bounce_rate", "avg_dwell_ms", "conversion", "aov",
                                "uv_value")}


async def check_api(settings: Settings, want: dict[tuple[str, int, str], dict[str, int]]) -> int:
    """Every bucket of every resolution, by channel and by campaign, equals the reference;
    returns the rows compared."""
    compared = 0
    async with TestClient(TestServer(create_api(settings))) as client:
        for res in ("minute", "hour", "day"):
            for by, prefix in (("channel", "c:"), ("campaign", "k:")):
                resp = await client.get("/v1/traffic", params={"res": res, "by": by})
                assert resp.status == 200, await resp.text()
                body = await resp.json()
                assert body["late_events"] == 0
                starts = sorted(s for (r, s, d) in want if r == res and d == "*")
                assert [b["start"] for b in body["buckets"]] == starts
                for b in body["buckets"]:
                    row = want[(res, b["start"], "*")]
                    assert answered(b) == expected(row), (res, b["start"])
                    search = want.get((res, b["start"], "c:search"), {}).get("uv", 0)
                    assert b["search_share"] == (search / row["uv"] if row.get("uv") else None)
                    split = {d[2:]: expected(r) for (rr, s, d), r in want.items()
                             if rr == res and s == b["start"] and d.startswith(prefix)}
                    assert {k: answered(v) for k, v in b["by"].items()} == split
                    compared += 1 + len(split)
    return compared


async def test_sigkill_mid_stream_then_two_workers_equal_reference(
    settings: Settings, start_worker: Callable[..., Proc]
) -> None:
    settings = dataclasses.replace(settings, batch_max_records=10)
    log = generate(n_events=6_000, n_users=300, seed=3, span_ms=100 * MIN)
    distinct = len({e["event_id"] for e in log})
    half = len(log) // 2
    produce(settings, log[:half])
    first = start_worker(settings, SHOPSTREAM_AGENTS="traffic")
    wait_until(lambda: counts(settings).get("processed", 0) > 600, 60, "first batches",
               interval=0.05)
    first.kill()
    assert counts(settings)["processed"] < distinct
    produce(settings, log[half:])
    workers = [start_worker(settings, SHOPSTREAM_AGENTS="traffic") for _ in range(2)]
    wait_until(lambda: counts(settings).get("processed", 0) >= distinct, 90,
               "all events processed")
    for w in workers:
        assert w.popen.poll() is None, w.log_text()[-2000:]
    assert counts(settings)["processed"] == distinct
    want = traffic_reference(log)
    assert await check_api(settings, want) > 2_000
    r = redis.Redis.from_url(settings.redis_url)
    user_keys = list(r.scan_iter(f"{settings.app_id}:*:traffic:u:*", count=1_000))
    assert len(user_keys) == len({e["user_id"] for e in log})
    per_user = sum(r.memory_usage(k) or 0 for k in user_keys) / len(user_keys)
    assert all(r.pttl(k) > 0 for k in user_keys[:20])
    r.close()
    print(f"traffic state: {per_user:.0f} bytes per user")
    assert per_user <= USER_BYTES_CAP, per_user
    # A replay of the same log (another app id, one worker from the start) answers the same.
    replay = dataclasses.replace(settings, app_id=f"{settings.app_id}-replay")
    start_worker(replay, SHOPSTREAM_AGENTS="traffic")
    wait_until(lambda: counts(replay).get("processed", 0) >= distinct, 90, "the replay")
    assert await check_api(replay, want) > 2_000


async def test_late_events_are_left_out_and_counted(settings: Settings) -> None:
    """An event older than the partition's watermark minus the lateness (5 minutes) counts
    nowhere but in ``late_events``; one within it counts in its own minute."""
    settings = dataclasses.replace(settings, agents="traffic")
    a, b, c = [u for u in (f"x{i}" for i in range(100))
               if partition_for(u, settings.partitions) == 0][:3]
    t = T0 - T0 % MIN
    produce(settings, [
        {"event_id": "1", "type": "page_view", "ts": t, "user_id": a, "page": "/", "channel":
         "search"},
        {"event_id": "2", "type": "page_view", "ts": t + 10 * MIN, "user_id": a, "page": "/"},
        {"event_id": "3", "type": "page_view", "ts": t + MIN, "user_id": b, "page": "/"},
        {"event_id": "4", "type": "order_submit", "ts": t + 9 * MIN, "user_id": c,
         "order_id": "o", "amount": 100, "items": [{"sku": "k", "qty": 1, "price": 100}]},
    ])
    await process_topic(settings, batch_records=1)
    async with TestClient(TestServer(create_api(settings))) as client:
        body = await (await client.get("/v1/traffic", params={"by": "channel"})).json()
    assert body["late_events"] == 1
    got = {b["start"] - t: (b["uv"], b["pv"], b["sessions"], b["bounces"], b["dwell_ms"],
                            b["orders"], list(b["by"])) for b in body["buckets"]}
    assert got == {0: (1, 1, 1, 0, 10 * MIN, 0, ["search"]),
                   9 * MIN: (0, 0, 1, 0, 0, 1, ["other"]),
                   10 * MIN: (1, 1, 0, 0, 0, 0, ["other"])}
