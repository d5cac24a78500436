"""Live rooms and the shop's pulse through real Kafka and Redis, answered by the API, compared
with the plain-Python reference (tests/agents/live_ref.py) room by room and minute by minute."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from shopstream.agents.registry import build_agents
from shopstream.api import create_api
from shopstream.core.settings import Settings
from shopstream.kafka_io.envelope_producer import EnvelopeProducer
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.redis_state import make_redis
from tests.agents.live_ref import (
    MEASURES,
    generate,
    live_reference,
    pulse_reference,
)
from tests.support import counts, process_topic

pytestmark = pytest.mark.integration

IDLE, ATTRIBUTION, LATENESS = 5 * 60_000, 30 * 60_000, 5 * 60_000
PULSE = ("orders", "cancellations", "payments_success", "payments_failed", "paid_gmv",
         "new_buyers", "returning_buyers")


def produce(settings: Settings, log: list[dict[str, Any]]) -> None:
    prod = EnvelopeProducer(settings, max_events=200)
    for ev in log:
        prod.add(ev)
    prod.flush()


async def check_rooms(settings: Settings, want: dict[str, dict[str, Any]]) -> int:
    """Every room's answer equals the reference; returns the minutes compared."""
    compared = 0
    async with TestClient(TestServer(create_api(settings))) as client:
        for room, ans in sorted(want.items()):
            resp = await client.get(f"/v1/live/rooms/{room}")
            assert resp.status == 200, (room, await resp.text())
            body = await resp.json()
            for k in ("viewers_now", "unique_viewers", "buyers", "viewer_buyers"):
                assert body[k] == ans[k], (room, k)
            got = {b["start"]: b for b in body["buckets"]}
            assert sorted(got) == sorted(ans["series"]), room
            for m, row in ans["series"].items():
                for k in MEASURES:
                    if not k.startswith("watch_bucket"):
                        assert got[m][k] == row[k], (room, m, k)
            hist = [h["views"] for h in body["totals"]["watch_histogram"]]
            assert hist == [sum(r[f"watch_bucket_{i}"] for r in ans["series"].values())
                            for i in range(6)], room
            if ans["series"]:
                peak = max(r["viewers"] for r in ans["series"].values())
                assert body["peak"]["viewers"] == peak
                assert body["unique_viewers"] == 0 or body["conversion"] == pytest.approx(
                    ans["viewer_buyers"] / ans["unique_viewers"])
            compared += len(got)
        assert (await client.get("/v1/live/rooms/nope")).status == 404
        assert (await client.get("/v1/live/rooms/room1", params={"res": "week"})).status == 400
    return compared


async def check_pulse(settings: Settings, rows: dict, skus: dict, late: int) -> int:
    async with TestClient(TestServer(create_api(settings))) as client:
        resp = await client.get("/v1/ops/summary", params={"by": "channel", "top": "100"})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    got = {b["start"]: b["by"] for b in body["buckets"]}
    assert sorted(got) == sorted(rows)
    for m, by in rows.items():
        for ch, row in by.items():
            for k in PULSE:
                assert got[m][ch][k] == row.get(k, 0), (m, ch, k)
    ranked = sorted(skus.items(), key=lambda kv: (-kv[1][0], kv[0]))[:100]
    assert [(s["sku"], s["units"], s["gmv"]) for s in body["top_skus"]["by_units"]] == [
        (sku, u, g) for sku, (u, g) in ranked]
    assert body["late_events"] == late
    return len(got)


async def test_rooms_and_pulse_match_the_reference(settings: Settings) -> None:
    settings = dataclasses.replace(settings, sections={}, partitions=settings.partitions)
    log = generate(n_rooms=1_100, n_users=4_000, seed=7)
    produce(settings, log)
    metrics = Metrics()
    r = make_redis(settings)
    agents = build_agents(settings, r, metrics)
    await process_topic(settings, agents=agents, batch_records=40)
    home = {e["event_id"] for e in log}
    assert counts(settings)["processed"] == len(home)
    want, late = live_reference(log, settings.partitions, IDLE, ATTRIBUTION, LATENESS)
    assert len(want) >= 1_000
    # The log has the edge cases the definitions speak of.
    assert sum(a["viewers_now"] for a in want.values()) > 0
    assert late > 50
    minutes = await check_rooms(settings, want)
    assert metrics.registry.get_sample_value(
        "shopstream_events_late_total", {"agent": "live"}) == late
    rows, skus, pulse_late = pulse_reference(log, settings.partitions, LATENESS)
    assert await check_pulse(settings, rows, skus, pulse_late) > 100
    await r.aclose()
    print(f"\n{len(log)} events, {len(want)} rooms, {minutes} room-minutes compared")
