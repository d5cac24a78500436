"""Live reads stay bounded: a room's series is built from the minutes that exist, rooms on air
leave after a silence of event time, and the on-air list is a page with a total."""

from __future__ import annotations

import dataclasses
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from shopstream.agents.live.agent import LiveRooms
from shopstream.agents.live.query import room_series
from shopstream.agents.live.rules import MEASURES
from shopstream.agents.read_caps import MAX_BUCKETS, MAX_PAGE, ReadTooLarge
from shopstream.agents.registry import build_agents
from shopstream.api import create_api
from shopstream.core.settings import Settings
from shopstream.monitoring.metrics import Metrics
from shopstream.sinks.redis_state import make_redis
from tests.agents.test_live_ops import produce
from tests.support import process_topic, users_by_partition

#: A year before these tests were written: a year later is still in the past, so the bound on
#: the future (max_future_ms) never refuses an event here.
T0 = 1_760_000_000_000
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
SILENCE = 6 * HOUR  # the default of live.on_air_silence_ms


def ev(eid: str, etype: str, ts: int, user: str, room: str) -> dict[str, Any]:
    return {"event_id": eid, "type": etype, "ts": ts, "user_id": user, "room_id": room}


@pytest.mark.integration
async def test_a_room_active_a_year_apart_answers_a_few_rows(settings: Settings) -> None:
    settings = dataclasses.replace(settings, agents="live")
    a, b = users_by_partition(settings.partitions, "u")[:2]
    year = 360 * DAY
    produce(settings, [
        ev("c1", "live_comment", T0, a, "far"), ev("c2", "live_comment", T0 + year, b, "far"),
        # A view opened on one partition whose watermark then stands still, and a comment a
        # year later on another: the viewer is present every minute in between.
        ev("j1", "live_join", T0, a, "held"), ev("c3", "live_comment", T0 + year, b, "held"),
    ])
    await process_topic(settings)
    async with TestClient(TestServer(create_api(settings))) as client:
        for res in ("minute", "hour", "day"):
            resp = await client.get("/v1/live/rooms/far", params={"res": res})
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            assert [x["comments"] for x in body["buckets"]] == [1, 1], res
            if res == "minute":
                assert [x["start"] for x in body["buckets"]] == [T0 - T0 % MIN,
                                                                 T0 + year - T0 % MIN]
            assert body["totals"]["comments"] == 2
        # Present every minute of a year: a day per bucket, and the minute rows over the cap.
        resp = await client.get("/v1/live/rooms/held", params={"res": "day"})
        assert resp.status == 200, await resp.text()
        days = (await resp.json())["buckets"]
        assert 360 <= len(days) <= 362
        assert {d["viewers"] for d in days} == {1}
        assert sum(d["comments"] for d in days) == 1
        resp = await client.get("/v1/live/rooms/held", params={"res": "minute"})
        assert resp.status == 400, resp.status
        body = await resp.json()
        assert (body["reason"], body["limit"], body["cap"]) == ("too_large", "buckets",
                                                                MAX_BUCKETS)
        # A window of a day of it is answered minute by minute.
        resp = await client.get("/v1/live/rooms/held", params={
            "res": "minute", "from": str(T0 + 10 * DAY), "to": str(T0 + 11 * DAY)})
        assert resp.status == 200, await resp.text()
        minutes = (await resp.json())["buckets"]
        assert len(minutes) == 1_440
        assert {m["viewers"] for m in minutes} == {1}
        assert (await client.get("/livez")).status == 200


def _dense(changes: list[tuple[int, dict[str, int]]], from_ms: int, to_ms: int,
           size: int) -> tuple[dict[int, dict[str, int]], tuple[int, int] | None]:
    """Plain reference: every minute from the first change to the last, viewers the running
    sum, rows with nothing counted and nobody watching left out, then bucketed by ``size``."""
    by_minute = dict(changes)
    rows: dict[int, dict[str, int]] = {}
    viewers = 0
    if changes:
        for m in range(changes[0][0], changes[-1][0] + MIN, MIN):
            row = {name: 0 for name in MEASURES.values()}
            row.update(by_minute.get(m, {}))
            viewers += row["viewers"]
            row["viewers"] = viewers
            if any(row.values()) and from_ms <= m < to_ms:
                rows[m] = row
    buckets: dict[int, dict[str, int]] = {}
    for m, row in rows.items():
        slot = buckets.setdefault(m - m % size, {name: 0 for name in MEASURES.values()})
        for name, n in row.items():
            slot[name] = max(slot[name], n) if name == "viewers" else slot[name] + n
    peak = max(((r["viewers"], -m) for m, r in rows.items()), default=None)
    return buckets, (peak[0], -peak[1]) if peak else None


@hyp_settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3_000), st.integers(-2, 3), st.integers(0, 2)),
                max_size=12),
       st.integers(-10, 3_100), st.integers(0, 3_200), st.sampled_from([("m", MIN),
                                                                          ("h", HOUR)]))
def test_sparse_series_equals_the_dense_definition(
    raw: list[tuple[int, int, int]], lo: int, span: int, res: tuple[str, int]
) -> None:
    by_minute: dict[int, dict[str, int]] = {}
    for minute, dv, comments in raw:
        row = by_minute.setdefault(T0 - T0 % HOUR + minute * MIN, {})
        row["viewers"] = row.get("viewers", 0) + dv
        row["comments"] = row.get("comments", 0) + comments
    changes = sorted(by_minute.items())
    from_ms = T0 - T0 % HOUR + lo * MIN + 7  # not on a minute: the first whole minute counts
    to_ms = from_ms + span * MIN
    want, peak = _dense(changes, from_ms, to_ms, res[1])
    got = room_series(changes, from_ms, to_ms, res[0], ZoneInfo("UTC"))
    assert got.buckets == want
    assert got.peak == peak


def test_sparse_series_stops_at_the_bucket_cap() -> None:
    changes = [(T0, {"viewers": 1}), (T0 + 400 * DAY, {"viewers": -1})]
    with pytest.raises(ReadTooLarge):
        room_series(changes, 0, 2**53, "m", ZoneInfo("UTC"))
    assert len(room_series(changes, 0, 2**53, "d", ZoneInfo("UTC")).buckets) in (400, 401)


@pytest.mark.integration
async def test_twenty_thousand_rooms_expire_after_the_silence(settings: Settings) -> None:
    settings = dataclasses.replace(settings, agents="live")
    n = 20_000
    log = [ev(f"s{k}", "live_start", T0 + k, f"h{k}", f"room{k}") for k in range(n)]
    log += [ev(f"j7-{i}", "live_join", T0 + n + i, f"v7-{i}", "room7") for i in range(3)]
    log += [ev(f"j11-{i}", "live_join", T0 + n + i, f"v11-{i}", "room11") for i in range(2)]
    produce(settings, log)
    metrics = Metrics()
    r = make_redis(settings)
    agents = build_agents(settings, r, metrics)
    live = next(x for x in agents if isinstance(x, LiveRooms))
    assert live.cfg.on_air_silence_ms == SILENCE
    await process_topic(settings, agents=agents)
    async with TestClient(TestServer(create_api(settings))) as client:
        resp = await client.get("/v1/live/rooms")
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["total"] == n and body["on_air"] == n
        assert len(body["rooms"]) == 100 and (body["limit"], body["offset"]) == (100, 0)
        assert [(x["room_id"], x["viewers"]) for x in body["rooms"][:3]] == [
            ("room7", 3), ("room11", 2), ("room0", 0)]
        assert body["rooms"][0]["started_at"] == T0 + 7
        # Pages tile the list in order.
        pages = []
        for offset in (0, MAX_PAGE, 2 * MAX_PAGE):
            page = await (await client.get("/v1/live/rooms", params={
                "limit": str(MAX_PAGE), "offset": str(offset)})).json()
            assert page["total"] == n
            pages += [x["room_id"] for x in page["rooms"]]
        assert len(pages) == len(set(pages)) == 3 * MAX_PAGE
        last = await (await client.get("/v1/live/rooms", params={"offset": str(n - 5)})).json()
        assert len(last["rooms"]) == 5
    live._last_gauge = 0
    await live.tick(T0 + n)
    assert metrics.registry.get_sample_value("shopstream_live_rooms_on_air") == n
    assert metrics.registry.get_sample_value("shopstream_live_room_viewers",
                                             {"room": "room7"}) == 3

    # Six hours and a bit of event time later on every partition (comments in a room never
    # started), and one room that stayed active: only that one is still on air.
    later = T0 + SILENCE + 20 * MIN
    users = users_by_partition(settings.partitions, "w")
    produce(settings, [
        ev("b0", "live_start", T0, "host", "busy"),
        *[ev(f"k{i}", "live_comment", T0 + i * HOUR, users[0], "busy") for i in range(1, 8)],
        *[ev(f"t{p}", "live_comment", later, uid, "other-room") for p, uid in enumerate(users)],
    ])
    await process_topic(settings, agents=agents)
    async with TestClient(TestServer(create_api(settings))) as client:
        body = await (await client.get("/v1/live/rooms")).json()
        assert (body["total"], [x["room_id"] for x in body["rooms"]]) == (1, ["busy"])
        room = await (await client.get("/v1/live/rooms/room5")).json()
        assert room["on_air"] is False and room["started_at"] == T0 + 5
        assert (await (await client.get("/v1/live/rooms/busy")).json())["on_air"] is True
    live._last_gauge = 0
    await live.tick(later)
    await r.aclose()
    assert metrics.registry.get_sample_value("shopstream_live_rooms_on_air") == 1
