"""The customer loop's routes: the keys their doc table names (checked against a live API),
JSON 400s for bad parameters, 404s for what was never seen, empty answers before any event."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp.test_utils import TestClient, TestServer

from shopstream.api import create_api
from shopstream.core.settings import Settings
from tests.shopstream.test_docs_auth import ROLES, route_rows

pytestmark = pytest.mark.integration


async def test_route_table_names_the_keys_the_api_asks_for(settings: Settings) -> None:
    rows = route_rows("docs/customers.md")
    assert [(m, p) for m, p, _ in rows] == [
        ("GET", "/v1/customers/tiers"), ("GET", "/v1/customers/{user_id}"),
        ("GET", "/v1/tasks"), ("POST", "/v1/tasks/{task_id}/ack")]
    s = dataclasses.replace(settings, ingest_key="in-" + "k" * 20, read_key="rd-" + "k" * 20,
                            admin_token="ad-" + "k" * 20)
    async with TestClient(TestServer(create_api(s))) as client:
        for method, path, auth in rows:
            path = path.replace("{user_id}", "nobody").replace("{task_id}", "nope")
            for role, name in ROLES.items():
                headers = {"Authorization": f"Bearer {getattr(s, name)}"}
                resp = await client.request(method, path, headers=headers)
                assert (resp.status == 401) == (auth != role), (method, path, auth, role)


async def test_bad_parameters_and_unknown_ids(settings: Settings) -> None:
    async with TestClient(TestServer(create_api(settings))) as client:
        resp = await client.get("/v1/customers/tiers")
        assert await resp.json() == {"tiers": [{"tier": "new", "users": 0},
                                               {"tier": "potential", "users": 0},
                                               {"tier": "loyal", "users": 0}]}
        for path in ("/v1/customers/nobody", "/v1/tasks/nope/ack"):
            method = client.post if path.endswith("ack") else client.get
            resp = await method(path, headers={
                "Authorization": f"Bearer {settings.admin_token}"})
            assert resp.status == 404 and "error" in await resp.json()
        resp = await client.get("/v1/customers/" + "u" * 129)
        assert resp.status == 400
        assert (await resp.json())["error"] == (
            "user_id: expected non-empty string of at most 128 bytes, got 129 bytes")
        for params, name in (({"status": "done"}, "status"), ({"limit": "0"}, "limit"),
                             ({"offset": "-1"}, "offset")):
            resp = await client.get("/v1/tasks", params=params)
            assert resp.status == 400 and (await resp.json())["error"].startswith(name)
        resp = await client.get("/v1/tasks")
        assert await resp.json() == {"total": 0, "tasks": []}
