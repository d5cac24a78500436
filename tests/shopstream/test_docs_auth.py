"""The route tables of the docs say which key each route needs: checked against a live API."""

from __future__ import annotations

import dataclasses
import re

import aiohttp
import pytest
from aiohttp import web

from shopstream.api import create_api
from tests.support import ROOT, new_port

pytestmark = [pytest.mark.integration]

#: The docs' words for a key, and the settings field holding it.
ROLES = {"admin": "admin_token", "ingest": "ingest_key", "read": "read_key"}


def route_rows(doc: str) -> list[tuple[str, str, str]]:
    """(method, path, auth) of each row of the doc's ``| route | auth | answers |`` table."""
    rows = []
    for line in (ROOT / doc).read_text().splitlines():
        m = re.match(r"\| `(GET|POST|PATCH|PUT|DELETE) (/\S+?)`[^|]*\| (\w+) \|", line)
        if m:
            rows.append((m[1], m[2].replace("{id}", "no-such-sale"), m[3]))
    return rows


async def test_flash_sale_route_table_names_the_keys_the_api_asks_for(settings):
    rows = route_rows("docs/flash-sales.md")
    assert len(rows) == 5
    s = dataclasses.replace(settings, ingest_key="in-" + "k" * 20, read_key="rd-" + "k" * 20,
                            admin_token="ad-" + "k" * 20)
    runner = web.AppRunner(create_api(s))
    await runner.setup()
    port = new_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            for method, path, auth in rows:
                assert auth == "none" or auth in ROLES, f"{method} {path}: unknown auth {auth!r}"
                for role, name in ROLES.items():
                    headers = {"Authorization": f"Bearer {getattr(s, name)}"}
                    async with session.request(method, path, headers=headers, json={}) as resp:
                        refused = resp.status == 401
                    # The documented key gets past the guard; every other key is refused.
                    assert refused == (auth not in ("none", role)), (method, path, auth, role)
    finally:
        await runner.cleanup()
