"""Flash-sale routes on an in-process aiohttp server on loopback: every bad request gets a
clear error; create, claim, restock, end, read; alerts once per threshold."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shopstream.api import create_api
from shopstream.http_flash_sale import CLOCK
from tests.support import new_port, read_records

pytestmark = pytest.mark.integration

T0 = 1_795_000_000_000
HOUR = 3_600_000


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session, self.base, self.token = session, base, token
        self.now = T0

    async def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                   token: str | None = "admin") -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'admin' else token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.session.request(method, self.base + path, data=data,
                                        headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def client(settings) -> AsyncIterator[Client]:
    app = create_api(settings)
    c_holder: list[Client] = []
    app[CLOCK] = lambda: c_holder[0].now
    runner = web.AppRunner(app)
    await runner.setup()
    port = new_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        c = Client(session, f"http://127.0.0.1:{port}", settings.admin_token)
        c_holder.append(c)
        yield c
    await runner.cleanup()


SALE = {"sale_id": "s1", "sku": "phone-x", "stock": 20, "per_user_limit": 2,
        "starts_at": T0 + 1_000, "ends_at": T0 + HOUR, "reservation_ttl_s": 60}


async def read_at_least(settings, topic: str, n: int, envelopes: bool = False) -> list[Any]:
    """Records of ``topic`` once it holds n items (the API flushes in the background)."""
    records: list[Any] = []
    for _ in range(50):
        records = read_records(settings, topic)
        if sum(len(json.loads(v)) if envelopes else 1 for _, _, v, _ in records) >= n:
            break
        await asyncio.sleep(0.1)
    return records


def fields_of(body: dict[str, Any]) -> set[str]:
    return {f["field"] for f in body["fields"]}


async def test_bad_requests_get_clear_errors(client: Client) -> None:
    assert (await client.call("POST", "/v1/flash-sales", SALE))[0] == 201
    # wrong or missing admin token
    for token in ("wrong", None):
        st, body = await client.call("POST", "/v1/flash-sales", {**SALE, "sale_id": "s2"},
                                     token=token)
        assert (st, body["reason"]) == (401, "unauthorized")
        st, body = await client.call("PATCH", "/v1/flash-sales/s1", {"restock": 1}, token=token)
        assert (st, body["reason"]) == (401, "unauthorized")
    # create: missing and invalid fields, all reported at once
    st, body = await client.call("POST", "/v1/flash-sales", {"sale_id": "bad id!", "stock": 0})
    assert st == 400 and body["reason"] == "invalid_fields"
    assert fields_of(body) == {"sale_id", "sku", "stock", "per_user_limit", "starts_at",
                               "ends_at"}
    st, body = await client.call("POST", "/v1/flash-sales",
                                 {**SALE, "sale_id": "s3", "ends_at": SALE["starts_at"]})
    assert st == 400 and fields_of(body) == {"ends_at"}
    assert (await client.call("POST", "/v1/flash-sales", SALE))[1]["reason"] == "exists"
    # claims
    claims = "/v1/flash-sales/s1/claims"
    cases: list[tuple[Any, int, str, set[str]]] = [
        ({"qty": 1}, 400, "invalid_fields", {"user_id"}),
        ({"user_id": "u1"}, 400, "invalid_fields", {"qty"}),
        ({}, 400, "invalid_fields", {"user_id", "qty"}),
        ({"user_id": "u1", "qty": 0}, 400, "invalid_fields", {"qty"}),
        ({"user_id": "u1", "qty": -3}, 400, "invalid_fields", {"qty"}),
        ({"user_id": "u1", "qty": "1"}, 400, "invalid_fields", {"qty"}),
        ({"user_id": "", "qty": 1}, 400, "invalid_fields", {"user_id"}),
        ([1, 2], 400, "malformed_json", set()),
    ]
    for body_in, want_status, want_reason, want_fields in cases:
        st, body = await client.call("POST", claims, body_in)
        assert (st, body["reason"]) == (want_status, want_reason), body_in
        if want_fields:
            assert fields_of(body) == want_fields
    st, body = await client.call("POST", claims, raw=b'{"user_id": "u1", "qty": ')
    assert (st, body["reason"]) == (400, "malformed_json")
    st, body = await client.call("POST", "/v1/flash-sales/nope/claims", {"user_id": "u", "qty": 1})
    assert (st, body["reason"]) == (404, "unknown_sale")
    assert (await client.call("GET", "/v1/flash-sales/nope"))[0] == 404
    assert (await client.call("PATCH", "/v1/flash-sales/nope", {"end": True}))[0] == 404
    st, body = await client.call("POST", claims, {"user_id": "u1", "qty": 1})
    assert (st, body["reason"]) == (409, "not_started")
    client.now = T0 + 2_000
    st, body = await client.call("POST", claims, {"user_id": "u1", "qty": 3})
    assert (st, body["reason"]) == (409, "limit_exceeded")  # qty over the per-user limit
    st, body = await client.call("POST", claims, {"user_id": "u1", "qty": 2})
    assert st == 200 and body["expires_at"] == client.now + 60_000
    st, body = await client.call("POST", claims, {"user_id": "u1", "qty": 1})
    assert (st, body["reason"]) == (409, "limit_exceeded")
    # patch: invalid bodies, then end the sale
    for bad in ({}, {"restock": 0}, {"end": False}, {"stock": 5}):
        st, body = await client.call("PATCH", "/v1/flash-sales/s1", bad)
        assert (st, body["reason"]) == (400, "invalid_fields"), bad
    assert (await client.call("PATCH", "/v1/flash-sales/s1", {"end": True}))[0] == 200
    st, body = await client.call("POST", claims, {"user_id": "u2", "qty": 1})
    assert (st, body["reason"]) == (409, "ended")
    client.now = T0 + 2 * HOUR
    st, view = await client.call("GET", "/v1/flash-sales/s1")
    assert view["state"] == "ended"
    assert view["claims"] == {"ok": 1, "sold_out": 0, "limit_exceeded": 2, "not_started": 1,
                              "ended": 1}


async def test_sale_lifecycle_view_and_alerts(client: Client, settings) -> None:
    sale = {**SALE, "stock": 10, "per_user_limit": 10, "low_stock_pct": [50, 20]}
    st, view = await client.call("POST", "/v1/flash-sales", sale)
    assert st == 201 and view["available"] == 10 and view["state"] == "scheduled"
    client.now = T0 + 10_000
    claims = "/v1/flash-sales/s1/claims"
    rids = []
    for i in range(12):
        st, body = await client.call("POST", claims, {"user_id": f"u{i}", "qty": 1})
        assert st == (200 if i < 10 else 409)
        if st == 200:
            rids.append(body["reservation_id"])
        else:
            assert body["reason"] == "sold_out"
    assert len(set(rids)) == 10
    st, view = await client.call("PATCH", "/v1/flash-sales/s1", {"restock": 5})
    assert (view["available"], view["reserved"], view["restocked"]) == (5, 10, 5)
    st, body = await client.call("POST", claims, {"user_id": "late", "qty": 5})
    assert st == 200
    client.now = T0 + 20_000
    st, view = await client.call("GET", "/v1/flash-sales/s1")
    assert (view["available"], view["reserved"], view["sold"], view["stock"]) == (0, 15, 0, 10)
    assert view["sell_through"] == 0.0 and view["state"] == "live"
    assert view["claim_rate_units_per_s"] == round(15 / 60, 3)
    assert view["estimated_sell_out_at"] is None  # nothing left
    # alerts: 50% and 20% low stock and sold out, each once although sold out twice
    records = await read_at_least(settings, settings.alerts_topic, 3)
    alerts = sorted(json.loads(v)["alert_id"] for _, _, v, _ in records)
    assert alerts == ["s1:low:20", "s1:low:50", "s1:sold_out"]
    # the claim events reached the events topic
    records = await read_at_least(settings, settings.events_topic, 11, envelopes=True)
    events = [e for _, _, v, _ in records for e in json.loads(v)]
    assert sorted(e["reservation_id"] for e in events) == sorted([*rids, body["reservation_id"]])
    assert {e["type"] for e in events} == {"flash_sale_claim"}
    assert {e["sku"] for e in events} == {"phone-x"}


async def test_numbers_near_int64_are_refused_before_anything_is_written(client: Client) -> None:
    huge = {"stock": 2**63, "per_user_limit": 2**63, "reservation_ttl_s": 2**63}
    st, body = await client.call("POST", "/v1/flash-sales", {**SALE, "sale_id": "big", **huge})
    assert st == 400 and fields_of(body) == set(huge)
    st, _ = await client.call("GET", "/v1/flash-sales/big")
    assert st == 404
    # sale ids are matched whole: a trailing newline is not part of a valid id
    st, body = await client.call("POST", "/v1/flash-sales", {**SALE, "sale_id": "abc\n"})
    assert st == 400 and fields_of(body) == {"sale_id"}
    sale = {**SALE, "sale_id": "near", "stock": 10**9}
    assert (await client.call("POST", "/v1/flash-sales", sale))[0] == 201
    st, body = await client.call("PATCH", "/v1/flash-sales/near", {"restock": 2**63})
    assert st == 400 and fields_of(body) == {"restock"}
    for _ in range(1000):  # 10**9 + 999 restocks of 10**9 = 10**12: the next one is refused
        st, body = await client.call("PATCH", "/v1/flash-sales/near", {"restock": 10**9})
        if st != 200:
            break
    assert (st, body["reason"]) == (409, "stock_limit")
    st, view = await client.call("GET", "/v1/flash-sales/near")
    assert st == 200 and view["stock"] + view["restocked"] <= 10**12
    assert view["available"] == view["stock"] + view["restocked"]
    st, body = await client.call("POST", "/v1/flash-sales/near/claims",
                                 {"user_id": "u1", "qty": 2**63}, token=None)
    assert st == 400 and fields_of(body) == {"qty"}
