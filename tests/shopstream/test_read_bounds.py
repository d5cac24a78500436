"""Every read is bounded: query integers out of range, windows over the row cap and a stalled
Redis all answer JSON (400 naming the parameter or the cap; 503 with Retry-After), never a
bare 500."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from shopstream.agents.read_caps import MAX_ROWS
from shopstream.api import create_api
from shopstream.core.settings import Settings
from shopstream.http_common import MAX_TIME_MS
from shopstream.infra import start_redis, stop
from shopstream.sinks.event_stats.keys import stats_index_key
from tests.support import Infra, Proc, new_port, wait_until

pytestmark = pytest.mark.integration

#: Every route that reads a time window.
WINDOWED = ("/v1/stats", "/v1/ops/summary", "/v1/ops/anomalies", "/v1/funnels/purchase",
            "/v1/live/rooms/room1", "/v1/ads")
HUGE = ("18446744073709551616", "-9223372036854775809", "9223372036854775808", "-1",
        str(MAX_TIME_MS + 1), "1e3", "12abc")


async def _json_400(client: TestClient, path: str, params: dict[str, str]) -> dict:
    resp = await client.get(path, params=params)
    assert resp.status == 400, (path, params, resp.status, await resp.text())
    assert resp.content_type == "application/json", (path, params)
    return await resp.json()


async def test_out_of_range_integers_answer_400_naming_the_parameter(settings: Settings) -> None:
    async with TestClient(TestServer(create_api(settings))) as client:
        for path in WINDOWED:
            for name in ("from", "to"):
                for raw in HUGE:
                    body = await _json_400(client, path, {name: raw})
                    assert body["error"].startswith(f"{name}: expected"), body
                    assert f"0..{MAX_TIME_MS}" in body["error"], body
                    assert (body["parameter"], body["min"], body["max"]) == (
                        name, 0, MAX_TIME_MS)
            # The bounds themselves are accepted.
            resp = await client.get(path, params={"from": "0", "to": str(MAX_TIME_MS)})
            assert resp.status in (200, 404), (path, await resp.text())
        for path, name, bad, (low, high) in (
            ("/v1/ops/summary", "top", "101", (1, 100)),
            ("/v1/ops/summary", "top", "18446744073709551616", (1, 100)),
            ("/v1/live/rooms", "limit", "0", (1, 500)),
            ("/v1/live/rooms", "limit", "501", (1, 500)),
            ("/v1/live/rooms", "offset", "-9223372036854775809", (0, 1_000_000)),
        ):
            body = await _json_400(client, path, {name: bad})
            assert (body["parameter"], body["min"], body["max"]) == (name, low, high), body


async def test_a_window_over_the_row_cap_is_refused_with_the_cap(settings: Settings) -> None:
    r = Redis.from_url(settings.redis_url)
    # One more indexed minute than the cap, spread over the partitions (rows need not exist
    # for the count: the cap is checked before any row is read).
    per = MAX_ROWS // settings.partitions + 1
    for p in range(settings.partitions):
        await r.zadd(stats_index_key(settings.app_id, p),
                     {str(m * 60_000): m * 60_000 for m in range(per)})
    await r.aclose()
    async with TestClient(TestServer(create_api(settings))) as client:
        body = await _json_400(client, "/v1/stats", {})
        assert (body["reason"], body["limit"], body["cap"]) == ("too_large", "rows", MAX_ROWS)
        assert "narrow from/to" in body["error"]
        # A window holding fewer rows than the cap is read.
        resp = await client.get("/v1/stats", params={"to": str(1_000 * 60_000)})
        assert resp.status == 200, await resp.text()
        assert len((await resp.json())["minutes"]) == 1_000


async def test_stalled_redis_answers_json_503_with_retry_after(infra: Infra,
                                                               tmp_path: Path) -> None:
    proc, url = start_redis(data_dir=tmp_path / "redis")
    try:
        settings = infra.settings(redis_url=url, redis_timeout_s=1.0)
        async with TestClient(TestServer(create_api(settings))) as client:
            reads = ["/healthz", *WINDOWED, "/v1/live/rooms", "/v1/funnels"]
            for path in reads:  # healthy: no 5xx
                resp = await client.get(path)
                assert resp.status < 500, (path, await resp.text())
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                for path in [p for p in reads if p != "/v1/funnels"]:
                    started = time.monotonic()
                    resp = await client.get(path)
                    assert resp.status == 503, (path, resp.status, await resp.text())
                    assert resp.content_type == "application/json", path
                    assert resp.headers["Retry-After"].isdigit(), path
                    body = await resp.json()
                    assert body["reason"] == "redis_unavailable", body
                    assert time.monotonic() - started < 10, path
                livez = await client.get("/livez")
                assert livez.status == 200
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            # Redis back: the same routes answer again.
            resp = await client.get("/healthz")
            assert resp.status == 200, await resp.text()
    finally:
        stop(proc)


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except OSError:
        return 0, {}, b""


def test_worker_healthz_answers_json_503_while_redis_is_stalled(
    infra: Infra, tmp_path: Path, spawn: Callable[..., Proc]
) -> None:
    proc, url = start_redis(data_dir=tmp_path / "redis")
    try:
        settings = infra.settings(redis_url=url, redis_timeout_s=1.0)
        port = new_port()
        worker = spawn(settings, "worker", "--web-port", str(port))
        healthz = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda: _get(healthz)[0] == 200, 90, "worker /healthz")
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            status, headers, body = _get(healthz)
            assert status == 503, (status, body, worker.log_text()[-2000:])
            assert headers["Content-Type"].startswith("application/json")
            assert headers["Retry-After"].isdigit()
            assert json.loads(body)["status"] == "redis unavailable"
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        wait_until(lambda: _get(healthz)[0] == 200, 60, "worker /healthz again")
    finally:
        stop(proc)
