"""The API as a contract: schemathesis generates requests from shopstream/openapi.json against a
live API on the real broker and redis-server; no answer is a 5xx, every answer matches the
document (status codes, content types, bodies)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shopstream.api import create_api
from tests.support import new_port, wait_until

pytestmark = [pytest.mark.integration]

DOC = Path(__file__).resolve().parents[2] / "shopstream" / "openapi.json"
schema = schemathesis.openapi.from_dict(json.loads(DOC.read_text()))


@pytest.fixture(scope="module")
def base_url(infra) -> Iterator[str]:
    """The API in a thread with its own event loop, for schemathesis's blocking client."""
    import asyncio

    port = new_port()
    loop = asyncio.new_event_loop()
    runner: list[web.AppRunner] = []

    async def start() -> None:
        r = web.AppRunner(create_api(infra.settings()))
        await r.setup()
        await web.TCPSite(r, "127.0.0.1", port).start()
        runner.append(r)

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    wait_until(lambda: runner, 10, "api up")
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)


@schema.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_api_matches_its_document(case, base_url):
    # Every answer conforms; the loose Event schema does not promise that all schema-valid
    # bodies are accepted (the event types' rules are in README, Semantics).
    case.call_and_validate(base_url=base_url, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance,
        response_schema_conformance])


def test_the_document_is_served_as_in_the_repository(base_url):
    import urllib.request

    with urllib.request.urlopen(f"{base_url}/openapi.json", timeout=5) as resp:
        assert json.loads(resp.read()) == json.loads(DOC.read_text())
