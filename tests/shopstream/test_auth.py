"""Keys at the front door: writes need the ingest key, reads the read key, probes and the
dashboard page stay open;
off loopback the API refuses to start without keys or with the demo admin token; secrets
never appear in ``shopstream config``."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import aiohttp
import pytest
from aiohttp import web

from shopstream.api import create_api
from shopstream.core.errors import ConfigError
from shopstream.http_auth import check_exposure
from tests.support import ROOT, new_port, settings_env

pytestmark = [pytest.mark.integration]

EVENT = {"event_id": "a1", "type": "page_view", "ts": 1_794_326_400_000, "user_id": "u1",
         "page": "home"}


@pytest.fixture
async def keyed(settings):
    s = dataclasses.replace(settings, ingest_key="in-" + "k" * 20, read_key="rd-" + "k" * 20,
                            admin_token="ad-" + "k" * 20)
    runner = web.AppRunner(create_api(s))
    await runner.setup()
    port = new_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        yield s, session
    await runner.cleanup()


async def _status(session, method, path, key=None, body=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with session.request(method, path, headers=headers, json=body) as resp:
        return resp.status, (await resp.json() if resp.content_type == "application/json" else {})


async def test_keys_guard_writes_and_reads(keyed):
    s, session = keyed
    for key in (None, "wrong", s.read_key):
        st, body = await _status(session, "POST", "/v1/events", key, EVENT)
        assert (st, body["reason"]) == (401, "unauthorized")
    assert (await _status(session, "POST", "/v1/events", s.ingest_key, EVENT))[0] == 200
    for key in (None, s.ingest_key):
        assert (await _status(session, "GET", "/v1/stats", key))[0] == 401
        assert (await _status(session, "GET", "/v1/funnels", key))[0] == 401
        assert (await _status(session, "GET", "/v1/pipeline", key))[0] == 401
        assert (await _status(session, "GET", "/v1/flash-sales", key))[0] == 401
    assert (await _status(session, "GET", "/v1/stats", s.read_key))[0] == 200
    st, _ = await _status(session, "POST", "/v1/flash-sales/x/claims", None,
                          {"user_id": "u", "qty": 1})
    assert st == 401
    # creating a sale still takes the admin token, not the ingest key
    st, body = await _status(session, "POST", "/v1/flash-sales", s.ingest_key, {})
    assert (st, body["reason"]) == (401, "unauthorized")
    for probe in ("/livez", "/readyz", "/metrics"):
        assert (await _status(session, "GET", probe))[0] == 200
    # the dashboard holds no data: the page and its assets load without a key
    for page in ("/", "/dashboard/app.js", "/dashboard/draw.js", "/dashboard/money.js",
                 "/dashboard/style.css"):
        assert (await _status(session, "GET", page))[0] == 200


def test_off_loopback_needs_keys_and_a_real_admin_token(settings):
    check_exposure(dataclasses.replace(settings, api_host="127.0.0.1"))
    with pytest.raises(ConfigError, match="ingest_key, read_key, admin_token"):
        check_exposure(dataclasses.replace(settings, api_host="0.0.0.0"))
    check_exposure(dataclasses.replace(settings, api_host="0.0.0.0", ingest_key="i" * 24,
                                       read_key="r" * 24, admin_token="a" * 24))
    out = subprocess.run([sys.executable, "-m", "shopstream", "api", "--host", "0.0.0.0"],
                         cwd=ROOT, env=settings_env(settings), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 3 and "reachable from other machines" in out.stderr


def test_config_masks_every_secret(settings):
    env = {**settings_env(settings), "SHOPSTREAM_INGEST_KEY": "ingest-secret-1",
           "SHOPSTREAM_READ_KEY": "read-secret-2", "SHOPSTREAM_ADMIN_TOKEN": "admin-secret-3",
           "SHOPSTREAM_REDIS_URL": "redis://:redis-secret-4@127.0.0.1:1/0"}
    out = subprocess.run([sys.executable, "-m", "shopstream", "config"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for secret in ("ingest-secret-1", "read-secret-2", "admin-secret-3", "redis-secret-4"):
        assert secret not in out.stdout
    shown = json.loads(out.stdout)
    assert shown["redis_url"] == "redis://:***@127.0.0.1:1/0" and shown["read_key"] == "***"


async def test_requests_are_counted_by_route_template_and_status_class(keyed):
    s, session = keyed
    await _status(session, "GET", "/v1/flash-sales/some-sale", s.read_key)
    await _status(session, "GET", "/v1/flash-sales/other-sale", s.read_key)
    await _status(session, "GET", "/v1/stats", None)
    async with session.get("/metrics") as resp:
        text = await resp.text()
    lines = {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
             if ln.startswith(("shopstream_api_requests_total{", "shopstream_build_info{"))}
    route = 'route="/v1/flash-sales/{sale_id}",status="4xx"'
    assert lines[f"shopstream_api_requests_total{{{route}}}"] == 2
    assert lines['shopstream_api_requests_total{route="/v1/stats",status="4xx"}'] == 1
    assert not any("some-sale" in k for k in lines)
    assert any(k.startswith("shopstream_build_info{version=") for k in lines)
    # Only what the API maintains (and its process): no frozen copies of worker series.
    assert "process_resident_memory_bytes" in text
    for worker_series in ("shopstream_events_total", "shopstream_batches_total",
                          "shopstream_flash_sale_units", "shopstream_redis_up"):
        assert worker_series not in text


@pytest.mark.parametrize("weak", ["a", "short-key-15-ch"])
@pytest.mark.parametrize("role", ["ingest_key", "read_key", "admin_token"])
def test_off_loopback_refuses_weak_keys(settings, role, weak):
    strong = {"ingest_key": "i" * 16, "read_key": "r" * 16, "admin_token": "a" * 16}
    check_exposure(dataclasses.replace(settings, api_host="0.0.0.0", **strong))
    check_exposure(dataclasses.replace(settings, api_host="127.0.0.1", **{**strong, role: "a"}))
    with pytest.raises(ConfigError, match=f"{role} \\(at least 16 characters"):
        check_exposure(dataclasses.replace(settings, api_host="0.0.0.0", **{**strong, role: weak}))


def test_keys_with_surrounding_spaces_are_refused_at_load(settings):
    """A header's value loses its surrounding spaces on the way, so such a key never matches."""
    for role, var in (("ingest_key", "SHOPSTREAM_INGEST_KEY"), ("read_key", "SHOPSTREAM_READ_KEY"),
                      ("admin_token", "SHOPSTREAM_ADMIN_TOKEN")):
        for bad in (" " * 20, " padded-key-0123456789", "padded-key-0123456789\t"):
            with pytest.raises(ConfigError, match=f"{role}: expected a key without"):
                dataclasses.replace(settings, **{role: bad})
        env = {**settings_env(settings), var: "   "}
        out = subprocess.run([sys.executable, "-m", "shopstream", "config"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 3 and f"{role}: expected a key without" in out.stderr
