"""``GET /v1/traffic`` takes the read key and refuses bad parameters with the same JSON 400s as
the other time-series routes, and a window over the row cap with the cap; an empty window
answers no bucket."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from shopstream.agents.read_caps import MAX_ROWS
from shopstream.api import create_api
from shopstream.core.settings import Settings
from shopstream.http_common import MAX_TIME_MS
from shopstream.sinks.traffic.keys import index_key
from tests.shopstream.test_read_bounds import HUGE, _json_400

pytestmark = pytest.mark.integration


async def test_bad_parameters_answer_json_400(settings: Settings) -> None:
    async with TestClient(TestServer(create_api(settings))) as client:
        for name in ("from", "to"):
            for raw in HUGE:
                body = await _json_400(client, "/v1/traffic", {name: raw})
                assert (body["parameter"], body["min"], body["max"]) == (name, 0, MAX_TIME_MS)
        body = await _json_400(client, "/v1/traffic", {"from": "10", "to": "5"})
        assert body["error"] == "to: expected >= from"
        body = await _json_400(client, "/v1/traffic", {"res": "week"})
        assert body["error"] == "res: expected one of ['minute', 'hour', 'day'], got 'week'"
        body = await _json_400(client, "/v1/traffic", {"by": "region"})
        assert body["error"] == ("by: expected one of ['channel', 'campaign', 'none'], "
                                 "got 'region'")
        resp = await client.get("/v1/traffic", params={"res": "day", "by": "campaign"})
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"from": 0, "to": MAX_TIME_MS, "buckets": [],
                                     "late_events": 0, "res": "day", "by": "campaign"}


async def test_a_window_over_the_row_cap_is_refused(settings: Settings) -> None:
    r = Redis.from_url(settings.redis_url)
    per = MAX_ROWS // settings.partitions + 1
    for p in range(settings.partitions):
        await r.zadd(index_key(settings.app_id, p, "h"),
                     {str(h * 3_600_000): h * 3_600_000 for h in range(per)})
    await r.aclose()
    async with TestClient(TestServer(create_api(settings))) as client:
        body = await _json_400(client, "/v1/traffic", {"res": "hour"})
        assert (body["reason"], body["limit"], body["cap"]) == ("too_large", "rows", MAX_ROWS)
        resp = await client.get("/v1/traffic", params={"res": "minute"})
        assert resp.status == 200, await resp.text()


async def test_the_read_key_is_required(settings: Settings) -> None:
    s = dataclasses.replace(settings, read_key="rd-" + "k" * 20, ingest_key="in-" + "k" * 20)
    async with TestClient(TestServer(create_api(s))) as client:
        for key in (None, s.ingest_key):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            resp = await client.get("/v1/traffic", headers=headers)
            assert resp.status == 401, await resp.text()
        resp = await client.get("/v1/traffic",
                                headers={"Authorization": f"Bearer {s.read_key}"})
        assert resp.status == 200, await resp.text()
